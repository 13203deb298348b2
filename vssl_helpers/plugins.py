"""Plugins: your own model or test set in one line, without editing the package.

A *spec* names a factory, in one of three forms:

``package.module:factory``
    an importable module (on ``sys.path``) and a callable in it;
``path/to/file.py:factory``
    a Python file (relative paths are taken from the current directory), imported under a unique
    module name so that two files called ``model.py`` do not collide;
``name``
    a bare name: a model registered by the package stays that model; otherwise the entry point of
    that name in the group ``vssl_companion.models`` (or ``vssl_companion.testsets``) of an
    installed distribution, declared in its ``pyproject.toml`` as::

        [project.entry-points."vssl_companion.models"]
        my-model = "my_package.vssl:factory"

**Model contract.** ``factory()`` returns a :class:`~vssl_helpers.models.registry.VSSLModel` whose
``.config`` is a :class:`~vssl_helpers.models.registry.ModelConfig` (the adapter interface of
DESIGN.md: ``encode_images`` / ``encode_audio`` / ``similarity_all``, or ``joint_maps`` with
``config.factorized = False``). If the factory accepts a ``seed`` keyword it receives ``--model-seed``.
:func:`resolve_model` calls it once to check what it returns, then registers it in the model registry
under ``config.name``; from then on the name (and the spec, an alias of it) works everywhere in this
process: ``build_model``, the engine, the CLI, the book. The factory is called again for every model
built, so keep it cheap (or cache inside your module). A function already decorated with
:func:`~vssl_helpers.models.registry.register_model` also works as a spec: importing its module
registered it, and the spec resolves to that name.

**Test-set contract.** ``factory(**options)`` returns an object satisfying the
:class:`~vssl_helpers.testsets.base.TestSet` protocol (``name``, ``ids``, ``sample_rate`` and
``sample(j)``; inherit :class:`~vssl_helpers.testsets.base.BaseTestSet` for the rest).
:func:`resolve_testset_name` registers the factory in the test-set registry under the spec, so
``vssl evaluate --testset path/to/sets.py:factory`` and the book configuration use it like ``synthetic``;
options the factory declares (``data_root``, ``n_images``, ...) are passed as for the package's sets.

Every problem raises :class:`PluginError` (a ``ValueError``) whose message names the spec and what was
expected: a malformed spec, a module or file that does not exist or raises on import, a missing or
non-callable attribute, a factory that raises or returns the wrong type, an unknown entry point (the
message lists the known ones).

Provenance: a plugin has no official checkpoint, so results record the spec and the sha256 of the file
that defines the factory (:func:`plugin_record`); the map store keys plugin maps by that hash too, so
editing the file recomputes its maps (:func:`plugin_weights_id`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from .models.registry import (
    ModelConfig,
    VSSLModel,
    file_sha256,
    list_models,
    register_alias,
    register_model,
    registered_factory_name,
)

__all__ = [
    "MODEL_GROUP",
    "TESTSET_GROUP",
    "PluginError",
    "PluginInfo",
    "is_spec",
    "resolve_model",
    "resolve_testset",
    "resolve_testset_name",
    "model_plugin",
    "plugin_record",
    "plugin_weights_id",
    "plugin_testset_info",
    "entry_point_names",
]

MODEL_GROUP = "vssl_companion.models"
"""Entry-point group of installed model plugins."""
TESTSET_GROUP = "vssl_companion.testsets"
"""Entry-point group of installed test-set plugins."""

_FORMS = "package.module:factory, path/to/file.py:factory, or the name of an installed entry point"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PluginError(ValueError):
    """A plugin spec that cannot be used; the message names the spec and what was expected."""


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from (recorded with its results).

    Attributes:
        spec: the spec as the user gave it.
        kind: ``"module"``, ``"file"`` or ``"entry point"``.
        factory: ``module:attribute`` actually loaded.
        file: the file that defines the factory (None for a module without a file).
        sha256: that file's sha256 (None without a file).
        entry_point: ``group:name`` for entry points, else None.
        distribution: ``name version`` of the distribution that declares the entry point, else None.
    """

    spec: str
    kind: str
    factory: str
    file: str | None
    sha256: str | None
    entry_point: str | None = None
    distribution: str | None = None


# spec (as normalised by _spec_key) -> registered model name; registered name -> plugin info
_MODEL_SPECS: dict[str, str] = {}
_MODEL_PLUGINS: dict[str, PluginInfo] = {}
# spec key -> (test-set object, info): a test set may be expensive to build, so it is built once
_TESTSET_PLUGINS: dict[str, PluginInfo] = {}
_TESTSETS: dict[str, Any] = {}
# resolved file path -> module, so a file is executed once per process
_FILE_MODULES: dict[str, Any] = {}


