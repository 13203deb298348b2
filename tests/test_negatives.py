"""Negatives manifest: category constraint over all samples x 10 seeds, determinism, noise, integrity."""

from __future__ import annotations

import gzip
import lzma
import random
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vssl_helpers import negatives as N
from vssl_helpers.categories import BROAD_CATEGORIES
from vssl_helpers.testsets.base import Sample

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def vggss():
    from vssl_helpers.testsets.vggss import load_vggss

    return load_vggss()


@pytest.fixture(scope="module")
def is3():
    from vssl_helpers.testsets.is3 import load_is3

    return load_is3()


@pytest.fixture(scope="module")
def shipped():
    return {k: N.load_shipped_manifest(k) for k in ("vggss", "is3")}


def _pool_cats(m: N.Manifest) -> np.ndarray:
    return np.array([c.category for c in m.pool], dtype=object)


# ---------------------------------------------------------------------------------------------- the property


def test_vggss_offscreen_never_shares_the_category(vggss, shipped):
    m = shipped["vggss"]
    assert len(m) == 5158 and m.n_seeds == 10 and m.offscreen.shape == (5158, 10)
    own = {s.id: s.category for s in vggss}
    drawn = _pool_cats(m)[m.offscreen]
    for i, it in enumerate(m.items):  # every sample x 10 seeds
        assert own[it.id] not in set(drawn[i]), it.id
        assert it.exclude == (own[it.id],)
    # the pool is the test set itself
    assert [c.id for c in m.pool] == sorted(own) and m.pool_is_items


def test_is3_offscreen_differs_from_both_sources(is3, shipped):
    m = shipped["is3"]
    assert len(m) == 6480 and m.offscreen.shape == (6480, 10)
    cats = {s.id: set(s.category) for s in is3}
    visible = {s.id: set(s.meta["visible_categories"]) for s in is3}
    partner = {s.id: s.meta["partner_ids"][0] for s in is3}
    own = {s.id: s.meta["audio_category"] for s in is3}
    drawn = _pool_cats(m)[m.offscreen]
    for i, it in enumerate(m.items):
        d = set(drawn[i])
        assert not d & {own[it.id], own[partner[it.id]]}, it.id  # neither source
        assert not d & cats[it.id] and not d & visible[it.id]
        assert it.image_id == is3[is3.index(it.id)].meta["base"]


def test_shipped_manifests_are_reproducible(shipped, capsys):
    # rebuilds both from the shipped metadata and compares content hashes with the shipped files
    from vssl_helpers.cli import main as vssl

    assert vssl(["manifest", "build-shipped", "--check"]) == 0
    assert capsys.readouterr().out.count("identical") == 2
    for k in ("vggss", "is3"):
        N.verify_manifest(shipped[k])  # redraw from the file's own items and pool
        src = shipped[k].params["source"]
        assert src["git_blob_sha1"] and src["categories_sha256"] and "@" in src["annotations"]


@pytest.mark.skipif(not (SHARED / "is3" / "synthetic3240_bbox.json").is_file(), reason=f"real metadata not found under {SHARED}")
def test_manifests_from_the_shared_files_match_the_shipped(shipped):
    from vssl_helpers.testsets.is3 import load_is3
    from vssl_helpers.testsets.vggss import load_vggss

    for key, ds in (("vggss", load_vggss(SHARED / "vggss" / "vggss.json")),
                    ("is3", load_is3(SHARED / "is3" / "synthetic3240_bbox.json"))):
        m = N.build_manifest(ds.manifest_items(), name=key, source=shipped[key].params["source"])
        assert m.sha256 == shipped[key].sha256


def test_manifest_is_small():
    data = resources.files("vssl_helpers.data")
    sizes = {k: len(data.joinpath(p).read_bytes()) for k, p in N.SHIPPED.items()}
    assert all(v < 400_000 for v in sizes.values()), sizes


# ---------------------------------------------------------------------------------------------- determinism


@pytest.mark.filterwarnings("ignore:This DataLoader will create 4 worker processes")
def test_same_manifest_with_0_and_4_workers_and_any_order(vggss, shipped):
    items = vggss.manifest_items()
    m0 = N.build_manifest(items, name="vggss", source=shipped["vggss"].params["source"])
    assert m0.sha256 == shipped["vggss"].sha256
    m4 = N.build_manifest(items, name="vggss", source=shipped["vggss"].params["source"], num_workers=4, batch_size=97)
    assert np.array_equal(m4.offscreen, m0.offscreen) and m4.sha256 == m0.sha256
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    pool = N.pool_from_items(items)
    random.Random(4).shuffle(pool)
    ms = N.build_manifest(shuffled, pool, name="vggss", source=shipped["vggss"].params["source"])
    assert ms.sha256 == m0.sha256


