"""IS3 loader: the real metadata (naming quirks as counted in shared/data/README.md), categories, media."""

from __future__ import annotations

import json
import lzma
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from vssl_helpers.categories import CategoryError, is3_category
from vssl_helpers.testsets.is3 import IS3_BLOB_SHA1, SHIPPED_TABLE, derive_is3_table, load_is3, parse_is3_name
from vssl_helpers.testsets.media import MediaError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
IS3_JSON = SHARED / "is3" / "synthetic3240_bbox.json"
needs_shared = pytest.mark.skipif(
    not IS3_JSON.is_file(), reason=f"real metadata not found at {IS3_JSON} (clone shared/ beside the repo)"
)


@pytest.fixture(scope="module")
def is3():
    return load_is3()


@needs_shared
def test_shipped_table_is_derived_from_the_published_file(is3):
    shipped = lzma.decompress(resources.files("vssl_helpers.data").joinpath(SHIPPED_TABLE).read_bytes()).decode()
    assert derive_is3_table(IS3_JSON) == shipped
    full = load_is3(IS3_JSON)
    assert full.source["git_blob_sha1"] == IS3_BLOB_SHA1
    assert full.ids == is3.ids
    assert np.array_equal(full.gt_masks, is3.gt_masks)
    assert full.report.counts == is3.report.counts


def test_counts(is3):
    assert len(is3) == 6480 == is3.report.n_entries
    bases = Counter(s.meta["base"] for s in is3)
    assert len(bases) == 3240 and set(bases.values()) == {2}
    assert len({s.classes[0] for s in is3}) == 111
    assert all(len(s.meta["partner_ids"]) == 1 for s in is3)


def test_naming_quirks_as_the_readme_states(is3):
    c = is3.report.counts
    assert c["no_numeric_id"] == 208
    assert c["names_with_spaces"] == 2
    assert c["names_with_uppercase"] == 20
    assert c["prefix_collisions"] == 17 and "airplane_waterfall" in is3.report.ids["prefix_collisions"]
    assert c["target_not_in_name"] == 383
    assert c["full_image_boxes"] == 8
    assert set(is3.report.ids["target_category_not_in_name"]) == {"baby_child_11475_elephant", "bus_motorcycle_10906_goat"}
    for q in ("malformed_entries", "malformed_box", "audio_image_stem_mismatch", "duplicate_ids", "unmapped_target",
              "unexpected_object_count", "unmapped_object_tokens", "bases_without_partner", "bases_with_more_than_two",
              "same_target_pairs", "out_of_range_boxes", "non_integral_boxes", "empty_gt"):
        assert c[q] == 0, q


def test_parse_names():
    n = parse_is3_name("accordion_female_10438_accordion")
    assert (n.base, n.objects, n.number, n.target) == ("accordion_female_10438", ("accordion", "female"), "10438", "accordion")
    n = parse_is3_name("fox_train_subway")
    assert (n.base, n.objects, n.number, n.target) == ("fox_train", ("fox", "train"), None, "subway")
    n = parse_is3_name("babylaughter_electric grinder grinding_baby")
    assert n.objects == ("babylaughter", "electric grinder grinding") and n.target == "baby"


def test_categories_of_both_sources(is3):
    s = is3[is3.index("accordion_female_10438_accordion")]
    assert s.category == ("music", "human voice") and s.meta["audio_category"] == "music"
    assert s.meta["partner_ids"] == ("accordion_female_10438_female",)
    assert s.meta["visible_categories"] == ("music", "human voice")
    # the label that contradicts its name: goat audio on a bus/motorcycle image; all three are excluded
    g = is3[is3.index("bus_motorcycle_10906_goat")]
    assert g.meta["audio_category"] == "animals" and set(g.category) == {"animals", "vehicles"}
    assert set(g.meta["visible_categories"]) == {"animals", "vehicles"}
    e = is3[is3.index("baby_child_11475_elephant")]
    assert set(e.meta["visible_categories"]) == {"animals", "human voice"}
    # an ambiguous token widens the exclusion: 'mouse' may be a computer mouse
    m = next(x for x in is3 if x.classes[0] == "mouse")
    assert "devices/machines" in m.meta["visible_categories"] and m.meta["audio_category"] == "animals"
    for x in is3:
        assert set(x.category) <= set(x.meta["visible_categories"])
        assert x.category[0] == x.meta["audio_category"] == is3_category(x.classes[0])


def test_masks(is3):
    s = is3[0]
    assert s.boxes.tolist() == [[47, 99, 154, 185]]
    assert s.gt_mask.sum() == (154 - 47) * (185 - 99)
    assert s.gt_mask[99, 47] and not s.gt_mask[185, 100] and not s.gt_mask[100, 154]
    full = is3[is3.index(is3.report.ids["full_image_boxes"][0])]
    assert full.gt_mask.all()
    ref = np.zeros_like(is3.gt_masks)
    for i, x in enumerate(is3):
        x1, y1, x2, y2 = x.boxes[0].astype(int)
        ref[i, y1:y2, x1:x2] = True
    assert np.array_equal(ref, is3.gt_masks)


