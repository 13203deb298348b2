"""Demo-model training: seeded, reproducible whatever the caller's thread setting, cached atomically."""

from __future__ import annotations

import hashlib
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


class _Stop(Exception):
    """Raised by the test hook to interrupt a training run part way."""


def _interrupt_after(n_steps: int):
    def hook(step: int) -> None:
        if step + 1 == n_steps:
            raise _Stop

    return hook


@pytest.mark.parametrize("objective", ["ezvsl", "negaware"])
def test_interrupted_training_resumes_to_the_weights_of_an_uninterrupted_run(cache, objective):
    # negaware with off-screen replacements: every RNG consumer of the loop (batch, flip, absent
    # partner, noise clips) and the learnable calibration must be restored for the weights to match
    extra = {"offscreen_share": 0.3} if objective == "negaware" else {}
    cfg = T.TrainConfig(objective=objective, steps=6, warmup_steps=2, n_train_images=64, batch_size=32, **extra)
    whole = T.train(cfg, progress=False)
    ckpt = cache / "run.ckpt"
    # checkpoints every 2 steps, interrupted after 3: the resumed run replays step 3 from the state
    # saved after step 2 (a checkpoint between two saves is the general case)
    with pytest.raises(_Stop):
        T.train(cfg, progress=False, checkpoint=ckpt, checkpoint_every=2, after_step=_interrupt_after(3))
    saved = torch.load(ckpt, weights_only=True)
    assert saved["step"] == 2 and saved["config_key"] == cfg.key()
    steps_run: list[int] = []
    resumed = T.train(cfg, progress=False, checkpoint=ckpt, checkpoint_every=2, after_step=steps_run.append)
    assert steps_run == [2, 3, 4, 5], "the resumed run starts at the checkpoint's step"
    assert _same(whole.state_dict, resumed.state_dict)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in whole.history]
    assert resumed.history[-1]["loss"] == whole.history[-1]["loss"]
    # a checkpoint of another config is not resumed from
    other = T.TrainConfig(objective=objective, seed=1, steps=6, warmup_steps=2, n_train_images=64, batch_size=32, **extra)
    steps_run.clear()
    T.train(other, progress=False, checkpoint=ckpt, checkpoint_every=100, after_step=steps_run.append)
    assert steps_run == list(range(6))


def test_train_to_cache_resumes_and_removes_its_checkpoint(cache):
    with pytest.raises(_Stop):
        T.train_to_cache("demo-lvs", seed=0, progress=False, checkpoint_every=1, after_step=_interrupt_after(2), **TINY)
    assert len(list(cache.rglob("demo-lvs-seed0-*.ckpt"))) == 1
    path, record = T.train_to_cache("demo-lvs", seed=0, progress=False, checkpoint_every=1, **TINY)
    assert not list(cache.rglob("*.ckpt")), "the checkpoint is removed once the weights are written"
    whole = T.train(T.TrainConfig(objective="lvs", **TINY), progress=False)
    got = torch.load(path, weights_only=True)
    assert _same(got, whole.state_dict)
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["steps"] == TINY["steps"] and record["seed"] == 0 and record["threads"] == T.TRAIN_THREADS
    assert record["final_loss"] == whole.history[-1]["loss"]
    # same weights, same bytes: the file's hash does not depend on its name or the run
    assert T._serialize(whole.state_dict) == path.read_bytes()


@pytest.mark.parametrize("name", ["demo-ezvsl", "demo-lvs", "demo-negaware"])
def test_shipped_weights_match_their_record_and_load_safely(name):
    shipped = T.shipped_weights(name, seed=0)
    assert shipped is not None, f"no shipped weights for {name} with the default training config"
    path, record = shipped
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"]
    assert record["bytes"] == path.stat().st_size
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert all(t.dtype in (torch.float32, torch.int64) for t in sd.values())
    cfg = T.TrainConfig(objective=T.OBJECTIVES[name], seed=0)
    assert record["config_key"] == cfg.key() and record["config"]["steps"] == cfg.steps == record["steps"]
    assert record["threads"] == T.TRAIN_THREADS and record["final_loss"] == record["history"][-1]["loss"]
    # the factory loads exactly those weights, without training (the cache stays empty)
    from vssl_helpers.models import create_model

    model = create_model(name, pretrained=True, seed=0, progress=False)
    assert _same(model.state_dict(), sd)
    # another config is not served the shipped weights
    assert T.shipped_weights(name, seed=0, steps=cfg.steps - 1) is None
    assert T.shipped_weights(name, seed=1) is None


def test_damaged_shipped_weights_are_refused(tmp_path, monkeypatch):
    src = T.SHIPPED_DIR
    monkeypatch.setattr(T, "SHIPPED_DIR", tmp_path)
    for suffix in (".pt", ".json"):
        (tmp_path / f"demo-ezvsl-seed0{suffix}").write_bytes((src / f"demo-ezvsl-seed0{suffix}").read_bytes())
    data = bytearray((tmp_path / "demo-ezvsl-seed0.pt").read_bytes())
    data[-100] ^= 1
    (tmp_path / "demo-ezvsl-seed0.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        T.trained_state_dict("demo-ezvsl", seed=0, progress=False)


def test_cli_train_on_a_tiny_config(cache, tmp_path, capsys):
    from vssl_helpers.cli import main

    out = tmp_path / "out" / "tiny.pt"
    args = ["train", "--model", "demo-ezvsl", "--steps", "3", "--n-train-images", "64", "--batch-size", "32",
            "--checkpoint-every", "1"]
    assert main([*args, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    # stderr is not a terminal here: the training bar writes a few lines, not one per step
    bar_lines = [line for line in captured.err.splitlines() if line.startswith("train demo-ezvsl")]
    assert 1 <= len(bar_lines) <= 5 and "\r" not in captured.err
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() and record["sha256"] in captured.out
    assert "shipped weights: none" in captured.out  # a tiny config is not the shipped one
    # --steps 3 implies warmup_steps = 3 // 3 = 1: exactly TINY
    whole = T.train(T.TrainConfig(objective="ezvsl", **TINY), progress=False)
    assert _same(torch.load(out, weights_only=True), whole.state_dict)
    # again with --force and --no-progress: trained anew from step 0, same bytes, no bar at all
    assert main([*args, "--force", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert record["sha256"] in captured.out and "train demo-ezvsl" not in captured.err
    # bad input: a clear message naming the option, exit status 2
    assert main(["train", "--model", "demo-saliency"]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["train", "--model", "demo-ezvsl", "--steps", "0"]) == 2
    assert "--steps: must be >= 1" in capsys.readouterr().err


def test_cache_entry_of_the_former_record_format_gets_a_full_record_without_training(cache):
    cfg = T.TrainConfig(objective="ezvsl", **TINY)
    whole = T.train(cfg, progress=False)
    path = T._cache_path(cfg, "demo-ezvsl")
    path.parent.mkdir(parents=True)
    torch.save(whole.state_dict, path)  # as the former code saved it: to a path, record without hash
    path.with_suffix(".json").write_text(json.dumps({"config": {}, "threads": 2, "seconds": 1.5, "history": whole.history}))

    def no_training(step: int) -> None:
        raise AssertionError("trained although the cache holds the weights")

    got, record = T.train_to_cache("demo-ezvsl", seed=0, progress=False, after_step=no_training, **TINY)
    assert got == path and record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["seconds"] == 1.5 and record["final_loss"] == whole.history[-1]["loss"]
    assert _same(torch.load(path, weights_only=True), whole.state_dict)