def test_draws_depend_only_on_seed_and_sample(vggss):
    items = vggss.manifest_items()
    pool = N.pool_from_items(items)
    full = N.build_manifest(items, pool, n_seeds=3)
    sub = N.build_manifest(items[100:400:7], pool, n_seeds=3)  # other items absent, same pool
    for i, it in enumerate(sub.items):
        assert np.array_equal(sub.offscreen[i], full.offscreen[full.index(it.id)])
    # the DataLoader-style dataset gives the same draws item by item, in any order
    ds = N.NegativesDataset(sub.items, pool, N.DEFAULT_MANIFEST_SEED, 3, "category")
    for i in reversed(range(len(ds))):
        assert ds[i] == (i, sub.offscreen[i].tolist())
    other_seed = N.build_manifest(items[:200], pool, n_seeds=3, manifest_seed=1)
    assert not np.array_equal(other_seed.offscreen, full.offscreen[:200])


def test_golden_values():
    # pinned outputs: a change here changes every manifest and every noise waveform
    assert N.draw_words(2025, 3, "ORaz32CQ29k_000130") == (
        4947914233845268934, 16031714524988173265, 4750438755719730148, 11913111517972988429)
    assert N.noise_waveform(12345, 6).tolist() == pytest.approx(
        [0.1418938785791397, -0.9233639240264893, 0.372901976108551, 0.5843212604522705, 0.796168863773346, -1.0],
        abs=1e-7)
    assert N.uniform_index(0, 7) == 0 and N.uniform_index(2**64 - 1, 7) == 6


def test_shipped_vggss_row(shipped):
    m = shipped["vggss"]
    assert m.noise_seed("ORaz32CQ29k_000130", 3) == 4947914233845268934
    assert m.offscreen_clip("ORaz32CQ29k_000130", 3).id == "DWLJMnVOT20_000083"
    rows = [r for r in m.rows() if r.sample_id == "ORaz32CQ29k_000130" and r.seed_index == 3]
    assert [r.negative_type for r in rows] == list(N.NEGATIVE_TYPES)
    assert rows[1].noise_seed == 4947914233845268934 and rows[2].offscreen_category == "others"
    assert rows[0].offscreen_id is None and rows[0].noise_seed is None


def test_rows_and_frame_agree(shipped):
    m = shipped["vggss"]
    df = m.to_frame()
    assert len(df) == 5158 * 10 * 3
    assert list(df.columns) == ["sample_id", "seed_index", "negative_type", "offscreen_id", "offscreen_category", "noise_seed"]
    rows = list(m.rows())
    for k in (0, 1, 2, 3000, len(rows) - 1):
        r = rows[k]
        got = tuple(None if pd.isna(v) else v for v in df.iloc[k])
        assert got == (r.sample_id, r.seed_index, r.negative_type, r.offscreen_id, r.offscreen_category, r.noise_seed)
    assert df["noise_seed"].dtype == "UInt64" and df["noise_seed"].notna().sum() == 5158 * 10
    assert int(df["noise_seed"].iloc[1]) == rows[1].noise_seed


# ---------------------------------------------------------------------------------------------- noise


def test_noise_is_identical_across_calls_and_clipped(shipped):
    m = shipped["is3"]
    ids = m.ids[:50]
    for sid in ids:
        for s in range(m.n_seeds):
            a = m.noise(sid, s, 4800)
            b = N.noise_waveform(N.noise_seed(m.manifest_seed, s, sid), 4800)
            assert a.dtype == np.float32 and np.array_equal(a, b)
            assert a.min() >= -1.0 and a.max() <= 1.0
    seeds = m.noise_seeds.reshape(-1)
    assert len(np.unique(seeds)) == seeds.size  # every (sample, seed) has its own noise


def test_noise_statistics_and_prefix():
    x = N.noise_waveform(7, 200_001)
    assert x.shape == (200_001,) and x.dtype == np.float32
    assert abs(float(x.mean())) < 0.01
    assert abs(float(np.mean(np.abs(x) == 1.0)) - 0.3173) < 0.005  # P(|Z| > 1)
    assert abs(float(x.var()) - 0.5161) < 0.01  # variance of N(0,1) clipped to [-1, 1]
    assert np.array_equal(N.noise_waveform(7, 48_000), x[:48_000])
    assert np.array_equal(N.noise_waveform(7, 3), x[:3])
    assert not np.array_equal(N.noise_waveform(8, 100), x[:100])
    assert N.noise_waveform(7, 0).shape == (0,)
    assert np.array_equal(N.silence_waveform(5), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="64-bit"):
        N.noise_waveform(-1, 10)


