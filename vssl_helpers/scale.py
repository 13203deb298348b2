"""Scale-out: the evaluation matrix (model x checkpoint x test set x shard of samples) on Dask.

The engine (:mod:`vssl_helpers.engine`) computes a run's maps in shards that the map store writes
atomically (:mod:`vssl_helpers.store`). That makes the shard the natural unit of distributed work:

* a **job** (:class:`EvalJob`) is one cell of the matrix: a model with its weights on a test set's
  negatives manifest, i.e. one run of the store;
* a **task** is ``(job, range of shard indices)``; it calls :func:`vssl_helpers.engine.compute_shards`,
  which skips shards already finished and writes each new one atomically (temporary file + rename).
  One *pool* task per job first stores the off-screen pool's audio embeddings, which every shard
  task of the job reads;
* when every task has finished, the caller runs :func:`vssl_helpers.engine.evaluate` as usual: it
  finds every shard finished and computes the metrics from the store. Nothing of the metrics runs on
  the cluster, so the results are those of a local run, bit for bit (each shard is computed by the
  same code on the same batches, and batches never cross a shard).

A worker lost mid-task (killed, out of memory, preempted) is Dask's business: the scheduler gives its
tasks to another worker. The retried task recomputes only the shards that the lost one had not
renamed into place; a shard file exists completely or not at all, so nothing is duplicated or missing.

Two executors share one interface, ``fill(jobs, store, options) -> FillReport``:
:class:`LocalExecutor` (in this process, the default) and :class:`DaskExecutor` (a
``LocalCluster`` of N worker processes, ``--dask-local N``, or an existing scheduler,
``--scheduler tcp://host:port``). :func:`make_executor` picks one from those two settings.

GPUs: when the workers advertise a ``GPU`` resource (``dask worker ... --resources GPU=1``; a
``LocalCluster`` made here gives each worker ``GPU=1`` when CUDA is available), every task asks for
``GPU=1``, so one task holds one GPU. On a CPU-only cluster tasks carry no resource annotation.

Cost model (see README, "Running at scale"): wall time ~ startup + max over workers of the shards
it computes x seconds per shard, with seconds per shard ~ shard_size x seeds x per-map cost; the
pool task of each job runs before its shards.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .engine import EvalOptions, compute_shards, store_run
from .store import MapStore

__all__ = ["EvalJob", "FillReport", "LocalExecutor", "DaskExecutor", "make_executor", "SlowDown", "check_scheduler"]


@dataclass
class EvalJob:
    """One cell of the evaluation matrix: ``model`` (its weights identified by ``weights``, as for
    :func:`~vssl_helpers.engine.evaluate`) on ``testset`` with the negatives of ``manifest``.

    On Dask the job is pickled to the workers: the model and the test set must be importable there
    (the package's models and sets are; a plugin file must be importable on the workers too), and a
    real test set's media folder and the map store must be on a file system every worker sees.
    """

    label: str
    model: Any
    testset: Any
    manifest: Any
    weights: str | None = None


@dataclass
class FillReport:
    """What an executor did: per job label, its store run, the shards the finished tasks computed
    (``computed``: shard index -> times written; shards written by a task whose worker was then lost
    are found finished by the retried task and not counted) and how many were finished before the
    fill (``reused``); the number of tasks, the workers that ran them and the wall time."""

    executor: str
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_tasks: int = 0
    workers: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    task_s: list[float] = field(default_factory=list)
    """Seconds each finished task spent in :func:`~vssl_helpers.engine.compute_shards` (on its worker)."""

    @property
    def n_computed(self) -> int:
        """Shards written by this fill (each counted once)."""
        return sum(len(j["computed"]) for j in self.jobs.values())


class SlowDown:
    """An ``after_shard`` hook that sleeps ``seconds`` after each written shard (picklable, so that it
    travels to Dask workers): a testing hook, to interrupt a run part way."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)

    def __call__(self, shard: int, path: Path) -> None:
        time.sleep(self.seconds)


def _chunks(pending: Sequence[int], size: int) -> list[list[int]]:
    return [list(pending[i : i + size]) for i in range(0, len(pending), size)]


class LocalExecutor:
    """The in-process executor: every pending shard of every job computed here, one job after the
    other (what :func:`~vssl_helpers.engine.evaluate` does by itself; here for symmetry and tests).

    ``processes > 1``: :meth:`run_calls` runs that many calls at a time in forked worker processes
    (the book's notebooks: each call mostly waits for its own Jupyter kernel, so two at a time fill
    two cores); shards are always computed here.
    """

    name = "local"

    def __init__(self, processes: int = 1) -> None:
        if int(processes) < 1:
            raise ValueError(f"processes: expected >= 1, got {processes}")
        self.processes = int(processes)

    def fill(self, jobs: Sequence[EvalJob], store: MapStore | str | Path, options: EvalOptions | None = None,
             progress: bool = False) -> FillReport:
        """Compute every pending shard of ``jobs`` in ``store``."""
        opt = options or EvalOptions()
        t0 = time.perf_counter()
        report = FillReport(self.name, workers=[f"pid {os.getpid()}"])
        for job in jobs:
            run = store_run(job.model, job.testset, job.manifest, store, opt, weights=job.weights)
            pending = run.pending()
            rep = compute_shards(job.model, job.testset, job.manifest, store, pending,
                                 dataclasses.replace(opt, progress=progress), weights=job.weights)
            report.n_tasks += 1
            report.jobs[job.label] = {"run": str(run.path), "n_shards": run.n_shards,
                                      "computed": {k: 1 for k in rep.computed}, "reused": run.n_shards - len(pending)}
        report.wall_s = time.perf_counter() - t0
        return report

    def run_calls(self, fn: Any, calls: Sequence[dict[str, Any]], progress: bool = False) -> list[Any]:
        """``fn(**kwargs)`` for each of ``calls``, in order; a call that raises gives its exception
        object in its place (the others still run)."""
        if self.processes > 1 and len(calls) > 1:
            import concurrent.futures
            import multiprocessing

            # fork: the children only start kernels and write notebooks; nothing to re-import
            with concurrent.futures.ProcessPoolExecutor(min(self.processes, len(calls)),
                                                        mp_context=multiprocessing.get_context("fork")) as pool:
                futures = [pool.submit(_call_or_exception, fn, kwargs) for kwargs in calls]
                return [f.result() for f in futures]
        return [_call_or_exception(fn, kwargs) for kwargs in calls]

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _call_or_exception(fn: Any, kwargs: dict[str, Any]) -> Any:
    """``fn(**kwargs)``, or the exception it raised (the other calls still run)."""
    try:
        return fn(**kwargs)
    except Exception as e:  # noqa: BLE001 - returned to the caller, who decides
        return e


# --------------------------------------------------------------------------------------------------
# worker side (module-level functions: Dask pickles them by reference)


def _worker_device(device: Any) -> str:
    """The device of a task on this worker: ``auto``/``cuda`` with several GPUs on the host picks
    the worker's own GPU (``cuda:<worker name mod GPU count>`` for the integer names of a
    ``LocalCluster``; a cluster that sets ``CUDA_VISIBLE_DEVICES`` per worker sees one GPU)."""
    import torch

    d = str(device)
    if d not in ("auto", "cuda") or not torch.cuda.is_available():
        return d
    n = torch.cuda.device_count()
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        name = None
    if n > 1 and isinstance(name, int):
        return f"cuda:{name % n}"
    return "cuda"


def _task_options(options: EvalOptions) -> EvalOptions:
    """Options of a task on a worker: its device, no bars (progress is the coordinator's), and no
    DataLoader processes inside a daemonic worker process (it may not start children; the loaders
    decode in the task's thread instead, which changes no map)."""
    import multiprocessing

    workers = options.num_workers if not multiprocessing.current_process().daemon else 0
    return dataclasses.replace(options, device=_worker_device(options.device), num_workers=workers, progress=False)


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Undo the cost of Dask's ``MALLOC_TRIM_THRESHOLD_`` in a worker started with it (an existing
    cluster's nanny sets 65536 by default): a fixed trim threshold turns off glibc's dynamic mmap
    threshold, so every large tensor would be mmapped and unmapped again (measured: shard tasks ~2x
    slower). Sets the mmap threshold to glibc's dynamic maximum (32 MiB) and the trim threshold to
    twice that, which is where the dynamic rule ends up for tensors of this size; glibc only."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED or "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 64 * 1024 * 1024)


