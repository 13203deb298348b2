"""Reference-code compatibility mode: the places where the paper's code departs from its text, as
named switches (never the default).

The companion computes the paper's metrics as the paper *defines* them (:mod:`vssl_helpers.metrics`).
The paper's own code (``xavijuanola/vssl_eval@e8ebbc9``, audited in ``reference/paper-code-audit.md``)
departs from that text in a few places that move the numbers. Each departure is a switch here, so a
run can reproduce the code's behaviour one departure at a time (to measure its effect) or all
together (``compat=True`` in the API, ``--compat`` on the command line, ``compat: true`` in a book
configuration). Switches:

========================== ======= ======================================================================
switch                     kind    what the paper code does (audit item)
========================== ======= ======================================================================
``tau_grid``               metric  AUC / AUC_N on the float grid ``0.05*i`` (``0.05*3 = 0.15000000000000002``,
                                   so an IoU of exactly 0.15 fails ``>= tau_3``), trapezoid over it (M7)
``adaptive_cut``           metric  adaptive threshold ``thr = sorted[N - M]``, pixels ``> thr``: M - 1 pixels,
                                   fewer on ties (0 on a constant map); M = 0 becomes N/2 (M5)
``empty_gt_rules``         metric  empty GT: IoU 0 at the universal threshold (the code replaces its NaN by 0),
                                   ``inter/union`` with 0/0 = NaN for the adaptive one; NaN counted as a
                                   failure in success rates and AUCs (kept in the denominator);
                                   H(0, 0) = 0/0 = NaN in F_LOC / F_AUC
``align_corners_positive`` metric  positive maps upsampled with ``F.interpolate(bilinear, align_corners=True)``
                                   where the code does it (EZ-VSL / SLAVC / FNAC on both sets, LVS / SSL-Align
                                   on IS3 only); negatives always cv2-style (M12)
``geq_binarize``           metric  ``value >= threshold`` instead of ``>`` (the ORIGINAL LVS / SSL-Align
                                   evaluators; *not* the paper code, see below) (M4, models.md §9.4)
``silence_unlogged``       audio   silence spectrogram not logged (EZ-VSL / SLAVC / FNAC: all-zero PSD) or not
                                   converted to dB (SSL-TIE: zero mel power); LVS / SSL-Align unchanged (D2, D3)
``noise_unlogged``         audio   noise spectrogram not logged / not in dB, same models (D2)
``noise_unclipped``        audio   N(0, 1) noise not clipped to [-1, 1], and the loader's clamp bypassed for it
                                   (every loader of the paper code) (D1)
========================== ======= ======================================================================

The **reference preset** (:data:`REFERENCE_PRESET`, what ``--compat`` turns on) is every switch
except ``geq_binarize``: the paper code binarises with a strict ``>`` everywhere (audit M4: cIoU,
pIA, map IoU, the adaptive cut), while ``>=`` belongs to the original LVS / SSL-Align evaluators the
paper code was forked from. Turning it on would reproduce a different code base, so it is only
selectable by name.

Metric switches change how stored maps are scored, so they reuse the stored maps; audio switches
change the silence and noise maps, so they enter the map-store key (:func:`Compat.audio_key`), and
only the ones that change anything for the model (its lineage, below) do.

**Lineages.** Which loader and evaluator of the paper code a model follows decides where a switch
applies (:data:`MODEL_LINEAGE`): ``ezvsl`` (``datasets.py`` + ``eval()``: EZ-VSL, SLAVC, FNAC),
``lvs`` (``datasets_lvs.py`` + ``eval_lvs()``: LVS, SSL-Align), ``ssltie`` (``datasets_ssltie.py`` +
``eval_ssltie()``). RCGrad has no path in the paper code (audit T3): only the lineage-free metric
switches apply to it. The demo models of the embedded benchmark are given the lineage of the
objective they were trained with: ``demo-ezvsl``, ``demo-negaware`` (EZ-VSL objective) and
``demo-random`` (same two-tower model) follow ``ezvsl``, ``demo-lvs`` follows ``lvs``; the audio-blind
``demo-saliency`` and ``demo-oracle`` have no reference counterpart (lineage ``None``). For a demo
model "not logged" means its log-mel front end without the ``10 log10``: the mel power goes through
the same fixed affine scaling, as the paper code applies its ``/12`` normalisation to un-logged PSDs.
Synthetic test sets with one source count as VGG-SS, with two sources as IS3.

Not reproduced (they are not metric or input departures, or cannot be): the pooled evaluator lists
(M3), the unseeded negative draws (D9), the OGL variants (M14), the per-model audio windows
(reproduced by the models' ``protocol="paper"`` instead), and the float32 rounding of the threshold
that NumPy's comparison of float32 maps with a Python float implies.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import metrics as M

__all__ = [
    "Switch",
    "SWITCHES",
    "REFERENCE_PRESET",
    "Lineage",
    "LINEAGES",
    "MODEL_LINEAGE",
    "lineage_of",
    "testset_kind",
    "parse_switches",
    "Compat",
    "upsample_align_corners",
    "adaptive_cut_iou",
    "negative_frontend",
    "negative_maps",
    "noise_clipped",
    "Scorer",
]


@dataclass(frozen=True)
class Switch:
    """One departure of the paper code from its text."""

    name: str
    kind: Literal["metric", "audio"]
    audit: str
    summary: str
    reference: bool  # part of the reference-code preset


SWITCHES: dict[str, Switch] = {
    s.name: s
    for s in [
        Switch("tau_grid", "metric", "M7", "AUC / AUC_N on the float grid 0.05*i (0.05*3 = 0.15000000000000002)", True),
        Switch("adaptive_cut", "metric", "M5", "adaptive cut sorted[N-M] with '>': M-1 pixels, fewer on ties; M=0 -> N/2", True),
        Switch("empty_gt_rules", "metric", "M1, M5",
               "empty GT: IoU 0 at U.th., 0/0 = NaN adaptive; NaN counts as failure; H(0,0) = NaN", True),
        Switch("align_corners_positive", "metric", "M12",
               "positive maps upsampled align_corners=True (EZ-VSL family both sets, LVS family on IS3)", True),
        Switch("geq_binarize", "metric", "M4", "'>=' instead of '>' (original LVS / SSL-Align evaluators, not the paper code)", False),
        Switch("silence_unlogged", "audio", "D2, D3", "silence spectrogram not logged / not in dB (EZ-VSL family, SSL-TIE)", True),
        Switch("noise_unlogged", "audio", "D2", "noise spectrogram not logged / not in dB (EZ-VSL family, SSL-TIE)", True),
        Switch("noise_unclipped", "audio", "D1", "noise N(0,1) not clipped to [-1, 1] (every loader)", True),
    ]
}
"""Every switch, by name (the order of the documentation and of results files)."""

REFERENCE_PRESET: tuple[str, ...] = tuple(n for n, s in SWITCHES.items() if s.reference)
"""The switches of ``--compat`` / ``compat=True``: everything the paper code does (not ``geq_binarize``)."""


@dataclass(frozen=True)
class Lineage:
    """A loader + evaluator pair of the paper code (audit: per-model code paths)."""

    name: str
    loader: str
    evaluator: str
    unlogged_negatives: bool  # silence / noise spectrograms not logged (D2)
    align_corners_sets: tuple[str, ...]  # test sets whose positive maps are upsampled align_corners=True (M12)


LINEAGES: dict[str, Lineage] = {
    "ezvsl": Lineage("ezvsl", "datasets/datasets.py (AudioVisualDataset)", "eval.py eval()", True, ("vggss", "is3")),
    "lvs": Lineage("lvs", "datasets/datasets_lvs.py (GetAudioVideoDataset)", "eval.py eval_lvs()", False, ("is3",)),
    "ssltie": Lineage("ssltie", "datasets/datasets_ssltie.py (GetAudioVideoDataset_ssltie)", "eval.py eval_ssltie()", True, ()),
}
"""The paper code's three loader/evaluator paths."""

