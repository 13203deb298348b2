"""Scale-out of the map computation on a Dask LocalCluster: throughput with 1 and 2 workers.

On the embedded benchmark (the synthetic VGG-SS-like set, ``--n-images`` images x ``--seeds``
seeds, shards of ``--shard-size``), the maps of one model are computed three ways, each in a fresh
map store: in this process (:func:`vssl_helpers.engine.evaluate`'s map stage), and with
:class:`vssl_helpers.scale.DaskExecutor` on a ``LocalCluster`` of 1 and of 2 worker processes (one
shard per task). Every run uses ``--torch-threads`` intra-op threads per process, so the Dask maps
are checked bit for bit against the in-process ones. Cluster start-up (process spawn, imports) is
timed separately from the fill; throughput = samples / fill seconds; scaling efficiency =
throughput(N workers) / (N x throughput(1 worker)).

    .venv/bin/python benchmarks/scaleout.py [--model demo-ezvsl] [--n-images 96] [--seeds 10]
        [--shard-size 8] [--workers 1 2] [--torch-threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def _warm() -> int:
    """Import the heavy modules on a worker (its first task would otherwise pay for them)."""
    import vssl_helpers.engine  # noqa: F401
    import vssl_helpers.models  # noqa: F401

    return os.getpid()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo-ezvsl")
    ap.add_argument("--n-images", type=int, default=96)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--shard-size", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--shards-per-task", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from vssl_helpers.engine import EvalOptions, evaluate
    from vssl_helpers.inputs import build_model, load_testset
    from vssl_helpers.scale import DaskExecutor, EvalJob

    torch.set_num_threads(args.torch_threads)
    model, weights = build_model(args.model)
    ds, manifest = load_testset("synthetic", n_images=args.n_images, n_seeds=args.seeds)
    opt = EvalOptions(shard_size=args.shard_size, batch_size=args.batch_size, num_workers=0)
    n = len(manifest)
    n_maps = n * (2 + 2 * manifest.n_seeds)
    load = os.getloadavg()
    print(f"model {args.model}, {n} samples x {manifest.n_seeds} seeds = {n_maps} maps, shards of {args.shard_size} "
          f"({-(-n // args.shard_size)} shards), {args.torch_threads} torch thread(s) per process, "
          f"{os.cpu_count()} cores, load average at start {load[0]:.1f}")

    rows = []
    with tempfile.TemporaryDirectory(prefix="vssl-scaleout-") as tmp:
        ref = evaluate(model, ds, manifest, Path(tmp) / "local", opt, weights=weights)
        local_s = ref.timings["total_s"] - ref.timings["metrics_s"]  # set-up, pool and maps: what a fill does
        rows.append({"executor": "in-process", "workers": 1, "startup_s": 0.0, "fill_s": local_s})
        for w in args.workers:
            t0 = time.perf_counter()
            ex = DaskExecutor.local(w, torch_threads=args.torch_threads, shards_per_task=args.shards_per_task)
            ex.client.run(_warm)
            startup = time.perf_counter() - t0
            store = Path(tmp) / f"dask{w}"
            with ex:
                rep = ex.fill([EvalJob(args.model, model, ds, manifest, weights)], store, opt)
            res = evaluate(model, ds, manifest, store, opt, weights=weights)
            same = all(torch.equal(getattr(ref.maps, k), getattr(res.maps, k)) for k in ("positive", "silence", "noise", "offscreen"))
            same = same and res.row == ref.row
            rows.append({"executor": "dask LocalCluster", "workers": w, "startup_s": startup, "fill_s": rep.wall_s,
                         "tasks": rep.n_tasks, "task_s_sum": sum(rep.task_s), "identical_to_in_process": same})
    base = next((r for r in rows if r["executor"] != "in-process" and r["workers"] == 1), None)
    print(f"{'executor':18s} {'workers':>7s} {'startup s':>9s} {'fill s':>8s} {'samples/s':>9s} {'maps/s':>8s} "
          f"{'speed-up':>8s} {'efficiency':>10s}  identical")
    for r in rows:
        r["samples_per_s"] = n / r["fill_s"]
        r["maps_per_s"] = n_maps / r["fill_s"]
        if base is not None and r["executor"] != "in-process":
            r["speedup_vs_1_worker"] = base["fill_s"] / r["fill_s"]
            r["efficiency"] = r["speedup_vs_1_worker"] / r["workers"]
        print(f"{r['executor']:18s} {r['workers']:7d} {r['startup_s']:9.1f} {r['fill_s']:8.1f} {r['samples_per_s']:9.2f} "
              f"{r['maps_per_s']:8.1f} {r.get('speedup_vs_1_worker', float('nan')):8.2f} "
              f"{r.get('efficiency', float('nan')):10.0%}  {r.get('identical_to_in_process', '-')}")
    load = os.getloadavg()
    for r in rows:
        if "task_s_sum" in r:  # time the workers were not inside compute_shards: scheduling, transfer, idle
            print(f"{r['workers']} worker(s): {r['tasks']} tasks, {r['task_s_sum']:.1f} s inside tasks of "
                  f"{r['workers'] * r['fill_s']:.1f} worker-seconds")
    print(f"load average at end {load[0]:.1f} (1 min), {load[1]:.1f} (5 min)")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "n_samples": n, "n_maps": n_maps,
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
