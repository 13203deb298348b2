"""The paper's printed Table I: F_LOC and F_AUC recomputed from the printed cells.

Each printed value c (2 decimals, percent) stands for the interval [c - 0.005, c + 0.005]. The F
values compatible with a row are an interval (H is increasing in both arguments); it is computed
here by brute force over every corner of the cells' rounding box, independently of the package's
monotonicity argument.
"""

import itertools

import pytest

from vssl_helpers.report.tables import (
    TABLE1_COLUMNS,
    inconsistent_cells,
    load_paper_table1,
    recompute_f_scores,
)

E = 0.005
NEG = ("silence", "noise", "offscreen")


def H(a, b):
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def corner_range(f, centres):
    vals = [f(*c) for c in itertools.product(*[(x - E, x + E) for x in centres])]
    return min(vals), max(vals)


def test_table_shape():
    t = load_paper_table1()
    assert len(t) == 14
    assert sorted(t.test_set.unique()) == ["is3", "vggss"]
    assert list(t.model[:7]) == ["RCGrad", "LVS", "EZ-VSL", "FNAC", "SLAVC", "SSL-TIE", "SSL-Align"]
    assert all(c in t.columns for c in TABLE1_COLUMNS)
    # spot checks against the paper's text
    row = t[(t.test_set == "vggss") & (t.model == "SSL-TIE")].iloc[0]
    assert (row.ciou_uth, row.f_loc, row.f_auc) == (18.67, 31.41, 32.68)
    row = t[(t.test_set == "is3") & (t.model == "SSL-Align")].iloc[0]
    assert (row.ciou_adap, row.pia_silence, row.f_auc) == (63.10, 1.86, 37.99)


def test_f_intervals_match_brute_force_corners():
    t = load_paper_table1()
    check = recompute_f_scores(t)
    for (_, r), (_, c) in zip(t.iterrows(), check.iterrows()):
        floc = lambda ci, ps, pn, po: 100 * H(ci / 100, 1 - (ps + pn + po) / 300)
        fauc = lambda a, s, n, o: 100 * H(a / 100, (s + n + o) / 300)
        lo, hi = corner_range(floc, [r.ciou_uth] + [r[f"pia_{k}"] for k in NEG])
        assert c.f_loc_min == pytest.approx(lo, abs=1e-9) and c.f_loc_max == pytest.approx(hi, abs=1e-9)
        lo, hi = corner_range(fauc, [r.auc_uth] + [r[f"auc_n_{k}"] for k in NEG])
        assert c.f_auc_min == pytest.approx(lo, abs=1e-9) and c.f_auc_max == pytest.approx(hi, abs=1e-9)


def test_exact_set_of_inconsistent_printed_f_values():
    # RCGrad's F_AUC repeats its F_LOC on both test sets (the cells give 21.44 and 4.95), and
    # SSL-TIE's IS3 F_AUC (31.15) cannot follow from AUC 17.39 (its cIoU U.th. is also 17.39).
    assert set(inconsistent_cells(load_paper_table1())) == {
        ("vggss", "RCGrad", "f_auc"),
        ("is3", "RCGrad", "f_auc"),
        ("is3", "SSL-TIE", "f_auc"),
    }
    check = recompute_f_scores(load_paper_table1()).set_index(["test_set", "model"])
    assert check.loc[("vggss", "RCGrad"), "f_auc_recomputed"] == pytest.approx(21.44, abs=0.01)
    assert check.loc[("is3", "RCGrad"), "f_auc_recomputed"] == pytest.approx(4.95, abs=0.01)
    assert check.loc[("is3", "SSL-TIE"), "f_auc_gap"] > 1.5
    assert check.f_loc_consistent.all()


def test_exact_table_has_no_slack():
    t = load_paper_table1().head(1).copy()
    t["f_loc"] = recompute_f_scores(t).f_loc_recomputed
    t["f_auc"] = recompute_f_scores(t).f_auc_recomputed
    assert inconsistent_cells(t, half_width=0) == []
    t.loc[t.index[0], "f_loc"] += 0.001
    assert inconsistent_cells(t, half_width=0) == [("vggss", "RCGrad", "f_loc")]
