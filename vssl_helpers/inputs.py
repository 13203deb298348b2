"""What a run evaluates: a registered model with its weights, and an extended test set with its
negatives manifest.

One home for turning user input (a model name and a checkpoint file; a test-set name, a media folder
and optional annotation and manifest files) into objects the engine runs on. The ``vssl`` command
line and the real-data book both go through here, so a checkpoint or a data root is accepted or
refused the same way everywhere.

Every problem raises :class:`InputError` naming the option (``--checkpoint``, ``data_root`` ...) and
the value, before any heavy work where possible. The other user inputs of a run are checked here too:
an output file (:func:`check_output_path`, before computing), a ``--threshold`` number or results
file (:func:`read_threshold`) and whether a threshold can separate anything
(:func:`threshold_range_warning`); :func:`skipped_samples` lists what ``on_missing="skip"`` dropped,
for the results file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal

from .defaults import DEFAULTS
from .negatives import Manifest

__all__ = [
    "InputError", "build_model", "load_testset", "check_model_inputs", "check_testset_inputs", "check_device",
    "check_output_path",
    "read_threshold", "threshold_range_warning", "skipped_samples", "cli_spelling",
]



class InputError(ValueError):
    """Bad input for a run; the message starts with the option or field at fault."""


def build_model(
    name: str,
    checkpoint: str | Path | None = None,
    *,
    model_seed: int = 0,
    progress: bool = False,
    option: str = "--checkpoint",
    train_overrides: dict[str, Any] | None = None,
) -> tuple[Any, str | None]:
    """Build registered model ``name`` in eval mode, with the weights of ``checkpoint`` if given.

    ``name`` may also be a plugin spec (``package.module:factory``, ``file.py:factory`` or an
    entry-point name, :mod:`vssl_helpers.plugins`): it is loaded and registered first. A plugin model
    is built by its factory (with ``seed=model_seed`` if it takes one), and its weights identity joins
    the sha256 of its file, so the map store recomputes its maps when the file changes.

    Official models (those whose config declares a checkpoint layout) read the file through
    :func:`vssl_helpers.models.checkpoints.load_checkpoint_into`: their official layout (top-level
    key, ``module.`` prefixes, extra entries), ``weights_only=True``, strict unless the layout says
    otherwise. Other models take a plain state dict (optionally under ``state_dict``/``model``).
    Without a checkpoint, trained demo models are trained or loaded from the training cache (with
    ``train_overrides``, :class:`~vssl_helpers.models.training.TrainConfig` fields such as ``steps``),
    and the rest get seeded random weights.

    Returns:
        ``(model, weights)`` where ``weights`` is ``"sha256:<hex>"`` of the checkpoint file, or None;
        for a plugin, ``"plugin:<file hash>+sha256:<hex>"`` or ``"plugin:<file hash>+state:<hex>"``.

    Raises:
        InputError: unknown model, missing file, or a checkpoint that does not fit the model
            (``option`` names the setting in the message).
    """
    from .models import create_model, file_sha256, get_config
    from .models.demo import TRAINED_DEMOS
    from .plugins import model_plugin, plugin_weights_id, resolve_model

    try:
        name = resolve_model(name)
        config = get_config(name)
    except ValueError as e:
        raise InputError(f"model: {e}") from None
    if model_plugin(name) is not None:
        model, weights = _build_plugin(name, checkpoint, model_seed, option)
        return model, plugin_weights_id(name, weights, model)
    if checkpoint is None:
        if name in TRAINED_DEMOS:
            return create_model(name, pretrained=True, seed=model_seed, progress=progress,
                                **(train_overrides or {})).eval(), None
        return _untrained(name, model_seed, official=bool(config.checkpoint_layout)).eval(), None
    from .models.checkpoints import CheckpointError, load_checkpoint_into

    path = _existing(checkpoint, option)
    read = _read_weights(path, name, option)
    if name in TRAINED_DEMOS:
        model = create_model(name, pretrained=False)
    else:
        model = _untrained(name, model_seed, official=bool(config.checkpoint_layout))
    if config.checkpoint_layout:
        try:
            load_checkpoint_into(model, path, _read=read)
        except CheckpointError as e:
            raise InputError(f"{option} {path}: does not fit model {name!r}: {e}") from None
    else:
        _load_plain_state_dict(model, read[0], path, option)
    return model.eval(), f"sha256:{file_sha256(path)}"


def _build_plugin(name: str, checkpoint: str | Path | None, model_seed: int, option: str) -> tuple[Any, str | None]:
    """A plugin model from its factory, with the plain state dict of ``checkpoint`` if given."""
    from .models import create_model, file_sha256

    path = None if checkpoint is None else _existing(checkpoint, option)
    state = None if path is None else _read_weights(path, name, option)[0]
    try:
        model = create_model(name, seed=model_seed)
    except Exception as e:  # noqa: BLE001 - the plugin's own failure, named
        raise InputError(f"model: plugin {name!r}: its factory raised {type(e).__name__}: {e}") from None
    if path is None:
        return model.eval(), None
    _load_plain_state_dict(model, state, path, option)
    return model.eval(), f"sha256:{file_sha256(path)}"


def _existing(checkpoint: str | Path, option: str) -> Path:
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(f"{option}: no such file: {path}")
    return path


def _read_weights(path: Path, name: str, option: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one reader (weights_only=True), called before any network is built."""
    from .models.checkpoints import CheckpointError, UnreadableCheckpointError, read_state_dict

    try:
        return read_state_dict(path, name)
    except UnreadableCheckpointError as e:  # empty, truncated, not a checkpoint
        raise InputError(f"{option} {path}: {e.reason}") from None
    except CheckpointError as e:
        raise InputError(f"{option} {path}: does not fit model {name!r}: {e}") from None


