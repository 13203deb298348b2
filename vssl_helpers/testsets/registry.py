"""The test-set registry: test sets are named and created like models.

A factory ``fn(**options) -> TestSet`` is registered under a name with :func:`register_testset`;
:func:`create_testset` builds one by name, :func:`list_testsets` lists the names. The package
registers ``synthetic``, ``vggss`` and ``is3`` (in :mod:`vssl_helpers.testsets`; this module imports
no test set, so the import graph stays acyclic). Options a factory does not take are refused with a
message naming the option, so a user who passes a media folder to the generated set learns why.

Options the package's callers pass (each factory takes the ones that apply to it):
``data_root`` (media folder), ``annotations`` (annotation file), ``on_missing`` (``"raise"`` or
``"skip"`` for missing media), ``n_images`` (size of a generated set); as a hint (passed only to a factory that takes it)
``manifest``, a user's :class:`~vssl_helpers.negatives.Manifest`, which may fix the set's size.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .base import TestSet

__all__ = ["TestSetError", "register_testset", "register_plugin_testset", "list_testsets", "get_testset", "create_testset", "testset_options",
           "check_options"]


class TestSetError(ValueError):
    """A test set that cannot be created as asked; the message starts with the option at fault."""

    __test__ = False  # not a pytest test class despite its name


_REGISTRY: dict[str, Callable[..., TestSet]] = {}


def register_testset(name: str) -> Callable[[Callable[..., TestSet]], Callable[..., TestSet]]:
    """Decorator: register factory ``fn(**options) -> TestSet`` under ``name`` (duplicates raise)."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"register_testset: expected a non-empty name without ':', got {name!r}")

    def deco(fn: Callable[..., TestSet]) -> Callable[..., TestSet]:
        if name in _REGISTRY:
            raise ValueError(f"register_testset: {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def register_plugin_testset(spec: str, factory: Callable[..., TestSet]) -> str:
    """Register a plugin's factory under its spec (``path/to/file.py:factory``, ``module:factory`` or
    an entry-point name; :func:`vssl_helpers.plugins.resolve_testset_name` calls this). Registering the
    same factory again is a no-op; another factory under a registered name raises ``ValueError``."""
    known = _REGISTRY.get(spec)
    if known is not None and known is not factory:
        raise ValueError(f"register_plugin_testset: {spec!r} is already registered with another factory")
    _REGISTRY[spec] = factory
    return spec


def list_testsets() -> list[str]:
    """Names of every registered test set, the package's in the order of the paper
    (``synthetic``, ``vggss``, ``is3``), then the others sorted."""
    builtin = [n for n in ("synthetic", "vggss", "is3") if n in _REGISTRY]
    return builtin + sorted(n for n in _REGISTRY if n not in builtin)


def get_testset(name: str) -> Callable[..., TestSet]:
    """The factory of test set ``name``; :class:`TestSetError` naming the known sets otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise TestSetError(f"testset: unknown test set {name!r}; expected one of {', '.join(list_testsets())}") from None


def testset_options(name: str) -> dict[str, bool]:
    """The options test set ``name``'s factory takes, each with whether it is required
    (``{"data_root": True, ...}``; a factory with ``**options`` lists only its named ones)."""
    params = inspect.signature(get_testset(name)).parameters
    return {k: p.default is inspect.Parameter.empty for k, p in params.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


_WHAT = {"data_root": "the folder with its media", "annotations": "its annotation file"}


def check_options(name: str, given: Mapping[str, Any]) -> None:
    """Cheap checks of the options for test set ``name`` before anything is loaded: each given
    option (not ``None``) is one its factory takes, and every required one is given.

    Raises:
        TestSetError: ``"<option>: only for testset a, b (not used with the <name> test set)"`` or
            ``"<option>: required for the <name> test set (...)"``.
    """
    options = testset_options(name)
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(get_testset(name)).parameters.values())
    for key, value in given.items():
        if value is not None and key not in options and not takes_all:
            # registered names only: a plugin's spec (a path) would bury the message
            users = [n for n in list_testsets() if ":" not in n and key in testset_options(n)]
            where = f"only for testset {', '.join(users)} " if users else ""
            raise TestSetError(f"{key}: {where}(not used with the {name} test set)")
    for key, required in options.items():
        if required and given.get(key) is None:
            what = f" ({_WHAT[key]})" if key in _WHAT else ""
            raise TestSetError(f"{key}: required for the {name} test set{what}")


def create_testset(name: str, *, hints: Mapping[str, Any] | None = None, **options: Any) -> TestSet:
    """Test set ``name`` built by its factory with ``options`` (``None`` values are left out, so
    the factory's defaults apply). ``hints`` are options passed only to a factory that takes them
    (e.g. a user's manifest, which fixes the size of a generated set and means nothing to others).

    Raises:
        TestSetError: unknown name, an option the set does not use, or (from the factory) a bad value.
        TypeError: the factory returned something that is not a :class:`~vssl_helpers.testsets.base.TestSet`.
    """
    factory = get_testset(name)
    given = {k: v for k, v in options.items() if v is not None}
    check_options(name, given)
    params = inspect.signature(factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    given.update({k: v for k, v in (hints or {}).items() if v is not None and (takes_all or k in params)})
    out = factory(**given)
    if not isinstance(out, TestSet):
        raise TypeError(f"test set {name!r}: its factory returned a {type(out).__name__}, not a TestSet "
                        "(see vssl_helpers.testsets.base.TestSet for the members it needs)")
    return out