MODEL_LINEAGE: dict[str, str | None] = {
    "ezvsl": "ezvsl", "slavc": "ezvsl", "fnac": "ezvsl",
    "lvs": "lvs", "sslalign": "lvs",
    "ssltie": "ssltie",
    "rcgrad": None,  # no code path in the paper code (audit T3)
    "demo-ezvsl": "ezvsl", "demo-negaware": "ezvsl", "demo-random": "ezvsl",
    "demo-lvs": "lvs",
    "demo-saliency": None, "demo-oracle": None,
}
"""The one place that says which lineage each registered model follows (see the module docstring)."""


def lineage_of(model: str) -> str | None:
    """The lineage of a registered model name (``None``: no reference code path; also for models
    registered after this table was written, so that no switch is given a meaning it does not have)."""
    return MODEL_LINEAGE.get(model)


def testset_kind(testset: Any) -> str:
    """``"is3"`` for IS3 and IS3-like (two-source synthetic) sets, else ``"vggss"``: the test-set
    distinction of the paper code's upsampling (M12)."""
    name = str(getattr(testset, "name", "") or "")
    config = getattr(testset, "config", None)
    if name.startswith("is3") or getattr(config, "sources", 1) >= 2:
        return "is3"
    return "vggss"


def parse_switches(names: Iterable[str] | bool | None) -> frozenset[str]:
    """Validate switch names (``True``: the reference preset; ``None``/``False``: none).

    Raises ``ValueError`` naming the unknown switch and listing the known ones.
    """
    if names is None or names is False:
        return frozenset()
    if names is True:
        return frozenset(REFERENCE_PRESET)
    if isinstance(names, str):
        names = [names]
    out = set()
    for n in names:
        if n not in SWITCHES:
            raise ValueError(f"unknown compat switch {n!r}; known switches: {', '.join(SWITCHES)}")
        out.add(n)
    return frozenset(out)


