"""Universal threshold: Q3 per negative type (linear interpolation), highest of the three."""

import numpy as np
import pytest
import torch

from vssl_helpers.threshold import (
    RCGRAD_RULE,
    ThresholdRule,
    per_sample_max,
    quantile_linear,
    universal_threshold,
)


def test_quantile_hand_computed():
    # sorted 1..5: h = 0.75 * 4 = 3 -> exactly the 4th value
    assert quantile_linear([5, 1, 4, 2, 3], 0.75) == 4.0
    # sorted 1..4: h = 2.25 -> 3 + 0.25 * (4 - 3)
    assert quantile_linear([4, 3, 2, 1], 0.75) == 3.25
    assert quantile_linear([7.0], 0.75) == 7.0
    assert quantile_linear([0, 10], 0.0) == 0 and quantile_linear([0, 10], 1.0) == 10


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 5158])
def test_quantile_matches_numpy_linear(n):
    v = np.random.default_rng(n).normal(size=n)
    assert quantile_linear(v, 0.75) == pytest.approx(np.quantile(v, 0.75, method="linear"), abs=1e-12)


def test_universal_threshold_takes_highest_q3():
    maxima = {
        "silence": [0.1, 0.2, 0.3, 0.4, 0.5],  # Q3 = 0.4
        "noise": [0.0, 0.9, 0.6, 0.3, 0.0],  # sorted 0,0,.3,.6,.9 -> Q3 = 0.6
        "offscreen": [0.45, 0.45, 0.45, 0.45],  # Q3 = 0.45
    }
    t = universal_threshold(maxima)
    assert t.value == pytest.approx(0.6)
    assert t.decisive_type == "noise"
    assert t.per_type_q3 == pytest.approx({"silence": 0.4, "noise": 0.6, "offscreen": 0.45})
    assert t.n_per_type == {"silence": 5, "noise": 5, "offscreen": 4}
    assert float(t) == t.value


def test_universal_threshold_refuses_positives_and_empty_input():
    with pytest.raises(ValueError, match="negative types only"):
        universal_threshold({"positive": [1.0], "silence": [0.1]})
    with pytest.raises(ValueError, match="at least one"):
        universal_threshold({})
    with pytest.raises(ValueError, match="empty"):
        universal_threshold({"silence": []})
    with pytest.raises(ValueError, match="NaN"):
        universal_threshold({"silence": [float("nan")]})


def test_per_sample_max_uses_raw_native_map():
    m = torch.zeros(2, 7, 7)
    m[0, 3, 3] = 0.9
    m[1] = -0.2
    assert per_sample_max(m).tolist() == pytest.approx([0.9, -0.2])


def test_rules():
    assert RCGRAD_RULE.resolve().value == 0.75
    rule = ThresholdRule()
    assert rule.resolve({"silence": [1.0, 2.0, 3.0, 4.0, 5.0]}).value == 4.0
    with pytest.raises(ValueError, match="needs the negative maxima"):
        rule.resolve()
    with pytest.raises(ValueError, match="fixed rule needs a value"):
        ThresholdRule(kind="fixed")
