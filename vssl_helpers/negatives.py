"""The extended test set: a deterministic manifest of silence, noise and offscreen negatives.

The paper pairs every test image with three *negative* audios (silence, noise, offscreen), 10 times
with different seeds, "the same for every model". The reference code does not achieve that (its draws
depend on the DataLoader worker count and on each model's use of the torch RNG, audit D9), so this
module writes the draws down once, in a **manifest**, that every model reads.

For each sample and each seed index ``s`` in ``0 .. n_seeds-1`` the manifest has three rows:

* ``silence``: an all-zero waveform (:func:`silence_waveform`).
* ``noise``: N(0, 1) clipped to [-1, 1], generated on demand from the row's 64-bit ``noise_seed``
  by :func:`noise_waveform` (no audio is stored; any length, and a shorter request is a prefix of a
  longer one, so models with different input windows hear the same noise).
* ``offscreen``: another clip of the test set (the *pool*) whose broad category is none of the
  categories of the sample's sounding/visible sources (for IS3: neither source, nor the object tokens
  of the name; for a synthetic scene: none of its objects).

**Randomness is counter-based.** Everything drawn for ``(manifest_seed, s, sample id)`` comes from
the four 64-bit little-endian words of ``sha256("vssl-negatives/1/{manifest_seed}/{s}/{sample id}")``:
word 0 is the noise seed, words 1 and 2 choose the offscreen clip (an index into ``n`` choices is
``(word * n) >> 64``). Nothing depends on the process, the worker count, the batch size or the order
in which samples are visited, and the rule can be re-implemented in any language. The noise stream is
Philox4x64-10 keyed by the noise seed (counter 0), turned into normals by Box-Muller on 53-bit
uniforms; both are fixed algorithms, unlike numpy's ``Generator`` methods whose streams may change.

**Draw rule** (``draw_rule``):

* ``"category"`` (default): uniform over the allowed categories present in the pool, then uniform
  over that category's clips. This is what the paper's code does (audit D5) and it gives every
  allowed category the same share of offscreen sounds, so small categories (weapons, nature) are
  as well represented as animals or music.
* ``"file"``: uniform over all allowed clips (categories in proportion to their size).

**Noise bank** (opt-in, never the default): with ``noise_bank=K`` every seed index has a bank of K
noise clips shared by all samples, and a sample's noise row uses one of them, so an evaluation
encodes ``K × n_seeds`` noise clips instead of one per (sample, seed). Bank clip ``k`` of seed ``s``
has the noise seed word 0 of ``sha256("vssl-noise-bank/1/{manifest_seed}/{s}/{k}")``; a sample takes
clip ``uniform_index(word 3, K)`` of its :func:`draw_words` (word 3 is otherwise unused, so the
off-screen draws are those of the same manifest without a bank). A bank manifest records ``K`` in
its parameters and is written as format 2 (readers of format 1 refuse it instead of silently
drawing one clip per sample); a manifest without a bank is format 1, byte for byte as before, so its
hash is unchanged. :func:`with_noise_bank` turns any manifest (a shipped one too) into its bank twin.

The price of the default is reuse: on VGG-SS (10 seeds) the category rule draws some clips of the
small categories up to 226 times (the 37 nature clips carry 14 % of all offscreen pairs) and never
draws 60 clips, while the file rule draws no clip more than 26 times. Build with ``draw_rule="file"``
to study that sensitivity; the rule is recorded in the manifest and its hash.

**File format** (text, UTF-8; ``.xz``/``.gz`` suffixes are compressed): a header with the format
version, the content hash and the parameters (canonical JSON), then three sections: ``[items]`` (id,
image id, category of the sample's own audio, excluded categories, duration), ``[pool]`` (id,
category, duration; or the single line ``=items`` when the pool is the items' own audio) and
``[offscreen]`` (per item, its pool indices for seeds 0..n-1). Silence and noise rows are implied for
every (item, seed); noise seeds are derived, not stored. The **content hash** is the SHA-256 of the
canonical text without the hash line; :func:`load_manifest` re-serialises what it parsed, compares
the hash, and validates every draw (category constraint, indices), so a corrupted or edited file is
rejected with :class:`ManifestIntegrityError`. Items and pool are stored sorted by id, so the same
inputs in any order give the same file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .categories import BROAD_CATEGORIES, category_order, check_category

if TYPE_CHECKING:
    import pandas as pd

# A test-set sample as this module reads it (``id``, ``category``, ``meta``, ``audio``, ``sample_rate``:
# the fields of :class:`vssl_helpers.testsets.base.Sample`). Not imported from the test sets: the
# manifest depends on the TestSet protocol's items only, never on the loaders (no import cycle).
Sample = Any

__all__ = [
    "NEGATIVE_TYPES",
    "DrawRule",
    "DEFAULT_DRAW_RULE",
    "DEFAULT_MANIFEST_SEED",
    "DEFAULT_N_SEEDS",
    "FORMAT_VERSION",
    "RNG_SPEC",
    "NOISE_SPEC",
    "SHIPPED",
    "NegativeItem",
    "PoolClip",
    "NegativeRow",
    "ManifestError",
    "ManifestIntegrityError",
    "Manifest",
    "NegativesDataset",
    "NOISE_BANK_SPEC",
    "with_noise_bank",
    "draw_words",
    "noise_seed",
    "uniform_index",
    "noise_waveform",
    "silence_waveform",
    "items_from_samples",
    "pool_from_items",
    "pool_from_samples",
    "build_manifest",
    "manifest_for_samples",
    "loads_manifest",
    "load_manifest",
    "load_shipped_manifest",
    "verify_manifest",
    "check_manifest_for_testset",
]

NEGATIVE_TYPES: tuple[str, ...] = ("silence", "noise", "offscreen")
"""The three negative audio types, in the paper's order."""
DrawRule = Literal["category", "file"]
"""How an offscreen clip is drawn: uniform over categories then clips, or uniform over clips."""
DEFAULT_DRAW_RULE: DrawRule = "category"
"""The reference code's rule (audit D5); see the module docstring."""
DEFAULT_MANIFEST_SEED = 2025
"""Manifest seed of the shipped manifests."""
DEFAULT_N_SEEDS = 10
"""Seeds per sample (the paper repeats its negatives 10 times)."""
FORMAT_VERSION = 1
"""Version of the manifest file format."""
RNG_SPEC = "sha256-counter/1: words of sha256('vssl-negatives/1/{manifest_seed}/{seed_index}/{sample_id}'), index=(w*n)>>64"
"""Recorded in every manifest; names the draw algorithm."""
NOISE_SPEC = "philox4x64-10(key=noise_seed,counter=0) box-muller(53-bit) N(0,1) clip[-1,1] float32 /1"
"""Recorded in every manifest; names the noise algorithm of :func:`noise_waveform`."""
NOISE_BANK_SPEC = "noise-bank/1: clip k of seed s: noise seed = word 0 of sha256('vssl-noise-bank/1/{manifest_seed}/{s}/{k}'); sample's clip = (word 3 * K) >> 64"
"""Recorded in a noise-bank manifest; names how bank clips are seeded and assigned."""
BANK_FORMAT_VERSION = 2
"""File format of a noise-bank manifest (format 1 plus the ``noise_bank`` parameter)."""
SHIPPED: dict[str, str] = {"vggss": "manifests/vggss_negatives.txt.xz", "is3": "manifests/is3_negatives.txt.xz"}
"""Shipped manifests, inside ``vssl_helpers/data``."""

