r"""Does training with negatives fix it? (issue 15 item 6)

The negative-aware demo model (``demo-negaware``: the EZ-VSL objective plus a binary cross-entropy
that asks for a low map maximum on silence, noise and off-screen audio) against the plain
contrastive demo models (``demo-ezvsl``, ``demo-lvs``) on every Table I column of the book's runs,
and along the training-data realism knob of the committed study
(``benchmarks/results/knob.json``: a share of training pairs whose audio comes from an absent
source). Nothing is trained here: the book's stored maps and the committed study are read.

A difference is called *clear* when it exceeds the seed-to-seed spread of the negatives: twice the
larger of the two models' standard deviations over the per-seed rows (positive columns do not
depend on the negative seed, so their spread is 0 and any difference counts; the committed
multi-seed study, ``benchmarks/results/seeds.json``, gives the training-seed spread for those).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .compat_effects import TABLE_COLUMNS

__all__ = [
    "NEGAWARE",
    "PLAIN_MODELS",
    "BETTER_HIGHER",
    "COLUMNS",
    "per_seed_spread",
    "negaware_comparison",
    "knob_table",
    "training_seed_spread",
    "negatives_summary",
]

NEGAWARE = "demo-negaware"
"""The negative-aware demo model."""
PLAIN_MODELS: tuple[str, ...] = ("demo-ezvsl", "demo-lvs")
"""The plain contrastive demo models it is compared with."""
COLUMNS: dict[str, str] = {**TABLE_COLUMNS, "auroc_silence": "AUROC sil.", "auroc_noise": "AUROC noise",
                           "auroc_offscreen": "AUROC off."}
"""Compared columns: Table I (percent) and the threshold-free AUROC of the map maxima, positive vs
each negative type (a fraction in [0, 1]): each model is scored at its own universal threshold, set
from its own negatives, so pIA compares models through two different thresholds; the AUROC does not."""
BETTER_HIGHER: dict[str, bool] = {c: not c.startswith("pia_") for c in COLUMNS}
"""Direction of every column: pIA is better lower, every other column higher."""


def per_seed_spread(result: Any, column: str) -> float:
    """Standard deviation (ddof=1) of ``column`` over the per-seed rows of an EvalResult (0 with one
    seed or when the column does not depend on the seed)."""
    vals = np.array([float(r[column]) for r in result.per_seed], dtype=np.float64)
    return float(vals.std(ddof=1)) if len(vals) > 1 else 0.0


def negaware_comparison(
    results: Mapping[str, Mapping[str, Any]], plain: Sequence[str] = PLAIN_MODELS, negaware: str = NEGAWARE,
    columns: Sequence[str] = tuple(COLUMNS),
) -> pd.DataFrame:
    """One row per (set, plain model, column): the negative-aware value, the plain value, the
    difference (percentage points, ``negaware - plain``), ``better`` (the difference points the
    column's better way), the seed-to-seed spread and ``clear`` (|difference| > 2 × spread).

    Raises:
        KeyError: a model missing from ``results`` (naming it and the models present).
    """
    rows = []
    for set_name, by_model in results.items():
        for m in (negaware, *plain):
            if m not in by_model:
                raise KeyError(f"negaware_comparison: model {m!r} not in the results of {set_name!r} (have {sorted(by_model)})")
        na = by_model[negaware]
        for m in plain:
            pm = by_model[m]
            for c in columns:
                a, b = float(na.row[c]), float(pm.row[c])
                spread = max(per_seed_spread(na, c), per_seed_spread(pm, c))
                d = a - b
                rows.append({
                    "set": set_name, "plain": m, "column": c, "header": COLUMNS.get(c, c),
                    "negaware": a, "plain_value": b, "difference": d,
                    "better": bool(d > 0) if BETTER_HIGHER.get(c, True) else bool(d < 0),
                    "spread": spread, "clear": bool(abs(d) > 2 * spread),
                })
    return pd.DataFrame(rows)


def knob_table(study: Mapping[str, Any] | None, columns: Sequence[str] = ("ciou_uth", "pia_silence", "pia_noise",
                                                                          "pia_offscreen", "f_loc", "f_auc")) -> pd.DataFrame:
    """The realism-knob study (``embedded.study_results("knob")``) as one row per (share, model), with
    the given columns (percent); empty when the study is absent."""
    if not study:
        return pd.DataFrame(columns=["offscreen_share", "model", *columns])
    rows = []
    for r in study["rows"]:
        job = r["job"]
        rows.append({"offscreen_share": float(job.get("offscreen_share", 0.0)), "model": job["model"],
                     "seed": int(job.get("seed", 0)), **{c: float(r["row"][c]) for c in columns}})
    df = pd.DataFrame(rows)
    return df.groupby(["offscreen_share", "model"], as_index=False)[list(columns)].mean()


def training_seed_spread(study: Mapping[str, Any] | None, columns: Sequence[str]) -> pd.DataFrame:
    """Per model, the standard deviation (ddof=1) over training seeds of each column in the committed
    multi-seed study (``embedded.study_results("seeds")``); models with one seed are left out."""
    if not study:
        return pd.DataFrame(columns=["model", *columns])
    df = pd.DataFrame([{"model": r["job"]["model"], **{c: float(r["row"][c]) for c in columns}} for r in study["rows"]])
    counts = df.groupby("model").size()
    df = df[df["model"].isin(counts[counts > 1].index)]
    return df.groupby("model", as_index=False)[list(columns)].std(ddof=1)


def negatives_summary(comparison: pd.DataFrame, knob: pd.DataFrame, negaware: str = NEGAWARE,
                      seed_spread: pd.DataFrame | None = None) -> str:
    """The chapter's "What this shows" paragraph, generated from :func:`negaware_comparison`,
    :func:`knob_table` and optionally :func:`training_seed_spread` (F_LOC's standard deviation over
    training seeds, against which the F_LOC differences are judged), ending with the synthetic
    benchmark's caveats."""
    if comparison.empty:
        raise ValueError("negatives_summary: empty comparison")
    parts = []
    for (set_name, plain), g in comparison.groupby(["set", "plain"], sort=False):
        better = g[g["better"] & g["clear"]]
        worse = g[~g["better"] & g["clear"]]
        f = g.set_index("column")
        parts.append(
            f"On {set_name}, {negaware} beats {plain} clearly on {len(better)} of {len(g)} columns and loses clearly on "
            f"{len(worse)}" + (f" ({', '.join(worse['header'])})" if len(worse) else "")
            + (f"; F_LOC {f.loc['f_loc', 'negaware']:.1f} vs {f.loc['f_loc', 'plain_value']:.1f}" if "f_loc" in f.index else "")
            + "."
        )
    text = " ".join(parts)
    if seed_spread is not None and not seed_spread.empty and "f_loc" in seed_spread.columns:
        sd = seed_spread.set_index("model")["f_loc"]
        f = comparison[comparison["column"] == "f_loc"]
        judged = []
        for _, r in f.iterrows():
            if negaware in sd.index and r["plain"] in sd.index:
                lim = 2 * max(float(sd[negaware]), float(sd[r["plain"]]))
                judged.append(f"{r['plain']} on {r['set']}: {r['difference']:+.1f} pp, "
                              + ("beyond" if abs(r["difference"]) > lim else "within") + f" 2 sd = {lim:.1f} pp")
        if judged:
            text += (" Judged against the spread over training seeds of the committed multi-seed study (500 images), "
                     "the F_LOC differences are: " + "; ".join(judged) + ".")
    if not knob.empty and {"f_loc", "model", "offscreen_share"} <= set(knob.columns):
        piv = knob.pivot(index="offscreen_share", columns="model", values="f_loc")
        if negaware in piv.columns and len(piv.columns) > 1:
            other = [c for c in piv.columns if c != negaware][0]
            gaps = (piv[negaware] - piv[other]).round(1)
            text += (
                f" Along the realism knob (share of training pairs with an absent source: "
                f"{', '.join(f'{s:g}' for s in piv.index)}), F_LOC of {negaware} minus {other} is "
                f"{', '.join(f'{g:+.1f}' for g in gaps)} pp"
                + (", so the advantage grows as the training data gets less clean." if gaps.iloc[-1] > gaps.iloc[0]
                   else (", so on this one training seed the negative-aware objective falls behind as the training "
                         "data gets less clean." if gaps.iloc[-1] < 0 else
                         ", so the advantage does not grow as the training data gets less clean."))
            )
    text += (
        " Caveats: this is a procedural benchmark whose negatives (digital silence, white noise, clips of "
        "other synthetic categories) are the very kinds the negative-aware objective was trained to reject; "
        "each model is scored at its own universal threshold, set from its own negatives, so the pIA columns "
        "compare two thresholds (the AUROC rows do not); "
        "the models are small and trained for minutes, and one training seed is shown; on real video, "
        "off-screen sounds are neither labelled nor cleanly separable, so neither the size nor the sign of these differences need carry over."
    )
    return text
