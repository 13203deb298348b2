"""The universal threshold of the paper (§II), and fixed-threshold rules.

For a model whose maps are raw similarities (cosine, ``(cos+1)/2``, ...), the paper picks one
threshold for all images: for each negative audio type (silence, noise, off-screen) take the third
quartile (Q3) of the per-sample **maximum of the raw native map**, pooled over all samples and seeds
of extended VGG-SS, and keep the highest of the three. Models whose maps are already normalised to
[0, 1] per image (RCGrad's Grad-CAM) use a fixed 0.75 instead.

Quantile definition: linear interpolation between order statistics ("type 7" of Hyndman & Fan,
NumPy's default ``method="linear"``): with sorted values :math:`x_{(0)} \\le \\dots \\le x_{(n-1)}`
and :math:`h = 0.75\\,(n-1)`, :math:`Q_3 = x_{(\\lfloor h\\rfloor)} + (h - \\lfloor h\\rfloor)
(x_{(\\lfloor h\\rfloor+1)} - x_{(\\lfloor h\\rfloor)})`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np
import torch

from .metrics import as_maps

__all__ = [
    "NEGATIVE_TYPES",
    "RCGRAD_THRESHOLD",
    "ThresholdRule",
    "UniversalThreshold",
    "per_sample_max",
    "quantile_linear",
    "universal_threshold",
]

NEGATIVE_TYPES: tuple[str, ...] = ("silence", "noise", "offscreen")
"""The three negative audio types of the extended test sets, in the paper's order."""

RCGRAD_THRESHOLD = 0.75
"""RCGrad's fixed threshold on its Grad-CAM maps normalised to [0, 1] (paper §II)."""


def per_sample_max(maps: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Maximum of each raw native map (``B × h × w`` → ``B``), before any upsampling.

    The native maximum is used because upsampling can only lower it (half-pixel bilinear
    interpolation never reaches a native pixel centre exactly unless the scale is 1).
    """
    return as_maps(maps).amax(dim=(1, 2))


def quantile_linear(values: torch.Tensor | np.ndarray | Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (NumPy's default)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q: expected a value in [0, 1], got {q}")
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    if v.numel() == 0:
        raise ValueError("values: cannot take a quantile of an empty set")
    if not bool(torch.isfinite(v).all()):
        raise ValueError("values: contain NaN or Inf")
    s = torch.sort(v).values
    h = q * (s.numel() - 1)
    lo = math.floor(h)
    hi = min(lo + 1, s.numel() - 1)
    return float(s[lo] + (h - lo) * (s[hi] - s[lo]))


@dataclass(frozen=True)
class UniversalThreshold:
    """A model's universal threshold and how it was obtained."""

    value: float
    rule: str
    per_type_q3: Mapping[str, float] = field(default_factory=dict)
    decisive_type: str | None = None
    n_per_type: Mapping[str, int] = field(default_factory=dict)

    def __float__(self) -> float:
        return self.value


def universal_threshold(
    maxima_by_type: Mapping[str, torch.Tensor | np.ndarray | Sequence[float]], q: float = 0.75
) -> UniversalThreshold:
    """The paper's universal threshold: ``max over negative types of Q3(per-sample maxima)``.

    ``maxima_by_type`` maps each negative type (normally ``silence``, ``noise``, ``offscreen``) to the
    per-sample maxima of the raw maps (:func:`per_sample_max`), pooled over samples and seeds.
    Positive-audio maxima must not be passed: the threshold is defined by negatives only.
    """
    if not maxima_by_type:
        raise ValueError("maxima_by_type: need at least one negative type")
    if "positive" in maxima_by_type:
        raise ValueError("maxima_by_type: 'positive' given; the universal threshold uses negative types only")
    q3 = {k: quantile_linear(v, q) for k, v in maxima_by_type.items()}
    decisive = max(q3, key=lambda k: q3[k])
    return UniversalThreshold(
        value=q3[decisive],
        rule=f"max over negative types of Q{q:g} of per-sample raw-map maxima",
        per_type_q3=q3,
        decisive_type=decisive,
        n_per_type={k: int(torch.as_tensor(v).numel()) for k, v in maxima_by_type.items()},
    )


@dataclass(frozen=True)
class ThresholdRule:
    """How a model's threshold is chosen: ``"universal"`` (Q3 rule) or ``"fixed"`` (a given value).

    Model configs carry one; :meth:`resolve` turns it into a number given the negative maxima.
    """

    kind: Literal["universal", "fixed"] = "universal"
    value: float | None = None
    quantile: float = 0.75

    def __post_init__(self) -> None:
        if self.kind == "fixed" and self.value is None:
            raise ValueError("ThresholdRule: a fixed rule needs a value")
        if self.kind not in ("universal", "fixed"):
            raise ValueError(f"ThresholdRule: kind must be 'universal' or 'fixed', got {self.kind!r}")

    def resolve(
        self, maxima_by_type: Mapping[str, torch.Tensor | np.ndarray | Sequence[float]] | None = None
    ) -> UniversalThreshold:
        """The threshold for this rule; ``maxima_by_type`` is required for the universal rule."""
        if self.kind == "fixed":
            return UniversalThreshold(value=float(self.value), rule=f"fixed {self.value:g}")  # type: ignore[arg-type]
        if maxima_by_type is None:
            raise ValueError("ThresholdRule.resolve: the universal rule needs the negative maxima")
        return universal_threshold(maxima_by_type, self.quantile)


RCGRAD_RULE = ThresholdRule(kind="fixed", value=RCGRAD_THRESHOLD)
"""RCGrad's rule: Grad-CAM normalised to [0, 1], fixed threshold 0.75."""
