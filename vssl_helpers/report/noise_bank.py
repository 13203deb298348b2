"""Is the noise bank equivalent? (issue 15 item 7)

A manifest's opt-in noise bank (:func:`vssl_helpers.negatives.with_noise_bank`) shares K noise clips
per seed between all samples, so the engine encodes ``K × S`` noise clips instead of one per sample
and seed. Positive, silence and off-screen maps are unchanged; the noise maps, hence the noise
columns, the threshold (through the noise maxima) and everything downstream may move. This module
compares a bank run with the per-sample run of the same model and manifest, column by column,
against the per-sample run's own **seed-to-seed spread** (the standard deviation, ddof=1, of its
per-seed rows): a column is *within* when ``|bank − per-sample| <= spread``, and *within range*
when the bank's pooled value lies between the smallest and largest per-seed value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .compat_effects import TABLE_COLUMNS

__all__ = ["BANK_MODELS", "EQUIVALENCE_COLUMNS", "bank_equivalence", "equivalence_summary"]

BANK_MODELS: tuple[str, ...] = ("demo-ezvsl", "demo-lvs", "demo-negaware")
"""The book chapter's models: the trained demo models, which hear the noise (the audio-blind saliency
baseline gives identical maps with or without a bank; ``benchmarks/noise_bank.py`` includes it)."""

EQUIVALENCE_COLUMNS: tuple[str, ...] = ("threshold", *TABLE_COLUMNS, "auroc_noise")
"""Checked columns: the universal threshold, every Table I column, the noise AUROC."""


def bank_equivalence(plain: Any, bank: Any, columns: Sequence[str] = EQUIVALENCE_COLUMNS) -> pd.DataFrame:
    """One row per column: per-sample value, bank value, difference, the per-sample run's per-seed
    spread (sd, min, max), ``within`` (|difference| <= sd, or both equal to 1e-9) and ``within_range``.

    ``plain`` and ``bank``: :class:`~vssl_helpers.engine.EvalResult` (or anything with ``row`` and
    ``per_seed``) of one model on the same test set, without and with the bank.

    Raises:
        ValueError: the two runs have different numbers of seeds.
    """
    if len(plain.per_seed) != len(bank.per_seed):
        raise ValueError(f"bank_equivalence: {len(plain.per_seed)} vs {len(bank.per_seed)} seeds; compare runs of one manifest")
    rows = []
    for c in columns:
        a, b = float(plain.row[c]), float(bank.row[c])
        seeds = np.array([float(r[c]) for r in plain.per_seed])
        sd = float(seeds.std(ddof=1)) if len(seeds) > 1 else 0.0
        d = b - a
        rows.append({"column": c, "header": TABLE_COLUMNS.get(c, c), "per_sample": a, "bank": b, "difference": d,
                     "seed_sd": sd, "seed_min": float(seeds.min()), "seed_max": float(seeds.max()),
                     "within": bool(abs(d) <= sd + 1e-9),
                     "within_range": bool(seeds.min() - 1e-9 <= b <= seeds.max() + 1e-9)})
    return pd.DataFrame(rows)


def equivalence_summary(tables: Mapping[tuple[str, int], pd.DataFrame], speedups: Mapping[int, float] | None = None) -> str:
    """A paragraph from :func:`bank_equivalence` tables keyed by (model, K) and optional engine
    speed-ups keyed by K (per-sample time / bank time)."""
    if not tables:
        raise ValueError("equivalence_summary: no table")
    parts = []
    for k in sorted({k for _, k in tables}):
        sub = {m: t for (m, kk), t in tables.items() if kk == k}
        n = sum(len(t) for t in sub.values())
        within = sum(int(t["within"].sum()) for t in sub.values())
        in_range = sum(int(t["within_range"].sum()) for t in sub.values())
        out = [f"{m}: {', '.join(t.loc[~t['within'], 'header'])}" for m, t in sub.items() if (~t["within"]).any()]
        parts.append(f"With K = {k} clips per seed, {within} of {n} (model, column) values stay within one seed-to-seed "
                     f"standard deviation of the per-sample protocol and {in_range} within its per-seed range"
                     + (f"; outside one sd: {'; '.join(out)}" if out else "")
                     + (f"; the engine runs {speedups[k]:.2f}x as fast" if speedups and k in speedups else "") + ".")
        moved = [m for m, t in sub.items() if not t.set_index("column").loc["threshold", "within"]] \
            if all("threshold" in set(t["column"]) for t in sub.values()) else []
        if moved:
            parts.append(
                f"For {', '.join(moved)} the bank moves the universal threshold (the third quartile of the noise "
                "maxima changes with the clips), and the threshold carries into the positive columns; those have no "
                "seed-to-seed spread at all (every per-seed row scores the positives at the one pooled threshold), so "
                "any change there counts as outside."
            )
    return " ".join(parts)
