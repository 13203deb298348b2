"""Beyond the paper (issue 15, items 1-3): vssl_helpers.report.robustness against independent
computations: AUROC against a brute-force pair count, the bootstrap's coverage on distributions with
a known mean, the quantile rules against numpy.quantile, the cells against the metrics module and the
engine, and the generated sentences on hand-made inputs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from vssl_helpers import metrics as M
from vssl_helpers.report import robustness as R


def brute_auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Every (positive, negative) pair: 1 if the positive scores higher, 1/2 on a tie."""
    total = 0.0
    for p in pos:
        for n in neg:
            total += 1.0 if p > n else (0.5 if p == n else 0.0)
    return total / (len(pos) * len(neg))


# ---------------------------------------------------------------------------------------- item 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_roc_area_equal_the_brute_force_pair_count(seed):
    rng = np.random.default_rng(seed)
    # small integers: many ties, within and across the two groups
    pos = rng.integers(0, 6, size=37).astype(float)
    neg = rng.integers(0, 5, size=23).astype(float)
    expected = brute_auroc(pos, neg)
    assert M.auroc(pos, neg) == pytest.approx(expected, abs=1e-12)
    fpr, tpr = R.roc_curve(pos, neg)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(expected, abs=1e-12)


def test_roc_of_hand_made_scores():
    fpr, tpr = R.roc_curve([3.0, 2.0], [2.0, 1.0])
    # thresholds 3, 2, 1: tpr 1/2, 1, 1; fpr 0, 1/2, 1
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert brute_auroc(np.array([3.0, 2.0]), np.array([2.0, 1.0])) == 0.875
    with pytest.raises(ValueError, match="negative"):
        R.roc_curve([1.0], [])


def _fake_result(maxima: dict[str, np.ndarray]) -> SimpleNamespace:
    return SimpleNamespace(maxima={k: torch.as_tensor(v) for k, v in maxima.items()})


def test_audio_sensitivity_table_is_the_pair_count_per_type():
    rng = np.random.default_rng(3)
    res = {}
    for m, shift in (("listens", 2.0), ("blind", 0.0)):
        pos = rng.normal(shift, 1, 30)
        res[m] = _fake_result({"positive": pos, "silence": rng.normal(0, 1, 60),
                               "noise": rng.normal(0, 1, 60), "offscreen": rng.normal(0.5, 1, 60)})
    table = R.audio_sensitivity(res)
    for m, r in res.items():
        for k in ("silence", "noise", "offscreen"):
            assert table.loc[m, k] == pytest.approx(brute_auroc(r.maxima["positive"].numpy(), r.maxima[k].numpy()))
    assert table.loc["listens", "mean"] > 0.8 > table.loc["blind", "mean"]


def test_sensitivity_sentence_from_hand_made_values():
    table = pd.DataFrame({"silence": [0.99, 0.5], "noise": [0.95, 0.5], "offscreen": [0.91, 0.3]},
                         index=["good", "blind"])
    table["mean"] = table.mean(axis=1)
    text = R.sensitivity_sentence(table)
    assert text.startswith("good separates positive from negative audio")
    assert "blind is near or below chance" in text
    assert "The hardest negative type is offscreen (mean AUROC 0.60" in text
    assert "lowest value is 0.30 (blind, offscreen)" in text


# ---------------------------------------------------------------------------------------- item 2


def _values(rng: np.random.Generator, n: int = 50, s: int = 3, nan_rows: tuple[int, ...] = ()) -> R.SampleValues:
    iou = rng.beta(2, 3, n)
    iou[list(nan_rows)] = np.nan
    adap = rng.beta(3, 2, n)
    adap[list(nan_rows)] = np.nan
    sil = rng.beta(1, 8, n)
    pia = {"silence": np.tile(sil, (s, 1)), "noise": rng.beta(1, 6, (s, n)), "offscreen": rng.beta(1, 4, (s, n))}
    return R.SampleValues(iou=iou, iou_adap=adap, pia=pia, threshold=0.5)


