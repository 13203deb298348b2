"""Where the companion caches what it computes (synthetic arrays and manifests, trained demo
weights, stored maps): ``$VSSL_CACHE`` when set, else ``~/.cache/vssl-companion``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """``$VSSL_CACHE`` if set (and not empty), else ``~/.cache/vssl-companion``."""
    base = os.environ.get("VSSL_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "vssl-companion"
