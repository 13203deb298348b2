"""Scale-out of the evaluation matrix (vssl_helpers/scale.py, engine.compute_shards).

Expectations are independent of the executor: the reference is a plain local
:func:`~vssl_helpers.engine.evaluate` in its own store, and the Dask runs must give the same maps
bit for bit (``torch.equal``) and the same metric rows, with exactly one file per shard, also when a
worker process is killed (SIGKILL) in the middle of a task.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
import torch

from vssl_helpers.embedded import synthetic_manifest
from vssl_helpers.engine import EvalOptions, compute_shards, evaluate, store_run
from vssl_helpers.models import create_model
from vssl_helpers.scale import DaskExecutor, EvalJob, LocalExecutor, SlowDown, check_scheduler, make_executor
from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet

OPT = EvalOptions(shard_size=4, batch_size=4, num_workers=0)
N_IMAGES = 16  # 4 shards of 4
SHARDS = [f"shard-{k:05d}.npz" for k in range(4)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # one torch thread here, hence in every task (DaskExecutor's default: the coordinator's count;
    # CPU maps depend on it in the last bit): 2 workers x 1 thread on the 2 cores, no oversubscription
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSSL_CACHE", str(tmp_path_factory.mktemp("cache")))
        ds = SyntheticSet(SyntheticConfig(split="test", n_images=N_IMAGES, seed=3))
        manifest = synthetic_manifest(ds, n_seeds=2)
        models = {"random": create_model("demo-random", seed=1), "oracle": create_model("demo-oracle", seed=1)}
        refs = {name: evaluate(m, ds, manifest, tmp_path_factory.mktemp(f"ref-{name}"), OPT) for name, m in models.items()}
        yield ds, manifest, models, refs
    torch.set_num_threads(threads)


def assert_same(a, b):
    for kind in ("positive", "silence", "noise", "offscreen"):
        assert torch.equal(getattr(a.maps, kind), getattr(b.maps, kind)), kind
    assert a.row == b.row and a.per_seed == b.per_seed
    assert float(a.threshold.value) == float(b.threshold.value)


def shard_files(run):
    return sorted(p.name for p in (run.path / "shards").glob("shard-*.npz"))


# ---------------------------------------------------------------------------------------------- engine


def test_compute_shards_in_any_order_equals_one_evaluate(data, tmp_path):
    ds, manifest, models, refs = data
    model = models["random"]
    run = store_run(model, ds, manifest, tmp_path, OPT)
    assert run.n_shards == 4 and run.pending() == list(range(4))
    pool_only = compute_shards(model, ds, manifest, tmp_path, [], OPT)
    assert pool_only.computed == [] and run.pool_path.is_file() and shard_files(run) == []
    for chunk in ([3, 1], [0, 2]):
        rep = compute_shards(model, ds, manifest, tmp_path, chunk, OPT)
        assert rep.computed == sorted(chunk) and rep.reused == []
    again = compute_shards(model, ds, manifest, tmp_path, [0, 3], OPT)
    assert again.computed == [] and again.reused == [0, 3]
    res = evaluate(model, ds, manifest, tmp_path, OPT)
    assert res.provenance["store_run"] == str(run.path)  # store_run plans the run evaluate reads
    assert res.provenance["shards"]["computed"] == 0 and res.provenance["shards"]["reused"] == 4
    assert_same(res, refs["random"])


def test_compute_shards_rejects_bad_indices(data, tmp_path):
    ds, manifest, models, _ = data
    with pytest.raises(ValueError, match=r"shards: \[4\] out of range; expected indices in 0\.\.3"):
        compute_shards(models["random"], ds, manifest, tmp_path, [0, 4], OPT)
    with pytest.raises(ValueError, match="shards: expected a sequence of shard indices"):
        compute_shards(models["random"], ds, manifest, tmp_path, "01", OPT)  # type: ignore[arg-type]


def test_local_executor_equals_evaluate(data, tmp_path):
    ds, manifest, models, refs = data
    rep = LocalExecutor().fill([EvalJob("random", models["random"], ds, manifest)], tmp_path, OPT)
    assert sorted(rep.jobs["random"]["computed"]) == list(range(4))
    assert_same(evaluate(models["random"], ds, manifest, tmp_path, OPT), refs["random"])


def test_executor_settings_are_checked():
    assert check_scheduler("10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert check_scheduler("tls://head:8786") == "tls://head:8786"
    for bad in ("head", "http://head:8786", "tcp://head:port"):
        with pytest.raises(ValueError, match="--scheduler: expected a Dask scheduler address"):
            check_scheduler(bad)
    with pytest.raises(ValueError, match="give one of them, not both"):
        make_executor("tcp://h:1", 2)
    with pytest.raises(ValueError, match="--dask-local: expected a number of workers >= 1, got 0"):
        make_executor(dask_local=0)
    assert make_executor() is None


# ------------------------------------------------------------------------------------------------ Dask


@pytest.fixture(scope="module")
def cluster(data):
    ex = DaskExecutor.local(2, shards_per_task=1)  # after `data`: the workers inherit its VSSL_CACHE
    yield ex
    ex.close()


def test_dask_matrix_equals_local_runs(data, cluster, tmp_path):
    ds, manifest, models, refs = data
    assert cluster.n_workers() == 2
    assert cluster._resources() is None  # no GPU here: no resource annotation (tasks would wait forever)
    assert cluster.dashboard_link.startswith("http")
    jobs = [EvalJob(name, m, ds, manifest) for name, m in models.items()]
    rep = cluster.fill(jobs, tmp_path, OPT)
    assert rep.n_tasks == 2 * (1 + 4)  # per job: the pool task + one task per shard
    for name, m in models.items():
        run = store_run(m, ds, manifest, tmp_path, OPT)
        assert rep.jobs[name]["computed"] == {k: 1 for k in range(4)}
        assert shard_files(run) == SHARDS
        res = evaluate(m, ds, manifest, tmp_path, OPT)
        assert res.provenance["shards"]["computed"] == 0  # the coordinator computed metrics only
        assert_same(res, refs[name])
    # a second fill finds everything finished: no task at all
    again = cluster.fill(jobs, tmp_path, OPT)
    assert again.n_tasks == 0 and all(j["reused"] == 4 for j in again.jobs.values())


def test_worker_killed_mid_task_still_gives_identical_results(data, cluster, tmp_path):
    ds, manifest, models, refs = data
    model = models["random"]
    ex = DaskExecutor(cluster.client, shards_per_task=2)  # 2 tasks of 2 shards, each slowed down
    opt = replace(OPT, after_shard=SlowDown(1.0))
    run = store_run(model, ds, manifest, tmp_path, opt)
    out: dict = {}

    def fill():
        try:
            out["report"] = ex.fill([EvalJob("random", model, ds, manifest)], tmp_path, opt)
        except BaseException as e:  # noqa: BLE001 - re-raised by the test below
            out["error"] = e

    t = threading.Thread(target=fill)
    t.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and t.is_alive():
        # a worker in the middle of a shard task whose first shard is written (it now sleeps, then
        # computes the task's next shards): kill its process
        for addr, keys in ex.client.processing().items():
            for key in keys:
                name = str(key)
                if name.startswith("vssl-shards-"):
                    first = 2 * int(name.split("-")[3])
                    if run.is_done(first) and not run.is_done(first + 1):
                        pid = ex.client.run(os.getpid, workers=[addr])[addr]
                        os.kill(pid, signal.SIGKILL)
                        killed = (addr, pid, first)
                        break
            if killed:
                break
        time.sleep(0.05)
    t.join(timeout=90)
    assert not t.is_alive(), "the run did not finish after the worker was killed"
    assert killed is not None, "no worker was caught mid-task"
    assert "error" not in out, out.get("error")
    rep = out["report"]
    first = killed[2]
    computed = rep.jobs["random"]["computed"]
    # the killed task's first shard was renamed into place before the kill: the retried task found
    # it finished; the others were computed once each
    assert first not in computed and all(n == 1 for n in computed.values())
    assert shard_files(run) == SHARDS  # none missing, none twice
    assert all(np.load(run.shard_path(k))["ids"].tolist() == run.ids[4 * k : 4 * k + 4] for k in range(4))
    assert_same(evaluate(model, ds, manifest, tmp_path, OPT), refs["random"])
    # the nanny restarted the killed worker process
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ex.n_workers() < 2:
        time.sleep(0.2)
    pids = set(ex.client.run(os.getpid).values())
    assert killed[1] not in pids


# ------------------------------------------------------------------------------------ command line


@pytest.mark.parametrize("extra, message", [
    (["--scheduler", "nohost"], "--scheduler: expected a Dask scheduler address such as tcp://host:8786, got 'nohost'"),
    (["--dask-local", "0"], "--dask-local: expected a number of workers >= 1, got 0"),
    (["--dask-local", "2", "--scheduler", "tcp://h:1"], "give one of them, not both"),
    (["--dask-local", "2", "--shards-per-task", "0"], "--shards-per-task: must be >= 1, got 0"),
])
def test_cli_scale_options_are_checked(extra, message, capsys):
    from vssl_helpers.cli import main

    assert main(["evaluate", "--model", "demo-random", "--testset", "synthetic", "--n-images", "8", *extra]) == 2
    assert message in capsys.readouterr().err


def test_cli_on_a_running_scheduler_equals_a_local_run(data, cluster, tmp_path, capsys):
    import json

    from vssl_helpers.cli import main

    common = ["evaluate", "--model", "demo-random", "--testset", "synthetic", "--n-images", "8", "--seeds", "2",
              "--shard-size", "4", "--workers", "0", "--no-progress"]
    assert main([*common, "--store", str(tmp_path / "local"), "--out", str(tmp_path / "local.json")]) == 0
    assert main([*common, "--store", str(tmp_path / "dask"), "--out", str(tmp_path / "dask.json"),
                 "--scheduler", cluster.client.scheduler.address, "--shards-per-task", "2"]) == 0
    assert "dashboard http" in capsys.readouterr().err
    local, remote = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("local", "dask"))
    assert remote["store"]["shards"] == {"total": 2, "computed": 0, "reused": 2, "size": 4}  # filled on Dask
    assert remote["pooled"] == local["pooled"] and remote["per_seed"] == local["per_seed"]
    assert remote["threshold"] == local["threshold"]


# ------------------------------------------------------------------------------------------- book


def test_book_config_scale_keys():
    from vssl_helpers.report.runs import BookConfigError, book_config_from_dict

    base = {"testsets": {"vggss": "/data/vggss"}, "models": {"ezvsl": None}}
    cfg = book_config_from_dict({**base, "scheduler": "tcp://head:8786"})
    assert cfg.scheduler == "tcp://head:8786" and cfg.dask_local is None
    assert book_config_from_dict(cfg.to_dict()).scheduler == "tcp://head:8786"  # round trip
    assert book_config_from_dict({**base, "dask_local": 3}).dask_local == 3
    with pytest.raises(BookConfigError, match=r"dask_local: expected an integer >= 1, got 0"):
        book_config_from_dict({**base, "dask_local": 0})
    with pytest.raises(BookConfigError, match="scheduler and dask_local: give one of them, not both"):
        book_config_from_dict({**base, "dask_local": 2, "scheduler": "tcp://head:8786"})
    with pytest.raises(BookConfigError, match="scheduler: expected a Dask scheduler address"):
        book_config_from_dict({**base, "scheduler": 8786})


def test_book_matrix_on_dask_equals_in_process(data, cluster, tmp_path):
    from vssl_helpers.report.runs import demo_test_sets, evaluate_models

    sets = demo_test_sets(n_test_images=8, n_seeds=2)
    here = evaluate_models(["demo-random"], sets, store=tmp_path / "here")
    there = evaluate_models(["demo-random"], sets, store=tmp_path / "dask", executor=cluster)
    for key in sets:  # the IS3-like set reuses the VGG-SS-like threshold on both paths
        assert there[key]["demo-random"].provenance["shards"]["computed"] == 0
        assert_same(here[key]["demo-random"], there[key]["demo-random"])

    # a factory (the book configuration's scheduler / dask_local) starts a cluster only when a map
    # is missing: every chapter after the first reads the store without one
    def no_cluster():
        raise AssertionError("a cluster was started although every map is stored")

    again = evaluate_models(["demo-random"], sets, store=tmp_path / "dask", executor=no_cluster)
    assert_same(again["is3-like"]["demo-random"], here["is3-like"]["demo-random"])
    started = []

    def factory():
        started.append(1)
        return _Borrowed(cluster)

    fresh = evaluate_models(["demo-random"], sets, store=tmp_path / "fresh", executor=factory)
    assert started == [1] and fresh["vggss-like"]["demo-random"].provenance["shards"]["computed"] == 0
    assert_same(fresh["vggss-like"]["demo-random"], here["vggss-like"]["demo-random"])


class _Borrowed:
    """The module's cluster as a context manager that does not close it."""

    def __init__(self, ex):
        self.ex = ex

    def __enter__(self):
        return self.ex

    def __exit__(self, *exc):
        return None