def is_spec(value: str) -> bool:
    """True for ``module:factory`` / ``file.py:factory`` specs (a bare name may still be an entry point)."""
    return ":" in value


def entry_point_names(group: str) -> list[str]:
    """Names of the installed entry points of ``group``, sorted."""
    return sorted({ep.name for ep in metadata.entry_points(group=group)})


def resolve_model(spec: str) -> str:
    """The registered name of model ``spec``, loading and registering a plugin if needed.

    A registered name is returned as is. A plugin is loaded (module, file or entry point), its factory
    called once and checked to return a :class:`VSSLModel` with a :class:`ModelConfig`, and registered
    under ``config.name`` with ``spec`` as an alias. Resolving the same spec again returns the same
    name without loading anything.

    Raises:
        PluginError: naming ``spec`` and what was expected (see the module docstring).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"model spec {spec!r}: expected a registered model name or {_FORMS}")
    spec = spec.strip()
    key = _spec_key(spec)
    if key in _MODEL_SPECS:
        return _alias(spec, _MODEL_SPECS[key])
    if not is_spec(spec):
        registered = list_models()
        if spec in registered:
            return spec
        if spec not in entry_point_names(MODEL_GROUP):
            raise PluginError(
                f"unknown model {spec!r}; registered models: {', '.join(registered)}; installed entry points "
                f"({MODEL_GROUP}): {', '.join(entry_point_names(MODEL_GROUP)) or 'none'}; or give a plugin as {_FORMS}"
            )
    factory, info = _load_factory(spec, MODEL_GROUP, "model")
    already = registered_factory_name(factory)
    if already is not None:  # a function decorated with @register_model: importing it registered it
        name = already
    else:
        model = _call(factory, spec, "model")
        _check_model(model, spec)
        name = model.config.name
        if name in _MODEL_PLUGINS:
            other = _MODEL_PLUGINS[name]
            if _spec_key(other.spec) != key and (other.factory, other.file) != (info.factory, info.file):
                raise PluginError(
                    f"model spec {spec!r}: its config name {name!r} is already used by the plugin {other.spec!r}; "
                    "give your ModelConfig another name"
                )
        elif name in list_models():
            raise PluginError(
                f"model spec {spec!r}: its config name {name!r} is already a registered model; give your ModelConfig "
                "another name"
            )
        else:
            register_model(model.config)(_factory_wrapper(factory, model.config))
    _MODEL_SPECS[key] = name
    if not (already is not None and str(getattr(factory, "__module__", "")).startswith("vssl_helpers.")):
        _MODEL_PLUGINS.setdefault(name, info)  # the package's own models keep their provenance
    return _alias(spec, name)


def _alias(spec: str, name: str) -> str:
    """``name``, with ``spec`` (this spelling of it) registered as its alias in the model registry."""
    if spec != name:
        register_alias(spec, name)
    return name


def model_plugin(name: str) -> PluginInfo | None:
    """The plugin behind registered model ``name`` (or behind a spec already resolved), else None."""
    name = _MODEL_SPECS.get(_spec_key(name), name)
    return _MODEL_PLUGINS.get(name)


def plugin_record(name: str) -> dict[str, Any] | None:
    """The JSON-ready provenance of plugin model ``name`` (spec, file, sha256, ...), else None."""
    info = model_plugin(name)
    return None if info is None else asdict(info)


def plugin_weights_id(name: str, weights: str | None, model: Any) -> str | None:
    """The weights identity of a model for the map store: for a plugin, the sha256 of its file
    joined to the checkpoint hash (``weights``) or to the state-dict hash, so that editing the
    plugin's code (which no checkpoint sees) recomputes its maps. Non-plugin models: ``weights``."""
    info = model_plugin(name)
    if info is None:
        return weights
    if weights is None:
        from .store import state_dict_sha256

        weights = f"state:{state_dict_sha256(model)}"
    return f"plugin:{(info.sha256 or 'nofile')[:16]}+{weights}"


def resolve_testset_name(spec: str) -> str:
    """The registry name of test set ``spec``: a registered name stays itself; a plugin (module, file
    or entry point) is loaded once and its factory registered under the spec (a file path made
    absolute), which is returned. Build it with :func:`vssl_helpers.testsets.create_testset`.

    Raises:
        PluginError: naming ``spec`` and what was expected (see the module docstring).
    """
    from .testsets import list_testsets
    from .testsets.registry import register_plugin_testset

    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"test-set spec {spec!r}: expected a registered test set or {_FORMS}")
    spec = spec.strip()
    if spec in list_testsets():
        return spec
    key = _spec_key(spec)
    if key in _TESTSET_PLUGINS:
        return key
    if not is_spec(spec) and spec not in entry_point_names(TESTSET_GROUP):
        raise PluginError(
            f"unknown test set {spec!r}: neither registered ({', '.join(list_testsets())}) nor an installed entry "
            f"point ({TESTSET_GROUP}: {', '.join(entry_point_names(TESTSET_GROUP)) or 'none'}); give a plugin as {_FORMS}"
        )
    factory, info = _load_factory(spec, TESTSET_GROUP, "test set")
    register_plugin_testset(key, _checked_testset_factory(factory, spec))
    _TESTSET_PLUGINS[key] = info
    return key


