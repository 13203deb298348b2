"""Model registry, adapters and demo models. See :mod:`vssl_helpers.models.registry`.

Importing this package registers every built-in model (the demo models and the seven official ones).
"""

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

# The built-in models: importing their modules runs their @register_model decorators. This package,
# not the registry, imports the families (timm's layout), so registry <- families is one-way.
from . import demo_zoo, ezvsl_family, lvs_family, rcgrad, ssltie  # noqa: E402,F401  isort: skip

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
