"""Beyond the paper: how robust are Table I's conclusions?

Three analyses of the book part "Beyond the paper", each a function of evaluation results
(:class:`~vssl_helpers.engine.EvalResult`), maps or per-sample values, never of files:

1. **Threshold-free audio sensitivity** (:func:`audio_sensitivity`, :func:`roc_curve`): the AUROC of
   the per-sample map maximum, positive audio against each negative type. It asks whether a model can
   tell that nothing sounds *at any threshold*:

   .. math:: \\mathrm{AUROC} = P(s^+ > s^-) + \\tfrac12 P(s^+ = s^-)

2. **Uncertainty** (:func:`sample_values`, :func:`bootstrap_table`, :func:`per_seed_spread`): every
   Table I cell is a smooth function of per-sample means (IoU, success indicators on the 21-point
   grid, pIA averaged over the seeds of a sample, pIA success fractions over seeds), so a bootstrap
   over *samples* (each sample keeps the negatives its seeds drew) gives a confidence interval for
   every cell, and the same resamples for all models give paired intervals of the differences
   between models. :func:`scipy.stats.bootstrap` does the resampling (BCa intervals).
   The universal threshold is held fixed (the intervals are conditional on it).
3. **Threshold sensitivity** (:func:`threshold_curve`, :func:`quantile_thresholds`,
   :func:`quantile_sensitivity`, :func:`ranking_changes`): every metric as a function of the
   threshold and of the quantile of the universal-threshold rule (median, Q3, 90th percentile, max),
   and whether the ranking of the models changes.

Each analysis has a ``*_sentence`` function that writes the chapter's "What this shows" paragraph
from the numbers (no hand-written conclusion that could go stale).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from .. import metrics as M
from ..threshold import NEGATIVE_TYPES, universal_threshold
from .tables import LOWER_IS_BETTER, TABLE1_COLUMNS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..engine import EvalResult, ExtendedMaps

__all__ = [
    "CELLS",
    "QUANTILE_RULES",
    "THRESHOLD_CELLS",
    "SampleValues",
    "audio_sensitivity",
    "bootstrap_table",
    "cells_from_means",
    "per_seed_spread",
    "plot_roc",
    "plot_threshold_curves",
    "interval_table",
    "quantile_curve",
    "quantile_sensitivity",
    "quantile_thresholds",
    "ranking_changes",
    "roc_curve",
    "sample_features",
    "sample_values",
    "sensitivity_sentence",
    "significance_summary",
    "table1_cells",
    "threshold_curve",
    "threshold_sentence",
    "uncertainty_sentence",
]

CELLS: tuple[str, ...] = TABLE1_COLUMNS
"""The Table I cells every analysis reports (percent), in the paper's order."""

THRESHOLD_CELLS: tuple[str, ...] = tuple(c for c in CELLS if not c.endswith("_adap"))
"""The cells that depend on the threshold (the adaptive columns use the top-M pixels instead)."""

QUANTILE_RULES: dict[str, float] = {"median": 0.5, "Q3": 0.75, "P90": 0.9, "max": 1.0}
"""Quantiles of the universal-threshold rule compared in the threshold-sensitivity chapter (the
paper's is Q3; ``max`` puts the threshold above every negative maximum of the decisive type)."""

_TAU = M.TAU_GRID.double().cpu().numpy()


# ==================================================================================================
# 1. Threshold-free audio sensitivity


def _finite_1d(values: Any, name: str) -> np.ndarray:
    v = np.asarray(torch.as_tensor(values).double().cpu().flatten()) if isinstance(values, torch.Tensor) else np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError(f"{name}: no values")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return v