@dataclass(frozen=True)
class Compat:
    """The compatibility switches of one run, resolved for one model and one test set.

    ``switches``: the requested names; :attr:`effective`: those that change anything for a model of
    ``lineage`` on a test set of kind ``testset`` (``"vggss"`` / ``"is3"``).
    """

    switches: frozenset[str] = frozenset()
    lineage: str | None = None
    testset: str = "vggss"

    @classmethod
    def create(cls, switches: "Iterable[str] | bool | Compat | None", model: str = "", testset: Any = "vggss") -> "Compat":
        """Validated switches (names, ``True`` for the reference preset, or another :class:`Compat`
        whose requested switches are taken) for registered ``model`` on ``testset`` (a name
        ``"vggss"``/``"is3"`` or a test set)."""
        kind = testset if isinstance(testset, str) and testset in ("vggss", "is3") else testset_kind(testset)
        names = switches.switches if isinstance(switches, Compat) else parse_switches(switches)
        return cls(frozenset(names), lineage_of(model), kind)

    def applies(self, name: str) -> bool:
        """Whether switch ``name`` changes anything for this lineage and test set."""
        lin = LINEAGES.get(self.lineage) if self.lineage else None
        if name in ("silence_unlogged", "noise_unlogged"):
            return lin is not None and lin.unlogged_negatives
        if name == "noise_unclipped":
            return lin is not None
        if name == "align_corners_positive":
            return lin is not None and self.testset in lin.align_corners_sets
        return name in SWITCHES

    @property
    def effective(self) -> frozenset[str]:
        """The requested switches that apply (see :meth:`applies`)."""
        return frozenset(n for n in self.switches if self.applies(n))

    def on(self, name: str) -> bool:
        """Whether switch ``name`` is requested and applies."""
        return name in self.switches and self.applies(name)

    @property
    def active(self) -> bool:
        """True when any switch is effective (the default scoring is bypassed)."""
        return bool(self.effective)

    def audio_key(self) -> str:
        """The effective audio switches, sorted and comma-separated ("" when none): what enters the
        map-store key, so that only maps that differ are stored apart."""
        return ",".join(sorted(n for n in self.effective if SWITCHES[n].kind == "audio"))

    def record(self) -> dict[str, Any]:
        """For results files: every switch name -> on/off as requested, the effective ones, the
        lineage and the test-set kind."""
        return {
            "switches": {n: n in self.switches for n in SWITCHES},
            "effective": {n: self.on(n) for n in SWITCHES},
            "reference_preset": self.switches == frozenset(REFERENCE_PRESET),
            "lineage": self.lineage,
            "testset_kind": self.testset,
        }


