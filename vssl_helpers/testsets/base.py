"""What every test set is: the :class:`Sample` record, the :class:`TestSet` protocol and
:class:`BaseTestSet`, which derives most of the protocol from a few members (DESIGN.md, "Data contracts").

The engine, the inputs layer, the book's runs and the negatives manifest only use the protocol, so
the embedded synthetic benchmark, VGG-SS, IS3 and a test set of another package (a plugin) are
handled by the same code; none of them dispatches on a concrete class.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ..categories import BROAD_CATEGORIES  # re-exported: records carry these categories

if TYPE_CHECKING:
    from ..negatives import Manifest, NegativeItem

__all__ = ["Sample", "BROAD_CATEGORIES", "TestSet", "BaseTestSet", "GT_SIZE"]

GT_SIZE = 224
"""Side of the GT masks (pixels), the frame every metric is computed in."""


@dataclass
class Sample:
    """One test item: an image, its (positive) audio and the ground truth of the sounding source.

    Attributes:
        id: stable string id (file stem for real sets).
        image: ``H × W × 3`` uint8 RGB array, or a path to the image file.
        audio: mono float32 waveform in [-1, 1], or a path to the audio file.
        sample_rate: sample rate of ``audio`` in Hz.
        gt_mask: ``224 × 224`` boolean mask of the sounding source(s) (union of boxes for real sets).
        category: broad category of the source (one of :data:`BROAD_CATEGORIES`), or a tuple of
            them for an image whose other visible source matters (IS3: every visible source).
        classes: fine class name(s) of the sounding source.
        boxes: ``k × 4`` float array of ``[x1, y1, x2, y2]`` boxes in pixels of the 224 × 224 frame.
        meta: free-form extras (e.g. visible silent objects of synthetic scenes).
    """

    id: str
    image: np.ndarray | Path
    audio: np.ndarray | Path
    sample_rate: int
    gt_mask: np.ndarray
    category: str | tuple[str, ...]
    classes: tuple[str, ...]
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    meta: dict = field(default_factory=dict)


@runtime_checkable
class TestSet(Protocol):
    """A test set as the package uses it: sample ids, media as arrays, GT masks, negatives items.

    **Minimal members** a test set of another package must define (inherit :class:`BaseTestSet` to
    get everything else from these):

    * ``name`` (str): the set's name (results files, tables, the compatibility mode's ``is3`` kind).
    * ``ids`` (sequence of str): stable sample ids, in set order (row ``j`` is ``ids[j]``).
    * ``sample_rate`` (int): rate in Hz of the audio :meth:`whole_audio` returns; it must equal the
      evaluated model's ``preprocessing.sample_rate``.
    * ``sample(j)``: a :class:`Sample` with ``image`` (``H × W × 3`` uint8) and ``audio`` (mono
      float32) as arrays, a ``224 × 224`` bool ``gt_mask``, and its broad ``category`` (or a tuple of
      them), which the negatives manifest needs to draw off-screen audio of another category.

    The rest has defaults in :class:`BaseTestSet` (read from :meth:`sample`); the package's own sets
    override them with faster or richer versions:

    * ``__len__``, ``index(sample_id)``;
    * ``fingerprint(image_size)``: what identifies the data in a map-store key (default: a hash of
      every sample's media and mask; override with something cheap that still changes when the data
      does, e.g. a file hash or a version);
    * ``prepare(image_size, progress)``: called once before a run (e.g. to generate a cache);
    * ``decoded_image(j, image_size)``, ``whole_audio(j)``, ``masks(image_size)``: the engine's media;
    * ``manifest_items()``, ``default_manifest(n_seeds)``: the negatives manifest of the set;
    * ``image_groups()``: sample indices grouped by the image they show (IS3: two per image);
    * ``has_media_files``, ``description()``, ``skipped_samples()``: what a report says about the data.
    """

    name: str
    sample_rate: int

    @property
    def ids(self) -> Sequence[str]: ...

    def __len__(self) -> int: ...

    def sample(self, j: int) -> Sample: ...

    def index(self, sample_id: str) -> int: ...

    def fingerprint(self, image_size: int) -> str: ...

    def prepare(self, image_size: int, progress: bool = False) -> None: ...

    def decoded_image(self, j: int, image_size: int) -> np.ndarray: ...

    def whole_audio(self, j: int) -> np.ndarray: ...

    def masks(self, image_size: int) -> np.ndarray: ...

    def manifest_items(self) -> list[NegativeItem]: ...

    def default_manifest(self, n_seeds: int = 10) -> Manifest: ...

    def image_groups(self) -> list[list[int]]: ...

    @property
    def has_media_files(self) -> bool: ...

    def description(self) -> str: ...

    def skipped_samples(self) -> list[dict[str, str]]: ...


class BaseTestSet:
    """Defaults for every :class:`TestSet` member except the minimal ones (``name``, ``ids``,
    ``sample_rate``, ``sample``), all read through :meth:`sample`.

    A subclass sets ``name``, ``ids`` and ``sample_rate`` (attributes or properties) and defines
    ``sample(j)``; it overrides what it can do faster (the package's sets all do).
    """

    # annotations only (no class defaults): a dataclass subclass declares them as its own fields
    name: str
    sample_rate: int

    def __len__(self) -> int:
        return len(self.ids)  # type: ignore[attr-defined]

    def sample(self, j: int) -> Sample:
        raise NotImplementedError(f"{type(self).__name__}.sample: a test set must return its samples")

    def index(self, sample_id: str) -> int:
        """Position of a sample id (``KeyError`` naming the id and the set if absent)."""
        index = self.__dict__.get("_base_index")
        if index is None or len(index) != len(self):
            index = {sid: j for j, sid in enumerate(self.ids)}  # type: ignore[attr-defined]
            self.__dict__["_base_index"] = index
        try:
            return index[sample_id]
        except KeyError:
            raise KeyError(f"{self.name}: no sample with id {sample_id!r}") from None

    def fingerprint(self, image_size: int) -> str:
        """``name:<sha256>`` of every sample's id, image, audio and mask (correct for any data; reads
        every sample once, so large sets override it)."""
        h = hashlib.sha256(f"{self.name}|{self.sample_rate}".encode())
        for j in range(len(self)):
            s = self.sample(j)
            h.update(s.id.encode() + b"\0")
            for a in (s.image, s.audio, s.gt_mask):
                arr = np.ascontiguousarray(np.asarray(a))
                h.update(f"{arr.dtype}{arr.shape}".encode())
                h.update(arr.tobytes())
        return f"{self.name}:{h.hexdigest()[:20]}"

    def prepare(self, image_size: int, progress: bool = False) -> None:
        """Nothing to prepare by default."""

    def decoded_image(self, j: int, image_size: int) -> np.ndarray:
        """Row ``j``'s image as decoded (uint8 ``H × W × 3``); each model's transform resizes it."""
        return np.asarray(self.sample(j).image, dtype=np.uint8)

    def whole_audio(self, j: int) -> np.ndarray:
        """Row ``j``'s whole clip, mono float32 at :attr:`sample_rate`."""
        return np.ascontiguousarray(self.sample(j).audio, dtype=np.float32)

    def masks(self, image_size: int) -> np.ndarray:
        """Every GT mask, ``N × 224 × 224`` bool, in set order."""
        if len(self) == 0:
            return np.zeros((0, GT_SIZE, GT_SIZE), bool)
        return np.stack([np.asarray(self.sample(j).gt_mask, dtype=bool) for j in range(len(self))])

    def manifest_items(self) -> list[NegativeItem]:
        """The samples as negatives-manifest items (categories to exclude, own audio category...)."""
        from ..negatives import items_from_samples

        return items_from_samples(self.sample(j) for j in range(len(self)))

    def default_manifest(self, n_seeds: int = 10) -> Manifest:
        """The manifest drawn from the set's own clips (seed 0, ``n_seeds`` seeds)."""
        from ..negatives import build_manifest

        return build_manifest(self.manifest_items(), name=f"{self.name}-derived", n_seeds=n_seeds)

    def image_groups(self) -> list[list[int]]:
        """Sample indices grouped by the image they show (``meta["image_id"]``, else one per sample)."""
        groups: dict[str, list[int]] = {}
        for j in range(len(self)):
            s = self.sample(j)
            groups.setdefault(str(s.meta.get("image_id", s.id)), []).append(j)
        return list(groups.values())

    @property
    def has_media_files(self) -> bool:
        """Whether media are read from files (a report then names the folder); False by default."""
        return False

    def description(self) -> str:
        """Where the data comes from, in a few words (the book's list of test sets)."""
        return f"{len(self)} samples of {self.name}"

    def skipped_samples(self) -> list[dict[str, str]]:
        """Samples dropped while loading (``[{"id", "reason"}]``); none by default."""
        return []
