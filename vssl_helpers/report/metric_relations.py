r"""What the metrics really measure (issue 15 item 4): AUC against mean cIoU, AUC_N against 1 − pIA,
F_AUC against F_LOC, derived exactly and checked on the book's results.

**AUC is a mean of cell midpoints.** On a grid :math:`0 = \tau_0 < \tau_1 < \dots < \tau_{20} = 1`
the trapezoid of the success curve :math:`s(\tau) = \frac1N\#\{i: x_i \ge \tau\}` is a sum over
samples, so it is the mean of one per-sample step function. For one sample with IoU :math:`x`, let
:math:`c = \#\{k: \tau_k \le x\}`; the indicators :math:`[x \ge \tau_k]` are 1 for :math:`k < c`, so
the trapezoid gives the full width of the cells below :math:`\tau_{c-1}` and half of the cell
:math:`[\tau_{c-1}, \tau_c)`:

.. math:: \mathrm{AUC} = \frac1N \sum_i g(x_i), \qquad
          g(x) = \tfrac12(\tau_{c-1} + \tau_c) \;\; (x < 1), \qquad g(1) = 1,

the midpoint of the grid cell that holds the IoU. Hence :math:`\mathrm{AUC} - \overline{\mathrm{IoU}}
\in (-0.025, 0.025]` on the 0.05 grid, and every sample with IoU 0 (an empty or misplaced map)
scores 0.025, not 0: **AUC = mean cIoU + 0.025 · (share of zero-IoU samples) + r**, with r the
mean of :math:`g(x) - x` over the other samples.

**AUC_N is one minus a mean of cell midpoints.** With :math:`j` the smallest index with
:math:`\tau_j \ge p` (a pIA :math:`p` lies in the cell :math:`(\tau_{j-1}, \tau_j]`):

.. math:: \mathrm{AUC}_N = 1 - \frac1N \sum_i m(p_i), \qquad m(p) = \tfrac12(\tau_{j-1} + \tau_j)
          \;\; (p > 0), \qquad m(0) = 0,

so :math:`\mathrm{AUC}_N - (1 - \overline{\mathrm{pIA}}) \in (-0.025, 0.025]`, a map that stays
completely silent scores exactly 1, and a map with a single active pixel already loses 0.025.

**F_AUC vs F_LOC.** Both are harmonic means, :math:`H(a, b) = 2ab/(a+b)`, of a positive and a
negative score; F_AUC replaces each argument of F_LOC by its grid version above, so the two differ
only by the discretisation. Because :math:`\partial H / \partial a = 2b^2/(a+b)^2` can reach 2 when
:math:`a \ll b`, the difference is largest for models with a very low argument: a model whose every
negative map lights the whole image (pIA = 1) has F_LOC = 0 but AUC_N = 0.025, hence F_AUC > 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import metrics as M
from ..threshold import NEGATIVE_TYPES

__all__ = [
    "auc_step",
    "auc_n_step",
    "auc_from_steps",
    "auc_n_from_steps",
    "auc_decomposition",
    "metric_relations",
    "f_comparison",
    "relations_summary",
]


def _grid(grid: torch.Tensor | np.ndarray | None) -> np.ndarray:
    tau = np.asarray((M.TAU_GRID if grid is None else grid), dtype=np.float64)
    if tau.ndim != 1 or len(tau) < 2 or tau[0] != 0.0 or tau[-1] != 1.0 or np.any(np.diff(tau) <= 0):
        raise ValueError(f"grid: expected increasing values from 0 to 1, got {tau.tolist()}")
    return tau


def _values(x: Any, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    v = v[~np.isnan(v)]  # as the metrics: NaN samples (empty GT, excluded) are skipped
    if np.any((v < 0) | (v > 1)):
        raise ValueError(f"{name}: expected values in [0, 1], got min {v.min()} max {v.max()}")
    return v


def auc_step(ious: Any, grid: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    r"""Each sample's share of the AUC: :math:`g(x)`, the midpoint of the grid cell
    :math:`[\tau_{c-1}, \tau_c)` holding the IoU, and 1 for an IoU of 1 (NaNs dropped)."""
    tau = _grid(grid)
    x = _values(ious, "ious")
    c = np.searchsorted(tau, x, side="right")  # #{k: tau_k <= x}, in 1..len(tau)
    top = c == len(tau)
    lo = tau[np.clip(c - 1, 0, len(tau) - 1)]
    hi = tau[np.clip(c, 0, len(tau) - 1)]
    return np.where(top, 1.0, (lo + hi) / 2)


def auc_n_step(pias: Any, grid: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    r"""Each negative's loss of AUC_N: :math:`m(p)`, the midpoint of the grid cell
    :math:`(\tau_{j-1}, \tau_j]` holding the pIA, and 0 for a pIA of 0 (so AUC_N = 1 − mean m)."""
    tau = _grid(grid)
    p = _values(pias, "pias")
    j = np.searchsorted(tau, p, side="left")  # smallest j with tau_j >= p
    lo = tau[np.clip(j - 1, 0, len(tau) - 1)]
    hi = tau[np.clip(j, 0, len(tau) - 1)]
    return np.where(j == 0, 0.0, (lo + hi) / 2)


def auc_from_steps(ious: Any, grid: torch.Tensor | np.ndarray | None = None) -> float:
    """AUC as the mean of :func:`auc_step` (equals :func:`vssl_helpers.metrics.auc`)."""
    return float(np.mean(auc_step(ious, grid)))


def auc_n_from_steps(pias: Any, grid: torch.Tensor | np.ndarray | None = None) -> float:
    """AUC_N as one minus the mean of :func:`auc_n_step` (equals :func:`vssl_helpers.metrics.auc_n`)."""
    return 1.0 - float(np.mean(auc_n_step(pias, grid)))


def auc_decomposition(ious: Any, grid: torch.Tensor | np.ndarray | None = None) -> dict[str, float]:
    r"""AUC = mean IoU + (half the first cell) · share of zero-IoU samples + residual.

    Returns ``mean_iou``, ``auc``, ``share_zero`` (fraction of samples with IoU 0), ``zero_credit``
    (:math:`\tau_1/2 \cdot` share_zero, what the empty maps add), ``residual`` (the mean of
    :math:`g(x) - x` over the non-zero samples, weighted by their share) and ``gap`` (AUC − mean IoU
    = zero_credit + residual). Fractions, not percent.
    """
    tau = _grid(grid)
    x = _values(ious, "ious")
    if len(x) == 0:
        raise ValueError("ious: no sample (all NaN or empty)")
    g = auc_step(x, tau)
    zero = x == 0
    share = float(zero.mean())
    credit = float(tau[1] / 2 * share)
    residual = float(((g - x) * ~zero).sum() / len(x))
    return {"mean_iou": float(x.mean()), "auc": float(g.mean()), "share_zero": share, "zero_credit": credit,
            "residual": residual, "gap": float(g.mean() - x.mean())}


def _per_sample(result: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-sample IoUs (positives) and pIAs (each negative type, seeds pooled) of an
    :class:`~vssl_helpers.engine.EvalResult`, at its threshold (the engine's scoring, recomputed)."""
    t = float(result.threshold.value)
    ious = M.ciou(result.maps.positive, result.gt, t).numpy()
    pias = {k: M.pia(result.maps.negatives(k), t).numpy() for k in NEGATIVE_TYPES}
    return ious, pias