def test_first_metric_keeps_torch_thread_count():
    """Numba's OpenMP pool, launched by the first metric call, used to reset torch's intra-op thread
    count to the core count; CPU maps depend on it in the last bit, so maps computed after a metric
    (e.g. the second model of a matrix) differed from a task's. Fresh process: the pool starts once."""
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(1)\n"
            "from vssl_helpers import metrics as M\n"
            "M.ciou(torch.rand(2, 7, 7), torch.rand(2, 224, 224) > 0.5, 0.5)\n"
            "print(torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_notebooks_on_dask_one_task_each(cluster, tmp_path):
    """The papermill stage on the executor: each notebook is a task; outputs as from the in-process
    path (parameters injected, provenance recorded), a failing notebook reported, not the others."""
    import nbformat

    from vssl_helpers.pipeline import NotebookExecutionError, NotebookSpec, execute_notebooks

    for name, body in (("ok_a", "print(x * 2)"), ("ok_b", "print(x + 1)"), ("bad", "raise ValueError('boom')")):
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell("x = 1")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(body)]
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    specs = [NotebookSpec(template=f"{n}.ipynb", output=f"{n}.out.ipynb", parameters={"x": 20}) for n in ("ok_a", "ok_b", "bad")]
    with pytest.raises(NotebookExecutionError, match="boom"):
        execute_notebooks(specs, root=tmp_path, out_dir=Path("out"), executor=cluster, log=lambda m: None)
    outputs = {n: nbformat.read(tmp_path / "out" / f"{n}.out.ipynb", as_version=4) for n in ("ok_a", "ok_b")}
    assert outputs["ok_a"].cells[-1].outputs[0]["text"].strip() == "40"  # the injected x = 20
    assert outputs["ok_b"].cells[-1].outputs[0]["text"].strip() == "21"
    assert all("vssl" in nb.metadata for nb in outputs.values())
    assert not (tmp_path / "out" / "bad.out.ipynb").exists() and (tmp_path / "out" / "bad.out.failed.ipynb").exists()


