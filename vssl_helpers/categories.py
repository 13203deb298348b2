"""The paper's 8 broad categories and the class -> broad-category maps of VGGSound and IS3.

The paper (§II) groups the 221 VGG-SS classes and the IS3 classes into 8 broad semantic categories
so that an *offscreen* sound can be drawn from a category that no visible object belongs to. Its
mapping is not public (``vssl_eval`` reads it from an unpublished ``metadata/*_class_files_dict.json``),
so this module ships a curated one, as two small CSV files under ``vssl_helpers/data/categories/``:

``vggsound_to_broad.csv``
    All 309 VGGSound classes (which include the 221 of VGG-SS), columns ``class``, ``broad_category``,
    ``vggsound_group`` (the coarse group of ``hche11/VGGSound:data/stat.csv``, for reference) and
    ``rationale``. A rationale is given wherever the choice is not obvious, and always where the broad
    category differs from the natural reading of the VGGSound group (:data:`NATURAL_GROUP_CATEGORY`).

``is3_labels_to_broad.csv``
    Every token that appears in an IS3 file name, normalised by :func:`normalize_is3_label`
    (156 tokens: the 111 target tokens and the object tokens of the names), columns ``label``,
    ``vggsound_classes`` (``|``-separated candidates, all in the same broad category),
    ``broad_category``, ``also_exclude`` (extra categories a draw of offscreen audio must avoid
    because the token is ambiguous) and ``note``.

How the categories are read (decisions, each visible in the CSV):

* **music**: musical instruments and ensembles, including bells and chimes (AudioSet lists church
  bell, wind chime, tuning fork and singing bowl under *Musical instrument*). Singing is *not* music.
* **human voice**: AudioSet's *Human sounds*: speech, singing, laughter, crowds, and also body sounds,
  hands (clapping) and footsteps (marching, tap dancing). The visible source is a person.
* **vehicles**: road, rail, air and water vehicles, their engines, horns and sirens (emergency-vehicle
  sirens included), car doors.
* **devices/machines**: powered appliances, engines that are not vehicles (chainsaw, lawn mower),
  tools (hand tools included), alarms, phones, printers, keyboards, radios.
* **animals**: every animal, including insects, cowbells worn by cattle and (animated) dinosaurs.
* **weapons**: firearms, cannon, missiles, and *fireworks/firecrackers*: AudioSet groups fireworks
  with gunshots under *Explosion*; keeping them together means gunfire is never drawn as an
  "offscreen" sound for a fireworks image, nor the reverse.
* **nature ambient**: weather, wind, fire, natural water (rain, streams, waterfalls, sea waves),
  volcanoes, cracking ice.
* **others**: sports (equipment being struck), liquids handled by people, household objects moved by
  hand (doors, drawers), paper, lighters, food popping.

The maps are validated when loaded: every category is one of :data:`BROAD_CATEGORIES`, every
VGGSound class appears once, and every IS3 token's VGGSound classes belong to its broad category.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

BROAD_CATEGORIES: tuple[str, ...] = (
    "music",
    "human voice",
    "vehicles",
    "devices/machines",
    "animals",
    "weapons",
    "nature ambient",
    "others",
)
"""The paper's 8 broad semantic categories (§II), in the paper's order."""

__all__ = [
    "BROAD_CATEGORIES",
    "NATURAL_GROUP_CATEGORY",
    "VGGSOUND_MAPPING_FILE",
    "IS3_MAPPING_FILE",
    "VggSoundClass",
    "IS3Label",
    "CategoryError",
    "check_category",
    "category_order",
    "vggsound_classes",
    "vggsound_to_broad",
    "vggsound_category",
    "is3_labels",
    "normalize_is3_label",
    "is3_label",
    "find_is3_label",
    "is3_category",
    "is3_exclusion_categories",
    "mapping_sha256",
]

VGGSOUND_MAPPING_FILE = "categories/vggsound_to_broad.csv"
"""Path of the VGGSound class map inside ``vssl_helpers/data``."""
IS3_MAPPING_FILE = "categories/is3_labels_to_broad.csv"
"""Path of the IS3 token map inside ``vssl_helpers/data``."""

NATURAL_GROUP_CATEGORY: dict[str, str] = {
    "animals": "animals",
    "music": "music",
    "people": "human voice",
    "vehicle": "vehicles",
    "nature": "nature ambient",
    "tools": "devices/machines",
    "home": "devices/machines",
    "others": "others",
    "sports": "others",
}
"""The broad category a VGGSound ``stat.csv`` group reads as; a class mapped elsewhere has a rationale."""


class CategoryError(ValueError):
    """A class, label or category that the maps do not know, or an invalid map file."""


@dataclass(frozen=True)
class VggSoundClass:
    """One row of ``vggsound_to_broad.csv``."""

    name: str
    broad_category: str
    vggsound_group: str
    rationale: str


@dataclass(frozen=True)
class IS3Label:
    """One row of ``is3_labels_to_broad.csv``: a normalised IS3 file-name token.

    Attributes:
        label: the normalised token (see :func:`normalize_is3_label`).
        vggsound_classes: the VGGSound classes the token can stand for (all in ``broad_category``).
        broad_category: the token's broad category.
        also_exclude: further categories the token could be read as; offscreen draws avoid them too.
        note: why the reading was chosen, for ambiguous tokens.
    """

    label: str
    vggsound_classes: tuple[str, ...]
    broad_category: str
    also_exclude: tuple[str, ...]
    note: str


def check_category(name: str, where: str = "category") -> str:
    """Return ``name`` if it is one of :data:`BROAD_CATEGORIES`, else raise :class:`CategoryError`."""
    if name not in BROAD_CATEGORIES:
        raise CategoryError(f"{where}: {name!r} is not a broad category; expected one of {list(BROAD_CATEGORIES)}")
    return name


def category_order(categories: "set[str] | frozenset[str] | list[str] | tuple[str, ...]") -> tuple[str, ...]:
    """Distinct categories sorted in the paper's order (:data:`BROAD_CATEGORIES`)."""
    for c in categories:
        check_category(c)
    present = set(categories)
    return tuple(c for c in BROAD_CATEGORIES if c in present)


