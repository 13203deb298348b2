"""Image transforms of the VSSL models, as code: decoded original image → what the network reads.

Each model's own loader does one of three things to a decoded frame before its normalisation
(``reference/models.md``, "Preprocessing" of each model), and each is one class here:

* :class:`PILSquashResize`: ``PIL.Image.resize((s, s), resample)``, aspect ratio not kept (RCGrad,
  EZ-VSL, SLAVC, FNAC in their repositories: bicubic; the demo models: bilinear at 112 px);
* :class:`PILShortSideCentreCrop`: torchvision ``Resize(s)`` on the PIL image (short side → ``s``, long
  side :math:`\\lfloor s \\cdot \\text{long} / \\text{short} \\rfloor`, bicubic) then ``CenterCrop(s)`` with
  offsets :math:`\\mathrm{round}((h - s)/2)`, :math:`\\mathrm{round}((w - s)/2)` (LVS, SSL-TIE);
* :class:`TensorSquashResize`: ``ToTensor`` first, then a bicubic resize of the *float tensor* to
  ``(s, s)`` with ``align_corners=False`` and **no antialiasing** (torchvision 0.14, the paper's
  environment, did not antialias tensors), then the no-op ``CenterCrop(s)`` (SSL-Align; the paper's
  code for LVS, EZ-VSL, SLAVC, FNAC and SSL-TIE). Bicubic on a tensor can overshoot, so values may
  leave [0, 1] slightly, as in the original.

Every transform maps a decoded image (``PIL.Image`` or ``uint8`` ``H × W × 3`` array) to a float32
``3 × s × s`` tensor in [0, 1] (``ToTensor`` scaling, :math:`x/255`), before the model's own mean/std
normalisation (which stays inside the model). An image already at ``s × s`` passes through every
transform unchanged (PIL returns a copy, the tensor resize at scale 1 reads each pixel exactly), which
keeps the synthetic set, rendered at the model's size, bit-identical. ``describe()`` is the one-line
text of model cards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ImageTransform",
    "PILSquashResize",
    "PILShortSideCentreCrop",
    "TensorSquashResize",
    "to_tensor",
    "as_uint8_rgb",
    "display_image",
]

Resample = Literal["bicubic", "bilinear"]


def as_uint8_rgb(decoded: Any) -> np.ndarray:
    """A decoded image as a ``uint8`` ``H × W × 3`` array (``PIL.Image`` converted to RGB first)."""
    from PIL import Image

    if isinstance(decoded, Image.Image):
        decoded = np.asarray(decoded.convert("RGB"))
    arr = np.asarray(decoded)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image: expected a PIL image or a uint8 H x W x 3 array, got {arr.dtype} {arr.shape}")
    return arr


def _pil(decoded: Any) -> Any:
    from PIL import Image

    if isinstance(decoded, Image.Image):
        return decoded.convert("RGB")
    return Image.fromarray(as_uint8_rgb(decoded))


def _resample(name: Resample) -> Any:
    from PIL import Image

    return {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}[name]


def to_tensor(image: Any) -> torch.Tensor:
    """torchvision ``ToTensor``: ``uint8`` ``H × W × 3`` → float32 ``3 × H × W``, :math:`x / 255`."""
    arr = as_uint8_rgb(image)
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        arr = np.array(arr, order="C")  # torch wants a writable buffer (memory-mapped caches are read-only)
    return torch.from_numpy(arr).permute(2, 0, 1).float().div(255)


def display_image(x: torch.Tensor) -> np.ndarray:
    """A transform's output as an ``H × W × 3`` float array clipped to [0, 1], for ``imshow``: the
    image the model saw, before normalisation."""
    return x.detach().float().clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy()


class ImageTransform(ABC):
    """Decoded image → float32 ``3 × size × size`` tensor (before the model's normalisation)."""

    size: int

    def __post_init__(self) -> None:
        if int(self.size) < 1:
            raise ValueError(f"{type(self).__name__}: size must be >= 1, got {self.size}")
        resample = getattr(self, "resample", "bicubic")
        if resample not in ("bicubic", "bilinear"):
            raise ValueError(f"{type(self).__name__}: resample must be 'bicubic' or 'bilinear', got {resample!r}")

    @abstractmethod
    def __call__(self, decoded: Any) -> torch.Tensor:
        """The network's image input for one decoded image."""

    @abstractmethod
    def describe(self) -> str:
        """One line for model cards."""

    def view(self, decoded: Any) -> np.ndarray:
        """The image the model sees, for figures: this transform's output as ``H × W × 3`` floats
        clipped to [0, 1] (before the model's normalisation)."""
        return display_image(self(decoded))


@dataclass(frozen=True)
class PILSquashResize(ImageTransform):
    """``PIL.Image.resize((size, size), resample)`` (squash) → ``ToTensor``."""

    size: int = 224
    resample: Resample = "bicubic"

    def __call__(self, decoded: Any) -> torch.Tensor:
        img = _pil(decoded)
        if img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), _resample(self.resample))
        return to_tensor(img)

    def describe(self) -> str:
        return f"PIL Resize(({self.size}, {self.size})) {self.resample} (squash, aspect ratio not kept)"


@dataclass(frozen=True)
class PILShortSideCentreCrop(ImageTransform):
    """torchvision ``Resize(size)`` + ``CenterCrop(size)`` on the PIL image → ``ToTensor``.

    Resize: the short side becomes ``size``, the long side :math:`\\lfloor \\text{size}\\cdot
    \\text{long}/\\text{short}\\rfloor`; crop offsets :math:`\\mathrm{round}((h - \\text{size})/2)` (top)
    and :math:`\\mathrm{round}((w - \\text{size})/2)` (left), as torchvision computes them.
    """

    size: int = 224
    resample: Resample = "bicubic"

    def __call__(self, decoded: Any) -> torch.Tensor:
        img = _pil(decoded)
        w, h = img.size
        if min(w, h) != self.size:
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = self.size, int(self.size * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
            img = img.resize((new_w, new_h), _resample(self.resample))
        w, h = img.size
        top, left = int(round((h - self.size) / 2.0)), int(round((w - self.size) / 2.0))
        if (w, h) != (self.size, self.size):
            img = img.crop((left, top, left + self.size, top + self.size))
        return to_tensor(img)

    def describe(self) -> str:
        return f"PIL Resize({self.size}) on the short side ({self.resample}) + CenterCrop({self.size})"


@dataclass(frozen=True)
class TensorSquashResize(ImageTransform):
    """``ToTensor`` → ``F.interpolate(size=(size, size), mode='bicubic', align_corners=False,
    antialias=False)`` (squash) → ``CenterCrop(size)`` (a no-op after the squash)."""

    size: int = 224

    def __call__(self, decoded: Any) -> torch.Tensor:
        x = to_tensor(decoded)
        if tuple(x.shape[1:]) == (self.size, self.size):
            return x  # scale 1: bicubic reads each pixel with weights (0, 1, 0, 0)
        return F.interpolate(x[None], size=(self.size, self.size), mode="bicubic", align_corners=False, antialias=False)[0]

    def describe(self) -> str:
        return (f"ToTensor, then tensor Resize(({self.size}, {self.size})) bicubic without antialiasing "
                f"(torchvision 0.14; squash) + CenterCrop({self.size}) (no-op)")
