"""The measured effect of each reference-code compatibility switch (:mod:`vssl_helpers.compat`) on
every Table I column of the embedded benchmark: the logic behind the book's compatibility chapter.

Each demo model is scored on a few samples of the VGG-SS-like set of the result chapters once per
switch, once with the reference preset and once with every switch: a metric-only switch rescores the
maps the embedded chapter already stored (read back from the map store), an audio switch recomputes
only the silence and noise maps its lineage's loader would have given. The threshold of every
variant is the model's own rule on that variant's maps, as the paper code derived its thresholds
from its own negatives (audit T1): audio switches can move it. (The command line and the book
configuration run full evaluations in compatibility mode through the engine instead.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..compat import REFERENCE_PRESET, SWITCHES, Compat
from ..defaults import DEFAULTS
from ..embedded import synthetic_manifest, train_overrides
from ..engine import ExtendedMaps, evaluate, maxima_by_type, resolve_threshold, summarize_extended
from ..testsets.synthetic import SyntheticConfig, SyntheticSet

__all__ = ["TABLE_COLUMNS", "EFFECT_MODELS", "compat_variants", "subset_maps", "compat_effects", "effect_table",
           "switches_frame", "lineages_frame"]

TABLE_COLUMNS: dict[str, str] = {
    "ciou_uth": "cIoU U.th.", "auc_uth": "AUC U.th.", "ciou_adap": "cIoU Adap.", "auc_adap": "AUC Adap.",
    "pia_silence": "pIA sil.", "pia_noise": "pIA noise", "pia_offscreen": "pIA off.",
    "auc_n_silence": "AUC_N sil.", "auc_n_noise": "AUC_N noise", "auc_n_offscreen": "AUC_N off.",
    "f_loc": "F_LOC", "f_auc": "F_AUC",
}
"""Table I's columns (results-row key -> header), in the paper's order."""

EFFECT_MODELS: tuple[str, ...] = DEFAULTS.compat_models
"""The demo models of the chapter: one per audio lineage of the paper code (EZ-VSL and LVS)."""


def compat_variants() -> list[tuple[str, tuple[str, ...]]]:
    """``(label, switches)`` of every variant: the default, each switch alone, the reference preset,
    and every switch together (the preset plus ``geq_binarize``)."""
    return [("default", ()), *((n, (n,)) for n in SWITCHES), ("reference preset", tuple(REFERENCE_PRESET)),
            ("all switches", tuple(SWITCHES))]


def subset_maps(maps: ExtendedMaps, n_rows: int, n_seeds: int) -> ExtendedMaps:
    """The first ``n_rows`` samples and ``n_seeds`` seeds of stored maps (manifest order)."""
    return ExtendedMaps(
        positive=maps.positive[:n_rows], silence=maps.silence[:n_rows], noise=maps.noise[:n_seeds, :n_rows],
        offscreen=maps.offscreen[:n_seeds, :n_rows], offscreen_index=np.asarray(maps.offscreen_index)[:n_seeds, :n_rows],
        meta=dict(maps.meta),
    )


def compat_effects(
    models: Sequence[str] = EFFECT_MODELS,
    n_test_images: int = DEFAULTS.book_images,
    n_seeds: int = DEFAULTS.n_seeds,
    *,
    effect_images: int = 48,
    effect_seeds: int = 2,
    model_seed: int = DEFAULTS.model_seed,
    train_steps: int | None = None,
    n_train_images: int | None = None,
    store: Any = None,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per (model, variant) of :func:`compat_variants`, on the first ``effect_images``
    samples and ``effect_seeds`` seeds of the VGG-SS-like set of ``n_test_images`` images and
    ``n_seeds`` seeds (the result chapters' set and manifest).

    The default maps are the embedded chapter's stored maps (read through the map store, computed
    only if missing), cut to that subset; metric switches rescore them. Audio switches change only
    the silence and noise maps, which are recomputed for the subset
    (:func:`vssl_helpers.compat.negative_maps`, the same noise draws); positives and off-screen maps
    are the stored ones. Every variant's threshold is the model's rule on its own (subset) maps.

    Columns: ``model``, ``variant``, ``kind`` (metric / audio / several), ``applies`` (whether any
    of the variant's switches changes anything for the model's lineage), ``lineage``,
    ``maps_reused`` (the variant scores the stored maps), ``threshold``, ``n_samples``, then every
    :data:`TABLE_COLUMNS` value (percent) and ``d_<column>``, its difference from the default row
    (percentage points). Values come from the run, nothing is written by hand.
    """
    from ..compat import negative_maps
    from ..inputs import build_model
    from .runs import default_store

    ds = SyntheticSet(SyntheticConfig(split="test", n_images=n_test_images, sources=1, seed=0))
    manifest = synthetic_manifest(ds, n_seeds=n_seeds)
    from ..store import MapStore

    store = default_store() if store is None else (store if isinstance(store, MapStore) else MapStore(store))
    overrides = train_overrides(train_steps, n_train_images)
    k = min(int(effect_images), len(manifest))
    s_count = min(int(effect_seeds), manifest.n_seeds)
    rows: list[dict[str, Any]] = []
    for name in models:
        model, weights = build_model(name, model_seed=model_seed, progress=progress, train_overrides=overrides)
        cfg = model.config
        stored = evaluate(model, ds, manifest, store, weights=weights, progress=progress)  # the embedded chapter's maps
        base_maps = subset_maps(stored.maps, k, s_count)
        gt = stored.gt[:k]
        arr = ds.arrays(image_size=cfg.preprocessing.image_size)
        position = {str(x): j for j, x in enumerate(arr["ids"])}
        order = np.array([position[sid] for sid in manifest.ids[:k]])
        images = torch.from_numpy(arr["images"][order]).permute(0, 3, 1, 2).float() / 255.0
        n_audio = int(round(cfg.preprocessing.sample_rate * cfg.preprocessing.audio_seconds))
        by_audio: dict[str, ExtendedMaps] = {"": base_maps}
        base_row: dict[str, float] | None = None
        for label, switches in compat_variants():
            cmp = Compat.create(switches, name, ds)
            audio = cmp.audio_key()
            if audio not in by_audio:
                sil, noise = negative_maps(model, images, manifest.noise_seeds[:k, :s_count], n_audio, cmp, gt=gt)
                by_audio[audio] = ExtendedMaps(positive=base_maps.positive, silence=sil, noise=noise,
                                               offscreen=base_maps.offscreen, offscreen_index=base_maps.offscreen_index)
            maps = by_audio[audio]
            thr = resolve_threshold(cfg.threshold_rule, maxima_by_type(maps), None)
            row, _ = summarize_extended(maps, gt, thr, compat=cmp)
            if base_row is None:
                base_row = row
            kinds = {SWITCHES[x].kind for x in switches}
            out: dict[str, Any] = {
                "model": name, "variant": label,
                "kind": "-" if not kinds else (kinds.pop() if len(kinds) == 1 else "several"),
                "applies": bool(cmp.effective) or not switches, "lineage": cmp.lineage,
                "maps_reused": audio == "", "threshold": float(thr.value), "n_samples": k * s_count,
            }
            for key in TABLE_COLUMNS:
                out[key] = float(row[key])
                out[f"d_{key}"] = out[key] - float(base_row[key])
            rows.append(out)
    return pd.DataFrame(rows)