def _read_data_text(relpath: str) -> str:
    return resources.files("vssl_helpers.data").joinpath(relpath).read_text(encoding="utf-8")


def _rows(relpath: str, expected: list[str]) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(_read_data_text(relpath)))
    if reader.fieldnames != expected:
        raise CategoryError(f"vssl_helpers/data/{relpath}: header {reader.fieldnames}, expected {expected}")
    return list(reader)


@lru_cache(maxsize=1)
def vggsound_classes() -> dict[str, VggSoundClass]:
    """All 309 VGGSound classes with their broad category, keyed by the verbatim class name."""
    out: dict[str, VggSoundClass] = {}
    for i, r in enumerate(_rows(VGGSOUND_MAPPING_FILE, ["class", "broad_category", "vggsound_group", "rationale"]), 2):
        where = f"vssl_helpers/data/{VGGSOUND_MAPPING_FILE} line {i}"
        check_category(r["broad_category"], where)
        if r["class"] in out:
            raise CategoryError(f"{where}: duplicate class {r['class']!r}")
        if r["vggsound_group"] not in NATURAL_GROUP_CATEGORY:
            raise CategoryError(f"{where}: unknown VGGSound group {r['vggsound_group']!r}")
        out[r["class"]] = VggSoundClass(r["class"], r["broad_category"], r["vggsound_group"], r["rationale"])
    return out


def vggsound_to_broad() -> dict[str, str]:
    """``{VGGSound class: broad category}`` for all 309 classes."""
    return {k: v.broad_category for k, v in vggsound_classes().items()}


def vggsound_category(cls: str) -> str:
    """Broad category of a VGGSound class name (verbatim, e.g. ``"dog barking"``)."""
    try:
        return vggsound_classes()[cls].broad_category
    except KeyError:
        raise CategoryError(
            f"VGGSound class {cls!r} is not in vssl_helpers/data/{VGGSOUND_MAPPING_FILE} (309 classes); "
            "class names must match hche11/VGGSound data/stat.csv verbatim"
        ) from None


_TRAILING_DIGITS = re.compile(r"\d+$")


