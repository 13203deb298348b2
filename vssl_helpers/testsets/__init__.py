"""Test sets: the :class:`TestSet` protocol, its registry, and the package's three sets.

Registered here (``vssl evaluate --testset NAME``, :func:`create_testset`):

* ``synthetic``: the embedded procedural VGG-SS-like benchmark (:mod:`.synthetic`);
* ``vggss``: VGG-SS from its media folder (:mod:`.vggss`);
* ``is3``: IS3 from its media folder (:mod:`.is3`).

The factories import their module on first use, so listing the names (``vssl --help``) stays fast;
the loaders' public names are also imported on first access (``from vssl_helpers.testsets import
SyntheticSet`` works as before).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import BROAD_CATEGORIES, BaseTestSet, Sample, TestSet
from .registry import TestSetError, create_testset, get_testset, list_testsets, register_testset

# The factories are private names: a public ``synthetic`` here would shadow the submodule of that name
# in ``from vssl_helpers.testsets import synthetic``.

__all__ = [
    "BROAD_CATEGORIES", "Sample", "TestSet", "BaseTestSet", "TestSetError", "register_testset", "list_testsets",
    "get_testset", "create_testset", "SyntheticConfig", "SyntheticSet", "load_is3", "load_vggss",
]


@register_testset("synthetic")
def _synthetic(n_images: int | None = None, manifest: Any = None) -> TestSet:
    """The embedded benchmark (:func:`vssl_helpers.testsets.synthetic.synthetic_testset`)."""
    from .synthetic import synthetic_testset

    return synthetic_testset(n_images=n_images, manifest=manifest)


@register_testset("vggss")
def _vggss(data_root: str | Path, annotations: str | Path | None = None, on_missing: str = "raise") -> TestSet:
    """VGG-SS under ``data_root`` (annotations: the given file, else ``vggss.json`` in the folder,
    else the shipped copy)."""
    from .media import load_real_testset
    from .vggss import load_vggss

    return load_real_testset("vggss", load_vggss, "vggss.json", data_root, annotations, on_missing)  # type: ignore[arg-type]


@register_testset("is3")
def _is3(data_root: str | Path, annotations: str | Path | None = None, on_missing: str = "raise") -> TestSet:
    """IS3 under ``data_root`` (annotations: the given file, else ``synthetic3240_bbox.json`` in
    the folder, else the shipped copy)."""
    from .is3 import load_is3
    from .media import load_real_testset

    return load_real_testset("is3", load_is3, "synthetic3240_bbox.json", data_root, annotations, on_missing)  # type: ignore[arg-type]



def __getattr__(name: str) -> Any:
    # the loaders pull in scipy, PIL and soundfile: imported when first used, not with the package
    if name == "SyntheticConfig":
        from .synthetic import SyntheticConfig

        return SyntheticConfig
    if name == "SyntheticSet":
        from .synthetic import SyntheticSet

        return SyntheticSet
    if name == "load_is3":
        from .is3 import load_is3

        return load_is3
    if name == "load_vggss":
        from .vggss import load_vggss

        return load_vggss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
