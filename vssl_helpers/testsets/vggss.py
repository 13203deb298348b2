"""VGG-SS (VGG-Sound Sources, Chen et al., CVPR 2021): annotations, GT masks, media layout.

Annotation format (``vggss.json``, as published in ``hche11/Localizing-Visual-Sounds-the-Hard-Way``):
a JSON list of ``{"file": "<ytid>_<start6>", "class": "<VGGSound class>", "bbox": [[x1, y1, x2, y2], ...]}``
with box coordinates normalised to [0, 1] (x = column / width, y = row / height). Media layout (the
official one, also what ``vssl_eval`` reads): ``<root>/frames/<file>.jpg`` and ``<root>/audio/<file>.wav``.

**GT mask rule** (the one every public VGG-SS evaluation uses, LVS, EZ-VSL, SLAVC and ``vssl_eval``
alike, so that IoUs are comparable): each coordinate becomes ``int(clip(v, 0, 1) * 224)``
(truncation toward zero), the box covers the half-open pixel ranges ``x1 <= col < x2`` and
``y1 <= row < y2``, and the mask is the union of all boxes of the entry.

**Quirks of the published file**, all counted in :attr:`RealTestSet.report` and none fatal:

* 12 boxes hold the sentinel ``-2.8823037615171176e+16`` (= -2**63 / 320) in x2 and/or y2. Under the
  rule above they clip to zero-area boxes and add nothing to the mask.
* 6 further in-range boxes are degenerate (zero width or height).
* 2 entries have no usable box at all (``M1P1xla8rg0_000000``, ``MKC9LvRivTM_000030``): their GT mask is
  empty. They are **kept** by default (the paper's code keeps them; how IoU treats an empty GT is the
  metrics' rule, ``vssl_helpers.metrics.EmptyGtRule``); ``drop_empty_gt=True`` drops them.
* 126 coordinates are JSON integers (``0``/``1``) rather than floats (harmless, counted for the record).

The file ships with the package (``vssl_helpers/data/vggss/vggss.json.xz``, xz-compressed, Apache-2.0;
the decompressed bytes are checked against the upstream git blob) so that ``load_vggss()`` works without
a download; media are never shipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import lzma
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..categories import CategoryError, vggsound_classes
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

__all__ = [
    "VGGSS_UPSTREAM",
    "VGGSS_BLOB_SHA1",
    "SHIPPED_ANNOTATIONS",
    "SENTINEL_ABS",
    "git_blob_sha1",
    "read_vggss_annotations",
    "normalized_to_pixels",
    "load_vggss",
]

log = logging.getLogger(__name__)

VGGSS_UPSTREAM = "hche11/Localizing-Visual-Sounds-the-Hard-Way@8fe8cbbf810e804cf8cc9b244bb5d77ec8aa8315:metadata/vggss.json"
"""Where the published annotation file comes from."""
VGGSS_BLOB_SHA1 = "9db1c27f7f2a2f5c237d2bc4f7d59d8ab4ea90f8"
"""Git blob SHA-1 of the published ``vggss.json`` (``git hash-object``)."""
SHIPPED_ANNOTATIONS = "vggss/vggss.json.xz"
"""The shipped copy, inside ``vssl_helpers/data``."""
SENTINEL_ABS = 1e6
"""A coordinate whose magnitude exceeds this (or that is not finite) is a sentinel, not a position."""

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{11}_\d{6}$")


def git_blob_sha1(data: bytes) -> str:
    """The git blob SHA-1 of ``data`` (what ``git hash-object`` prints for a file with these bytes)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_vggss_annotations(path: str | Path | None = None) -> tuple[list[Any], dict[str, str]]:
    """Read a ``vggss.json`` (``.json`` or ``.json.xz``; ``None``: the shipped copy).

    Returns ``(entries, source)`` where ``source`` records the path and the git blob SHA-1 of the
    decompressed JSON (and the upstream address when the blob matches the published file). The shipped
    copy must match the published blob (``ValueError`` otherwise).
    """
    if path is None:
        raw = lzma.decompress(resources.files("vssl_helpers.data").joinpath(SHIPPED_ANNOTATIONS).read_bytes())
        where = f"vssl_helpers/data/{SHIPPED_ANNOTATIONS}"
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"VGG-SS annotation file not found: {p} (expected vggss.json)")
        raw = p.read_bytes()
        if p.suffix == ".xz":
            raw = lzma.decompress(raw)
        where = str(p)
    blob = git_blob_sha1(raw)
    if path is None and blob != VGGSS_BLOB_SHA1:
        raise ValueError(f"{where}: decompressed git blob {blob}, expected the published {VGGSS_BLOB_SHA1}")
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{where}: expected a JSON list of entries, got {type(entries).__name__}")
    source = {"annotations": where, "git_blob_sha1": blob}
    if blob == VGGSS_BLOB_SHA1:
        source["upstream"] = VGGSS_UPSTREAM
    return entries, source