def normalize_is3_label(token: str) -> str:
    """Normalise an IS3 file-name token: lower case, spaces removed, trailing digits removed.

    ``"electricGuitar"`` -> ``"electricguitar"``, ``"owlhooting4"`` -> ``"owlhooting"``,
    ``"electric grinder grinding"`` -> ``"electricgrindergrinding"``.
    """
    return _TRAILING_DIGITS.sub("", token.lower().replace(" ", ""))


@lru_cache(maxsize=1)
def is3_labels() -> dict[str, IS3Label]:
    """All normalised IS3 tokens with their broad category (checked against the VGGSound map)."""
    vgg = vggsound_classes()
    out: dict[str, IS3Label] = {}
    cols = ["label", "vggsound_classes", "broad_category", "also_exclude", "note"]
    for i, r in enumerate(_rows(IS3_MAPPING_FILE, cols), 2):
        where = f"vssl_helpers/data/{IS3_MAPPING_FILE} line {i}"
        label = r["label"]
        if label != normalize_is3_label(label) or not label:
            raise CategoryError(f"{where}: label {label!r} is not normalised (expected {normalize_is3_label(label)!r})")
        if label in out:
            raise CategoryError(f"{where}: duplicate label {label!r}")
        cat = check_category(r["broad_category"], where)
        classes = tuple(c for c in r["vggsound_classes"].split("|") if c)
        for c in classes:
            if c not in vgg:
                raise CategoryError(f"{where}: VGGSound class {c!r} of label {label!r} is not in the VGGSound map")
            if vgg[c].broad_category != cat:
                raise CategoryError(
                    f"{where}: label {label!r} is {cat!r} but its VGGSound class {c!r} is {vgg[c].broad_category!r}"
                )
        also = tuple(check_category(c, where) for c in r["also_exclude"].split("|") if c)
        out[label] = IS3Label(label, classes, cat, also, r["note"])
    return out


@lru_cache(maxsize=1)
def _vggsound_compact_names() -> dict[str, str]:
    return {re.sub(r"[^a-z0-9]", "", c.lower()): c for c in vggsound_classes()}


def find_is3_label(token: str) -> IS3Label | None:
    """The :class:`IS3Label` of a raw or normalised token, or ``None`` if it is unknown.

    Tokens not in ``is3_labels_to_broad.csv`` fall back to a VGGSound class whose name, lower-cased
    without spaces and punctuation, equals the normalised token (``"basketballbounce"`` ->
    ``"basketball bounce"``), so IS3-style names built from VGGSound class names are understood.
    """
    key = normalize_is3_label(token)
    lab = is3_labels().get(key)
    if lab is None and (cls := _vggsound_compact_names().get(key)) is not None:
        lab = IS3Label(key, (cls,), vggsound_classes()[cls].broad_category, (), "matched a VGGSound class name")
    return lab


def is3_label(token: str) -> IS3Label:
    """The :class:`IS3Label` of a raw or normalised IS3 file-name token (see :func:`find_is3_label`)."""
    lab = find_is3_label(token)
    if lab is None:
        raise CategoryError(
            f"IS3 label {token!r} (normalised {normalize_is3_label(token)!r}) is not in "
            f"vssl_helpers/data/{IS3_MAPPING_FILE} and matches no VGGSound class name"
        )
    return lab


def is3_category(token: str) -> str:
    """Broad category of a raw or normalised IS3 file-name token (e.g. ``"acousticguitar"`` -> music)."""
    return is3_label(token).broad_category


def is3_exclusion_categories(token: str) -> tuple[str, ...]:
    """The token's category and its ``also_exclude`` categories, in the paper's order."""
    lab = is3_label(token)
    return category_order({lab.broad_category, *lab.also_exclude})


def mapping_sha256() -> str:
    """SHA-256 of the two shipped map files (recorded in manifests, so a changed map is visible)."""
    h = hashlib.sha256()
    for rel in (VGGSOUND_MAPPING_FILE, IS3_MAPPING_FILE):
        h.update(rel.encode() + b"\0" + _read_data_text(rel).encode("utf-8") + b"\0")
    return h.hexdigest()