def test_cells_equal_the_metrics_module_on_pooled_values():
    v = _values(np.random.default_rng(4), nan_rows=(2, 7))
    cells = R.table1_cells(v)
    pooled = {k: torch.as_tensor(p.ravel()) for k, p in v.pia.items()}
    iou, adap = torch.as_tensor(v.iou), torch.as_tensor(v.iou_adap)
    expected = {
        "ciou_uth": M.mean_iou(iou), "ciou_adap": M.success_rate(adap, 0.5), "auc_uth": M.auc(iou),
        "auc_adap": M.auc(adap),
        **{f"pia_{k}": float(p.mean()) for k, p in pooled.items()},
        **{f"auc_n_{k}": M.auc_n(p) for k, p in pooled.items()},
    }
    expected["f_loc"] = M.f_loc(expected["ciou_uth"], {k: expected[f"pia_{k}"] for k in pooled})
    expected["f_auc"] = M.f_auc(expected["auc_uth"], {k: expected[f"auc_n_{k}"] for k in pooled})
    for c in R.CELLS:
        assert cells[c] == pytest.approx(100 * expected[c], abs=1e-10), c


def test_cells_from_stored_maps_equal_the_engine_row():
    from vssl_helpers.engine import ExtendedMaps, summarize_extended

    g = torch.Generator().manual_seed(5)
    n, s = 12, 3
    maps = ExtendedMaps(positive=torch.rand(n, 7, 7, generator=g), silence=0.6 * torch.rand(n, 7, 7, generator=g),
                        noise=0.8 * torch.rand(s, n, 7, 7, generator=g), offscreen=torch.rand(s, n, 7, 7, generator=g),
                        offscreen_index=np.zeros((s, n), dtype=int))
    gt = torch.zeros(n, 224, 224, dtype=torch.bool)
    for i in range(n):
        gt[i, 10 * i: 10 * i + 90, 20:150] = True
    gt[3] = False  # an empty GT: excluded from the positive columns by both
    row = summarize_extended(maps, gt, 0.7)[0]
    cells = R.table1_cells(R.sample_values(maps, gt, 0.7))
    for c in R.CELLS:
        assert cells[c] == pytest.approx(row[c], abs=1e-9), c


def test_bootstrap_intervals_cover_a_known_mean_at_the_stated_rate():
    """200 data sets with a known mean IoU (Beta(2, 5): 2/7) and a known mean pIA (Beta(1, 4): 1/5);
    the share of 95 % intervals containing it must be within the binomial 99.9 % range of 95 %."""
    rng = np.random.default_rng(6)
    repeats, n = 200, 60
    hits = {"ciou_uth": 0, "pia_noise": 0}
    truth = {"ciou_uth": 100 * 2 / 7, "pia_noise": 100 / 5}
    for r in range(repeats):
        v = R.SampleValues(iou=rng.beta(2, 5, n), iou_adap=rng.beta(2, 5, n),
                           pia={"silence": np.zeros((2, n)), "noise": rng.beta(1, 4, (2, n)), "offscreen": np.zeros((2, n))},
                           threshold=0.5)
        cells, _ = R.bootstrap_table({"m": v}, n_resamples=400, seed=r)
        for c in hits:
            row = cells[cells["cell"] == c].iloc[0]
            hits[c] += int(row["low"] <= truth[c] <= row["high"])
    lo, hi = stats.binom.interval(0.999, repeats, 0.95)
    for c, k in hits.items():
        assert lo <= k <= hi, f"{c}: {k}/{repeats} intervals cover the true mean (expected {lo:.0f}..{hi:.0f})"


def test_sample_values_reject_adaptive_ious_of_another_length():
    from vssl_helpers.engine import ExtendedMaps

    maps = ExtendedMaps(positive=torch.rand(4, 7, 7), silence=torch.rand(4, 7, 7), noise=torch.rand(1, 4, 7, 7),
                        offscreen=torch.rand(1, 4, 7, 7), offscreen_index=np.zeros((1, 4), dtype=int))
    gt = torch.ones(4, 224, 224, dtype=torch.bool)
    with pytest.raises(ValueError, match="iou_adap: expected 4 values"):
        R.sample_values(maps, gt, 0.5, iou_adap=np.zeros(3))


