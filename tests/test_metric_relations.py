"""Issue 15 item 4: AUC is the mean of per-sample grid-cell midpoints, AUC_N one minus such a mean;
checked against the metrics' own trapezoids on random inputs, a brute-force cell search and an
engine run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vssl_helpers import metrics as M
from vssl_helpers.report.metric_relations import (
    auc_decomposition, auc_from_steps, auc_n_from_steps, auc_n_step, auc_step, f_comparison, metric_relations,
    relations_summary,
)


def _random_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform values plus exact 0, 1 and grid points (where >= and <= matter)."""
    v = rng.uniform(0, 1, n)
    k = n // 4
    v[:k] = rng.integers(0, 21, k) / 20
    v[k : k + 5] = 0.0
    v[k + 5 : k + 8] = 1.0
    return rng.permutation(v)


@pytest.mark.parametrize("seed", range(20))
def test_auc_and_auc_n_equal_the_trapezoids(seed):
    rng = np.random.default_rng(seed)
    v = _random_values(rng, int(rng.integers(1, 400)))
    for grid in (None, M.TAU_GRID_REFERENCE):
        assert abs(auc_from_steps(v, grid) - M.auc(v, grid)) < 1e-12
        assert abs(auc_n_from_steps(v, grid) - M.auc_n(v, grid)) < 1e-12


def test_steps_against_a_brute_force_cell_search():
    tau = [k / 20 for k in range(21)]
    for x in [0.0, 1e-9, 0.05, 0.0499, 0.15, 0.5, 0.97, 1.0 - 1e-12, 1.0]:
        # IoU: the cell [tau_k, tau_k+1) holding x, its midpoint; 1 -> 1
        want = 1.0 if x == 1.0 else next((tau[k] + tau[k + 1]) / 2 for k in range(20) if tau[k] <= x < tau[k + 1])
        assert auc_step([x])[0] == pytest.approx(want, abs=1e-15)
        # pIA: the cell (tau_k, tau_k+1] holding p, its midpoint; 0 -> 0
        want_n = 0.0 if x == 0.0 else next((tau[k] + tau[k + 1]) / 2 for k in range(20) if tau[k] < x <= tau[k + 1])
        assert auc_n_step([x])[0] == pytest.approx(want_n, abs=1e-15)


def test_decomposition_properties():
    rng = np.random.default_rng(7)
    v = _random_values(rng, 300)
    d = auc_decomposition(v)
    assert d["auc"] == pytest.approx(M.auc(v), abs=1e-12)
    assert d["gap"] == pytest.approx(d["zero_credit"] + d["residual"], abs=1e-12)
    assert -0.025 < d["gap"] <= 0.025
    assert d["share_zero"] == pytest.approx(np.mean(v == 0))
    # all-zero IoUs: AUC is exactly half the first cell, all of it the zero credit
    z = auc_decomposition(np.zeros(10))
    assert z["auc"] == pytest.approx(0.025) and z["zero_credit"] == pytest.approx(0.025) and z["residual"] == 0
    # NaN (excluded empty GT) skipped as by the metric
    assert auc_from_steps([np.nan, 0.3, 0.7]) == pytest.approx(M.auc([np.nan, 0.3, 0.7]), abs=1e-12)
    with pytest.raises(ValueError, match="ious: expected values in \\[0, 1\\]"):
        auc_decomposition([0.2, 1.5])
    with pytest.raises(ValueError, match="grid"):
        auc_step([0.2], grid=np.array([0.0, 0.6, 0.5, 1.0]))


def test_relations_on_an_engine_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VSSL_CACHE", str(tmp_path))
    from vssl_helpers.embedded import synthetic_manifest
    from vssl_helpers.engine import evaluate
    from vssl_helpers.models import create_model
    from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet

    ds = SyntheticSet(SyntheticConfig(split="test", n_images=8, seed=3))
    man = synthetic_manifest(ds, n_seeds=2)
    results = {"tiny": {m: evaluate(create_model(m, seed=1), ds, man) for m in ("demo-random", "demo-oracle")}}
    rel = metric_relations(results)
    assert rel["auc_matches"].all() and rel["auc_n_matches"].all()
    assert (rel["gap"].abs() <= 2.5 + 1e-9).all()
    fc = f_comparison(results)
    text = relations_summary(rel, fc)
    assert f"{rel['gap'].abs().max():.2f} pp" in text and "exactly" in text


def test_f_comparison_ranks_and_summary_name_a_flip():
    def res(f_loc, f_auc):
        return SimpleNamespace(row={"f_loc": f_loc, "f_auc": f_auc})

    results = {"a": {"m1": res(50.0, 51.0), "m2": res(0.0, 4.88), "m3": res(3.0, 3.5)}}
    fc = f_comparison(results).set_index("model")
    assert fc.loc["m2", "rank_f_loc"] == 3 and fc.loc["m2", "rank_f_auc"] == 2
    assert not fc.loc["m2", "same_rank"] and fc.loc["m1", "same_rank"]
    rel = pd_relations()
    text = relations_summary(rel, fc.reset_index())
    assert "m2 and m3 differently on a" in text and "4.88" in text


def pd_relations():
    import pandas as pd

    row = {"set": "a", "model": "m1", "ciou": 40.0, "auc": 41.0, "gap": 1.0, "share_zero": 10.0, "zero_credit": 0.25,
           "residual": 0.75, "auc_matches": True, "auc_n_matches": True}
    for k in ("silence", "noise", "offscreen"):
        row.update({f"gap_n_{k}": 0.1, f"one_minus_pia_{k}": 90.0, f"auc_n_{k}": 90.1, f"share_silent_{k}": 5.0})
    return pd.DataFrame([row])


def test_real_book_keeps_the_metric_relations_chapter_in_its_part(tmp_path, monkeypatch):
    """A real-data book runs this chapter on the configured models; write_real_toc keeps the parts of
    the committed _toc.yml and drops the chapters (and parts) that do not run on real data."""
    import yaml

    from vssl_helpers import pipeline
    from vssl_helpers.report import runs

    cfg = runs.book_config_from_dict({"testsets": {"vggss": {"data_root": str(tmp_path)}}, "models": {"ezvsl": None}})
    monkeypatch.setattr(runs, "load_book_config", lambda c: cfg)  # validation would need the media
    specs = pipeline.real_book_specs(tmp_path / "c.json")
    spec = next(s for s in specs if s.output == "beyond_metric_relations.ipynb")
    assert spec.effective_parameters()["compared_models"] == ["ezvsl"] and spec.prepare is None
    root = pipeline.repo_root()
    out = root / "_build" / f"toc-check-{tmp_path.name}"
    try:
        toc = yaml.safe_load(pipeline.write_real_toc(specs, root, out).read_text())
    finally:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    beyond = [p for p in toc["parts"] if p.get("caption") == "Beyond the paper"]
    rel = out.relative_to(root).as_posix()
    # the chapters of the part that run on real data, in the committed order; the demo-only ones dropped
    assert beyond and [c["file"] for c in beyond[0]["chapters"]] == [
        f"{rel}/beyond_{n}" for n in ("audio_sensitivity", "uncertainty", "threshold_sensitivity", "metric_relations")]
    files = [c.get("file") for p in toc["parts"] for c in p["chapters"]]
    assert not any(f.startswith("book/generated/") for f in files)  # no embedded-book page left
