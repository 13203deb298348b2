"""What a run evaluates: a registered model with its weights, and an extended test set with its
negatives manifest.

One home for turning user input (a model name and a checkpoint file; a test-set name, a media folder
and optional annotation and manifest files) into objects the engine runs on. The ``vssl`` command
line and the real-data book both go through here, so a checkpoint or a data root is accepted or
refused the same way everywhere.

Every problem raises :class:`InputError` naming the option (``--checkpoint``, ``data_root`` ...) and
the value, before any heavy work where possible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from .negatives import Manifest

__all__ = ["TESTSETS", "InputError", "build_model", "load_testset"]

TESTSETS: tuple[str, ...] = ("synthetic", "vggss", "is3")
"""Test-set names a run accepts: the embedded procedural benchmark and the two real sets."""

#: Annotation file looked for inside a real set's media folder when none is given.
_DEFAULT_ANNOTATIONS = {"vggss": "vggss.json", "is3": "synthetic3240_bbox.json"}


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

    Official models (those whose config declares a checkpoint layout) read the file through
    :func:`vssl_helpers.models.checkpoints.load_checkpoint_into`: their official layout (top-level
    key, ``module.`` prefixes, extra entries), ``weights_only=True``, strict unless the layout says
    otherwise. Other models take a plain state dict (optionally under ``state_dict``/``model``).
    Without a checkpoint, trained demo models are trained or loaded from the training cache (with
    ``train_overrides``, :class:`~vssl_helpers.models.training.TrainConfig` fields such as ``steps``),
    and the rest get seeded random weights.

    Returns:
        ``(model, weights)`` where ``weights`` is ``"sha256:<hex>"`` of the checkpoint file, or None.

    Raises:
        InputError: unknown model, missing file, or a checkpoint that does not fit the model
            (``option`` names the setting in the message).
    """
    from .models import create_model, file_sha256, get_config
    from .models.demo import TRAINED_DEMOS

    try:
        config = get_config(name)
    except ValueError as e:
        raise InputError(f"model: {e}") from None
    if checkpoint is None:
        if name in TRAINED_DEMOS:
            return create_model(name, pretrained=True, seed=model_seed, progress=progress,
                                **(train_overrides or {})).eval(), None
        return _untrained(name, model_seed, official=bool(config.checkpoint_layout)).eval(), None
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(f"{option}: no such file: {path}")
    if name in TRAINED_DEMOS:
        model = create_model(name, pretrained=False)
    else:
        model = _untrained(name, model_seed, official=bool(config.checkpoint_layout))
    if config.checkpoint_layout:
        from .models.checkpoints import CheckpointError, load_checkpoint_into

        try:
            load_checkpoint_into(model, path)
        except CheckpointError as e:
            raise InputError(f"{option} {path}: does not fit model {name!r}: {e}") from None
    else:
        _load_plain_state_dict(model, path, option)
    return model.eval(), f"sha256:{file_sha256(path)}"


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


def _load_plain_state_dict(model: Any, path: Path, option: str) -> None:
    """Strict load of a plain state dict (a checkpoint of another model fails with the key diff)."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling error means "not a checkpoint"
        raise InputError(f"{option} {path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise InputError(f"{option} {path}: holds a {type(obj).__name__}, not a state dict")
    if obj and all(str(k).startswith("module.") for k in obj):  # saved from DataParallel
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}
    try:
        res = model.load_state_dict(obj, strict=False)
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
    n_seeds: int = 10,
    n_images: int = 500,
    on_missing: Literal["raise", "skip"] = "raise",
) -> tuple[Any, Manifest]:
    """A test set and its negatives manifest.

    ``"synthetic"``: the embedded VGG-SS-like set of ``n_images`` images (no data root). ``"vggss"``
    / ``"is3"``: the real set with media under ``data_root`` (annotations: ``annotations``, else the
    official file inside ``data_root`` if present, else the shipped copy). The manifest is
    ``manifest`` if given, else the shipped one when it covers exactly these samples with
    ``n_seeds`` seeds, else one drawn from the samples (a media subset, another seed count).

    Raises:
        InputError: unknown set, missing or unexpected data root, missing files.
        MediaError: (from the loaders) missing or unreadable media with ``on_missing="raise"``.
    """
    from .negatives import load_manifest, load_shipped_manifest, manifest_for_samples

    if name not in TESTSETS:
        raise InputError(f"testset: unknown test set {name!r}; expected one of {', '.join(TESTSETS)}")
    if n_seeds < 1:
        raise InputError(f"seeds: must be >= 1, got {n_seeds}")
    for label, value in (("annotations", annotations), ("manifest", manifest)):
        if value is not None and not Path(value).is_file():
            raise InputError(f"{label}: no such file: {value}")
    if name == "synthetic":
        if data_root is not None:
            raise InputError("data_root: not used with the synthetic test set (its data is generated)")
        from .embedded import synthetic_manifest
        from .testsets.synthetic import SyntheticConfig, SyntheticSet

        ds = SyntheticSet(SyntheticConfig(split="test", n_images=n_images, sources=1, seed=0))
        return ds, (load_manifest(manifest) if manifest else synthetic_manifest(ds, n_seeds=n_seeds))
    if data_root is None:
        raise InputError(f"data_root: required for the {name} test set (the folder with its media)")
    root = Path(data_root)
    if not root.is_dir():
        raise InputError(f"data_root: no such folder: {root}")
    if annotations is None and (root / _DEFAULT_ANNOTATIONS[name]).is_file():
        annotations = root / _DEFAULT_ANNOTATIONS[name]
    if name == "vggss":
        from .testsets.vggss import load_vggss

        ds = load_vggss(annotations, media_root=root, on_missing=on_missing)
    else:
        from .testsets.is3 import load_is3

        ds = load_is3(annotations, media_root=root, on_missing=on_missing)
    if manifest:
        return ds, load_manifest(manifest)
    shipped = load_shipped_manifest(name)
    if shipped.ids == sorted(ds.ids) and shipped.n_seeds == n_seeds:
        return ds, shipped
    return ds, manifest_for_samples(ds.samples, name=f"{name}-derived", n_seeds=n_seeds)