# ----------------------------------------------------------------------------------------------
# Upsampling and the adaptive cut of the paper code
# ----------------------------------------------------------------------------------------------
def upsample_align_corners(maps: torch.Tensor | np.ndarray, size: int = M.GT_SIZE) -> torch.Tensor:
    r"""``F.interpolate(maps, size, mode="bilinear", align_corners=True)`` in float32, as the paper
    code upsamples positive maps of the EZ-VSL family (audit M12).

    Per axis, output pixel :math:`i` reads source coordinate :math:`x = i\,(h-1)/(\mathrm{size}-1)`
    (corners on corners, no clamping needed), linear between :math:`\lfloor x \rfloor` and
    :math:`\lfloor x \rfloor + 1`. Only source pixels that land on an output pixel keep their value
    exactly (for 7 or 14 → 224 only the corners, since 223 is prime).
    """
    m = M.as_maps(maps)
    return F.interpolate(m.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=True)[:, 0]


def adaptive_cut_iou(maps224: torch.Tensor, gt: torch.Tensor, geq: bool = False) -> torch.Tensor:
    r"""Per-sample IoU of the paper code's adaptive cut (audit M5), on 224 × 224 maps.

    :math:`M = |G|` (``N/2`` when the GT is empty, ``N = 224^2``), :math:`\theta = \mathrm{sort}(v)[N - M]`
    (ascending, 0-based), active pixels :math:`v > \theta` (``geq``: :math:`v \ge \theta`), then
    ``inter / (|G| + active outside G)`` with 0/0 = NaN: M − 1 pixels for distinct values, fewer when
    values tie at :math:`\theta` (none on a constant map). Values are compared in the maps' dtype.
    """
    m = M.as_maps(maps224, "maps224") if maps224.dtype != torch.float64 else maps224
    g = M.as_gt(gt, m.shape[0]).to(m.device)
    n = m.shape[1] * m.shape[2]
    flat = m.flatten(1)
    g_flat = g.flatten(1)
    area = g_flat.sum(1)
    m_eff = torch.where(area == 0, torch.full_like(area, n // 2), area)
    theta = torch.sort(flat, dim=1).values.gather(1, (n - m_eff).view(-1, 1))
    act = flat >= theta if geq else flat > theta
    inter = (act & g_flat).sum(1).double()
    union = (area + act.sum(1)).double() - inter
    return inter / union  # 0/0 = NaN, as numpy in the paper code


# ----------------------------------------------------------------------------------------------
# Audio: the paper code's silence / noise front ends
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def negative_frontend(model: torch.nn.Module, kind: Literal["silence", "noise"], compat: "Compat | None") -> Iterator[None]:
    """Within the block, ``model`` encodes ``kind`` negatives as the paper code's loader of its
    lineage does: the log / dB step of its front end off (``*_unlogged``) and, for noise, the
    waveform clamp off (``noise_unclipped``; the noise itself must also be drawn unclipped, see
    :func:`vssl_helpers.negatives.noise_waveform`). Front ends with a ``log`` attribute
    (:class:`~vssl_helpers.models.audio_frontends.ScipyLogPSD`, :class:`~vssl_helpers.models.audio_frontends.MelDB`,
    the demo models' ``LogMel``) and a ``clip`` attribute (``ScipyLogPSD``) are switched; the
    previous values are restored on exit."""
    log_off = compat is not None and compat.on(f"{kind}_unlogged")
    clip_off = compat is not None and kind == "noise" and compat.on("noise_unclipped")
    saved: list[tuple[torch.nn.Module, str, Any]] = []
    try:
        for mod in model.modules():
            if log_off and isinstance(getattr(mod, "log", None), bool):
                saved.append((mod, "log", mod.log))
                mod.log = False
            if clip_off and isinstance(getattr(mod, "clip", None), bool):
                saved.append((mod, "clip", mod.clip))
                mod.clip = False
        yield
    finally:
        for mod, attr, value in reversed(saved):
            setattr(mod, attr, value)


@torch.no_grad()
def negative_maps(
    model: Any, images: torch.Tensor, noise_seeds: np.ndarray, n_audio: int, compat: "Compat | None",
    gt: torch.Tensor | None = None, batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The silence (``N × h × w``) and noise (``S × N × h × w``) maps of ``model`` for ``images``
    (``N × 3 × H × W`` in [0, 1]) with the audio switches of ``compat``: what the engine computes for
    these two negative types (the same noise draws, ``noise_seeds`` ``N × S`` from the manifest),
    without recomputing positives and off-screen maps, which no audio switch changes. Used by the
    compatibility chapter on a few images."""
    from .negatives import noise_waveform

    model = model.eval()
    n, s_count = noise_seeds.shape
    g = gt if (gt is not None and model.config.needs_gt) else None
    visual = torch.cat([model.encode_images(images[i : i + batch_size], gt=None if g is None else g[i : i + batch_size])
                        for i in range(0, n, batch_size)])
    with negative_frontend(model, "silence", compat):
        sil = model.encode_audio(torch.zeros(1, n_audio)).float()
    silence = model.similarity(visual, sil.expand(n, *sil.shape[1:]).to(visual.dtype)).float()
    clip = noise_clipped(compat)
    noise = []
    for s in range(s_count):
        clips = torch.from_numpy(np.stack([noise_waveform(int(noise_seeds[i, s]), n_audio, clip) for i in range(n)]))
        with negative_frontend(model, "noise", compat):
            emb = torch.cat([model.encode_audio(clips[i : i + batch_size]) for i in range(0, n, batch_size)])
        noise.append(model.similarity(visual, emb.to(visual.dtype)).float())
    return silence, torch.stack(noise)


def noise_clipped(compat: "Compat | None") -> bool:
    """Whether the noise waveform is clipped to [-1, 1] (the paper's text) for this run."""
    return not (compat is not None and compat.on("noise_unclipped"))


# ----------------------------------------------------------------------------------------------
# Scoring: the per-map values and aggregates of one Table I row, switch-aware
# ----------------------------------------------------------------------------------------------
_CHUNK = 256  # positive maps upsampled to 224 x 224 at a time (align-corners path)
_CACHE_MAPS = 1024  # up to this many positives, their align-corners maps are kept (200 MB)


class Scorer:
    """The metric functions :func:`vssl_helpers.engine.summarize_extended` calls, with the metric
    switches of ``compat`` applied. Without effective switches every method is the plain
    :mod:`vssl_helpers.metrics` call, so the default results do not change."""

    def __init__(self, compat: Compat | None = None) -> None:
        self.compat = compat or Compat()
        c = self.compat
        self.align = c.on("align_corners_positive")
        self.geq = c.on("geq_binarize")
        self.cut = c.on("adaptive_cut")
        self.empty = c.on("empty_gt_rules")
        self.grid = M.TAU_GRID_REFERENCE if c.on("tau_grid") else None
        self.nan: M.NanPolicy = "fail" if self.empty else "skip"
        self.zero_zero = math.nan if self.empty else 0.0
        self._cached: tuple[torch.Tensor, torch.Tensor] | None = None

    def _positive_chunks(self, maps: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
        # a summary scores the same positives against every negative: small sets keep their
        # align-corners maps (4 bytes x 224² per map) instead of upsampling them per call
        if maps.shape[0] <= _CACHE_MAPS:
            if self._cached is None or self._cached[0] is not maps:
                self._cached = (maps, upsample_align_corners(maps))
            yield 0, maps.shape[0], self._cached[1]
            return
        for s in range(0, maps.shape[0], _CHUNK):
            e = min(s + _CHUNK, maps.shape[0])
            yield s, e, upsample_align_corners(maps[s:e])

    def _masks(self, maps: torch.Tensor, t: float, positive: bool) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``geq_binarize``: chunks of ``upsampled >= t`` pixel masks, the upsampled maps in float32
        as the paper code's cv2 / ``F.interpolate`` output (align-corners for positives when that
        switch applies). A per-pixel comparison: the run counting's closed form cannot tell a
        value from a threshold one float64 step away."""
        if positive and self.align:
            for s, e, up in self._positive_chunks(maps):
                yield s, e, up.double() >= float(t)  # float64, or torch would round t to float32
            return
        for s in range(0, maps.shape[0], _CHUNK):
            e = min(s + _CHUNK, maps.shape[0])
            yield s, e, M.upsample(maps[s:e]).double() >= float(t)

    def ciou(self, maps: torch.Tensor, gt_rows: M.PreparedGt, t: float, empty_gt: M.EmptyGtRule) -> torch.Tensor:
        """Per-sample IoU of positives at the universal threshold."""
        rule: M.EmptyGtRule = "zero" if self.empty else empty_gt
        if self.geq:
            out = torch.empty(maps.shape[0], dtype=torch.float64)
            for s, e, mask in self._masks(maps, t, positive=True):
                out[s:e] = M.mask_iou(mask, gt_rows.masks[s:e], rule)
            return out
        if not self.align:
            return M.ciou(maps, gt_rows, t, rule)
        out = torch.empty(maps.shape[0], dtype=torch.float64)
        for s, e, up in self._positive_chunks(maps):
            out[s:e] = M.ciou(up, gt_rows[s:e], t, rule)
        return out

    def ciou_adaptive(self, maps: torch.Tensor, gt: torch.Tensor, gt_rows: M.PreparedGt, empty_gt: M.EmptyGtRule) -> torch.Tensor:
        """Per-sample IoU of the adaptive (top-M) binarisation of positives."""
        if not self.cut:
            if not self.align:
                return M.ciou_adaptive(maps, gt_rows, empty_gt)
            out = torch.empty(maps.shape[0], dtype=torch.float64)
            for s, e, up in self._positive_chunks(maps):
                out[s:e] = M.ciou_adaptive(up, gt_rows[s:e], empty_gt)
            return out
        out = torch.empty(maps.shape[0], dtype=torch.float64)
        for s in range(0, maps.shape[0], _CHUNK):
            e = min(s + _CHUNK, maps.shape[0])
            # the paper code ranks float32 maps (cv2 or F.interpolate output)
            up = upsample_align_corners(maps[s:e]) if self.align else M.upsample(maps[s:e])
            out[s:e] = adaptive_cut_iou(up, gt[s:e], self.geq)
        if not self.empty:  # the companion's rule for empty GTs on top of the cut
            area = M.as_gt(gt).flatten(1).sum(1)
            out = torch.where(area == 0, M._iou_from_counts(area, area, area, empty_gt), out)
        return out

    def pia(self, maps: torch.Tensor, t: float) -> torch.Tensor:
        """Per-sample pIA of negatives (always cv2-style upsampling, as the paper code)."""
        if not self.geq:
            return M.pia(maps, t)
        out = torch.empty(maps.shape[0], dtype=torch.float64)
        for s, e, mask in self._masks(maps, t, positive=False):
            out[s:e] = mask.flatten(1).double().mean(1)
        return out

    def map_iou(self, maps_a: torch.Tensor, maps_b: torch.Tensor, t: float, a_positive: bool = False) -> torch.Tensor:
        """Map-vs-map IoU; ``a_positive``: ``maps_a`` are positive maps (upsampled align-corners
        under ``align_corners_positive``, against cv2-style negatives, as the paper code)."""
        if self.geq:
            out = torch.empty(maps_a.shape[0], dtype=torch.float64)
            for s, e, mask_a in self._masks(maps_a, t, positive=a_positive):
                mask_b = M.upsample(maps_b[s:e]).double() >= float(t)
                out[s:e] = M.mask_pair_iou(mask_a, mask_b)
            return out
        if not (self.align and a_positive):
            return M.map_iou(maps_a, maps_b, t)
        out = torch.empty(maps_a.shape[0], dtype=torch.float64)
        for s, e, up in self._positive_chunks(maps_a):
            out[s:e] = M.map_iou(up, maps_b[s:e], t)
        return out

    # aggregates
    def mean_iou(self, ious: torch.Tensor) -> float:
        return M.mean_iou(ious, self.nan)

    def success_rate(self, values: torch.Tensor, at: float = 0.5) -> float:
        return M.success_rate(values, at, self.nan)

    def auc(self, ious: torch.Tensor) -> float:
        return M.auc(ious, self.grid, self.nan)

    def auc_n(self, pias: torch.Tensor) -> float:
        return M.auc_n(pias, self.grid, self.nan)

    def f_loc(self, ciou_mean: float, pia_by_type: Mapping[str, float] | Sequence[float]) -> float:
        return M.f_loc(ciou_mean, pia_by_type, self.zero_zero)

    def f_auc(self, auc_value: float, auc_n_by_type: Mapping[str, float] | Sequence[float]) -> float:
        return M.f_auc(auc_value, auc_n_by_type, self.zero_zero)