# ---------------------------------------------------------------------------------------------- rules, inputs


def _toy(n_per_cat: dict[str, int]) -> list[N.NegativeItem]:
    out = []
    for c, n in n_per_cat.items():
        out += [N.NegativeItem(f"{c[:3]}{k:04d}", (c,), c) for k in range(n)]
    return out


def test_draw_rules():
    items = _toy({"music": 600, "animals": 60, "weapons": 6, "others": 6})
    by_cat = N.build_manifest(items, n_seeds=10)
    by_file = N.build_manifest(items, n_seeds=10, draw_rule="file")
    assert by_cat.draw_rule == "category" and by_file.draw_rule == "file"
    for m in (by_cat, by_file):
        m.validate()
    music = [i for i, it in enumerate(by_cat.items) if it.audio_category == "music"]
    c1 = Counter(_pool_cats(by_cat)[by_cat.offscreen[music]].reshape(-1))
    c2 = Counter(_pool_cats(by_file)[by_file.offscreen[music]].reshape(-1))
    total = 600 * 10
    assert all(abs(c1[c] / total - 1 / 3) < 0.03 for c in ("animals", "weapons", "others"))  # uniform over categories
    assert abs(c2["animals"] / total - 60 / 72) < 0.03  # proportional to clips
    assert '"draw_rule":"file"' in by_file.dumps()


def test_bad_inputs_are_named():
    with pytest.raises(N.ManifestError, match="no clip outside"):
        N.build_manifest(_toy({"music": 3}))
    with pytest.raises(N.ManifestError, match="duplicate item ids"):
        N.build_manifest(_toy({"music": 2}) + _toy({"music": 1}) + _toy({"animals": 2}))
    with pytest.raises(ValueError, match="not a broad category"):
        N.NegativeItem("a", ("instruments",))
    with pytest.raises(N.ManifestError, match="tabs"):
        N.NegativeItem("a\tb", ("music",))
    with pytest.raises(N.ManifestError, match="draw_rule"):
        N.build_manifest(_toy({"music": 2, "animals": 2}), draw_rule="weighted")  # type: ignore[arg-type]
    with pytest.raises(N.ManifestError, match="no audio_category"):
        N.pool_from_items([N.NegativeItem("x", ("music", "animals"))])


