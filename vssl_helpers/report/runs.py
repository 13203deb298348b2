"""The runs behind the book's result chapters: demo models on the two synthetic extended test sets.

Every result chapter (threshold analysis, Table I, qualitative figures) needs the same maps: each
demo model on the **VGG-SS-like** set (one sounding object per image) and on the **IS3-like** set (two
sounding objects per image, one sample per source). They are computed through the map store
(:func:`vssl_helpers.engine.evaluate_stored`), so the first chapter (or the pipeline's ``prepare``
step) computes them and every later chapter reads them back from disk.

As in the paper, each model's universal threshold is computed on the VGG-SS-like set and applied
unchanged to the IS3-like set (fixed-threshold models keep their fixed value).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..embedded import synthetic_manifest, train_overrides
from ..engine import StoredResult, evaluate_stored
from ..negatives import Manifest
from ..store import MapStore
from ..testsets.synthetic import SyntheticConfig, SyntheticSet

__all__ = [
    "DEMO_MODELS",
    "THRESHOLD_SET",
    "TEST_SET_LABELS",
    "TestSetRun",
    "default_store",
    "demo_test_sets",
    "evaluate_models",
    "prepare",
    "sample_maps",
    "negative_audio",
    "image_rows",
]

DEMO_MODELS: tuple[str, ...] = ("demo-ezvsl", "demo-lvs", "demo-negaware", "demo-saliency", "demo-random", "demo-oracle")
"""The registry's demo models, in the book's order."""

THRESHOLD_SET = "vggss-like"
"""The set whose negatives define each model's universal threshold (the paper: extended VGG-SS)."""

TEST_SET_LABELS: dict[str, str] = {"vggss-like": "Extended VGG-SS-like", "is3-like": "Extended IS3-like"}
"""Display names of the synthetic test sets (Table I's first column)."""


@dataclass
class TestSetRun:
    """A synthetic test set and the negatives manifest every model reads."""

    name: str
    dataset: SyntheticSet
    manifest: Manifest

    def sample_index(self, row: int) -> int:
        """Index in :attr:`dataset` of manifest row ``row`` (the maps are in manifest order)."""
        return self.dataset.ids.index(self.manifest.ids[row])


def default_store() -> MapStore:
    """The map store shared by the CLI and the book: ``$VSSL_CACHE/maps`` or ``~/.cache/vssl-companion/maps``."""
    base = os.environ.get("VSSL_CACHE")
    return MapStore((Path(base) if base else Path.home() / ".cache" / "vssl-companion") / "maps")


