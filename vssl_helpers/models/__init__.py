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
from .checkpoints import CheckpointError, load

__all__ = [
    "CheckpointError",
    "load",
    "ModelConfig",
    "Preprocessing",
    "VSSLModel",
    "create_model",
    "file_sha256",
    "get_config",
    "list_models",
    "register_model",
]
