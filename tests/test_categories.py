"""The 8 broad categories and the shipped VGGSound / IS3 maps."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from vssl_helpers import categories as C
from vssl_helpers.testsets.base import BROAD_CATEGORIES

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STAT_CSV = SHARED / "vggsound" / "stat.csv"
IS3_JSON = SHARED / "is3" / "synthetic3240_bbox.json"


def test_broad_categories_are_the_papers():
    assert C.BROAD_CATEGORIES is BROAD_CATEGORIES and len(BROAD_CATEGORIES) == 8
    assert C.category_order({"others", "music", "weapons"}) == ("music", "weapons", "others")
    with pytest.raises(C.CategoryError, match="not a broad category"):
        C.check_category("instruments")


def test_vggsound_map_covers_309_classes_with_valid_categories():
    m = C.vggsound_to_broad()
    assert len(m) == 309
    assert set(m.values()) == set(BROAD_CATEGORIES)
    counts = Counter(m.values())
    assert counts == {"animals": 74, "music": 63, "human voice": 49, "others": 37, "devices/machines": 34,
                      "vehicles": 32, "nature ambient": 13, "weapons": 7}


@pytest.mark.skipif(not STAT_CSV.is_file(), reason=f"real metadata not found at {STAT_CSV}")
def test_vggsound_map_matches_stat_csv():
    rows = list(csv.reader(io.StringIO(STAT_CSV.read_text().replace("\r", ""))))
    stat = {r[0]: r[2] for r in rows}
    classes = C.vggsound_classes()
    assert set(stat) == set(classes)
    assert all(classes[k].vggsound_group == g for k, g in stat.items())


def test_every_vggss_class_is_mapped():
    from vssl_helpers.testsets.vggss import read_vggss_annotations

    entries, _ = read_vggss_annotations()
    vggss_classes = {e["class"] for e in entries}
    assert len(vggss_classes) == 221
    assert vggss_classes <= set(C.vggsound_to_broad())


def test_rationale_wherever_the_group_is_not_followed():
    for cls, row in C.vggsound_classes().items():
        if row.broad_category != C.NATURAL_GROUP_CATEGORY[row.vggsound_group]:
            assert row.rationale.strip(), cls


@pytest.mark.parametrize(
    "cls, cat",
    [
        ("machine gun shooting", "weapons"), ("firing cannon", "weapons"), ("cap gun shooting", "weapons"),
        ("fireworks banging", "weapons"), ("lighting firecrackers", "weapons"), ("missile launch", "weapons"),
        ("volcano explosion", "nature ambient"), ("female singing", "human voice"), ("singing choir", "human voice"),
        ("chainsawing trees", "devices/machines"), ("lawn mowing", "devices/machines"), ("mouse clicking", "devices/machines"),
        ("mouse squeaking", "animals"), ("church bell ringing", "music"), ("ambulance siren", "vehicles"),
        ("civil defense siren", "devices/machines"), ("sea waves", "nature ambient"), ("tap dancing", "human voice"),
        ("playing tennis", "others"), ("motorboat, speedboat acceleration", "vehicles"),
    ],
)
def test_documented_decisions(cls, cat):
    assert C.vggsound_category(cls) == cat


def test_papers_examples_stay_together():
    m = C.vggsound_to_broad()
    dog = {v for k, v in m.items() if k.startswith("dog ")}
    assert len([k for k in m if k.startswith("dog ")]) == 6 and dog == {"animals"}
    assert {m["train wheels squealing"], m["train whistling"], m["train horning"]} == {"vehicles"}
    assert m["female singing"] == m["female speech, woman speaking"] == "human voice"


def test_unknown_class_error_names_it():
    with pytest.raises(C.CategoryError, match="'dog barkng'.*309"):
        C.vggsound_category("dog barkng")


def test_normalize_is3_labels():
    assert C.normalize_is3_label("electricGuitar") == "electricguitar"
    assert C.normalize_is3_label("owlhooting4") == "owlhooting"
    assert C.normalize_is3_label("electric grinder grinding") == "electricgrindergrinding"
    assert C.normalize_is3_label("sheep2") == "sheep"


def test_is3_labels_consistent_with_vggsound():
    labels = C.is3_labels()
    assert len(labels) == 156
    vgg = C.vggsound_to_broad()
    for lab in labels.values():
        assert lab.vggsound_classes, lab.label
        assert {vgg[c] for c in lab.vggsound_classes} == {lab.broad_category}
        assert lab.broad_category not in lab.also_exclude


def test_ambiguous_is3_labels_are_documented():
    amb = {k: v for k, v in C.is3_labels().items() if v.also_exclude}
    assert set(amb) == {"fire", "keyboard", "mouse", "popcorn", "popcornmachine"}
    assert all(v.note for v in amb.values())
    assert C.is3_exclusion_categories("mouse") == ("devices/machines", "animals")
    assert C.is3_category("firingMusket") == "weapons" and C.is3_category("Subwaytrain") == "vehicles"
    with pytest.raises(C.CategoryError, match="kazoo"):
        C.is3_category("kazoo")


def test_every_is3_token_is_mapped():
    from vssl_helpers.testsets.is3 import parse_is3_name, read_is3_annotations

    rows, _, _ = read_is3_annotations()
    targets, objects = set(), set()
    for sid, _ in rows:
        n = parse_is3_name(sid)
        targets.add(n.target)
        objects.update(n.objects)
    assert len(targets) == 111 and len(objects) == 162
    labels = C.is3_labels()
    missing = {t for t in targets | objects if C.normalize_is3_label(t) not in labels}
    assert not missing
    assert {C.normalize_is3_label(t) for t in targets | objects} == set(labels)


@pytest.mark.skipif(not IS3_JSON.is_file(), reason=f"real metadata not found at {IS3_JSON}")
def test_is3_targets_from_the_published_file():
    stems = {re.sub(r"\.jpg$", "", Path(e["image"]).name) for e in json.loads(IS3_JSON.read_text())}
    assert len(stems) == 6480
    targets = {s.split("_")[-1] for s in stems}
    assert all(C.normalize_is3_label(t) in C.is3_labels() for t in targets)


def test_mapping_hash():
    h = C.mapping_sha256()
    assert re.fullmatch(r"[0-9a-f]{64}", h) and h == C.mapping_sha256()


def test_is3_tokens_fall_back_to_vggsound_class_names():
    lab = C.find_is3_label("basketballBounce")
    assert lab is not None and lab.vggsound_classes == ("basketball bounce",) and lab.broad_category == "others"
    assert C.find_is3_label("kazoo") is None