def _untrained(name: str, seed: int, official: bool) -> Any:
    """Model ``name`` with seeded initial weights. Demo factories take the seed; the official
    architectures initialise from torch's global generator, seeded here without disturbing it."""
    import torch

    from .models import create_model

    if not official:
        return create_model(name, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_model(name, pretrained=False)


def _load_plain_state_dict(model: Any, state: dict[str, Any], path: Path, option: str) -> None:
    """Strict load of a plain state dict (read by ``checkpoints.read_state_dict``) into a model without
    an official layout: a checkpoint of another model fails with the key diff."""
    try:
        res = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise InputError(f"{option} {path}: does not fit model {model.config.name!r}: {e}") from None
    if res.missing_keys or res.unexpected_keys:
        raise InputError(
            f"{option} {path}: does not fit model {model.config.name!r} ({len(res.missing_keys)} missing keys, "
            f"e.g. {res.missing_keys[:3]}; {len(res.unexpected_keys)} unexpected keys, e.g. {res.unexpected_keys[:3]}). "
            "Is it a checkpoint of another model?"
        )


def load_testset(
    name: str,
    *,
    data_root: str | Path | None = None,
    annotations: str | Path | None = None,
    manifest: str | Path | None = None,
    n_seeds: int | None = DEFAULTS.n_seeds,
    n_images: int | None = None,
    on_missing: Literal["raise", "skip"] = "raise",
) -> tuple[Any, Manifest]:
    """A registered test set (:func:`vssl_helpers.testsets.create_testset`) and its negatives manifest.

    ``"synthetic"``: the embedded VGG-SS-like set of ``n_images`` images (default 500; no data
    root). ``"vggss"`` / ``"is3"``: the real set with media under ``data_root`` (annotations:
    ``annotations``, else the official file inside ``data_root`` if present, else the shipped copy).
    The manifest is ``manifest`` if given, else the set's default
    (:meth:`~vssl_helpers.testsets.base.TestSet.default_manifest`: for the real sets the shipped one
    when it covers exactly these samples with ``n_seeds`` seeds, else one drawn from the samples).

    A given ``manifest`` file is verified before use: its content hash and structure
    (:func:`~vssl_helpers.negatives.load_manifest`) and its consistency with the test set
    (:func:`~vssl_helpers.negatives.check_manifest_for_testset`). It fixes the seed count and, for
    the synthetic set, the number of images: ``n_seeds``/``n_images`` of ``None`` take them from
    the manifest; a value that disagrees is refused.

    Raises:
        InputError: unknown set, missing or unexpected data root, missing files, a manifest that is
            corrupted, does not belong to the set or disagrees with ``n_seeds``/``n_images``.
        MediaError: (from the loaders) missing or unreadable media with ``on_missing="raise"``.
    """
    from .negatives import ManifestError, check_manifest_for_testset, load_manifest
    from .plugins import PluginError
    from .testsets import TestSetError, create_testset

    name = testset_name(name)

    check_testset_inputs(name, data_root=data_root, annotations=annotations, manifest=manifest, n_seeds=n_seeds,
                         n_images=n_images)
    user_manifest = None
    if manifest is not None:
        try:
            user_manifest = load_manifest(manifest)
        except (ManifestError, OSError) as e:
            raise InputError(f"manifest: {e}") from None
        if n_seeds is not None and n_seeds != user_manifest.n_seeds:
            raise InputError(
                f"seeds: {n_seeds} given, but the manifest {manifest} fixes {user_manifest.n_seeds} seeds; "
                f"leave the seed count out (it is taken from the manifest) or give {user_manifest.n_seeds}"
            )
    n_seeds = user_manifest.n_seeds if user_manifest is not None else (DEFAULTS.n_seeds if n_seeds is None else n_seeds)
    try:
        ds = create_testset(name, data_root=data_root, annotations=annotations, n_images=n_images,
                            hints={"manifest": user_manifest, "on_missing": on_missing})
    except TestSetError as e:
        raise InputError(str(e)) from None
    except PluginError as e:  # a plugin's factory failed or returned something else than a test set
        raise InputError(f"testset: {e}") from None
    if user_manifest is not None:
        try:
            check_manifest_for_testset(user_manifest, ds, where=f"manifest {manifest}")
        except ManifestError as e:
            raise InputError(str(e) if str(e).startswith("manifest") else f"manifest: {e}") from None
        return ds, user_manifest
    return ds, ds.default_manifest(n_seeds)


def check_model_inputs(name: str, checkpoint: str | Path | None = None) -> None:
    """Cheap checks of a model choice before anything is built: ``name`` is registered and a given
    ``checkpoint`` file exists.

    Raises:
        InputError: ``"model: unknown model ..."`` or ``"checkpoint: no such file: ..."``.
    """
    from .models import get_config

    try:
        get_config(name)
    except ValueError as e:
        raise InputError(f"model: {e}") from None
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise InputError(f"checkpoint: no such file: {checkpoint}")


def testset_name(spec: str) -> str:
    """The registry name of a test set given by name or plugin spec (a plugin is loaded and
    registered on first use; :func:`vssl_helpers.plugins.resolve_testset_name`).

    Raises:
        InputError: ``"testset: ..."`` naming the spec and what was expected.
    """
    from .plugins import resolve_testset_name

    try:
        return resolve_testset_name(spec)
    except ValueError as e:  # PluginError
        raise InputError(f"testset: {e}") from None


def check_testset_inputs(
    name: str,
    *,
    data_root: str | Path | None = None,
    annotations: str | Path | None = None,
    manifest: str | Path | None = None,
    n_seeds: int | None = None,
    n_images: int | None = None,
) -> None:
    """Cheap checks of a test-set choice before anything is loaded, the one home of these checks
    (the command line and the book configuration call it): the set is registered, it takes the
    options given (a data root only for sets read from a folder, an image count only for generated
    sets) and has the ones it needs, the folder and files exist, counts are at least 1.

    Raises:
        InputError: the message starts with the option at fault (``data_root: no such folder: ...``).
    """
    from .testsets import TestSetError
    from .testsets.registry import check_options

    name = testset_name(name)
    try:
        check_options(name, {"data_root": data_root, "annotations": annotations, "n_images": n_images})
    except TestSetError as e:
        raise InputError(str(e)) from None
    for label, count in (("seeds", n_seeds), ("n_images", n_images)):
        if count is not None and count < 1:
            raise InputError(f"{label}: must be >= 1, got {count}")
    if data_root is not None and not Path(data_root).is_dir():
        raise InputError(f"data_root: no such folder: {data_root}")
    for label, value in (("annotations", annotations), ("manifest", manifest)):
        if value is not None and not Path(value).is_file():
            raise InputError(f"{label}: no such file: {value}")


def check_device(device: str, option: str = "device") -> None:
    """A device name torch knows (``auto``, ``cpu``, ``cuda``, ``cuda:1`` ...), and CUDA only where
    it is available.

    Raises:
        InputError: ``"<option>: not a device: ..."`` or ``"<option> cuda: CUDA is not available ..."``.
    """
    if device == "auto":
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"{option}: not a device: {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{option} {device}: CUDA is not available on this machine; use {option} cpu")