_MAGIC = "# vssl-negatives manifest"
_U64 = (1 << 64) - 1


class ManifestError(ValueError):
    """Invalid manifest inputs or file contents."""


class ManifestIntegrityError(ManifestError):
    """A manifest file whose content hash or draws do not check out (corrupted or edited)."""


# --------------------------------------------------------------------------------------------------
# Records


def _check_text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "\t\n\r"):
        raise ManifestError(f"{what}: {value!r} must be a non-empty string without tabs or newlines")
    return value


@dataclass(frozen=True)
class NegativeItem:
    """A test sample as the manifest sees it.

    Attributes:
        id: the sample id (unique in the test set).
        exclude: broad categories an offscreen clip must not have: every sounding (and, where known,
            visible) source of the image.
        audio_category: broad category of the sample's own (positive) audio, if known; needed when the
            pool is built from the items themselves and for statistics.
        image_id: key of the image when several samples share one (IS3: the two entries of an image);
            ``None``: the sample's own id.
        duration: seconds of positive audio, if known.
    """

    id: str
    exclude: tuple[str, ...]
    audio_category: str | None = None
    image_id: str | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        _check_text(self.id, "item id")
        if not self.exclude:
            raise ManifestError(f"item {self.id!r}: no excluded category (its own category at least is needed)")
        object.__setattr__(self, "exclude", category_order(self.exclude))
        if self.audio_category is not None:
            check_category(self.audio_category, f"item {self.id!r} audio_category")
        if self.image_id is not None:
            _check_text(self.image_id, f"item {self.id!r} image_id")
        if self.duration is not None and not (np.isfinite(self.duration) and self.duration >= 0):
            raise ManifestError(f"item {self.id!r}: duration {self.duration!r} must be a finite number >= 0")


@dataclass(frozen=True)
class PoolClip:
    """A clip that can be drawn as offscreen audio: its id, broad category and duration (seconds)."""

    id: str
    category: str
    duration: float | None = None

    def __post_init__(self) -> None:
        _check_text(self.id, "pool clip id")
        check_category(self.category, f"pool clip {self.id!r} category")


@dataclass(frozen=True)
class NegativeRow:
    """One row of the extended test set.

    ``offscreen_id``/``offscreen_category`` are set for ``offscreen`` rows only, ``noise_seed`` for
    ``noise`` rows only.
    """

    sample_id: str
    seed_index: int
    negative_type: str
    offscreen_id: str | None
    offscreen_category: str | None
    noise_seed: int | None


# --------------------------------------------------------------------------------------------------
# Counter-based randomness


def draw_words(manifest_seed: int, seed_index: int, sample_id: str) -> tuple[int, int, int, int]:
    """The four 64-bit words drawn for ``(manifest_seed, seed_index, sample_id)``.

    ``sha256(f"vssl-negatives/1/{manifest_seed}/{seed_index}/{sample_id}")`` read as four little-endian
    unsigned 64-bit integers. Word 0 is the noise seed, words 1 and 2 choose the offscreen clip.
    """
    d = hashlib.sha256(f"vssl-negatives/1/{int(manifest_seed)}/{int(seed_index)}/{sample_id}".encode()).digest()
    return tuple(int.from_bytes(d[i:i + 8], "little") for i in (0, 8, 16, 24))  # type: ignore[return-value]


def noise_seed(manifest_seed: int, seed_index: int, sample_id: str) -> int:
    """The 64-bit noise seed of ``(manifest_seed, seed_index, sample_id)`` (word 0 of :func:`draw_words`)."""
    return draw_words(manifest_seed, seed_index, sample_id)[0]


def _noise_seed_table(manifest_seed: int, ids: Sequence[str], n_seeds: int) -> np.ndarray:
    """``len(ids) × n_seeds`` uint64 noise seeds (word 0 of :func:`draw_words`), computed in bulk."""
    sha = hashlib.sha256
    prefix = f"vssl-negatives/1/{int(manifest_seed)}/"
    buf = b"".join(
        sha(f"{prefix}{s}/{sid}".encode()).digest()[:8] for sid in ids for s in range(n_seeds)
    )
    return np.frombuffer(buf, dtype="<u8").astype(np.uint64).reshape(len(ids), n_seeds)


