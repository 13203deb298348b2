"""The runs behind the book's result chapters: every model on every extended test set.

Every result chapter (threshold analysis, Table I, qualitative figures) needs the same maps. By
default (the embedded book) they are the demo models on the two synthetic sets: the **VGG-SS-like**
set (one sounding object per image) and the **IS3-like** set (two sounding objects per image, one
sample per source). With a :class:`BookConfig` (the real-data book) they are the configured models,
with their checkpoints, on the real **VGG-SS** and/or **IS3** media. Either way they are computed
through the map store (:func:`vssl_helpers.engine.evaluate`), so the first chapter (or the
pipeline's ``prepare`` step) computes them and every later chapter reads them (and their metric
rows) back from disk.

Before a real-data book runs its first notebook, :func:`preflight` loads every configured set
(media check, manifest) and every checkpoint into its model, and returns the build's provenance
(:func:`provenance_markdown` turns it into the front page's tables).

As in the paper, each model's universal threshold is computed on the VGG-SS(-like) set and applied
unchanged to the IS3(-like) set (fixed-threshold models keep their fixed value); a real-data book
without VGG-SS computes it on its first set and says so.

A book configuration is a small YAML or JSON file (paths relative to the file)::

    testsets:
      vggss: {data_root: /data/vggss}            # frames/, audio/ (+ optional vggss.json)
      is3: {data_root: /data/is3}                # images/, audio_wav/
    models:
      ezvsl: {checkpoint: ckpt/ezvsl_vggss.pth}
      lvs: {checkpoint: ckpt/lvs_vggss.pth}
      examples/my_model.py:factory: {}           # your own model: a plugin spec (vssl_helpers.plugins)
    seeds: 10                                    # negative seeds (the paper: 10)
    device: auto                                 # engine settings (optional)
    workers: 4
    batch_size: 64
    compat: false                                # true: the paper code's behaviour (vssl_helpers.compat),
                                                 # or a list of switch names; never the default
    noise_bank: null                             # K: opt-in cheaper protocol, K noise clips per seed shared
                                                 # by all samples (vssl_helpers.negatives); never the default
    scheduler: tcp://head:8786                   # optional: maps on this Dask cluster (vssl_helpers.scale)
    dask_local: 4                                # or on a LocalCluster of 4 worker processes (not both)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..defaults import DEFAULTS
from ..embedded import train_overrides
from ..engine import EvalOptions, EvalResult, evaluate
from ..negatives import Manifest
from ..store import MapStore, default_store_root
from ..testsets.base import TestSet
from ..testsets.synthetic import SyntheticConfig, SyntheticSet

__all__ = [
    "DEMO_MODELS",
    "THRESHOLD_SET",
    "TEST_SET_LABELS",
    "BookConfig",
    "BookConfigError",
    "RealSetConfig",
    "TestSetRun",
    "book_results",
    "book_sets",
    "default_store",
    "demo_test_sets",
    "describe_sets",
    "evaluate_models",
    "load_book_config",
    "prepare",
    "preflight",
    "provenance_markdown",
    "sample_maps",
    "negative_audio",
    "image_rows",
    "threshold_set",
]

DEMO_MODELS: tuple[str, ...] = DEFAULTS.models
"""The registry's demo models, in the book's order (:attr:`vssl_helpers.defaults.RunDefaults.models`)."""

THRESHOLD_SET = "vggss-like"
"""The set whose negatives define each model's universal threshold (the paper: extended VGG-SS)."""

TEST_SET_LABELS: dict[str, str] = {
    "vggss-like": "Extended VGG-SS-like", "is3-like": "Extended IS3-like",
    "vggss": "Extended VGG-SS", "is3": "Extended IS3",
}
"""Display names of the test sets (Table I's first column)."""

def real_sets() -> list[str]:
    """Test sets a book configuration may name, in the order the book shows them: the registered
    sets read from a media folder (their factory takes a ``data_root``; the package's: vggss, is3)."""
    from ..testsets import list_testsets
    from ..testsets.registry import testset_options

    return [n for n in list_testsets() if "data_root" in testset_options(n)]

_THRESHOLD_SETS: tuple[str, ...] = (THRESHOLD_SET, "vggss")


def threshold_set(sets: Mapping[str, Any]) -> str:
    """The key of ``sets`` whose negatives define every model's threshold: the VGG-SS-like or the
    VGG-SS set when present (the paper's choice), else the first set."""
    for key in _THRESHOLD_SETS:
        if key in sets:
            return key
    if not sets:
        raise ValueError("sets: no test set given")
    return next(iter(sets))