def demo_test_sets(n_test_images: int = 500, n_seeds: int = 10, seed: int = 0) -> dict[str, TestSetRun]:
    """The VGG-SS-like set (``n_test_images`` images, one source) and the IS3-like set
    (``n_test_images // 2`` images with two sources, so about as many samples), with their manifests.

    The VGG-SS-like set is the one of the embedded benchmark chapter (same config, same manifest).
    """
    out: dict[str, TestSetRun] = {}
    for name, n_images, sources in (("vggss-like", n_test_images, 1), ("is3-like", max(1, n_test_images // 2), 2)):
        ds = SyntheticSet(SyntheticConfig(split="test", n_images=n_images, sources=sources, seed=seed))
        out[name] = TestSetRun(name, ds, synthetic_manifest(ds, n_seeds=n_seeds))
    return out


def evaluate_models(
    models: Sequence[str],
    sets: Mapping[str, TestSetRun],
    *,
    model_seed: int = 0,
    train_steps: int | None = None,
    n_train_images: int | None = None,
    store: MapStore | str | Path | None = None,
    progress: bool = False,
) -> dict[str, dict[str, StoredResult]]:
    """Every model on every set through the map store: ``results[set][model]``.

    Trained demo models are built with :func:`~vssl_helpers.embedded.train_overrides` of
    ``train_steps``/``n_train_images`` (loaded from the training cache when present). The threshold of
    a model on every set other than :data:`THRESHOLD_SET` is the one computed on :data:`THRESHOLD_SET`
    (which must then be among ``sets``).
    """
    from ..models import create_model
    from ..models.demo import TRAINED_DEMOS

    store = default_store() if store is None else store
    overrides = train_overrides(train_steps, n_train_images)
    order = sorted(sets, key=lambda k: k != THRESHOLD_SET)
    if len(sets) > 1 and THRESHOLD_SET not in sets:
        raise ValueError(f"sets: the threshold set {THRESHOLD_SET!r} is missing (got {sorted(sets)})")
    results: dict[str, dict[str, StoredResult]] = {k: {} for k in order}
    for name in models:
        kw: dict[str, Any] = dict(seed=model_seed, progress=progress, **overrides) if name in TRAINED_DEMOS else {"seed": model_seed}
        model = create_model(name, **kw)
        for key in order:
            run = sets[key]
            thr = None if key == THRESHOLD_SET or not results.get(THRESHOLD_SET) else results[THRESHOLD_SET][name].threshold
            results[key][name] = _evaluate_cached(model, run, store, thr, progress)
    return {k: results[k] for k in sets}


def _evaluate_cached(model: Any, run: TestSetRun, store: MapStore, threshold: Any, progress: bool) -> StoredResult:
    """:func:`evaluate_stored`, plus a cache of its metrics beside the stored maps.

    Reading finished maps back is fast; recomputing every metric (IoUs at 224 × 224 for every map of
    every seed) is not. The pooled and per-seed rows are saved in the run directory under a name
    that holds the threshold, and reused when the maps are complete.
    """
    import hashlib
    import json

    import numpy as np
    import torch

    from ..engine import StoredResult, load_stored_maps, maxima_by_type, resolve_threshold, store_key
    from ..store import atomic_write

    cfg = model.config
    ds, manifest = run.dataset, run.manifest
    key = store_key(model, manifest, data=f"synthetic:{ds.cache_key(cfg.preprocessing.image_size)}")
    srun = store.run(key, manifest.ids, manifest.n_seeds, 512)
    if not srun.pending():
        maps = load_stored_maps(srun, manifest.offscreen.T, cfg.name)
        maxima = maxima_by_type(maps)
        thr = resolve_threshold(cfg.threshold_rule, maxima, threshold)
        tag = hashlib.sha256(repr(float(thr.value)).encode()).hexdigest()[:12]
        cached = srun.path / f"summary-{tag}.json"
        if cached.is_file():
            saved = json.loads(cached.read_text())
            arr = ds.arrays(image_size=cfg.preprocessing.image_size, progress=progress)
            index = {str(x): j for j, x in enumerate(arr["ids"])}
            gt = torch.from_numpy(np.ascontiguousarray(arr["masks"][[index[i] for i in manifest.ids]]))
            prov = {"manifest": manifest.name, "manifest_sha256": manifest.sha256, "n_seeds": manifest.n_seeds,
                    "store_run": str(srun.path), "summary_cache": str(cached)}
            return StoredResult(cfg.name, maps, gt, thr, saved["row"], saved["per_seed"], maxima, prov, {})
    result = evaluate_stored(model, ds, manifest, store, threshold=threshold, progress=progress)
    tag = hashlib.sha256(repr(float(result.threshold.value)).encode()).hexdigest()[:12]
    text = json.dumps({"threshold": float(result.threshold.value), "row": result.row, "per_seed": result.per_seed})
    atomic_write(srun.path / f"summary-{tag}.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return result


def prepare(
    n_test_images: int = 500,
    n_seeds: int = 10,
    train_steps: int | None = None,
    n_train_images: int | None = None,
    model_seed: int = 0,
    models: Sequence[str] = DEMO_MODELS,
    model: str | None = None,
    **_: Any,
) -> None:
    """Pipeline hook: train (or load) the demo models and fill the map store for both sets, with
    progress bars on the console, so that the chapter only reads stored maps."""
    from ..embedded import prepare as train_models

    train_models(n_test_images=n_test_images, train_steps=train_steps, n_train_images=n_train_images, model_seed=model_seed)
    wanted = list(models) if model is None else [model]
    evaluate_models(wanted, demo_test_sets(n_test_images, n_seeds), model_seed=model_seed,
                    train_steps=train_steps, n_train_images=n_train_images, progress=True)


def sample_maps(result: StoredResult, row: int, seed_index: int = 0) -> dict[str, Any]:
    """The four native maps of manifest row ``row``: positive, silence, and the noise and off-screen
    maps of seed ``seed_index`` (``h × w`` tensors, in the model's own units)."""
    m = result.maps
    return {
        "positive": m.positive[row],
        "silence": m.silence[row],
        "noise": m.noise[seed_index, row],
        "offscreen": m.offscreen[seed_index, row],
    }


def negative_audio(run: TestSetRun, row: int, seed_index: int = 0) -> dict[str, Any]:
    """The four waveforms paired with manifest row ``row`` at seed ``seed_index``: its own clip,
    silence, its noise clip and the off-screen clip the manifest drew (another test clip), all at the
    set's sample rate and length. Keys: ``positive``, ``silence``, ``noise``, ``offscreen:<category>``."""
    import numpy as np

    from ..negatives import silence_waveform

    ds, manifest = run.dataset, run.manifest
    sid = manifest.ids[row]
    own = np.asarray(ds[ds.ids.index(sid)].audio, dtype=np.float32)
    clip = manifest.offscreen_clip(sid, seed_index)
    off = np.asarray(ds[ds.ids.index(clip.id)].audio, dtype=np.float32)
    n = own.shape[-1]
    return {
        "positive": own,
        "silence": silence_waveform(n),
        "noise": manifest.noise(sid, seed_index, n),
        f"offscreen:{clip.category}": off[:n],
    }


def image_rows(run: TestSetRun, image_index: int) -> list[int]:
    """Manifest rows of the samples of one image (one row for the VGG-SS-like set, one per sounding
    source for the IS3-like set), in source order."""
    k = run.dataset.config.sources
    return [run.manifest.index(sid) for sid in run.dataset.ids[image_index * k : (image_index + 1) * k]]