def effect_table(effects: pd.DataFrame, model: str, deltas: bool = True) -> pd.DataFrame:
    """The chapter's table for one model: one row per variant, Table I headers; ``deltas``: the
    differences from the default row (percentage points; the default row shows its values)."""
    sub = effects[effects["model"] == model].set_index("variant")
    cols = list(TABLE_COLUMNS)
    if deltas:
        table = sub[[f"d_{c}" for c in cols]].copy()
        table.columns = [TABLE_COLUMNS[c] for c in cols]
        table.loc["default"] = sub.loc["default", cols].to_numpy()
    else:
        table = sub[cols].rename(columns=TABLE_COLUMNS)
    table.insert(0, "U.th.", sub["threshold"].round(4))
    table.insert(0, "applies", sub["applies"])
    return table


def switches_frame() -> pd.DataFrame:
    """Every switch: kind, audit item, what the paper code does, whether ``--compat`` turns it on."""
    return pd.DataFrame(
        [{"switch": s.name, "kind": s.kind, "audit": s.audit, "paper code": s.summary, "in --compat": s.reference}
         for s in SWITCHES.values()]
    ).set_index("switch")


def lineages_frame(models: Sequence[str] | None = None) -> pd.DataFrame:
    """The lineage of every registered model (or of ``models``): the paper code's loader and evaluator
    it follows, and where its switches apply (from :data:`vssl_helpers.compat.MODEL_LINEAGE`)."""
    from ..compat import LINEAGES, MODEL_LINEAGE

    rows = []
    for name in (list(MODEL_LINEAGE) if models is None else list(models)):
        lin = LINEAGES.get(MODEL_LINEAGE.get(name) or "")
        rows.append({
            "model": name, "lineage": lin.name if lin else "none",
            "loader": lin.loader if lin else "-", "evaluator": lin.evaluator if lin else "-",
            "negatives not logged": bool(lin and lin.unlogged_negatives),
            "align-corners positives on": ", ".join(lin.align_corners_sets) if lin and lin.align_corners_sets else "-",
        })
    return pd.DataFrame(rows).set_index("model")
