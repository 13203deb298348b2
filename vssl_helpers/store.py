"""Map store: native-resolution maps on disk, keyed by everything they depend on, written atomically.

An extended evaluation produces, for every sample, one positive map, one silence map and S noise and
S off-screen maps. The store keeps them so that metrics are computed from disk (never inside the
model loop), an interrupted run resumes where it stopped, and a finished run is never recomputed.

Layout::

    <root>/<model>-<digest16>/           one run directory per StoreKey (digest = sha256 of the key)
        key.json                         the key in clear (model, weights, manifest, preprocessing, ...)
        pool_audio.pt                    audio embeddings of every off-screen pool clip + silence
        shards/shard-00000.npz           samples [0, K) in manifest order: ids, positive (K×h×w),
        shards/shard-00001.npz           silence (K×h×w), noise and offscreen (S×K×h×w)
        index.json                       shard size, count, finished shards (informative)

Invalidation is by construction: a different checkpoint, manifest, preprocessing version, compute
dtype or map-format version gives a different key, hence a different directory; nothing that does
not depend on the change is touched. Every file is written to a temporary sibling and renamed into
place (``os.replace`` is atomic on POSIX), so a killed process leaves either a whole shard or none.
A shard is finished exactly when its file exists; ``index.json`` is a convenience record.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .atomic import atomic_write
from .cache import cache_root

__all__ = ["MAP_FORMAT_VERSION", "StoreKey", "MapStore", "StoreRun", "state_dict_sha256", "atomic_write", "default_store_root"]

MAP_FORMAT_VERSION = 1
"""Bump when the shard layout or the meaning of stored maps changes: old runs are then ignored."""


def default_store_root() -> Path:
    """Where maps are stored unless told otherwise: ``$VSSL_CACHE/maps``, else
    ``~/.cache/vssl-companion/maps`` (shared by the command line and the book)."""
    return cache_root() / "maps"


def _write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8"))


def state_dict_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over a model's state dict (names, dtypes, shapes and bytes, in sorted name order).

    Identifies weights when no checkpoint file is at hand (untrained or seeded models, weights
    trained in this process): two models with bit-identical tensors get the same hash.
    """
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass(frozen=True)
class StoreKey:
    """Everything a stored map depends on.

    Attributes:
        model: registry name.
        weights: ``sha256:<hex>`` of the checkpoint file or ``state:<hex>`` of the state dict.
        manifest_sha256: content hash of the negatives manifest.
        preprocessing_version: ``ModelConfig.preprocessing.version``.
        data: fingerprint of the media (synthetic config hash, or test-set name + media root).
        compute_dtype: ``float32``, ``bfloat16`` or ``float16`` (reduced precision gives other maps).
        map_size: the model's native map size (h, w): a model whose map definition changes without a
            weight change (e.g. a parameter-free reference model) must not reuse old maps.
        map_format: :data:`MAP_FORMAT_VERSION`.
    """

    model: str
    weights: str
    manifest_sha256: str
    preprocessing_version: int
    data: str = ""
    compute_dtype: str = "float32"
    map_size: tuple[int, int] = (0, 0)
    map_format: int = MAP_FORMAT_VERSION

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the key."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def dirname(self) -> str:
        """``<model>-<first 16 hex of the digest>`` (model name sanitised for file systems)."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.model)
        return f"{safe}-{self.digest()[:16]}"


@dataclass
class StoreRun:
    """One run directory of the store: the shards of one (key, sample list, shard size)."""

    path: Path
    key: StoreKey
    ids: list[str]
    shard_size: int
    n_seeds: int
    stats: dict[str, int] = field(default_factory=lambda: {"computed": 0, "reused": 0})

    @property
    def n_shards(self) -> int:
        """Number of shards covering every sample."""
        return -(-len(self.ids) // self.shard_size)

    def shard_range(self, k: int) -> tuple[int, int]:
        """Sample rows ``[i0, i1)`` of shard ``k`` (manifest order)."""
        i0 = k * self.shard_size
        return i0, min(i0 + self.shard_size, len(self.ids))

    def shard_path(self, k: int) -> Path:
        """File of shard ``k``."""
        return self.path / "shards" / f"shard-{k:05d}.npz"

    def is_done(self, k: int) -> bool:
        """True if shard ``k`` was written completely (atomic rename: the file exists)."""
        return self.shard_path(k).is_file()

    def pending(self) -> list[int]:
        """Shards still to compute."""
        return [k for k in range(self.n_shards) if not self.is_done(k)]

    # -- shards
    def write_shard(self, k: int, positive: np.ndarray, silence: np.ndarray, noise: np.ndarray,
                    offscreen: np.ndarray, store_dtype: str = "float32") -> Path:
        """Write shard ``k`` atomically. Shapes: positive/silence K×h×w, noise/offscreen S×K×h×w."""
        i0, i1 = self.shard_range(k)
        kk = i1 - i0
        if positive.shape[0] != kk or silence.shape[0] != kk or noise.shape[:2] != (self.n_seeds, kk) or offscreen.shape[:2] != (self.n_seeds, kk):
            raise ValueError(
                f"shard {k}: expected {kk} samples x {self.n_seeds} seeds, got positive {positive.shape}, "
                f"silence {silence.shape}, noise {noise.shape}, offscreen {offscreen.shape}"
            )
        dt = np.dtype(store_dtype)
        arrays = {
            "ids": np.array(self.ids[i0:i1], dtype=str),
            "positive": positive.astype(dt, copy=False),
            "silence": silence.astype(dt, copy=False),
            "noise": noise.astype(dt, copy=False),
            "offscreen": offscreen.astype(dt, copy=False),
        }

        def write(tmp: Path) -> None:
            # through a file object: np.savez would append ".npz" to the temporary name
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        path = self.shard_path(k)
        atomic_write(path, write)
        self.stats["computed"] += 1
        self._write_index()
        return path

    def read_shard(self, k: int) -> dict[str, np.ndarray]:
        """Arrays of shard ``k``, checked against the expected sample ids."""
        path = self.shard_path(k)
        with np.load(path, allow_pickle=False) as z:
            out = {name: z[name] for name in z.files}
        i0, i1 = self.shard_range(k)
        if list(out["ids"]) != self.ids[i0:i1]:
            raise ValueError(f"{path}: holds other samples than expected (store corrupted or key collision)")
        return out

    def iter_shards(self) -> Iterator[dict[str, np.ndarray]]:
        """Every shard in order (all must be finished)."""
        for k in range(self.n_shards):
            yield self.read_shard(k)

    # -- pool embeddings
    @property
    def pool_path(self) -> Path:
        return self.path / "pool_audio.pt"

    def load_pool(self, pool_ids: list[str]) -> dict[str, torch.Tensor] | None:
        """Stored pool audio embeddings (``{"pool": P×..., "silence": 1×...}``) or ``None``."""
        if not self.pool_path.is_file():
            return None
        obj = torch.load(self.pool_path, map_location="cpu", weights_only=True)
        if obj.get("ids") != pool_ids:
            return None
        return {"pool": obj["pool"], "silence": obj["silence"]}

    def save_pool(self, pool_ids: list[str], pool: torch.Tensor, silence: torch.Tensor) -> None:
        """Store the pool audio embeddings atomically."""
        obj = {"ids": list(pool_ids), "pool": pool.detach().cpu(), "silence": silence.detach().cpu()}
        atomic_write(self.pool_path, lambda tmp: torch.save(obj, tmp))

    def _write_index(self) -> None:
        done = [k for k in range(self.n_shards) if self.is_done(k)]
        _write_json(
            self.path / "index.json",
            {"n_samples": len(self.ids), "n_seeds": self.n_seeds, "shard_size": self.shard_size,
             "n_shards": self.n_shards, "finished": done, "complete": len(done) == self.n_shards},
        )


class MapStore:
    """A folder of run directories, one per :class:`StoreKey`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"MapStore({str(self.root)!r})"

    def run(self, key: StoreKey, ids: list[str], n_seeds: int, shard_size: int = 512) -> StoreRun:
        """The run directory of ``key`` for these samples, created if new.

        The sample ids and shard size are part of the run's identity too: if a directory exists with
        another sample list or shard size (e.g. a different ``--shard-size``), a sub-run is used so
        that shards of one layout are never read as the other.
        """
        if shard_size < 1:
            raise ValueError(f"shard_size: must be >= 1, got {shard_size}")
        base = self.root / key.dirname()
        layout = hashlib.sha256(json.dumps([ids, int(n_seeds), int(shard_size)]).encode()).hexdigest()[:12]
        path = base / f"layout-{layout}"
        path.mkdir(parents=True, exist_ok=True)
        if not (base / "key.json").is_file():
            _write_json(base / "key.json", asdict(key))
        run = StoreRun(path=path, key=key, ids=list(ids), shard_size=int(shard_size), n_seeds=int(n_seeds))
        if not (path / "index.json").is_file():
            run._write_index()
        return run

    def runs(self) -> list[dict[str, Any]]:
        """The keys of every run directory in the store (for inspection)."""
        out = []
        for p in sorted(self.root.glob("*/key.json")):
            out.append({"path": str(p.parent), **json.loads(p.read_text())})
        return out
