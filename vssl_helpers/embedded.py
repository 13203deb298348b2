"""The embedded default: synthetic test sets and their negatives manifests.

This is the glue the book and the benchmarks call when no real data is configured: it builds the
synthetic test set and draws its extended negatives with the same manifest machinery as the real
sets (:mod:`vssl_helpers.negatives`). Models are evaluated on it like on any other set, with
:func:`vssl_helpers.engine.evaluate`.
"""

from __future__ import annotations

from typing import Any

from .defaults import DEFAULTS
from .testsets.synthetic import SyntheticConfig, SyntheticSet, synthetic_manifest  # noqa: F401  (re-exported)

__all__ = [
    "DEFAULT_TEST",
    "test_set",
    "synthetic_manifest",
    "train_overrides",
    "study_results",
]

DEFAULT_TEST = SyntheticConfig(split="test", n_images=DEFAULTS.n_images, sources=1, seed=0)
"""The default embedded test set: ``DEFAULTS.n_images`` (500) VGG-SS-like images (one sounding object each)."""


def test_set(config: SyntheticConfig = DEFAULT_TEST) -> SyntheticSet:
    """The synthetic test set of ``config``."""
    return SyntheticSet(config)


def train_overrides(train_steps: int | None = None, n_train_images: int | None = None) -> dict[str, int]:
    """:class:`~vssl_helpers.models.training.TrainConfig` overrides from notebook parameters
    (``None`` keeps the default)."""
    out: dict[str, int] = {}
    if train_steps is not None:
        out["steps"] = int(train_steps)
        out["warmup_steps"] = min(DEFAULTS.warmup_steps, int(train_steps) // 3)
    if n_train_images is not None:
        out["n_train_images"] = int(n_train_images)
    return out


def study_results(study: str) -> dict[str, Any] | None:
    """Committed results of ``benchmarks/demo_study.py <study>`` (``seeds`` or ``knob``), if present
    in this checkout: ``{"command": ..., "rows": [...]}``."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / f"{study}.json"
    return json.loads(path.read_text()) if path.is_file() else None