def _noise_bank_tables(manifest_seed: int, ids: Sequence[str], n_seeds: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A noise bank: ``n_seeds × k`` uint64 clip seeds and ``len(ids) × n_seeds`` clip indices (see the
    module docstring; the index is ``uniform_index(word 3, k)`` of :func:`draw_words`)."""
    sha = hashlib.sha256
    bank = np.array(
        [[int.from_bytes(sha(f"vssl-noise-bank/1/{int(manifest_seed)}/{s}/{j}".encode()).digest()[:8], "little")
          for j in range(k)] for s in range(n_seeds)], dtype=np.uint64,
    ).reshape(n_seeds, k)
    assign = np.array(
        [[uniform_index(draw_words(manifest_seed, s, sid)[3], k) for s in range(n_seeds)] for sid in ids], dtype=np.int64,
    ).reshape(len(ids), n_seeds)
    return bank, assign


def _check_noise_bank(k: Any, where: str = "noise_bank") -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < 1:
        raise ManifestError(f"{where}: expected a positive integer (noise clips per seed) or None, got {k!r}")
    return int(k)


def uniform_index(word: int, n: int) -> int:
    """Map a 64-bit word to ``[0, n)``: ``(word * n) >> 64`` (bias below ``n / 2**64``)."""
    if n <= 0:
        raise ValueError(f"uniform_index: n must be positive, got {n}")
    return (int(word) * int(n)) >> 64


def noise_waveform(noise_seed: int, n_samples: int, clip: bool = True) -> np.ndarray:
    """The noise negative: ``n_samples`` of N(0, 1) clipped to [-1, 1], float32, from a 64-bit seed.
    ``clip=False``: the same draws unclipped, as the paper code's loaders (audit D1; compatibility mode).

    Philox4x64-10 with ``key=noise_seed`` and counter 0 gives one 64-bit word per sample; pairs of
    words become two normals by Box-Muller on 53-bit uniforms (``u1`` in (0, 1], ``u2`` in [0, 1)).
    Identical across calls, processes and platforms (up to the last bit of ``log``/``cos`` before the
    float32 rounding), and ``noise_waveform(k, n)`` is a prefix of ``noise_waveform(k, m)`` for n < m.
    """
    if not 0 <= int(noise_seed) <= _U64:
        raise ValueError(f"noise_seed must be an unsigned 64-bit integer, got {noise_seed}")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    m = int(n_samples) + (int(n_samples) & 1)
    if m == 0:
        return np.zeros(0, dtype=np.float32)
    raw = np.random.Philox(key=int(noise_seed)).random_raw(m)
    u1 = ((raw[0::2] >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53
    u2 = (raw[1::2] >> np.uint64(11)).astype(np.float64) * 2.0**-53
    r = np.sqrt(-2.0 * np.log(u1))
    theta = 2.0 * np.pi * u2
    out = np.empty(m, dtype=np.float64)
    out[0::2] = r * np.cos(theta)
    out[1::2] = r * np.sin(theta)
    out = out[:n_samples]
    return (np.clip(out, -1.0, 1.0) if clip else out).astype(np.float32)


def silence_waveform(n_samples: int) -> np.ndarray:
    """The silence negative: ``n_samples`` zeros (float32)."""
    return np.zeros(int(n_samples), dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# Items and pools from samples


def _sample_exclude(s: "Sample") -> tuple[str, ...]:
    cats = [s.category] if isinstance(s.category, str) else list(s.category)
    cats += list(s.meta.get("visible_categories", ()))
    return category_order(set(cats))


def _sample_audio_category(s: "Sample") -> str | None:
    c = s.meta.get("audio_category")
    if c is None and isinstance(s.category, str):
        c = s.category
    return c


def _sample_duration(s: "Sample") -> float | None:
    d = s.meta.get("duration")
    if d is None and isinstance(s.audio, np.ndarray) and s.sample_rate > 0:
        d = len(s.audio) / s.sample_rate
    return None if d is None else float(d)


def items_from_samples(samples: Iterable["Sample"]) -> list[NegativeItem]:
    """Describe samples for a manifest: id, excluded categories, own audio category, image id, duration.

    Excluded: ``category`` (a string or every element of a tuple) plus ``meta["visible_categories"]``.
    Own audio category: ``meta["audio_category"]``, else ``category`` when it is a string. Image id:
    ``meta["image_id"]`` (real sets) or ``"image-<meta['image_index']>"`` (synthetic sets), when it differs
    from the id. Duration: ``meta["duration"]``, else the length of an in-memory waveform.
    """
    out = []
    for s in samples:
        img = s.meta.get("image_id")
        if img is None and s.meta.get("image_index") is not None:  # synthetic sets
            img = f"image-{int(s.meta['image_index'])}"
        out.append(
            NegativeItem(
                id=s.id, exclude=_sample_exclude(s), audio_category=_sample_audio_category(s),
                image_id=None if img in (None, s.id) else str(img), duration=_sample_duration(s),
            )
        )
    return out


def pool_from_items(items: Iterable[NegativeItem]) -> list[PoolClip]:
    """The items' own audio as an offscreen pool (every item needs an ``audio_category``)."""
    out = []
    for it in items:
        if it.audio_category is None:
            raise ManifestError(
                f"item {it.id!r} has no audio_category, so its audio cannot join the offscreen pool; pass a pool"
            )
        out.append(PoolClip(it.id, it.audio_category, it.duration))
    return out


def pool_from_samples(samples: Iterable["Sample"]) -> list[PoolClip]:
    """The samples' own audio as an offscreen pool (see :func:`items_from_samples` for the category)."""
    return pool_from_items(items_from_samples(samples))


# --------------------------------------------------------------------------------------------------
# Drawing


class _OffscreenSampler:
    """Allowed candidates per exclusion set, precomputed once; draws are pure functions of the words."""

    def __init__(self, pool: Sequence[PoolClip], draw_rule: DrawRule) -> None:
        if draw_rule not in ("category", "file"):
            raise ManifestError(f"draw_rule: expected 'category' or 'file', got {draw_rule!r}")
        self.rule = draw_rule
        self.by_cat: dict[str, list[int]] = {c: [] for c in BROAD_CATEGORIES}
        for k, clip in enumerate(pool):  # pool is sorted by id, so each list is too
            self.by_cat[clip.category].append(k)
        self._cache: dict[tuple[str, ...], tuple[list[str], list[int]]] = {}

    def candidates(self, exclude: tuple[str, ...]) -> tuple[list[str], list[int]]:
        """Allowed categories (paper order, present in the pool) and allowed pool indices (sorted)."""
        got = self._cache.get(exclude)
        if got is None:
            cats = [c for c in BROAD_CATEGORIES if c not in exclude and self.by_cat[c]]
            files = sorted(k for c in cats for k in self.by_cat[c])
            got = self._cache[exclude] = (cats, files)
        return got

    def draw(self, item: NegativeItem, w1: int, w2: int) -> int:
        """Pool index drawn for ``item`` from words 1 and 2 of its key."""
        cats, files = self.candidates(item.exclude)
        if not files:
            raise ManifestError(
                f"item {item.id!r}: the offscreen pool has no clip outside its categories {list(item.exclude)}"
            )
        if self.rule == "category":
            members = self.by_cat[cats[uniform_index(w1, len(cats))]]
            return members[uniform_index(w2, len(members))]
        return files[uniform_index(w1, len(files))]


class NegativesDataset:
    """Map-style dataset (usable with ``torch.utils.data.DataLoader``) of the offscreen draws per item.

    ``ds[i]`` is ``(i, [pool index for seed 0, ..., seed n_seeds-1])`` for ``items[i]``. It is what
    :func:`build_manifest` iterates when ``num_workers > 0``; the draws are pure functions of
    ``(manifest_seed, seed index, item id)``, so any worker count, batch size or order gives the same
    result.
    """

    def __init__(
        self, items: Sequence[NegativeItem], pool: Sequence[PoolClip], manifest_seed: int, n_seeds: int,
        draw_rule: DrawRule,
    ) -> None:
        self.items = list(items)
        self.pool = sorted(pool, key=lambda c: c.id)
        self.manifest_seed = int(manifest_seed)
        self.n_seeds = int(n_seeds)
        self.sampler = _OffscreenSampler(self.pool, draw_rule)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, list[int]]:
        it = self.items[i]
        out = []
        for s in range(self.n_seeds):
            _, w1, w2, _ = draw_words(self.manifest_seed, s, it.id)
            out.append(self.sampler.draw(it, w1, w2))
        return i, out


