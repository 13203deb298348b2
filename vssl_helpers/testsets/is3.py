"""IS3 (Interactive Synthetic Sound Source, Senocak et al., 2024): annotations, GT masks, categories.

Annotation format (``synthetic3240_bbox.json``, published in ``kaistmm/SSLalignment``): a JSON list of
``{"image": ".../visual_frames/<stem>.jpg", "audio": ".../audio_wav/<stem>.wav", "gt_box": [x1, y1, x2, y2]}``
with the box in pixels of a 224 × 224 image. Each of the 3,240 images shows two sounding objects; the
file has one entry *per object* (6,480), each with its own copy of the image, its own audio and one
box. Only basenames are used. Media layout: ``<root>/<image dir>/<stem>.jpg`` and
``<root>/<audio dir>/<stem>.wav`` with the image folder ``images/`` (vssl_eval's README) or
``visual_frames/`` (the JSON paths) and the audio folder ``audio_wav/`` (or ``audio/``).

**Sample ids and categories.** The id is the file stem, e.g. ``accordion_female_10438_accordion``:
``<objA>_<objB>[_<number>]_<target>``. The *base* (the id without its last token) names the image; the
*target* token names the sounding object. IS3 has no class field, so categories come from the tokens
through :mod:`vssl_helpers.categories` (``is3_labels_to_broad.csv``):

* ``Sample.category``: the broad categories of the two sounding objects of the image (this entry's
  target first, then its partner's; one element if they agree);
* ``meta["audio_category"]``: the category of this entry's own audio (the positive);
* ``meta["visible_categories"]``: what an offscreen draw must avoid: both targets' categories, the
  categories of the object tokens of the name, and the ``also_exclude`` categories of ambiguous tokens.
  This is a superset of what vssl_eval excludes (the two targets' categories only).

Partners are found by exact base (every base has exactly two entries), not by vssl_eval's prefix glob,
which matches more than two files for 17 bases (``prefix_collisions``).

**GT mask rule**: ``int(clip(v, 0, 224))`` per coordinate (the values are integral floats), half-open
pixel ranges, one box per entry.

The published JSON has no licence, so the package does not ship it: it ships the facts derived from it
(ids and boxes) as ``vssl_helpers/data/is3/is3_boxes.tsv.xz``, which :func:`load_is3` reads when no
annotation file is given; :func:`derive_is3_table` rebuilds that table from the JSON.
"""

from __future__ import annotations

import bisect
import json
import logging
import lzma
import re
from collections import defaultdict
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

import numpy as np

from ..categories import CategoryError, category_order, find_is3_label, normalize_is3_label
from .base import Sample
from .media import (
    DEFAULT_SAMPLE_RATE,
    GT_SIZE,
    LoadReport,
    MediaError,
    OnMissing,
    RealTestSet,
    apply_media_check,
    boxes_to_masks,
    check_media,
)
from .vggss import git_blob_sha1

__all__ = [
    "IS3_UPSTREAM",
    "IS3_BLOB_SHA1",
    "SHIPPED_TABLE",
    "IMAGE_DIRS",
    "AUDIO_DIRS",
    "IS3Name",
    "parse_is3_name",
    "read_is3_annotations",
    "derive_is3_table",
    "load_is3",
]

log = logging.getLogger(__name__)

IS3_UPSTREAM = "kaistmm/SSLalignment@e7ae3c5518e5a4d911c49e034d906612cf922aff:metadata/synthetic3240_bbox.json"
"""Where the published annotation file comes from."""
IS3_BLOB_SHA1 = "377c3388a5e255249f7265a6abb96ef69f7a7f3f"
"""Git blob SHA-1 of the published ``synthetic3240_bbox.json``."""
SHIPPED_TABLE = "is3/is3_boxes.tsv.xz"
"""Ids and boxes derived from the published file, inside ``vssl_helpers/data``."""
IMAGE_DIRS = ("images", "visual_frames")
"""Image folders tried under an IS3 media root, in order."""
AUDIO_DIRS = ("audio_wav", "audio")
"""Audio folders tried under an IS3 media root, in order."""

