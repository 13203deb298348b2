"""Demo models on the embedded benchmark: multi-seed results and the realism-knob study.

    python benchmarks/demo_study.py seeds  [--seeds 0 1 2]              # 3 trained models x seeds
    python benchmarks/demo_study.py knob   [--shares 0 0.3 0.6]         # plain vs negative-aware
    python benchmarks/demo_study.py table  (print the committed results as Markdown)

Each run trains (or loads from the cache) the demo models, evaluates them on the default synthetic
test set (500 images, 10 negative seeds) with their own universal threshold, and writes
``benchmarks/results/<study>.json`` (atomically; a rerun skips rows already there). Training is
capped by steps, so results do not depend on how busy the machine is; wall times do.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from vssl_helpers import __version__
from vssl_helpers.embedded import synthetic_manifest, test_set
from vssl_helpers.engine import evaluate
from vssl_helpers.inputs import build_model
from vssl_helpers.models.training import training_record

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["ciou_uth", "ciou_adap", "auc_uth", "pia_silence", "pia_noise", "pia_offscreen", "f_loc", "f_auc",
           "auroc_silence", "auroc_noise", "auroc_offscreen", "threshold"]


def _load(study: str) -> list[dict[str, Any]]:
    path = RESULTS / f"{study}.json"
    return json.loads(path.read_text())["rows"] if path.is_file() else []


def _save(study: str, rows: list[dict[str, Any]], command: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{study}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"command": command, "package_version": __version__, "rows": rows}, indent=1))
    os.replace(tmp, path)


def _run(study: str, jobs: list[dict[str, Any]], command: str) -> None:
    rows = _load(study)
    done = {json.dumps(r["job"], sort_keys=True) for r in rows}
    ds = test_set()
    manifest = synthetic_manifest(ds)
    for job in jobs:
        key = json.dumps(job, sort_keys=True)
        if key in done:
            continue
        t0 = time.perf_counter()
        overrides = {k: v for k, v in job.items() if k not in ("model", "seed")}
        model, _ = build_model(job["model"], model_seed=job["seed"], progress=True, train_overrides=overrides)
        # a temporary map store: a study's maps are not kept
        res = evaluate(model, ds, manifest, progress=True)
        rec = training_record(job["model"], job["seed"], **overrides) or {}
        rows.append({
            "job": job,
            "row": res.row,
            "threshold_rule": res.threshold.rule,
            "decisive_type": res.threshold.decisive_type,
            "train_seconds": rec.get("seconds"),
            "wall_seconds": time.perf_counter() - t0,
            "manifest_sha256": manifest.sha256,
        })
        _save(study, rows, command)
        r = res.row
        print(f"{job}: cIoU U.th {r['ciou_uth']:.1f}  adap {r['ciou_adap']:.1f}  pIA s/n/o "
              f"{r['pia_silence']:.2f}/{r['pia_noise']:.2f}/{r['pia_offscreen']:.2f}  AUROC "
              f"{r['auroc_silence']:.3f}/{r['auroc_noise']:.3f}/{r['auroc_offscreen']:.3f}", flush=True)


def _table(study: str) -> str:
    rows = _load(study)
    if not rows:
        return f"(no results for {study})"
    head = ["job"] + COLUMNS + ["train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        job = ", ".join(f"{k}={v}" for k, v in r["job"].items())
        vals = [f"{r['row'][c]:.3f}" if c.startswith(("auroc", "thr")) else f"{r['row'][c]:.2f}" for c in COLUMNS]
        ts = r.get("train_seconds")
        lines.append("| " + " | ".join([job, *vals, f"{ts:.0f}" if ts else "-"]) + " |")
    return "\n".join(lines)


def _seed_summary() -> str:
    """Mean and range over training seeds per model (Markdown)."""
    from vssl_helpers.report.tables import study_table

    rows = _load("seeds")
    if not rows:
        return ""
    table = study_table(rows, COLUMNS[:-1])
    cols = ["ciou_uth", "ciou_adap", "pia_silence", "pia_noise", "pia_offscreen", "f_loc",
            "auroc_silence", "auroc_noise", "auroc_offscreen"]
    lines = ["## seeds: mean (min-max) over training seeds", "",
             "| model | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for model, g in table.groupby("model", sort=False):
        fmt = lambda c: (f"{g[c].mean():.3f} ({g[c].min():.3f}-{g[c].max():.3f})" if c.startswith("auroc")
                         else f"{g[c].mean():.2f} ({g[c].min():.2f}-{g[c].max():.2f})")
        lines.append(f"| {model} | {len(g)} | " + " | ".join(fmt(c) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", choices=["seeds", "knob", "table"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.3, 0.6])
    ap.add_argument("--models", nargs="+", default=None)
    args = ap.parse_args()
    command = "python benchmarks/demo_study.py " + " ".join(os.sys.argv[1:])
    if args.study == "seeds":
        models = args.models or ["demo-ezvsl", "demo-lvs", "demo-negaware", "demo-saliency", "demo-random", "demo-oracle"]
        jobs = [{"model": m, "seed": s} for s in args.seeds for m in models
                if s == args.seeds[0] or m in ("demo-ezvsl", "demo-lvs", "demo-negaware")]
        _run("seeds", jobs, command)
    elif args.study == "knob":
        models = args.models or ["demo-ezvsl", "demo-negaware"]
        jobs = [{"model": m, "seed": 0, "offscreen_share": sh, "absent_kinds": ["offscreen", "neighbour", "shaped_noise"]}
                for sh in args.shares for m in models]
        _run("knob", jobs, command)
    else:
        for study in ("seeds", "knob"):
            print(f"## {study}\n\n{_table(study)}\n")
        print(_seed_summary())


if __name__ == "__main__":
    main()
