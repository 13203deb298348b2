"""VGG-SS loader: the real metadata (quirks as counted in shared/data/README.md), GT masks, media."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from vssl_helpers.categories import CategoryError
from vssl_helpers.testsets.media import MediaError, boxes_to_masks, read_audio, resample, to_mono
from vssl_helpers.testsets.vggss import VGGSS_BLOB_SHA1, git_blob_sha1, load_vggss, normalized_to_pixels

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VGGSS_JSON = SHARED / "vggss" / "vggss.json"
needs_shared = pytest.mark.skipif(
    not VGGSS_JSON.is_file(), reason=f"real metadata not found at {VGGSS_JSON} (clone shared/ beside the repo)"
)

SENTINEL_IDS = {
    "Db6Hjt0x28k_000056", "5VCZHHd4UKI_000098", "Fot4v0DdGyE_000020", "sYIymaJi6tc_000090", "qLVjaU5V9f0_000150",
    "7Soo7mXCnq0_000063", "pbVP6Z1c4_k_000420", "-ANxUxvGASw_000010", "2xBIHi3oqy4_000030", "P-NCCepeHdI_000125",
    "MKC9LvRivTM_000030", "REDLY6m3Muw_000042",
}


@pytest.fixture(scope="module")
def vggss():
    return load_vggss()


def reference_masks(entries: list[dict]) -> np.ndarray:
    """The rule of LVS/EZ-VSL/vssl_eval, one box at a time: int(clip(b,0,1)*224), gt[y1:y2, x1:x2] = 1."""
    out = np.zeros((len(entries), 224, 224), bool)
    for i, e in enumerate(entries):
        for b in e["bbox"]:
            x1, y1, x2, y2 = (np.clip(np.array(b, dtype=float), 0, 1) * 224).astype(int)
            out[i, y1:y2, x1:x2] = True
    return out


# ---------------------------------------------------------------------------------------------- real


def test_shipped_copy_is_the_published_file(vggss):
    assert vggss.source["git_blob_sha1"] == VGGSS_BLOB_SHA1
    assert "upstream" in vggss.source


@needs_shared
def test_shared_file_loads_identically(vggss):
    assert git_blob_sha1(VGGSS_JSON.read_bytes()) == VGGSS_BLOB_SHA1
    shared = load_vggss(VGGSS_JSON)
    assert shared.ids == vggss.ids
    assert np.array_equal(shared.gt_masks, vggss.gt_masks)
    assert shared.report.counts == vggss.report.counts


def test_counts_and_classes(vggss):
    assert len(vggss) == 5158 == vggss.report.n_entries
    assert len(set(vggss.ids)) == 5158
    classes = Counter(s.classes[0] for s in vggss)
    assert len(classes) == 221
    assert min(classes.values()) == 10 and max(classes.values()) == 45
    assert all(isinstance(s.category, str) and s.category == s.meta["audio_category"] for s in vggss)
    # box-count distribution of the README
    nbox = Counter(len(s.boxes) for s in vggss)
    assert nbox == {1: 4619, 2: 385, 3: 94, 4: 37, 5: 18, 6: 3, 7: 2}
    # stat.csv coarse groups, as the README counts them
    groups = Counter(s.meta["vggsound_group"] for s in vggss)
    assert groups == {"animals": 1500, "music": 1302, "people": 866, "vehicle": 709, "others": 391,
                      "home": 133, "tools": 116, "sports": 104, "nature": 37}


def test_quirks_as_the_readme_states(vggss):
    c, ids = vggss.report.counts, vggss.report.ids
    assert c["sentinel_boxes"] == 12 and set(ids["sentinel_boxes"]) == SENTINEL_IDS
    assert c["degenerate_boxes"] == 6
    assert c["entries_with_unusable_box"] == 18
    assert c["empty_gt"] == 2 and set(ids["empty_gt"]) == {"M1P1xla8rg0_000000", "MKC9LvRivTM_000030"}
    assert c["integer_coordinates"] == 126
    assert c["multi_box_entries"] == 385 + 94 + 37 + 18 + 3 + 2
    for q in ("malformed_entries", "duplicate_ids", "unmapped_class", "nonstandard_ids", "malformed_boxes",
              "out_of_range_boxes", "empty_after_rounding_boxes"):
        assert c[q] == 0, q
    assert "sentinel_boxes: 12" in vggss.report.summary()
    assert set(vggss.report.to_frame().columns) == {"quirk", "count", "description", "examples"}


def test_masks_follow_the_reference_rule(vggss):
    from vssl_helpers.testsets.vggss import read_vggss_annotations

    entries, _ = read_vggss_annotations()
    ref = reference_masks(entries)
    assert vggss.gt_masks.shape == (5158, 224, 224) and vggss.gt_masks.dtype == bool
    assert np.array_equal(vggss.gt_masks, ref)
    # each Sample's mask is a view of the stacked array
    s = vggss[7]
    assert np.shares_memory(s.gt_mask, vggss.gt_masks) and np.array_equal(s.gt_mask, vggss.gt_masks[7])
    empty = vggss[vggss.index("MKC9LvRivTM_000030")]
    assert not empty.gt_mask.any()


def test_rounding_rule_by_hand():
    px = normalized_to_pixels(np.array([[0.1, 0.2, 0.5, 0.6], [-2.8823037615171176e16, 0, 0.5, -2.88e16]]))
    assert px.tolist() == [[22, 44, 112, 134], [0, 0, 112, 0]]
    m = boxes_to_masks(px, np.array([0, 0]), 1)[0]
    assert m.sum() == (112 - 22) * (134 - 44)
    assert m[44, 22] and m[133, 111] and not m[134, 111] and not m[133, 112] and not m[43, 22]


def test_boxes_to_masks_edge_cases():
    boxes = np.array([[5, 5, 10, 10], [8, 8, 12, 12], [3, 3, 3, 9], [9, 9, 4, 4], [-5, -5, 300, 2], [0, 0, 1, 1]])
    owner = np.array([2, 2, 0, 0, 3, 2])  # not grouped: allowed
    m = boxes_to_masks(boxes, owner, 5, size=16)
    assert m.shape == (5, 16, 16)
    assert not m[0].any() and not m[1].any() and not m[4].any()  # degenerate / inverted / no boxes
    assert m[2].sum() == 25 + 16 - 4 + 1
    assert m[3].sum() == 16 * 2  # clipped to the frame
    assert boxes_to_masks(np.zeros((0, 4)), np.zeros(0), 3).shape == (3, 224, 224)
    with pytest.raises(ValueError, match="owner"):
        boxes_to_masks(boxes, owner, 2, size=16)


def test_drop_empty_gt():
    ds = load_vggss(drop_empty_gt=True)
    assert len(ds) == 5156 and ds.gt_masks.shape[0] == 5156
    assert ds.gt_masks.reshape(5156, -1).any(1).all()
    assert ds.report.counts["dropped_empty_gt"] == 2


# ---------------------------------------------------------------------------------------------- malformed input


def _write_json(path: Path, entries) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_malformed_file_never_crashes(tmp_path):
    entries = [
        {"file": "aaaaaaaaaaa_000001", "class": "dog barking", "bbox": [[0.1, 0.1, 0.5, 0.5]]},
        {"file": "aaaaaaaaaaa_000001", "class": "dog barking", "bbox": [[0, 0, 1, 1]]},  # duplicate
        {"file": "bbbbbbbbbbb_000002", "class": "playing piano", "bbox": [[0.2, 0.2, "x", 0.4], [0.1, 0.1]]},
        {"file": "ccc", "class": "helicopter", "bbox": [[0.5, 0.5, 1.5, 0.9], [float("nan"), 0, 0.5, 0.5]]},
        {"class": "helicopter", "bbox": []},
        "not a dict",
    ]
    text = json.dumps(entries).replace("NaN", "NaN")
    p = tmp_path / "vggss.json"
    p.write_text(text)
    ds = load_vggss(p)
    c = ds.report.counts
    assert len(ds) == 3
    assert c["duplicate_ids"] == 1 and c["malformed_entries"] == 2 and c["malformed_boxes"] == 2
    assert c["nonstandard_ids"] == 1 and c["out_of_range_boxes"] == 1 and c["sentinel_boxes"] == 1
    assert c["empty_gt"] == 1 and ds.report.ids["empty_gt"] == ["bbbbbbbbbbb_000002"]
    assert ds[2].gt_mask[112:201, 112:224].all()  # x2 = 1.5 clipped to 224


def test_unknown_class_raises_or_skips(tmp_path):
    p = _write_json(tmp_path / "v.json", [
        {"file": "aaaaaaaaaaa_000001", "class": "dog barking", "bbox": [[0, 0, 1, 1]]},
        {"file": "aaaaaaaaaaa_000002", "class": "kazoo solo", "bbox": [[0, 0, 1, 1]]},
    ])
    with pytest.raises(CategoryError, match="kazoo solo"):
        load_vggss(p)
    ds = load_vggss(p, unmapped="skip")
    assert ds.ids == ["aaaaaaaaaaa_000001"] and ds.report.counts["unmapped_class"] == 1


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vggss.json"):
        load_vggss(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------- media


def _jpeg(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path, quality=90)


@pytest.fixture()
def media_tree(tmp_path):
    """Five clips in the official layout: good, stereo 44.1 kHz, missing wav, garbage jpg, truncated jpg."""
    ids = [f"clip{k:07d}ab_00000{k}" for k in range(5)]
    entries = [{"file": i, "class": "dog barking", "bbox": [[0.1, 0.1, 0.6, 0.7]]} for i in ids]
    ann = _write_json(tmp_path / "vggss.json", entries)
    root = tmp_path / "media"
    (root / "frames").mkdir(parents=True)
    (root / "audio").mkdir()
    for k, i in enumerate(ids):
        _jpeg(root / "frames" / f"{i}.jpg", k)
    t = np.arange(16000) / 16000
    sf.write(root / "audio" / f"{ids[0]}.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, subtype="PCM_16")
    t44 = np.arange(44100) / 44100
    left = 0.6 * np.sin(2 * np.pi * 300 * t44)
    stereo = np.stack([left, -0.5 * left], axis=1)
    sf.write(root / "audio" / f"{ids[1]}.wav", stereo, 44100, subtype="FLOAT")
    # ids[2]: no wav
    sf.write(root / "audio" / f"{ids[3]}.wav", np.zeros(8000, np.float32), 16000)
    sf.write(root / "audio" / f"{ids[4]}.wav", np.zeros(8000, np.float32), 16000)
    (root / "frames" / f"{ids[3]}.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    good = (root / "frames" / f"{ids[4]}.jpg").read_bytes()
    (root / "frames" / f"{ids[4]}.jpg").write_bytes(good[: len(good) // 2])
    return ann, root, ids


def test_media_problems_raise_one_clear_error(media_tree):
    ann, root, ids = media_tree
    with pytest.raises(MediaError) as e:
        load_vggss(ann, root)
    msg = str(e.value)
    assert "3 of 5 samples" in msg and str(root) in msg
    for i in ids[2:]:
        assert i in msg
    assert "audio missing" in msg and "image unreadable" in msg and "on_missing='skip'" in msg


def test_media_skip_records_and_loads(media_tree):
    ann, root, ids = media_tree
    ds = load_vggss(ann, root, on_missing="skip")
    assert ds.ids == ids[:2]
    assert sorted(ds.report.ids["skipped_media"]) == sorted(ids[2:])
    assert ds.gt_masks.shape == (2, 224, 224)
    # every readable audio file is counted, also those of samples skipped for a broken image
    assert ds.media_check.sample_rates == {16000: 3, 44100: 1} and ds.media_check.channels == {1: 3, 2: 1}
    assert ds[1].meta["duration"] == pytest.approx(1.0)
    s = ds.load(ids[1])
    assert s.image.shape == (48, 64, 3) and s.image.dtype == np.uint8
    assert s.sample_rate == 16000 and s.audio.dtype == np.float32 and s.audio.ndim == 1
    assert len(s.audio) == 16000
    # mixdown = channel mean: 0.5 * (1 - 0.5) * left = 0.15 * sin(300 Hz) -> peak 0.15
    t = np.arange(16000) / 16000
    expected = 0.15 * np.sin(2 * np.pi * 300 * t)
    assert np.max(np.abs(s.audio[200:-200] - expected[200:-200])) < 2e-3
    s0 = ds.load(0)
    assert s0.sample_rate == 16000 and np.max(np.abs(s0.audio)) == pytest.approx(0.5, abs=1e-3)


def test_wrong_layout_is_named(tmp_path, media_tree):
    ann, root, _ = media_tree
    with pytest.raises(MediaError, match="frames/<file>.jpg"):
        load_vggss(ann, tmp_path)


def test_metadata_only_set_cannot_load_media(vggss):
    assert vggss[0].image == Path("frames") / f"{vggss[0].id}.jpg"
    with pytest.raises(MediaError, match="media root"):
        vggss.load(0)


def test_audio_helpers(tmp_path):
    x = np.stack([np.ones(10), np.zeros(10), -np.ones(10) * 0.5], axis=1).astype(np.float32)
    assert np.allclose(to_mono(x), 1 / 6)
    assert resample(np.ones(441, np.float32), 44100, 16000).shape == (160,)
    p = tmp_path / "loud.wav"
    sf.write(p, np.full(100, 3.0, np.float32), 8000, subtype="FLOAT")
    a, sr = read_audio(p, None)
    assert sr == 8000 and a.max() == 1.0
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(MediaError, match="bad.wav"):
        read_audio(bad)
    with pytest.raises(MediaError, match="not found"):
        read_audio(tmp_path / "none.wav")


def test_synthetic_set_in_the_official_layout(tmp_path):
    synthetic = pytest.importorskip("vssl_helpers.testsets.synthetic")
    syn = synthetic.SyntheticSet(synthetic.SyntheticConfig(split="test", n_images=8, sources=1))
    root = synthetic.write_vggss_layout(syn, tmp_path / "vggss_syn", progress=False)
    ds = load_vggss(root / "vggss.json", root, deep_check=True)
    assert ds.ids == list(syn.ids) and ds.media_check.ok
    for s, orig in zip(ds, syn):
        assert s.category == orig.category
        ref = np.zeros((224, 224), bool)
        x1, y1, x2, y2 = np.asarray(orig.boxes[0], int)
        ref[y1:y2, x1:x2] = True
        assert np.array_equal(s.gt_mask, ref)  # the box round-trips through normalised coordinates
        assert s.meta["duration"] == pytest.approx(len(orig.audio) / orig.sample_rate)
    loaded = ds.load(3)
    assert loaded.image.shape == syn[3].image.shape
    assert np.max(np.abs(loaded.audio - syn[3].audio)) < 1e-3  # 16-bit PCM round trip
