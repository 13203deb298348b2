"""Demo-model training: seeded, reproducible whatever the caller's thread setting, cached atomically."""

from __future__ import annotations

import json

import pytest
import torch

from vssl_helpers.models import training as T

TINY = dict(steps=3, warmup_steps=1, n_train_images=64, batch_size=32)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VSSL_CACHE", str(tmp_path))
    return tmp_path


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("objective", ["ezvsl", "lvs", "negaware"])
def test_training_is_reproducible_at_any_caller_thread_count(cache, objective):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = T.train(T.TrainConfig(objective=objective, **TINY), progress=False)
        assert torch.get_num_threads() == 1, "the caller's thread count is restored"
        torch.set_num_threads(2)
        two = T.train(T.TrainConfig(objective=objective, **TINY), progress=False)
    finally:
        torch.set_num_threads(before)
    assert _same(one.state_dict, two.state_dict)
    other_seed = T.train(T.TrainConfig(objective=objective, seed=1, **TINY), progress=False)
    assert not _same(one.state_dict, other_seed.state_dict)


def test_trained_weights_are_cached_with_their_record(cache):
    first = T.trained_state_dict("demo-ezvsl", seed=0, progress=False, **TINY)
    files = list((cache / "training" / "models").glob("demo-ezvsl-seed0-*.pt")) or list(cache.rglob("demo-ezvsl-seed0-*.pt"))
    assert len(files) == 1
    record = json.loads(files[0].with_suffix(".json").read_text())
    assert record["threads"] == T.TRAIN_THREADS and record["config"]["steps"] == TINY["steps"]
    again = T.trained_state_dict("demo-ezvsl", seed=0, progress=False, **TINY)
    assert _same(first, again)
    assert torch.load(files[0], weights_only=True).keys() == first.keys()
