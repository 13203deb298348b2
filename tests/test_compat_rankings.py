"""Issue 15 item 5: rankings under each compatibility variant, pair by pair, against hand-made tables
and a brute-force permutation check."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from vssl_helpers.report.compat_rankings import ranking_survival, rankings_summary, survival_matrix


def _effects(values: dict[str, dict[str, tuple[float, float]]]) -> pd.DataFrame:
    """values[variant][model] = (ciou_uth, pia_noise)."""
    return pd.DataFrame([{"variant": v, "model": m, "ciou_uth": c, "pia_noise": p}
                         for v, by in values.items() for m, (c, p) in by.items()])


def test_flips_ties_and_directions():
    eff = _effects({
        "default": {"a": (50, 1), "b": (40, 5), "c": (30, 9)},
        "same": {"a": (55, 2), "b": (41, 6), "c": (1, 90)},        # values move, orders do not
        "swap": {"a": (39, 5), "b": (40, 1), "c": (30, 9)},         # a/b flip on both columns
        "tie": {"a": (40, 1), "b": (40, 5), "c": (30, 9)},          # a tie appears on cIoU
    })
    s = ranking_survival(eff, ["ciou_uth", "pia_noise"]).set_index(["variant", "column"])
    assert s.loc[("same", "ciou_uth"), "survives"] and s.loc[("same", "pia_noise"), "survives"]
    assert s.loc[("swap", "ciou_uth"), "flipped"] == "a/b" and s.loc[("swap", "pia_noise"), "flipped"] == "a/b"
    assert s.loc[("default", "pia_noise"), "default_order"] == "a > b > c"  # lower pIA first
    assert s.loc[("tie", "ciou_uth"), "flipped"] == "a/b" and s.loc[("tie", "pia_noise"), "survives"]
    assert s.loc[("swap", "ciou_uth"), "max_default_gap"] == 10 and s.loc[("swap", "pia_noise"), "max_default_gap"] == 4
    m = survival_matrix(ranking_survival(eff, ["ciou_uth", "pia_noise"]))
    assert list(m.index) == ["same", "swap", "tie"] and m.loc["same", "cIoU U.th."] == "✓"
    assert m.loc["swap", "pIA noise"] == "1 flip(s)"
    text = rankings_summary(ranking_survival(eff, ["ciou_uth", "pia_noise"]), 3, 96)
    assert "1 of 3 variants" in text and "(same)" in text and "swap reorders cIoU U.th., pIA noise" in text
    assert "at most 10.00 pp apart" in text and "separates clearly" in text
    with pytest.raises(ValueError, match="two models"):
        ranking_survival(eff[eff["model"] == "a"])


@pytest.mark.parametrize("seed", range(10))
def test_survives_iff_the_sorted_order_is_unchanged(seed):
    rng = np.random.default_rng(seed)
    models = [f"m{i}" for i in range(5)]
    base = rng.permutation(5).astype(float)
    var = base.copy() if seed % 2 else rng.permutation(5).astype(float)  # distinct values: no ties
    eff = pd.DataFrame([{"variant": v, "model": m, "ciou_uth": x}
                        for v, vals in (("default", base), ("v", var)) for m, x in zip(models, vals)])
    s = ranking_survival(eff, ["ciou_uth"]).set_index("variant").loc["v"]
    assert s["survives"] == (list(np.argsort(base)) == list(np.argsort(var)))
    flips = sum((base[i] - base[j]) * (var[i] - var[j]) < 0 for i, j in combinations(range(5), 2))
    assert s["n_flipped"] == flips
