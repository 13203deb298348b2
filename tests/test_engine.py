"""Engine: encode-once maps equal a naive full forward per (sample, audio type, seed); the summary
equals per-sample metric computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vssl_helpers import metrics as M
from vssl_helpers.embedded import evaluate, synthetic_manifest
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