def resolve_testset(spec: str) -> Any:
    """The test set of ``spec`` (registered name or plugin) built with its factory's defaults, once
    per process.

    Raises:
        PluginError: naming ``spec`` and what was expected (see the module docstring).
    """
    from .testsets import create_testset

    key = resolve_testset_name(spec)
    if key not in _TESTSETS:
        try:
            _TESTSETS[key] = create_testset(key)
        except PluginError:
            raise
        except Exception as e:  # noqa: BLE001 - a registered set's own failure, named
            raise PluginError(f"test-set spec {spec!r}: could not be built: {type(e).__name__}: {e}") from None
    return _TESTSETS[key]


def plugin_testset_info(spec: str) -> PluginInfo | None:
    """The provenance of test-set plugin ``spec`` once resolved, else None."""
    return _TESTSET_PLUGINS.get(_spec_key(spec.strip()) if isinstance(spec, str) else spec)


# --------------------------------------------------------------------------------------------------
# checks of what a factory returns


def _check_model(obj: Any, spec: str) -> None:
    if not isinstance(obj, VSSLModel):
        raise PluginError(
            f"model spec {spec!r}: the factory returned a {type(obj).__name__}; expected a VSSLModel "
            "(subclass vssl_helpers.models.registry.VSSLModel or DotProductMapModel)"
        )
    config = getattr(obj, "config", None)
    if not isinstance(config, ModelConfig):
        raise PluginError(
            f"model spec {spec!r}: the model's .config is a {type(config).__name__}; expected a "
            "vssl_helpers.models.registry.ModelConfig (set self.config in __init__)"
        )
    if not isinstance(config.name, str) or not config.name or is_spec(config.name):
        raise PluginError(f"model spec {spec!r}: config.name {config.name!r} must be a non-empty name without ':'")


def _check_testset(obj: Any, spec: str) -> None:
    """What a test-set plugin must provide: the :class:`~vssl_helpers.testsets.base.TestSet` protocol."""
    from .testsets.base import TestSet

    if not isinstance(obj, TestSet):
        missing = [a for a in ("name", "ids", "sample_rate", "sample", "__len__") if not hasattr(obj, a)]
        raise PluginError(
            f"test-set spec {spec!r}: the factory returned a {type(obj).__name__}"
            + (f" without {', '.join(missing)}" if missing else "")
            + "; expected a vssl_helpers.testsets.base.TestSet (inherit BaseTestSet and define name, ids, "
            "sample_rate and sample(j))"
        )


def _checked_testset_factory(factory: Callable[..., Any], spec: str) -> Callable[..., Any]:
    """``factory`` whose result is checked, and whose own failures name the spec; its signature is
    kept so that the registry passes it only the options it declares."""
    import functools

    @functools.wraps(factory)
    def build(*args: Any, **kwargs: Any) -> Any:
        obj = _call(functools.partial(factory, *args, **kwargs), spec, "test set")
        _check_testset(obj, spec)
        return obj

    return build


# --------------------------------------------------------------------------------------------------
# loading


def _spec_key(spec: str) -> str:
    """``spec`` with a file path made absolute, so that two spellings of one file are one plugin."""
    where, sep, attr = spec.rpartition(":")
    if sep and _looks_like_file(where):
        return f"{Path(where).expanduser().resolve()}:{attr}"
    return spec


def _looks_like_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _load_factory(spec: str, group: str, what: str) -> tuple[Callable[..., Any], PluginInfo]:
    label = f"{what} spec {spec!r}"
    if not is_spec(spec):
        return _load_entry_point(spec, group, label)
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise PluginError(f"{label}: malformed; expected {_FORMS}")
    if not all(_IDENT.match(part) for part in attr.split(".")):
        raise PluginError(f"{label}: {attr!r} is not a Python name; expected {_FORMS}")
    if _looks_like_file(where):
        module, file = _import_file(where, label), str(Path(where).expanduser().resolve())
        kind = "file"
    else:
        if not all(_IDENT.match(part) for part in where.split(".")):
            raise PluginError(f"{label}: {where!r} is neither a module name nor a .py file; expected {_FORMS}")
        module = _import_module(where, label)
        file = getattr(module, "__file__", None)
        kind = "module"
    factory = _attribute(module, attr, label, where)
    return factory, _info(spec, kind, f"{module.__name__}:{attr}", file)