def _pid_after(delay: float, fail: bool = False) -> int:
    import os
    import time

    time.sleep(delay)
    if fail:
        raise KeyError("asked to fail")
    return os.getpid()


def test_local_executor_runs_calls_in_processes_in_order_with_their_exceptions() -> None:
    """`vssl book --jobs 2`: notebooks are calls of LocalExecutor(processes=2).run_calls. Results come
    back in call order, a failing call gives its exception in its place, and the calls ran in two
    worker processes at once (not here, not one after the other)."""
    import os
    import time

    from vssl_helpers.scale import LocalExecutor

    calls = [{"delay": 1.0}, {"delay": 1.0}, {"delay": 0.0, "fail": True}]
    t0 = time.perf_counter()
    out = LocalExecutor(processes=2).run_calls(_pid_after, calls)
    wall = time.perf_counter() - t0
    assert isinstance(out[2], KeyError) and "asked to fail" in str(out[2])
    assert os.getpid() not in out[:2] and out[0] != out[1], out
    assert wall < 1.9, f"two 1 s calls took {wall:.2f} s: not concurrent"
    assert LocalExecutor().run_calls(_pid_after, calls[:1]) == [os.getpid()]  # one process: here
    with pytest.raises(ValueError, match="processes: expected >= 1, got 0"):
        LocalExecutor(processes=0)


def test_book_jobs_below_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from vssl_helpers.cli import main

    assert main(["book", "--jobs", "0", "--no-build"]) == 2
    assert "vssl: error: --jobs: expected >= 1, got 0" in capsys.readouterr().err
