"""Model registry, adapters and demo models. See :mod:`vssl_helpers.models.registry`."""

from .registry import (
    ModelConfig,
    Preprocessing,
    VSSLModel,
    create_model,
    file_sha256,
    get_config,
    list_models,
    register_model,
)

__all__ = [
    "ModelConfig",
    "Preprocessing",
    "VSSLModel",
    "create_model",
    "file_sha256",
    "get_config",
    "list_models",
    "register_model",
]
