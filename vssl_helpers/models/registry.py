"""Model registry and the adapter interface every VSSL model implements (timm-style).

A model is registered with :func:`register_model` on a factory function that returns a
:class:`VSSLModel`. Each registered model carries a :class:`ModelConfig` next to its code: the
preprocessing it expects, its native map resolution and value range, its threshold rule and (for
official models) its checkpoint layout.

Interface (DESIGN.md, "Model adapter")::

    visual = model.encode_images(images)        # B x 3 x H x W float in [0, 1] -> visual features
    audio = model.encode_audio(waveforms)       # B x T mono float32 at config.preprocessing.sample_rate
    maps = model.similarity(visual, audio)      # B x h x w maps at native resolution (paired rows)
    maps = model.similarity_all(visual, audio)  # Bv x Ba x h x w (every image with every audio)
    off = model.encode_offscreen_audio(waveforms)  # = encode_audio unless model.offscreen_window_differs

Images reach ``encode_images`` after ``config.preprocessing.image_transform`` (the model's own geometry,
applied to the decoded original image); waveforms reach ``encode_audio`` whole, and the model's front
end picks its window.

Encoding every image once and every distinct audio once, then pairing, is what makes an extended
evaluation fast. Models that cannot factor this way set ``config.factorized = False`` and implement
:meth:`VSSLModel.joint_maps` instead.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..threshold import ThresholdRule
from .transforms import ImageTransform, PILSquashResize

__all__ = [
    "Preprocessing",
    "ModelConfig",
    "VSSLModel",
    "DotProductMapModel",
    "register_model",
    "register_alias",
    "registered_factory_name",
    "list_models",
    "get_config",
    "create_model",
    "file_sha256",
]


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects as input.

    Attributes:
        image_size: side of the square RGB input in pixels.
        image_mean, image_std: per-channel normalisation applied by the model to [0, 1] images.
        sample_rate: audio sample rate in Hz.
        audio_seconds: the model's clip length: noise and silence are drawn at this length (the
            model's own window then reads them as it reads a positive clip); positive and off-screen
            clips reach the model whole, and its front end chooses its window.
        audio_frontend: short description of the spectrogram front end (for model cards).
        version: bump when preprocessing changes, so stored maps are invalidated.
        image_transform: decoded original image → ``3 × image_size × image_size`` in [0, 1] (see
            :mod:`vssl_helpers.models.transforms`); ``None`` (default) is a PIL bilinear squash to
            ``image_size``. Its ``describe()`` is the image line of model cards.
    """

    image_size: int = 224
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    sample_rate: int = 16000
    audio_seconds: float = 2.0
    audio_frontend: str = ""
    version: int = 1
    image_transform: ImageTransform | None = None

    def __post_init__(self) -> None:
        if self.image_transform is None:
            object.__setattr__(self, "image_transform", PILSquashResize(self.image_size, "bilinear"))
        elif int(self.image_transform.size) != int(self.image_size):
            raise ValueError(
                f"Preprocessing: image_transform gives {self.image_transform.size} px images but image_size is {self.image_size}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """Everything about a model that is not its weights.

    Attributes:
        name: registry name.
        family: code family (e.g. "demo", "ezvsl").
        description: one line for tables and cards.
        map_size: native map resolution (h, w).
        map_units: what the map values mean ("cosine", "(cos+1)/2", "Grad-CAM in [0, 1]", "binary").
        map_range: theoretical value range of the map.
        threshold_rule: how its localization threshold is chosen.
        preprocessing: input expectations.
        factorized: whether encode_images / encode_audio / similarity apply.
        needs_gt: the model reads the GT mask (only the oracle reference point).
        audio_blind: the map does not depend on the audio (reference points).
        checkpoint_layout: official checkpoint facts (top-level key, prefix, ...), empty for demos.
        paper, code_license: for model cards.
    """

    name: str
    family: str
    description: str
    map_size: tuple[int, int]
    map_units: str
    map_range: tuple[float, float]
    threshold_rule: ThresholdRule = field(default_factory=ThresholdRule)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    factorized: bool = True
    needs_gt: bool = False
    audio_blind: bool = False
    checkpoint_layout: Mapping[str, Any] = field(default_factory=dict)
    paper: str = ""
    code_license: str = ""


class VSSLModel(nn.Module, ABC):
    """Base class of every model adapter. Subclasses set ``self.config`` and implement the three
    factorized methods (or :meth:`joint_maps` when ``config.factorized`` is False)."""

    config: ModelConfig

    @abstractmethod
    def encode_images(self, images: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        """Visual features of a batch of images (``B × 3 × H × W`` in [0, 1]). ``gt`` is passed only
        to models with ``config.needs_gt``."""

    @abstractmethod
    def encode_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Audio embeddings of a batch of mono waveforms (``B × T``, whole clips: the model's front
        end chooses the window it reads)."""

    @property
    def offscreen_window_differs(self) -> bool:
        """True when an off-screen clip is read through another window than a positive one (the
        paper's code for EZ-VSL, SLAVC and FNAC: first seconds without the centring roll), so the
        engine must encode the off-screen pool a second time with :meth:`encode_offscreen_audio`."""
        return False

    def encode_offscreen_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Embeddings of clips used as off-screen audio; the same as :meth:`encode_audio` unless
        :attr:`offscreen_window_differs`."""
        return self.encode_audio(waveforms)

    @abstractmethod
    def similarity_all(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Maps for every (image, audio) combination: ``Bv × Ba × h × w``."""

    def similarity(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Maps for paired rows (image i with audio i): ``B × h × w``."""
        if visual.shape[0] != audio.shape[0]:
            raise ValueError(f"similarity: {visual.shape[0]} visual rows but {audio.shape[0]} audio rows")
        out = [self.similarity_all(visual[i : i + 1], audio[i : i + 1])[0, 0] for i in range(visual.shape[0])]
        return torch.stack(out)

    def joint_maps(self, images: torch.Tensor, waveforms: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        """Full forward for paired rows; the reference path the engine is checked against."""
        return self.similarity(self.encode_images(images, gt=gt), self.encode_audio(waveforms))


class DotProductMapModel(VSSLModel):
    """A model whose map is the dot product of a ``D × h × w`` visual feature map with a ``D``-vector
    audio embedding (a cosine map when both are L2-normalised): the common case, written once."""

    def similarity_all(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return torch.einsum("vdhw,ad->vahw", visual, audio)

    def similarity(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        if visual.shape[0] != audio.shape[0]:
            raise ValueError(f"similarity: {visual.shape[0]} visual rows but {audio.shape[0]} audio rows")
        return torch.einsum("bdhw,bd->bhw", visual, audio)


_REGISTRY: dict[str, tuple[Callable[..., VSSLModel], ModelConfig]] = {}
# other names of registered models: a plugin's spec (``file.py:factory``) -> its config name
_ALIASES: dict[str, str] = {}


def register_model(config: ModelConfig) -> Callable[[Callable[..., VSSLModel]], Callable[..., VSSLModel]]:
    """Decorator: register a factory ``fn(**kwargs) -> VSSLModel`` under ``config.name``."""

    def deco(fn: Callable[..., VSSLModel]) -> Callable[..., VSSLModel]:
        if config.name in _REGISTRY:
            raise ValueError(f"register_model: {config.name!r} is already registered")
        _REGISTRY[config.name] = (fn, config)
        return fn

    return deco


def register_alias(alias: str, name: str) -> None:
    """Let ``alias`` stand for registered model ``name`` in :func:`get_config` and
    :func:`create_model` (:func:`vssl_helpers.plugins.resolve_model` does it for a plugin's spec).
    A later alias replaces an earlier one (a relative ``file.py:factory`` names another file from
    another folder); a registered name is never an alias."""
    if name not in _REGISTRY:
        raise ValueError(f"register_alias: {name!r} is not a registered model")
    if alias in _REGISTRY:
        raise ValueError(f"register_alias: {alias!r} is a registered model's own name")
    _ALIASES[alias] = name


def registered_factory_name(fn: Callable[..., Any]) -> str | None:
    """The name ``fn`` is registered under by :func:`register_model`, or None."""
    return next((name for name, (f, _) in _REGISTRY.items() if f is fn), None)


def _ensure_builtin_models() -> None:
    """Hook run before every registry lookup.

    The built-in families are registered by :mod:`vssl_helpers.models` (its ``__init__`` imports
    them; importing this module imports that package first), never imported from here: the
    registry imports no family, so the import graph stays acyclic (``tests/test_architecture.py``).
    """


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _ensure_builtin_models()
    return sorted(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    """The config of a registered model; ``ValueError`` naming the known models otherwise."""
    _ensure_builtin_models()
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name][1]


def create_model(name: str, **kwargs: Any) -> VSSLModel:
    """Build a registered model (untrained unless the factory loads weights)."""
    get_config(name)
    return _REGISTRY[_ALIASES.get(name, name)][0](**kwargs)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (checkpoint hashes recorded with every result)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