def metric_relations(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """For every (test set, model) of ``results[set][model]`` (EvalResults): the decomposition of
    AUC U.th. (mean cIoU, share of zero IoUs, their credit, residual) and AUC_N against 1 − pIA per
    negative type, all in percent, with a check that the closed forms give the engine's values.

    Columns: ``set``, ``model``, ``ciou``, ``auc``, ``gap``, ``share_zero``, ``zero_credit``,
    ``residual``, ``auc_matches`` (closed form = the engine's AUC within 1e-9 pp), then per type
    ``one_minus_pia_<t>``, ``auc_n_<t>``, ``gap_n_<t>``, ``share_silent_<t>`` (negatives with pIA 0)
    and ``auc_n_matches``.
    """
    rows = []
    for set_name, by_model in results.items():
        for model, res in by_model.items():
            ious, pias = _per_sample(res)
            d = auc_decomposition(ious)
            row: dict[str, Any] = {
                "set": set_name, "model": model, "ciou": 100 * d["mean_iou"], "auc": 100 * d["auc"],
                "gap": 100 * d["gap"], "share_zero": 100 * d["share_zero"], "zero_credit": 100 * d["zero_credit"],
                "residual": 100 * d["residual"],
                "auc_matches": bool(abs(100 * d["auc"] - res.row["auc_uth"]) < 1e-9
                                    and abs(100 * d["mean_iou"] - res.row["ciou_uth"]) < 1e-9),
            }
            ok = True
            for k in NEGATIVE_TYPES:
                p = pias[k]
                aucn = 100 * auc_n_from_steps(p)
                row[f"one_minus_pia_{k}"] = 100 * (1 - float(p.mean()))
                row[f"auc_n_{k}"] = aucn
                row[f"gap_n_{k}"] = aucn - row[f"one_minus_pia_{k}"]
                row[f"share_silent_{k}"] = 100 * float((p == 0).mean())
                ok &= abs(aucn - res.row[f"auc_n_{k}"]) < 1e-9
            row["auc_n_matches"] = bool(ok)
            rows.append(row)
    return pd.DataFrame(rows)


def f_comparison(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """F_LOC and F_AUC of every (set, model) (the engine's pooled rows, percent), their difference,
    each model's rank by either (1 = best, per set) and whether the two ranks agree."""
    rows = [{"set": s, "model": m, "f_loc": float(r.row["f_loc"]), "f_auc": float(r.row["f_auc"])}
            for s, by_model in results.items() for m, r in by_model.items()]
    df = pd.DataFrame(rows)
    df["f_auc_minus_f_loc"] = df["f_auc"] - df["f_loc"]
    df["rank_f_loc"] = df.groupby("set")["f_loc"].rank(ascending=False, method="min").astype(int)
    df["rank_f_auc"] = df.groupby("set")["f_auc"].rank(ascending=False, method="min").astype(int)
    df["same_rank"] = df["rank_f_loc"] == df["rank_f_auc"]
    return df


def _names(models: Sequence[str]) -> str:
    models = list(models)
    return models[0] if len(models) == 1 else ", ".join(models[:-1]) + " and " + models[-1]


def relations_summary(relations: pd.DataFrame, fcomp: pd.DataFrame) -> str:
    """The chapter's "What this shows" paragraph, generated from :func:`metric_relations` and
    :func:`f_comparison` (no number in it is written by hand)."""
    if relations.empty or fcomp.empty:
        raise ValueError("relations_summary: empty tables (no result to describe)")
    gap = relations["gap"].abs()
    worst = relations.loc[gap.idxmax()]
    checks = bool(relations["auc_matches"].all() and relations["auc_n_matches"].all())
    gaps_n = relations[[f"gap_n_{k}" for k in NEGATIVE_TYPES]].abs()
    i_n, j_n = np.unravel_index(int(np.nanargmax(gaps_n.to_numpy())), gaps_n.shape)
    worst_n = relations.iloc[i_n]
    kind_n = NEGATIVE_TYPES[j_n]
    credit = relations.loc[relations["zero_credit"].idxmax()]
    diff = fcomp["f_auc_minus_f_loc"].abs()
    fw = fcomp.loc[diff.idxmax()]
    flips = fcomp[~fcomp["same_rank"]]
    parts = [
        f"On these {len(relations)} (test set, model) pairs the closed forms reproduce the engine's AUC and "
        f"AUC_N {'exactly' if checks else 'NOT exactly (see the check columns)'}. "
        f"AUC U.th. stays within {gap.max():.2f} pp of mean cIoU (largest for {worst['model']} on {worst['set']}: "
        f"AUC {worst['auc']:.2f} vs cIoU {worst['ciou']:.2f}); the zero-IoU samples contribute up to "
        f"{credit['zero_credit']:.2f} pp ({credit['model']} on {credit['set']}, {credit['share_zero']:.1f} % of its "
        f"samples with IoU 0). AUC_N differs from 1 − pIA by at most {gaps_n.to_numpy().max():.2f} pp "
        f"({worst_n['model']}, {kind_n}, {worst_n['set']}).",
        f"F_AUC differs from F_LOC by at most {diff.max():.2f} pp ({fw['model']} on {fw['set']}: F_LOC "
        f"{fw['f_loc']:.2f}, F_AUC {fw['f_auc']:.2f}), and the two rank "
        + ("the models identically on every set, so F_AUC adds no ranking information here beyond the "
           "grid's credit to empty and saturated maps." if flips.empty else
           f"{_names(sorted(set(flips['model'])))} differently on {_names(sorted(set(flips['set'])))}: there the "
           "grid's credit to empty or saturated maps is large enough to reorder models."),
    ]
    return " ".join(parts)