def skipped_samples(testset: Any) -> list[dict[str, str]]:
    """Samples a test set's loader dropped for missing or unreadable media (``on_missing="skip"``):
    ``[{"id": ..., "reason": ...}]`` in id order (empty for synthetic sets and complete media)."""
    return testset.skipped_samples()


def check_output_path(path: str | Path, option: str = "--out") -> Path:
    """Refuse, before any work, an output file that could not be written at the end.

    Refused: an existing folder, a path below a file, a folder that cannot be created or written
    (permissions, a read-only file system: a probe file is created and removed in the nearest
    existing folder), an existing file that is not writable.

    Raises:
        InputError: naming ``option``, the path and what was expected.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{option} {p}: is a folder; expected a file name (e.g. {p / 'results.json'})")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{option} {p}: cannot be created: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option} {p}: cannot be created: no permission to write in {parent}")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"{option} {p}: exists and is not writable")
    # what permissions do not show (a read-only file system, a full disk): create and remove a probe
    # file where the first missing folder (or the file) would go; nothing is left behind
    probe = parent / f".vssl-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as e:
        raise InputError(f"{option} {p}: cannot be created in {parent}: {e.strerror or e}") from None
    finally:
        probe.unlink(missing_ok=True)
    return p


def read_threshold(value: str | None, option: str = "--threshold") -> Any:
    """A threshold given by the user: ``None``, a finite number, or the threshold of a results file.

    A file must be JSON with a ``threshold`` that is a number or a mapping with a numeric ``value``
    (what ``vssl evaluate --out`` and ``vssl threshold --out`` write).

    Returns:
        ``None``, a float, or a :class:`~vssl_helpers.threshold.UniversalThreshold` (from a file).

    Raises:
        InputError: naming ``option``, the value or file and what was expected.
    """
    if value is None:
        return None
    p = Path(value)
    if p.is_dir():
        raise InputError(f"{option} {p}: is a folder; expected a number or a results JSON file")
    if not p.is_file():
        try:
            v = float(value)
        except ValueError:
            raise InputError(f"{option}: neither a number nor an existing results file: {value!r}") from None
        if not math.isfinite(v):
            raise InputError(f"{option}: expected a finite number, got {value!r}")
        return v
    from .threshold import UniversalThreshold

    expected = "expected a results JSON of `vssl evaluate --out` or `vssl threshold --out` with a numeric threshold.value"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{option} {p}: not a text file; {expected}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{option} {p}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); {expected}") from None
    if not isinstance(data, dict) or "threshold" not in data:
        raise InputError(f"{option} {p}: has no 'threshold' entry; {expected}")
    t = data["threshold"]
    if not isinstance(t, dict):
        t = {"value": t}
    v = t.get("value")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{option} {p}: threshold.value is {v!r} ({type(v).__name__}); {expected}")
    if not math.isfinite(v):
        raise InputError(f"{option} {p}: threshold.value is {v!r}; expected a finite number")
    q3 = t.get("per_type_q3") or {}
    if not isinstance(q3, dict):
        q3 = {}
    return UniversalThreshold(value=float(v), rule=f"from {p.name}: {t.get('rule', '')}",
                              per_type_q3=q3, decisive_type=t.get("decisive_type"))


def threshold_range_warning(value: float, map_range: tuple[float, float], model: str, observed: tuple[float, float] | None = None) -> str | None:
    """A warning when a threshold cannot separate anything: outside the model's map range (every
    map is then entirely above or entirely below it), or, with ``observed`` (the smallest and largest
    value of this run's maps), outside what the maps reach. ``None`` when the threshold is usable."""
    lo, hi = map_range
    if value < lo or value > hi:
        side = "below" if value < lo else "above"
        every = "every pixel of every map is active" if value < lo else "no pixel of any map is ever active"
        return (f"threshold {value:.6g} is {side} the map range [{lo:g}, {hi:g}] of model {model!r}: {every}, "
                "so cIoU/pIA say nothing about the model")
    if observed is not None:
        olo, ohi = observed
        if value < olo or value >= ohi:
            side = "below the smallest" if value < olo else "at or above the largest"
            return (f"threshold {value:.6g} is {side} map value of this run ([{olo:.6g}, {ohi:.6g}]) of model "
                    f"{model!r}: every map is {'entirely active' if value < olo else 'entirely inactive'} at it")
    return None


_CLI_SPELLING = {
    "only for testset ": "only for --testset ",
    "on_missing='skip'": "--on-missing skip",
    "on_missing=\"skip\"": "--on-missing skip",
}


def cli_spelling(message: str) -> str:
    """A library message in the command line's spelling (``on_missing='skip'`` -> ``--on-missing skip``)."""
    for py, cli in _CLI_SPELLING.items():
        message = message.replace(py, cli)
    return message