def _load_entry_point(name: str, group: str, label: str) -> tuple[Callable[..., Any], PluginInfo]:
    eps = [ep for ep in metadata.entry_points(group=group) if ep.name == name]
    if not eps:
        raise PluginError(
            f"{label}: no installed entry point {name!r} in group {group} (installed: "
            f"{', '.join(entry_point_names(group)) or 'none'}); or give {_FORMS}"
        )
    ep = eps[0]
    try:
        factory = ep.load()
    except ModuleNotFoundError as e:
        raise PluginError(f"{label}: entry point {name} = {ep.value}: no module named {e.name!r}") from None
    except AttributeError as e:
        raise PluginError(f"{label}: entry point {name} = {ep.value}: missing attribute ({e})") from None
    except Exception as e:  # noqa: BLE001 - the plugin's own import-time failure, named
        raise PluginError(f"{label}: entry point {name} = {ep.value}: importing it raised {type(e).__name__}: {e}") from None
    if not callable(factory):
        raise PluginError(f"{label}: entry point {name} = {ep.value} is a {type(factory).__name__}, not callable; expected a factory")
    module = sys.modules.get(ep.module)
    dist = getattr(ep, "dist", None)
    return factory, _info(
        name, "entry point", ep.value, getattr(module, "__file__", None), entry_point=f"{group}:{name}",
        distribution=None if dist is None else f"{dist.metadata['Name']} {dist.version}",
    )


def _info(spec: str, kind: str, factory: str, file: str | None, **kw: Any) -> PluginInfo:
    sha = file_sha256(file) if file and Path(file).is_file() else None
    return PluginInfo(spec=spec, kind=kind, factory=factory, file=file, sha256=sha, **kw)


def _import_module(name: str, label: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            raise PluginError(f"{label}: no module named {e.name!r} (is it installed, or on PYTHONPATH?)") from None
        raise PluginError(f"{label}: importing module {name!r} raised ModuleNotFoundError: {e}") from None
    except Exception as e:  # noqa: BLE001 - the plugin's own import-time failure, named
        raise PluginError(f"{label}: importing module {name!r} raised {type(e).__name__}: {e}") from None


def _import_file(where: str, label: str) -> Any:
    path = Path(where).expanduser()
    if not where.endswith(".py"):
        raise PluginError(f"{label}: {where!r} is not a .py file; expected {_FORMS}")
    if not path.is_file():
        raise PluginError(f"{label}: no such file: {path.resolve() if not path.is_absolute() else path}")
    resolved = str(path.resolve())
    if resolved in _FILE_MODULES:
        return _FILE_MODULES[resolved]
    # a unique module name: two plugins both called model.py must not replace each other
    name = f"vssl_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{hashlib.sha256(resolved.encode()).hexdigest()[:10]}"
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"{label}: cannot be imported as a Python file: {resolved}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up while it executes
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the plugin's own import-time failure, named
        del sys.modules[name]
        raise PluginError(f"{label}: importing {resolved} raised {type(e).__name__}: {e}") from None
    _FILE_MODULES[resolved] = module
    return module


def _attribute(module: Any, attr: str, label: str, where: str) -> Callable[..., Any]:
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in vars(module) if not n.startswith("_") and callable(vars(module)[n]))
            raise PluginError(f"{label}: {where} has no attribute {attr!r} (callables there: {', '.join(names) or 'none'})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PluginError(f"{label}: {where}:{attr} is a {type(obj).__name__}, not callable; expected a factory function")
    return obj


def _call(factory: Callable[..., Any], spec: str, what: str) -> Any:
    try:
        return factory()
    except Exception as e:  # noqa: BLE001 - the plugin's own failure, named
        raise PluginError(f"{what} spec {spec!r}: the factory raised {type(e).__name__}: {e}") from None


def _factory_wrapper(factory: Callable[..., Any], config: ModelConfig) -> Callable[..., VSSLModel]:
    """A registry factory around a plugin's: passes on only the keywords it accepts (``seed``, ...),
    and checks every model it builds carries the registered config's name."""
    try:
        params = inspect.signature(factory).parameters
        any_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        accepted = None if any_kw else set(params)
    except (TypeError, ValueError):  # builtins without a signature: pass nothing
        accepted = set()

    def build(**kwargs: Any) -> VSSLModel:
        kw = kwargs if accepted is None else {k: v for k, v in kwargs.items() if k in accepted}
        model = factory(**kw)
        if not isinstance(model, VSSLModel) or getattr(model.config, "name", None) != config.name:
            raise ValueError(f"plugin model {config.name!r}: its factory returned another model on a later call")
        return model

    build.__name__ = f"plugin_{getattr(factory, '__name__', 'factory')}"
    return build
