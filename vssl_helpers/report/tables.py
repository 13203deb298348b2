"""Results tables in the layout of the paper's Table I, and their arithmetic.

A results table has one row per (test set, model) and the columns of :data:`TABLE1_COLUMNS`, in
percent (as printed). :func:`recompute_f_scores` recomputes F_LOC and F_AUC from the other cells.
For a printed table (cells rounded to 2 decimals) it propagates the rounding: each printed cell
``c`` stands for the interval ``[c - 0.005, c + 0.005]``, and since the harmonic mean is increasing in
both arguments (and F_LOC decreasing in every pIA) the set of F values compatible with the printed
cells is an interval whose ends come from the interval ends of the cells. A printed F is
*inconsistent* when its own interval does not meet that interval.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from ..metrics import harmonic_mean
from ..threshold import NEGATIVE_TYPES

__all__ = [
    "TABLE1_COLUMNS",
    "load_paper_table1",
    "recompute_f_scores",
    "inconsistent_cells",
    "study_table",
    "seed_summary",
]

TABLE1_COLUMNS: tuple[str, ...] = (
    "ciou_uth",
    "ciou_adap",
    "auc_uth",
    "auc_adap",
    *(f"{m}_{t}" for t in NEGATIVE_TYPES for m in ("pia", "auc_n")),
    "f_loc",
    "f_auc",
)
"""Numeric columns of a Table-I-shaped results table, in the paper's order (values in percent)."""

PRINTED_HALF_WIDTH = 0.005
"""Half the last printed digit of Table I (values printed with 2 decimals, in percent)."""


def load_paper_table1() -> pd.DataFrame:
    """The paper's printed Table I (both extended test sets, 7 models), as shipped in the package.

    Transcribed from the ICASSP 2025 paper; values in percent exactly as printed.
    """
    with resources.files("vssl_helpers.data").joinpath("paper_table1.csv").open() as f:
        table = pd.read_csv(f)
    missing = [c for c in ("test_set", "model", *TABLE1_COLUMNS) if c not in table.columns]
    if missing:
        raise ValueError(f"paper_table1.csv: missing columns {missing}")
    return table


def _f_loc_pct(ciou: float, pias: list[float]) -> float:
    pia_mean = sum(pias) / len(pias)
    return 100 * harmonic_mean(ciou / 100, 1 - pia_mean / 100)


def _f_auc_pct(auc: float, auc_ns: list[float]) -> float:
    return 100 * harmonic_mean(auc / 100, sum(auc_ns) / len(auc_ns) / 100)


def _clip_pct(x: float) -> float:
    return min(100.0, max(0.0, x))


def recompute_f_scores(table: pd.DataFrame, half_width: float = PRINTED_HALF_WIDTH) -> pd.DataFrame:
    """Recompute F_LOC and F_AUC of every row and check them against the printed values.

    Returns one row per input row with: ``f_loc_recomputed`` / ``f_auc_recomputed`` (from the cells as
    given), ``f_loc_min``/``f_loc_max`` and ``f_auc_min``/``f_auc_max`` (the range compatible with the
    cells' rounding intervals of ±``half_width``), ``f_loc_consistent`` / ``f_auc_consistent`` (the
    printed value's own interval meets that range) and ``f_loc_gap`` / ``f_auc_gap`` (how far apart the
    two intervals are, 0 when consistent). Use ``half_width=0`` for a table of exact values.
    """
    e = half_width
    rows = []
    for _, r in table.iterrows():
        pias = [float(r[f"pia_{t}"]) for t in NEGATIVE_TYPES]
        aucns = [float(r[f"auc_n_{t}"]) for t in NEGATIVE_TYPES]
        c, a = float(r["ciou_uth"]), float(r["auc_uth"])
        out = {"test_set": r["test_set"], "model": r["model"]}
        out["f_loc_recomputed"] = _f_loc_pct(c, pias)
        out["f_loc_min"] = _f_loc_pct(_clip_pct(c - e), [_clip_pct(p + e) for p in pias])
        out["f_loc_max"] = _f_loc_pct(_clip_pct(c + e), [_clip_pct(p - e) for p in pias])
        out["f_auc_recomputed"] = _f_auc_pct(a, aucns)
        out["f_auc_min"] = _f_auc_pct(_clip_pct(a - e), [_clip_pct(x - e) for x in aucns])
        out["f_auc_max"] = _f_auc_pct(_clip_pct(a + e), [_clip_pct(x + e) for x in aucns])
        for f in ("f_loc", "f_auc"):
            printed = float(r[f])
            lo, hi = out[f"{f}_min"], out[f"{f}_max"]
            gap = max(0.0, (printed - e) - hi, lo - (printed + e))
            out[f"{f}_printed"] = printed
            out[f"{f}_gap"] = gap
            # 1e-9: tolerance for binary floating point on decimal inputs, not for the paper.
            out[f"{f}_consistent"] = gap <= 1e-9
        rows.append(out)
    return pd.DataFrame(rows)


def inconsistent_cells(table: pd.DataFrame, half_width: float = PRINTED_HALF_WIDTH) -> list[tuple[str, str, str]]:
    """``(test_set, model, column)`` of every printed F value that cannot follow from its row's cells."""
    check = recompute_f_scores(table, half_width)
    return [
        (row.test_set, row.model, f)
        for row in check.itertuples()
        for f in ("f_loc", "f_auc")
        if not getattr(row, f"{f}_consistent")
    ]


def study_table(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    """One line per job of a ``benchmarks/demo_study.py`` result file: the job's fields, then the
    chosen metric columns (Table I columns in percent, AUROCs in [0, 1])."""
    columns = columns or ["ciou_uth", "ciou_adap", "pia_silence", "pia_noise", "pia_offscreen", "f_loc",
                          "auroc_silence", "auroc_noise", "auroc_offscreen", "threshold"]
    return pd.DataFrame([{**r["job"], **{c: r["row"][c] for c in columns}} for r in rows])


def seed_summary(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    """Mean, min and max over training seeds, per model, of a seeds study."""
    table = study_table(rows, columns)
    metrics = [c for c in table.columns if c not in ("model", "seed")]
    agg = table.groupby("model", sort=False)[metrics].agg(["mean", "min", "max"])
    agg.insert(0, ("seeds", "n"), table.groupby("model", sort=False)["seed"].count())
    return agg
