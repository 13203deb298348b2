"""The embedded procedural benchmark (vssl_helpers.testsets.synthetic): determinism, scene and mask
consistency, class sounds, the arrays() cache and the official-layout writers.

Configurations are tiny (a handful of images); the whole file runs in a few seconds on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from vssl_helpers.testsets import synthetic as syn
from vssl_helpers.testsets.base import BROAD_CATEGORIES, Sample
from vssl_helpers.testsets.synthetic import (
    CLASS_NAMES,
    SYNTHETIC_CLASSES,
    SyntheticConfig,
    SyntheticSet,
    acoustic_neighbour,
    class_from_token,
    class_token,
    neighbour_sound,
    shaped_noise,
    synthesize_sound,
    write_is3_layout,
    write_vggss_layout,
)

REPO = Path(__file__).resolve().parents[1]


def tiny(**kw) -> SyntheticConfig:
    kw.setdefault("n_images", 5)
    return SyntheticConfig(**kw)


def digest(s: Sample) -> str:
    h = hashlib.sha256()
    for a in (s.image, s.audio, s.gt_mask, s.boxes):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr((s.id, s.category, s.classes, s.meta)).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# classes


def test_class_table():
    assert len(SYNTHETIC_CLASSES) >= 24
    for cat in BROAD_CATEGORIES:
        members = [c for c in SYNTHETIC_CLASSES.values() if c.category == cat]
        assert len(members) >= 3, cat
        assert len({c.hue for c in members}) == len(members)  # each class has its own look
    assert [c.index for c in SYNTHETIC_CLASSES.values()] == list(range(len(CLASS_NAMES)))
    assert len({class_token(n) for n in CLASS_NAMES}) == len(CLASS_NAMES)
    for n in CLASS_NAMES:
        assert "_" not in class_token(n) and class_from_token(class_token(n)) == n
    assert len({c.vggsound_class for c in SYNTHETIC_CLASSES.values()}) == len(CLASS_NAMES)


def test_class_names_agree_with_the_category_maps():
    # The official-layout writers use real VGGSound classes and IS3 labels: they must belong to the
    # same broad category under the project's maps, or the real-data loaders would disagree.
    categories = pytest.importorskip("vssl_helpers.categories")
    vgg = categories.vggsound_to_broad()
    labels = categories.is3_labels()
    for c in SYNTHETIC_CLASSES.values():
        assert vgg[c.vggsound_class] == c.category, c.name
        if c.is3_label in labels:
            assert labels[c.is3_label].broad_category == c.category, c.name
    missing = [c.is3_label for c in SYNTHETIC_CLASSES.values() if c.is3_label not in labels]
    assert missing == ["basketballbounce"]  # IS3 has only two "others" sources


def test_sounds_are_valid_and_deterministic():
    for name in CLASS_NAMES:
        a = synthesize_sound(name, np.random.default_rng(7), duration=0.5)
        b = synthesize_sound(name, np.random.default_rng(7), duration=0.5)
        assert a.dtype == np.float32 and a.shape == (8000,)
        assert np.abs(a).max() <= 1.0 and np.abs(a).max() > 0.1
        assert a.tobytes() == b.tobytes()
    with pytest.raises(KeyError):
        synthesize_sound("kazoo", np.random.default_rng(0))


def _band_features(x: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Mean and std over frames of 24 log-spaced log band energies (a crude audio front end)."""
    n = 512
    frames = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
    p = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    f = np.fft.rfftfreq(n, 1 / sr)
    edges = np.geomspace(40, 7800, 25)
    bands = np.stack([p[:, (f >= lo) & (f < hi)].sum(1) for lo, hi in zip(edges[:-1], edges[1:])], 1)
    le = np.log(bands + 1e-8)
    return np.concatenate([le.mean(0), le.std(0)])


