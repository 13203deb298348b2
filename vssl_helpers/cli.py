"""The ``vssl`` command line: evaluate models on extended test sets, thresholds, results tables.

Examples::

    vssl models                                   # what can be evaluated
    vssl evaluate --model demo-random --testset synthetic --n-images 200 --out random.json
    vssl evaluate --model ezvsl --checkpoint ezvsl_vggss.pth --testset vggss --data-root /data/vggss \\
        --device cuda --workers 8 --out ezvsl_vggss.json
    vssl threshold --model demo-random --testset synthetic
    vssl table random.json ezvsl_vggss.json
    vssl train --model demo-ezvsl                 # retrain a demo model (resumable), compare with the shipped weights
    vssl manifest verify my_negatives.txt         # check a negatives manifest (hash, draws)
    vssl book                                     # the book on the embedded default (= make book)
    vssl book --data-root vggss=/data/vggss --data-root is3=/data/is3 \\
        --checkpoint ezvsl=ezvsl_vggss.pth --checkpoint lvs=lvs_vggss.pth   # the real-data book

Every argument is checked before heavy work starts (unknown model, missing data root or checkpoint, a
checkpoint that does not fit the model or is not a checkpoint, a malformed ``--threshold`` file, an
``--out`` that could not be written, a ``--manifest`` that does not belong to the test set). Bad input
exits with status 2 and one line ``vssl: error: <option or file>: <what was expected>``. Maps go to a map store (``--store``, default
``$VSSL_CACHE/maps`` or ``~/.cache/vssl-companion/maps``): a run that is interrupted resumes where it
stopped, and a finished one is not recomputed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .defaults import DEFAULTS

__all__ = ["main", "build_parser", "CliError"]


_MIN_AUDIO = 0.5  # = testsets.media.MIN_AUDIO_SECONDS (not imported: --help stays fast); a test checks


def cli_spelling(message: str) -> str:
    """:func:`vssl_helpers.inputs.cli_spelling` (imported on use: ``vssl --help`` stays fast)."""
    from .inputs import cli_spelling as spell

    return spell(message)


class CliError(Exception):
    """A bad argument: printed as ``vssl: error: <message>`` with exit status 2."""


def _add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to evaluate")
    g.add_argument("--model", required=True,
                   help="registered model name (see `vssl models`), or your own model: path/to/file.py:factory, "
                   "package.module:factory or an installed entry point (group vssl_companion.models)")
    g.add_argument("--checkpoint", type=Path, help="weights file (.pth/.pt state dict) for --model")
    g.add_argument("--model-seed", type=int, default=DEFAULTS.model_seed, help=f"seed of demo models (default {DEFAULTS.model_seed})")
    g.add_argument("--testset", required=True, metavar="TESTSET",
                   help=f"a registered test set ({', '.join(_testset_names())}) or your own: path/to/file.py:factory, "
                   "package.module:factory or an installed entry point (group vssl_companion.testsets); synthetic: the "
                   "embedded procedural benchmark (no data needed); vggss/is3: real media under --data-root")
    g.add_argument("--data-root", type=Path,
                   help="media folder (vggss: frames/ and audio/; is3: images/ and audio_wav/); required for vggss and is3")
    g.add_argument("--annotations", type=Path, help="annotation file (default: the shipped one, or <data-root>/vggss.json if present)")
    g.add_argument("--manifest", type=Path,
                   help="negatives manifest file, verified against the test set (default: shipped one if it matches, "
                   "else drawn from the samples); it fixes --seeds and, for synthetic, --n-images")
    g.add_argument("--seeds", type=int, default=None, metavar="N",
                   help=f"how many negative seeds per sample (a count: seeds 0..N-1; default {DEFAULTS.n_seeds}, as the "
                   "paper, or the manifest's count)")
    g.add_argument("--noise-bank", type=int, default=None, metavar="K",
                   help="opt-in cheaper protocol: K noise clips per seed shared by every sample (recorded in the "
                   "manifest and its hash) instead of one per sample and seed as the paper; default: off")
    g.add_argument("--n-images", type=int, default=None, metavar="N",
                   help=f"synthetic only: number of images (default {DEFAULTS.n_images}, or the manifest's count)")
    g.add_argument("--on-missing", choices=["raise", "skip"], default=DEFAULTS.on_missing,
                   help="real sets: samples with missing, unreadable, truncated or too short media (audio under "
                   f"{_MIN_AUDIO} s): stop with a list (raise) or drop them and record their ids in the results file (skip)")
    g.add_argument("--threshold",
                   help="use this threshold (a number, or a results JSON whose threshold to reuse) instead of the model's "
                   "rule; a value outside the model's map range is warned about")
    e = p.add_argument_group("how to run")
    e.add_argument("--store", type=Path, default=None, help="map store folder (default $VSSL_CACHE/maps or ~/.cache/vssl-companion/maps)")
    e.add_argument("--device", default=DEFAULTS.device, help=f"auto (GPU if present), cpu, cuda, cuda:1 ... (default {DEFAULTS.device})")
    e.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=DEFAULTS.dtype,
                   help="encoder precision; reduced precision prints a measured accuracy check first")
    e.add_argument("--workers", type=int, default=DEFAULTS.workers,
                   help=f"DataLoader workers decoding media and generating noise (default {DEFAULTS.workers})")
    e.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help=f"images per batch (default {DEFAULTS.batch_size})")
    e.add_argument("--shard-size", type=int, default=DEFAULTS.shard_size,
                   help=f"samples per stored shard (default {DEFAULTS.shard_size})")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    d = p.add_argument_group("scale-out on Dask (vssl_helpers.scale; default: in this process)")
    d.add_argument("--scheduler", metavar="ADDRESS",
                   help="compute the maps on the Dask cluster of this scheduler (tcp://host:8786); the map store "
                   "(--store) and the media must be on a file system every worker sees")
    d.add_argument("--dask-local", type=int, metavar="N",
                   help="compute the maps on a Dask LocalCluster of N worker processes on this machine")
    d.add_argument("--shards-per-task", type=int, default=1, metavar="K",
                   help="shards (of --shard-size samples) per Dask task (default 1)")
    c = p.add_argument_group("reference-code compatibility (never the default; see vssl_helpers.compat)")
    c.add_argument("--compat", action="store_true",
                   help="reproduce the paper code where it departs from the paper's text: every switch of the reference preset")
    c.add_argument("--compat-switch", action="append", default=[], metavar="NAME",
                   help="turn on one compatibility switch (repeatable): " + ", ".join(_compat_names()))
    # testing hook: sleep after each written shard so that a test can interrupt a run part way
    e.add_argument("--pause-after-shard", type=float, default=0.0, help=argparse.SUPPRESS)


def _testset_names() -> list[str]:
    from .testsets import list_testsets  # the registry only (the loaders are imported on use)

    return list_testsets()


def _compat_names() -> list[str]:
    from .compat import SWITCHES

    return list(SWITCHES)


def _compat_arg(args: argparse.Namespace) -> list[str] | None:
    """The switches of ``--compat`` / ``--compat-switch`` (``None``: the default, no switch); an
    unknown name is an error that lists the known ones."""
    from .compat import REFERENCE_PRESET, parse_switches

    names = list(REFERENCE_PRESET) if args.compat else []
    try:
        names += sorted(parse_switches(args.compat_switch))
    except ValueError as e:
        raise CliError(f"--compat-switch: {e}") from None
    return sorted(set(names)) or None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vssl``."""
    ap = argparse.ArgumentParser(
        prog="vssl",
        description="Evaluate visual sound source localization models on test sets extended with negative "
        "audio (silence, noise, off-screen), as in Juanola et al., ICASSP 2025.",
        epilog="Start with: vssl evaluate --model demo-random --testset synthetic --n-images 100",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("models", help="list the registered models")
    ev = sub.add_parser("evaluate", help="evaluate a model on an extended test set; print and save every metric",
                        description="Compute maps (stored, resumable), the threshold and every Table I metric, pooled and per seed.")
    _add_run_args(ev)
    ev.add_argument("--out", type=Path, help="results JSON to write (atomically; checked before any work)")
    ev.add_argument("--per-seed", action="store_true", help="also print one row per negative seed")
    th = sub.add_parser("threshold", help="compute a model's universal threshold (Q3 rule) on an extended test set",
                        description="Same inputs as `evaluate`; prints the threshold with its per-type Q3 values.")
    _add_run_args(th)
    th.add_argument("--out", type=Path, help="JSON file to write the threshold to (checked before any work)")
    tb = sub.add_parser("table", help="Table I from results JSON files",
                        description="One row per results file (named in the first column), Table I columns with a "
                        "legend (↑ higher is better, ↓ lower is better), the checkpoint file and its sha256 prefix, "
                        "the threshold at the precision that tells the rows apart.")
    tb.add_argument("results", nargs="+", type=Path, help="results JSON files written by `vssl evaluate --out`")
    tb.add_argument("--per-seed", action="store_true", help="also print one row per negative seed below each file's row")
    tb.add_argument("--out", type=Path, help="write the table (.csv, .md or .json)")
    _add_book_parser(sub)
    _add_train_parser(sub)
    _add_manifest_parser(sub)
    return ap


def _add_manifest_parser(sub: Any) -> None:
    mf = sub.add_parser("manifest", help="negatives manifests: rebuild the shipped ones, verify or summarise a file",
                        description="The extended test sets' negatives manifests (vssl_helpers.negatives).")
    msub = mf.add_subparsers(dest="manifest_cmd", required=True, metavar="ACTION")
    b = msub.add_parser("build-shipped", help="rebuild the shipped VGG-SS and IS3 manifests")
    b.add_argument("--out", type=Path, default=Path(__file__).parent / "data", help="data folder to write into")
    b.add_argument("--check", action="store_true", help="only compare with the shipped files; write nothing")
    v = msub.add_parser("verify", help="load a manifest file (hash + validation) and redraw it")
    v.add_argument("path", type=Path)
    sm = msub.add_parser("summary", help="print a manifest's summary")
    sm.add_argument("path", help="a file, or 'vggss' / 'is3' for a shipped manifest")


def _manifest(args: argparse.Namespace) -> int:
    """`vssl manifest ...`: returns 0, or 1 when ``build-shipped --check`` finds a difference."""
    from .negatives import SHIPPED, ManifestError, load_manifest, load_shipped_manifest, verify_manifest

    if args.manifest_cmd == "build-shipped":
        from .testsets.shipped import build_shipped_manifests

        built = build_shipped_manifests(None if args.check else args.out)
        status = 0
        for name, m in built.items():
            print(m.summary())
            if args.check:
                shipped = load_shipped_manifest(name)
                same = shipped.sha256 == m.sha256
                print(f"  shipped {shipped.sha256}: {'identical' if same else 'DIFFERENT'}")
                status |= 0 if same else 1
        return status
    path = args.path
    if args.manifest_cmd == "summary" and str(path) in SHIPPED:
        print(load_shipped_manifest(str(path)).summary())
        return 0
    if not Path(path).is_file():
        raise CliError(f"{args.manifest_cmd} {path}: no such file; expected a manifest file"
                       + (" or 'vggss' / 'is3'" if args.manifest_cmd == "summary" else ""))
    try:
        m = load_manifest(path)
        if args.manifest_cmd == "verify":
            verify_manifest(m)
    except ManifestError as e:
        raise CliError(f"{args.manifest_cmd} {path}: {e}") from None
    print(m.summary())
    if args.manifest_cmd == "verify":
        print("ok: hash, constraints and draws check out")
    return 0


def _add_train_parser(sub: Any) -> None:
    tr = sub.add_parser(
        "train", help="retrain a demo model (resumable); compares with the shipped weights",
        description="Train a demo model with the project's training code (vssl_helpers/models/training.py) into the "
        "training cache ($VSSL_CACHE/models or ~/.cache/vssl-companion/models). Resumable: the run saves its whole "
        "state every --checkpoint-every steps, and the same command after an interruption continues from there and "
        "ends with the weights of an uninterrupted run. With the default settings it reproduces the shipped weights "
        "(vssl_helpers/data/weights/) and says whether they are bit-identical.",
    )
    tr.add_argument("--model", required=True, help="trained demo model: demo-ezvsl, demo-lvs or demo-negaware")
    tr.add_argument("--seed", type=int, default=0, help="training seed (default 0, as the shipped weights)")
    tr.add_argument("--steps", type=int, default=None, help=f"training steps (default: TrainConfig's, {DEFAULTS.train_steps})")
    tr.add_argument("--warmup-steps", type=int, default=None, help="steps of the warm-up score (default: TrainConfig's)")
    tr.add_argument("--n-train-images", type=int, default=None,
                    help=f"training scenes (default: TrainConfig's, {DEFAULTS.n_train_images})")
    tr.add_argument("--batch-size", type=int, default=None, help="batch size (default: TrainConfig's, 64)")
    tr.add_argument("--checkpoint-every", type=int, default=50, help="save the training state every N steps (default 50)")
    tr.add_argument("--force", action="store_true", help="train from step 0 even if the cache holds these weights or a checkpoint")
    tr.add_argument("--out", type=Path, help="also write the weights here (a .pt state dict; its record beside it as .json)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_book_parser(sub: Any) -> None:
    from .pipeline import add_book_arguments

    bk = sub.add_parser(
        "book", help="execute the book's notebooks and build the site (embedded default, or your data and checkpoints)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Without data options: the book on the embedded procedural benchmark (what `make book` builds). "
        "With --data-root/--checkpoint (or --config): the real-data book, every chapter run on your VGG-SS/IS3 media "
        "for every model you give, built into _build/real/_build/html.",
        epilog="A --config file holds the same settings (paths relative to the file):\n\n"
        "  testsets:\n    vggss: {data_root: /data/vggss}\n    is3: {data_root: /data/is3}\n"
        "  models:\n    ezvsl: {checkpoint: ckpt/ezvsl_vggss.pth}\n    lvs: {checkpoint: ckpt/lvs_vggss.pth}\n"
        "    examples/my_model.py:factory: {}   # your own model: a plugin spec (see vssl evaluate --help)\n"
        "  seeds: 10\n  device: auto\n  workers: 4\n  batch_size: 64\n"
        "  compat: false   # optional: true or [switch names] for the paper code's behaviour (vssl_helpers.compat)\n\n"
        "The options are written to <out>/book_config.json, which the notebooks read. Everything is checked "
        "before the first notebook runs (folders, media, checkpoints against their models); a problem exits with "
        "status 2 and 'vssl: error: ...', a notebook that fails later with status 1.",
    )
    g = bk.add_argument_group("real data (leave out for the embedded book)")
    g.add_argument("--config", type=Path, help="book configuration file (YAML or JSON; see below)")
    g.add_argument("--data-root", action="append", default=[], metavar="SET=DIR",
                   help="media folder of a real test set: vggss=DIR (frames/, audio/) or is3=DIR (images/, audio_wav/); repeat for both")
    g.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=FILE",
                   help="a model of the book and its official checkpoint (see `vssl models`; MODEL may be a plugin "
                   "spec such as mine.py:factory); repeat per model")
    g.add_argument("--seeds", type=int, default=DEFAULTS.n_seeds, metavar="N",
                   help=f"how many negative seeds per sample (a count: seeds 0..N-1; default {DEFAULTS.n_seeds}, as the paper)")
    g.add_argument("--device", default=DEFAULTS.device, help=f"auto, cpu, cuda, ... (default {DEFAULTS.device})")
    g.add_argument("--workers", type=int, default=DEFAULTS.workers, help=f"DataLoader workers decoding media (default {DEFAULTS.workers})")
    g.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help=f"images per batch (default {DEFAULTS.batch_size})")
    g.add_argument("--on-missing", choices=["raise", "skip"], default=DEFAULTS.on_missing,
                   help=f"samples with missing, unreadable, truncated or too short media (audio under {_MIN_AUDIO} s): stop "
                   "before any notebook runs (raise) or drop them and list them on the book's front page (skip)")
    g.add_argument("--store", type=Path, default=None, help="map store folder (default $VSSL_CACHE/maps)")
    add_book_arguments(bk)