def test_paired_differences_detect_a_shift_and_not_noise():
    rng = np.random.default_rng(7)
    a = _values(rng, n=80)
    same = R.SampleValues(iou=a.iou.copy(), iou_adap=a.iou_adap.copy(), pia={k: p.copy() for k, p in a.pia.items()}, threshold=0.5)
    better = R.SampleValues(iou=np.clip(a.iou + 0.1, 0, 1), iou_adap=a.iou_adap, pia={k: 0.5 * p for k, p in a.pia.items()}, threshold=0.5)
    cells, pairs = R.bootstrap_table({"a": a, "same": same, "better": better}, n_resamples=300, seed=0)
    pair = pairs.set_index(["cell", "a", "b"])
    assert not pair.loc[("ciou_uth", "a", "same"), "significant"]
    assert pair.loc[("ciou_uth", "a", "same"), "difference"] == 0
    assert pair.loc[("ciou_uth", "a", "better"), "significant"]
    assert pair.loc[("ciou_uth", "a", "better"), "better"] == "better"
    assert pair.loc[("pia_noise", "a", "better"), "better"] == "better"  # lower pIA is better
    assert pair.loc[("pia_noise", "a", "better"), "significant"]
    # the point values are the cells of all samples
    got = cells.set_index(["model", "cell"])["value"]
    for c, x in R.table1_cells(a).items():
        assert got[("a", c)] == pytest.approx(x)
    assert (cells["low"] <= cells["value"] + 1e-9).all() and (cells["value"] <= cells["high"] + 1e-9).all()