class BookConfigError(ValueError):
    """A book configuration that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class RealSetConfig:
    """One real test set of a book: where its media are (and optional annotation/manifest files)."""

    name: str
    data_root: Path
    annotations: Path | None = None
    manifest: Path | None = None
    on_missing: str = "raise"


@dataclass(frozen=True)
class BookConfig:
    """A real-data book: the real test sets (media folders) and the models (checkpoints) it shows.

    Attributes:
        testsets: the real sets, in book order (``vggss`` first when present).
        models: ``(model name, checkpoint path or None)`` in book order; None means the registered
            model's default weights (random for official models: only useful for trying the tool).
        n_seeds: negative seeds per sample (the paper: 10).
        device, workers, batch_size: engine settings (:class:`vssl_helpers.engine.EvalOptions`).
        store: map store folder (default: :func:`vssl_helpers.store.default_store_root`).
        compat: switches of the reference-code compatibility mode (:mod:`vssl_helpers.compat`) every
            run of the book uses; empty (the default): none.
        noise_bank: ``None`` (the default, the paper's protocol): one noise clip per sample and seed;
            ``K``: every manifest of the book gets a noise bank of K clips per seed
            (:func:`vssl_helpers.negatives.with_noise_bank`, recorded in its hash).
        scheduler: a Dask scheduler address: the maps are computed on that cluster
            (:mod:`vssl_helpers.scale`); the store and media must be visible to every worker.
        dask_local: or a ``LocalCluster`` of this many worker processes; neither: in-process.
        source: the file the configuration was read from (for messages).
    """

    testsets: tuple[RealSetConfig, ...]
    models: tuple[tuple[str, Path | None], ...]
    n_seeds: int = DEFAULTS.n_seeds
    device: str = DEFAULTS.device
    workers: int = DEFAULTS.workers
    batch_size: int = DEFAULTS.batch_size
    store: Path | None = None
    compat: tuple[str, ...] = ()
    noise_bank: int | None = None
    scheduler: str | None = None
    dask_local: int | None = None
    source: str = "<book config>"

    @property
    def model_names(self) -> list[str]:
        """The configured models, in book order."""
        return [m for m, _ in self.models]

    def to_dict(self) -> dict[str, Any]:
        """The configuration as the file format (absolute paths), for :func:`load_book_config`."""
        def opt(p: Path | None) -> str | None:
            return None if p is None else str(Path(p).resolve())

        return {
            "testsets": {t.name: {"data_root": opt(t.data_root), "annotations": opt(t.annotations),
                                  "manifest": opt(t.manifest), "on_missing": t.on_missing} for t in self.testsets},
            "models": {m: {"checkpoint": opt(c)} for m, c in self.models},
            "seeds": self.n_seeds, "device": self.device, "workers": self.workers, "batch_size": self.batch_size,
            "store": opt(self.store), "compat": list(self.compat), "noise_bank": self.noise_bank,
            **({"scheduler": self.scheduler} if self.scheduler else {}),
            **({"dask_local": self.dask_local} if self.dask_local is not None else {}),
        }

    def write(self, path: str | Path) -> Path:
        """Write the configuration as JSON (atomically); returns the path."""
        from ..store import atomic_write

        text = json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n"
        atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
        return Path(path)

    def validate(self) -> None:
        """Cheap checks before any heavy work (:mod:`vssl_helpers.inputs`, shared with the command line):
        folders and files exist, models are registered, the device exists.

        Raises:
            BookConfigError: naming the configuration file, the field and the value.
        """
        from ..inputs import InputError, check_device, check_model_inputs, check_testset_inputs
        from ..plugins import resolve_model

        where = self.source
        if not self.testsets:
            raise BookConfigError(f"{where}: testsets: give at least one of {', '.join(real_sets())}")
        if not self.models:
            raise BookConfigError(f"{where}: models: give at least one model (name: {{checkpoint: path}})")
        # the checks themselves live in vssl_helpers.inputs (shared with the command line); here
        # their "field: ..." messages get the configuration's spelling ("testsets.vggss.data_root: ...")
        try:
            check_device(self.device)
        except InputError as e:
            raise BookConfigError(f"{where}: {e}") from None
        if self.scheduler and self.dask_local is not None:
            raise BookConfigError(f"{where}: scheduler and dask_local: give one of them, not both")
        if self.scheduler:
            from ..scale import check_scheduler

            try:
                check_scheduler(self.scheduler, "scheduler")
            except ValueError as e:
                raise BookConfigError(f"{where}: {e}") from None
        for t in self.testsets:
            try:
                check_testset_inputs(t.name, data_root=t.data_root, annotations=t.annotations, manifest=t.manifest)
            except InputError as e:  # "data_root: no such folder: ..." -> "testsets.vggss.data_root: ..."
                raise BookConfigError(f"{where}: testsets.{t.name}.{e}") from None
        for name, ckpt in self.models:
            try:
                resolve_model(name)  # a plugin spec is loaded (and registered in this process) here
            except ValueError as e:
                raise BookConfigError(f"{where}: models.{name}: {e}") from None
            try:
                check_model_inputs(name, ckpt)
            except InputError as e:  # "model: unknown ..." -> "models.x: unknown ..."; "checkpoint: ..." -> "models.x.checkpoint: ..."
                field, _, rest = str(e).partition(": ")
                raise BookConfigError(f"{where}: models.{name}{'' if field == 'model' else '.' + field}: {rest}") from None


_TOP_KEYS = {"testsets", "models", "seeds", "device", "workers", "batch_size", "store", "compat", "noise_bank",
             "scheduler", "dask_local"}
_SET_KEYS = {"data_root", "annotations", "manifest", "on_missing"}


def book_config_from_dict(data: Any, source: str = "<book config>", base: Path | None = None) -> BookConfig:
    """Parse the book-configuration format (see the module docstring); relative paths are taken
    from ``base`` (the configuration file's folder). Raises :class:`BookConfigError` naming the
    field of ``source`` at fault."""
    base = Path.cwd() if base is None else base

    def path(value: Any, field_name: str) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise BookConfigError(f"{source}: {field_name}: expected a path, got {value!r}")
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base / p)

    def integer(value: Any, field_name: str, low: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise BookConfigError(f"{source}: {field_name}: expected an integer >= {low}, got {value!r}")
        return value

    if not isinstance(data, Mapping):
        raise BookConfigError(f"{source}: expected a mapping with keys testsets, models, ...; got {type(data).__name__}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise BookConfigError(f"{source}: unknown key(s) {unknown}; expected some of {sorted(_TOP_KEYS)}")
    sets_in = data.get("testsets") or {}
    if not isinstance(sets_in, Mapping):
        raise BookConfigError(f"{source}: testsets: expected a mapping name -> {{data_root: ...}}, got {sets_in!r}")
    testsets = []
    allowed = real_sets()
    for name in sorted(sets_in, key=lambda k: allowed.index(k) if k in allowed else len(allowed)):
        entry = sets_in[name]
        if name not in allowed:
            raise BookConfigError(f"{source}: testsets.{name}: unknown test set; expected one of {', '.join(allowed)}")
        if isinstance(entry, str):
            entry = {"data_root": entry}
        if not isinstance(entry, Mapping) or "data_root" not in entry:
            raise BookConfigError(f"{source}: testsets.{name}: expected {{data_root: <media folder>}}, got {entry!r}")
        bad = sorted(set(entry) - _SET_KEYS)
        if bad:
            raise BookConfigError(f"{source}: testsets.{name}: unknown key(s) {bad}; expected some of {sorted(_SET_KEYS)}")
        on_missing = entry.get("on_missing", "raise")
        if on_missing not in ("raise", "skip"):
            raise BookConfigError(f"{source}: testsets.{name}.on_missing: expected 'raise' or 'skip', got {on_missing!r}")
        testsets.append(RealSetConfig(
            name=name, data_root=path(entry["data_root"], f"testsets.{name}.data_root"),
            annotations=path(entry.get("annotations"), f"testsets.{name}.annotations"),
            manifest=path(entry.get("manifest"), f"testsets.{name}.manifest"), on_missing=on_missing,
        ))
    models_in = data.get("models") or {}
    if isinstance(models_in, Sequence) and not isinstance(models_in, str):
        models_in = {m: None for m in models_in}
    if not isinstance(models_in, Mapping):
        raise BookConfigError(f"{source}: models: expected a mapping name -> {{checkpoint: path}}, got {models_in!r}")
    models = []
    for name, entry in models_in.items():
        if isinstance(entry, str) or entry is None:
            entry = {"checkpoint": entry}
        if not isinstance(entry, Mapping) or set(entry) - {"checkpoint"}:
            raise BookConfigError(f"{source}: models.{name}: expected {{checkpoint: <file>}}, got {entry!r}")
        models.append((_model_spec(str(name), base), path(entry.get("checkpoint"), f"models.{name}.checkpoint")))
    compat_in = data.get("compat", False)
    if not (isinstance(compat_in, bool) or (isinstance(compat_in, Sequence) and not isinstance(compat_in, str))):
        raise BookConfigError(f"{source}: compat: expected true, false or a list of switch names, got {compat_in!r}")
    from ..compat import parse_switches

    try:
        compat = tuple(sorted(parse_switches(compat_in)))  # type: ignore[arg-type]
    except ValueError as e:
        raise BookConfigError(f"{source}: compat: {e}") from None
    scheduler = data.get("scheduler")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
        raise BookConfigError(f"{source}: scheduler: expected a Dask scheduler address such as tcp://host:8786, got {scheduler!r}")
    dask_local = data.get("dask_local")
    if scheduler and dask_local is not None:
        raise BookConfigError(f"{source}: scheduler and dask_local: give one of them, not both")
    device = data.get("device", DEFAULTS.device)
    if not isinstance(device, str):
        raise BookConfigError(f"{source}: device: expected a string such as auto, cpu or cuda, got {device!r}")
    return BookConfig(
        testsets=tuple(testsets), models=tuple(models),
        n_seeds=integer(data.get("seeds", DEFAULTS.n_seeds), "seeds", 1), device=device,
        workers=integer(data.get("workers", DEFAULTS.workers), "workers", 0),
        batch_size=integer(data.get("batch_size", DEFAULTS.batch_size), "batch_size", 1),
        store=path(data.get("store"), "store"), compat=compat,
        noise_bank=None if data.get("noise_bank") is None else integer(data.get("noise_bank"), "noise_bank", 1),
        scheduler=scheduler, dask_local=None if dask_local is None else integer(dask_local, "dask_local", 1), source=source,
    )


def _model_spec(name: str, base: Path) -> str:
    """A model of the configuration: a registered name as is; a plugin file (``file.py:factory``)
    taken from ``base`` like every other path, and made absolute so that the notebooks find it."""
    where, sep, attr = name.rpartition(":")
    if sep and where.endswith(".py") and not Path(where).expanduser().is_absolute():
        return f"{(base / Path(where).expanduser()).resolve()}:{attr}"
    return name


def load_book_config(config: str | Path | BookConfig | Mapping[str, Any]) -> BookConfig:
    """A :class:`BookConfig` from a YAML/JSON file (or a parsed mapping, or one already built),
    validated with :meth:`BookConfig.validate`."""
    if isinstance(config, BookConfig):
        config.validate()
        return config
    if isinstance(config, Mapping):
        cfg = book_config_from_dict(config)
    else:
        import yaml

        p = Path(config)
        if not p.is_file():
            raise BookConfigError(f"book configuration: no such file: {p}")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))  # JSON is YAML too
        except yaml.YAMLError as e:
            raise BookConfigError(f"{p}: not valid YAML/JSON: {e}") from None
        cfg = book_config_from_dict(data, source=str(p), base=p.resolve().parent)
    cfg.validate()
    return cfg


@dataclass
class TestSetRun:
    """A test set (any :class:`~vssl_helpers.testsets.base.TestSet`) and the negatives manifest
    every model reads."""

    name: str
    dataset: TestSet
    manifest: Manifest

    def sample_index(self, row: int) -> int:
        """Index in :attr:`dataset` of manifest row ``row`` (the maps are in manifest order)."""
        return self.dataset.index(self.manifest.ids[row])

    @property
    def label(self) -> str:
        """Display name (Table I's first column)."""
        return TEST_SET_LABELS.get(self.name, self.name)

    @property
    def is_real(self) -> bool:
        """True for a test set whose media are read from files, False for a generated one
        (:attr:`~vssl_helpers.testsets.base.TestSet.has_media_files`)."""
        return bool(self.dataset.has_media_files)

    def sample(self, row: int) -> Any:
        """The :class:`~vssl_helpers.testsets.base.Sample` of manifest row ``row`` with its image and
        audio as arrays (real sets read them from their files)."""
        return self.sample_by_id(self.manifest.ids[row])

    def sample_by_id(self, sample_id: str) -> Any:
        """The sample ``sample_id`` with its media as arrays."""
        return self.dataset.sample(self.dataset.index(sample_id))

    def image_groups(self) -> list[list[int]]:
        """Manifest rows grouped by image: one row per image for VGG-SS(-like) sets, one per sounding
        source for IS3(-like) sets (samples sharing an image), from the set's
        :meth:`~vssl_helpers.testsets.base.TestSet.image_groups`; groups in order of their first
        manifest row, rows in set order within a group."""
        row_of = {sid: row for row, sid in enumerate(self.manifest.ids)}
        ids = self.dataset.ids
        groups = [sorted(row_of[ids[j]] for j in group if ids[j] in row_of) for group in self.dataset.image_groups()]
        return sorted((g for g in groups if g), key=min)

    def image_rows(self, image_index: int) -> list[int]:
        """Manifest rows of the samples of image ``image_index`` (see :meth:`image_groups`), in
        source order."""
        groups = self.image_groups()
        if not 0 <= image_index < len(groups):
            raise IndexError(f"{self.name}: image {image_index} out of range (0..{len(groups) - 1})")
        return groups[image_index]


def default_store() -> MapStore:
    """The map store shared by the CLI and the book: ``$VSSL_CACHE/maps`` or ``~/.cache/vssl-companion/maps``."""
    return MapStore(default_store_root())


def demo_test_sets(n_test_images: int = DEFAULTS.n_images, n_seeds: int = DEFAULTS.n_seeds, seed: int = 0) -> dict[str, TestSetRun]:
    """The VGG-SS-like set (``n_test_images`` images, one source) and the IS3-like set
    (``n_test_images // 2`` images with two sources, so about as many samples), with their manifests.

    The VGG-SS-like set is the one of the embedded benchmark chapter (same config, same manifest).
    """
    out: dict[str, TestSetRun] = {}
    for name, n_images, sources in (("vggss-like", n_test_images, 1), ("is3-like", max(1, n_test_images // 2), 2)):
        ds = SyntheticSet(SyntheticConfig(split="test", n_images=n_images, sources=sources, seed=seed))
        out[name] = TestSetRun(name, ds, ds.default_manifest(n_seeds))
    return out


def evaluate_models(
    models: Sequence[str],
    sets: Mapping[str, TestSetRun],
    *,
    model_seed: int = DEFAULTS.model_seed,
    train_steps: int | None = None,
    n_train_images: int | None = None,
    store: MapStore | str | Path | None = None,
    progress: bool = False,
    executor: Any = None,
) -> dict[str, dict[str, EvalResult]]:
    """Every demo (or untrained registered) model on every set through the map store:
    ``results[set][model]``. ``executor``: a :mod:`vssl_helpers.scale` executor that computes the
    maps first (e.g. on Dask); ``None``: in this process.

    Trained demo models are built with :func:`~vssl_helpers.embedded.train_overrides` of
    ``train_steps``/``n_train_images`` (loaded from the training cache when present). The threshold of
    a model on every set other than :func:`threshold_set` is the one computed on that set.
    """
    from ..inputs import build_model

    overrides = train_overrides(train_steps, n_train_images)

    def build(name: str) -> tuple[Any, str | None]:
        return build_model(name, model_seed=model_seed, progress=progress, train_overrides=overrides)

    return _evaluate_matrix(models, sets, build, default_store() if store is None else store, EvalOptions(progress=progress),
                            executor)


def _evaluate_matrix(
    models: Sequence[str], sets: Mapping[str, TestSetRun], build: Any, store: MapStore | str | Path,
    options: EvalOptions, executor: Any = None,
) -> dict[str, dict[str, EvalResult]]:
    """``results[set][model]`` through :func:`vssl_helpers.engine.evaluate` (maps and metric rows
    read back from ``store`` when present); the threshold set first, its thresholds applied to the
    others. With an ``executor`` (:mod:`vssl_helpers.scale`) every map of the matrix is computed by
    it first (maps do not depend on the threshold), then the same loop computes the metrics.
    ``executor`` may also be a function returning one (a context manager, closed after): it is
    called only when some map is missing from the store (a chapter that reads stored maps starts
    no cluster)."""
    from dataclasses import replace

    store = store if isinstance(store, MapStore) else MapStore(store)
    first = threshold_set(sets)
    order = sorted(sets, key=lambda k: k != first)
    results: dict[str, dict[str, EvalResult]] = {k: {} for k in order}
    built: dict[str, tuple[Any, str | None]] = {}
    if executor is not None:
        from ..scale import EvalJob

        from ..engine import store_run

        built = {name: build(name) for name in models}
        jobs = [EvalJob(f"{name} on {key}", built[name][0], sets[key].dataset, sets[key].manifest, built[name][1])
                for name in models for key in order]
        if hasattr(executor, "fill"):
            executor.fill(jobs, store, options, progress=options.progress)
        elif any(store_run(j.model, j.testset, j.manifest, store, options, weights=j.weights).pending() for j in jobs):
            with executor() as ex:
                ex.fill(jobs, store, options, progress=options.progress)
    for name in models:
        model, weights = built.pop(name) if name in built else build(name)
        for key in order:
            thr = None if key == first else results[first][name].threshold
            run = sets[key]
            results[key][name] = evaluate(model, run.dataset, run.manifest, store, replace(options, threshold=thr),
                                          weights=weights)
    return {k: results[k] for k in sets}


def book_sets(
    book_config: str | Path | BookConfig | None = None, n_test_images: int = DEFAULTS.n_images, n_seeds: int = DEFAULTS.n_seeds,
) -> dict[str, TestSetRun]:
    """The extended test sets of a book: the two synthetic sets (:func:`demo_test_sets`) when
    ``book_config`` is empty, else the configured real sets with their manifests (media checked)."""
    if not book_config:
        return demo_test_sets(n_test_images, n_seeds)
    from ..inputs import load_testset

    cfg = load_book_config(book_config)
    out: dict[str, TestSetRun] = {}
    for t in cfg.testsets:
        # the skipped samples are listed once, on the book's front page (preflight); the loader's
        # warning would otherwise print them on every chapter
        with _quiet_media_log():
            ds, manifest = load_testset(t.name, data_root=t.data_root, annotations=t.annotations, manifest=t.manifest,
                                        n_seeds=cfg.n_seeds, on_missing=t.on_missing)  # type: ignore[arg-type]
        if cfg.noise_bank is not None:
            from ..negatives import with_noise_bank

            manifest = with_noise_bank(manifest, cfg.noise_bank)
        out[t.name] = TestSetRun(t.name, ds, manifest)
    return out


class _quiet_media_log:
    """Context: the media loader's warnings (skipped samples) are not printed."""

    def __enter__(self) -> None:
        import logging

        self._log = logging.getLogger("vssl_helpers.testsets.media")
        self._level = self._log.level
        self._log.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._log.setLevel(self._level)


def preflight(book_config: str | Path | BookConfig) -> dict[str, Any]:
    """Check a real-data book before its first notebook runs, and record what it will use.

    Beyond :meth:`BookConfig.validate` (folders and files exist, models are registered): every test
    set is loaded with its media check (a data root of another set, or missing media without
    ``on_missing: skip``, is refused here), a given manifest is verified against its set, and every
    checkpoint is loaded into its model (a file of another model, or not a checkpoint, is refused).

    Returns:
        The provenance of the build: ``{"source", "threshold_set", "testsets": [{name, label,
        data_root, annotations, n_samples, n_seeds, manifest, manifest_sha256, on_missing, skipped:
        [{id, reason}]}], "models": [{name, checkpoint, sha256}]}``.

    Raises:
        BookConfigError: naming the configuration, the field and what was expected.
    """
    from ..inputs import InputError, build_model, load_testset, skipped_samples
    from ..negatives import ManifestError
    from ..plugins import plugin_record
    from ..testsets.media import MediaError

    cfg = load_book_config(book_config)
    where = cfg.source
    sets: list[dict[str, Any]] = []
    for t in cfg.testsets:
        try:
            with _quiet_media_log():
                ds, manifest = load_testset(t.name, data_root=t.data_root, annotations=t.annotations,
                                            manifest=t.manifest, n_seeds=cfg.n_seeds, on_missing=t.on_missing)  # type: ignore[arg-type]
            if cfg.noise_bank is not None:  # the manifest every chapter reads, and its hash
                from ..negatives import with_noise_bank

                manifest = with_noise_bank(manifest, cfg.noise_bank)
        except (InputError, MediaError, ManifestError, FileNotFoundError, ValueError) as e:
            msg = str(e).replace("on_missing='skip'", f"testsets.{t.name}.on_missing: skip (vssl book --on-missing skip)")
            raise BookConfigError(f"{where}: testsets.{t.name}: {msg}") from None
        sets.append({
            "name": t.name, "label": TEST_SET_LABELS.get(t.name, t.name), "data_root": str(Path(t.data_root).resolve()),
            "annotations": str(ds.report.source), "n_samples": len(manifest), "n_seeds": manifest.n_seeds,
            "manifest": manifest.name, "manifest_sha256": manifest.sha256, "on_missing": t.on_missing,
            "skipped": skipped_samples(ds),
        })
    models: list[dict[str, Any]] = []
    for name, ckpt in cfg.models:
        try:
            model, weights = build_model(name, ckpt, option=f"models.{name}.checkpoint")
        except InputError as e:
            raise BookConfigError(f"{where}: {e}") from None
        del model
        plugin = plugin_record(name)
        if plugin is not None:  # weights id "plugin:<file>+sha256:<checkpoint>": the checkpoint's own hash
            weights = weights.split("+", 1)[1] if ckpt is not None else None
        models.append({"name": name, "checkpoint": None if ckpt is None else str(Path(ckpt).resolve()),
                       "sha256": None if weights is None else weights.split(":", 1)[1],
                       **({"plugin": plugin} if plugin is not None else {})})
    first = threshold_set({s["name"]: s for s in sets})
    return {"source": where, "threshold_set": first, "testsets": sets, "models": models}


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def provenance_markdown(record: Mapping[str, Any]) -> str:
    """The provenance of a real-data build (:func:`preflight`) as Markdown: the data, the checkpoints
    (file and sha256) and the skipped samples, each a table, for the book's front page."""
    sets, models = record["testsets"], record["models"]
    first = next(s["label"] for s in sets if s["name"] == record["threshold_set"])
    lines = [
        "## The data and checkpoints of this build", "",
        "Every chapter of this build runs on the media and checkpoints below, not on the embedded "
        "procedural benchmark of the default book. Each model's universal threshold is computed on the "
        f"{first} set" + (" and applied unchanged to the others, as in the paper." if len(sets) > 1 else "."), "",
        "| test set | media folder | annotations | samples × seeds | manifest (sha256) | skipped |",
        "|---|---|---|---|---|---|",
    ]
    for t in sets:
        lines.append(f"| {t['label']} | `{_md_cell(t['data_root'])}` | `{_md_cell(t['annotations'])}` | "
                     f"{t['n_samples']:,} × {t['n_seeds']} | `{_md_cell(t['manifest'])}` (`{t['manifest_sha256'][:12]}…`) | "
                     f"{len(t['skipped'])} |")
    lines += ["", "| model | checkpoint file | sha256 |", "|---|---|---|"]
    for m in models:
        ck = f"`{_md_cell(m['checkpoint'])}`" if m["checkpoint"] else "none (the registry's default weights)"
        sha = f"`{m['sha256']}`" if m["sha256"] else "–"
        lines.append(f"| {m['name']} | {ck} | {sha} |")
    skipped = [(t["label"], x) for t in sets for x in t["skipped"]]
    lines += ["", "### Skipped samples", ""]
    if skipped:
        lines += [f"{len(skipped)} sample(s) were left out for missing or unreadable media (`on_missing: skip`); "
                  "no chapter counts them:", "", "| test set | sample id | reason |", "|---|---|---|"]
        lines += [f"| {label} | `{_md_cell(x['id'])}` | {_md_cell(x['reason'])} |" for label, x in skipped]
    else:
        lines.append("None: every annotated sample of every set had readable media.")
    return "\n".join(lines) + "\n"


def book_results(
    sets: Mapping[str, TestSetRun],
    models: Sequence[str],
    book_config: str | Path | BookConfig | None = None,
    *,
    model_seed: int = 0,
    train_steps: int | None = None,
    n_train_images: int | None = None,
    progress: bool = False,
) -> dict[str, dict[str, EvalResult]]:
    """``results[set][model]`` for a book: :func:`evaluate_models` on the embedded default, or the
    configured models (each with its checkpoint, loaded in its official layout) on the real sets.
    ``models`` must then be configured models; the engine settings come from the configuration."""
    if not book_config:
        return evaluate_models(models, sets, model_seed=model_seed, train_steps=train_steps,
                               n_train_images=n_train_images, progress=progress)
    from ..inputs import build_model

    cfg = load_book_config(book_config)
    checkpoints = dict(cfg.models)
    unknown = [m for m in models if m not in checkpoints]
    if unknown:
        raise BookConfigError(f"{cfg.source}: models: {unknown} not configured (configured: {cfg.model_names})")

    def build(name: str) -> tuple[Any, str | None]:
        return build_model(name, checkpoints[name], model_seed=model_seed, progress=progress, option=f"models.{name}.checkpoint")

    options = EvalOptions(device=cfg.device, num_workers=cfg.workers, batch_size=cfg.batch_size,
                          compat=list(cfg.compat) or None, progress=progress)
    store = MapStore(cfg.store) if cfg.store else default_store()
    if cfg.scheduler or cfg.dask_local is not None:
        from ..scale import make_executor

        # started only when a map is missing (the pipeline's prepare step; chapters then read the store)
        return _evaluate_matrix(models, sets, build, store, options,
                                lambda: make_executor(cfg.scheduler, cfg.dask_local))
    return _evaluate_matrix(models, sets, build, store, options)


def prepare(
    n_test_images: int = DEFAULTS.n_images,
    n_seeds: int = DEFAULTS.n_seeds,
    train_steps: int | None = None,
    n_train_images: int | None = None,
    model_seed: int = DEFAULTS.model_seed,
    models: Sequence[str] = DEMO_MODELS,
    model: str | None = None,
    book_config: str | None = None,
    **_: Any,
) -> None:
    """Pipeline hook: fill the map store for every set (training or loading the demo models first
    on the embedded default, building the synthetic sets' arrays), with progress bars on the console,
    so that the chapter only reads stored maps and metric rows."""
    wanted = list(models) if model is None else [model]
    sets = book_sets(book_config, n_test_images, n_seeds)
    book_results(sets, wanted, book_config, model_seed=model_seed, train_steps=train_steps,
                 n_train_images=n_train_images, progress=True)


def describe_sets(sets: Mapping[str, TestSetRun]) -> str:
    """One Markdown line per test set: what the chapter's numbers are computed on (samples, seeds,
    where the data comes from, manifest hash)."""
    lines = []
    for run in sets.values():
        m = run.manifest
        where = run.dataset.description()
        skipped = len(run.dataset.skipped_samples())
        note = f"; {skipped} skipped for missing media (listed on the front page)" if skipped else ""
        lines.append(f"- **{run.label}**: {len(m):,} samples × {m.n_seeds} seeds ({where}); "
                     f"manifest `{m.name}` sha256 `{m.sha256[:12]}…`{note}")
    return "Test sets of this chapter:\n\n" + "\n".join(lines)


def sample_maps(result: EvalResult, row: int, seed_index: int = 0) -> dict[str, Any]:
    """The four native maps of manifest row ``row``: positive, silence, and the noise and off-screen
    maps of seed ``seed_index`` (``h × w`` tensors, in the model's own units)."""
    m = result.maps
    return {
        "positive": m.positive[row],
        "silence": m.silence[row],
        "noise": m.noise[seed_index, row],
        "offscreen": m.offscreen[seed_index, row],
    }


def negative_audio(run: TestSetRun, row: int, seed_index: int = 0) -> dict[str, Any]:
    """The four waveforms paired with manifest row ``row`` at seed ``seed_index``: its own clip,
    silence, its noise clip and the off-screen clip the manifest drew (another test clip), all at the
    set's sample rate and length. Keys: ``positive``, ``silence``, ``noise``, ``offscreen:<category>``."""
    import numpy as np

    from ..negatives import silence_waveform

    manifest = run.manifest
    sid = manifest.ids[row]
    own = np.asarray(run.sample_by_id(sid).audio, dtype=np.float32)
    clip = manifest.offscreen_clip(sid, seed_index)
    off = np.asarray(run.sample_by_id(clip.id).audio, dtype=np.float32)
    n = own.shape[-1]
    if off.shape[-1] < n:  # real clips differ in length: tile the off-screen clip, as the engine does
        off = np.resize(off, n)
    return {
        "positive": own,
        "silence": silence_waveform(n),
        "noise": manifest.noise(sid, seed_index, n),
        f"offscreen:{clip.category}": off[:n],
    }


def image_rows(run: TestSetRun, image_index: int) -> list[int]:
    """Manifest rows of the samples of one image (one row for a VGG-SS(-like) set, one per sounding
    source for an IS3(-like) set), in source order: :meth:`TestSetRun.image_rows`."""
    return run.image_rows(image_index)