def _pairs(values: Sequence[str], option: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key or not value:
            raise CliError(f"{option}: expected {what}, got {v!r}")
        if key in out:
            raise CliError(f"{option}: {key!r} given twice")
        out[key] = value
    return out


def _train(args: argparse.Namespace) -> int:
    """`vssl train`: train (or resume) into the cache, report the record and the shipped comparison."""
    import torch

    from .models.demo import TRAINED_DEMOS
    from .models.training import TrainConfig, shipped_weights, train_to_cache

    if args.model not in TRAINED_DEMOS:
        raise CliError(f"--model: {args.model!r} is not a trained demo model; expected one of {', '.join(TRAINED_DEMOS)}")
    overrides = {f: getattr(args, f) for f in ("steps", "warmup_steps", "n_train_images", "batch_size")
                 if getattr(args, f) is not None}
    for f, v in [*overrides.items(), ("checkpoint_every", args.checkpoint_every)]:
        if v < (0 if f == "warmup_steps" else 1):
            raise CliError(f"--{f.replace('_', '-')}: must be >= {0 if f == 'warmup_steps' else 1}, got {v}")
    if "steps" in overrides and "warmup_steps" not in overrides:
        # TrainConfig's warm-up is a third of the default run; keep it within a shorter one
        overrides["warmup_steps"] = min(TrainConfig.warmup_steps, overrides["steps"] // 3)
    if "batch_size" in overrides and overrides["batch_size"] > overrides.get("n_train_images", TrainConfig.n_train_images):
        raise CliError(f"--batch-size: {overrides['batch_size']} is more than the training scenes "
                       f"({overrides.get('n_train_images', TrainConfig.n_train_images)})")
    if args.out is not None and args.out.suffix not in (".pt", ".pth"):
        raise CliError(f"--out: expected a .pt or .pth file name, got {args.out}")
    path, record = train_to_cache(args.model, args.seed, progress=not args.no_progress,
                                  checkpoint_every=args.checkpoint_every, force=args.force, **overrides)
    print(f"{args.model} seed {args.seed}: {record['steps']} steps at {record['threads']} threads, final loss "
          f"{record['final_loss']:.4f}, {record['seconds']:.0f} s of training")
    print(f"weights {path} ({record['bytes']:,} bytes), sha256 {record['sha256']}")
    shipped = shipped_weights(args.model, args.seed, **overrides)
    if shipped is None:
        print("shipped weights: none for this training config (the shipped ones use the defaults, seed 0)")
    elif shipped[1]["sha256"] == record["sha256"]:
        print(f"shipped weights {shipped[0].name}: bit-identical (same sha256)")
    else:
        mine = torch.load(path, map_location="cpu", weights_only=True)
        ref = torch.load(shipped[0], map_location="cpu", weights_only=True)
        diff = max(float((mine[k].double() - ref[k].double()).abs().max()) for k in ref)
        print(f"shipped weights {shipped[0].name}: differ (sha256 {shipped[1]['sha256'][:12]}...), max |diff| {diff:.3g}")
    if args.out is not None:
        from .atomic import atomic_write

        data = path.read_bytes()
        atomic_write(args.out, lambda tmp: tmp.write_bytes(data))
        text = json.dumps(record, indent=1) + "\n"
        atomic_write(args.out.with_suffix(".json"), lambda tmp: tmp.write_text(text, encoding="utf-8"))
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


def _book(args: argparse.Namespace) -> int:
    """`vssl book`: the options become a book configuration (validated before any work)."""
    from .pipeline import REAL_OUT, repo_root, run_book
    from .report.runs import BookConfigError, book_config_from_dict, load_book_config

    roots = _pairs(args.data_root, "--data-root", "SET=DIR (e.g. vggss=/data/vggss)")
    ckpts = _pairs(args.checkpoint, "--checkpoint", "MODEL=FILE (e.g. ezvsl=ezvsl_vggss.pth)")
    config_path = args.config
    try:
        if config_path is not None:
            if roots or ckpts:
                raise CliError("--config: give the data roots and checkpoints in the file or as options, not both")
            load_book_config(config_path)
        elif roots or ckpts:
            if not roots:
                raise CliError("--data-root: a real-data book needs at least one, e.g. --data-root vggss=/data/vggss")
            if not ckpts:
                raise CliError("--checkpoint: a real-data book needs at least one model, e.g. --checkpoint ezvsl=ezvsl.pth")
            data = {
                "testsets": {k: {"data_root": v, "on_missing": args.on_missing} for k, v in roots.items()},
                "models": {k: {"checkpoint": v} for k, v in ckpts.items()},
                "seeds": args.seeds, "device": args.device, "workers": args.workers, "batch_size": args.batch_size,
                "store": None if args.store is None else str(args.store),
            }
            cfg = book_config_from_dict(data, source="vssl book options")
            cfg.validate()
            root = repo_root()
            config_path = cfg.write(root / (args.out or REAL_OUT) / "book_config.json")
    except BookConfigError as e:
        raise CliError(str(e)) from None
    return run_book(config=config_path, out=args.out, build=not args.no_build, quick=args.quick, force=args.force,
                    clean=args.clean, progress=args.progress, scheduler=args.scheduler, dask_local=args.dask_local,
                    jobs=args.jobs)


# --------------------------------------------------------------------------------------------------
# validation (cheap checks first, heavy work after)


def _check_common(args: argparse.Namespace) -> None:
    from .inputs import InputError, check_device, check_model_inputs, check_testset_inputs
    from .plugins import resolve_model

    # a plugin spec is loaded and registered here; from now on args.model is its registered name
    args.model_spec = args.model
    try:
        args.model = resolve_model(args.model)
    except ValueError as e:
        raise CliError(f"--model: {e}") from None
    try:  # the checks every front end shares live in vssl_helpers.inputs
        check_model_inputs(args.model, args.checkpoint)
        check_testset_inputs(args.testset, data_root=args.data_root, annotations=args.annotations,
                             manifest=args.manifest, n_seeds=args.seeds, n_images=args.n_images)
    except InputError as e:
        raise CliError(_option_error(e)) from None
    for name in ("batch_size", "shard_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    if args.workers < 0:
        raise CliError(f"--workers: must be >= 0, got {args.workers}")
    _check_scale_args(args)
    try:
        check_device(args.device, "--device")
    except InputError as e:
        raise CliError(str(e)) from None
    if getattr(args, "out", None) is not None:
        from .inputs import InputError, check_output_path

        try:
            check_output_path(args.out, "--out")
        except InputError as e:
            raise CliError(str(e)) from None


def _check_scale_args(args: argparse.Namespace) -> None:
    """--scheduler / --dask-local / --shards-per-task, checked before any heavy work."""
    if args.scheduler and args.dask_local is not None:
        raise CliError(f"--scheduler {args.scheduler} and --dask-local {args.dask_local}: give one of them, not both")
    if args.dask_local is not None and args.dask_local < 1:
        raise CliError(f"--dask-local: expected a number of workers >= 1, got {args.dask_local}")
    if args.shards_per_task < 1:
        raise CliError(f"--shards-per-task: must be >= 1, got {args.shards_per_task}")
    if args.scheduler:
        from .scale import check_scheduler

        try:
            args.scheduler = check_scheduler(args.scheduler)
        except ValueError as e:
            raise CliError(str(e)) from None


def _build_model(args: argparse.Namespace) -> tuple[Any, str | None]:
    from .inputs import InputError, build_model

    try:
        return build_model(args.model, args.checkpoint, model_seed=args.model_seed, progress=not args.no_progress)
    except InputError as e:
        raise CliError(str(e)) from None


def _load_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """(test set, manifest)."""
    from .inputs import InputError, load_testset
    from .testsets.media import MediaError

    # without a manifest the defaults apply (the test set's own for its size); with one, the counts
    # it fixes are taken from it
    seeds = args.seeds if args.seeds is not None or args.manifest is not None else DEFAULTS.n_seeds
    try:
        return load_testset(args.testset, data_root=args.data_root, annotations=args.annotations, manifest=args.manifest,
                            n_seeds=seeds, n_images=args.n_images, on_missing=args.on_missing)
    except InputError as e:
        raise CliError(_option_error(e)) from None
    except MediaError as e:
        raise CliError(f"--data-root {args.data_root}: {cli_spelling(str(e))}") from None


def _option_error(e: Exception) -> str:
    """An :class:`~vssl_helpers.inputs.InputError` in the command line's spelling:
    ``"data_root: ..."`` -> ``"--data-root: ..."``, ``"n_images: only for testset ..."`` -> ``"... --testset ..."``."""
    text = cli_spelling(str(e))
    field, sep, rest = text.partition(":")
    if field.startswith("manifest ") or " " in field:  # "manifest <file>: ..." names the file already
        return f"--{text}"
    return f"--{field.replace('_', '-')}{sep}{rest}"


def _threshold_arg(value: str | None) -> Any:
    from .inputs import InputError, read_threshold

    try:
        return read_threshold(value, "--threshold")
    except InputError as e:
        raise CliError(str(e)) from None


def _warn(message: str, warnings: list[str]) -> None:
    print(f"vssl: warning: {message}", file=sys.stderr)
    warnings.append(message)


def _run(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from .inputs import skipped_samples, threshold_range_warning
    from .models import get_config

    _check_common(args)
    compat = _compat_arg(args)
    threshold = _threshold_arg(args.threshold)
    warnings: list[str] = []
    range_warned = False
    if threshold is not None:
        w = threshold_range_warning(float(threshold), get_config(args.model).map_range, args.model)
        if w:
            _warn(w, warnings)
            range_warned = True
    t0 = time.perf_counter()
    model, weights = _build_model(args)
    ds, manifest = _load_data(args)
    if args.manifest is not None:
        if args.seeds is None:
            print(f"--seeds {manifest.n_seeds}: fixed by the manifest {args.manifest}", file=sys.stderr)
        from .testsets.registry import testset_options

        if "n_images" in testset_options(args.testset) and args.n_images is None:
            print(f"--n-images {len(ds)}: fixed by the manifest {args.manifest}", file=sys.stderr)
    if args.noise_bank is not None:
        from .negatives import with_noise_bank

        if args.noise_bank < 1:
            raise CliError(f"--noise-bank {args.noise_bank}: expected a positive number of noise clips per seed")
        manifest = with_noise_bank(manifest, args.noise_bank)
    skipped = skipped_samples(ds)
    if skipped:
        _warn(f"--on-missing skip: {len(skipped)} sample(s) of {args.testset} skipped for missing or unreadable media "
              f"(e.g. {', '.join(x['id'] for x in skipped[:3])}); their ids are recorded in the results file", warnings)
    t_setup = time.perf_counter() - t0
    progress = not args.no_progress
    print(manifest.summary(), file=sys.stderr)
    from .engine import EvalOptions, evaluate, results_dict
    from .store import default_store_root

    if args.dtype != "float32":
        _print_dtype_check(model, ds, args)
    hook = None
    if args.pause_after_shard > 0:
        hook = lambda k, p: time.sleep(args.pause_after_shard)  # noqa: E731
    options = EvalOptions(threshold=threshold, batch_size=args.batch_size, shard_size=args.shard_size,
                          num_workers=args.workers, device=args.device, dtype=args.dtype, progress=progress,
                          after_shard=hook, compat=compat)
    store = args.store or default_store_root()
    if args.scheduler or args.dask_local is not None:  # the maps on Dask; the metrics below, here
        from .scale import EvalJob, make_executor

        try:
            executor = make_executor(args.scheduler, args.dask_local, args.shards_per_task)
        except ValueError as e:
            raise CliError(str(e)) from None
        assert executor is not None
        with executor:
            executor.fill([EvalJob(args.model, model, ds, manifest, weights)], store, options, progress=progress)
    res = evaluate(model, ds, manifest, store, options, weights=weights)
    res.timings["setup_s"] = t_setup
    if not range_warned:  # the threshold against the values this run's maps reach
        m = res.maps
        observed = (min(float(t.min()) for t in (m.positive, m.silence, m.noise, m.offscreen)),
                    max(float(t.max()) for t in (m.positive, m.silence, m.noise, m.offscreen)))
        w = threshold_range_warning(float(res.threshold.value), model.config.map_range, args.model, observed)
        if w:
            _warn(w, warnings)
    out = results_dict(res, extra={
        "testset": args.testset, "command": "vssl " + " ".join(sys.argv[1:]),
        "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
        "skipped": {"count": len(skipped), "on_missing": args.on_missing, "samples": skipped},
        "warnings": warnings,
        **_plugin_extra(args),
    })
    return res, out


def _plugin_extra(args: argparse.Namespace) -> dict[str, Any]:
    """Results-file keys of a plugin model: its spec and the sha256 of its file (a plugin has no
    official checkpoint), and the checkpoint's own hash (the store's weights id joins both)."""
    from dataclasses import asdict

    from .models import file_sha256
    from .plugins import plugin_record, plugin_testset_info

    out: dict[str, Any] = {}
    testset = plugin_testset_info(args.testset)
    if testset is not None:  # a test-set plugin: its spec and the file that defines it
        out["testset_plugin"] = asdict(testset)
    record = plugin_record(args.model)
    if record is None:
        return out
    return {**out, "model_spec": args.model_spec, "plugin": record,
            "checkpoint_sha256": None if args.checkpoint is None else file_sha256(args.checkpoint)}


def _print_dtype_check(model: Any, ds: Any, args: argparse.Namespace) -> None:
    """Measured accuracy of reduced precision on the first 64 samples, printed before the run."""
    import torch

    from .engine import _MediaSource, compare_dtypes

    src = _MediaSource(ds, model.config.preprocessing)
    n = min(64, len(src.ids))
    imgs = torch.stack([src.image(j) for j in range(n)])  # the model's own image transform
    aud = [torch.from_numpy(src.audio(j)) for j in range(n)]  # whole clips
    c = compare_dtypes(model, imgs, aud, args.dtype, args.device)
    print(f"{args.dtype} accuracy check on {n} positive maps: max |diff| {c['max_abs_diff']:.3g}, mean |diff| "
          f"{c['mean_abs_diff']:.3g} (map range {c['map_range']:.3g})", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# output

def _fmt(v: Any) -> str:
    return "nan" if v is None else f"{v:.1f}"


def _print_result(r: dict[str, Any], per_seed: bool = False) -> None:
    from .report.tables import RESULTS_COLUMNS, checkpoint_label, results_header

    thr = r["threshold"]
    q3 = ", ".join(f"{k} {v:.6g}" for k, v in thr["per_type_q3"].items())
    print(f"model {r['model']} on {r['manifest']} ({int(r['pooled']['n_samples'])} samples x {r['n_seeds']} seeds), "
          f"manifest {r['manifest_sha256'][:12]}, checkpoint {checkpoint_label(r)}")
    print(f"threshold {thr['value']:.6g} ({thr['rule']}{'; Q3: ' + q3 if q3 else ''}"
          f"{'; decisive: ' + thr['decisive_type'] if thr.get('decisive_type') else ''})")
    heads = [results_header(k, h) for k, h in RESULTS_COLUMNS]
    w = max(len(h) for h in heads)
    print(f"{'':8s}" + "".join(f"{h:>{w + 1}s}" for h in heads))
    print(f"{'pooled':8s}" + "".join(f"{_fmt(r['pooled'][k]):>{w + 1}s}" for k, _ in RESULTS_COLUMNS))
    if per_seed:
        for row in r["per_seed"]:
            print(f"{'seed ' + str(int(row['seed'])):8s}" + "".join(f"{_fmt(row[k]):>{w + 1}s}" for k, _ in RESULTS_COLUMNS))
    print("↑ higher is better, ↓ lower is better; metrics in percent" + ("" if per_seed else "; one row per seed: --per-seed"))
    skipped = r.get("skipped") or {}
    if skipped.get("count"):
        print(f"skipped (--on-missing skip): {skipped['count']} sample(s), ids in the results file")
    on = [k for k, v in (r.get("compat") or {}).get("effective", {}).items() if v]
    if on:
        print(f"COMPATIBILITY MODE (paper code, not the paper's text): {', '.join(on)}")
    s = r["store"]["shards"]
    t = r["timings"]
    print(f"shards: {s['computed']} computed, {s['reused']} reused from {r['store']['run']}; "
          f"time {t['total_s']:.1f} s (maps {t['maps_s']:.1f} s, metrics {t['metrics_s']:.1f} s)")


def _table(paths: Sequence[Path], per_seed: bool) -> Any:
    """The ``vssl table`` frame of these results files (:func:`~vssl_helpers.report.tables.results_table`)."""
    from .report.tables import results_table

    records = []
    for p in paths:
        if p.is_dir():
            raise CliError(f"{p}: is a folder; expected a results JSON file of `vssl evaluate --out`")
        if not p.is_file():
            raise CliError(f"results file not found: {p}")
        try:
            r = json.loads(p.read_text(encoding="utf-8"))
            ok = isinstance(r, dict) and isinstance(r.get("pooled"), dict) and "model" in r
            ok = ok and isinstance(r["threshold"]["value"], (int, float))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            ok = False
        if not ok:
            raise CliError(f"{p}: not a results file of `vssl evaluate --out` (expected JSON with model, threshold.value "
                           "and pooled)")
        records.append((p.name if len({q.name for q in paths}) == len(paths) else str(p), r))
    return results_table(records, per_seed)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vssl`` (returns the exit status)."""
    ap = build_parser()
    args = ap.parse_args(argv)
    from .progress import switched

    # --no-progress: no bar anywhere in this command (restored after it, for in-process callers)
    with switched(False if getattr(args, "no_progress", False) else None):
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    try:
        if args.cmd == "book":
            return _book(args)
        if args.cmd == "train":
            return _train(args)
        if args.cmd == "manifest":
            return _manifest(args)
        if args.cmd == "models":
            from .models import get_config, list_models
            from .plugins import MODEL_GROUP, entry_point_names

            for name in list_models():
                c = get_config(name)
                print(f"{name:18s} {c.family:10s} {c.description}")
            eps = entry_point_names(MODEL_GROUP)
            print(f"installed plugins ({MODEL_GROUP} entry points): {', '.join(eps) or 'none'}; "
                  "your own model: --model path/to/file.py:factory")
            return 0
        if args.cmd == "table":
            from .inputs import InputError, check_output_path
            from .report.tables import results_table_text

            if args.out:
                if args.out.suffix not in (".csv", ".md", ".json"):
                    raise CliError(f"--out {args.out}: expected a .csv, .md or .json file name")
                try:
                    check_output_path(args.out, "--out")
                except InputError as e:
                    raise CliError(str(e)) from None
            df = _table(args.results, args.per_seed)
            print(results_table_text(df))
            if args.out:
                from .store import atomic_write

                suffix = args.out.suffix
                text = df.to_csv(index=False) if suffix == ".csv" else df.to_json(orient="records", indent=1) if suffix == ".json" else df.to_markdown(index=False) if _has_tabulate() else df.to_string(index=False)
                atomic_write(args.out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
            return 0
        res, out = _run(args)
        if args.cmd == "evaluate":
            _print_result(out, per_seed=args.per_seed)
            if args.out:
                from .engine import write_results

                write_results(args.out, out)
                print(f"wrote {args.out}")
        else:
            thr = out["threshold"]
            print(f"{out['model']}: threshold {thr['value']:.6g} ({thr['rule']})")
            for k, v in thr["per_type_q3"].items():
                print(f"  Q3 {k:9s} {v:.6g}" + ("   <- decisive" if k == thr["decisive_type"] else ""))
            if args.out:
                from .engine import write_results

                write_results(args.out, {k: out[k] for k in ("package_version", "model", "weights", "checkpoint_sha256",
                                                           "manifest", "manifest_sha256", "n_seeds", "threshold", "compat",
                                                           "model_spec", "plugin") if k in out})
                print(f"wrote {args.out}")
        return 0
    except CliError as e:
        print(f"vssl: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        # data problems found while loading (media check, manifest mismatch, categories): one clear line
        print(f"vssl: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        from .testsets.media import MediaError

        if isinstance(e, MediaError):
            # found while computing maps (decoded audio): finished shards are stored, a rerun resumes.
            # In a DataLoader worker, torch re-raises with the worker's traceback in the message: keep its last line.
            msg = str(e).strip().splitlines()[-1] if "Original Traceback" in str(e) else str(e)
            msg = msg.split("MediaError: ", 1)[-1]
            # the traceback's frames hold the DataLoader iterator: free them now, so that its workers
            # are shut down in order (else torch's queue thread may complain at interpreter exit)
            e.__traceback__ = None
            import gc

            gc.collect()
            print(f"vssl: error: {cli_spelling(msg)} (finished shards are kept in the map store; a rerun resumes)",
                  file=sys.stderr)
            return 2
        raise


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
