"""The embedded procedural audio-visual benchmark: the default data of the companion.

Each image is a textured background with one sounding object (``sources=1``, "VGG-SS-like") or two
sounding objects of different broad categories (``sources=2``, "IS3-like": the image yields one sample
per source, each with its own audio and mask), plus 1–2 *silent* distractor objects of yet other
categories. Sounding and silent objects look alike (same size, saturation, texture distributions), so
only the audio tells which object to localize. The ground-truth mask is the sounding object's visible
pixels. Classes, shapes and sounds are defined in :mod:`.synthetic_audio` and :mod:`.synthetic_visual`.

Determinism: image ``i`` of a configuration is generated from
``SeedSequence([seed, split code, sources, i])``; its scene and each source's audio use separate
spawned child streams. Any sample can therefore be made alone, in any order, in any process, with
byte-identical results (for a given numpy version), and train and test never share an instance.

Typical use::

    test = SyntheticSet(SyntheticConfig(split="test", n_images=500))
    s = test[0]                       # a Sample (224 × 224 image, 2 s of 16 kHz audio, GT mask, ...)
    arr = test.arrays(image_size=112) # stacked arrays, cached as one .npz
    write_vggss_layout(test, "/tmp/vggss_syn")   # exercise the real-data loaders at full size
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import soundfile as sf
from PIL import Image

from ..atomic import atomic_write
from ..defaults import DEFAULTS
from ..progress import bar as tqdm  # the package's bar policy (log mode, --no-progress)
from .base import BROAD_CATEGORIES, BaseTestSet, Sample
from .synthetic_audio import (
    CLASS_NAMES,
    SYNTHETIC_CLASSES,
    SyntheticClass,
    acoustic_neighbour,
    class_from_token,
    class_token,
    neighbour_sound,
    shaped_noise,
    synthesize_sound,
)
from .synthetic_visual import SceneObject, render_scene

if TYPE_CHECKING:
    from ..negatives import Manifest, NegativeItem

__all__ = [
    "GENERATOR_VERSION",
    "SPLIT_CODES",
    "SyntheticConfig",
    "SyntheticScene",
    "SyntheticSet",
    "SyntheticClass",
    "SYNTHETIC_CLASSES",
    "CLASS_NAMES",
    "generate_scene",
    "generate_audio",
    "synthesize_sound",
    "shaped_noise",
    "acoustic_neighbour",
    "neighbour_sound",
    "class_token",
    "class_from_token",
    "default_cache_dir",
    "write_vggss_layout",
    "write_is3_layout",
    "is3_stem",
]

GENERATOR_VERSION = "1"
"""Bump whenever generated content changes: it is part of every :meth:`SyntheticSet.arrays` cache key."""

SPLIT_CODES: dict[str, int] = {"train": 1, "test": 2}
"""Split → integer mixed into every sample's seed, so train and test streams never coincide."""

