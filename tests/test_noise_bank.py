"""The opt-in noise bank (issue 15 item 7): K noise clips per seed shared by every sample, recorded in
the manifest; manifests without a bank keep their bytes and hash; the engine's bank path gives the
maps of a naive per-sample forward."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from vssl_helpers.embedded import synthetic_manifest
from vssl_helpers.engine import evaluate
from vssl_helpers.models import create_model
from vssl_helpers.negatives import (
    SHIPPED, ManifestError, ManifestIntegrityError, build_manifest, load_shipped_manifest, loads_manifest,
    noise_waveform, verify_manifest, with_noise_bank,
)
from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet


def _word(text: str, k: int) -> int:
    """Word k of sha256(text), little-endian: written here from the module docstring's rule."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[8 * k : 8 * k + 8], "little")


def test_shipped_manifests_unchanged_without_a_bank():
    from importlib import resources
    import lzma

    for name, rel in SHIPPED.items():
        m = load_shipped_manifest(name)  # the header hash was written by the format-1 writer
        assert m.noise_bank is None and "noise_bank" not in m.params
        text = lzma.decompress(resources.files("vssl_helpers.data").joinpath(rel).read_bytes()).decode()
        assert m.dumps() == text  # re-serialised byte for byte
        assert with_noise_bank(with_noise_bank(m, 4), None).dumps() == text


def test_bank_seeds_and_assignment_follow_the_documented_rule():
    m = load_shipped_manifest("is3")
    k = 5
    b = with_noise_bank(m, k)
    assert b.noise_bank == k and b.sha256 != m.sha256 and b.dumps().split("\n")[2] == "# format: 2"
    np.testing.assert_array_equal(b.offscreen, m.offscreen)  # off-screen draws do not depend on the bank
    rng = np.random.default_rng(0)
    for i in rng.choice(len(b), 40, replace=False):
        sid = b.ids[i]
        for s in range(b.n_seeds):
            clip = (_word(f"vssl-negatives/1/{m.manifest_seed}/{s}/{sid}", 3) * k) >> 64
            seed = _word(f"vssl-noise-bank/1/{m.manifest_seed}/{s}/{clip}", 0)
            assert b.noise_assign[i, s] == clip and b.noise_seed(sid, s) == seed
    for s in range(b.n_seeds):  # K clips per seed, all of them used on 6480 items
        assert len(set(b.noise_seeds[:, s].tolist())) == k
    # about N/K items per clip (uniform assignment): every count within 5 standard deviations
    counts = np.bincount(b.noise_assign[:, 0], minlength=k)
    n = len(b)
    assert np.all(np.abs(counts - n / k) < 5 * np.sqrt(n * (1 / k) * (1 - 1 / k)))


def test_bank_round_trip_and_rejections():
    m = synthetic_manifest(SyntheticSet(SyntheticConfig(split="test", n_images=6, seed=1)), n_seeds=3)
    b = with_noise_bank(m, 2)
    again = loads_manifest(b.dumps())
    assert again.sha256 == b.sha256 and again.noise_bank == 2
    np.testing.assert_array_equal(again.noise_seeds, b.noise_seeds)
    verify_manifest(again)
    built = build_manifest(m.items, m.pool, manifest_seed=m.manifest_seed, n_seeds=3, name=m.name, noise_bank=2,
                           source=m.params.get("source"))
    assert built.noise_seeds.tolist() == b.noise_seeds.tolist()
    # a bank file relabelled as format 1 (what an old reader would accept) is refused, and vice versa
    with pytest.raises(ManifestIntegrityError, match="format 1 with noise_bank=2"):
        loads_manifest(b.dumps().replace("# format: 2", "# format: 1"))
    with pytest.raises(ManifestIntegrityError, match="format 2 with noise_bank=None"):
        loads_manifest(m.dumps().replace("# format: 1", "# format: 2"))
    for bad in (0, -3, 2.5, True, "4"):
        with pytest.raises(ManifestError, match="noise_bank"):
            with_noise_bank(m, bad)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSSL_CACHE", str(tmp_path_factory.mktemp("cache")))
        ds = SyntheticSet(SyntheticConfig(split="test", n_images=8, seed=3))
        yield ds, synthetic_manifest(ds, n_seeds=2)


