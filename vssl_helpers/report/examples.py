"""Small hand-made maps and masks for worked examples (book chapters, docs, tests of figures)."""

from __future__ import annotations

import torch

from ..metrics import GT_SIZE

__all__ = ["blob_map", "box_mask"]


def blob_map(
    size: int = 7,
    center: tuple[float, float] = (3.0, 3.0),
    sigma: float = 1.2,
    peak: float = 0.8,
    floor: float = 0.1,
) -> torch.Tensor:
    """One ``size × size`` similarity map: a Gaussian bump of height ``peak`` over a flat ``floor``.

    ``center`` is (row, column) in native pixels. Returned as a ``1 × size × size`` float32 batch.
    """
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    d2 = (yy - center[0]) ** 2 + (xx - center[1]) ** 2
    return (floor + (peak - floor) * torch.exp(-d2 / (2 * sigma**2))).unsqueeze(0)


def box_mask(x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    """A ``1 × 224 × 224`` boolean GT mask with one box, pixel corners ``[x0, x1) × [y0, y1)``."""
    m = torch.zeros(1, GT_SIZE, GT_SIZE, dtype=torch.bool)
    m[0, y0:y1, x0:x1] = True
    return m
