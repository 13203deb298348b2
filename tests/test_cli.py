"""The `vssl` command line: help, fail-fast argument errors, results files, kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vssl_helpers.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--model", "demo-random", "--testset", "synthetic", "--n-images", "16", "--seeds", "2", "--no-progress"]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VSSL_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_help_names_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("evaluate", "threshold", "table", "models"):
        assert word in out
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert "--data-root" in out and "--checkpoint" in out and "--workers" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "no-such-model", "--testset", "synthetic"], "--model: unknown model 'no-such-model'"),
        (["--model", "demo-random", "--testset", "vggss"], "--data-root: required"),
        (["--model", "demo-random", "--testset", "vggss", "--data-root", "/no/such/dir"], "no such folder: /no/such/dir"),
        (["--model", "demo-random", "--testset", "synthetic", "--checkpoint", "/no/file.pth"], "--checkpoint: no such file"),
        (["--model", "demo-random", "--testset", "synthetic", "--seeds", "0"], "--seeds: must be >= 1"),
    ],
)
def test_bad_arguments_fail_fast(cache, capsys, extra, message):
    t0 = time.perf_counter()
    assert main(["evaluate", *extra]) == 2
    assert message in capsys.readouterr().err
    assert time.perf_counter() - t0 < 5
    assert not (cache / "cache" / "maps").exists(), "no heavy work before the arguments are checked"


def test_checkpoint_of_another_model_is_rejected(cache, capsys):
    ckpt = cache / "saliency.pth"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(3)}}, ckpt)
    assert main(["evaluate", "--model", "demo-random", "--testset", "synthetic", "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "does not fit model 'demo-random'" in err and "unexpected keys" in err


def test_checkpoint_is_loaded_and_hashed(cache, capsys):
    from vssl_helpers.models import create_model, file_sha256

    ckpt = cache / "random7.pth"
    torch.save(create_model("demo-random", seed=7).state_dict(), ckpt)
    out = cache / "r.json"
    assert main(["evaluate", *SMALL, "--checkpoint", str(ckpt), "--out", str(out), "--store", str(cache / "s")]) == 0
    r = json.loads(out.read_text())
    assert r["checkpoint_sha256"] == file_sha256(ckpt)
    seeded = cache / "seeded.json"
    assert main(["evaluate", *SMALL, "--model-seed", "7", "--out", str(seeded), "--store", str(cache / "s")]) == 0
    assert json.loads(seeded.read_text())["pooled"] == r["pooled"]


def test_results_file_and_table(cache, capsys):
    out = cache / "res.json"
    assert main(["evaluate", *SMALL, "--out", str(out), "--store", str(cache / "s")]) == 0
    r = json.loads(out.read_text())
    for key in ("package_version", "model", "checkpoint_sha256", "manifest_sha256", "n_seeds", "seeds", "threshold", "pooled", "per_seed", "timings"):
        assert key in r
    assert r["n_seeds"] == 2 and len(r["per_seed"]) == 2 and r["seeds"] == [0, 1]
    assert set(r["threshold"]) >= {"value", "rule", "per_type_q3", "decisive_type"}
    assert set(r["per_seed"][0]) == set(r["pooled"]) | {"seed"}
    capsys.readouterr()
    assert main(["table", str(out), str(out), "--out", str(cache / "t.csv")]) == 0
    assert "cIoU U.th." in capsys.readouterr().out
    assert (cache / "t.csv").read_text().count("demo-random") == 2
    assert main(["threshold", *SMALL, "--store", str(cache / "s")]) == 0
    assert "decisive" in capsys.readouterr().out


def _metrics(r: dict) -> dict:
    return {k: r[k] for k in ("threshold", "pooled", "per_seed", "manifest_sha256", "weights")}


def test_kill_and_resume_gives_identical_results(cache):
    store = cache / "store"
    args = [*SMALL, "--n-images", "24", "--shard-size", "4", "--store", str(store)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vssl_helpers.cli", "evaluate", *args, "--out", str(cache / "killed.json"),
         "--pause-after-shard", "30"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not list(store.glob("*/*/shards/*.npz")):
            assert proc.poll() is None, "the run ended before writing a shard"
            assert time.time() < deadline, "no shard written in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.glob("*/*/shards/*.npz")}
    assert 1 <= len(done) < 6 and not (cache / "killed.json").exists()
    # restart (in process): finishes, reusing the finished shards untouched
    assert main(["evaluate", *args, "--out", str(cache / "resumed.json")]) == 0
    resumed = json.loads((cache / "resumed.json").read_text())
    assert resumed["store"]["shards"]["reused"] == len(done)
    assert resumed["store"]["shards"]["computed"] == 6 - len(done)
    for p in store.glob("*/*/shards/*.npz"):
        if p.name in done:
            assert (p.stat().st_ino, p.stat().st_mtime_ns) == done[p.name], f"{p.name} was recomputed"
    # an uninterrupted run in a fresh store gives the same maps (bytes) and the same metrics
    fresh = cache / "fresh"
    assert main(["evaluate", *args[:-1], str(fresh), "--out", str(cache / "fresh.json")]) == 0
    assert _metrics(json.loads((cache / "fresh.json").read_text())) == _metrics(resumed)
    a = sorted(store.glob("*/*/shards/*.npz"))
    b = sorted(fresh.glob("*/*/shards/*.npz"))
    assert [p.name for p in a] == [p.name for p in b]
    import numpy as np

    for pa, pb in zip(a, b):
        with np.load(pa) as za, np.load(pb) as zb:
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k])