def _collate_list(batch: list) -> list:
    return batch


# --------------------------------------------------------------------------------------------------
# The manifest


def _fmt_float(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def _parse_float(s: str, where: str) -> float | None:
    if s == "":
        return None
    try:
        return float(s)
    except ValueError:
        raise ManifestError(f"{where}: {s!r} is not a number") from None


@dataclass
class Manifest:
    """An extended test set: items, offscreen pool, and the offscreen draws for each (item, seed).

    Use :func:`build_manifest` or :func:`load_manifest` to make one. ``items`` and ``pool`` are sorted
    by id; ``offscreen[i, s]`` is the pool index drawn for ``items[i]`` at seed index ``s``;
    ``noise_seeds[i, s]`` is the noise seed (derived from the id, not stored in the file). With a
    noise bank (:attr:`noise_bank` ``= K``), ``noise_bank_seeds[s, k]`` are the bank's clip seeds,
    ``noise_assign[i, s]`` the clip each item hears, and ``noise_seeds[i, s] =
    noise_bank_seeds[s, noise_assign[i, s]]``; without one both are ``None``.
    """

    params: dict[str, Any]
    items: tuple[NegativeItem, ...]
    pool: tuple[PoolClip, ...]
    offscreen: np.ndarray
    noise_seeds: np.ndarray = field(init=False, repr=False)
    noise_bank_seeds: np.ndarray | None = field(init=False, repr=False, default=None)
    noise_assign: np.ndarray | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.items = tuple(self.items)
        self.pool = tuple(self.pool)
        self.offscreen = np.asarray(self.offscreen, dtype=np.int64).reshape(len(self.items), self.n_seeds)
        ids = [it.id for it in self.items]
        if ids != sorted(ids) or len(set(ids)) != len(ids):
            raise ManifestError("manifest items must be unique and sorted by id")
        pids = [c.id for c in self.pool]
        if pids != sorted(pids) or len(set(pids)) != len(pids):
            raise ManifestError("manifest pool clips must be unique and sorted by id")
        self._index = {sid: i for i, sid in enumerate(ids)}
        k = _check_noise_bank(self.params.get("noise_bank"), "manifest params noise_bank")
        if k is None:
            self.noise_seeds = _noise_seed_table(self.manifest_seed, ids, self.n_seeds)
            self.noise_bank_seeds, self.noise_assign = None, None
        else:
            self.noise_bank_seeds, self.noise_assign = _noise_bank_tables(self.manifest_seed, ids, self.n_seeds, k)
            self.noise_seeds = self.noise_bank_seeds[np.arange(self.n_seeds)[None, :], self.noise_assign]
        self._sha: str | None = None

    # -- parameters
    @property
    def name(self) -> str:
        """Test-set name recorded in the parameters."""
        return str(self.params.get("name", ""))

    @property
    def manifest_seed(self) -> int:
        """The manifest seed."""
        return int(self.params["manifest_seed"])

    @property
    def n_seeds(self) -> int:
        """Seeds per item."""
        return int(self.params["n_seeds"])

    @property
    def noise_bank(self) -> int | None:
        """Noise clips per seed shared by every sample (opt-in), or ``None``: one clip per (sample, seed)."""
        k = self.params.get("noise_bank")
        return None if k is None else int(k)

    @property
    def draw_rule(self) -> str:
        """The offscreen draw rule (``"category"`` or ``"file"``)."""
        return str(self.params["draw_rule"])

    @property
    def ids(self) -> list[str]:
        """Item ids (sorted)."""
        return [it.id for it in self.items]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def pool_is_items(self) -> bool:
        """True if the pool is exactly the items' own audio (stored as ``=items``)."""
        if len(self.pool) != len(self.items):
            return False
        try:
            return tuple(pool_from_items(self.items)) == self.pool
        except ManifestError:
            return False

    # -- lookups
    def index(self, sample_id: str) -> int:
        """Row of a sample id in :attr:`items` (``KeyError`` naming the id if absent)."""
        try:
            return self._index[sample_id]
        except KeyError:
            raise KeyError(f"manifest {self.name!r}: no item {sample_id!r}") from None

    def offscreen_clip(self, sample_id: str, seed_index: int) -> PoolClip:
        """The offscreen clip drawn for a sample at a seed index."""
        return self.pool[int(self.offscreen[self.index(sample_id), self._seed(seed_index)])]

    def noise_seed(self, sample_id: str, seed_index: int) -> int:
        """The noise seed of a sample at a seed index."""
        return int(self.noise_seeds[self.index(sample_id), self._seed(seed_index)])

    def noise(self, sample_id: str, seed_index: int, n_samples: int) -> np.ndarray:
        """The noise waveform of a sample at a seed index (:func:`noise_waveform`)."""
        return noise_waveform(self.noise_seed(sample_id, seed_index), n_samples)

    def _seed(self, s: int) -> int:
        if not 0 <= int(s) < self.n_seeds:
            raise IndexError(f"seed index {s} outside 0..{self.n_seeds - 1}")
        return int(s)

    # -- rows
    def rows(self) -> Iterator[NegativeRow]:
        """All rows, sorted by (sample id, seed index, type in :data:`NEGATIVE_TYPES` order)."""
        for i, it in enumerate(self.items):
            for s in range(self.n_seeds):
                clip = self.pool[int(self.offscreen[i, s])]
                yield NegativeRow(it.id, s, "silence", None, None, None)
                yield NegativeRow(it.id, s, "noise", None, None, int(self.noise_seeds[i, s]))
                yield NegativeRow(it.id, s, "offscreen", clip.id, clip.category, None)

    def to_frame(self) -> "pd.DataFrame":
        """The rows as a DataFrame, in :meth:`rows` order.

        Columns: ``sample_id``, ``seed_index``, ``negative_type`` and ``offscreen_id``,
        ``offscreen_category`` (pandas ``string`` dtype, ``<NA>`` except on offscreen rows) and
        ``noise_seed`` (nullable ``UInt64``, ``<NA>`` except on noise rows).
        """
        import pandas as pd

        n, s = self.offscreen.shape
        k = n * s * 3
        pool_ids = np.array([c.id for c in self.pool], dtype=object)
        pool_cats = np.array([c.category for c in self.pool], dtype=object)
        off_id = np.full(k, None, dtype=object)
        off_cat = np.full(k, None, dtype=object)
        flat = self.offscreen.reshape(-1)
        off_id[2::3] = pool_ids[flat]
        off_cat[2::3] = pool_cats[flat]
        nz = pd.array(np.zeros(k, dtype=np.uint64), dtype="UInt64")
        nz[1::3] = self.noise_seeds.reshape(-1)
        nz[0::3] = pd.NA
        nz[2::3] = pd.NA
        return pd.DataFrame(
            {
                "sample_id": pd.array(np.repeat(np.array(self.ids, dtype=object), s * 3), dtype="string"),
                "seed_index": np.tile(np.repeat(np.arange(s), 3), n),
                "negative_type": pd.array(np.tile(np.array(NEGATIVE_TYPES, dtype=object), n * s), dtype="string"),
                "offscreen_id": pd.array(off_id, dtype="string"),
                "offscreen_category": pd.array(off_cat, dtype="string"),
                "noise_seed": nz,
            }
        )

    # -- integrity
    def validate(self) -> None:
        """Check every draw: index in range and offscreen category outside the item's exclusions.

        Raises :class:`ManifestIntegrityError` naming the first offending item and seed.
        """
        if self.offscreen.size and (self.offscreen.min() < 0 or self.offscreen.max() >= len(self.pool)):
            i, s = np.argwhere((self.offscreen < 0) | (self.offscreen >= len(self.pool)))[0]
            raise ManifestIntegrityError(
                f"manifest {self.name!r}: item {self.items[i].id!r} seed {s}: pool index {self.offscreen[i, s]} "
                f"outside 0..{len(self.pool) - 1}"
            )
        cat_code = {c: k for k, c in enumerate(BROAD_CATEGORIES)}
        pool_codes = np.array([cat_code[c.category] for c in self.pool], dtype=np.int64)
        excl = np.zeros((len(self.items), len(BROAD_CATEGORIES)), dtype=bool)
        for i, it in enumerate(self.items):
            excl[i, [cat_code[c] for c in it.exclude]] = True
        drawn = pool_codes[self.offscreen] if self.offscreen.size else self.offscreen
        bad = np.take_along_axis(excl, drawn, axis=1) if self.offscreen.size else np.zeros((0, 0), bool)
        if bad.any():
            i, s = np.argwhere(bad)[0]
            clip = self.pool[self.offscreen[i, s]]
            raise ManifestIntegrityError(
                f"manifest {self.name!r}: item {self.items[i].id!r} seed {s}: offscreen clip {clip.id!r} is "
                f"{clip.category!r}, one of the item's excluded categories {list(self.items[i].exclude)}"
            )

    # -- serialisation
    def _body(self) -> str:
        version = FORMAT_VERSION if self.noise_bank is None else BANK_FORMAT_VERSION
        lines = [_MAGIC, f"# format: {version}", "# params: " + json.dumps(self.params, sort_keys=True, separators=(",", ":"))]
        lines.append("[items]\tid\timage_id\taudio_category\texclude\tduration")
        for it in self.items:
            lines.append(
                f"{it.id}\t{it.image_id or ''}\t{it.audio_category or ''}\t{'|'.join(it.exclude)}\t{_fmt_float(it.duration)}"
            )
        lines.append("[pool]\tid\tcategory\tduration")
        if self.pool_is_items:
            lines.append("=items")
        else:
            lines.extend(f"{c.id}\t{c.category}\t{_fmt_float(c.duration)}" for c in self.pool)
        lines.append("[offscreen]\t" + "\t".join(f"seed{s}" for s in range(self.n_seeds)))
        lines.extend("\t".join(map(str, row)) for row in self.offscreen.tolist())
        return "\n".join(lines) + "\n"

    @property
    def sha256(self) -> str:
        """Content hash: SHA-256 of the canonical text without the hash line (record it with results)."""
        if self._sha is None:
            self._sha = hashlib.sha256(self._body().encode("utf-8")).hexdigest()
        return self._sha

    def dumps(self) -> str:
        """The canonical file text, with the content-hash line."""
        body = self._body()
        first, rest = body.split("\n", 1)
        return f"{first}\n# sha256: {self.sha256}\n{rest}"

    def save(self, path: str | Path) -> Path:
        """Write the manifest (``.xz``/``.gz`` suffix: compressed; the bytes are deterministic)."""
        p = Path(path)
        data = self.dumps().encode("utf-8")
        if p.suffix == ".xz":
            data = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
        elif p.suffix == ".gz":
            data = gzip.compress(data, compresslevel=9, mtime=0)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(p)
        return p

    def summary(self) -> str:
        """One line: name, items, pool, seeds, rule, hash."""
        return (
            f"manifest {self.name!r}: {len(self.items)} items x {self.n_seeds} seeds x 3 types = "
            f"{len(self.items) * self.n_seeds * 3} rows; pool {len(self.pool)} clips; draw rule "
            f"{self.draw_rule!r}; seed {self.manifest_seed}"
            + ("" if self.noise_bank is None else f"; noise bank {self.noise_bank} clips per seed")
            + f"; sha256 {self.sha256}"
        )


def build_manifest(
    items: Iterable[NegativeItem],
    pool: Iterable[PoolClip] | None = None,
    *,
    manifest_seed: int = DEFAULT_MANIFEST_SEED,
    n_seeds: int = DEFAULT_N_SEEDS,
    draw_rule: DrawRule = DEFAULT_DRAW_RULE,
    name: str = "",
    source: Mapping[str, str] | None = None,
    num_workers: int = 0,
    batch_size: int = 256,
    noise_bank: int | None = None,
) -> Manifest:
    """Draw the negatives of a test set.

    Args:
        items: the samples (see :func:`items_from_samples`); ids must be unique.
        pool: offscreen candidates; ``None``: the items' own audio (:func:`pool_from_items`).
        manifest_seed: the seed of the whole manifest.
        n_seeds: seed indices per item (0 .. n_seeds-1).
        draw_rule: ``"category"`` (default, as the paper's code) or ``"file"``.
        name: test-set name recorded in the parameters.
        source: provenance recorded in the parameters (no local paths, or the hash depends on them).
        num_workers: ``> 0`` draws through a ``torch.utils.data.DataLoader`` with that many workers
            (the result is identical; this exists to show and test that).
        batch_size: DataLoader batch size when ``num_workers > 0``.
        noise_bank: ``None`` (default): one noise clip per (item, seed), as the paper; ``K``: a bank of
            K clips per seed shared by every item (opt-in; see the module docstring).

    Returns:
        The :class:`Manifest`, validated.
    """
    items_l = sorted(items, key=lambda it: it.id)
    ids = [it.id for it in items_l]
    if len(set(ids)) != len(ids):
        dups = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ManifestError(f"duplicate item ids, e.g. {dups}")
    pool_l = sorted(pool_from_items(items_l) if pool is None else pool, key=lambda c: c.id)
    pids = [c.id for c in pool_l]
    if len(set(pids)) != len(pids):
        raise ManifestError("duplicate pool clip ids")
    if not pool_l:
        raise ManifestError("the offscreen pool is empty")
    if n_seeds < 1:
        raise ManifestError(f"n_seeds must be >= 1, got {n_seeds}")
    ds = NegativesDataset(items_l, pool_l, manifest_seed, n_seeds, draw_rule)
    off = np.empty((len(items_l), n_seeds), dtype=np.int64)
    if num_workers > 0:
        from torch.utils.data import DataLoader

        loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_collate_list)
        for batch in loader:
            for i, draws in batch:
                off[i] = draws
    else:
        for i in range(len(ds)):
            off[i] = ds[i][1]
    params: dict[str, Any] = {
        "name": name,
        "manifest_seed": int(manifest_seed),
        "n_seeds": int(n_seeds),
        "draw_rule": draw_rule,
        "rng": RNG_SPEC,
        "noise": NOISE_SPEC,
        "negative_types": list(NEGATIVE_TYPES),
    }
    if source:
        params["source"] = dict(source)
    k = _check_noise_bank(noise_bank)
    if k is not None:  # absent otherwise: manifests without a bank keep their text and hash
        params["noise_bank"] = k
        params["noise_bank_spec"] = NOISE_BANK_SPEC
    m = Manifest(params=params, items=tuple(items_l), pool=tuple(pool_l), offscreen=off)
    m.validate()
    return m


