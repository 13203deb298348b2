"""Engine: encode-once maps equal a naive full forward per (sample, audio type, seed); the summary
equals per-sample metric computation; one evaluate() through a persistent or a temporary map store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vssl_helpers import metrics as M
from vssl_helpers.embedded import synthetic_manifest
from vssl_helpers.engine import EvalOptions, evaluate
from vssl_helpers.models import create_model
from vssl_helpers.negatives import noise_waveform
from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSSL_CACHE", str(tmp_path_factory.mktemp("cache")))
        ds = SyntheticSet(SyntheticConfig(split="test", n_images=8, seed=3))
        manifest = synthetic_manifest(ds, n_seeds=2)
        yield ds, manifest


@pytest.mark.parametrize("name", ["demo-random", "demo-oracle"])
def test_engine_maps_equal_naive_loop(tiny, name):
    ds, manifest = tiny
    model = create_model(name, seed=1)
    res = evaluate(model, ds, manifest)
    arr = ds.arrays(image_size=112, progress=False)
    ids = [str(x) for x in arr["ids"]]
    t = arr["audio"].shape[1]
    pool = {c.id: ids.index(c.id) for c in manifest.pool}
    with torch.no_grad():
        for row, sid in enumerate(manifest.ids):
            k = ids.index(sid)
            img = torch.from_numpy(arr["images"][k : k + 1]).permute(0, 3, 1, 2).float() / 255
            gt = torch.from_numpy(arr["masks"][k : k + 1])

            def naive(wave: np.ndarray) -> torch.Tensor:
                return model.joint_maps(img, torch.from_numpy(wave[None].astype(np.float32)), gt=gt)[0]

            torch.testing.assert_close(res.maps.positive[row], naive(arr["audio"][k]), atol=1e-5, rtol=0)
            torch.testing.assert_close(res.maps.silence[row], naive(np.zeros(t)), atol=1e-5, rtol=0)
            for s in range(manifest.n_seeds):
                wave = noise_waveform(int(manifest.noise_seeds[row, s]), t)
                assert wave.min() >= -1 and wave.max() <= 1
                torch.testing.assert_close(res.maps.noise[s, row], naive(wave), atol=1e-5, rtol=0)
                off = arr["audio"][pool[manifest.pool[manifest.offscreen[row, s]].id]]
                torch.testing.assert_close(res.maps.offscreen[s, row], naive(off), atol=1e-5, rtol=0)


def test_summary_equals_per_sample_computation(tiny):
    ds, manifest = tiny
    res = evaluate(create_model("demo-random", seed=2), ds, manifest)
    maps, t = res.maps, res.threshold.value
    arr = ds.arrays(image_size=112, progress=False)
    ids = [str(x) for x in arr["ids"]]
    gt = torch.from_numpy(arr["masks"][[ids.index(s) for s in manifest.ids]])
    # the threshold is the max over types of Q3 of per-sample maxima, pooled over seeds
    q3 = []
    for kind in ("silence", "noise", "offscreen"):
        mx = [float(m.max()) for m in maps.negatives(kind)]
        q3.append(np.quantile(mx, 0.75))
    assert t == pytest.approx(max(q3), abs=1e-7)
    ious = [M.ciou(maps.positive[i : i + 1], gt[i : i + 1], t).item() for i in range(len(gt))]
    assert res.row["ciou_uth"] == pytest.approx(100 * np.nanmean(ious), abs=1e-9)
    pias = [M.pia(m[None], t).item() for m in maps.negatives("noise")]
    assert res.row["pia_noise"] == pytest.approx(100 * np.mean(pias), abs=1e-9)
    assert res.row["f_loc"] == pytest.approx(
        100 * M.f_loc(res.row["ciou_uth"] / 100, [res.row[f"pia_{k}"] / 100 for k in ("silence", "noise", "offscreen")]),
        abs=1e-9,
    )
    assert res.provenance["manifest_sha256"] == manifest.sha256


# -- stored path (map store, DataLoader workers, per-seed rows) -------------------------------------


@pytest.mark.parametrize("name, workers", [("demo-random", 0), ("demo-oracle", 2)])
def test_stored_engine_equals_temporary_store_and_naive(tiny, tmp_path, name, workers):
    """Small shards and batches in a persistent store, with workers, give the maps and rows of one
    batch in a temporary store (and of a naive forward)."""
    from vssl_helpers.engine import ExtendedMaps, summarize

    ds, manifest = tiny
    model = create_model(name, seed=1)
    mem = evaluate(model, ds, manifest, batch_size=256)
    st = evaluate(model, ds, manifest, tmp_path, shard_size=3, batch_size=2, num_workers=workers)
    for kind in ("positive", "silence", "noise", "offscreen"):
        torch.testing.assert_close(getattr(st.maps, kind), getattr(mem.maps, kind), atol=1e-6, rtol=0)
    # naive full forward for a stored noise and off-screen map
    arr = ds.arrays(image_size=112, progress=False)
    ids = [str(x) for x in arr["ids"]]
    row = 5
    k = ids.index(manifest.ids[row])
    img = torch.from_numpy(arr["images"][k : k + 1]).permute(0, 3, 1, 2).float() / 255
    gt = torch.from_numpy(arr["masks"][k : k + 1])
    with torch.no_grad():
        wave = torch.from_numpy(noise_waveform(int(manifest.noise_seeds[row, 1]), arr["audio"].shape[1]))[None]
        torch.testing.assert_close(st.maps.noise[1, row], model.joint_maps(img, wave, gt=gt)[0], atol=1e-5, rtol=0)
    assert st.threshold.value == pytest.approx(mem.threshold.value, abs=1e-6)
    for key, v in mem.row.items():
        assert st.row[key] == pytest.approx(v, abs=1e-4, nan_ok=True), key
    # per-seed rows equal summarize() on that seed's maps at the pooled threshold
    for s, r in enumerate(st.per_seed):
        one = ExtendedMaps(st.maps.positive, st.maps.silence, st.maps.noise[s : s + 1], st.maps.offscreen[s : s + 1],
                           st.maps.offscreen_index[s : s + 1])
        ref = summarize(one, st.gt, st.threshold)
        assert r["seed"] == s
        for key, v in ref.items():
            assert r[key] == pytest.approx(v, abs=1e-12, nan_ok=True), (s, key)
    # the pooled row equals summarize() on the stored maps exactly
    ref = summarize(st.maps, st.gt, st.threshold)
    for key, v in ref.items():
        assert st.row[key] == pytest.approx(v, abs=1e-12, nan_ok=True), key


def test_reduced_precision_accuracy_check(tiny):
    from vssl_helpers.engine import compare_dtypes

    ds, _ = tiny
    arr = ds.arrays(image_size=112, progress=False)
    imgs = torch.from_numpy(arr["images"]).permute(0, 3, 1, 2).float() / 255
    c = compare_dtypes(create_model("demo-random", seed=1), imgs, torch.from_numpy(arr["audio"]), "bfloat16", threshold=0.0)
    assert 0 < c["max_abs_diff"] < 0.1 * c["map_range"]
    assert 0 <= c["flipped_pixels"] < 0.2


# -- one evaluate(): temporary store, options, metric rows saved beside the maps --------------------


def test_temporary_store_leaves_nothing(tiny, tmp_path, monkeypatch):
    import tempfile

    ds, manifest = tiny
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    res = evaluate(create_model("demo-random", seed=1), ds, manifest)
    assert list(tmp_path.iterdir()) == [], "the temporary store is deleted"
    assert res.provenance["store_run"] is None and res.provenance["shards"]["computed"] == 1
    assert res.maps.noise.shape[:2] == (manifest.n_seeds, len(manifest))  # the maps are in memory


def test_options_object_equals_keyword_overrides_and_unknown_options_are_named(tiny, tmp_path):
    ds, manifest = tiny
    model = create_model("demo-random", seed=1)
    a = evaluate(model, ds, manifest, tmp_path / "a", EvalOptions(shard_size=5, batch_size=3))
    b = evaluate(model, ds, manifest, tmp_path / "b", shard_size=5, batch_size=3)
    assert a.provenance["shards"] == b.provenance["shards"] == {"total": 2, "computed": 2, "reused": 0, "size": 5}
    assert a.provenance["engine"]["batch_size"] == 3
    torch.testing.assert_close(a.maps.positive, b.maps.positive, atol=0, rtol=0)
    with pytest.raises(TypeError, match="batchsize"):
        evaluate(model, ds, manifest, tmp_path / "c", batchsize=3)
    with pytest.raises(ValueError, match="dtype"):
        evaluate(model, ds, manifest, tmp_path / "c", dtype="int8")


def test_metric_rows_are_saved_beside_the_maps_and_reused(tiny, tmp_path):
    """A finished run reads its rows back (what the book's chapters do) instead of recomputing every
    metric; another threshold, or shards computed in this run, compute them again."""
    import json

    ds, manifest = tiny
    model = create_model("demo-random", seed=1)
    first = evaluate(model, ds, manifest, tmp_path)
    assert first.provenance["summary_cache"] is None
    again = evaluate(model, ds, manifest, tmp_path)
    saved = again.provenance["summary_cache"]
    assert saved is not None and again.provenance["shards"]["computed"] == 0
    assert again.row == pytest.approx(first.row, nan_ok=True)
    assert len(again.per_seed) == len(first.per_seed) == manifest.n_seeds
    for a, b in zip(again.per_seed, first.per_seed):
        assert a == pytest.approx(b, nan_ok=True)
    # the saved rows are what is returned: tamper with one value and it comes back
    data = json.loads(open(saved).read())
    data["row"]["ciou_uth"] = -1.0
    open(saved, "w").write(json.dumps(data))
    assert evaluate(model, ds, manifest, tmp_path).row["ciou_uth"] == -1.0
    # ... unless reuse is off, or the rows belong to another threshold
    assert evaluate(model, ds, manifest, tmp_path, reuse_metrics=False).row["ciou_uth"] == pytest.approx(first.row["ciou_uth"])
    other = evaluate(model, ds, manifest, tmp_path, threshold=first.threshold.value + 0.01)
    assert other.provenance["summary_cache"] is None and other.threshold.value == first.threshold.value + 0.01
    # a shard recomputed in this run: the rows are computed from the maps, not read
    victim = sorted(tmp_path.glob("*/*/shards/*.npz"))[0]
    victim.unlink()
    fresh = evaluate(model, ds, manifest, tmp_path)
    assert fresh.provenance["summary_cache"] is None
    assert fresh.row["ciou_uth"] == pytest.approx(first.row["ciou_uth"])