_SOURCE_SUFFIX = ("_a", "_b")
_CLASSES_BY_CATEGORY: tuple[tuple[str, ...], ...] = tuple(
    tuple(n for n, c in SYNTHETIC_CLASSES.items() if c.category == cat) for cat in BROAD_CATEGORIES
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Configuration of a synthetic set (every field is part of the cache key).

    Attributes:
        split: ``"train"`` or ``"test"``; different RNG streams, so instances are never shared.
        n_images: number of images (``sources=2`` gives 2 samples per image).
        sources: 1 (VGG-SS-like) or 2 (IS3-like: two sounding objects of different categories).
        seed: non-negative base seed.
        image_size: side of the rendered image and of the GT masks (the data contract is 224).
        sample_rate: audio sample rate in Hz.
        duration: audio length in seconds.
        distractors: (min, max) number of silent objects per image, inclusive.
    """

    split: str = "test"
    n_images: int = 256
    sources: int = 1
    seed: int = 0
    image_size: int = 224
    sample_rate: int = 16000
    duration: float = 2.0
    distractors: tuple[int, int] = (1, 2)

    def __post_init__(self) -> None:
        if self.split not in SPLIT_CODES:
            raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, got {self.split!r}")
        if self.sources not in (1, 2):
            raise ValueError(f"sources must be 1 or 2, got {self.sources}")
        if self.n_images < 0 or self.seed < 0:
            raise ValueError("n_images and seed must be non-negative")
        lo, hi = self.distractors
        if not 0 <= lo <= hi or self.sources + hi > len(BROAD_CATEGORIES):
            raise ValueError(f"invalid distractors {self.distractors} for sources={self.sources}")
        if self.image_size < 32 or self.sample_rate <= 0 or self.duration <= 0:
            raise ValueError("image_size must be >= 32, sample_rate and duration positive")


@dataclass(frozen=True)
class SyntheticScene:
    """One generated image with its objects.

    Attributes:
        image_index: index of the image in its set.
        image: ``S × S × 3`` uint8.
        labels: ``S × S`` int8 object label map: ``-1`` background, ``j`` = visible pixel of ``objects[j]``.
        objects: the objects; the first ``n_sources`` are sounding (in source order), the rest silent.
        n_sources: number of sounding objects.
    """

    image_index: int
    image: np.ndarray
    labels: np.ndarray
    objects: tuple[SceneObject, ...]
    n_sources: int

    @property
    def sounding_classes(self) -> tuple[str, ...]:
        return tuple(o.class_name for o in self.objects[: self.n_sources])

    @property
    def silent_classes(self) -> tuple[str, ...]:
        return tuple(o.class_name for o in self.objects[self.n_sources :])

    @property
    def visible_categories(self) -> tuple[str, ...]:
        """Broad categories of every object (sounding or silent), in :data:`BROAD_CATEGORIES` order."""
        present = {SYNTHETIC_CLASSES[o.class_name].category for o in self.objects}
        return tuple(c for c in BROAD_CATEGORIES if c in present)

    def mask(self, j: int) -> np.ndarray:
        """Visible pixels of object ``j`` (bool ``S × S``)."""
        return self.labels == j


def _streams(config: SyntheticConfig, image_index: int) -> list[np.random.SeedSequence]:
    # Keyed by everything that identifies the image; spawn() children are a pure function of the
    # parent, so the scene and each audio clip have their own independent, order-free streams.
    root = np.random.SeedSequence([config.seed, SPLIT_CODES[config.split], config.sources, image_index])
    return root.spawn(1 + config.sources)


def generate_scene(config: SyntheticConfig, image_index: int) -> SyntheticScene:
    """Generate image ``image_index`` of ``config`` (deterministic, independent of any other image).

    The broad categories of all objects are distinct (sounding first, then 1–2 silent distractors);
    each object's fine class is uniform within its category.
    """
    rng = np.random.default_rng(_streams(config, image_index)[0])
    lo, hi = config.distractors
    n_silent = int(rng.integers(lo, hi + 1))
    cats = rng.choice(len(BROAD_CATEGORIES), size=config.sources + n_silent, replace=False)
    classes = [_CLASSES_BY_CATEGORY[c][rng.integers(len(_CLASSES_BY_CATEGORY[c]))] for c in cats]
    image, labels, objects = render_scene(rng, classes, config.sources, config.image_size)
    return SyntheticScene(image_index, image, labels, tuple(objects), config.sources)


def generate_audio(config: SyntheticConfig, image_index: int, source: int, class_name: str) -> np.ndarray:
    """Audio of sounding source ``source`` of image ``image_index`` (its own RNG stream)."""
    rng = np.random.default_rng(_streams(config, image_index)[1 + source])
    return synthesize_sound(class_name, rng, config.duration, config.sample_rate)


def _bbox(mask: np.ndarray) -> np.ndarray:
    """Tight ``[x1, y1, x2, y2]`` box of a mask in pixels (x2/y2 exclusive), as a 1 × 4 float32 array."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(xs) == 0:
        return np.zeros((0, 4), np.float32)
    return np.array([[xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]], np.float32)


def default_cache_dir() -> Path:
    """``$VSSL_CACHE/synthetic`` if ``VSSL_CACHE`` is set, else ``~/.cache/vssl-companion/synthetic``."""
    from ..cache import cache_root

    return cache_root() / "synthetic"


_ARRAY_KEYS = (
    "images",
    "masks",
    "audio",
    "category",
    "class_index",
    "image_index",
    "source_index",
    "visible_categories",
    "ids",
)


class SyntheticSet(BaseTestSet, Sequence[Sample]):
    """A lazily generated synthetic test or training set (a ``Sequence`` of :class:`Sample`).

    Sample ``i`` comes from image ``i`` (``sources=1``) or ``i // 2`` with source ``i % 2``
    (``sources=2``); ids look like ``syn-test-s1-seed0-00042`` (``..._a`` / ``..._b`` for two
    sources). ``Sample.meta`` holds ``visible_categories`` (categories of all objects in the image),
    ``silent_classes``, ``sounding_classes`` (all sounding classes of the image, in source order),
    ``source_index``, ``image_index`` and ``other_source`` (id of the sibling sample, or ``None``).

    A :class:`~vssl_helpers.testsets.base.TestSet`: the engine reads its cached :meth:`arrays`
    rendered at the model's image size (where every image transform is the identity).
    """

    name = "synthetic"

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config if config is not None else SyntheticConfig()
        c = self.config
        stem = f"syn-{c.split}-s{c.sources}-seed{c.seed}"
        if c.sources == 1:
            self.ids: list[str] = [f"{stem}-{i:05d}" for i in range(c.n_images)]
        else:
            self.ids = [f"{stem}-{i:05d}{suf}" for i in range(c.n_images) for suf in _SOURCE_SUFFIX]
        # The two samples of an IS3-like image share one scene: keep the last one.
        self._last_scene: SyntheticScene | None = None

    def __repr__(self) -> str:
        return f"SyntheticSet({self.config!r})"

    def __len__(self) -> int:
        return len(self.ids)

    def scene(self, image_index: int) -> SyntheticScene:
        """The scene of image ``image_index`` (the last one is cached)."""
        last = self._last_scene
        if last is not None and last.image_index == image_index:
            return last
        if not 0 <= image_index < self.config.n_images:
            raise IndexError(f"image index {image_index} out of range")
        # looked up in the module namespace at call time, so tests can substitute the generator
        scene = generate_scene(self.config, image_index)
        self._last_scene = scene
        return scene

    def _locate(self, i: int) -> tuple[int, int]:
        i = operator.index(i)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sample index {i} out of range for {n} samples")
        return divmod(i, self.config.sources)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        image_index, source = self._locate(i)
        scene = self.scene(image_index)
        c = self.config
        cls = scene.objects[source].class_name
        mask = scene.mask(source)
        other = None
        if c.sources == 2:
            other = self.ids[image_index * 2 + (1 - source)]
        return Sample(
            id=self.ids[image_index * c.sources + source],
            image=scene.image.copy(),  # the sibling sample shares the scene; don't alias it
            audio=generate_audio(c, image_index, source, cls),
            sample_rate=c.sample_rate,
            gt_mask=mask,
            category=SYNTHETIC_CLASSES[cls].category,
            classes=(cls,),
            boxes=_bbox(mask),
            meta={
                "visible_categories": scene.visible_categories,
                "silent_classes": scene.silent_classes,
                "sounding_classes": scene.sounding_classes,
                "source_index": source,
                "image_index": image_index,
                "other_source": other,
            },
        )

    # ------------------------------------------------------------------------------------------
    # the TestSet protocol (vssl_helpers.testsets.base): media from the cached arrays

    @property
    def sample_rate(self) -> int:  # type: ignore[override]
        """Rate of the generated audio (Hz)."""
        return self.config.sample_rate

    def sample(self, j: int) -> Sample:
        """Sample ``j`` (generated; media are arrays)."""
        return self[j]

    def fingerprint(self, image_size: int) -> str:
        """``synthetic:<cache key>``: the generator's configuration at ``image_size``."""
        return f"synthetic:{self.cache_key(int(image_size))}"

    def prepare(self, image_size: int, progress: bool = False) -> None:
        """Generate (or read) the arrays at ``image_size`` once, before any worker reads them."""
        self._arrays_at(image_size, progress)

    def _arrays_at(self, image_size: int, progress: bool = False) -> dict[str, np.ndarray]:
        cached = self.__dict__.get("_arrays")
        if cached is None or cached[0] != int(image_size):
            cached = (int(image_size), self.arrays(image_size=int(image_size), progress=progress))
            self.__dict__["_arrays"] = cached
        return cached[1]

    def decoded_image(self, j: int, image_size: int) -> np.ndarray:
        """Image ``j`` rendered at ``image_size`` (uint8)."""
        return self._arrays_at(image_size)["images"][j]

    def whole_audio(self, j: int) -> np.ndarray:
        """Clip ``j`` (float32 at :attr:`sample_rate`), from the arrays of the last prepared size."""
        cached = self.__dict__.get("_arrays")
        arr = cached[1] if cached is not None else self._arrays_at(MANIFEST_IMAGE_SIZE)
        return np.ascontiguousarray(arr["audio"][j], dtype=np.float32)

    def masks(self, image_size: int) -> np.ndarray:
        """GT masks (``N × 224 × 224``), read from the arrays at ``image_size`` (same masks at any size)."""
        return self._arrays_at(image_size)["masks"]

    def manifest_items(self) -> list[NegativeItem]:
        """The manifest items, read from the cached arrays (see :func:`synthetic_manifest`)."""
        return _items_from_arrays(self)

    def default_manifest(self, n_seeds: int = DEFAULTS.n_seeds) -> Manifest:
        """:func:`synthetic_manifest` of this set."""
        return synthetic_manifest(self, n_seeds=n_seeds)

    def image_groups(self) -> list[list[int]]:
        """Sample indices per image: one per image, or the two sources of an IS3-like image."""
        k = self.config.sources
        return [list(range(i * k, (i + 1) * k)) for i in range(self.config.n_images)]

    def description(self) -> str:
        c = self.config
        return f"synthetic, {c.n_images} images with {c.sources} sounding object(s) each, generator seed {c.seed}"

    # ------------------------------------------------------------------------------------------
    def cache_key(self, image_size: int) -> str:
        """Hash of (config, image_size, :data:`GENERATOR_VERSION`, numpy version) naming the cache file.

        The numpy version is included because ``Generator`` distributions may change between numpy
        releases (NEP 19); a new numpy then regenerates instead of reusing different data.
        """
        key = {
            "config": dataclasses.asdict(self.config),
            "image_size": int(image_size),
            "generator_version": GENERATOR_VERSION,
            "numpy": np.__version__,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]

    def cache_path(self, image_size: int = 112, cache_dir: str | Path | None = None) -> Path:
        """Where :meth:`arrays` stores its ``.npz`` for ``image_size``."""
        c = self.config
        d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        name = f"syn-{c.split}-s{c.sources}-n{c.n_images}-seed{c.seed}-{image_size}px"
        return d / f"{name}-{self.cache_key(image_size)}.npz"

    def arrays(
        self, image_size: int = 112, cache_dir: str | Path | None = None, progress: bool = True
    ) -> dict[str, np.ndarray]:
        """All samples as stacked arrays, for training and evaluation; cached as one ``.npz``.

        Args:
            image_size: side of the returned images (PIL bilinear resize, which averages over the
                footprint when shrinking); GT masks keep the rendered size.
            cache_dir: directory of the cache (default :func:`default_cache_dir`); created if needed.
            progress: show a progress bar while generating.

        Returns:
            ``images`` N×S×S×3 uint8; ``masks`` N×H×W bool (H = W = ``config.image_size``, 224);
            ``audio`` N×T float32; ``category`` N int64 (index into :data:`BROAD_CATEGORIES`);
            ``class_index`` N int64 (index into :data:`CLASS_NAMES`); ``image_index`` N int64;
            ``source_index`` N int64; ``visible_categories`` N×8 bool (categories of every object in
            the image, sounding or silent); ``ids`` N str. A cached file is read back when present
            and readable; otherwise the arrays are generated and written atomically (temporary file
            + ``os.replace``), so concurrent or interrupted runs never leave a partial cache.
        """
        path = self.cache_path(image_size, cache_dir)
        if path.is_file():
            try:
                out = _load_npz(path)
                if set(_ARRAY_KEYS) <= set(out) and len(out["ids"]) == len(self):
                    return out
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
                pass  # unreadable or stale: regenerate and overwrite
        out = self._build_arrays(image_size, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: _save_npz(tmp, out))
        return out

    def _build_arrays(self, image_size: int, progress: bool) -> dict[str, np.ndarray]:
        c = self.config
        n = len(self)
        t = int(round(c.duration * c.sample_rate))
        out = {
            "images": np.zeros((n, image_size, image_size, 3), np.uint8),
            "masks": np.zeros((n, c.image_size, c.image_size), bool),
            "audio": np.zeros((n, t), np.float32),
            "category": np.zeros(n, np.int64),
            "class_index": np.zeros(n, np.int64),
            "image_index": np.zeros(n, np.int64),
            "source_index": np.zeros(n, np.int64),
            "visible_categories": np.zeros((n, len(BROAD_CATEGORIES)), bool),
            "ids": np.array(self.ids, dtype=str) if n else np.zeros(0, "<U1"),
        }
        resized: tuple[int, np.ndarray] | None = None
        bar = tqdm(total=n, desc=f"synthetic {c.split} s{c.sources} {image_size}px", disable=not progress)
        try:
            for i in range(n):
                image_index, source = self._locate(i)
                scene = self.scene(image_index)
                cls = SYNTHETIC_CLASSES[scene.objects[source].class_name]
                if resized is None or resized[0] != image_index:
                    resized = (image_index, _resize(scene.image, image_size))
                out["images"][i] = resized[1]
                out["masks"][i] = scene.mask(source)
                out["audio"][i] = generate_audio(c, image_index, source, cls.name)
                out["category"][i] = BROAD_CATEGORIES.index(cls.category)
                out["class_index"][i] = cls.index
                out["image_index"][i] = image_index
                out["source_index"][i] = source
                for cat in scene.visible_categories:
                    out["visible_categories"][i, BROAD_CATEGORIES.index(cat)] = True
                bar.update()
        finally:
            bar.close()
        return out


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    # PIL's bilinear filter widens its support when downscaling, i.e. it antialiases like an area
    # average instead of sampling every other pixel.
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Masks are stored bit-packed (8x smaller; they would otherwise be a quarter of the file).
    # Written through a file object: np.savez would append ".npz" to the temporary name.
    packed = dict(arrays)
    masks = packed.pop("masks")
    packed["masks_packbits"] = np.packbits(masks, axis=-1)
    packed["masks_shape"] = np.asarray(masks.shape, np.int64)
    with open(path, "wb") as fh:
        np.savez(fh, **packed)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    shape = tuple(int(v) for v in out.pop("masks_shape"))
    out["masks"] = np.unpackbits(out.pop("masks_packbits"), axis=-1, count=shape[-1]).view(bool).reshape(shape)
    return out


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _write_jpeg(path: Path, image: np.ndarray | Path) -> None:
    img = Image.open(image).convert("RGB") if isinstance(image, (str, Path)) else Image.fromarray(image)
    # 4:4:4 chroma: the per-channel pixel noise of the scenes suffers badly from 4:2:0 subsampling
    # (mean abs error 4.9 vs 3.2 grey levels at quality 95)
    atomic_write(path, lambda tmp: img.save(tmp, format="JPEG", quality=95, subsampling=0))


def _write_wav(path: Path, audio: np.ndarray | Path, sample_rate: int) -> None:
    if isinstance(audio, (str, Path)):
        audio, sample_rate = sf.read(audio, dtype="float32", always_2d=False)
    # Quantize ourselves (round(x·32768)) and hand soundfile int16: reading back as float
    # (int / 32768) then differs from the input by at most half a step, 1/65536.
    pcm = np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    atomic_write(path, lambda tmp: sf.write(tmp, pcm, sample_rate, subtype="PCM_16", format="WAV"))


def _normalized(x: float, size: int) -> float:
    """``x / size``, nudged up by one ulp where needed so that ``int(v * size) == x`` for integral x.

    Loaders of the official format compute ``(clip(b, 0, 1) * 224).astype(int)`` (truncation); for
    some integers (61, 115, 122, ...) ``x / 224 * 224`` is one ulp below ``x`` and would lose a pixel.
    """
    v = x / size
    if v * size < x:
        v = float(np.nextafter(v, np.inf))
    return float(v)


def write_vggss_layout(
    dataset: Sequence[Sample],
    root: str | Path,
    progress: bool = True,
    class_names: Literal["vggsound", "synthetic"] = "vggsound",
) -> Path:
    """Write a set in the official VGG-SS layout, so the real-data loaders can read it.

    Layout: ``root/frames/<id>.jpg`` (JPEG quality 95, 4:4:4), ``root/audio/<id>.wav`` (16-bit PCM) and
    ``root/vggss.json``, a one-line JSON list of ``{"file": id, "class": class, "bbox":
    [[x1, y1, x2, y2], ...]}`` with coordinates normalized to [0, 1] by the image width/height,
    exactly like the published ``vggss.json``. ``class`` is the class's real VGGSound name
    (:attr:`SyntheticClass.vggsound_class`, e.g. ``"playing cello"``, so that loaders mapping VGGSound
    classes to broad categories accept it) or, with ``class_names="synthetic"``, the synthetic name.
    Also ``root/vggss_class_files_dict.json`` (broad category → list of ids), the stand-in for the
    unpublished file of that name vssl_eval reads to draw offscreen audio. Every file is written
    atomically.

    Returns:
        ``root``.
    """
    root = Path(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    entries, by_category = [], {}
    for s in tqdm(dataset, total=len(dataset), desc="VGG-SS layout", disable=not progress):
        _write_jpeg(root / "frames" / f"{s.id}.jpg", s.image)
        _write_wav(root / "audio" / f"{s.id}.wav", s.audio, s.sample_rate)
        h, w = s.gt_mask.shape
        bbox = [
            [_normalized(x1, w), _normalized(y1, h), _normalized(x2, w), _normalized(y2, h)]
            for x1, y1, x2, y2 in np.asarray(s.boxes, np.float64)
        ]
        cls = s.classes[0]
        if class_names == "vggsound" and cls in SYNTHETIC_CLASSES:
            cls = SYNTHETIC_CLASSES[cls].vggsound_class
        entries.append({"file": s.id, "class": cls, "bbox": bbox})
        cat = s.category if isinstance(s.category, str) else s.category[0]
        by_category.setdefault(cat, []).append(s.id)
    _write_text(root / "vggss.json", json.dumps(entries))
    _write_text(root / "vggss_class_files_dict.json", json.dumps(by_category))
    return root


def is3_stem(sample: Sample) -> str:
    """IS3-style file stem ``<classA>_<classB>_<image index>_<target>`` of a two-source sample.

    Classes are written as their IS3 labels (:func:`class_token`: ``"man speaking"`` → ``"male"``,
    ``"alarm clock"`` → ``"alarmclock"``, one token each, as IS3 writes ``acousticguitar``);
    :func:`class_from_token` inverts it.
    """
    a, b = sample.meta["sounding_classes"]
    return f"{class_token(a)}_{class_token(b)}_{sample.meta['image_index']}_{class_token(sample.classes[0])}"


def write_is3_layout(dataset: Sequence[Sample], root: str | Path, progress: bool = True) -> Path:
    """Write a two-source set (``sources=2``) in the IS3 layout.

    Layout: ``root/images/<stem>.jpg`` (JPEG quality 95, 4:4:4), ``root/audio_wav/<stem>.wav`` (16-bit PCM)
    and ``root/synthetic3240_bbox.json``, a list of ``{"image": <absolute path of the jpg>, "audio":
    <absolute path of the wav>, "gt_box": [x1, y1, x2, y2]}`` with ONE box per entry in pixels of the
    224 × 224 image (like the published file, whose paths are absolute on the authors' server and
    whose loaders only use the base names). Stems follow :func:`is3_stem`. Also
    ``root/IS3_class_files_dict.json`` (broad category → list of stems), the stand-in for the
    unpublished file vssl_eval reads. Note: the published JSON's images live in ``visual_frames/``;
    this layout uses ``images/``. Every file is written atomically.

    Returns:
        ``root``.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "audio_wav").mkdir(parents=True, exist_ok=True)
    absroot = root.resolve()
    entries, by_category = [], {}
    for s in tqdm(dataset, total=len(dataset), desc="IS3 layout", disable=not progress):
        if len(s.meta.get("sounding_classes", ())) != 2:
            raise ValueError(f"{s.id}: the IS3 layout needs two-source samples (sources=2)")
        stem = is3_stem(s)
        img = absroot / "images" / f"{stem}.jpg"
        wav = absroot / "audio_wav" / f"{stem}.wav"
        _write_jpeg(img, s.image)
        _write_wav(wav, s.audio, s.sample_rate)
        box = [float(v) for v in np.asarray(s.boxes, np.float64)[0]]
        entries.append({"image": str(img), "audio": str(wav), "gt_box": box})
        cat = s.category if isinstance(s.category, str) else s.category[0]
        by_category.setdefault(cat, []).append(stem)
    _write_text(root / "synthetic3240_bbox.json", json.dumps(entries))
    _write_text(root / "IS3_class_files_dict.json", json.dumps(by_category))
    return root


# --------------------------------------------------------------------------------------------------
# The negatives manifest of a synthetic set, and the registered factory

MANIFEST_IMAGE_SIZE = 112
"""Image size of the arrays the manifest's categories are read from: the demo models' input size
(``DEMO_PREPROCESSING.image_size``, tested equal), so the manifest and the engine share one cache file."""


def synthetic_manifest(ds: SyntheticSet, n_seeds: int = DEFAULTS.n_seeds, manifest_seed: int = DEFAULTS.manifest_seed) -> Manifest:
    """The extended negatives of a synthetic set (off-screen clips drawn from the set itself, from a
    category absent from every object of the image).

    Drawing needs every sample's categories, read from the set's arrays at the demo models' image
    size (generated once and cached; the engine reads the same arrays), and the manifest is cached
    beside them, keyed by the set's
    config, the generator version, the seeds and the source of :mod:`vssl_helpers.negatives` (the
    draw code). A cached file is read with its content hash and every draw validated; one that fails
    is drawn again.
    """
    from .. import negatives
    from ..negatives import ManifestError, build_manifest, load_manifest

    name = f"synthetic-{ds.config.split}-s{ds.config.sources}-seed{ds.config.seed}-n{ds.config.n_images}"
    h = hashlib.sha256(repr((ds.config, GENERATOR_VERSION, n_seeds, manifest_seed)).encode())
    h.update(Path(negatives.__file__).read_bytes())
    path = default_cache_dir() / "manifests" / f"{name}-{h.hexdigest()[:16]}.txt"
    if path.is_file():
        try:
            return load_manifest(path)
        except ManifestError:  # corrupted or edited: draw again
            pass
    manifest = build_manifest(_items_from_arrays(ds), None, name=name, n_seeds=n_seeds, manifest_seed=manifest_seed)
    atomic_write(path, lambda tmp: tmp.write_text(manifest.dumps(), encoding="utf-8"))
    return manifest


def _items_from_arrays(ds: SyntheticSet) -> list[NegativeItem]:
    """What :func:`~vssl_helpers.negatives.items_from_samples` reads from each sample of ``ds``
    (categories sounding and visible, own audio category, image, duration), read from the set's
    cached arrays instead: the first run generates every scene and clip once (for the arrays the
    engine reads too), not a second time for the manifest. Same items, same manifest (tested)."""
    from ..categories import category_order
    from ..negatives import NegativeItem
    from ..progress import in_notebook

    arr = ds.arrays(image_size=MANIFEST_IMAGE_SIZE, progress=not in_notebook())
    n, t = arr["audio"].shape
    duration = float(t / ds.config.sample_rate)
    items = []
    for i in range(n):
        sid = str(arr["ids"][i])
        own = BROAD_CATEGORIES[int(arr["category"][i])]
        visible = {BROAD_CATEGORIES[k] for k in np.flatnonzero(arr["visible_categories"][i])}
        image = f"image-{int(arr['image_index'][i])}"
        items.append(NegativeItem(id=sid, exclude=category_order({own} | visible), audio_category=own,
                                  image_id=None if image == sid else image, duration=duration))
    return items


"""Images of the ``synthetic`` test set a run evaluates unless told otherwise."""


def synthetic_testset(n_images: int | None = None, manifest: Any = None) -> SyntheticSet:
    """The registered ``synthetic`` test set: the embedded VGG-SS-like benchmark (test split, one
    sounding object per image, seed 0) of ``n_images`` images (default ``DEFAULTS.n_images``).

    A user's ``manifest`` fixes the number of images (``n_images`` of ``None`` takes it from the
    manifest; another value is refused).

    Raises:
        TestSetError: ``n_images`` below 1 or disagreeing with ``manifest``.
    """
    from .registry import TestSetError

    if manifest is not None:
        fixed = len({it.image_id or it.id for it in manifest.items})
        if n_images is not None and n_images != fixed:
            raise TestSetError(
                f"n_images: {n_images} given, but the manifest {manifest.name} "
                f"covers {fixed} images; leave the image count out (it is taken from the manifest) or give {fixed}"
            )
        n_images = fixed
    n = DEFAULTS.n_images if n_images is None else int(n_images)
    if n < 1:
        raise TestSetError(f"n_images: must be >= 1, got {n}")
    return SyntheticSet(SyntheticConfig(split="test", n_images=n, sources=1, seed=0))
