"""The Sample record shared by every test set (DESIGN.md, "Data contracts")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..categories import BROAD_CATEGORIES  # re-exported: records carry these categories

__all__ = ["Sample", "BROAD_CATEGORIES"]


@dataclass
class Sample:
    """One test item: an image, its (positive) audio and the ground truth of the sounding source.

    Attributes:
        id: stable string id (file stem for real sets).
        image: ``H × W × 3`` uint8 RGB array, or a path to the image file.
        audio: mono float32 waveform in [-1, 1], or a path to the audio file.
        sample_rate: sample rate of ``audio`` in Hz.
        gt_mask: ``224 × 224`` boolean mask of the sounding source(s) (union of boxes for real sets).
        category: broad category of the source (one of :data:`BROAD_CATEGORIES`), or a tuple of
            them for an image whose other visible source matters (IS3: every visible source).
        classes: fine class name(s) of the sounding source.
        boxes: ``k × 4`` float array of ``[x1, y1, x2, y2]`` boxes in pixels of the 224 × 224 frame.
        meta: free-form extras (e.g. visible silent objects of synthetic scenes).
    """

    id: str
    image: np.ndarray | Path
    audio: np.ndarray | Path
    sample_rate: int
    gt_mask: np.ndarray
    category: str | tuple[str, ...]
    classes: tuple[str, ...]
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    meta: dict = field(default_factory=dict)
