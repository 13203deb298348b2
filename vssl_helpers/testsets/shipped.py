"""The shipped negatives manifests of VGG-SS and IS3: how they are built from the shipped metadata.

``vssl manifest build-shipped`` rebuilds them (``--check`` compares with the files in
``vssl_helpers/data/manifests/``). This lives with the test sets, not in :mod:`vssl_helpers.negatives`:
building needs the loaders, and the manifest module depends on the test-set protocol's items only.
"""

from __future__ import annotations

from pathlib import Path

from ..categories import mapping_sha256
from ..negatives import SHIPPED, Manifest, build_manifest
from .is3 import IS3_BLOB_SHA1, IS3_UPSTREAM, load_is3
from .vggss import VGGSS_BLOB_SHA1, VGGSS_UPSTREAM, load_vggss

__all__ = ["shipped_sources", "build_shipped_manifests"]


def shipped_sources() -> dict[str, dict[str, str]]:
    """What each shipped manifest was drawn from (recorded in its ``source`` parameter): the
    upstream annotation file, its git blob sha1 and the category mapping's sha256."""
    cats = mapping_sha256()
    return {
        "vggss": {"annotations": VGGSS_UPSTREAM, "git_blob_sha1": VGGSS_BLOB_SHA1, "categories_sha256": cats},
        "is3": {"annotations": IS3_UPSTREAM, "git_blob_sha1": IS3_BLOB_SHA1, "categories_sha256": cats},
    }


def build_shipped_manifests(out_dir: str | Path | None = None) -> dict[str, Manifest]:
    """Build the VGG-SS and IS3 manifests from the shipped metadata (optionally write them).

    Seed :data:`~vssl_helpers.negatives.DEFAULT_MANIFEST_SEED`, :data:`~vssl_helpers.negatives.DEFAULT_N_SEEDS`
    seeds, rule :data:`~vssl_helpers.negatives.DEFAULT_DRAW_RULE`, pool = the test set's own clips.
    ``out_dir`` (e.g. ``vssl_helpers/data``) receives the files at their
    :data:`~vssl_helpers.negatives.SHIPPED` paths.
    """
    sources = shipped_sources()
    out: dict[str, Manifest] = {}
    for name, loader in (("vggss", load_vggss), ("is3", load_is3)):
        ds = loader()
        out[name] = build_manifest(ds.manifest_items(), name=name, source=sources[name])
        if out_dir is not None:
            out[name].save(Path(out_dir) / SHIPPED[name])
    return out