def _synthetic_like(n: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        c = BROAD_CATEGORIES[k % 8]
        distractor = BROAD_CATEGORIES[(k + 3) % 8]
        out.append(
            Sample(
                id=f"syn{k:05d}", image=np.zeros((8, 8, 3), np.uint8), audio=rng.normal(size=16000 + k).astype(np.float32),
                sample_rate=16000, gt_mask=np.zeros((224, 224), bool), category=c, classes=(f"{c}-0",),
                meta={"visible_categories": (c, distractor)},
            )
        )
    return out


def test_synthetic_samples_exclude_every_visible_object():
    samples = _synthetic_like(80)
    m = N.manifest_for_samples(samples, name="synthetic")
    items = {it.id: it for it in m.items}
    assert items["syn00000"].exclude == ("music", "devices/machines") and items["syn00000"].duration == pytest.approx(1.0)
    drawn = _pool_cats(m)[m.offscreen]
    for i, it in enumerate(m.items):
        assert not set(drawn[i]) & set(it.exclude)
    # separate pool of clips (e.g. a clip bank): stored explicitly, round-trips
    bank = [N.PoolClip(f"bank{k}", BROAD_CATEGORIES[k % 8], 2.0) for k in range(40)]
    m2 = N.build_manifest(N.items_from_samples(samples), bank, name="synthetic+bank")
    assert not m2.pool_is_items and "=items" not in m2.dumps()
    assert N.loads_manifest(m2.dumps()).sha256 == m2.sha256


# ---------------------------------------------------------------------------------------------- files, integrity


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz", ".txt.xz"])
def test_save_load_roundtrip(tmp_path, suffix, shipped):
    m = N.build_manifest(shipped["is3"].items[:300], n_seeds=4, name="is3-part")
    p = m.save(tmp_path / f"m{suffix}")
    back = N.load_manifest(p, expected_sha256=m.sha256)
    assert back.sha256 == m.sha256 and np.array_equal(back.offscreen, m.offscreen) and back.items == m.items
    assert m.save(tmp_path / f"again{suffix}").read_bytes() == p.read_bytes()  # deterministic bytes
    with pytest.raises(N.ManifestIntegrityError, match="expected"):
        N.load_manifest(p, expected_sha256="0" * 64)


def test_edited_manifest_is_detected(tmp_path, shipped):
    m = N.build_manifest(shipped["vggss"].items[:200], n_seeds=3, name="part")
    text = m.dumps()
    lines = text.split("\n")
    k = lines.index(next(ln for ln in lines if ln.startswith("[offscreen]"))) + 5
    vals = lines[k].split("\t")
    vals[1] = str((int(vals[1]) + 1) % 200)
    edited = "\n".join(lines[:k] + ["\t".join(vals)] + lines[k + 1:])
    p = tmp_path / "edited.txt"
    p.write_text(edited)
    with pytest.raises(N.ManifestIntegrityError, match="content hash .* does not match"):
        N.load_manifest(p)
    # an editor who also rewrites the hash line: caught by the category check or by the redraw
    forged_m = N.Manifest(params=m.params, items=m.items, pool=m.pool, offscreen=m.offscreen.copy())
    forged_m.offscreen[4, 1] = (m.offscreen[4, 1] + 1) % 200
    forged = tmp_path / "forged.txt"
    forged.write_text(forged_m.dumps())
    try:
        back = N.load_manifest(forged)
    except N.ManifestIntegrityError as e:
        assert "excluded categories" in str(e)
    else:
        with pytest.raises(N.ManifestIntegrityError, match="differ from a fresh draw"):
            N.verify_manifest(back)
    # an edited exclusion set (category now violated) is rejected even with a recomputed hash
    it = m.items[0]
    drawn_cat = m.pool[m.offscreen[0, 0]].category
    items = (N.NegativeItem(it.id, (*it.exclude, drawn_cat), it.audio_category, it.image_id, it.duration),) + m.items[1:]
    bad = N.Manifest(params=m.params, items=items, pool=m.pool, offscreen=m.offscreen)
    with pytest.raises(N.ManifestIntegrityError, match="excluded categories"):
        N.loads_manifest(bad.dumps())


def test_corrupted_files_are_detected(tmp_path, shipped):
    m = N.build_manifest(shipped["vggss"].items[:200], n_seeds=3)
    p = m.save(tmp_path / "m.txt.xz")
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x55
    p.write_bytes(bytes(data))
    with pytest.raises(N.ManifestIntegrityError, match="corrupted"):
        N.load_manifest(p)
    q = tmp_path / "trunc.txt"
    q.write_text(m.dumps()[: len(m.dumps()) // 2])
    with pytest.raises(N.ManifestIntegrityError):
        N.load_manifest(q)
    g = tmp_path / "m.txt.gz"
    g.write_bytes(gzip.compress(m.dumps().replace("music", "musik", 1).encode()))
    with pytest.raises(N.ManifestIntegrityError):
        N.load_manifest(g)
    r = tmp_path / "plain.txt"
    r.write_text("hello\n")
    with pytest.raises(N.ManifestError, match="not a vssl negatives manifest"):
        N.load_manifest(r)
    # the shipped file itself is intact and decompresses to its canonical text
    raw = lzma.decompress(resources.files("vssl_helpers.data").joinpath(N.SHIPPED["vggss"]).read_bytes()).decode()
    assert raw == shipped["vggss"].dumps()


def test_cli_summary_and_verify(capsys, tmp_path):
    from vssl_helpers.cli import main as vssl  # `vssl manifest` (was python -m vssl_helpers.negatives)

    assert vssl(["manifest", "summary", "is3"]) == 0
    assert "6480 items x 10 seeds" in capsys.readouterr().out
    p = N.build_manifest(_toy({"music": 5, "animals": 5}), n_seeds=2).save(tmp_path / "toy.txt")
    assert vssl(["manifest", "verify", str(p)]) == 0
    assert "ok:" in capsys.readouterr().out


def test_data_readme_records_the_shipped_hashes(shipped):
    readme = resources.files("vssl_helpers.data").joinpath("README.md").read_text()
    for k, m in shipped.items():
        assert m.sha256 in readme, f"update the {k} manifest hash in vssl_helpers/data/README.md"