def manifest_for_samples(
    samples: Iterable["Sample"], *, name: str = "", pool_samples: Iterable["Sample"] | None = None, **kwargs: Any
) -> Manifest:
    """:func:`build_manifest` for a list of :class:`~vssl_helpers.testsets.base.Sample` records.

    The pool is the samples' own audio unless ``pool_samples`` is given (e.g. a separate clip bank).
    """
    items = items_from_samples(samples)
    pool = None if pool_samples is None else pool_from_samples(pool_samples)
    return build_manifest(items, pool, name=name, **kwargs)


# --------------------------------------------------------------------------------------------------
# Reading


def _read_text(data: bytes, where: str) -> str:
    try:
        if data[:6] == b"\xfd7zXZ\x00":
            data = lzma.decompress(data)
        elif data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except (lzma.LZMAError, OSError, EOFError, UnicodeDecodeError) as e:
        raise ManifestIntegrityError(f"{where}: cannot be decompressed/decoded ({e}); the file is corrupted") from None


def loads_manifest(text: str, where: str = "<string>", expected_sha256: str | None = None) -> Manifest:
    """Parse manifest text (see the module docstring), check its hash and validate it."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 5 or lines[0] != _MAGIC:
        raise ManifestError(f"{where}: not a vssl negatives manifest (first line should be {_MAGIC!r})")
    if not lines[1].startswith("# sha256: "):
        raise ManifestError(f"{where}: line 2 should be '# sha256: <hex>'")
    stored = lines[1][len("# sha256: "):].strip()
    if lines[2] not in (f"# format: {FORMAT_VERSION}", f"# format: {BANK_FORMAT_VERSION}"):
        raise ManifestError(
            f"{where}: line 3 is {lines[2]!r}; this reader understands '# format: {FORMAT_VERSION}' "
            f"(and '# format: {BANK_FORMAT_VERSION}' for a noise-bank manifest)"
        )
    if not lines[3].startswith("# params: "):
        raise ManifestError(f"{where}: line 4 should be '# params: {{...}}'")
    version = int(lines[2][len("# format: "):])
    try:
        params = json.loads(lines[3][len("# params: "):])
        n_seeds = int(params["n_seeds"])
        int(params["manifest_seed"])
        bank = _check_noise_bank(params.get("noise_bank"), f"{where}: params noise_bank")
    except ManifestError as e:
        raise ManifestIntegrityError(str(e)) from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ManifestIntegrityError(f"{where}: unreadable params line ({e})") from None
    if (bank is not None) != (version == BANK_FORMAT_VERSION):
        raise ManifestIntegrityError(
            f"{where}: format {version} with noise_bank={bank!r}; a noise bank is format {BANK_FORMAT_VERSION}, "
            f"a manifest without one format {FORMAT_VERSION}"
        )
    try:
        k_items = lines.index("[items]\tid\timage_id\taudio_category\texclude\tduration")
        k_pool = lines.index("[pool]\tid\tcategory\tduration")
        k_off = next(k for k, ln in enumerate(lines) if ln.startswith("[offscreen]"))
    except (ValueError, StopIteration):
        raise ManifestIntegrityError(f"{where}: missing [items], [pool] or [offscreen] section") from None
    if not k_items < k_pool < k_off:
        raise ManifestIntegrityError(f"{where}: sections out of order")
    try:
        items = []
        for k in range(k_items + 1, k_pool):
            f = lines[k].split("\t")
            if len(f) != 5:
                raise ManifestIntegrityError(f"{where} line {k + 1}: expected 5 tab-separated fields in [items]")
            items.append(
                NegativeItem(f[0], tuple(c for c in f[3].split("|") if c), f[2] or None, f[1] or None,
                             _parse_float(f[4], f"{where} line {k + 1}"))
            )
        pool_lines = lines[k_pool + 1:k_off]
        if pool_lines == ["=items"]:
            pool = pool_from_items(items)
        else:
            pool = []
            for j, ln in enumerate(pool_lines):
                f = ln.split("\t")
                if len(f) != 3:
                    raise ManifestIntegrityError(f"{where} line {k_pool + 2 + j}: expected 3 tab-separated fields in [pool]")
                pool.append(PoolClip(f[0], f[1], _parse_float(f[2], f"{where} line {k_pool + 2 + j}")))
        off_lines = lines[k_off + 1:]
        if len(off_lines) != len(items):
            raise ManifestIntegrityError(f"{where}: [offscreen] has {len(off_lines)} lines for {len(items)} items")
        off = np.array([[int(v) for v in ln.split("\t")] for ln in off_lines], dtype=np.int64).reshape(len(items), -1)
        if off.shape[1] != n_seeds:
            raise ManifestIntegrityError(f"{where}: [offscreen] has {off.shape[1]} columns, params say n_seeds={n_seeds}")
        m = Manifest(params=params, items=tuple(items), pool=tuple(pool), offscreen=off)
    except ManifestIntegrityError:
        raise
    except (ManifestError, ValueError) as e:  # CategoryError is a ValueError too
        raise ManifestIntegrityError(f"{where}: invalid content ({e})") from None
    if m.sha256 != stored:
        raise ManifestIntegrityError(
            f"{where}: content hash {m.sha256} does not match the header's {stored}; the file was edited or corrupted"
        )
    if expected_sha256 is not None and m.sha256 != expected_sha256:
        raise ManifestIntegrityError(f"{where}: content hash {m.sha256}, expected {expected_sha256}")
    m.validate()
    return m


def load_manifest(path: str | Path, *, expected_sha256: str | None = None) -> Manifest:
    """Read a manifest file (plain, ``.xz`` or ``.gz``), check its content hash and validate every draw.

    Raises :class:`ManifestIntegrityError` naming the file if it is corrupted, edited, or does not have
    ``expected_sha256``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"manifest file not found: {p}")
    return loads_manifest(_read_text(p.read_bytes(), str(p)), str(p), expected_sha256)


