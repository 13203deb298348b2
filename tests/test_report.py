"""Report helpers of the result chapters: runs through the map store, Table I styling, threshold
sweeps, Fig. 2/3 helpers and the threshold explorer widget."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vssl_helpers import metrics as M  # noqa: E402
from vssl_helpers.engine import summarize  # noqa: E402
from vssl_helpers.report import figures as F  # noqa: E402
from vssl_helpers.report import runs as R  # noqa: E402
from vssl_helpers.report import tables as T  # noqa: E402
from vssl_helpers.report.examples import blob_map  # noqa: E402
from vssl_helpers.store import MapStore  # noqa: E402
from vssl_helpers.threshold import NEGATIVE_TYPES  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two untrained demo models on tiny VGG-SS-like / IS3-like sets, through a temporary store."""
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("VSSL_CACHE", str(cache))
    sets = R.demo_test_sets(n_test_images=6, n_seeds=2)
    store = MapStore(cache / "maps")
    first = R.evaluate_models(["demo-random", "demo-saliency"], sets, store=store)
    again = R.evaluate_models(["demo-random", "demo-saliency"], sets, store=store)  # from the summary cache
    yield sets, first, again
    mp.undo()


def test_demo_test_sets_shapes(runs):
    sets, _, _ = runs
    assert set(sets) == {"vggss-like", "is3-like"}
    assert len(sets["vggss-like"].manifest) == 6 and sets["vggss-like"].dataset.config.sources == 1
    assert len(sets["is3-like"].manifest) == 6 and sets["is3-like"].dataset.config.sources == 2
    run = sets["is3-like"]
    rows = R.image_rows(run, 1)
    assert [run.manifest.ids[r] for r in rows] == run.dataset.ids[2:4]
    for r in range(len(run.manifest)):
        assert run.dataset.ids[run.sample_index(r)] == run.manifest.ids[r]


def test_threshold_comes_from_the_vggss_like_set(runs):
    _, res, _ = runs
    for m in ("demo-random", "demo-saliency"):
        assert res["is3-like"][m].threshold.value == res["vggss-like"][m].threshold.value
        assert res["vggss-like"][m].threshold.decisive_type in NEGATIVE_TYPES


def test_cached_rows_equal_computed_rows(runs):
    _, first, again = runs
    for ts in first:
        for m, r in first[ts].items():
            a, b = r.row, again[ts][m].row
            assert a.keys() == b.keys()
            for k in a:
                assert a[k] == pytest.approx(b[k], nan_ok=True), (ts, m, k)
            assert torch.equal(r.gt, again[ts][m].gt)
            # the second book run read the rows saved beside the maps, computed nothing
            assert r.provenance["summary_cache"] is None and again[ts][m].provenance["summary_cache"] is not None
            assert again[ts][m].provenance["shards"]["computed"] == 0
            assert torch.equal(r.maps.positive, again[ts][m].maps.positive)
            # the row is the in-memory summary of the same maps
            ref = summarize(r.maps, r.gt, r.threshold)
            assert ref["f_loc"] == pytest.approx(a["f_loc"])


def test_sample_maps_and_negative_audio(runs):
    sets, res, _ = runs
    r = res["vggss-like"]["demo-random"]
    maps = R.sample_maps(r, 2, seed_index=1)
    assert list(maps) == ["positive", "silence", "noise", "offscreen"]
    assert torch.equal(maps["noise"], r.maps.noise[1, 2])
    run = sets["vggss-like"]
    clips = R.negative_audio(run, 2, seed_index=1)
    keys = list(clips)
    assert keys[:3] == ["positive", "silence", "noise"] and keys[3].startswith("offscreen:")
    sid = run.manifest.ids[2]
    sample = run.dataset[run.sample_index(2)]
    assert keys[3].split(":", 1)[1] not in sample.meta["visible_categories"]
    assert not clips["silence"].any()
    np.testing.assert_array_equal(clips["noise"], run.manifest.noise(sid, 1, len(clips["positive"])))
    assert all(len(v) == len(clips["positive"]) for v in clips.values())


def test_threshold_sweep_matches_metrics(runs):
    _, res, _ = runs
    r = res["vggss-like"]["demo-saliency"]
    t = r.threshold.value
    sweep = T.threshold_sweep(r.maps, r.gt, [t, t + 10.0])
    assert sweep.loc[0, "ciou"] == pytest.approx(r.row["ciou_uth"])
    for k in NEGATIVE_TYPES:
        assert sweep.loc[0, f"pia_{k}"] == pytest.approx(r.row[f"pia_{k}"])
    assert sweep.loc[0, "f_loc"] == pytest.approx(r.row["f_loc"])
    assert sweep.loc[1, "pia_mean"] == 0.0 and sweep.loc[1, "ciou"] == 0.0
    fig = F.plot_threshold_sweep(sweep, t)
    plt.close(fig)


