"""The embedded default: synthetic test sets and their negatives manifests.

This is the glue the book and the benchmarks call when no real data is configured: it builds the
synthetic test set and draws its extended negatives with the same manifest machinery as the real
sets (:mod:`vssl_helpers.negatives`). Models are evaluated on it like on any other set, with
:func:`vssl_helpers.engine.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .defaults import DEFAULTS
from .models.demo import DEMO_PREPROCESSING
from .negatives import Manifest, NegativeItem, build_manifest
from .testsets.synthetic import SyntheticConfig, SyntheticSet

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


def synthetic_manifest(ds: SyntheticSet, n_seeds: int = DEFAULTS.n_seeds, manifest_seed: int = DEFAULTS.manifest_seed) -> Manifest:
    """The extended negatives of a synthetic set (off-screen clips drawn from the set itself, from a
    category absent from every object of the image).

    Drawing needs every sample's categories, read from the set's arrays at the demo models' image
    size (generated once and cached; the engine reads the same arrays), and the manifest is cached
    beside them, keyed by the set's
    config, the generator version, the seeds and the source of :mod:`vssl_helpers.negatives` (the
    draw code). A cached file is read with its content hash and every draw validated; one that fails
    is drawn again.
    """
    import hashlib

    from . import negatives
    from .negatives import ManifestError, load_manifest
    from .testsets.synthetic import GENERATOR_VERSION, default_cache_dir

    name = f"synthetic-{ds.config.split}-s{ds.config.sources}-seed{ds.config.seed}-n{ds.config.n_images}"
    h = hashlib.sha256(repr((ds.config, GENERATOR_VERSION, n_seeds, manifest_seed)).encode())
    h.update(Path(negatives.__file__).read_bytes())
    path = default_cache_dir() / "manifests" / f"{name}-{h.hexdigest()[:16]}.txt"
    if path.is_file():
        try:
            return load_manifest(path)
        except ManifestError:  # corrupted or edited: draw again
            pass
    manifest = build_manifest(_items_from_arrays(ds), None, name=name, n_seeds=n_seeds, manifest_seed=manifest_seed)
    atomic_write(path, lambda tmp: tmp.write_text(manifest.dumps(), encoding="utf-8"))
    return manifest


def _items_from_arrays(ds: SyntheticSet) -> list[NegativeItem]:
    """What :func:`~vssl_helpers.negatives.items_from_samples` reads from each sample of ``ds``
    (categories sounding and visible, own audio category, image, duration), read from the set's
    cached arrays instead: the first run generates every scene and clip once (for the arrays the
    engine reads too), not a second time for the manifest. Same items, same manifest (tested)."""
    from .categories import category_order
    from .progress import in_notebook
    from .testsets.synthetic import BROAD_CATEGORIES

    arr = ds.arrays(image_size=DEMO_PREPROCESSING.image_size, progress=not in_notebook())
    n, t = arr["audio"].shape
    duration = float(t / ds.config.sample_rate)
    items = []
    for i in range(n):
        sid = str(arr["ids"][i])
        own = BROAD_CATEGORIES[int(arr["category"][i])]
        visible = {BROAD_CATEGORIES[k] for k in np.flatnonzero(arr["visible_categories"][i])}
        image = f"image-{int(arr['image_index'][i])}"
        items.append(NegativeItem(id=sid, exclude=category_order({own} | visible), audio_category=own,
                                  image_id=None if image == sid else image, duration=duration))
    return items


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