def load_shipped_manifest(name: str) -> Manifest:
    """A shipped manifest: ``"vggss"`` or ``"is3"`` (``vssl_helpers/data/manifests/``)."""
    if name not in SHIPPED:
        raise KeyError(f"no shipped manifest {name!r}; available: {sorted(SHIPPED)}")
    res = resources.files("vssl_helpers.data").joinpath(SHIPPED[name])
    where = f"vssl_helpers/data/{SHIPPED[name]}"
    return loads_manifest(_read_text(res.read_bytes(), where), where)


def verify_manifest(manifest: Manifest) -> None:
    """Redraw a manifest from its own items, pool and parameters and compare every draw.

    Catches a file whose draws were edited and whose hash was then recomputed, or a change of the
    draw algorithm. Raises :class:`ManifestIntegrityError` naming the first differing item and seed.
    """
    again = build_manifest(
        manifest.items, manifest.pool, manifest_seed=manifest.manifest_seed, n_seeds=manifest.n_seeds,
        draw_rule=manifest.draw_rule,  # type: ignore[arg-type]
        noise_bank=manifest.noise_bank,
    )
    diff = np.argwhere(again.offscreen != manifest.offscreen)
    if len(diff):
        i, s = diff[0]
        raise ManifestIntegrityError(
            f"manifest {manifest.name!r}: {len(diff)} draws differ from a fresh draw; first: item "
            f"{manifest.items[i].id!r} seed {s} has pool index {manifest.offscreen[i, s]}, expected {again.offscreen[i, s]}"
        )


