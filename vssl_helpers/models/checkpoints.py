"""Loading the official checkpoints of the seven evaluated models.

:func:`load` reads a file in its **official layout** (``config.checkpoint_layout``: the top-level key
such as ``'model'`` or ``'model_state_dict'``, a DataParallel ``module.`` prefix, extra entries such as
the optimizer state), always with ``torch.load(weights_only=True)`` so that a file cannot run code, and
matches it against the architecture **strictly** by default. Any mismatch raises
:class:`CheckpointError` naming the model, the file, the missing / unexpected keys (first few and
counts) and the shapes that differ.

:func:`read_state_dict` is the package's one reader of weights files: models without an official
layout (the demo models, plugins; ``vssl evaluate --checkpoint``) are read there too, and a file that
is no checkpoint at all (empty, truncated, another format) raises :class:`UnreadableCheckpointError`
naming the file.

SSL-Align's official loader is non-strict (``strict=False`` on a DataParallel-wrapped LVS network,
models.md §8.4). We keep that possible (it is its default here) but report every ignored key with a
warning and refuse when the ignored fraction exceeds ``max_ignored_fraction``.
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from .registry import VSSLModel, create_model, file_sha256, get_config

__all__ = [
    "CheckpointError", "UnreadableCheckpointError", "LoadReport", "read_state_dict", "load_checkpoint_into", "load",
    "apply_pretrained",
]

_FIRST = 5  # how many keys an error message lists

PLAIN_TOP_LEVEL_KEYS = ("state_dict", "model", "model_state_dict")
"""Where a model without an official layout (the demo models, plugins) may keep its state dict
inside the file, tried in this order; else the file's mapping itself is the state dict."""


class CheckpointError(ValueError):
    """A checkpoint file that does not fit the model it was given to."""


class UnreadableCheckpointError(CheckpointError):
    """A file that is not a PyTorch checkpoint at all: empty, truncated, or not written by
    ``torch.save``. ``reason`` is the message without the ``load(name): checkpoint path:`` prefix
    (what the command line shows after the option and the file)."""

    def __init__(self, name: str, path: Path, reason: str) -> None:
        super().__init__(f"load({name!r}): checkpoint {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class LoadReport:
    """What :func:`load_checkpoint_into` did with a file (kept on the model as ``model.load_report``)."""

    model: str
    path: str
    sha256: str
    top_level_key: str | None
    stripped_prefix: int  # how many keys lost a leading 'module.'
    extra_entries: list[str] = field(default_factory=list)  # other top-level entries (optimizer, epoch ...)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored_outside: list[str] = field(default_factory=list)  # keys the official loader never reads
    strict: bool = True

    @property
    def ignored_fraction(self) -> float:
        """(missing + unexpected) / number of entries the model expects."""
        return (len(self.missing) + len(self.unexpected)) / max(1, self._n_expected)

    _n_expected: int = 0


def _first(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_FIRST])
    return f"[{shown}{', ...' if len(keys) > _FIRST else ''}]"


def _numpy_safe_globals() -> list[Any]:
    """NumPy scalar/dtype reconstructors, for checkpoints whose metadata (``best_cIoU``...) are NumPy
    scalars. Only allowed when the caller asks (``allow_numpy_scalars=True``)."""
    import numpy as np

    out: list[Any] = [np.dtype]
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    # files written with NumPy 1.x name the function numpy.core.multiarray.scalar
    out += [scalar, (scalar, "numpy.core.multiarray.scalar")]
    out += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return out


def _torch_load(path: Path, name: str, allow_numpy_scalars: bool) -> Any:
    """``torch.load(weights_only=True)`` of ``path``, every failure as a :class:`CheckpointError`
    naming the file: :class:`UnreadableCheckpointError` for a file that is no checkpoint (empty,
    truncated, another format), a plain :class:`CheckpointError` for a checkpoint that holds Python
    objects ``weights_only`` refuses to build."""
    if path.stat().st_size == 0:
        raise UnreadableCheckpointError(name, path, "the file is empty (0 bytes); expected a PyTorch checkpoint (torch.save)")
    try:
        if allow_numpy_scalars:
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        names: list[str] = []
        try:
            names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # not a zip checkpoint: the torch message below says what was refused, if anything
            pass
        if not names and "Unsupported global" not in str(e):
            # weights_only could not even parse it (a pickle of something else, random bytes)
            raise UnreadableCheckpointError(name, path, _unreadable_reason(e)) from None
        unsafe = f" Python objects referenced: {_first(names)}." if names else ""
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = (
            " If these are only NumPy scalars (training metadata such as best_cIoU), pass allow_numpy_scalars=True."
            if "numpy" in (unsafe + str(e))
            else ""
        )
        raise CheckpointError(
            f"load({name!r}): refusing checkpoint {path}: it contains pickled Python objects that are not "
            f"tensors or plain containers, and weights_only=True loading never executes them.{unsafe} "
            f"torch said: {first_line}.{hint}"
        ) from None
    except Exception as e:  # noqa: BLE001 - truncated zip, text, another format: not a checkpoint
        raise UnreadableCheckpointError(name, path, _unreadable_reason(e)) from None