def _task(job: EvalJob, shards: list[int], store_root: str, options: EvalOptions, torch_threads: int,
          *deps: Any) -> dict[str, Any]:
    """A task: :func:`~vssl_helpers.engine.compute_shards` of ``shards`` (``[]``: the job's pool
    embeddings only) with ``torch_threads`` intra-op threads. ``deps``: results of tasks that must
    finish first (the pool task)."""
    import socket

    import torch

    torch.set_num_threads(int(torch_threads))
    _tune_malloc()
    t0 = time.perf_counter()
    rep = compute_shards(job.model, job.testset, job.manifest, store_root, shards, _task_options(options),
                         weights=job.weights)
    return {"job": job.label, "shards": list(shards), "computed": rep.computed, "reused": rep.reused,
            "worker": f"{socket.gethostname()}:{os.getpid()}", "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------------
# coordinator side


def check_scheduler(address: str, option: str = "--scheduler") -> str:
    """A scheduler address such as ``tcp://10.0.0.5:8786`` (``tls://``, ``ucx://``, ``inproc://``
    too; ``host:port`` is taken as ``tcp://host:port``). Raises ``ValueError`` naming ``option``."""
    a = str(address).strip()
    if "://" not in a:
        a = "tcp://" + a
    scheme, _, rest = a.partition("://")
    host, sep, port = rest.rpartition(":")
    if scheme not in ("tcp", "tls", "ucx", "inproc", "ws", "wss") or not sep or not host or not port.isdigit():
        raise ValueError(f"{option}: expected a Dask scheduler address such as tcp://host:8786, got {address!r}")
    return a


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:  # pragma: no cover - the lock installs it
        raise ImportError("the Dask executor needs dask[distributed]: pip install -r requirements.txt") from None
    return distributed


class DaskExecutor:
    """The evaluation matrix on a Dask cluster (see the module docstring).

    Args:
        client: a ``distributed.Client``.
        shards_per_task: shards per task (more: fewer, longer tasks and less per-task overhead; fewer:
            finer load balancing and less work lost with a worker).
        owns_cluster: close the client (and the cluster it started) in :meth:`close`.
        log: where the dashboard link goes (default stderr).
        torch_threads: intra-op threads of torch in each task; default (``None``): as many as this
            process uses (``torch.get_num_threads()``). On CPU the reduction order of torch's kernels
            depends on the thread count (measured: maps differ by ~1e-7 between 1 and 2 threads), so
            the default keeps the maps bit-identical to a local run on the same hardware; 1 thread per
            task packs more tasks on a host's cores when exactness to the last bit is not needed.
    """

    name = "dask"

    def __init__(self, client: Any, shards_per_task: int = 1, owns_cluster: bool = False, log: Any = None,
                 torch_threads: int | None = None) -> None:
        if not isinstance(shards_per_task, int) or shards_per_task < 1:
            raise ValueError(f"shards_per_task: expected an integer >= 1, got {shards_per_task!r}")
        if torch_threads is not None and (not isinstance(torch_threads, int) or torch_threads < 1):
            raise ValueError(f"torch_threads: expected an integer >= 1 or None, got {torch_threads!r}")
        self.torch_threads = torch_threads
        self.client = client
        self.shards_per_task = shards_per_task
        self.owns_cluster = owns_cluster
        self.log = log if log is not None else sys.stderr
        print(f"vssl: Dask cluster {client.scheduler.address}: {self.n_workers()} worker(s); "
              f"dashboard {self.dashboard_link}" + ("" if _has_bokeh() else " (install bokeh>=3.1 to serve it)"),
              file=self.log, flush=True)

    @classmethod
    def local(cls, n_workers: int, threads_per_worker: int | None = None, shards_per_task: int = 1,
              dashboard_address: str = ":0", torch_threads: int | None = None, **cluster_kwargs: Any) -> "DaskExecutor":
        """A ``LocalCluster`` of ``n_workers`` worker processes on this machine (one thread each by
        default; ``GPU=1`` per worker when CUDA is available), owned by the executor."""
        if not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1:
            raise ValueError(f"--dask-local: expected a number of workers >= 1, got {n_workers!r}")
        distributed = _import_distributed()
        import dask
        import torch

        if threads_per_worker is None:
            threads_per_worker = 1
        resources = {"GPU": 1} if torch.cuda.is_available() else None
        # non-daemonic workers: a task's DataLoader may start its decoding processes. And no
        # MALLOC_TRIM_THRESHOLD_ (Dask sets 65536 for its workers): a fixed threshold turns off glibc's
        # dynamic mmap threshold, so every large tensor is mmapped and unmapped again; measured here,
        # it made a shard task about 2x slower (1.4 s vs 0.7 s in the same process without it)
        spawn_env = {k: v for k, v in (dask.config.get("distributed.nanny.pre-spawn-environ") or {}).items()
                     if k != "MALLOC_TRIM_THRESHOLD_"}
        env = dict(os.environ)
        try:
            with dask.config.set({"distributed.worker.daemon": False, "distributed.nanny.pre-spawn-environ": spawn_env}):
                cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                                   processes=True, resources=resources,
                                                   dashboard_address=dashboard_address, **cluster_kwargs)
        finally:
            # the nanny sets OMP_NUM_THREADS=1 etc. in this process's environment to spawn the workers
            # and leaves them there: later child processes of the caller (notebook kernels) would inherit
            os.environ.clear()
            os.environ.update(env)
        return cls(distributed.Client(cluster), shards_per_task=shards_per_task, owns_cluster=True,
                   torch_threads=torch_threads)

    @classmethod
    def connect(cls, address: str, shards_per_task: int = 1, timeout: float = 30.0) -> "DaskExecutor":
        """An executor on the running scheduler at ``address`` (the cluster is not closed after)."""
        distributed = _import_distributed()
        addr = check_scheduler(address)
        try:
            client = distributed.Client(addr, timeout=timeout)
        except OSError as e:
            raise ValueError(f"--scheduler {address}: no Dask scheduler reachable there ({e})") from None
        return cls(client, shards_per_task=shards_per_task, owns_cluster=False)

    @property
    def dashboard_link(self) -> str:
        """The Dask dashboard's address."""
        return str(self.client.dashboard_link)

    def n_workers(self) -> int:
        """Workers connected now."""
        return len(self.client.scheduler_info()["workers"])

    def _resources(self) -> dict[str, float] | None:
        """``{"GPU": 1}`` when the workers advertise GPUs, so that one task holds one GPU; else
        nothing (a resource no worker has would leave every task waiting forever)."""
        workers = self.client.scheduler_info()["workers"].values()
        return {"GPU": 1} if any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers) else None

    def fill(self, jobs: Sequence[EvalJob], store: MapStore | str | Path, options: EvalOptions | None = None,
             progress: bool = False) -> FillReport:
        """Compute every pending shard of ``jobs`` in ``store`` on the cluster; returns when all are
        finished. A task that fails (not a lost worker: Dask reschedules those) cancels the rest and
        its error is raised here."""
        import torch

        from .progress import bar

        distributed = _import_distributed()
        threads = self.torch_threads or torch.get_num_threads()
        opt = dataclasses.replace(options or EvalOptions(), progress=False)
        root = str(Path(store.root if isinstance(store, MapStore) else store).expanduser().resolve())
        resources = self._resources()
        t0 = time.perf_counter()
        report = FillReport(self.name)
        futures: list[Any] = []
        total = 0
        tag = uuid.uuid4().hex[:8]
        for j, job in enumerate(jobs):
            run = store_run(job.model, job.testset, job.manifest, root, opt, weights=job.weights)
            pending = run.pending()
            report.jobs[job.label] = {"run": str(run.path), "n_shards": run.n_shards, "computed": {},
                                      "reused": run.n_shards - len(pending)}
            if not pending:
                continue
            # sent once to every worker (a copy on each: a lost worker does not take the only one with it)
            remote = self.client.scatter(job, hash=False, broadcast=True)
            # the pool embeddings first (one task), then the shards, which read them from the store
            pool = self.client.submit(_task, remote, [], root, opt, threads, key=f"vssl-pool-{j}-{tag}", resources=resources,
                                      pure=False)
            futures.append(pool)
            for c, chunk in enumerate(_chunks(pending, self.shards_per_task)):
                futures.append(self.client.submit(_task, remote, chunk, root, opt, threads, pool,
                                                  key=f"vssl-shards-{j}-{c}-{tag}", resources=resources, pure=False))
                total += len(chunk)
        report.n_tasks = len(futures)
        workers: set[str] = set()
        with bar(total=total, desc="maps on Dask", unit="shard", disable=not progress) as pbar:
            try:
                for fut in distributed.as_completed(futures):
                    out = fut.result()  # a task's exception is raised here
                    workers.add(out["worker"])
                    report.task_s.append(out["seconds"])
                    done = report.jobs[out["job"]]["computed"]
                    for k in out["computed"]:
                        done[k] = done.get(k, 0) + 1
                    pbar.update(len(out["shards"]))
            except BaseException:
                self.client.cancel(futures)
                raise
        report.workers = sorted(workers)
        report.wall_s = time.perf_counter() - t0
        return report

    def run_calls(self, fn: Any, calls: Sequence[dict[str, Any]], progress: bool = False) -> list[Any]:
        """``fn(**kwargs)`` for each of ``calls``, one task each (e.g. one notebook execution per
        task, :func:`vssl_helpers.pipeline.execute_notebooks`), on the workers (``GPU=1`` each where
        the workers have GPUs); results in the order of ``calls``, a call that raised gives its
        exception object in its place (the others still run)."""
        from .progress import bar

        distributed = _import_distributed()
        resources = self._resources()
        futures = [self.client.submit(fn, **kwargs, resources=resources, pure=False) for kwargs in calls]
        index = {f.key: i for i, f in enumerate(futures)}
        out: list[Any] = [None] * len(futures)
        with bar(total=len(futures), desc="tasks on Dask", unit="task", disable=not progress) as pbar:
            for fut in distributed.as_completed(futures):
                exc = fut.exception()
                out[index[fut.key]] = exc if exc is not None else fut.result()
                pbar.update(1)
        return out

    def close(self) -> None:
        """Close the client, and the cluster when the executor started it."""
        if self.owns_cluster:
            cluster = self.client.cluster
            self.client.close()
            if cluster is not None:
                cluster.close()
        else:
            self.client.close()

    def __enter__(self) -> "DaskExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def make_executor(scheduler: str | None = None, dask_local: int | None = None, shards_per_task: int = 1) -> DaskExecutor | None:
    """The executor of the settings ``--scheduler`` / ``--dask-local`` (the book configuration's
    ``scheduler`` / ``dask_local``): ``None`` (in-process, the default) when neither is given.

    Raises:
        ValueError: both given, a malformed address, a worker count below 1.
    """
    if scheduler and dask_local:
        raise ValueError(f"--scheduler {scheduler} and --dask-local {dask_local}: give one of them, not both")
    if scheduler:
        return DaskExecutor.connect(scheduler, shards_per_task=shards_per_task)
    if dask_local is not None:
        return DaskExecutor.local(dask_local, shards_per_task=shards_per_task)
    return None