def with_noise_bank(manifest: Manifest, k: int | None) -> Manifest:
    """The same extended test set with a noise bank of ``k`` clips per seed (``None``: without one).

    Items, pool, off-screen draws and the other parameters are kept (the off-screen draws do not
    depend on the bank); the noise rows use the bank (see the module docstring), and the parameters,
    hence the content hash, record ``k``. Opt-in: never applied by default.
    """
    k = _check_noise_bank(k, "noise_bank")
    params = {key: v for key, v in manifest.params.items() if key not in ("noise_bank", "noise_bank_spec")}
    if k is not None:
        params["noise_bank"] = k
        params["noise_bank_spec"] = NOISE_BANK_SPEC
    m = Manifest(params=params, items=manifest.items, pool=manifest.pool, offscreen=manifest.offscreen.copy())
    m.validate()
    return m


def check_manifest_for_testset(manifest: Manifest, testset: Any, where: str = "manifest") -> None:
    """Check that a (user-supplied) manifest belongs to a test set before any map is computed.

    :func:`load_manifest` already checked the file (content hash, structure, every draw against the
    manifest's own records). This checks the records against the test set's items (``testset``: a
    :class:`~vssl_helpers.testsets.base.TestSet`, whose ``manifest_items()`` are read, or a list of
    :class:`NegativeItem`):

    * every item and every off-screen pool clip is a sample of the set (the engine reads the pool's
      audio from the set);
    * a pool clip's category is the broad category of that sample's own audio in the set;
    * every drawn off-screen clip has a category outside the *set's* sounding/visible categories of
      its item (the manifest's own ``exclude`` lists may have been written for other data).

    The negative types need no check: a manifest file holds silence, noise and off-screen rows by
    construction (its format has no other type).

    Raises:
        ManifestError: naming ``where``, the count of offending records and the first few.
    """
    items = testset if isinstance(testset, (list, tuple)) else testset.manifest_items()
    truth = {it.id: it for it in items}

    def fail(what: str, bad: Sequence[str], expected: str) -> None:
        raise ManifestError(
            f"{where}: {len(bad)} {what} (e.g. {', '.join(map(repr, bad[:3]))}); {expected}"
        )

    missing = [sid for sid in manifest.ids if sid not in truth]
    if missing:
        fail(f"of its {len(manifest)} items are not samples of this test set", missing,
             "expected a manifest drawn for this test set (same sample ids)")
    pool_missing = [c.id for c in manifest.pool if c.id not in truth]
    if pool_missing:
        fail(f"of its {len(manifest.pool)} off-screen pool clips are not samples of this test set", pool_missing,
             "the off-screen audio is read from the test set's own clips")
    wrong_cat = [c.id for c in manifest.pool
                 if truth[c.id].audio_category is not None and truth[c.id].audio_category != c.category]
    if wrong_cat:
        c = manifest.pool[[x.id for x in manifest.pool].index(wrong_cat[0])]
        fail("pool clips have another category than their audio in the test set", wrong_cat,
             f"e.g. {c.id!r} is {c.category!r} in the manifest but {truth[c.id].audio_category!r} in the test set")
    bad: list[str] = []
    for i, it in enumerate(manifest.items):
        excluded = set(truth[it.id].exclude)
        for s in range(manifest.n_seeds):
            clip = manifest.pool[int(manifest.offscreen[i, s])]
            if clip.category in excluded:
                bad.append(f"{it.id} seed {s}: {clip.id} is {clip.category}")
                break
    if bad:
        fail("items have an off-screen clip of a category that sounds or shows in their own image", bad,
             "expected off-screen categories outside each sample's categories")