_TABLE_HEADER = "id\tx1\ty1\tx2\ty2"


class IS3Name:
    """The parts of an IS3 file stem ``<objA>_<objB>[_<number>]_<target>``.

    Attributes:
        stem: the full stem (the sample id).
        base: the stem without its last token (names the image shared by the two entries).
        objects: the object tokens (normally 2), as written.
        number: the numeric id, or ``None`` for the 208 names without one.
        target: the last token (the sounding object), as written.
    """

    __slots__ = ("stem", "base", "objects", "number", "target")

    def __init__(self, stem: str) -> None:
        tokens = stem.split("_")
        self.stem = stem
        self.target = tokens[-1]
        self.base = "_".join(tokens[:-1])
        if len(tokens) >= 3 and tokens[-2].isdigit():
            self.number: str | None = tokens[-2]
            self.objects = tuple(tokens[:-2])
        else:
            self.number = None
            self.objects = tuple(tokens[:-1])

    def __repr__(self) -> str:
        return f"IS3Name({self.stem!r})"


def parse_is3_name(stem: str) -> IS3Name:
    """Split an IS3 file stem into base, object tokens, numeric id and target token."""
    return IS3Name(stem)


def _stem(path: str) -> str:
    name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
    return name.rsplit(".", 1)[0] if "." in name else name


def read_is3_annotations(path: str | Path | None = None) -> tuple[list[tuple[str, list[float] | None]], LoadReport, dict[str, str]]:
    """Read IS3 annotations as ``[(id, box or None)]`` in file order, with a report of format problems.

    ``path`` may be the published ``synthetic3240_bbox.json`` (``.json`` or ``.json.xz``) or a table in
    the shipped format (``.tsv``/``.tsv.xz``: header ``id x1 y1 x2 y2``, tab-separated); ``None`` reads the
    shipped table. Entries whose box is not 4 finite numbers get ``None`` (counted as ``malformed_box``);
    entries without an image path are skipped (``malformed_entries``); an audio stem that differs from the
    image stem is counted (``audio_image_stem_mismatch``; the image stem is the id).
    """
    if path is None:
        raw = lzma.decompress(resources.files("vssl_helpers.data").joinpath(SHIPPED_TABLE).read_bytes())
        where, kind = f"vssl_helpers/data/{SHIPPED_TABLE}", "table"
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"IS3 annotation file not found: {p} (expected synthetic3240_bbox.json)")
        raw = p.read_bytes()
        if p.suffix == ".xz":
            raw = lzma.decompress(raw)
        where = str(p)
        kind = "table" if ".tsv" in p.suffixes else "json"
    blob = git_blob_sha1(raw)
    source = {"annotations": where, "git_blob_sha1": blob}
    if blob == IS3_BLOB_SHA1:
        source["upstream"] = IS3_UPSTREAM
    out: list[tuple[str, list[float] | None]] = []
    malformed_entries: list[str] = []
    malformed_box: list[str] = []
    stem_mismatch: list[str] = []
    if kind == "json":
        try:
            entries = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(entries, list):
            raise ValueError(f"{where}: expected a JSON list of entries, got {type(entries).__name__}")
        for k, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("image"), str) or not e["image"]:
                malformed_entries.append(f"entry #{k}")
                continue
            sid = _stem(e["image"])
            if isinstance(e.get("audio"), str) and _stem(e["audio"]) != sid:
                stem_mismatch.append(sid)
            box = e.get("gt_box")
            ok = (
                isinstance(box, list) and len(box) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in box)
            )
            if not ok:
                malformed_box.append(sid)
            out.append((sid, [float(v) for v in box] if ok else None))
    else:
        source["provenance"] = f"derived from {IS3_UPSTREAM} (blob {IS3_BLOB_SHA1})"
        lines = raw.decode("utf-8").splitlines()
        body = [ln for ln in lines if ln and not ln.startswith("#")]
        if not body or body[0] != _TABLE_HEADER:
            raise ValueError(f"{where}: expected the header {_TABLE_HEADER!r}")
        for k, ln in enumerate(body[1:], 2):
            parts = ln.split("\t")
            if len(parts) != 5 or not parts[0]:
                malformed_entries.append(f"line {k}")
                continue
            try:
                box = [float(v) for v in parts[1:]]
                ok = all(np.isfinite(box))
            except ValueError:
                ok = False
            if not ok:
                malformed_box.append(parts[0])
            out.append((parts[0], box if ok else None))
    report = LoadReport(source=where, n_entries=len(out) + len(malformed_entries), n_samples=0)
    report.add("malformed_entries", "entries without an image path (or table lines without 5 fields); skipped", malformed_entries)
    report.add("malformed_box", "entries whose gt_box is not 4 finite numbers; empty GT", malformed_box)
    report.add("audio_image_stem_mismatch", "audio stem differs from image stem; the image stem is the id", stem_mismatch)
    return out, report, source


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def derive_is3_table(annotations: str | Path) -> str:
    """The shipped IS3 table (ids and pixel boxes, file order) as text, derived from the published JSON.

    The header comment records the source and its git blob; ``xz`` it to get ``is3_boxes.tsv.xz``.
    """
    rows, report, source = read_is3_annotations(annotations)
    if any(b is None for _, b in rows):
        raise ValueError(f"{annotations}: {report.counts['malformed_box']} malformed boxes; cannot derive the table")
    head = [
        "# IS3 sample ids and GT boxes (pixels of the 224 x 224 image), in file order.",
        f"# Derived by vssl_helpers.testsets.is3.derive_is3_table from {source.get('upstream', source['annotations'])}",
        f"# (git blob {source['git_blob_sha1']}); only the basenames of 'image' and the 'gt_box' values are kept.",
        _TABLE_HEADER,
    ]
    body = [f"{sid}\t" + "\t".join(_fmt(v) for v in box) for sid, box in rows]  # type: ignore[union-attr]
    return "\n".join(head + body) + "\n"