def _unreadable_reason(e: BaseException) -> str:
    """Why torch cannot load a file: a truncated zip archive, or the error torch gave."""
    first = (str(e).strip().splitlines() or [""])[0][:160]
    why = "truncated or corrupted zip archive" if "zip archive" in str(e) else f"{type(e).__name__}: {first}"
    return (f"cannot be read as a PyTorch checkpoint ({why}); expected a file written by torch.save "
            "(the model's official .pth/.pt)")


def read_state_dict(path: str | os.PathLike, name: str, *, allow_numpy_scalars: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``path`` in the layout of model ``name``; returns (state dict, info). The one reader of
    weights files: every checkpoint (official, demo, plugin) is read here, with
    ``torch.load(weights_only=True)`` so that a file cannot run code.

    The state dict is the entry under the official layout's top-level key (models without an
    official layout: the first of :data:`PLAIN_TOP_LEVEL_KEYS` that holds a mapping), or the file's
    mapping itself when all its values are tensors (a bare state dict, e.g. re-saved by a user).
    A leading ``module.`` is removed from every key (LVS checkpoints require it, EZ-VSL's loader
    strips it, SSL-Align's adds it, DataParallel saves it: after removal all of them compare equal
    to the architecture's own names).

    Raises:
        UnreadableCheckpointError: the file is empty, truncated or not a PyTorch checkpoint.
        CheckpointError: no such file; Python objects that ``weights_only`` refuses; no state dict
            where the layout puts it; non-tensor entries; keys that collide once ``module.`` is removed.
    """
    config = get_config(name)
    layout = config.checkpoint_layout
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"load({name!r}): checkpoint file {path} does not exist")
    obj = _torch_load(path, name, allow_numpy_scalars)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"load({name!r}): checkpoint {path} holds a {type(obj).__name__}, expected a mapping")
    top = layout.get("top_level_key")
    candidates = (top,) if top is not None else PLAIN_TOP_LEVEL_KEYS
    top = next((k for k in candidates if isinstance(obj.get(k), Mapping)), top)
    info: dict[str, Any] = {"top_level_key": None, "extra_entries": []}
    if top is not None and top in obj:
        state = obj[top]
        info["top_level_key"] = top
        info["extra_entries"] = sorted(str(k) for k in obj if k != top)
    elif (obj or not layout) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        # a bare state dict (e.g. re-saved by a user): accepted, the report says so; empty only for a
        # model without an official layout (a parameterless plugin), the key comparison judges it
        state = obj
    else:
        where = f"top-level key {top!r} (official layout: {layout.get('file_layout', '?')})" if layout else (
            "state dict, neither bare nor under " + "/".join(repr(k) for k in PLAIN_TOP_LEVEL_KEYS))
        raise CheckpointError(
            f"load({name!r}): checkpoint {path} has no {where}; its top-level entries are {_first(sorted(map(str, obj)))}"
        )
    if not isinstance(state, Mapping):
        raise CheckpointError(f"load({name!r}): checkpoint {path}: entry {top!r} is a {type(state).__name__}, expected a state dict")
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"load({name!r}): checkpoint {path}: {len(bad)} state-dict entries are not tensors: {_first(bad)}")
    out: dict[str, torch.Tensor] = {}
    stripped = 0
    for k, v in state.items():
        k2 = str(k)
        while k2.startswith("module."):
            k2 = k2[len("module.") :]
        stripped += k2 != k
        if k2 in out:
            raise CheckpointError(f"load({name!r}): checkpoint {path}: key {k!r} duplicates another key once 'module.' is removed")
        out[k2] = v
    info["stripped_prefix"] = stripped
    return out, info


def load_checkpoint_into(
    model: VSSLModel,
    path: str | os.PathLike,
    *,
    strict: bool | None = None,
    max_ignored_fraction: float = 0.05,
    allow_numpy_scalars: bool = False,
    _read: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None,
) -> LoadReport:
    """Copy the weights of ``path`` into ``model`` (whose ``config.name`` selects the layout).

    ``strict=None`` uses the layout's default (strict for all models except SSL-Align). Shape
    mismatches are always refused. In non-strict mode the load is refused when
    ``(missing + unexpected) / expected > max_ignored_fraction``; otherwise a warning lists what was
    ignored. Keys outside the prefixes the official loader reads (``layout['read_prefixes']``, RCGrad's
    ``image_encoder.`` / ``audio_encoder.``) are ignored as officially, and listed in the report.
    """
    config = model.config
    name = config.name
    layout = config.checkpoint_layout
    strict = bool(layout.get("strict", True)) if strict is None else strict
    state, info = _read if _read is not None else read_state_dict(path, name, allow_numpy_scalars=allow_numpy_scalars)
    state = dict(state)
    read_prefixes = tuple(layout.get("read_prefixes", ()))
    ignored_outside = sorted(k for k in state if read_prefixes and not k.startswith(read_prefixes))
    for k in ignored_outside:
        del state[k]
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [(k, tuple(state[k].shape), tuple(expected[k].shape)) for k in state if k in expected and state[k].shape != expected[k].shape]
    report = LoadReport(
        model=name,
        path=str(path),
        sha256=file_sha256(path),
        top_level_key=info["top_level_key"],
        stripped_prefix=info["stripped_prefix"],
        extra_entries=info["extra_entries"],
        missing=missing,
        unexpected=unexpected,
        ignored_outside=ignored_outside,
        strict=strict,
    )
    report._n_expected = len(expected)
    where = f"checkpoint['{info['top_level_key']}']" if info["top_level_key"] else "the file's mapping"

    def describe() -> str:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) {_first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) {_first(unexpected)}")
        if shapes:
            shown = "; ".join(f"{k}: file {list(a)} vs model {list(b)}" for k, a, b in shapes[:_FIRST])
            parts.append(f"{len(shapes)} shape mismatch(es) [{shown}{'; ...' if len(shapes) > _FIRST else ''}]")
        return "; ".join(parts)

    arch = f"the {layout.get('display_name', name)} architecture ({len(expected)} entries)"
    after = f"keys compared after reading {where} and removing a leading 'module.'"
    if shapes or (strict and (missing or unexpected)):
        raise CheckpointError(
            f"load({name!r}): checkpoint {path} does not fit {arch}{' (strict)' if strict else ''}: {describe()}; {after}."
        )
    if missing or unexpected:
        frac = report.ignored_fraction
        if frac > max_ignored_fraction:
            raise CheckpointError(
                f"load({name!r}): refusing checkpoint {path}: non-strict load would ignore {frac:.1%} of "
                f"{arch} (limit {max_ignored_fraction:.1%}): {describe()}; {after}."
            )
        warnings.warn(
            f"load({name!r}): non-strict load of {path} ignored {frac:.1%}: {describe()} "
            "(missing entries keep their random initial values).",
            stacklevel=3,
        )
    model.load_state_dict(state, strict=False)
    model.load_report = report  # type: ignore[attr-defined]
    model.weights_sha256 = report.sha256  # type: ignore[attr-defined]
    return report


def load(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
    strict: bool | None = None,
    max_ignored_fraction: float = 0.05,
    allow_numpy_scalars: bool = False,
    **kwargs: Any,
) -> VSSLModel:
    """Build model ``name`` and load its official checkpoint; returns it in eval mode on ``device``.

    ``kwargs`` go to the model factory (e.g. ``protocol="paper"``). Without ``checkpoint`` only
    models that need none (the demo models) can be built; nothing is ever downloaded.
    """
    config = get_config(name)
    if checkpoint is None:
        if config.checkpoint_layout:
            url = config.checkpoint_layout.get("weights", "the official repository")
            raise ValueError(f"load({name!r}): needs checkpoint=<path to the official weights> (from {url}); nothing is downloaded")
        return create_model(name, **kwargs).to(device).eval()
    if not config.checkpoint_layout:
        raise ValueError(f"load({name!r}): this model has no official checkpoint layout")
    # read (and vet) the file before building the network: a refused file costs no model construction
    read = read_state_dict(checkpoint, name, allow_numpy_scalars=allow_numpy_scalars)
    model = create_model(name, pretrained=False, **kwargs)
    load_checkpoint_into(model, checkpoint, strict=strict, max_ignored_fraction=max_ignored_fraction, _read=read)
    return model.to(device).eval()


def apply_pretrained(model: VSSLModel, pretrained: bool | str | os.PathLike) -> VSSLModel:
    """Factory helper: ``pretrained`` is False (random weights), or a checkpoint path (loaded with the
    layout's defaults). ``True`` is refused: the official weights are not downloadable from here."""
    if pretrained is True:
        url = model.config.checkpoint_layout.get("weights", "the official repository")
        raise ValueError(
            f"{model.config.name}: pretrained=True would need a download; get the official weights from {url} "
            "and pass their path (vssl_helpers.models.load(name, checkpoint=path))"
        )
    if pretrained:
        load_checkpoint_into(model, pretrained)
    return model.eval()