def roc_curve(positive: Any, negative: Any) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve of a score meant to be higher for positives: ``(fpr, tpr)`` from (0, 0) to (1, 1).

    One point per distinct score value ``t`` (descending), with the rule "positive when score >= t":
    :math:`\\mathrm{tpr}(t) = \\#\\{s^+ \\ge t\\}/n^+`, :math:`\\mathrm{fpr}(t) = \\#\\{s^- \\ge t\\}/n^-`.
    A tie between a positive and a negative is one diagonal segment, so the trapezoid area under the
    curve equals :func:`vssl_helpers.metrics.auroc` (ties count one half).
    """
    pos = _finite_1d(positive, "positive")
    neg = _finite_1d(negative, "negative")
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    pos_sorted, neg_sorted = np.sort(pos), np.sort(neg)
    # number of scores >= t: n - (number < t)
    tpr = (pos.size - np.searchsorted(pos_sorted, thresholds, side="left")) / pos.size
    fpr = (neg.size - np.searchsorted(neg_sorted, thresholds, side="left")) / neg.size
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def audio_sensitivity(results: Mapping[str, "EvalResult"]) -> pd.DataFrame:
    """AUROC of the per-sample raw-map maximum, positive vs each negative type (pooled over seeds),
    for each model of ``results`` (``{model: EvalResult}`` on one test set).

    Rows: models; columns: :data:`~vssl_helpers.threshold.NEGATIVE_TYPES` and ``mean``. 1: every
    positive map peaks above every negative one; 0.5: the peak carries no information about the audio;
    below 0.5: negatives peak *higher* than the positives.
    """
    if not results:
        raise ValueError("results: no model given")
    rows = {}
    for model, r in results.items():
        row = {k: M.auroc(r.maxima["positive"], r.maxima[k]) for k in NEGATIVE_TYPES}
        row["mean"] = float(np.mean([row[k] for k in NEGATIVE_TYPES]))
        rows[model] = row
    return pd.DataFrame(rows).T[[*NEGATIVE_TYPES, "mean"]]


def plot_roc(results: Mapping[str, "EvalResult"], title: str = "") -> "Figure":
    """One panel per negative type: each model's ROC curve of the per-sample map maximum (positive vs
    that negative), with its AUROC in the legend; the diagonal is chance."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(NEGATIVE_TYPES), figsize=(3.3 * len(NEGATIVE_TYPES), 3.4),
                             constrained_layout=True, sharey=True)
    for ax, kind in zip(np.atleast_1d(axes), NEGATIVE_TYPES):
        for model, r in results.items():
            fpr, tpr = roc_curve(r.maxima["positive"], r.maxima[kind])
            ax.plot(fpr, tpr, linewidth=1.4, label=f"{model} ({M.auroc(r.maxima['positive'], r.maxima[kind]):.2f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"positive vs {kind}", fontsize=10)
        ax.set_xlabel("false positive rate")
        ax.set_aspect("equal")
        ax.legend(fontsize=6.5, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("true positive rate")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _models_list(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def sensitivity_sentence(table: pd.DataFrame, separates: float = 0.9, chance: float = 0.6) -> str:
    """The "What this shows" paragraph of the audio-sensitivity chapter, from an
    :func:`audio_sensitivity` table: which models separate positives from every negative type
    (AUROC >= ``separates``), which are near or below chance (AUROC < ``chance``) on some type, and the
    hardest negative type (lowest mean AUROC over models)."""
    if table.empty:
        raise ValueError("table: no model")
    types = [k for k in NEGATIVE_TYPES if k in table.columns]
    worst = table[types].min(axis=1)
    good = [m for m in table.index if worst[m] >= separates]
    blind = [m for m in table.index if worst[m] < chance]
    hardest = table[types].mean(axis=0).idxmin()
    lo_model, lo_type = table[types].stack().idxmin()
    parts = []
    if good:
        parts.append(f"{_models_list(good)} {'separates' if len(good) == 1 else 'separate'} positive from negative audio "
                     f"at some threshold (AUROC ≥ {separates:.2f} on every negative type)")
    else:
        parts.append(f"no model reaches an AUROC of {separates:.2f} on every negative type")
    if blind:
        parts.append(f"{_models_list(blind)} {'is' if len(blind) == 1 else 'are'} near or below chance on at least "
                     f"one type (AUROC < {chance:.2f}): no threshold can make {'it' if len(blind) == 1 else 'them'} "
                     "tell that nothing, or something else, sounds")
    text = "; ".join(parts) + ". "
    text += (f"The hardest negative type is {hardest} (mean AUROC {table[hardest].mean():.2f} over the models); the "
             f"lowest value is {table.loc[lo_model, lo_type]:.2f} ({lo_model}, {lo_type}).")
    return text


# ==================================================================================================
# 2. Uncertainty: per-sample values, bootstrap over samples, per-seed spread


@dataclass(frozen=True)
class SampleValues:
    """The per-sample values behind every Table I cell of one model on one set, at one threshold.

    Attributes:
        iou: ``N`` IoUs at the threshold (NaN: sample excluded, empty GT).
        iou_adap: ``N`` IoUs of the adaptive (top-M) maps.
        pia: ``{negative type: S × N}`` pIA of each seed's negative (silence repeated over seeds).
        threshold: the threshold they were computed at.
    """

    iou: np.ndarray
    iou_adap: np.ndarray
    pia: Mapping[str, np.ndarray]
    threshold: float

    def __len__(self) -> int:
        return int(self.iou.shape[0])


def sample_values(maps: "ExtendedMaps", gt: "torch.Tensor | M.PreparedGt", threshold: float,
                  empty_gt: M.EmptyGtRule = "exclude", seeds: int | None = None,
                  iou_adap: np.ndarray | None = None) -> SampleValues:
    """Per-sample IoUs and per-seed pIAs of ``maps`` at ``threshold`` (default scoring, no
    compatibility switches); ``seeds``: only the first ``seeds`` seeds of noise and off-screen
    (``None``: all, as Table I). For many thresholds on the same maps (the curves below), pass ``gt``
    prepared once (:func:`vssl_helpers.metrics.prepare_gt`) and ``iou_adap`` from a first call: the
    adaptive IoUs do not depend on the threshold."""
    t = float(threshold)
    s_all, n = maps.noise.shape[:2]
    s = s_all if seeds is None else max(1, min(int(seeds), s_all))
    gt_rows = gt if isinstance(gt, M.PreparedGt) else M.prepare_gt(gt)
    iou = M.ciou(maps.positive, gt_rows, t, empty_gt).double().cpu().numpy()
    if iou_adap is None:
        iou_adap = M.ciou_adaptive(maps.positive, gt_rows, empty_gt).double().cpu().numpy()
    elif np.shape(iou_adap) != (n,):
        raise ValueError(f"iou_adap: expected {n} values (one per sample), got shape {np.shape(iou_adap)}")
    sil = M.pia(maps.silence, t).double().cpu().numpy()
    pia = {"silence": np.broadcast_to(sil, (s, n)).copy()}
    for kind, m in (("noise", maps.noise[:s]), ("offscreen", maps.offscreen[:s])):
        pia[kind] = M.pia(m.reshape(-1, *m.shape[2:]), t).double().cpu().numpy().reshape(s, n)
    return SampleValues(iou=iou, iou_adap=iou_adap, pia=pia, threshold=t)


# feature layout of sample_features (per sample): valid, iou, valid_adap, adap>=0.5, iou>=tau (21),
# adap>=tau (21), then per negative type: mean pIA over seeds, fraction of seeds with pIA <= tau (21)
_K = _TAU.size
_F_VALID, _F_IOU, _F_VALID_ADAP, _F_ADAP = 0, 1, 2, 3
_F_AUC = slice(4, 4 + _K)
_F_AUC_ADAP = slice(4 + _K, 4 + 2 * _K)
_F_NEG0 = 4 + 2 * _K


def _neg_slices(j: int) -> tuple[int, slice]:
    base = _F_NEG0 + j * (1 + _K)
    return base, slice(base + 1, base + 1 + _K)


def sample_features(values: SampleValues) -> np.ndarray:
    """``N × d`` per-sample features whose column means determine every Table I cell
    (:func:`cells_from_means`): the cells are smooth functions of sample means, which is what makes a
    bootstrap over samples (seeds held as drawn) straightforward. Excluded samples (NaN IoU) count in
    no positive column and are left out of the positive denominators (as ``nan="skip"``)."""
    n = len(values)
    d = _F_NEG0 + len(NEGATIVE_TYPES) * (1 + _K)
    x = np.zeros((n, d))
    for v, valid_col, val_col, succ_slice, succ_col in (
        (values.iou, _F_VALID, _F_IOU, _F_AUC, None),
        (values.iou_adap, _F_VALID_ADAP, None, _F_AUC_ADAP, _F_ADAP),
    ):
        ok = np.isfinite(v)
        vz = np.where(ok, v, 0.0)
        x[:, valid_col] = ok
        if val_col is not None:
            x[:, val_col] = vz
        if succ_col is not None:
            x[:, succ_col] = ok & (vz >= 0.5)
        x[:, succ_slice] = ok[:, None] & (vz[:, None] >= _TAU[None, :])
    for j, kind in enumerate(NEGATIVE_TYPES):
        col, sl = _neg_slices(j)
        p = np.asarray(values.pia[kind], dtype=np.float64)  # S × N
        x[:, col] = p.mean(axis=0)
        x[:, sl] = (p[:, :, None] <= _TAU[None, None, :]).mean(axis=0)
    return x


def _trapz(curve: np.ndarray) -> np.ndarray:
    return ((curve[..., 1:] + curve[..., :-1]) * np.diff(_TAU)).sum(axis=-1) / 2


def _harmonic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(a + b == 0, 0.0, 2 * a * b / np.where(a + b == 0, 1.0, a + b))


def cells_from_means(mu: np.ndarray) -> np.ndarray:
    """Every Table I cell (percent, :data:`CELLS` order, last axis) from column means of
    :func:`sample_features` (``... × d``; leading axes are vectorised):

    .. math:: \\mathrm{cIoU} = \\frac{\\overline{v\\,\\mathrm{IoU}}}{\\overline{v}},\\quad
              \\mathrm{AUC} = \\mathrm{trap}_\\tau\\,\\frac{\\overline{v\\,[\\mathrm{IoU}\\ge\\tau]}}{\\overline{v}},\\quad
              \\mathrm{pIA}_k = \\overline{\\mathrm{pIA}_k},\\quad
              \\mathrm{AUC}_{N,k} = \\mathrm{trap}_\\tau\\,\\overline{[\\mathrm{pIA}_k\\le\\tau]}

    (``v``: the sample is not excluded), ``F_LOC = H(cIoU, 1 - mean_k pIA_k)``,
    ``F_AUC = H(AUC, mean_k AUC_N,k)`` with ``H(0, 0) = 0``.
    """
    mu = np.asarray(mu, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        valid, valid_a = mu[..., _F_VALID], mu[..., _F_VALID_ADAP]
        ciou = mu[..., _F_IOU] / valid
        ciou_adap = mu[..., _F_ADAP] / valid_a
        auc = _trapz(mu[..., _F_AUC] / valid[..., None])
        auc_adap = _trapz(mu[..., _F_AUC_ADAP] / valid_a[..., None])
    out = {"ciou_uth": ciou, "ciou_adap": ciou_adap, "auc_uth": auc, "auc_adap": auc_adap}
    pias, aucns = [], []
    for j, kind in enumerate(NEGATIVE_TYPES):
        col, sl = _neg_slices(j)
        pias.append(mu[..., col])
        aucns.append(_trapz(mu[..., sl]))
        out[f"pia_{kind}"], out[f"auc_n_{kind}"] = pias[-1], aucns[-1]
    out["f_loc"] = _harmonic(ciou, 1.0 - np.mean(pias, axis=0))
    out["f_auc"] = _harmonic(auc, np.mean(aucns, axis=0))
    return 100 * np.stack([out[c] for c in CELLS], axis=-1)


def table1_cells(values: SampleValues) -> dict[str, float]:
    """The Table I cells (percent) of one model's :class:`SampleValues` (all samples)."""
    return dict(zip(CELLS, cells_from_means(sample_features(values).mean(axis=0)).tolist()))


def _resample_means(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Column means of ``x`` over the rows ``idx`` (``... × n`` integer indices): counts per row,
    then one matrix product (no ``... × n × d`` copy)."""
    idx = np.asarray(idx).astype(np.int64)
    lead = idx.shape[:-1]
    flat = idx.reshape(-1, idx.shape[-1])
    counts = np.zeros((flat.shape[0], x.shape[0]))
    np.add.at(counts, (np.repeat(np.arange(flat.shape[0]), flat.shape[1]), flat.ravel()), 1.0)
    return (counts @ x / idx.shape[-1]).reshape(*lead, x.shape[1])


def _better(cell: str, a: float, b: float) -> bool:
    return a < b if cell in LOWER_IS_BETTER else a > b


def bootstrap_table(
    values: Mapping[str, SampleValues],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ranked: Sequence[str] | None = None,
    method: str = "BCa",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bootstrap confidence intervals (over samples, seeds held as drawn) of every Table I cell of
    every model, and paired intervals of every pairwise difference, from one set of resamples.

    ``values``: ``{model: SampleValues}`` on one test set (same samples, same order). The statistic
    (every cell of every model and every difference of two ``ranked`` models) is evaluated by
    :func:`scipy.stats.bootstrap` (``method``: ``"BCa"`` or ``"percentile"``) on resampled sample
    indices, so every model and difference sees the same resamples (a paired bootstrap).

    Returns:
        ``cells``: one row per (model, cell): ``value`` (all samples), ``low``, ``high``;
        ``pairs``: one row per (cell, model a, model b) of ``ranked`` models (default: all), with
        ``difference`` (a - b, percent points), ``low``, ``high``, ``better`` (the model ahead in
        the cell's direction) and ``significant`` (the interval excludes 0).
    """
    from scipy import stats

    if not values:
        raise ValueError("values: no model given")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")
    if n_resamples < 2:
        raise ValueError(f"n_resamples: expected at least 2, got {n_resamples}")
    models = list(values)
    n = {m: len(v) for m, v in values.items()}
    if len(set(n.values())) != 1:
        raise ValueError(f"values: models have different sample counts {n}; give results on one test set")
    ranked = models if ranked is None else [m for m in ranked if m in values]
    feats = {m: sample_features(v) for m, v in values.items()}
    x = np.concatenate([feats[m] for m in models], axis=1)  # N × (models·d)
    d = feats[models[0]].shape[1]
    pairs = list(itertools.combinations(ranked, 2))
    pos = {m: i for i, m in enumerate(models)}

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        mu = _resample_means(x, np.moveaxis(idx, axis, -1))
        cells = np.stack([cells_from_means(mu[..., i * d:(i + 1) * d]) for i in range(len(models))], axis=-2)
        diffs = [cells[..., pos[a], :] - cells[..., pos[b], :] for a, b in pairs]
        out = np.concatenate([cells.reshape(*cells.shape[:-2], -1), *diffs], axis=-1) if diffs else cells.reshape(*cells.shape[:-2], -1)
        return np.moveaxis(out, -1, 0)  # statistic values first (scipy's multi-output layout)

    idx = np.arange(len(values[models[0]]))
    point = statistic(idx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (constant) statistics: handled below
        res = stats.bootstrap((idx,), statistic, n_resamples=n_resamples, confidence_level=confidence,
                              method=method, vectorized=True, batch=max(1, min(n_resamples, 200)),
                              rng=np.random.default_rng(seed))
    low, high = np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)
    dist = np.asarray(res.bootstrap_distribution)
    alpha = (1 - confidence) / 2
    # a statistic constant over the resamples (or a BCa failure) has NaN ends: use the percentile ends
    bad = ~(np.isfinite(low) & np.isfinite(high))
    if bad.any():
        low[bad] = np.quantile(dist[bad], alpha, axis=-1)
        high[bad] = np.quantile(dist[bad], 1 - alpha, axis=-1)
    nc = len(CELLS)
    cell_rows = []
    for i, m in enumerate(models):
        for j, c in enumerate(CELLS):
            k = i * nc + j
            cell_rows.append({"model": m, "cell": c, "value": point[k], "low": low[k], "high": high[k]})
    pair_rows = []
    base = len(models) * nc
    for p, (a, b) in enumerate(pairs):
        for j, c in enumerate(CELLS):
            k = base + p * nc + j
            diff = float(point[k])
            lo, hi = float(low[k]), float(high[k])
            pair_rows.append({"cell": c, "a": a, "b": b, "difference": diff, "low": lo, "high": hi,
                              "better": a if _better(c, diff, 0.0) else (b if diff != 0 else "tie"),
                              "significant": bool(lo > 0 or hi < 0)})
    return pd.DataFrame(cell_rows), pd.DataFrame(pair_rows, columns=["cell", "a", "b", "difference", "low", "high", "better", "significant"])


def per_seed_spread(results: Mapping[str, "EvalResult"], cells: Sequence[str] = CELLS) -> pd.DataFrame:
    """Per-seed Table I values (:attr:`EvalResult.per_seed`) summarised per model and cell: mean,
    standard deviation (``ddof=1``), min and max over the seeds of the negatives (positive cells do not
    depend on the seed: spread 0)."""
    rows = []
    for m, r in results.items():
        for c in cells:
            v = np.array([row[c] for row in r.per_seed], dtype=np.float64)
            rows.append({"model": m, "cell": c, "seeds": v.size, "mean": v.mean(),
                         "sd": v.std(ddof=1) if v.size > 1 else 0.0, "min": v.min(), "max": v.max()})
    return pd.DataFrame(rows)


def interval_table(cells: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """:func:`bootstrap_table`'s cells as a Table-I-shaped frame of strings ``value [low, high]``:
    rows models, columns :data:`CELLS`."""
    f = f"{{:.{digits}f}}"
    text = cells.assign(text=[f"{f.format(v)} [{f.format(lo)}, {f.format(hi)}]"
                              for v, lo, hi in cells[["value", "low", "high"]].itertuples(index=False)])
    out = text.pivot(index="model", columns="cell", values="text")
    return out.reindex(index=list(dict.fromkeys(cells["model"])), columns=[c for c in CELLS if c in out.columns])


def significance_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per cell: pairwise comparisons, how many are significant, and the non-significant pairs."""
    rows = []
    for c in CELLS:
        g = pairs[pairs["cell"] == c]
        if g.empty:
            continue
        rows.append({"cell": c, "pairs": len(g), "significant": int(g["significant"].sum()),
                     "not significant": ", ".join(f"{a} vs {b}" for a, b in g.loc[~g["significant"], ["a", "b"]].itertuples(index=False)) or "–"})
    return pd.DataFrame(rows)


def uncertainty_sentence(cells: pd.DataFrame, pairs: pd.DataFrame, spread: pd.DataFrame | None = None,
                         confidence: float = 0.95) -> str:
    """The "What this shows" paragraph of the uncertainty chapter, from :func:`bootstrap_table`'s
    frames (and optionally :func:`per_seed_spread`): the widest interval, the share of significant
    pairwise orderings, the cells whose best model is not significantly ahead of the second, and the
    largest seed-to-seed standard deviation."""
    if cells.empty:
        raise ValueError("cells: empty")
    width = cells["high"] - cells["low"]
    w = cells.loc[width.idxmax()]
    pct = f"{100 * confidence:g} %"
    text = (f"The widest {pct} interval is {w['high'] - w['low']:.2f} points ({w['model']}, {w['cell']}); "
            f"the median width is {float(width.median()):.2f} points. ")
    if not pairs.empty:
        k, n = int(pairs["significant"].sum()), len(pairs)
        text += f"{k} of {n} pairwise orderings of models in a cell ({100 * k / n:.0f} %) are significant at {pct}. "
        unsure = []
        ranked = set(pairs["a"]) | set(pairs["b"])
        sub = cells[cells["model"].isin(ranked)]
        for c in CELLS:
            g = sub[sub["cell"] == c].sort_values("value", ascending=c in LOWER_IS_BETTER)
            if len(g) < 2:
                continue
            first, second = g["model"].iloc[0], g["model"].iloc[1]
            hit = pairs[(pairs["cell"] == c) & (((pairs["a"] == first) & (pairs["b"] == second)) |
                                                ((pairs["a"] == second) & (pairs["b"] == first)))]
            if not hit.empty and not bool(hit["significant"].iloc[0]):
                unsure.append(f"{c} ({first} over {second})")
        text += ("In every cell the best model is significantly ahead of the second. " if not unsure else
                 f"The best model is not significantly ahead of the second in {len(unsure)} cell(s): {', '.join(unsure)}. ")
    if spread is not None and not spread.empty:
        s = spread.loc[spread["sd"].idxmax()]
        text += (f"Across the seeds of the negatives the largest standard deviation is {s['sd']:.2f} points "
                 f"({s['model']}, {s['cell']}).")
    return text.strip()


# ==================================================================================================
# 3. Threshold sensitivity


def quantile_thresholds(maxima: Mapping[str, Any], rules: Mapping[str, float] = QUANTILE_RULES) -> pd.DataFrame:
    """The universal threshold under each quantile rule: for each negative type the ``q``-quantile
    (linear interpolation, :func:`vssl_helpers.threshold.quantile_linear`, NumPy's default) of the
    per-sample maxima, and the highest of them. Rows: rules; columns: ``q``, each negative type,
    ``threshold``, ``decisive type``."""
    negs = {k: maxima[k] for k in NEGATIVE_TYPES}
    rows = {}
    for name, q in rules.items():
        u = universal_threshold(negs, float(q))
        rows[name] = {"q": float(q), **u.per_type_q3, "threshold": u.value, "decisive type": u.decisive_type}
    return pd.DataFrame(rows).T


def threshold_curve(maps: "ExtendedMaps", gt: torch.Tensor, thresholds: Sequence[float], seeds: int | None = None) -> pd.DataFrame:
    """Every Table I cell (percent) at each threshold: one row per threshold (column ``threshold``,
    then :data:`CELLS`). ``seeds``: only the first seeds of the negatives (faster)."""
    gt_rows = M.prepare_gt(gt)  # read once; the adaptive IoUs computed once (threshold-free)
    adap = None
    rows = []
    for t in thresholds:
        v = sample_values(maps, gt_rows, float(t), seeds=seeds, iou_adap=adap)
        adap = v.iou_adap
        rows.append({"threshold": float(t), **table1_cells(v)})
    return pd.DataFrame(rows)


def quantile_curve(result: "EvalResult", quantiles: Sequence[float], seeds: int | None = None,
                   reference: "EvalResult | None" = None) -> pd.DataFrame:
    """Every Table I cell as a function of the quantile ``q`` of the universal-threshold rule (the
    threshold is :func:`vssl_helpers.threshold.universal_threshold` of ``reference``'s negative maxima
    at ``q``; ``reference``: the threshold set's result of the same model, default ``result``).
    Columns: ``q``, ``threshold``, :data:`CELLS`. Since the threshold grows with ``q``, this is also
    every cell as a function of the threshold, on an axis shared by models whose maps have different
    units. A fixed-threshold model keeps its value at every ``q``."""
    ref = result if reference is None else reference
    negs = {k: ref.maxima[k] for k in NEGATIVE_TYPES}
    fixed = ref.threshold.rule.startswith("fixed")
    thresholds = [ref.threshold.value if fixed else universal_threshold(negs, float(q)).value for q in quantiles]
    curve = threshold_curve(result.maps, result.gt, thresholds, seeds=seeds)
    curve.insert(0, "q", [float(q) for q in quantiles])
    return curve


def plot_threshold_curves(curves: Mapping[str, pd.DataFrame], marks: Mapping[str, float] | None = None,
                          cells: Sequence[str] = ("ciou_uth", "auc_uth", "pia_offscreen", "auc_n_offscreen", "f_loc", "f_auc"),
                          x: str = "threshold", title: str = "") -> "Figure":
    """One panel per cell: each model's value against column ``x`` of its curve
    (:func:`threshold_curve`: ``threshold``; :func:`quantile_curve`: ``q`` or ``threshold``), with
    vertical marks at ``marks`` (``{label: x value}``, e.g. the quantile rules)."""
    import matplotlib.pyplot as plt

    from .tables import TABLE1_HEADERS

    ncol = 3
    nrow = -(-len(cells) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.7 * nrow), constrained_layout=True, squeeze=False)
    for ax, c in zip(axes.ravel(), cells):
        for m, df in curves.items():
            ax.plot(df[x], df[c], linewidth=1.3, label=m)
        for label, v in (marks or {}).items():
            ax.axvline(v, color="grey", linestyle=":", linewidth=1)
            ax.text(v, 98, label, fontsize=6, rotation=90, va="top", ha="right", color="grey")
        head = TABLE1_HEADERS.get(c, (c, ""))
        ax.set_title(f"{head[0]}: {head[1]}", fontsize=9)
        ax.set_ylim(0, 100)
        ax.set_xlabel("quantile q of the threshold rule" if x == "q" else x, fontsize=8)
    for ax in axes.ravel()[len(cells):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=6.5)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def quantile_sensitivity(
    results: Mapping[str, Mapping[str, "EvalResult"]],
    reference_set: str,
    rules: Mapping[str, float] = QUANTILE_RULES,
    seeds: int | None = None,
) -> pd.DataFrame:
    """Every Table I cell of every model under each quantile rule of the universal threshold.

    ``results[set][model]``; each model's threshold is computed by the rule on ``reference_set``
    (:func:`quantile_thresholds` of its maxima) and applied unchanged to the other sets, as in the
    paper. A model with a fixed threshold (e.g. RCGrad's 0.75) keeps it under every rule.

    Returns one row per (test set, model, rule): ``threshold`` and :data:`CELLS` (percent).
    """
    if reference_set not in results:
        raise ValueError(f"reference_set: {reference_set!r} is not one of {list(results)}")
    thr: dict[str, dict[str, float]] = {}
    for m, r in results[reference_set].items():
        fixed = r.threshold.rule.startswith("fixed")
        qt = quantile_thresholds(r.maxima, rules)
        thr[m] = {rule: (r.threshold.value if fixed else float(qt.loc[rule, "threshold"])) for rule in rules}
    rows = []
    for key, by_model in results.items():
        for m, r in by_model.items():
            # the run's own threshold with the default scoring: its Table I row is already computed
            own = [rule for rule in rules if thr[m][rule] == r.threshold.value and seeds is None and _default_scoring(r)]
            todo = [rule for rule in rules if rule not in own]
            curve = threshold_curve(r.maps, r.gt, [thr[m][rule] for rule in todo], seeds=seeds) if todo else pd.DataFrame()
            by_rule = dict(zip(todo, curve.to_dict("records")))
            by_rule.update({rule: {"threshold": r.threshold.value, **{c: float(r.row[c]) for c in CELLS}} for rule in own})
            rows += [{"test_set": key, "model": m, "rule": rule, **by_rule[rule]} for rule in rules]
    return pd.DataFrame(rows)


def _default_scoring(result: Any) -> bool:
    """True when ``result``'s row was scored as this module scores (no effective compatibility switch,
    empty GT excluded), so that its Table I row can stand for :func:`table1_cells` at its threshold."""
    prov = getattr(result, "provenance", None) or {}
    compat = (prov.get("compat") or {}).get("effective", {})
    return bool(prov) and not any(compat.values()) and prov.get("engine", {}).get("empty_gt", "exclude") == "exclude"


def _ranks(values: pd.Series, cell: str, decimals: int) -> pd.Series:
    """Competition ranks (1 = best) of the models in one cell, values compared as printed (rounded
    to ``decimals``): models that print the same share a rank, as Table I's marks."""
    from scipy import stats

    v = values.round(decimals).to_numpy()
    return pd.Series(stats.rankdata(v if cell in LOWER_IS_BETTER else -v, method="min"), index=values.index)


def _order_text(ranks: pd.Series) -> str:
    """``a > b = c``: better first; ``=`` joins models with the same rank."""
    groups = [" = ".join(g.index) for _, g in ranks.groupby(ranks, sort=True)]
    return " > ".join(groups)


def ranking_changes(table: pd.DataFrame, baseline: str = "Q3", cells: Sequence[str] = THRESHOLD_CELLS,
                    exclude: Sequence[str] = (), decimals: int = 2) -> pd.DataFrame:
    """Does the ranking of the models change with the quantile rule? From :func:`quantile_sensitivity`:
    one row per (test set, cell, rule other than ``baseline``) with the ``baseline`` order, the rule's
    order (``a > b``: a is better, i.e. higher, or lower for pIA; ``=``: the same value as printed,
    ``decimals`` decimals), ``same order``, ``same best`` (the same set of best models) and Kendall's
    tau-b between the two rankings (:func:`scipy.stats.kendalltau`; 1 when a ranking is all ties and
    the other too). Models in ``exclude`` (reference points) are not ranked. ``cells``: default
    :data:`THRESHOLD_CELLS` (the adaptive columns do not move with the threshold)."""
    from scipy import stats

    t = table[~table["model"].isin(list(exclude))]
    if baseline not in set(t["rule"]):
        raise ValueError(f"baseline: rule {baseline!r} is not in the table (rules: {sorted(set(t['rule']))})")
    rows = []
    for key, g in t.groupby("test_set", sort=False):
        base = g[g["rule"] == baseline].set_index("model")
        for rule in [r for r in dict.fromkeys(g["rule"]) if r != baseline]:
            other = g[g["rule"] == rule].set_index("model").reindex(base.index)
            for c in cells:
                r0, r1 = _ranks(base[c], c, decimals), _ranks(other[c], c, decimals)
                same = bool((r0 == r1).all())
                if same:
                    tau = 1.0
                elif r0.nunique() == 1 or r1.nunique() == 1:
                    tau = 0.0  # one ranking is all ties: no order to agree with
                else:
                    tau = float(stats.kendalltau(r0.to_numpy(), r1.to_numpy()).statistic)
                rows.append({"test_set": key, "cell": c, "rule": rule, f"{baseline} order": _order_text(r0),
                             "order": _order_text(r1), "same order": same,
                             "same best": set(r0.index[r0 == 1]) == set(r1.index[r1 == 1]), "kendall tau": tau})
    return pd.DataFrame(rows)


def threshold_sentence(changes: pd.DataFrame, baseline: str = "Q3") -> str:
    """The "What this shows" paragraph of the threshold-sensitivity chapter, from
    :func:`ranking_changes`: how many (set, cell, rule) rankings keep the ``baseline`` order and the
    best model, where a rule leaves no ranking at all (every model prints the same value), and which
    remaining ranking moves most (lowest Kendall tau)."""
    if changes.empty:
        raise ValueError("changes: empty")
    n = len(changes)
    same = int(changes["same order"].sum())
    best = int(changes["same best"].sum())
    text = (f"Replacing the paper's {baseline} by another quantile keeps the whole ranking of the models in "
            f"{same} of {n} (test set, cell, rule) cases and the best model in {best} of {n}. ")
    if same == n:
        return text + "No conclusion of the table depends on the quantile."
    # a rule that leaves every model with the same value where the baseline ranked them
    collapsed = ~changes["order"].str.contains(">", regex=False) & changes[f"{baseline} order"].str.contains(">", regex=False)
    if collapsed.any():
        text += (f"In {int(collapsed.sum())} case(s) the rule leaves every model with the same printed value "
                 "(no ranking left), e.g. " + ", ".join(
                     f"{r['cell']} under {r['rule']}" for _, r in changes[collapsed].head(3).iterrows()) + ". ")
    moved = changes[~collapsed & ~changes["same order"]]
    if not moved.empty:
        w = moved.loc[moved["kendall tau"].idxmin()]
        text += (f"Among the others, the ranking moves most for {w['cell']} on {w['test_set']} under the {w['rule']} "
                 f"rule (Kendall τ = {w['kendall tau']:.2f}: {w['order']} instead of {w[f'{baseline} order']}).")
    flips = changes.loc[~changes["same best"]]
    if not flips.empty:
        by_rule = flips.groupby("rule", sort=False).size()
        text += " The best model changes in " + ", ".join(f"{k} cell(s) under {r}" for r, k in by_rule.items()) + "."
    return text