def test_malformed_json_and_unknown_labels(tmp_path):
    entries = [
        {"image": "/x/visual_frames/cat_dog_1_cat.jpg", "audio": "/x/audio_wav/cat_dog_1_cat.wav", "gt_box": [0, 0, 10, 10]},
        {"image": "/x/visual_frames/cat_dog_1_dog.jpg", "audio": "/x/audio_wav/cat_dog_1_other.wav", "gt_box": [5, 5, 300, "z"]},
        {"image": "/x/visual_frames/cat_dog_1_cat.jpg", "gt_box": [0, 0, 1, 1]},
        {"audio": "/x/a.wav", "gt_box": [0, 0, 1, 1]},
        {"image": "/x/visual_frames/kazoo_cat_2_kazoo.jpg", "gt_box": [0, 0, 1, 1]},
        {"image": "/x/visual_frames/kazoo_cat_2_cat.jpg", "gt_box": [0, 0, 250, 20]},
    ]
    p = tmp_path / "is3.json"
    p.write_text(json.dumps(entries))
    with pytest.raises(CategoryError, match="kazoo"):
        load_is3(p)
    ds = load_is3(p, unmapped="skip")
    c = ds.report.counts
    assert ds.ids == ["cat_dog_1_cat", "cat_dog_1_dog", "kazoo_cat_2_cat"]
    assert c["malformed_entries"] == 1 and c["malformed_box"] == 1 and c["duplicate_ids"] == 1
    assert c["audio_image_stem_mismatch"] == 1 and c["unmapped_target"] == 1
    assert c["empty_gt"] == 1 and c["out_of_range_boxes"] == 1 and c["bases_without_partner"] == 1
    assert c["unmapped_object_tokens"] == 1  # 'kazoo' as an object token is counted, not fatal
    assert ds[2].category == ("animals",) and ds[2].gt_mask[:20, :224].all()


def _jpeg(path: Path) -> None:
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(path)


def test_media_tree_with_quirky_names(tmp_path, is3):
    ids = ["babylaughter_electric grinder grinding_baby", "babylaughter_electric grinder grinding_electricgrinder",
           "firingMusket_dog_capgun", "firingMusket_dog_dog"]
    table = tmp_path / "is3.tsv"
    table.write_text("id\tx1\ty1\tx2\ty2\n" + "".join(f"{i}\t0\t0\t100\t100\n" for i in ids))
    root = tmp_path / "IS3"
    (root / "visual_frames").mkdir(parents=True)
    (root / "audio_wav").mkdir()
    for i in ids:
        _jpeg(root / "visual_frames" / f"{i}.jpg")
    for i in ids[:3]:
        sf.write(root / "audio_wav" / f"{i}.wav", np.zeros((22050, 2), np.float32), 22050)
    with pytest.raises(MediaError, match=r"1 of 4 samples.*firingMusket_dog_dog"):
        load_is3(table, root)
    ds = load_is3(table, root, on_missing="skip")
    assert ds.ids == ids[:3] and ds.report.ids["skipped_media"] == ["firingMusket_dog_dog"]
    s = ds.load("babylaughter_electric grinder grinding_baby")
    assert s.sample_rate == 16000 and s.audio.shape == (16000,) and s.image.shape == (32, 32, 3)
    # the partner's category is still known from the annotation, even though its media were skipped
    cap = ds[2]
    assert cap.category == ("weapons", "animals")
    with pytest.raises(MediaError, match="image folders"):
        load_is3(table, tmp_path)


def test_synthetic_set_in_the_is3_layout(tmp_path):
    synthetic = pytest.importorskip("vssl_helpers.testsets.synthetic")
    syn = synthetic.SyntheticSet(synthetic.SyntheticConfig(split="test", n_images=6, sources=2))
    root = synthetic.write_is3_layout(syn, tmp_path / "is3_syn", progress=False)
    ds = load_is3(root / "synthetic3240_bbox.json", root)
    assert len(ds) == 12 and ds.report.counts["bases_without_partner"] == 0
    by_stem = {synthetic.is3_stem(s): s for s in syn}
    for s in ds:
        orig = by_stem[s.id]
        assert s.meta["audio_category"] == orig.category
        assert set(s.category) == {orig.category, syn[syn.ids.index(orig.meta["other_source"])].category}
        x1, y1, x2, y2 = np.asarray(orig.boxes[0], int)
        assert s.gt_mask.sum() == (x2 - x1) * (y2 - y1)
