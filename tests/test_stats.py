"""Dataset statistics (§II of the paper) for the real metadata and for synthetic sets."""

from __future__ import annotations

from collections import Counter

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vssl_helpers.categories import BROAD_CATEGORIES, vggsound_to_broad  # noqa: E402
from vssl_helpers.negatives import load_shipped_manifest, manifest_for_samples  # noqa: E402
from vssl_helpers.report import stats  # noqa: E402
from vssl_helpers.testsets.base import Sample  # noqa: E402


@pytest.fixture(scope="module")
def shipped():
    return {k: load_shipped_manifest(k) for k in ("vggss", "is3")}


def synthetic_like(n: int, seconds: float = 2.0) -> list[Sample]:
    """Samples shaped like the synthetic benchmark's: str category + visible_categories, in-memory audio."""
    out = []
    for k in range(n):
        c = BROAD_CATEGORIES[k % 8]
        out.append(
            Sample(
                id=f"scene{k:04d}", image=np.zeros((4, 4, 3), np.uint8), audio=np.zeros(int(16000 * seconds), np.float32),
                sample_rate=16000, gt_mask=np.zeros((224, 224), bool), category=c, classes=(f"{c}/a",),
                meta={"visible_categories": (c, BROAD_CATEGORIES[(k + 1) % 8])},
            )
        )
    return out


def test_vggss_summary(shipped):
    s = stats.extended_set_summary(shipped["vggss"])
    assert list(s.index) == ["positive", "silence", "noise", "offscreen", "negatives"]
    assert (s["images"] == 5158).all()
    assert s.loc["positive", "pairs_per_seed"] == 5158 and s.loc["positive", "distinct_audios"] == 5158
    assert s.loc["silence", "distinct_audios"] == 1 and s.loc["noise", "distinct_audios"] == 51580
    assert s.loc["offscreen", "pairs_all_seeds"] == 51580
    assert s.loc["negatives", "pairs_per_seed"] == 3 * 5158
    assert s.loc["positive", "hours_per_seed"] == pytest.approx(5158 * 3 / 3600)  # 4.30 h (paper: 4.61 h for 5,537)
    assert s.loc["negatives", "hours_per_seed"] == pytest.approx(3 * 5158 * 3 / 3600)
    assert np.isnan(s.loc["positive", "source_hours"])  # durations unknown without media
    assert s.attrs["manifest_sha256"] == shipped["vggss"].sha256


def test_is3_summary(shipped):
    s = stats.extended_set_summary(shipped["is3"])
    assert s.loc["positive", "images"] == 3240 and s.loc["positive", "distinct_audios"] == 6480
    assert s.loc["positive", "hours_per_seed"] == pytest.approx(5.40)
    assert s.loc["negatives", "hours_per_seed"] == pytest.approx(16.20)


def test_category_distribution_real(shipped):
    from vssl_helpers.testsets.vggss import read_vggss_annotations

    d = stats.category_distribution(shipped["vggss"])
    assert list(d.index) == list(BROAD_CATEGORIES)
    entries, _ = read_vggss_annotations()
    m = vggsound_to_broad()
    expected = Counter(m[e["class"]] for e in entries)
    assert d["positives"].to_dict() == {c: expected.get(c, 0) for c in BROAD_CATEGORIES}
    assert d["offscreen"].sum() == 51580 and d["pool"].sum() == 5158
    assert d["positives_pct"].sum() == pytest.approx(100) and d["offscreen_pct"].sum() == pytest.approx(100)
    # category-uniform draws: no category gets much more than 1/7 of the offscreen audio
    assert d["offscreen_pct"].max() < 100 / 7 + 1.5
    i = stats.category_distribution(shipped["is3"])
    assert i["positives"].sum() == 6480 and i["offscreen"].sum() == 64800
    assert i.loc["animals", "positives"] == 2569


def test_compare_with_paper(shipped):
    c = stats.compare_with_paper(shipped)
    assert c.loc[("vggss", "images"), "paper"] == 5537 and c.loc[("vggss", "images"), "companion"] == 5158
    assert c.loc[("is3", "audios"), "companion"] == 6480
    assert c.loc[("is3", "positive_hours"), "companion"] == pytest.approx(5.40)


def test_synthetic_sets():
    samples = synthetic_like(48)
    s = stats.extended_set_summary(samples, name="synthetic")
    assert s.loc["positive", "images"] == 48 and s.loc["positive", "source_hours"] == pytest.approx(48 * 2 / 3600)
    d = stats.category_distribution(samples)
    assert (d["positives"] == 6).all()
    m = manifest_for_samples(samples, name="synthetic")
    drawn = np.array([c.category for c in m.pool])[m.offscreen]
    for k, it in enumerate(m.items):
        assert not set(drawn[k]) & set(it.exclude)
    # offscreen source hours are known for in-memory audio: 48 items x 10 seeds x 2 s
    s2 = stats.extended_set_summary(m)
    assert s2.loc["offscreen", "source_hours"] == pytest.approx(48 * 10 * 2 / 3600)


def test_tables_and_figure(shipped):
    sources = {"vggss": shipped["vggss"], "is3": shipped["is3"], "synthetic": synthetic_like(40)}
    t = stats.statistics_tables(sources)
    assert set(t) == {"summary", "categories"}
    assert t["summary"].index.names == ["test_set", "audio"]
    assert t["categories"].loc[("synthetic", "music"), "positives"] == 5
    fig = stats.plot_category_distribution(sources)
    try:
        assert len(fig.axes) == 3
        assert [a.get_title().split(" ")[0] for a in fig.axes] == ["vggss", "is3", "synthetic"]
    finally:
        plt.close(fig)


def test_embedded_synthetic_sets():
    synthetic = pytest.importorskip("vssl_helpers.testsets.synthetic")
    one = synthetic.SyntheticSet(synthetic.SyntheticConfig(split="test", n_images=16, sources=1))
    two = synthetic.SyntheticSet(synthetic.SyntheticConfig(split="test", n_images=8, sources=2))
    t = stats.statistics_tables({"synthetic-1": list(one), "synthetic-2": list(two)})
    summ = t["summary"]
    assert summ.loc[("synthetic-1", "positive"), "images"] == 16
    assert summ.loc[("synthetic-2", "positive"), "images"] == 8  # two sounding objects per image
    assert summ.loc[("synthetic-2", "positive"), "pairs_per_seed"] == 16
    assert summ.loc[("synthetic-1", "positive"), "source_hours"] == pytest.approx(16 * 2.0 / 3600)
    assert t["categories"].loc["synthetic-2", "positives"].sum() == 16
