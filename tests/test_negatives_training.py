"""Issue 15 item 6: the negative-aware vs plain comparison, the knob table and the generated text."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vssl_helpers.report.negatives_training import (
    knob_table, negaware_comparison, negatives_summary, per_seed_spread, training_seed_spread,
)


def _res(pooled: dict[str, float], seeds: list[dict[str, float]]) -> SimpleNamespace:
    return SimpleNamespace(row=pooled, per_seed=seeds)


def test_comparison_directions_and_spread():
    na = _res({"ciou_uth": 50.0, "pia_noise": 2.0}, [{"ciou_uth": 50.0, "pia_noise": v} for v in (1.0, 2.0, 3.0)])
    pl = _res({"ciou_uth": 49.0, "pia_noise": 40.0}, [{"ciou_uth": 49.0, "pia_noise": v} for v in (39.0, 40.0, 41.0)])
    df = negaware_comparison({"s": {"demo-negaware": na, "demo-ezvsl": pl}}, plain=["demo-ezvsl"],
                             columns=["ciou_uth", "pia_noise"]).set_index("column")
    assert df.loc["pia_noise", "difference"] == -38.0 and df.loc["pia_noise", "better"]  # lower pIA is better
    assert df.loc["pia_noise", "spread"] == pytest.approx(np.std([1, 2, 3], ddof=1))
    assert df.loc["pia_noise", "clear"] and df.loc["ciou_uth", "better"] and df.loc["ciou_uth", "spread"] == 0
    assert per_seed_spread(_res({}, [{"x": 1.0}]), "x") == 0.0
    with pytest.raises(KeyError, match="demo-lvs"):
        negaware_comparison({"s": {"demo-negaware": na, "demo-ezvsl": pl}})


def test_knob_and_seed_tables_and_summary():
    study = {"rows": [
        {"job": {"model": m, "seed": 0, "offscreen_share": sh}, "row": {"ciou_uth": 40.0, "pia_silence": 1.0,
         "pia_noise": 1.0, "pia_offscreen": 1.0, "f_loc": f, "f_auc": f}}
        for m, sh, f in [("demo-ezvsl", 0.0, 50.0), ("demo-negaware", 0.0, 52.0), ("demo-ezvsl", 0.6, 40.0),
                         ("demo-negaware", 0.6, 51.0)]]}
    kt = knob_table(study)
    assert len(kt) == 4 and kt.set_index(["offscreen_share", "model"]).loc[(0.6, "demo-negaware"), "f_loc"] == 51.0
    assert knob_table(None).empty
    seeds = {"rows": [{"job": {"model": "a", "seed": s}, "row": {"f_loc": v}} for s, v in enumerate((1.0, 3.0))]
             + [{"job": {"model": "b", "seed": 0}, "row": {"f_loc": 5.0}}]}
    sp = training_seed_spread(seeds, ["f_loc"])
    assert list(sp["model"]) == ["a"] and sp["f_loc"].iloc[0] == pytest.approx(np.sqrt(2))
    comp = pd.DataFrame([{"set": "s", "plain": "demo-ezvsl", "column": "f_loc", "header": "F_LOC", "negaware": 60.0,
                          "plain_value": 50.0, "difference": 10.0, "better": True, "spread": 1.0, "clear": True}])
    text = negatives_summary(comp, kt)
    assert "clearly on 1 of 1 columns" in text and "+2.0, +11.0 pp" in text and "grows" in text and "compare two thresholds" in text and "Caveats" in text


def test_summary_judges_f_loc_against_the_training_seed_spread():
    comp = pd.DataFrame([{"set": "s", "plain": p, "column": "f_loc", "header": "F_LOC", "negaware": 60.0,
                          "plain_value": v, "difference": 60.0 - v, "better": v < 60, "spread": 0.0, "clear": True}
                         for p, v in (("demo-ezvsl", 59.0), ("demo-lvs", 0.0))])
    spread = pd.DataFrame({"model": ["demo-ezvsl", "demo-lvs", "demo-negaware"], "f_loc": [0.4, 3.0, 1.0]})
    text = negatives_summary(comp, knob_table(None), seed_spread=spread)
    assert "demo-ezvsl on s: +1.0 pp, within 2 sd = 2.0 pp" in text
    assert "demo-lvs on s: +60.0 pp, beyond 2 sd = 6.0 pp" in text
