"""The embedded default: synthetic test sets, their negatives manifests, and demo-model evaluation.

This is the glue the book and the benchmarks call when no real data is configured: it builds the
synthetic test set, draws its extended negatives with the same manifest machinery as the real sets
(:mod:`vssl_helpers.negatives`), evaluates a demo model with the engine and applies the model's
threshold rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .engine import ExtendedMaps, compute_extended_maps, maxima_by_type, resolve_threshold, summarize
from .models import create_model, get_config
from .models.demo import TRAINED_DEMOS
from .models.registry import VSSLModel
from .negatives import Manifest, noise_waveform
from .testsets.synthetic import SyntheticConfig, SyntheticSet, synthetic_manifest  # noqa: F401  (re-exported)
from .threshold import UniversalThreshold

__all__ = [
    "DEFAULT_TEST",
    "EvalResult",
    "test_set",
    "synthetic_manifest",
    "evaluate",
    "evaluate_demo",
    "train_overrides",
    "prepare",
    "study_results",
]

DEFAULT_TEST = SyntheticConfig(split="test", n_images=500, sources=1, seed=0)
"""The default embedded test set: 500 VGG-SS-like images (one sounding object each)."""


def test_set(config: SyntheticConfig = DEFAULT_TEST) -> SyntheticSet:
    """The synthetic test set of ``config``."""
    return SyntheticSet(config)


@dataclass
class EvalResult:
    """One model on one extended test set."""

    model: str
    maps: ExtendedMaps
    threshold: UniversalThreshold
    row: dict[str, float]
    maxima: dict[str, torch.Tensor]
    provenance: dict[str, Any] = field(default_factory=dict)


def evaluate(
    model: VSSLModel,
    ds: SyntheticSet,
    manifest: Manifest,
    threshold: float | UniversalThreshold | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = False,
) -> EvalResult:
    """Run ``model`` on every sample and negative of ``manifest`` and compute all metrics.

    ``threshold=None`` applies the model's own rule (universal: Q3 of this set's negative maxima;
    fixed: its value). Pass a number (e.g. a threshold from another set) to reuse it.
    """
    cfg = model.config
    arr = ds.arrays(image_size=cfg.preprocessing.image_size, progress=progress)
    ids = [str(x) for x in arr["ids"]]
    pos = {sid: k for k, sid in enumerate(ids)}
    order = np.array([pos[sid] for sid in manifest.ids])  # manifest row -> array row
    pool_rows = np.array([pos[c.id] for c in manifest.pool])
    images = torch.from_numpy(arr["images"][order]).permute(0, 3, 1, 2).float() / 255.0
    audio = torch.from_numpy(arr["audio"][order])
    gt = torch.from_numpy(arr["masks"][order])
    # offscreen pool clips, as rows of the reordered arrays
    where = np.empty(len(ids), np.int64)
    where[order] = np.arange(len(order))
    offscreen_index = where[pool_rows[manifest.offscreen]].T  # S x N

    def noise(s: int, i: int, n: int) -> np.ndarray:
        return noise_waveform(int(manifest.noise_seeds[i, s]), n)

    maps = compute_extended_maps(
        model, images, audio, offscreen_index, noise, gt=gt, batch_size=batch_size, device=device, progress=progress
    )
    maxima = maxima_by_type(maps)
    t = resolve_threshold(cfg.threshold_rule, maxima, threshold)
    row = summarize(maps, gt, t)
    prov = {"manifest": manifest.name, "manifest_sha256": manifest.sha256, "n_seeds": manifest.n_seeds}
    return EvalResult(cfg.name, maps, t, row, maxima, prov)


def evaluate_demo(
    name: str,
    seed: int = 0,
    ds: SyntheticSet | None = None,
    manifest: Manifest | None = None,
    progress: bool = False,
    **train_overrides: Any,
) -> EvalResult:
    """Build (training or loading from the cache when needed) and evaluate one demo model."""
    get_config(name)
    ds = ds or test_set()
    manifest = manifest or synthetic_manifest(ds)
    model = create_model(name, seed=seed, progress=progress, **train_overrides) if name in TRAINED_DEMOS else create_model(name, seed=seed)
    result = evaluate(model, ds, manifest, progress=progress)
    result.provenance.update({"model_seed": seed, "train_overrides": dict(train_overrides)})
    return result



def train_overrides(train_steps: int | None = None, n_train_images: int | None = None) -> dict[str, int]:
    """:class:`~vssl_helpers.models.training.TrainConfig` overrides from notebook parameters
    (``None`` keeps the default)."""
    out: dict[str, int] = {}
    if train_steps is not None:
        out["steps"] = int(train_steps)
        out["warmup_steps"] = min(200, int(train_steps) // 3)
    if n_train_images is not None:
        out["n_train_images"] = int(n_train_images)
    return out


def prepare(
    n_test_images: int = DEFAULT_TEST.n_images,
    train_steps: int | None = None,
    n_train_images: int | None = None,
    model_seed: int = 0,
    **_: Any,
) -> None:
    """Train (or find in the cache) every trained demo model and build the test set's arrays, with
    progress bars on the console. Called by the book pipeline before the chapter runs."""
    from .models.training import trained_state_dict

    overrides = train_overrides(train_steps, n_train_images)
    for name in TRAINED_DEMOS:
        trained_state_dict(name, seed=model_seed, progress=True, **overrides)
    cfg = SyntheticConfig(split="test", n_images=n_test_images, sources=1, seed=DEFAULT_TEST.seed)
    SyntheticSet(cfg).arrays(image_size=112, progress=True)


def study_results(study: str) -> dict[str, Any] | None:
    """Committed results of ``benchmarks/demo_study.py <study>`` (``seeds`` or ``knob``), if present
    in this checkout: ``{"command": ..., "rows": [...]}``."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / f"{study}.json"
    return json.loads(path.read_text()) if path.is_file() else None