def test_table1_frame_marks_and_styles():
    table = T.table1_frame({
        "A": {"m1": {c: 10.0 for c in T.TABLE1_COLUMNS}, "m2": {c: 20.0 for c in T.TABLE1_COLUMNS},
              "m3": {c: 30.0 for c in T.TABLE1_COLUMNS}},
        "B": {"m1": {c: 5.0 for c in T.TABLE1_COLUMNS}, "m2": {c: 5.0 for c in T.TABLE1_COLUMNS}},
    })
    assert list(table.columns) == ["test_set", "model", *T.TABLE1_COLUMNS]
    marks = T.rank_marks(table)
    a = table["test_set"] == "A"
    assert list(marks.loc[a, "ciou_uth"]) == ["", "second", "best"]  # higher is better
    assert list(marks.loc[a, "pia_noise"]) == ["best", "second", ""]  # lower is better
    assert list(marks.loc[~a, "f_loc"]) == ["best", "best"]  # ties share the mark
    excl = T.rank_marks(table, exclude=["m3"])
    assert list(excl.loc[a, "ciou_uth"]) == ["second", "best", ""]
    html = T.style_table1(table, caption="cap").to_html()
    assert "font-weight: bold" in html and "text-decoration: underline" in html and "cap" in html
    md = T.table1_markdown(table)
    assert "**30.00**" in md and "<u>20.00</u>" in md and md.count("\n") == 1 + len(table)


def test_paper_table_ranks_follow_the_paper():
    paper = T.load_paper_table1()
    marks = T.rank_marks(paper)
    best = paper.loc[marks["f_loc"] == "best", ["test_set", "model"]].values.tolist()
    assert sorted(m for _, m in best) == ["SSL-Align", "SSL-TIE"]  # §III: best overall per test set
    lvs_noise = marks.loc[paper["model"].str.startswith("LVS"), "pia_noise"]
    assert (lvs_noise == "best").all()


def test_clipped_normalised():
    m = blob_map(7, peak=0.8, floor=0.1)
    shown = F.clipped_normalised(m, 0.5)
    up = M.upsample(m)[0].numpy()
    assert shown.shape == (224, 224)
    assert shown.max() == pytest.approx(1.0) and shown.min() == 0.0
    assert ((shown > 0) == (up > 0.5)).mean() > 0.999
    assert not F.clipped_normalised(m, 0.9).any()  # all below the threshold: empty


def test_result_figures(runs):
    sets, res, _ = runs
    r = res["vggss-like"]["demo-random"]
    run = sets["is3-like"]
    img = run.dataset[0].image
    figs = [
        F.plot_threshold_choice(r.maxima, r.threshold.value, r.threshold.per_type_q3, title="t"),
        F.plot_qualitative_grid({m: R.sample_maps(res["is3-like"][m], 0) for m in res["is3-like"]},
                                {m: x.threshold.value for m, x in res["is3-like"].items()}, img, run.dataset[0].gt_mask),
        F.plot_map_iou_bars({m: x.row for m, x in res["vggss-like"].items()}),
        F.plot_audio_negatives(img, run.dataset[0].gt_mask, R.negative_audio(run, 0), 16000),
        F.plot_threshold_view(img, r.gt[0], R.sample_maps(r, 0), r.threshold.value),
    ]
    assert len(figs[1].axes) == 2 * 5
    assert len(figs[2].axes[0].patches) == 2 * len(F.MAP_IOU_COLUMNS)
    for fig in figs:
        plt.close(fig)


def test_threshold_explorer(runs):
    widgets = pytest.importorskip("ipywidgets")
    from vssl_helpers.report.widgets import threshold_explorer

    sets, res, _ = runs
    r = res["vggss-like"]["demo-saliency"]
    run = sets["vggss-like"]
    w = threshold_explorer(r, {k: run.dataset[run.sample_index(k)].image for k in (0, 1)})
    assert isinstance(w, widgets.VBox)
    slider, selector, out = w.children
    assert slider.value == pytest.approx(r.threshold.value)
    assert slider.min <= r.threshold.value <= slider.max
    assert [v for _, v in selector.options] == [0, 1]
    first = out.outputs
    assert "image/png" in first[0]["data"] and "IoU positive" in first[1]["data"]["text/html"]
    slider.value = slider.max  # re-renders the view
    assert out.outputs != first
    assert "slider (" in out.outputs[1]["data"]["text/plain"]
    selector.value = 1
    assert len(w.render(slider.value, 1)) == 2
    plt.close("all")


def test_table1_of_runs_is_self_consistent(runs):
    _, res, _ = runs
    table = T.table1_frame({k: {m: x.row for m, x in v.items()} for k, v in res.items()})
    check = T.recompute_f_scores(table, half_width=0)
    assert check["f_loc_consistent"].all()
    assert isinstance(table, pd.DataFrame) and len(table) == 4


def test_evaluate_models_builds_official_architectures_with_seeded_weights(tmp_path):
    """Official models have no ``seed`` argument: the book runs build them through the same resolver
    as the CLI, with seeded weights (same seed, same maps; another seed, other maps)."""
    sets = {"vggss-like": R.demo_test_sets(n_test_images=6, n_seeds=1)["vggss-like"]}
    store = MapStore(tmp_path / "maps")
    a = R.evaluate_models(["ezvsl"], sets, model_seed=3, store=store)["vggss-like"]["ezvsl"]
    b = R.evaluate_models(["ezvsl"], sets, model_seed=3, store=MapStore(tmp_path / "other"))["vggss-like"]["ezvsl"]
    c = R.evaluate_models(["ezvsl"], sets, model_seed=4, store=store)["vggss-like"]["ezvsl"]
    assert torch.equal(a.maps.positive, b.maps.positive)
    assert not torch.equal(a.maps.positive, c.maps.positive)