def test_engine_bank_maps_equal_naive_forward(tiny):
    ds, plain = tiny
    bank = with_noise_bank(plain, 3)
    model = create_model("demo-random", seed=1)
    res = evaluate(model, ds, bank, batch_size=3)  # batches that cut across the bank's sharing
    ref = evaluate(model, ds, plain)
    assert res.provenance["noise_bank"] == 3 and ref.provenance["noise_bank"] is None
    for key in ("positive", "silence", "offscreen"):  # only the noise maps change
        torch.testing.assert_close(getattr(res.maps, key), getattr(ref.maps, key), atol=1e-6, rtol=0)
    arr = ds.arrays(image_size=112, progress=False)
    ids = [str(x) for x in arr["ids"]]
    t = arr["audio"].shape[1]
    with torch.no_grad():
        for row, sid in enumerate(bank.ids):
            k = ids.index(sid)
            img = torch.from_numpy(arr["images"][k : k + 1]).permute(0, 3, 1, 2).float() / 255
            for s in range(bank.n_seeds):
                wave = torch.from_numpy(noise_waveform(int(bank.noise_bank_seeds[s, bank.noise_assign[row, s]]), t))[None]
                naive = model.joint_maps(img, wave, gt=torch.from_numpy(arr["masks"][k : k + 1]))[0]
                torch.testing.assert_close(res.maps.noise[s, row], naive, atol=1e-5, rtol=0)


def test_bank_equivalence_table_and_summary():
    from types import SimpleNamespace

    from vssl_helpers.report.noise_bank import bank_equivalence, equivalence_summary

    seeds = [{"pia_noise": v, "ciou_uth": 40.0} for v in (10.0, 12.0, 14.0)]  # sd 2, range 10..14
    plain = SimpleNamespace(row={"pia_noise": 12.0, "ciou_uth": 40.0}, per_seed=seeds)
    near = SimpleNamespace(row={"pia_noise": 13.5, "ciou_uth": 40.0}, per_seed=seeds)
    far = SimpleNamespace(row={"pia_noise": 14.5, "ciou_uth": 40.2}, per_seed=seeds)
    t = bank_equivalence(plain, near, ["pia_noise", "ciou_uth"]).set_index("column")
    assert t.loc["pia_noise", "seed_sd"] == pytest.approx(2.0) and t.loc["pia_noise", "within"]
    assert t.loc["ciou_uth", "within"] and t.loc["ciou_uth", "difference"] == 0
    u = bank_equivalence(plain, far, ["pia_noise", "ciou_uth"]).set_index("column")
    assert not u.loc["pia_noise", "within"] and not u.loc["pia_noise", "within_range"]  # 2.5 > sd 2, 14.5 > 14
    assert not u.loc["ciou_uth", "within"]  # positives do not depend on the seed: any change is outside
    text = equivalence_summary({("m", 8): bank_equivalence(plain, far, ["pia_noise", "ciou_uth"])}, {8: 3.0})
    assert "K = 8" in text and "0 of 2" in text and "m: pIA noise, cIoU U.th." in text and "3.00x" in text
    assert "moves the universal threshold" not in text  # no threshold row given
    thr_seeds = [{**r, "threshold": 0.5} for r in seeds]
    p2 = SimpleNamespace(row={**plain.row, "threshold": 0.5}, per_seed=thr_seeds)
    b2 = SimpleNamespace(row={**far.row, "threshold": 0.52}, per_seed=thr_seeds)
    text2 = equivalence_summary({("m", 8): bank_equivalence(p2, b2, ["threshold", "ciou_uth"])})
    assert "For m the bank moves the universal threshold" in text2
    with pytest.raises(ValueError, match="seeds"):
        bank_equivalence(plain, SimpleNamespace(row={}, per_seed=seeds[:2]))


def test_cli_noise_bank_flag(tmp_path, monkeypatch, capsys):
    import json

    from vssl_helpers.cli import main

    monkeypatch.setenv("VSSL_CACHE", str(tmp_path / "cache"))
    small = ["evaluate", "--model", "demo-random", "--testset", "synthetic", "--n-images", "6", "--seeds", "2",
             "--no-progress", "--store", str(tmp_path / "s")]
    assert main([*small, "--noise-bank", "0"]) == 2
    assert "--noise-bank 0: expected a positive number of noise clips per seed" in capsys.readouterr().err
    out_bank, out_plain = tmp_path / "b.json", tmp_path / "p.json"
    assert main([*small, "--noise-bank", "3", "--out", str(out_bank)]) == 0
    assert main([*small, "--out", str(out_plain)]) == 0
    bank, plain = json.loads(out_bank.read_text()), json.loads(out_plain.read_text())
    assert bank["noise_bank"] == 3 and plain["noise_bank"] is None
    assert bank["manifest_sha256"] != plain["manifest_sha256"]
    assert bank["pooled"]["ciou_adap"] == plain["pooled"]["ciou_adap"]  # positives do not depend on the noise


def test_book_config_noise_bank_key(tmp_path):
    from vssl_helpers.report.runs import BookConfigError, book_config_from_dict

    base = {"testsets": {"vggss": {"data_root": str(tmp_path)}}, "models": {"ezvsl": None}}
    assert book_config_from_dict(base).noise_bank is None
    cfg = book_config_from_dict({**base, "noise_bank": 16})
    assert cfg.noise_bank == 16 and book_config_from_dict(cfg.to_dict()).noise_bank == 16
    for bad in (0, "8", True):
        with pytest.raises(BookConfigError, match="noise_bank: expected an integer >= 1"):
            book_config_from_dict({**base, "noise_bank": bad})