def test_bootstrap_is_reproducible_and_rejects_bad_input():
    v = _values(np.random.default_rng(8), n=30)
    c1, _ = R.bootstrap_table({"m": v}, n_resamples=100, seed=3)
    c2, _ = R.bootstrap_table({"m": v}, n_resamples=100, seed=3)
    pd.testing.assert_frame_equal(c1, c2)
    short = _values(np.random.default_rng(9), n=20)
    with pytest.raises(ValueError, match="different sample counts"):
        R.bootstrap_table({"m": v, "k": short})
    with pytest.raises(ValueError, match="confidence"):
        R.bootstrap_table({"m": v}, confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        R.bootstrap_table({"m": v}, n_resamples=1)


def test_per_seed_spread_is_numpy_over_the_seed_rows():
    rows = [{c: float(i + j) for j, c in enumerate(R.CELLS)} for i in (1.0, 2.0, 6.0)]
    spread = R.per_seed_spread({"m": SimpleNamespace(per_seed=rows)}).set_index("cell")
    assert spread.loc["f_loc", "mean"] == pytest.approx(np.mean([r["f_loc"] for r in rows]))
    assert spread.loc["f_loc", "sd"] == pytest.approx(np.std([1, 2, 6], ddof=1))
    assert (spread.loc["ciou_uth", "min"], spread.loc["ciou_uth", "max"]) == (1.0, 6.0)


def test_uncertainty_sentence_from_hand_made_frames():
    cells = pd.DataFrame([
        {"model": "a", "cell": c, "value": 50.0, "low": 49.0, "high": 51.0} for c in R.CELLS] + [
        {"model": "b", "cell": c, "value": 40.0, "low": 30.0, "high": 50.0} for c in R.CELLS])
    pairs = pd.DataFrame([{"cell": c, "a": "a", "b": "b", "difference": 10.0, "low": -1.0 if c == "f_loc" else 2.0,
                           "high": 20.0, "better": "a", "significant": c != "f_loc"} for c in R.CELLS])
    text = R.uncertainty_sentence(cells, pairs)
    assert "The widest 95 % interval is 20.00 points (b, ciou_uth)" in text
    assert "11 of 12 pairwise orderings" in text
    # pIA: lower is better, so b (40) is first there, and the f_loc pair is the one not significant
    assert "not significantly ahead of the second in 1 cell(s): f_loc (a over b)" in text


# ---------------------------------------------------------------------------------------- item 3


def test_threshold_quantile_rule_is_numpy_linear():
    from vssl_helpers.threshold import quantile_linear

    rng = np.random.default_rng(10)
    x = rng.normal(size=101)
    for q in (0.0, 0.25, 0.5, 0.75, 0.9, 0.97, 1.0):
        assert quantile_linear(x, q) == pytest.approx(np.quantile(x, q, method="linear"), abs=1e-12)


def test_quantile_thresholds_against_numpy_quantile():
    rng = np.random.default_rng(11)
    maxima = {"positive": rng.normal(1, 1, 40), "silence": rng.normal(0, 1, 40),
              "noise": rng.normal(0.2, 0.5, 80), "offscreen": rng.normal(0.4, 2, 80)}
    table = R.quantile_thresholds(maxima)
    assert list(table.index) == ["median", "Q3", "P90", "max"]
    for rule, q in R.QUANTILE_RULES.items():
        per = {k: np.quantile(maxima[k], q, method="linear") for k in ("silence", "noise", "offscreen")}
        for k, v in per.items():
            assert table.loc[rule, k] == pytest.approx(v, abs=1e-12)
        assert table.loc[rule, "threshold"] == pytest.approx(max(per.values()), abs=1e-12)
        assert table.loc[rule, "decisive type"] == max(per, key=per.get)
    assert table.loc["max", "threshold"] == pytest.approx(max(maxima[k].max() for k in ("silence", "noise", "offscreen")))


def test_threshold_curve_is_monotone_where_the_metrics_must_be():
    from vssl_helpers.engine import ExtendedMaps

    g = torch.Generator().manual_seed(12)
    n, s = 10, 2
    maps = ExtendedMaps(positive=torch.rand(n, 7, 7, generator=g), silence=torch.rand(n, 7, 7, generator=g),
                        noise=torch.rand(s, n, 7, 7, generator=g), offscreen=torch.rand(s, n, 7, 7, generator=g),
                        offscreen_index=np.zeros((s, n), dtype=int))
    gt = torch.zeros(n, 224, 224, dtype=torch.bool)
    gt[:, 50:150, 50:150] = True
    curve = R.threshold_curve(maps, gt, np.linspace(-0.1, 1.1, 13))
    for k in ("silence", "noise", "offscreen"):  # pIA can only fall as the threshold rises
        assert (np.diff(curve[f"pia_{k}"]) <= 1e-12).all()
        assert curve[f"pia_{k}"].iloc[0] == 100 and curve[f"pia_{k}"].iloc[-1] == 0
    assert curve["ciou_uth"].iloc[-1] == 0  # an empty map overlaps nothing
    assert curve["ciou_adap"].nunique() == 1  # the adaptive column ignores the threshold


def _sensitivity_table() -> pd.DataFrame:
    rows = []
    values = {"Q3": {"x": 60.0, "y": 50.0, "z": 40.0}, "max": {"x": 30.0, "y": 50.0, "z": 40.0}}
    for rule, by_model in values.items():
        for m, v in by_model.items():
            rows.append({"test_set": "s", "model": m, "rule": rule, "threshold": 0.0,
                         **{c: (v if c == "f_loc" else 10.0) for c in R.CELLS}})
    rows.append({"test_set": "s", "model": "oracle", "rule": "Q3", "threshold": 0.0, **{c: 99.0 for c in R.CELLS}})
    rows.append({"test_set": "s", "model": "oracle", "rule": "max", "threshold": 0.0, **{c: 0.0 for c in R.CELLS}})
    return pd.DataFrame(rows)


def test_ranking_changes_on_a_hand_made_swap():
    ch = R.ranking_changes(_sensitivity_table(), cells=["f_loc", "pia_noise"], exclude=["oracle"]).set_index("cell")
    assert ch.loc["f_loc", "Q3 order"] == "x > y > z"
    assert ch.loc["f_loc", "order"] == "y > z > x"
    assert not ch.loc["f_loc", "same order"] and not ch.loc["f_loc", "same best"]
    # ranks (x, y, z): Q3 (0, 1, 2), max (2, 0, 1): 1 concordant pair of 3 -> tau = (1 - 2) / 3
    assert ch.loc["f_loc", "kendall tau"] == pytest.approx(-1 / 3)
    assert ch.loc["pia_noise", "same order"]  # all tied: the stable order is kept
    text = R.threshold_sentence(ch.reset_index())
    assert "keeps the whole ranking of the models in 1 of 2" in text and "best model in 1 of 2" in text
    assert "moves most for f_loc on s under the max rule (Kendall τ = -0.33" in text
    assert "no ranking left" not in text
    assert "The best model changes in 1 cell(s) under max." in text
    with pytest.raises(ValueError, match="baseline"):
        R.ranking_changes(_sensitivity_table(), baseline="P99")


def test_ranking_changes_compare_values_as_printed():
    """Differences below the printed precision are ties (as Table I's marks): a swap of two models
    0.003 points apart is no change of ranking; pIA ranks lowest first."""
    rows = []
    for rule, vals in (("Q3", {"a": 0.011, "b": 0.014, "c": 3.0}), ("P90", {"a": 0.014, "b": 0.011, "c": 0.5})):
        for m, v in vals.items():
            rows.append({"test_set": "s", "model": m, "rule": rule, **{c: v for c in R.CELLS}})
    ch = R.ranking_changes(pd.DataFrame(rows), cells=["pia_noise", "f_loc"]).set_index("cell")
    assert ch.loc["pia_noise", "Q3 order"] == "a = b > c"
    assert ch.loc["pia_noise", "order"] == "a = b > c"
    assert ch.loc["pia_noise", "same order"] and ch.loc["pia_noise", "kendall tau"] == 1.0
    assert ch.loc["f_loc", "Q3 order"] == "c > a = b"
    assert ch.loc["f_loc", "order"] == "c > a = b"
    assert bool(ch.loc["f_loc", "same best"])
    # a rule under which every model prints the same value leaves no ranking: said as such
    rows = [{"test_set": "s", "model": m, "rule": rule, **{c: (v if rule == "Q3" else 0.0) for c in R.CELLS}}
            for rule in ("Q3", "max") for m, v in (("a", 1.0), ("b", 2.0))]
    ch = R.ranking_changes(pd.DataFrame(rows), cells=["pia_noise"])
    assert ch["order"].iloc[0] == "a = b" and ch["kendall tau"].iloc[0] == 0.0
    text = R.threshold_sentence(ch)
    assert "In 1 case(s) the rule leaves every model with the same printed value (no ranking left), e.g. pia_noise under max." in text
    assert "moves most" not in text


def test_quantile_sensitivity_applies_the_reference_threshold_and_keeps_fixed_ones():
    from vssl_helpers.engine import ExtendedMaps, maxima_by_type
    from vssl_helpers.threshold import UniversalThreshold

    g = torch.Generator().manual_seed(13)
    n, s = 8, 2

    def result(fixed: bool) -> SimpleNamespace:
        maps = ExtendedMaps(positive=torch.rand(n, 7, 7, generator=g), silence=torch.rand(n, 7, 7, generator=g),
                            noise=torch.rand(s, n, 7, 7, generator=g), offscreen=torch.rand(s, n, 7, 7, generator=g),
                            offscreen_index=np.zeros((s, n), dtype=int))
        gt = torch.zeros(n, 224, 224, dtype=torch.bool)
        gt[:, 20:120, 40:200] = True
        thr = UniversalThreshold(0.75, "fixed 0.75") if fixed else UniversalThreshold(0.5, "max over ...")
        return SimpleNamespace(maps=maps, gt=gt, maxima=maxima_by_type(maps), threshold=thr)

    results = {"ref": {"u": result(False), "f": result(True)}, "other": {"u": result(False), "f": result(True)}}
    table = R.quantile_sensitivity(results, "ref").set_index(["test_set", "model", "rule"])
    expected = R.quantile_thresholds(results["ref"]["u"].maxima)["threshold"]
    for rule in R.QUANTILE_RULES:
        assert table.loc[("other", "u", rule), "threshold"] == pytest.approx(expected[rule])
        assert table.loc[("ref", "f", rule), "threshold"] == 0.75
    with pytest.raises(ValueError, match="reference_set"):
        R.quantile_sensitivity(results, "nope")


def test_quantile_sensitivity_reuses_a_default_row_only_at_its_own_threshold():
    """A run scored by default at the rule's threshold contributes its stored Table I row (equal to
    the recomputed cells, checked against the engine above); every other rule is recomputed."""
    from vssl_helpers.engine import ExtendedMaps, maxima_by_type, summarize_extended
    from vssl_helpers.threshold import universal_threshold

    g = torch.Generator().manual_seed(14)
    n, s = 8, 2
    maps = ExtendedMaps(positive=torch.rand(n, 7, 7, generator=g), silence=torch.rand(n, 7, 7, generator=g),
                        noise=torch.rand(s, n, 7, 7, generator=g), offscreen=torch.rand(s, n, 7, 7, generator=g),
                        offscreen_index=np.zeros((s, n), dtype=int))
    gt = torch.zeros(n, 224, 224, dtype=torch.bool)
    gt[:, 30:160, 30:160] = True
    maxima = maxima_by_type(maps)
    thr = universal_threshold({k: maxima[k] for k in ("silence", "noise", "offscreen")}, 0.75)
    row = summarize_extended(maps, gt, thr.value)[0]
    marked = {**row, "f_loc": -1.0}  # a marker: shows where the stored row was used
    prov = {"compat": {"effective": {"x": False}}, "engine": {"empty_gt": "exclude"}}
    r = SimpleNamespace(maps=maps, gt=gt, maxima=maxima, threshold=thr, row=marked, provenance=prov)
    table = R.quantile_sensitivity({"ref": {"m": r}}, "ref").set_index("rule")
    assert table.loc["Q3", "f_loc"] == -1.0
    assert table.loc["median", "f_loc"] >= 0
    compat = SimpleNamespace(**{**vars(r), "provenance": {"compat": {"effective": {"x": True}}, "engine": {}}})
    table = R.quantile_sensitivity({"ref": {"m": compat}}, "ref").set_index("rule")
    assert table.loc["Q3", "f_loc"] == pytest.approx(row["f_loc"], abs=1e-9)


# ---------------------------------------------------------------------------------------- the book part


def test_real_book_toc_keeps_the_beyond_the_paper_part(tmp_path):
    """The committed table of contents is in parts; a real-data book's generated one keeps them, with
    its executed chapters in book/real and the embedded-only chapters dropped."""
    import shutil

    import yaml

    from vssl_helpers.pipeline import NotebookSpec, repo_root, write_real_toc

    root = tmp_path
    shutil.copy(repo_root() / "_toc.yml", root / "_toc.yml")
    names = ["metric_definitions", "threshold_analysis_lvs", "results_tables", "beyond_audio_sensitivity",
             "beyond_uncertainty", "beyond_threshold_sensitivity"]
    # the threshold page is the per-model copy of its template
    specs = [NotebookSpec(f"notebooks/{n.removesuffix('_lvs')}.ipynb", f"{n}.ipynb") for n in names]
    toc = yaml.safe_load(write_real_toc(specs, root, root / "book" / "real").read_text())
    parts = {p["caption"]: [c["file"] for c in p["chapters"]] for p in toc["parts"]}
    assert parts["Beyond the paper"] == [f"book/real/{n}" for n in names[3:]]
    first = parts["The companion"]
    assert "book/real/threshold_analysis_lvs" in first and "book/real/results_tables" in first
    assert not any("embedded_benchmark" in f or "book/generated" in f for f in first)
    assert "book/models/index" in first and "book/cite" in first