def normalized_to_pixels(boxes: np.ndarray, size: int = GT_SIZE) -> np.ndarray:
    """Normalised ``[x1, y1, x2, y2]`` boxes -> integer pixel boxes: ``int(clip(v, 0, 1) * size)``.

    Non-finite values become 0 first (like a sentinel, they then give a zero-area box).
    """
    b = np.nan_to_num(np.asarray(boxes, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return (np.clip(b, 0.0, 1.0) * size).astype(np.int64)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def load_vggss(
    annotations: str | Path | None = None,
    media_root: str | Path | None = None,
    *,
    on_missing: OnMissing = "raise",
    check: bool = True,
    deep_check: bool = False,
    target_sr: int = DEFAULT_SAMPLE_RATE,
    unmapped: Literal["raise", "skip"] = "raise",
    drop_empty_gt: bool = False,
) -> RealTestSet:
    """Load VGG-SS as :class:`~vssl_helpers.testsets.base.Sample` records with 224 × 224 GT masks.

    Args:
        annotations: path of a ``vggss.json`` (or ``.json.xz``); ``None`` uses the shipped copy.
        media_root: folder with ``frames/<file>.jpg`` and ``audio/<file>.wav``. ``None``: metadata only
            (``Sample.image``/``audio`` are then the relative paths the layout expects).
        on_missing: with a media root, ``"raise"`` a :class:`MediaError` naming the count and the first
            ids of samples whose files are missing or unreadable, or ``"skip"`` them (recorded in the
            report under ``skipped_media``).
        check: run the media check (only with a media root).
        deep_check: decode every audio file completely in the check (slower; headers otherwise).
        target_sr: rate at which :meth:`RealTestSet.load` delivers audio (resampled if needed).
        unmapped: a class missing from the category map raises :class:`CategoryError` (``"raise"``)
            or drops the entry (``"skip"``, recorded as ``unmapped_class``).
        drop_empty_gt: drop entries whose GT mask is empty (recorded as ``dropped_empty_gt``).

    Returns:
        A :class:`RealTestSet` named ``"vggss"``, in file order. ``Sample.category`` is the broad category
        of the class; ``meta`` holds ``vggsound_group``, ``audio_category``, ``image_id`` and, with a
        media check, ``duration`` (seconds, from the audio header).
    """
    entries, source = read_vggss_annotations(annotations)
    where = source["annotations"]
    report = LoadReport(source=where, n_entries=len(entries), n_samples=0)
    classes_map = vggsound_classes()

    ids: list[str] = []
    classes: list[str] = []
    flat: list[list[float]] = []
    owner: list[int] = []
    malformed_entries: list[str] = []
    malformed_boxes: list[str] = []
    duplicates: list[str] = []
    nonstandard: list[str] = []
    unmapped_ids: list[str] = []
    unmapped_classes: set[str] = set()
    n_int_coords = 0
    int_coord_ids: list[str] = []
    seen: set[str] = set()
    for k, e in enumerate(entries):
        if not (
            isinstance(e, dict)
            and isinstance(e.get("file"), str)
            and isinstance(e.get("class"), str)
            and isinstance(e.get("bbox"), list)
        ):
            malformed_entries.append(f"entry #{k}")
            continue
        fid, cls = e["file"], e["class"]
        if fid in seen:
            duplicates.append(fid)
            continue
        if cls not in classes_map:
            unmapped_ids.append(fid)
            unmapped_classes.add(cls)
            continue
        seen.add(fid)
        if not _ID_RE.match(fid):
            nonstandard.append(fid)
        idx = len(ids)
        ids.append(fid)
        classes.append(cls)
        had_int = False
        for bx in e["bbox"]:
            if not (isinstance(bx, list) and len(bx) == 4 and all(_is_number(v) for v in bx)):
                malformed_boxes.append(fid)
                continue
            ints = sum(type(v) is int for v in bx)
            if ints:
                n_int_coords += ints
                had_int = True
            flat.append(bx)
            owner.append(idx)
        if had_int:
            int_coord_ids.append(fid)

    if unmapped_ids and unmapped == "raise":
        bad = sorted(unmapped_classes)
        raise CategoryError(
            f"{where}: {len(unmapped_ids)} entries have classes missing from the VGGSound category map "
            f"({len(bad)} classes, e.g. {bad[:3]}); pass unmapped='skip' to drop them"
        )

    n = len(ids)
    raw = np.asarray(flat, dtype=np.float64).reshape(-1, 4)
    own = np.asarray(owner, dtype=np.int64)
    finite = np.isfinite(raw)
    sentinel = (~finite).any(1) | (np.abs(np.where(finite, raw, 0.0)) > SENTINEL_ABS).any(1)
    out_of_range = ~sentinel & ((raw < 0) | (raw > 1)).any(1)
    degenerate = ~sentinel & ((raw[:, 2] <= raw[:, 0]) | (raw[:, 3] <= raw[:, 1]))
    pix = normalized_to_pixels(raw)
    zero_area = (pix[:, 2] <= pix[:, 0]) | (pix[:, 3] <= pix[:, 1])
    rounding_only = zero_area & ~sentinel & ~degenerate
    usable_count = np.bincount(own[~zero_area], minlength=n)
    n_boxes = np.bincount(own, minlength=n)
    empty_gt = usable_count == 0

    def idlist(mask: np.ndarray) -> list[str]:
        return [ids[i] for i in np.unique(own[mask])]

    report.add("malformed_entries", "entries without a string 'file'/'class' or a list 'bbox'; skipped", malformed_entries)
    report.add("duplicate_ids", "a 'file' seen before; later entries skipped", duplicates)
    report.add("unmapped_class", "class missing from the VGGSound category map; entry skipped", unmapped_ids)
    report.add("nonstandard_ids", "id not of the form <11-char YouTube id>_<6 digits>; kept", nonstandard)
    report.add("malformed_boxes", "a box that is not 4 numbers; ignored", malformed_boxes)
    report.add(
        "sentinel_boxes",
        f"boxes with a sentinel coordinate (|v| > {SENTINEL_ABS:g} or not finite, e.g. -2.88e16): zero area after "
        "clipping, add nothing to the mask (count of boxes; ids of their entries)",
        idlist(sentinel), count=int(sentinel.sum()),
    )
    report.add(
        "degenerate_boxes", "in-range boxes with zero width or height (count of boxes)",
        idlist(degenerate), count=int(degenerate.sum()),
    )
    report.add(
        "out_of_range_boxes", "non-sentinel boxes with a coordinate outside [0, 1]; clipped (count of boxes)",
        idlist(out_of_range), count=int(out_of_range.sum()),
    )
    report.add(
        "empty_after_rounding_boxes",
        "boxes of positive size that become zero-area pixel boxes under int(clip(v,0,1)*224) (count of boxes)",
        idlist(rounding_only), count=int(rounding_only.sum()),
    )
    report.add("entries_with_unusable_box", "entries with at least one zero-area pixel box", idlist(zero_area))
    report.add("multi_box_entries", "entries with more than one box (union taken)", [ids[i] for i in np.flatnonzero(n_boxes > 1)])
    report.add(
        "empty_gt",
        "entries whose GT mask is empty (no usable box); kept unless drop_empty_gt=True",
        [ids[i] for i in np.flatnonzero(empty_gt)],
    )
    report.add(
        "integer_coordinates", "coordinates stored as JSON integers (count of values; ids of their entries)",
        int_coord_ids, count=n_int_coords,
    )

    keep = np.ones(n, dtype=bool)
    if drop_empty_gt:
        keep &= ~empty_gt
        report.add("dropped_empty_gt", "entries dropped because their GT mask is empty", [ids[i] for i in np.flatnonzero(empty_gt)])

    root = Path(media_root) if media_root is not None else None
    check_result = None
    if root is not None:
        for sub in ("frames", "audio"):
            if not (root / sub).is_dir():
                raise MediaError(
                    f"VGG-SS media root {root} has no '{sub}/' folder; expected the official layout "
                    f"<root>/frames/<file>.jpg and <root>/audio/<file>.wav"
                )
        if check:
            kept = np.flatnonzero(keep)
            check_result = check_media(
                [(ids[i], root / "frames" / f"{ids[i]}.jpg", root / "audio" / f"{ids[i]}.wav") for i in kept],
                root, deep=deep_check,
            )
            skip = apply_media_check(check_result, on_missing, "VGG-SS")
            report.add("skipped_media", "samples dropped because a media file is missing or unreadable", sorted(skip))
            if skip:
                keep &= np.array([i not in skip for i in ids])

    # masks for the kept entries only
    sel = np.flatnonzero(keep)
    remap = np.full(n, -1, dtype=np.int64)
    remap[sel] = np.arange(len(sel))
    box_keep = keep[own] if len(own) else np.zeros(0, bool)
    k_own = remap[own[box_keep]]
    k_pix = pix[box_keep]
    masks = boxes_to_masks(k_pix, k_own, len(sel))
    bounds = np.searchsorted(k_own, np.arange(len(sel) + 1))
    k_pix32 = k_pix.astype(np.float32)

    samples: list[Sample] = []
    for j, i in enumerate(sel):
        fid = ids[i]
        cls = classes[i]
        vc = classes_map[cls]
        if root is not None:
            img, aud = root / "frames" / f"{fid}.jpg", root / "audio" / f"{fid}.wav"
        else:
            img, aud = Path("frames") / f"{fid}.jpg", Path("audio") / f"{fid}.wav"
        meta: dict[str, Any] = {
            "vggsound_group": vc.vggsound_group,
            "audio_category": vc.broad_category,
            "image_id": fid,
        }
        if check_result is not None and fid in check_result.durations:
            meta["duration"] = check_result.durations[fid]
        samples.append(
            Sample(
                id=fid, image=img, audio=aud, sample_rate=target_sr, gt_mask=masks[j],
                category=vc.broad_category, classes=(cls,), boxes=k_pix32[bounds[j]:bounds[j + 1]], meta=meta,
            )
        )
    report.n_samples = len(samples)
    log.info("%s", report.summary())
    return RealTestSet(
        name="vggss", samples=samples, gt_masks=masks, report=report, media_root=root,
        media_check=check_result, target_sr=target_sr, source=source,
    )
