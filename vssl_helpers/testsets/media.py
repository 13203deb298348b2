"""Media access for the real test sets: reading images and audio, the media check, the set container.

Audio rules (the same for positives and offscreen clips, every model):

* **Channels**: a multi-channel file is mixed down to mono by the *mean of its channels*
  (``to_mono``). This is what the EZ-VSL/SLAVC/FNAC loaders of the paper's code do; the LVS/SSL-Align
  loaders keep only the first channel (audit D4), which can drop a source panned to the right.
* **Sample rate**: a file whose rate differs from ``target_sr`` (16 kHz by default, the rate every
  model of the paper assumes) is resampled with a polyphase FIR filter
  (``scipy.signal.resample_poly``, Kaiser window, zero phase), after the mixdown.
* **Range**: the result is float32 clipped to [-1, 1] (integer PCM is scaled by soundfile to
  [-1, 1); float files and the resampling filter can overshoot slightly).
* **Validity**: a file with NaN or infinite samples, or whose decoded length disagrees with the
  length its WAV header declares (a truncated file), is refused with a :class:`MediaError` naming the
  file and the sample id. Audio shorter than :data:`MIN_AUDIO_SECONDS` is refused by the media check
  (like a missing file: the run stops with a list, or ``on_missing="skip"`` drops and records it):
  every model tiles a short clip to its input window, and a tiled fraction of a second is not the
  clip's sound.

Images are decoded with Pillow and converted to RGB ``uint8`` arrays at their native size; resizing
is each model's preprocessing (``preprocessing.image_transform``, :mod:`vssl_helpers.models.transforms`),
applied by the engine to this decoded original. Clips are delivered whole; each model's front end
chooses its window (:meth:`RealTestSet.load_image`, :meth:`RealTestSet.load_audio`).

The **media check** (:func:`check_media`) looks at every image and audio file of a test set before any
model runs: existence, and whether the file decodes (JPEG/PNG: a reduced-size decode, which still reads
the whole compressed stream, so truncated files are caught; audio: the header, or the whole file with
``deep=True``). A set with problems raises one :class:`MediaError` that gives the count and the first
few ids, unless the caller passes ``on_missing="skip"``, in which case those samples are dropped and
recorded in the load report. The check also refuses audio shorter than :data:`MIN_AUDIO_SECONDS`
and WAV files whose header declares more (or fewer) frames than the file holds.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .base import GT_SIZE, BaseTestSet, Sample

if TYPE_CHECKING:
    import pandas as pd

    from ..negatives import Manifest, NegativeItem

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "MIN_AUDIO_SECONDS",
    "OnMissing",
    "MediaError",
    "MediaCheck",
    "LoadReport",
    "RealTestSet",
    "read_image",
    "read_audio",
    "wav_declared_frames",
    "to_mono",
    "resample",
    "check_media",
    "apply_media_check",
    "GT_SIZE",
    "boxes_to_masks",
    "load_real_testset",
]

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 16_000
"""Sample rate (Hz) that audio is delivered at unless a caller asks for another."""

MIN_AUDIO_SECONDS = 0.5
"""Shortest audio clip a real test set accepts (seconds). Every model tiles a shorter clip to its
input window (1 to 10 s), so below half a second the "positive" audio is mostly repetition; the
paper's VGG-SS and IS3 clips are 10 s and 3 s long."""

OnMissing = Literal["raise", "skip"]
"""What a loader does with samples whose media are missing or unreadable."""

_N_EXAMPLES = 5


class MediaError(RuntimeError):
    """Missing or unreadable media files (the message names the files and what was expected)."""


