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
from typing import TYPE_CHECKING

import pandas as pd

from ..metrics import harmonic_mean
from ..threshold import NEGATIVE_TYPES

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import torch

    from ..engine import ExtendedMaps

__all__ = [
    "TABLE1_COLUMNS",
    "load_paper_table1",
    "recompute_f_scores",
    "inconsistent_cells",
    "study_table",
    "seed_summary",
    "LOWER_IS_BETTER",
    "TABLE1_HEADERS",
    "threshold_sweep",
    "table1_frame",
    "rank_marks",
    "style_table1",
    "table1_markdown",
    "RESULTS_COLUMNS",
    "RESULTS_LEGEND",
    "results_header",
    "distinguishing_digits",
    "checkpoint_label",
    "results_table",
    "results_table_text",
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


# ==================================================================================================
# Results chapters: threshold sweeps and Table I in the paper's layout

#: Table I columns where lower is better (every other column: higher is better).
LOWER_IS_BETTER: frozenset[str] = frozenset(f"pia_{t}" for t in NEGATIVE_TYPES)

#: Display names of the Table I columns (two header levels: audio input, metric).
TABLE1_HEADERS: dict[str, tuple[str, str]] = {
    "ciou_uth": ("Positive", "cIoU U.th. ↑"),
    "ciou_adap": ("Positive", "cIoU Adap. ↑"),
    "auc_uth": ("Positive", "AUC U.th. ↑"),
    "auc_adap": ("Positive", "AUC Adap. ↑"),
    "pia_silence": ("Silence", "pIA ↓"),
    "auc_n_silence": ("Silence", "AUC_N ↑"),
    "pia_noise": ("Noise", "pIA ↓"),
    "auc_n_noise": ("Noise", "AUC_N ↑"),
    "pia_offscreen": ("Offscreen", "pIA ↓"),
    "auc_n_offscreen": ("Offscreen", "AUC_N ↑"),
    "f_loc": ("Global", "F_LOC ↑"),
    "f_auc": ("Global", "F_AUC ↑"),
}


def threshold_sweep(maps: "ExtendedMaps", gt: "torch.Tensor", thresholds: "Sequence[float]", seeds: int | None = None) -> pd.DataFrame:
    """cIoU (mean IoU, percent), pIA per negative type and its mean (percent) and F_LOC at each
    threshold: how the Table I numbers of one model move with the threshold.

    ``seeds``: use only the first ``seeds`` seeds of the noise and off-screen negatives (faster;
    ``None``: all, as in Table I).
    """
    from .. import metrics as M

    s = maps.noise.shape[0] if seeds is None else max(1, min(int(seeds), maps.noise.shape[0]))
    negs = {"silence": maps.silence, "noise": maps.noise[:s].reshape(-1, *maps.noise.shape[2:]),
            "offscreen": maps.offscreen[:s].reshape(-1, *maps.offscreen.shape[2:])}
    gt_rows = M.prepare_gt(gt)  # the same GT at every threshold: read it once
    rows = []
    for t in thresholds:
        t = float(t)
        ious = M.ciou(maps.positive, gt_rows, t)
        pias = {k: float(M.pia(v, t).mean()) for k, v in negs.items()}
        row = {"threshold": t, "ciou": 100 * M.mean_iou(ious)}
        row.update({f"pia_{k}": 100 * v for k, v in pias.items()})
        row["pia_mean"] = 100 * sum(pias.values()) / len(pias)
        row["f_loc"] = 100 * M.f_loc(row["ciou"] / 100, pias)
        rows.append(row)
    return pd.DataFrame(rows)


def table1_frame(results: "Mapping[str, Mapping[str, Mapping[str, float]]]") -> pd.DataFrame:
    """A Table-I-shaped frame from result rows: ``results[test_set][model]`` is a row with the
    :data:`TABLE1_COLUMNS` (percent), e.g. :attr:`vssl_helpers.engine.EvalResult.row`.

    Columns: ``test_set``, ``model``, then :data:`TABLE1_COLUMNS` (the same layout as
    :func:`load_paper_table1`, so :func:`recompute_f_scores` applies with ``half_width=0``).
    """
    rows = [
        {"test_set": ts, "model": model, **{c: float(row[c]) for c in TABLE1_COLUMNS}}
        for ts, by_model in results.items()
        for model, row in by_model.items()
    ]
    return pd.DataFrame(rows, columns=["test_set", "model", *TABLE1_COLUMNS])


def rank_marks(table: pd.DataFrame, exclude: "Sequence[str]" = ()) -> pd.DataFrame:
    """``"best"``, ``"second"`` or ``""`` for every Table I cell, within each test set and column
    (pIA: lowest is best; every other column: highest). Ties share the mark; rows whose model is in
    ``exclude`` (e.g. reference points such as an oracle) are neither ranked nor marked."""
    marks = pd.DataFrame("", index=table.index, columns=list(TABLE1_COLUMNS))
    for _, group in table.groupby("test_set", sort=False):
        ranked = group[~group["model"].isin(list(exclude))]
        for c in TABLE1_COLUMNS:
            values = ranked[c].round(2)
            distinct = sorted(values.dropna().unique(), reverse=c not in LOWER_IS_BETTER)
            if distinct:
                marks.loc[values.index[values == distinct[0]], c] = "best"
            if len(distinct) > 1:
                marks.loc[values.index[values == distinct[1]], c] = "second"
    return marks


def style_table1(table: pd.DataFrame, exclude: "Sequence[str]" = (), caption: str = "") -> "pd.io.formats.style.Styler":
    """Table I as the paper prints it: two decimals, best of each column and test set in **bold**,
    second best underlined (:func:`rank_marks`), two header levels (audio input, metric)."""
    marks = rank_marks(table, exclude)
    shown = table.set_index(["test_set", "model"])[list(TABLE1_COLUMNS)]
    css = marks.set_axis(shown.index).replace({"best": "font-weight: bold", "second": "text-decoration: underline"})
    shown.columns = pd.MultiIndex.from_tuples([TABLE1_HEADERS[c] for c in TABLE1_COLUMNS])
    css.columns = shown.columns
    styler = shown.style.format("{:.2f}", na_rep="–").apply(lambda _: css, axis=None)
    if caption:
        styler = styler.set_caption(caption)
    return styler


def table1_markdown(table: pd.DataFrame, exclude: "Sequence[str]" = ()) -> str:
    """Table I as a Markdown table (two decimals, best in ``**bold**``, second in ``<u>underline</u>``)."""
    marks = rank_marks(table, exclude)
    head = ["test set", "model", *(" ".join(TABLE1_HEADERS[c]) for c in TABLE1_COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in table.iterrows():
        cells = []
        for c in TABLE1_COLUMNS:
            v = "–" if pd.isna(r[c]) else f"{r[c]:.2f}"
            cells.append({"best": f"**{v}**", "second": f"<u>{v}</u>"}.get(marks.loc[i, c], v))
        lines.append("| " + " | ".join([str(r["test_set"]), str(r["model"]), *cells]) + " |")
    return "\n".join(lines)


# ==================================================================================================
# `vssl table`: results files of `vssl evaluate --out` as readable text

#: Columns of a results file's ``pooled`` row shown by ``vssl evaluate`` and ``vssl table``, with
#: their short headers (the arrow is added by :func:`results_header`).
RESULTS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ciou_uth", "cIoU U.th."), ("auc_uth", "AUC U.th."), ("ciou_adap", "cIoU Adap."), ("auc_adap", "AUC Adap."),
    ("pia_silence", "pIA sil."), ("pia_noise", "pIA noise"), ("pia_offscreen", "pIA off."),
    ("auc_n_silence", "AUC_N sil."), ("auc_n_noise", "AUC_N noise"), ("auc_n_offscreen", "AUC_N off."),
    ("f_loc", "F_LOC"), ("f_auc", "F_AUC"),
)

RESULTS_LEGEND = (
    "↑ higher is better, ↓ lower is better; metrics in percent. threshold: the universal threshold in the "
    "model's map units; checkpoint: file name (sha256 prefix), or the state-dict hash of weights without a "
    "file; results: the results file of each row."
)


def results_header(key: str, short: str) -> str:
    """``short`` with ↓ for lower-is-better columns (pIA) and ↑ for every other one."""
    return f"{short} {'↓' if key in LOWER_IS_BETTER else '↑'}"


def distinguishing_digits(values: "Sequence[float]", minimum: int = 4, maximum: int = 12) -> int:
    """The fewest significant digits (at least ``minimum``) at which distinct ``values`` print
    distinctly with ``'{:.{d}g}'``: 0.154 and 0.1549 print as such with 4, where 1 digit would print
    both as 0.2 (and 3 would show 0.1549 as 0.155)."""
    distinct = {float(v) for v in values if v == v}
    for d in range(minimum, maximum + 1):
        if len({f"{v:.{d}g}" for v in distinct}) == len(distinct):
            return d
    return maximum


def checkpoint_label(record: "Mapping[str, object]") -> str:
    """How a results record's weights are named in a table: ``file.pth (sha256 prefix)`` when a
    checkpoint file was read, the plugin's file for your own model without one, else the state-dict
    hash (seeded or trained weights without a file)."""
    from pathlib import PurePath

    sha = record.get("checkpoint_sha256")
    path = record.get("checkpoint")
    if sha:
        name = PurePath(str(path)).name if path else "checkpoint"
        return f"{name} ({str(sha)[:12]})"
    plugin = record.get("plugin")
    if isinstance(plugin, dict) and plugin.get("sha256"):  # your own model: its file stands for the weights
        return f"plugin {PurePath(str(plugin.get('file'))).name} ({str(plugin['sha256'])[:12]})"
    weights = str(record.get("weights") or "")
    kind, _, digest = weights.partition(":")
    return f"no file ({kind} {digest[:12]})" if digest else "no file"


def compat_label(record: "Mapping | None") -> str:
    """The ``compat`` column of ``vssl table``: ``-`` for a default row, ``reference`` for the
    reference preset (:mod:`vssl_helpers.compat`), else the requested switches joined by ``+``."""
    if not record:
        return "-"
    on = [k for k, v in record.get("switches", {}).items() if v]
    if not on:
        return "-"
    return "reference" if record.get("reference_preset") else "+".join(on)


def results_table(records: "Sequence[tuple[str, Mapping]]", per_seed: bool = False) -> pd.DataFrame:
    """One row per results record (``(label, record)``, label usually the file name), per-seed rows
    below each when ``per_seed``. Columns: ``results``, ``model``, ``checkpoint``
    (:func:`checkpoint_label`), ``test set``, ``compat`` (:func:`compat_label`), ``row`` (``pooled`` or ``seed k``), ``threshold`` and
    the :data:`RESULTS_COLUMNS` with their arrows (percent)."""
    rows = []
    for label, r in records:
        base = {"results": label, "model": r["model"], "checkpoint": checkpoint_label(r),
                "test set": r.get("testset") or r.get("manifest", ""), "compat": compat_label(r.get("compat")),
                "row": "pooled",
                "threshold": float(r["threshold"]["value"])}
        rows.append({**base, **{results_header(k, h): r["pooled"].get(k) for k, h in RESULTS_COLUMNS}})
        if per_seed:
            for s in r.get("per_seed") or []:
                rows.append({**base, "row": f"seed {int(s['seed'])}",
                             **{results_header(k, h): s.get(k) for k, h in RESULTS_COLUMNS}})
    df = pd.DataFrame(rows)
    if not per_seed and not df.empty:
        df = df.drop(columns="row")
    return df


def results_table_text(table: pd.DataFrame) -> str:
    """The table as text: metrics with one decimal, the threshold with the significant digits that
    tell its values apart (:func:`distinguishing_digits`), then the legend."""
    d = distinguishing_digits(table["threshold"].tolist()) if "threshold" in table else 4

    def metric(v: object) -> str:
        return "nan" if v is None or v != v else f"{float(v):.1f}"  # type: ignore[arg-type]

    formatters = {c: metric for c in table.columns if c not in ("results", "model", "checkpoint", "test set", "compat", "row")}
    formatters["threshold"] = lambda v: f"{float(v):.{d}g}"
    return table.to_string(index=False, formatters=formatters) + "\n\n" + RESULTS_LEGEND