def test_categories_are_distinguishable_from_sound():
    # Nearest class centroid on standardized band features, scored on the broad category of
    # held-out clips. Chance is 1/8.
    rng = np.random.default_rng(2024)
    feats, cats, classes, train = [], [], [], []
    for name, c in SYNTHETIC_CLASSES.items():
        for k in range(7):
            feats.append(_band_features(synthesize_sound(name, rng, duration=1.0)))
            cats.append(BROAD_CATEGORIES.index(c.category))
            classes.append(c.index)
            train.append(k < 4)
    x, cats, classes, train = map(np.asarray, (feats, cats, classes, train))
    z = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    centroids = np.stack([z[train & (classes == j)].mean(0) for j in range(len(CLASS_NAMES))])
    cat_of_class = np.array([BROAD_CATEGORIES.index(c.category) for c in SYNTHETIC_CLASSES.values()])
    pred = cat_of_class[np.argmin(((z[~train][:, None] - centroids[None]) ** 2).sum(-1), axis=1)]
    acc = (pred == cats[~train]).mean()
    assert acc > 0.7, acc
    for c in range(len(BROAD_CATEGORIES)):  # no category is unrecognisable
        assert (pred[cats[~train] == c] == c).mean() >= 1 / 3, BROAD_CATEGORIES[c]


def test_shaped_noise_follows_class_spectrum():
    low = shaped_noise("car engine", np.random.default_rng(0))
    high = shaped_noise("bird chirping", np.random.default_rng(0))
    assert low.dtype == np.float32 and low.shape == (32000,) and np.abs(high).max() <= 1.0

    def centroid(x):
        p = np.abs(np.fft.rfft(x)) ** 2
        return (np.fft.rfftfreq(len(x), 1 / 16000) * p).sum() / p.sum()

    assert centroid(low) < 1000 < 2500 < centroid(high)
    # stationary: no silent gaps, unlike the class's own bursts
    frames = high.reshape(-1, 1600)
    assert frames.std(1).min() > 0.3 * frames.std(1).max()
    again = shaped_noise("bird chirping", np.random.default_rng(0))
    assert again.tobytes() == high.tobytes()


def test_neighbour_sound_is_another_category():
    for name in CLASS_NAMES:
        other = acoustic_neighbour(name)
        assert SYNTHETIC_CLASSES[other].category != SYNTHETIC_CLASSES[name].category
    wav, other = neighbour_sound("cello", np.random.default_rng(3), duration=0.5)
    assert other == acoustic_neighbour("cello") and wav.dtype == np.float32 and wav.shape == (8000,)
    wav2, _ = neighbour_sound("cello", np.random.default_rng(3), duration=0.5)
    assert wav.tobytes() == wav2.tobytes()


# ---------------------------------------------------------------------------------------------
# determinism


def test_same_seed_is_byte_identical_in_any_order():
    for sources in (1, 2):
        cfg = tiny(sources=sources)
        forward = [digest(s) for s in SyntheticSet(cfg)]
        ds = SyntheticSet(cfg)
        backward = [digest(ds[i]) for i in reversed(range(len(ds)))][::-1]
        assert forward == backward
        assert digest(SyntheticSet(cfg)[3]) == forward[3]  # alone
        assert digest(SyntheticSet(cfg)[-1]) == forward[-1]


