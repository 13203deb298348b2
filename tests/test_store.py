"""Map store: keys, atomic shards, invalidation, resume without recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vssl_helpers.embedded import synthetic_manifest
from vssl_helpers.engine import evaluate, store_key
from vssl_helpers.models import create_model
from vssl_helpers.store import MapStore, StoreKey, state_dict_sha256
from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSSL_CACHE", str(tmp_path_factory.mktemp("cache")))
        ds = SyntheticSet(SyntheticConfig(split="test", n_images=10, seed=5))
        yield ds, synthetic_manifest(ds, n_seeds=2)


def _key(**kw) -> StoreKey:
    base = dict(model="m", weights="sha256:ab", manifest_sha256="cd", preprocessing_version=1)
    base.update(kw)
    return StoreKey(**base)


def test_key_changes_with_every_dependency():
    k = _key()
    others = [_key(weights="sha256:ef"), _key(manifest_sha256="ff"), _key(preprocessing_version=2),
              _key(compute_dtype="bfloat16"), _key(map_format=99), _key(data="x")]
    digests = {k.digest()} | {o.digest() for o in others}
    assert len(digests) == len(others) + 1
    assert k.digest() == _key().digest()


def test_state_dict_hash_identifies_weights():
    a, b, c = create_model("demo-random", seed=1), create_model("demo-random", seed=1), create_model("demo-random", seed=2)
    assert state_dict_sha256(a) == state_dict_sha256(b) != state_dict_sha256(c)


def test_shard_roundtrip_and_atomicity(tmp_path):
    run = MapStore(tmp_path).run(_key(), [f"s{i}" for i in range(5)], n_seeds=2, shard_size=2)
    assert run.n_shards == 3 and run.pending() == [0, 1, 2]
    rng = np.random.default_rng(0)
    pos, sil = rng.random((2, 3, 3), np.float32), rng.random((2, 3, 3), np.float32)
    noi, off = rng.random((2, 2, 3, 3), np.float32), rng.random((2, 2, 3, 3), np.float32)
    run.write_shard(0, pos, sil, noi, off)
    back = run.read_shard(0)
    np.testing.assert_array_equal(back["positive"], pos)
    np.testing.assert_array_equal(back["noise"], noi)
    assert run.pending() == [1, 2]
    assert not list((run.path / "shards").glob("*.tmp")), "temporary files must not survive a write"
    with pytest.raises(ValueError, match="shard 1"):
        run.write_shard(1, pos[:1], sil, noi, off)


def test_resume_skips_finished_shards_and_invalidation(tiny, tmp_path):
    ds, manifest = tiny
    model = create_model("demo-random", seed=3)
    first = evaluate(model, ds, manifest, tmp_path, shard_size=4, batch_size=3)
    assert first.provenance["shards"] == {"total": 3, "computed": 3, "reused": 0, "size": 4}
    run_dir = first.provenance["store_run"]
    stats = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path.glob("*/*/shards/*.npz"))}
    # delete one shard (as if the run had been killed before writing it): only it is recomputed
    victim = sorted(tmp_path.glob("*/*/shards/*.npz"))[1]
    victim.unlink()
    again = evaluate(model, ds, manifest, tmp_path, shard_size=4, batch_size=3)
    assert again.provenance["shards"]["computed"] == 1 and again.provenance["shards"]["reused"] == 2
    assert again.provenance["store_run"] == run_dir
    for p in tmp_path.glob("*/*/shards/*.npz"):
        if p.name != victim.name:
            assert (p.stat().st_ino, p.stat().st_mtime_ns) == stats[p.name], f"{p.name} was rewritten"
    torch.testing.assert_close(again.maps.noise, first.maps.noise, atol=0, rtol=0)
    assert again.row == first.row
    # other weights or another manifest: another run directory, the first one untouched
    other = evaluate(create_model("demo-random", seed=4), ds, manifest, tmp_path, shard_size=4, batch_size=3)
    assert other.provenance["store_run"] != run_dir and other.provenance["shards"]["computed"] == 3
    m3 = synthetic_manifest(ds, n_seeds=3)
    assert store_key(model, m3).digest() != store_key(model, manifest).digest()
    assert len(MapStore(tmp_path).runs()) == 2
