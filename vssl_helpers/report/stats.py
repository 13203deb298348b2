"""Statistics of the extended test sets, as in the paper's §II: sizes, hours, category distributions.

Everything here is computed from a negatives manifest (:class:`vssl_helpers.negatives.Manifest`),
which holds each sample's id, image id, own audio category and duration, and the offscreen draws. So
the statistics of the real test sets come from the shipped metadata alone (no media), and those of a
synthetic set from its samples (pass the samples; a manifest is drawn for them).

**Hours.** The paper's hours follow from 3 s of audio per pair (VGG-SS: 5,537 × 3 s = 4.61 h; IS3:
6,484 × 3 s = 5.40 h; negatives 3 × that), i.e. the window most models see, counted for *one* seed.
:func:`extended_set_summary` reports that convention (``clip_seconds``, default 3) per seed and over
all seeds, and, when the manifest knows the clip durations (from a media check or in-memory audio),
the hours of source audio as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Union

import numpy as np
import pandas as pd

from ..categories import BROAD_CATEGORIES
from ..negatives import Manifest, manifest_for_samples

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..testsets.base import Sample

__all__ = [
    "PAPER_SECTION_II",
    "DEFAULT_CLIP_SECONDS",
    "as_manifest",
    "extended_set_summary",
    "category_distribution",
    "compare_with_paper",
    "statistics_tables",
    "plot_category_distribution",
]

DEFAULT_CLIP_SECONDS = 3.0
"""Seconds of audio counted per pair (the convention behind the paper's hours)."""

PAPER_SECTION_II: dict[str, dict[str, float]] = {
    "vggss": {"images": 5537, "audios": 5537, "positive_hours": 4.61, "negative_hours": 13.84},
    "is3": {"images": 3242, "audios": 6484, "positive_hours": 5.40, "negative_hours": 16.21},
}
"""The sizes the paper states in §II (its VGG-SS count, 5,537, is not the 5,158 of the public file)."""

ManifestLike = Union[Manifest, "Sequence[Sample]"]


def as_manifest(source: ManifestLike, name: str = "", **kwargs) -> Manifest:
    """A manifest as is, or one drawn for a sequence of samples (``kwargs`` go to ``build_manifest``)."""
    if isinstance(source, Manifest):
        return source
    return manifest_for_samples(list(source), name=name, **kwargs)


def extended_set_summary(source: ManifestLike, *, clip_seconds: float = DEFAULT_CLIP_SECONDS, name: str = "") -> pd.DataFrame:
    """Images, audios, pairs and hours per audio type of an extended test set.

    Rows: ``positive``, ``silence``, ``noise``, ``offscreen`` and ``negatives`` (the three together).
    Columns:

    * ``images``: distinct images (IS3: two entries share an image);
    * ``distinct_audios``: distinct waveforms over all seeds (silence: 1; noise: one per item and seed;
      offscreen: distinct pool clips drawn);
    * ``pairs_per_seed`` / ``pairs_all_seeds``: image-audio pairs evaluated (positives once);
    * ``hours_per_seed`` / ``hours_all_seeds``: pairs × ``clip_seconds``;
    * ``source_hours``: hours of the positive source clips (positive row) and of the drawn offscreen
      clips over all seeds (offscreen row), when every duration is known; NaN otherwise.
    """
    m = as_manifest(source, name)
    n, s = len(m.items), m.n_seeds
    images = len({it.image_id or it.id for it in m.items})
    h = clip_seconds / 3600.0
    durs = [it.duration for it in m.items]
    pos_src = float(np.sum(durs)) / 3600.0 if durs and all(d is not None for d in durs) else np.nan
    pool_d = [c.duration for c in m.pool]
    if pool_d and all(d is not None for d in pool_d):
        off_src = float(np.asarray(pool_d, dtype=np.float64)[m.offscreen].sum()) / 3600.0
    else:
        off_src = np.nan
    distinct_off = int(len(np.unique(m.offscreen)))
    rows = {
        "positive": (images, n, n, n, pos_src),
        "silence": (images, 1, n, n * s, np.nan),
        "noise": (images, n * s, n, n * s, np.nan),
        "offscreen": (images, distinct_off, n, n * s, off_src),
    }
    neg = (images, 1 + n * s + distinct_off, 3 * n, 3 * n * s, np.nan)
    rows["negatives"] = neg
    df = pd.DataFrame.from_dict(
        rows, orient="index", columns=["images", "distinct_audios", "pairs_per_seed", "pairs_all_seeds", "source_hours"]
    )
    df["hours_per_seed"] = df["pairs_per_seed"] * h
    df["hours_all_seeds"] = df["pairs_all_seeds"] * h
    df.index.name = "audio"
    df = df[["images", "distinct_audios", "pairs_per_seed", "pairs_all_seeds", "hours_per_seed", "hours_all_seeds", "source_hours"]]
    df.attrs.update(name=m.name or name, n_seeds=s, clip_seconds=clip_seconds, manifest_sha256=m.sha256)
    return df


def category_distribution(source: ManifestLike, name: str = "") -> pd.DataFrame:
    """Broad-category distribution of positives, of the offscreen pool and of the offscreen draws.

    Index: the 8 broad categories (paper order). Columns: ``positives`` (items by the category of their
    own audio; IS3: per sounding object), ``pool`` (offscreen candidates), ``offscreen`` (draws over
    all seeds), each with a ``*_pct`` share in percent.
    """
    m = as_manifest(source, name)
    pos = pd.Series([it.audio_category for it in m.items if it.audio_category is not None], dtype=object)
    pool_cats = np.array([c.category for c in m.pool], dtype=object)
    drawn = pd.Series(pool_cats[m.offscreen.reshape(-1)], dtype=object)
    df = pd.DataFrame(
        {
            "positives": pos.value_counts().reindex(BROAD_CATEGORIES, fill_value=0),
            "pool": pd.Series(pool_cats).value_counts().reindex(BROAD_CATEGORIES, fill_value=0),
            "offscreen": drawn.value_counts().reindex(BROAD_CATEGORIES, fill_value=0),
        }
    ).astype(int)
    for c in ("positives", "pool", "offscreen"):
        total = df[c].sum()
        df[f"{c}_pct"] = 100.0 * df[c] / total if total else 0.0
    df.index.name = "category"
    df = df[["positives", "positives_pct", "pool", "pool_pct", "offscreen", "offscreen_pct"]]
    df.attrs.update(name=m.name or name, manifest_sha256=m.sha256)
    return df


def compare_with_paper(manifests: Mapping[str, Manifest], *, clip_seconds: float = DEFAULT_CLIP_SECONDS) -> pd.DataFrame:
    """This companion's sizes next to the paper's §II numbers, for the sets the paper reports."""
    rows = []
    for key, m in manifests.items():
        ref = PAPER_SECTION_II.get(key)
        if ref is None:
            continue
        summ = extended_set_summary(m, clip_seconds=clip_seconds)
        ours = {
            "images": summ.loc["positive", "images"],
            "audios": summ.loc["positive", "pairs_per_seed"],
            "positive_hours": round(summ.loc["positive", "hours_per_seed"], 2),
            "negative_hours": round(summ.loc["negatives", "hours_per_seed"], 2),
        }
        for q, v in ours.items():
            rows.append({"test_set": key, "quantity": q, "paper": ref[q], "companion": v})
    return pd.DataFrame(rows).set_index(["test_set", "quantity"])


def statistics_tables(
    sources: Mapping[str, ManifestLike], *, clip_seconds: float = DEFAULT_CLIP_SECONDS
) -> dict[str, pd.DataFrame]:
    """Summary and category tables for several test sets (manifests or sample lists), keyed by name.

    Returns ``{"summary": ..., "categories": ...}`` with a first index level naming the test set.
    """
    ms = {k: as_manifest(v, k) for k, v in sources.items()}
    summary = pd.concat({k: extended_set_summary(m, clip_seconds=clip_seconds) for k, m in ms.items()}, names=["test_set"])
    cats = pd.concat({k: category_distribution(m) for k, m in ms.items()}, names=["test_set"])
    return {"summary": summary, "categories": cats}


def plot_category_distribution(sources: Mapping[str, ManifestLike]) -> "Figure":
    """One panel per test set: share (%) of each broad category among positives and offscreen draws."""
    import matplotlib.pyplot as plt

    ms = {k: as_manifest(v, k) for k, v in sources.items()}
    fig, axes = plt.subplots(1, len(ms), figsize=(4.2 * len(ms), 3.6), sharey=True, constrained_layout=True, squeeze=False)
    y = np.arange(len(BROAD_CATEGORIES))
    for ax, (key, m) in zip(axes[0], ms.items()):
        d = category_distribution(m)
        ax.barh(y - 0.2, d["positives_pct"], height=0.4, color="#1f77b4", label="positive audio")
        ax.barh(y + 0.2, d["offscreen_pct"], height=0.4, color="#ff7f0e", label=f"offscreen ({m.n_seeds} seeds)")
        ax.set_title(f"{key} ({len(m.items):,} samples)", fontsize=10)
        ax.set_xlabel("share of audios (%)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, BROAD_CATEGORIES)
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(loc="lower right", fontsize=8)
    return fig
