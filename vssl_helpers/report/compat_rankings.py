r"""Reference-code effects on the conclusions (issue 15 item 5): which model rankings survive each
compatibility switch.

:func:`vssl_helpers.report.compat_effects.compat_effects` scores every model once per switch (metric
switches rescore the stored maps, audio switches recompute only the silence and noise maps they
touch). Here each Table I column's *ranking* of the models under a variant is compared with the
default ranking, pair by pair: the pair (a, b) **flips** when the sign of :math:`v_a - v_b`
changes (a tie that appears or disappears counts as a flip, so nothing is hidden). A ranking
**survives** a variant when no pair flips.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from .compat_effects import TABLE_COLUMNS

__all__ = ["ranking_survival", "survival_matrix", "rankings_summary"]


def _order(values: pd.Series, higher_better: bool) -> list[str]:
    return list(values.sort_values(ascending=not higher_better, kind="stable").index)


def ranking_survival(effects: pd.DataFrame, columns: Sequence[str] = tuple(TABLE_COLUMNS),
                     tol: float = 1e-9) -> pd.DataFrame:
    """One row per (variant, column) of a :func:`~vssl_helpers.report.compat_effects.compat_effects`
    table with at least two models: the default order (best first: pIA lower is better, every other
    column higher), the variant's order, the flipped pairs (``"a/b"``; differences within ``tol``
    are ties), ``max_default_gap`` (the largest default difference of a flipped pair, in the
    column's units: how close the pairs that swap were to begin with) and ``survives``.

    Raises:
        ValueError: fewer than two models, or no ``default`` variant.
    """
    models = list(dict.fromkeys(effects["model"]))
    if len(models) < 2:
        raise ValueError(f"ranking_survival: need at least two models, got {models}")
    if "default" not in set(effects["variant"]):
        raise ValueError("ranking_survival: no 'default' variant to compare with")
    table = effects.set_index(["variant", "model"])
    rows = []
    for variant in dict.fromkeys(effects["variant"]):
        for c in columns:
            hb = not c.startswith("pia_")
            base = table.loc["default"][c].reindex(models)
            var = table.loc[variant][c].reindex(models)
            flips, gaps = [], []
            for a, b in combinations(models, 2):
                s0 = np.sign(base[a] - base[b]) if abs(base[a] - base[b]) > tol else 0.0
                s1 = np.sign(var[a] - var[b]) if abs(var[a] - var[b]) > tol else 0.0
                if s0 != s1:
                    flips.append(f"{a}/{b}")
                    gaps.append(abs(float(base[a] - base[b])))
            rows.append({"variant": variant, "column": c, "header": TABLE_COLUMNS.get(c, c),
                         "default_order": " > ".join(_order(base, hb)), "variant_order": " > ".join(_order(var, hb)),
                         "flipped": ", ".join(flips), "n_flipped": len(flips),
                         "max_default_gap": max(gaps) if gaps else 0.0, "survives": not flips})
    return pd.DataFrame(rows)


def survival_matrix(survival: pd.DataFrame) -> pd.DataFrame:
    """Variants × Table I headers: ``✓`` where the ranking survives, else the number of flipped pairs."""
    mark = survival.assign(mark=np.where(survival["survives"], "✓", survival["n_flipped"].astype(str) + " flip(s)"))
    out = mark.pivot(index="variant", columns="header", values="mark")
    out = out.reindex(index=list(dict.fromkeys(survival["variant"])), columns=list(dict.fromkeys(survival["header"])))
    return out.drop(index="default", errors="ignore")


def rankings_summary(survival: pd.DataFrame, n_models: int, n_samples: int) -> str:
    """The chapter's "What this shows" paragraph, generated from :func:`ranking_survival`."""
    var = survival[survival["variant"] != "default"]
    if var.empty:
        raise ValueError("rankings_summary: no variant besides the default")
    per_variant = var.groupby("variant", sort=False)["survives"].agg(["sum", "size"])
    intact = [v for v, r in per_variant.iterrows() if r["sum"] == r["size"]]
    broken = var[~var["survives"]]
    text = (f"Over {n_models} models and {n_samples} negatives of each type, {len(intact)} of {len(per_variant)} "
            f"variants leave every Table I ranking intact"
            + (f" ({', '.join(intact)})" if intact else "") + ".")
    if broken.empty:
        return text + " No deviation of the reference code changes which model wins any column here."
    worst = broken.groupby("variant", sort=False)["n_flipped"].sum().sort_values(ascending=False)
    details = []
    for v in worst.index[:4]:
        cols = broken[broken["variant"] == v]
        details.append(f"{v} reorders {', '.join(cols['header'])} (e.g. {cols['flipped'].iloc[0]})")
    gap = float(broken["max_default_gap"].max())
    g = broken.loc[broken["max_default_gap"].idxmax()]
    text += (f" Every pair that swaps was at most {gap:.2f} pp apart under the default scoring ({g['header']}, "
             f"{g['flipped'].split(', ')[0]} under {g['variant']})"
             + (": the deviations reorder only models that the default already barely separates."
                if gap < 1.0 else ": some deviations reorder models that the default separates clearly."))
    cols_hit = broken.groupby("header")["variant"].nunique().sort_values(ascending=False)
    return (text + " " + "; ".join(details) + ". The most fragile column is "
            f"{cols_hit.index[0]} ({cols_hit.iloc[0]} variant(s) reorder it); a conclusion drawn from it depends on "
            "which code computed it.")