def _resolve_dir(root: Path, given: str | None, candidates: tuple[str, ...], what: str) -> Path:
    if given is not None:
        d = root / given
        if not d.is_dir():
            raise MediaError(f"IS3 media root {root}: {what} folder {given!r} does not exist")
        return d
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    raise MediaError(
        f"IS3 media root {root} has none of the {what} folders {list(candidates)}; expected "
        f"<root>/{candidates[0]}/<stem>.{'jpg' if what == 'image' else 'wav'} (pass {what}_dir= for another name)"
    )


def load_is3(
    annotations: str | Path | None = None,
    media_root: str | Path | None = None,
    *,
    image_dir: str | None = None,
    audio_dir: str | None = None,
    on_missing: OnMissing = "raise",
    check: bool = True,
    deep_check: bool = False,
    target_sr: int = DEFAULT_SAMPLE_RATE,
    unmapped: Literal["raise", "skip"] = "raise",
) -> RealTestSet:
    """Load IS3 as :class:`~vssl_helpers.testsets.base.Sample` records (one per sounding object).

    Args:
        annotations: ``synthetic3240_bbox.json`` (or the shipped-format ``.tsv[.xz]`` table); ``None``
            reads the shipped table derived from the published file.
        media_root: folder with the image and audio folders (see the module docstring); ``None``:
            metadata only (``Sample.image``/``audio`` are relative paths ``images/<id>.jpg``,
            ``audio_wav/<id>.wav``).
        image_dir, audio_dir: folder names under the root, if not the usual ones.
        on_missing: ``"raise"`` a :class:`MediaError` for missing/unreadable media, or ``"skip"`` them.
        check: run the media check (only with a media root).
        deep_check: decode every audio file completely in the check.
        target_sr: rate at which :meth:`RealTestSet.load` delivers audio.
        unmapped: a target token missing from the IS3 label map raises :class:`CategoryError`
            (``"raise"``) or drops the entry (``"skip"``, recorded as ``unmapped_target``).

    Returns:
        A :class:`RealTestSet` named ``"is3"``, in file order (see the module docstring for the meaning
        of ``category`` and ``meta``). Quirks of the names are counted in ``report``; none is fatal.
    """
    rows, report, source = read_is3_annotations(annotations)

    # duplicates, name parsing
    seen: set[str] = set()
    dup: list[str] = []
    entries: list[tuple[str, list[float] | None, IS3Name]] = []
    for sid, box in rows:
        if sid in seen:
            dup.append(sid)
            continue
        seen.add(sid)
        entries.append((sid, box, IS3Name(sid)))
    report.add("duplicate_ids", "an id seen before; later entries skipped", dup)

    unmapped_target = [sid for sid, _, nm in entries if find_is3_label(nm.target) is None]
    if unmapped_target and unmapped == "raise":
        toks = sorted({IS3Name(s).target for s in unmapped_target})
        raise CategoryError(
            f"{report.source}: {len(unmapped_target)} entries have target tokens missing from the IS3 label map "
            f"({len(toks)} tokens, e.g. {toks[:3]}); pass unmapped='skip' to drop them"
        )
    report.add("unmapped_target", "target token missing from the IS3 label map; entry skipped", unmapped_target)
    bad = set(unmapped_target)
    entries = [x for x in entries if x[0] not in bad]

    by_base: dict[str, list[int]] = defaultdict(list)
    for k, (_, _, nm) in enumerate(entries):
        by_base[nm.base].append(k)

    def cat(token: str) -> str | None:
        lab = find_is3_label(token)
        return lab.broad_category if lab else None

    def excl(token: str) -> set[str]:
        lab = find_is3_label(token)
        return {lab.broad_category, *lab.also_exclude} if lab else set()

    # quirks of the names
    stems_sorted = sorted(sid for sid, _, _ in entries)
    collisions = []
    for base in sorted(by_base):
        lo = bisect.bisect_left(stems_sorted, base)
        hi = bisect.bisect_left(stems_sorted, base + "\U0010ffff")
        if hi - lo > 2:
            collisions.append(base)
    ids_all = [sid for sid, _, _ in entries]
    report.add("no_numeric_id", "names <objA>_<objB>_<target> without the numeric id", [s for s, _, nm in entries if nm.number is None])
    report.add("names_with_spaces", "names containing spaces (kept verbatim as ids)", [s for s in ids_all if " " in s])
    report.add("names_with_uppercase", "names containing upper-case letters (labels are matched case-insensitively)", [s for s in ids_all if s != s.lower()])
    report.add(
        "digit_suffixed_tokens", "object tokens with a trailing number (e.g. 'banjo2'); the number is ignored for labels",
        [s for s, _, nm in entries if any(re.search(r"\d$", t) for t in nm.objects)],
    )
    report.add(
        "unexpected_object_count", "names whose object part does not have exactly 2 tokens",
        [s for s, _, nm in entries if len(nm.objects) != 2],
    )
    report.add(
        "prefix_collisions",
        "bases for which vssl_eval's prefix glob '<base>*' matches more than 2 files (count of bases); partners are "
        "found here by exact base instead",
        collisions,
    )
    report.add(
        "target_not_in_name",
        "target token not literally one of the two object tokens (e.g. 'subwaytrain' -> 'subway')",
        [s for s, _, nm in entries if nm.target not in nm.objects[:2]],
    )
    mismatch_cat = []
    unmapped_objects = []
    for s, _, nm in entries:
        ocats = {cat(t) for t in nm.objects}
        if None in ocats:
            unmapped_objects.append(s)
        if cat(nm.target) not in ocats:
            mismatch_cat.append(s)
    report.add(
        "target_category_not_in_name",
        "the target's broad category is not the category of any object token (a label that contradicts the name, "
        "e.g. 'bus_motorcycle_10906_goat'); the name's categories are still excluded from offscreen draws",
        mismatch_cat,
    )
    report.add("unmapped_object_tokens", "object tokens missing from the IS3 label map (not excluded)", unmapped_objects)
    singles = [b for b, ks in by_base.items() if len(ks) == 1]
    multi = [b for b, ks in by_base.items() if len(ks) > 2]
    same_target = [
        b for b, ks in by_base.items()
        if len(ks) == 2 and normalize_is3_label(entries[ks[0]][2].target) == normalize_is3_label(entries[ks[1]][2].target)
    ]
    report.add("bases_without_partner", "images with only one entry (count of bases); the partner's category is unknown", singles)
    report.add("bases_with_more_than_two", "images with more than two entries (count of bases); all partners are used", multi)
    report.add("same_target_pairs", "images whose two entries have the same target token (count of bases)", same_target)

    # boxes
    n = len(entries)
    raw = np.array([b if b is not None else [0.0, 0.0, 0.0, 0.0] for _, b, _ in entries], dtype=np.float64).reshape(-1, 4)
    pix = np.clip(raw, 0, GT_SIZE).astype(np.int64)
    zero = (pix[:, 2] <= pix[:, 0]) | (pix[:, 3] <= pix[:, 1])
    out_range = ((raw < 0) | (raw > GT_SIZE)).any(1)
    non_integral = (raw != np.round(raw)).any(1)
    full = (pix == [0, 0, GT_SIZE, GT_SIZE]).all(1)
    report.add("out_of_range_boxes", "boxes with a coordinate outside [0, 224]; clipped", [ids_all[i] for i in np.flatnonzero(out_range)])
    report.add("non_integral_boxes", "boxes with fractional pixel coordinates; truncated", [entries[i][0] for i in np.flatnonzero(non_integral)])
    report.add("full_image_boxes", "boxes covering the whole 224 x 224 image", [entries[i][0] for i in np.flatnonzero(full)])
    report.add("empty_gt", "entries whose GT mask is empty (zero-area or malformed box); kept", [entries[i][0] for i in np.flatnonzero(zero)])

    # media
    root = Path(media_root) if media_root is not None else None
    keep = np.ones(n, dtype=bool)
    check_result = None
    if root is not None:
        idir = _resolve_dir(root, image_dir, IMAGE_DIRS, "image")
        adir = _resolve_dir(root, audio_dir, AUDIO_DIRS, "audio")
        if check:
            check_result = check_media(
                [(sid, idir / f"{sid}.jpg", adir / f"{sid}.wav") for sid, _, _ in entries], root, deep=deep_check
            )
            skip = apply_media_check(check_result, on_missing, "IS3")
            report.add("skipped_media", "samples dropped because a media file is missing or unreadable", sorted(skip))
            if skip:
                keep = np.array([sid not in skip for sid, _, _ in entries])
    else:
        idir, adir = Path(image_dir or IMAGE_DIRS[0]), Path(audio_dir or AUDIO_DIRS[0])

    sel = np.flatnonzero(keep)
    masks = boxes_to_masks(pix[sel], np.arange(len(sel)), len(sel))
    samples: list[Sample] = []
    for j, i in enumerate(sel):
        sid, _, nm = entries[i]
        own = cat(nm.target)
        assert own is not None
        partners = [entries[k][2] for k in by_base[nm.base] if k != i]
        cats = [own] + [c for p in partners if (c := cat(p.target)) is not None]
        visible: set[str] = set(cats)
        for tok in (nm.target, *nm.objects, *(p.target for p in partners)):
            visible |= excl(tok)
        meta: dict[str, Any] = {
            "base": nm.base,
            "image_id": nm.base,
            "label": nm.target,
            "objects": nm.objects,
            "partner_ids": tuple(p.stem for p in partners),
            "audio_category": own,
            "visible_categories": category_order(visible),
        }
        if check_result is not None and sid in check_result.durations:
            meta["duration"] = check_result.durations[sid]
        samples.append(
            Sample(
                id=sid, image=idir / f"{sid}.jpg", audio=adir / f"{sid}.wav", sample_rate=target_sr,
                gt_mask=masks[j], category=tuple(dict.fromkeys(cats)), classes=(nm.target,),
                boxes=pix[i:i + 1].astype(np.float32), meta=meta,
            )
        )
    report.n_samples = len(samples)
    log.info("%s", report.summary())
    return RealTestSet(
        name="is3", samples=samples, gt_masks=masks, report=report, media_root=root,
        media_check=check_result, target_sr=target_sr, source=source,
    )