def test_same_seed_is_byte_identical_in_another_process():
    cfg = tiny(sources=2, seed=5)
    code = (
        "import hashlib, numpy as np\n"
        "from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet\n"
        f"s = SyntheticSet(SyntheticConfig(n_images=5, sources=2, seed=5))[7]\n"
        "h = hashlib.sha256()\n"
        "[h.update(np.ascontiguousarray(a).tobytes()) for a in (s.image, s.audio, s.gt_mask)]\n"
        "print(h.hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    s = SyntheticSet(cfg)[7]
    h = hashlib.sha256()
    for a in (s.image, s.audio, s.gt_mask):
        h.update(np.ascontiguousarray(a).tobytes())
    assert out.stdout.strip() == h.hexdigest()


@pytest.mark.parametrize("other", [dict(seed=1), dict(split="train")])
def test_different_seed_or_split_differs(other):
    a = SyntheticSet(tiny(n_images=3))
    b = SyntheticSet(tiny(n_images=3, **other))
    for sa, sb in zip(a, b):
        assert not np.array_equal(sa.image, sb.image)
        assert not np.array_equal(sa.audio, sb.audio)
        assert not np.array_equal(sa.gt_mask, sb.gt_mask)
        assert sa.id != sb.id


def test_config_validation():
    for bad in (dict(split="val"), dict(sources=3), dict(seed=-1), dict(distractors=(2, 1)),
                dict(sources=2, distractors=(1, 7))):
        with pytest.raises(ValueError):
            SyntheticConfig(**bad)


# ---------------------------------------------------------------------------------------------
# scenes and masks


def test_sample_contract():
    ds = SyntheticSet(tiny(n_images=4))
    assert len(ds) == 4 and ds.ids[2] == "syn-test-s1-seed0-00002"
    for i, s in enumerate(ds):
        assert s.id == ds.ids[i]
        assert s.image.shape == (224, 224, 3) and s.image.dtype == np.uint8
        assert s.gt_mask.shape == (224, 224) and s.gt_mask.dtype == bool and s.gt_mask.any()
        assert s.audio.dtype == np.float32 and s.audio.shape == (32000,) and s.sample_rate == 16000
        assert s.category == SYNTHETIC_CLASSES[s.classes[0]].category
        assert s.boxes.dtype == np.float32 and s.boxes.shape == (1, 4)
        ys, xs = np.nonzero(s.gt_mask)
        assert s.boxes[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        m = s.meta
        assert m["image_index"] == i and m["other_source"] is None
        assert 1 <= len(m["silent_classes"]) <= 2
        cats = [SYNTHETIC_CLASSES[c].category for c in m["silent_classes"] + (s.classes[0],)]
        assert len(set(cats)) == len(cats)  # silent objects are of other categories
        assert set(m["visible_categories"]) == set(cats)
    with pytest.raises(IndexError):
        ds[4]


def test_two_sources_give_two_samples_per_image():
    ds = SyntheticSet(tiny(n_images=3, sources=2))
    assert len(ds) == 6 and ds.ids[:2] == ["syn-test-s2-seed0-00000_a", "syn-test-s2-seed0-00000_b"]
    for k in range(3):
        a, b = ds[2 * k], ds[2 * k + 1]
        assert np.array_equal(a.image, b.image)
        assert a.category != b.category
        assert a.meta["other_source"] == b.id and b.meta["other_source"] == a.id
        assert a.meta["sounding_classes"] == b.meta["sounding_classes"] == (a.classes[0], b.classes[0])
        assert not (a.gt_mask & b.gt_mask).any() and a.gt_mask.any() and b.gt_mask.any()
        assert not np.array_equal(a.audio, b.audio)
        silent_cats = {SYNTHETIC_CLASSES[c].category for c in a.meta["silent_classes"]}
        assert a.category not in silent_cats and b.category not in silent_cats


def _hsv(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).convert("HSV"), np.float64) / 255.0


def test_masks_cover_the_rendered_objects():
    cfg = tiny(n_images=6, sources=2, distractors=(2, 2))
    ds = SyntheticSet(cfg)
    for i, s in enumerate(ds):
        scene = ds.scene(s.meta["image_index"])
        obj = scene.objects[s.meta["source_index"]]
        hsv = _hsv(s.image)
        inside = s.gt_mask
        background = scene.labels < 0
        # hue inside the mask is the class hue (texture only darkens); circular distance
        dh = np.abs(hsv[..., 0][inside] - SYNTHETIC_CLASSES[s.classes[0]].hue)
        dh = np.minimum(dh, 1 - dh)
        assert np.median(dh) < 0.03, (s.id, np.median(dh))
        # salient object on a muted background
        assert hsv[..., 1][inside].mean() > 0.5 > hsv[..., 1][background].mean() + 0.1
        # mean colour in the mask is close to the object's colour (shading darkens at most to 0.5x)
        mean_in = s.image[inside].mean(0) / 255
        rgb = np.array(obj.rgb)
        assert np.abs(mean_in - rgb * np.clip(mean_in.sum() / rgb.sum(), 0.5, 1.0)).max() < 0.08
        assert np.abs(mean_in - s.image[background].mean(0) / 255).max() > 0.1
        # the mask is exactly the object's label and it keeps >= half of its pixels visible
        assert np.array_equal(inside, scene.labels == s.meta["source_index"])
        assert obj.visible_pixels == inside.sum() >= 100


# ---------------------------------------------------------------------------------------------
# arrays() and its cache


def test_arrays_match_samples_and_are_cached(tmp_path, monkeypatch):
    cfg = tiny(n_images=3, sources=2)
    ds = SyntheticSet(cfg)
    arr = ds.arrays(image_size=56, cache_dir=tmp_path, progress=False)
    n = len(ds)
    assert arr["images"].shape == (n, 56, 56, 3) and arr["images"].dtype == np.uint8
    assert arr["masks"].shape == (n, 224, 224) and arr["masks"].dtype == bool
    assert arr["audio"].shape == (n, 32000) and arr["audio"].dtype == np.float32
    assert arr["visible_categories"].shape == (n, 8) and arr["visible_categories"].dtype == bool
    for i, s in enumerate(ds):
        assert np.array_equal(arr["masks"][i], s.gt_mask) and np.array_equal(arr["audio"][i], s.audio)
        assert BROAD_CATEGORIES[arr["category"][i]] == s.category
        assert CLASS_NAMES[arr["class_index"][i]] == s.classes[0]
        assert arr["image_index"][i] == s.meta["image_index"] and arr["ids"][i] == s.id
        assert {BROAD_CATEGORIES[j] for j in np.flatnonzero(arr["visible_categories"][i])} == set(
            s.meta["visible_categories"]
        )
        small = np.asarray(Image.fromarray(s.image).resize((56, 56), Image.Resampling.BILINEAR))
        assert np.array_equal(arr["images"][i], small)
    assert [p.name for p in tmp_path.iterdir()] == [ds.cache_path(56, tmp_path).name]

    def boom(*a, **k):
        raise AssertionError("regenerated despite the cache")

    monkeypatch.setattr(syn, "generate_scene", boom)
    monkeypatch.setattr(syn, "generate_audio", boom)
    again = SyntheticSet(cfg).arrays(image_size=56, cache_dir=tmp_path, progress=False)
    assert again.keys() == arr.keys() and again["masks"].dtype == bool
    for k in arr:
        assert np.array_equal(again[k], arr[k]), k
    # another image size or config is another file
    assert ds.cache_path(112, tmp_path) != ds.cache_path(56, tmp_path)
    assert SyntheticSet(tiny(n_images=3, sources=2, seed=1)).cache_path(56, tmp_path) != ds.cache_path(56, tmp_path)


def test_arrays_cache_write_is_atomic(tmp_path, monkeypatch):
    ds = SyntheticSet(tiny(n_images=2))

    def partial_then_crash(path, arrays):
        Path(path).write_bytes(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(syn, "_save_npz", partial_then_crash)
    with pytest.raises(KeyboardInterrupt):
        ds.arrays(image_size=32, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither a final file nor a temporary one
    monkeypatch.undo()
    # a corrupt file at the final path (e.g. from an older, non-atomic writer) is regenerated
    ds.cache_path(32, tmp_path).write_bytes(b"garbage")
    arr = ds.arrays(image_size=32, cache_dir=tmp_path, progress=False)
    assert arr["images"].shape == (2, 32, 32, 3)
    assert [p.name for p in tmp_path.iterdir()] == [ds.cache_path(32, tmp_path).name]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("VSSL_CACHE", str(tmp_path))
    assert syn.default_cache_dir() == tmp_path / "synthetic"
    monkeypatch.delenv("VSSL_CACHE")
    assert syn.default_cache_dir() == Path.home() / ".cache" / "vssl-companion" / "synthetic"


# ---------------------------------------------------------------------------------------------
# official layouts, read back with minimal readers written here


def _read_wav(path: Path) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32")
    assert sr == 16000
    return audio


def assert_jpeg_close(decoded: np.ndarray, original: np.ndarray) -> None:
    # JPEG removes part of the per-pixel noise (std 6.4 grey levels) but keeps local means
    diff = decoded - original
    assert np.abs(diff).mean() < 4.0
    blocks = diff.reshape(28, 8, 28, 8, 3).mean(axis=(1, 3))
    assert np.abs(blocks).mean() < 1.0


def test_vggss_layout_round_trip(tmp_path):
    ds = SyntheticSet(tiny(n_images=4))
    root = write_vggss_layout(ds, tmp_path / "vggss", progress=False)
    entries = json.loads((root / "vggss.json").read_text())
    assert [e["file"] for e in entries] == ds.ids
    assert all(set(e) == {"file", "class", "bbox"} for e in entries)
    for e, s in zip(entries, ds):
        assert e["class"] == SYNTHETIC_CLASSES[s.classes[0]].vggsound_class
        b = np.array(e["bbox"])
        assert b.shape == (1, 4) and (0 <= b).all() and (b <= 1).all()
        assert np.allclose(b * 224, s.boxes, atol=1e-9)
        # the official loaders truncate: (clip(b, 0, 1) * 224).astype(int)
        assert np.array_equal((np.clip(b, 0, 1) * 224).astype(int), s.boxes.astype(int))
        audio = _read_wav(root / "audio" / f"{e['file']}.wav")
        assert audio.shape == s.audio.shape and np.abs(audio - s.audio).max() <= 1 / 32768
        img = np.asarray(Image.open(root / "frames" / f"{e['file']}.jpg").convert("RGB"), np.float64)
        assert img.shape == (224, 224, 3)
        assert_jpeg_close(img, s.image)
    by_cat = json.loads((root / "vggss_class_files_dict.json").read_text())
    assert sorted(i for ids in by_cat.values() for i in ids) == sorted(ds.ids)
    assert not list(root.rglob("*.tmp"))


def test_is3_layout_round_trip(tmp_path):
    ds = SyntheticSet(tiny(n_images=3, sources=2))
    root = write_is3_layout(ds, tmp_path / "is3", progress=False)
    entries = json.loads((root / "synthetic3240_bbox.json").read_text())
    assert len(entries) == len(ds)
    for e, s in zip(entries, ds):
        assert set(e) == {"image", "audio", "gt_box"}
        stem = Path(e["image"]).stem
        assert Path(e["audio"]).stem == stem and Path(e["image"]).parent.name == "images"
        a, b, number, target = stem.split("_")
        assert (class_from_token(a), class_from_token(b)) == s.meta["sounding_classes"]
        assert int(number) == s.meta["image_index"] and class_from_token(target) == s.classes[0]
        assert e["gt_box"] == s.boxes[0].tolist()
        audio = _read_wav(Path(e["audio"]))
        assert np.abs(audio - s.audio).max() <= 1 / 32768
        img = np.asarray(Image.open(e["image"]).convert("RGB"), np.float64)
        assert_jpeg_close(img, s.image)
    stems = [Path(e["image"]).stem for e in entries]
    assert len(set(stems)) == len(stems)
    assert not list(root.rglob("*.tmp"))
    with pytest.raises(ValueError):
        write_is3_layout(SyntheticSet(tiny(n_images=1)), tmp_path / "bad", progress=False)


def test_synthetic_manifest_cache_is_exact_and_self_healing(tmp_path, monkeypatch):
    """The cached manifest is the drawn one (same rows and hash); an edited cache file is detected
    by its content hash and drawn again; another seed count gets its own file."""
    from vssl_helpers.embedded import synthetic_manifest
    from vssl_helpers.negatives import manifest_for_samples

    monkeypatch.setenv("VSSL_CACHE", str(tmp_path))
    ds = SyntheticSet(SyntheticConfig(split="test", n_images=6, sources=2, seed=5))
    first = synthetic_manifest(ds, n_seeds=3)
    fresh = manifest_for_samples(ds, name=first.name, n_seeds=3, manifest_seed=0)
    files = list((tmp_path / "synthetic" / "manifests").glob("*.txt"))
    assert len(files) == 1
    cached = synthetic_manifest(ds, n_seeds=3)
    assert cached.sha256 == first.sha256 and cached.to_frame().equals(first.to_frame())
    assert fresh.sha256 == first.sha256, "the cache returns exactly the drawn manifest"
    text = files[0].read_text()
    lines = text.splitlines(keepends=True)
    last = lines[-1]
    files[0].write_text("".join(lines[:-1]) + str((int(last[0]) + 1) % 10) + last[1:])  # one edited draw
    assert files[0].read_text() != text
    healed = synthetic_manifest(ds, n_seeds=3)
    assert healed.sha256 == first.sha256
    assert synthetic_manifest(ds, n_seeds=2).n_seeds == 2
    assert len(list((tmp_path / "synthetic" / "manifests").glob("*.txt"))) == 2