# --------------------------------------------------------------------------------------------------
# Reading


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to an ``H × W × 3`` RGB ``uint8`` array.

    Raises :class:`MediaError` naming the file if it is missing or cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise MediaError(f"image file not found: {p}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise MediaError(f"image file {p} cannot be decoded: {e}") from None


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Mix a ``frames × channels`` (or 1-D) waveform down to mono by the mean of its channels."""
    a = np.asarray(audio)
    if a.ndim == 1:
        return a
    if a.ndim != 2:
        raise ValueError(f"audio: expected frames or frames × channels, got shape {a.shape}")
    return a.mean(axis=1, dtype=np.float64).astype(a.dtype, copy=False) if a.shape[1] > 1 else a[:, 0]


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono waveform from ``orig_sr`` to ``target_sr`` (polyphase FIR, zero phase).

    The ratio is reduced by the greatest common divisor (44,100 -> 16,000 Hz is up 160, down 441).
    Returns the input unchanged if the rates are equal.
    """
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return audio
    from scipy.signal import resample_poly

    g = math.gcd(int(orig_sr), int(target_sr))
    out = resample_poly(np.asarray(audio, dtype=np.float64), int(target_sr) // g, int(orig_sr) // g)
    return out.astype(np.float32)


def wav_declared_frames(path: str | Path) -> int | None:
    """Frames a RIFF/WAVE file's header declares (``data`` chunk size / block align), or ``None`` for
    other formats, streamed WAVs (size 0 or 0xFFFFFFFF) and unparsable headers.

    libsndfile silently shortens a truncated WAV to the bytes present, so comparing this count with
    the decoded length is what reveals a file cut short.
    """
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            while True:
                ch = f.read(8)
                if len(ch) < 8:
                    return None
                cid, size = ch[:4], struct.unpack("<I", ch[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size)
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack("<H", fmt[12:14])[0]
                    if size % 2:
                        f.seek(1, 1)
                elif cid == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    f.seek(size + (size % 2), 1)
    except OSError:
        return None


def read_audio(
    path: str | Path, target_sr: int | None = DEFAULT_SAMPLE_RATE, *, sample_id: str | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 in [-1, 1] at ``target_sr`` (``None``: the file's rate).

    Returns ``(waveform, sample_rate)``. Stereo is mixed down by the channel mean, then the waveform is
    resampled (see the module docstring). Raises :class:`MediaError` naming the file (and
    ``sample_id``, the test-set sample it belongs to, when given) if it is missing, empty, cannot be
    decoded, holds NaN or infinite samples, or decodes to another length than its WAV header declares.
    """
    import soundfile as sf

    p = Path(path)
    who = f" (sample {sample_id})" if sample_id is not None else ""
    if not p.is_file():
        raise MediaError(f"audio file not found: {p}{who}")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError) as e:  # soundfile.LibsndfileError is a RuntimeError
        raise MediaError(f"audio file {p}{who} cannot be decoded: {e}") from None
    if data.shape[0] == 0:
        raise MediaError(f"audio file {p}{who} has no samples")
    declared = wav_declared_frames(p)
    if declared is not None and declared != data.shape[0]:
        raise MediaError(
            f"audio file {p}{who}: its header declares {declared} frames ({declared / sr:.3f} s) but "
            f"{data.shape[0]} decode ({data.shape[0] / sr:.3f} s); the file is truncated or its header is wrong"
        )
    bad = ~np.isfinite(data)
    if bad.any():
        frame = int(np.argwhere(bad)[0][0])
        raise MediaError(
            f"audio file {p}{who}: {int(bad.sum())} NaN/infinite sample value(s), the first at frame "
            f"{frame} ({frame / sr:.3f} s); expected finite samples"
        )
    mono = to_mono(data).astype(np.float32, copy=False)
    if target_sr is not None and sr != target_sr:
        mono = resample(mono, sr, target_sr)
        sr = target_sr
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False), int(sr)


# --------------------------------------------------------------------------------------------------
# Media check


@dataclass
class MediaCheck:
    """Result of :func:`check_media`.

    Attributes:
        root: the media root that was checked.
        n_checked: number of samples checked.
        problems: ``{sample id: [problem, ...]}`` for every sample with a missing or unreadable file.
        sample_rates: how many audio files have each sample rate (Hz).
        channels: how many audio files have each channel count.
        durations: ``{sample id: seconds}`` of every readable audio file (from its header).
    """

    root: Path
    n_checked: int
    problems: dict[str, list[str]] = field(default_factory=dict)
    sample_rates: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if every file exists and decodes."""
        return not self.problems

    def message(self, name: str = "test set", limit: int = _N_EXAMPLES) -> str:
        """One paragraph naming the count of affected samples and the first ``limit`` of them."""
        ids = list(self.problems)
        first = "; ".join(f"{i}: {', '.join(self.problems[i])}" for i in ids[:limit])
        more = f"; ... and {len(ids) - limit} more" if len(ids) > limit else ""
        return (
            f"{name}: {len(ids)} of {self.n_checked} samples have missing, unreadable, truncated or too short media under "
            f"{self.root} ({first}{more})"
        )

    def summary(self) -> str:
        """Counts of problems, sample rates and channel layouts."""
        sr = ", ".join(f"{k} Hz: {v}" for k, v in sorted(self.sample_rates.items()))
        ch = ", ".join(f"{k} ch: {v}" for k, v in sorted(self.channels.items()))
        return f"{self.n_checked} samples checked, {len(self.problems)} with problems; audio rates [{sr}]; channels [{ch}]"


def _check_image(p: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    if not p.is_file():
        return f"image missing ({p.name})"
    try:
        with Image.open(p) as im:
            if im.format == "JPEG":
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
            if im.width == 0 or im.height == 0:
                return f"image empty ({p.name})"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        return f"image unreadable ({p.name}: {e})"
    return None


def _check_audio(p: Path, deep: bool) -> tuple[str | None, tuple[int, int, float] | None]:
    import soundfile as sf

    if not p.is_file():
        return f"audio missing ({p.name})", None
    try:
        info = sf.info(str(p))
        if info.frames == 0 or info.samplerate <= 0:
            return f"audio empty ({p.name})", None
        declared = wav_declared_frames(p)
        if declared is not None and declared != info.frames:
            return (f"audio truncated ({p.name}: header declares {declared} frames, the file holds "
                    f"{info.frames})"), None
        seconds = info.frames / info.samplerate
        if seconds < MIN_AUDIO_SECONDS:
            return f"audio too short ({p.name}: {seconds:.3f} s < {MIN_AUDIO_SECONDS} s minimum)", None
        if deep:
            data, _ = sf.read(str(p), dtype="float32", always_2d=True)
            if not np.isfinite(data).all():
                return f"audio has NaN/infinite samples ({p.name})", None
    except (RuntimeError, ValueError) as e:  # soundfile.LibsndfileError is a RuntimeError
        return f"audio unreadable ({p.name}: {e})", None
    return None, (int(info.samplerate), int(info.channels), seconds)


def check_media(
    entries: Sequence[tuple[str, Path, Path]], root: str | Path, *, deep: bool = False, workers: int = 4
) -> MediaCheck:
    """Check that every ``(sample id, image path, audio path)`` exists and decodes.

    ``deep=False`` decodes each image at reduced size (the whole compressed stream is read) and reads
    each audio header; ``deep=True`` also decodes each audio file completely. Files are checked by
    ``workers`` threads (decoders release the GIL); the result does not depend on their number.
    Returns a :class:`MediaCheck`; raising or skipping is :func:`apply_media_check`'s job.
    """

    def one(entry: tuple[str, Path, Path]) -> tuple[list[str], tuple[int, int, float] | None]:
        _, img, aud = entry
        probs = []
        if (e := _check_image(Path(img))) is not None:
            probs.append(e)
        err, info = _check_audio(Path(aud), deep)
        if err is not None:
            probs.append(err)
        return probs, info

    if workers > 1 and len(entries) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as ex:
            results = list(ex.map(one, entries, chunksize=64))
    else:
        results = [one(e) for e in entries]
    res = MediaCheck(root=Path(root), n_checked=len(entries))
    for (sid, _, _), (probs, info) in zip(entries, results):
        if info is not None:
            res.sample_rates[info[0]] += 1
            res.channels[info[1]] += 1
            res.durations[sid] = info[2]
        if probs:
            res.problems[sid] = probs
    return res


def apply_media_check(check: MediaCheck, on_missing: OnMissing, name: str) -> set[str]:
    """Raise :class:`MediaError` for a failed check (``on_missing="raise"``) or return the ids to skip."""
    if on_missing not in ("raise", "skip"):
        raise ValueError(f"on_missing: expected 'raise' or 'skip', got {on_missing!r}")
    if check.ok:
        return set()
    if on_missing == "raise":
        raise MediaError(check.message(name) + ". Pass on_missing='skip' to drop these samples and record them.")
    log.warning("%s; skipping them", check.message(name))
    return set(check.problems)


# --------------------------------------------------------------------------------------------------
# GT masks, load report and the test-set container shared by the VGG-SS and IS3 loaders



def boxes_to_masks(
    boxes: np.ndarray, owner: np.ndarray, n: int, size: int = GT_SIZE, chunk: int = 512
) -> np.ndarray:
    """Union-of-boxes masks for ``n`` samples, vectorised (no Python loop over samples or pixels).

    Args:
        boxes: ``B × 4`` integer pixel boxes ``[x1, y1, x2, y2]``, half-open: pixel ``(row y, col x)``
            is inside when ``x1 <= x < x2`` and ``y1 <= y < y2``. Coordinates are clipped to
            ``[0, size]``; a box with ``x2 <= x1`` or ``y2 <= y1`` covers nothing.
        owner: ``B`` sample indices in ``[0, n)`` (any order).
        n: number of samples.
        size: mask side.
        chunk: boxes per vectorised step (bounds the temporary memory to ``chunk × size²`` bytes).

    Returns:
        ``n × size × size`` bool array; a sample without a non-empty box gets an all-False mask.

    Each box is the outer product of its row and column indicator vectors. Boxes are processed by
    their rank within their sample (first boxes of all samples, then second boxes, ...), so that every
    vectorised step touches each sample at most once; the Python loop runs over ranks and chunks only.
    """
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    own = np.asarray(owner, dtype=np.int64).reshape(-1)
    if len(b) != len(own):
        raise ValueError(f"boxes ({len(b)}) and owner ({len(own)}) differ in length")
    if len(own) and (own.min() < 0 or own.max() >= n):
        raise ValueError(f"owner must hold sample indices in [0, {n})")
    out = np.zeros((n, size, size), dtype=bool)
    b = np.clip(b, 0, size)
    keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    b, own = b[keep], own[keep]
    if not len(own):
        return out
    order = np.argsort(own, kind="stable")
    b, own = b[order], own[order]
    first = np.searchsorted(own, own, side="left")
    rank = np.arange(len(own)) - first
    grid = np.arange(size)
    for r in range(int(rank.max()) + 1):
        sel = np.flatnonzero(rank == r)
        for a in range(0, len(sel), chunk):
            idx = sel[a:a + chunk]
            bb = b[idx]
            rows = (grid >= bb[:, 1:2]) & (grid < bb[:, 3:4])
            cols = (grid >= bb[:, 0:1]) & (grid < bb[:, 2:3])
            block = rows[:, :, None] & cols[:, None, :]
            if r == 0:
                out[own[idx]] = block
            else:
                out[own[idx]] |= block
    return out


@dataclass
class LoadReport:
    """What a loader found in an annotation file: counts of every quirk and the affected ids.

    Attributes:
        source: the annotation file (path or shipped resource) that was read.
        n_entries: entries in the file.
        n_samples: samples in the loaded set (after skipped media, if any).
        counts: ``{quirk: count}`` in a fixed order per loader (zero counts included).
        descriptions: ``{quirk: what it means and how the loader handled it}``.
        ids: ``{quirk: affected ids}`` (all of them; the quirks are rare).
    """

    source: str
    n_entries: int
    n_samples: int
    counts: dict[str, int] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)

    def add(self, quirk: str, description: str, ids: Sequence[str] = (), count: int | None = None) -> None:
        """Record a quirk with its affected ids (``count`` defaults to the number of ids)."""
        self.counts[quirk] = len(ids) if count is None else int(count)
        self.descriptions[quirk] = description
        self.ids[quirk] = list(ids)

    def summary(self, limit: int = 3) -> str:
        """Multi-line text: one line per quirk with its count and the first ``limit`` ids."""
        lines = [f"{self.source}: {self.n_entries} entries, {self.n_samples} samples"]
        for q, n in self.counts.items():
            ex = self.ids.get(q, [])[:limit]
            lines.append(f"  {q}: {n}" + (f"  (e.g. {', '.join(ex)})" if ex and n else ""))
        return "\n".join(lines)

    def to_frame(self) -> "pd.DataFrame":
        """A table with columns quirk, count, description, examples (first 3 ids)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {"quirk": q, "count": n, "description": self.descriptions.get(q, ""),
                 "examples": ", ".join(self.ids.get(q, [])[:3])}
                for q, n in self.counts.items()
            ]
        )


@dataclass
class RealTestSet(BaseTestSet):
    """A loaded real test set (VGG-SS or IS3): its samples, GT masks, load report and media access.

    ``samples[i].gt_mask`` is a view of ``gt_masks[i]`` (one ``N × 224 × 224`` bool array, ready for
    batched metrics). Without a media root, ``Sample.image``/``Sample.audio`` are the paths relative to
    the media root that the official layout expects, and ``sample_rate`` is ``target_sr``, the rate
    :meth:`load` delivers.

    A :class:`~vssl_helpers.testsets.base.TestSet` (media decoded from the files on every access,
    in the engine's DataLoader workers) once loaded with a media root.
    """

    name: str
    samples: list[Sample]
    gt_masks: np.ndarray
    report: LoadReport
    media_root: Path | None = None
    media_check: MediaCheck | None = None
    target_sr: int = DEFAULT_SAMPLE_RATE
    source: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {s.id: i for i, s in enumerate(self.samples)}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    @property
    def ids(self) -> list[str]:
        """Sample ids in set order."""
        return [s.id for s in self.samples]

    def index(self, sample_id: str) -> int:
        """Position of a sample id (``KeyError`` naming the id and the set if absent)."""
        try:
            return self._index[sample_id]
        except KeyError:
            raise KeyError(f"{self.name}: no sample with id {sample_id!r}") from None

    def load(self, key: int | str) -> Sample:
        """A copy of a sample with its image (RGB uint8) and audio (mono float32 at ``target_sr``) read.

        Needs a media root (raises :class:`MediaError` otherwise or if a file is unreadable).
        """
        s = self.samples[key if isinstance(key, int) else self.index(key)]
        img = self.load_image(key)
        aud = self.load_audio(key)
        sr = self.target_sr if isinstance(s.audio, Path) else s.sample_rate
        meta = dict(s.meta)
        meta.setdefault("duration", len(aud) / sr)
        return replace(s, image=img, audio=aud, sample_rate=sr, meta=meta)

    def _media_sample(self, key: int | str) -> Sample:
        if self.media_root is None:
            raise MediaError(f"{self.name}: no media root was given; pass media_root= to the loader to read media")
        return self.samples[key if isinstance(key, int) else self.index(key)]

    def load_image(self, key: int | str) -> np.ndarray:
        """A sample's image as decoded from its file (RGB ``uint8`` ``H × W × 3``, original size; each
        model's own transform is applied to this, :mod:`vssl_helpers.models.transforms`)."""
        s = self._media_sample(key)
        return read_image(s.image) if isinstance(s.image, Path) else np.asarray(s.image)

    def load_audio(self, key: int | str) -> np.ndarray:
        """A sample's whole clip (mono float32 at ``target_sr``; nothing cut: each model's front end
        chooses its window)."""
        s = self._media_sample(key)
        if isinstance(s.audio, Path):
            return read_audio(s.audio, self.target_sr, sample_id=s.id)[0]
        return np.asarray(s.audio)

    def manifest_items(self) -> "list[NegativeItem]":
        """The samples as :class:`vssl_helpers.negatives.NegativeItem` records (for manifests and stats)."""
        from ..negatives import items_from_samples

        return items_from_samples(self.samples)

    # ----------------------------------------------------------------------------------------------
    # the TestSet protocol (vssl_helpers.testsets.base)

    @property
    def sample_rate(self) -> int:  # type: ignore[override]
        """Rate (Hz) the audio is delivered at (:attr:`target_sr`)."""
        return self.target_sr

    def sample(self, j: int) -> Sample:
        """Sample ``j`` with its media read (:meth:`load`)."""
        return self.load(j)

    def _root(self) -> Path:
        if self.media_root is None:
            raise ValueError(f"{self.name}: loaded without a media root; pass media_root= to the loader")
        return Path(self.media_root)

    def fingerprint(self, image_size: int) -> str:
        """``name:<resolved media folder>:<annotation source>`` (the images' size does not enter:
        the files are decoded at their own size)."""
        return f"{self.name}:{self._root().resolve()}:{self.report.source}"

    def prepare(self, image_size: int, progress: bool = False) -> None:
        """Refuse a set loaded without a media root before a run starts."""
        self._root()

    def decoded_image(self, j: int, image_size: int) -> np.ndarray:
        """Image ``j`` decoded from its file at its own size (:meth:`load_image`)."""
        return self.load_image(j)

    def whole_audio(self, j: int) -> np.ndarray:
        """Clip ``j`` decoded from its file (:meth:`load_audio`)."""
        return np.ascontiguousarray(self.load_audio(j), dtype=np.float32)

    def masks(self, image_size: int) -> np.ndarray:
        """:attr:`gt_masks` (the union of each sample's boxes)."""
        return self.gt_masks

    def default_manifest(self, n_seeds: int = 10) -> "Manifest":
        """The shipped manifest when it covers exactly these samples with ``n_seeds`` seeds, else one
        drawn from the samples (a media subset, another seed count), named ``<name>-derived``."""
        from ..negatives import load_shipped_manifest, manifest_for_samples

        shipped = load_shipped_manifest(self.name)
        if shipped.ids == sorted(self.ids) and shipped.n_seeds == n_seeds:
            return shipped
        return manifest_for_samples(self.samples, name=f"{self.name}-derived", n_seeds=n_seeds)

    def image_groups(self) -> list[list[int]]:
        """Sample indices grouped by ``meta["image_id"]`` (IS3: the file stem without its target
        token, shared by the two entries of an image), in order of first appearance."""
        groups: dict[str, list[int]] = {}
        for j, s in enumerate(self.samples):
            groups.setdefault(str(s.meta.get("image_id", s.image)), []).append(j)
        return list(groups.values())

    @property
    def has_media_files(self) -> bool:
        """True: media are read from files under :attr:`media_root`."""
        return True

    def description(self) -> str:
        return f"media under `{self.media_root}`"

    def skipped_samples(self) -> list[dict[str, str]]:
        """Samples the loader dropped for missing or unreadable media (``on_missing="skip"``):
        ``[{"id": ..., "reason": ...}]`` in id order (empty for complete media)."""
        ids = self.report.ids.get("skipped_media", [])
        problems = self.media_check.problems if self.media_check is not None else {}
        return [{"id": i, "reason": "; ".join(problems.get(i, ["missing or unreadable media"]))} for i in sorted(ids)]


def load_real_testset(
    name: str,
    loader: "Callable[..., RealTestSet]",
    default_annotations: str,
    data_root: str | Path | None = None,
    annotations: str | Path | None = None,
    on_missing: OnMissing = "raise",
) -> RealTestSet:
    """The registered factory of a real set: ``loader`` on the media under ``data_root``, with
    ``annotations`` if given, else ``default_annotations`` inside ``data_root`` if present, else the
    shipped copy (the loader's default).

    Raises:
        TestSetError: no or a missing ``data_root``, a given ``annotations`` file that does not exist,
            or a folder that leaves no sample (the media folder of another set?).
        MediaError: (from the loader) missing or unreadable media with ``on_missing="raise"``.
    """
    from .registry import TestSetError

    if data_root is None:
        raise TestSetError(f"data_root: required for the {name} test set (the folder with its media)")
    root = Path(data_root)
    if not root.is_dir():
        raise TestSetError(f"data_root: no such folder: {root}")
    if annotations is not None and not Path(annotations).is_file():
        raise TestSetError(f"annotations: no such file: {annotations}")
    if annotations is None and (root / default_annotations).is_file():
        annotations = root / default_annotations
    ds = loader(annotations, media_root=root, on_missing=on_missing)
    if len(ds) == 0:
        raise TestSetError(f"data_root: no sample of the {name} test set is left under {root}; is it the media folder of another set?")
    return ds
