"""The paper's metrics, made exact, as functions on batched tensors.

Every function works on ``torch`` tensors on any device (CPU or CUDA) and accepts float16, bfloat16,
float32 or float64 maps; NumPy arrays are accepted and converted. Maps are cast to float32 once,
after validation; upsampled values are compared with the threshold in float64, and the threshold is
never rounded (a float64 ``B``-vector).

Conventions (the "contract" of this module)
-------------------------------------------
* ``maps``: ``B × h × w`` raw similarity maps at the model's *native* resolution, in the model's own
  units (cosine, ``(cos+1)/2``, Grad-CAM in [0, 1], ...). Never min-max normalised here.
* ``gt``: ``B × 224 × 224`` boolean ground-truth masks (union of the boxes).
* Maps are brought to 224 × 224 by :func:`upsample` (one upsampler for every map of every model),
  then binarised with a *strict* comparison ``value > threshold`` (:func:`binarize`).
* Per-sample functions return a length-``B`` float tensor on the maps' device; aggregation over
  samples (means, success-rate AUCs, harmonic means) is done by the aggregation functions at the end
  of this module, which take those per-sample vectors.
* All values are fractions in [0, 1]; tables multiply by 100.

Per-sample metrics: :func:`ciou` (IoU at a threshold), :func:`ciou_adaptive` (IoU of the top-M
pixels, M = GT area), :func:`pia` (fraction of the image that is active), :func:`map_iou` (IoU of two
localization maps). Aggregates: :func:`mean_iou` (the paper's "cIoU U.th."), :func:`success_rate`
(the "cIoU Adap." column, fraction with IoU >= 0.5), :func:`auc` and :func:`auc_n` (21-point
trapezoid success-rate curves), :func:`f_loc` and :func:`f_auc` (harmonic means).

How the module is built
-----------------------
Each per-sample metric is three steps: validate the inputs (``as_maps``, ``as_gt``, the threshold),
*count* pixels (active, active inside the GT, GT area; or a pair's intersection and union), then
turn the counts into the value (``_iou_from_counts``, ``_pair_iou_from_counts``), where the
definitions' corner cases (empty GT, two empty maps) are decided. This module holds the first and
last steps, the formulas. The counting is the private :mod:`vssl_helpers._metrics_accel`: compiled
Numba kernels on CPU (:mod:`vssl_helpers._run_kernels`) and closed-form tensor code elsewhere, both
equal to the per-pixel definition (``tests/test_metrics.py`` checks them against slow per-pixel
references).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch

from . import _metrics_accel as _accel
from . import kernel_cache as _kernel_cache

# the two top-M selections, compared with each other by tests/test_metrics.py
from ._metrics_accel import top_m_by_selection as _top_m_by_selection  # noqa: F401
from ._metrics_accel import top_m_by_sort as _top_m_by_sort  # noqa: F401

__all__ = [
    "GT_SIZE",
    "TAU_GRID",
    "TAU_GRID_REFERENCE",
    "NanPolicy",
    "EmptyGtRule",
    "MetricCard",
    "METRIC_CARDS",
    "as_maps",
    "as_gt",
    "PreparedGt",
    "prepare_gt",
    "upsample",
    "binarize",
    "mask_iou",
    "adaptive_mask",
    "ciou",
    "ciou_adaptive",
    "pia",
    "map_iou",
    "mask_pair_iou",
    "count_empty_gt",
    "mean_iou",
    "success_rate",
    "success_curve",
    "auc",
    "auc_n",
    "harmonic_mean",
    "f_loc",
    "f_auc",
    "auroc",
]

GT_SIZE: int = _accel.GT_SIZE
"""Side of the evaluation grid (and of every GT mask), in pixels: 224."""

TAU_GRID: torch.Tensor = torch.arange(21, dtype=torch.float64) / 20
"""The 21 success thresholds tau = 0, 0.05, ..., 1 of AUC and AUC_N.

They are computed as ``i / 20`` (exact decimal values where float64 allows), not as ``0.05 * i``
as in the paper's code, where ``0.05 * 3 = 0.15000000000000002`` makes an IoU of exactly 0.15 fail
the ``>=`` test. The difference matters only for per-sample values that fall exactly on a grid point.
"""

TAU_GRID_REFERENCE: torch.Tensor = torch.tensor([0.05 * i for i in range(21)], dtype=torch.float64)
"""The paper code's grid ``0.05 * i`` (audit M7), for the compatibility mode (:mod:`vssl_helpers.compat`):
``0.05 * 3 = 0.15000000000000002``, so an IoU of exactly 0.15 fails ``IoU >= tau_3`` there."""

NanPolicy = Literal["skip", "fail"]
"""How aggregates treat NaN per-sample values: ``"skip"`` (default) leaves them out of numerator and
denominator; ``"fail"`` (the paper code, compatibility mode) keeps them in the denominator and never
counts them as a success (``NaN >= tau`` is false), and a mean over them is NaN."""

EmptyGtRule = Literal["exclude", "zero", "match_empty"]
"""What :func:`mask_iou` returns for a sample whose GT mask is empty.

* ``"exclude"`` (default): NaN. An empty GT in VGG-SS means the annotation is broken (a sentinel or
  zero-area box), not that nothing sounds, so no IoU is defined; the aggregation functions skip NaN
  and the number of excluded samples is reported with :func:`count_empty_gt`.
* ``"zero"``: 0, whatever the prediction (a conservative score).
* ``"match_empty"``: 1 if the prediction is empty too, else 0 (the both-empty rule of map-vs-map IoU).

On the real VGG-SS annotations the rule touches exactly 2 entries (``M1P1xla8rg0_000000``,
``MKC9LvRivTM_000030``), 2 of 5,158.
"""


# ----------------------------------------------------------------------------------------------
# Speed settings
# ----------------------------------------------------------------------------------------------
USE_COMPILED_KERNELS = True
"""Count with the compiled kernels on CPU (:mod:`vssl_helpers._run_kernels`). Off, the tensor code
(the CUDA path) runs on CPU too; the two give the same values (tested); the kernels are 10-20x faster."""

ADAPTIVE_MARGIN_SD = 4.0
"""Width of the compiled adaptive kernel's sampled bracket, in standard deviations of the sample's
rank: a speed setting only (a bracket that misses is widened and recounted; the values never change)."""


# ----------------------------------------------------------------------------------------------
# Validation and conversion
# ----------------------------------------------------------------------------------------------
def _to_tensor(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValueError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def as_maps(maps: torch.Tensor | np.ndarray, name: str = "maps") -> torch.Tensor:
    """Validate a batch of similarity maps and return it as float32 (same device).

    Raises ``ValueError`` naming ``name`` for: a shape other than ``B × h × w``, an empty batch or
    map, a non-floating dtype, or NaN / Inf values (with how many and the first offending sample).
    """
    t = _to_tensor(maps, name)
    if t.ndim != 3:
        raise ValueError(f"{name}: expected a 3-D batch B x h x w, got shape {tuple(t.shape)}")
    if min(t.shape) == 0:
        raise ValueError(f"{name}: empty batch or map, shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = (~finite).flatten(1).sum(1)
        first = int(torch.nonzero(bad)[0, 0])
        raise ValueError(
            f"{name}: {int(bad.sum())} NaN/Inf values in {int((bad > 0).sum())} of {t.shape[0]} maps "
            f"(first: sample {first})"
        )
    return t.float()


def as_gt(gt: "torch.Tensor | np.ndarray | PreparedGt", batch: int | None = None, name: str = "gt") -> torch.Tensor:
    """Validate a batch of GT masks: boolean, ``B × 224 × 224``, ``B == batch`` when given (a
    :class:`PreparedGt` stands for its masks)."""
    t = gt.masks if isinstance(gt, PreparedGt) else _to_tensor(gt, name)
    if t.dtype != torch.bool:
        raise ValueError(f"{name}: expected a boolean mask, got dtype {t.dtype} (use gt > 0 or gt.bool())")
    if t.ndim != 3 or tuple(t.shape[1:]) != (GT_SIZE, GT_SIZE):
        raise ValueError(f"{name}: expected shape B x {GT_SIZE} x {GT_SIZE}, got {tuple(t.shape)}")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"{name}: batch size {t.shape[0]} does not match maps' batch size {batch}")
    return t


@dataclass(frozen=True, eq=False)
class PreparedGt:
    """A batch of GT masks converted once, for scoring them many times on CPU.

    Pass it to :func:`ciou` or :func:`ciou_adaptive` in place of the masks; the values are the same.
    A test set's GT does not change across models, thresholds and seeds, while the compiled kernels
    would otherwise re-read each 50 KB mask from memory for every call (with the masks, a positive
    map's score costs about as much memory traffic as arithmetic). Form: per row, its pixels as one
    run ``[run_lo, run_hi)`` when they are one run (every row of a box; an empty row is an empty
    run), else ``ref >= 0``, a row of ``table``, the prefix sums of that row. Slicing with a
    ``slice`` gives the prepared GT of those samples. Build with :func:`prepare_gt`.
    """

    masks: torch.Tensor  # B x 224 x 224 bool on CPU, validated (the tensor path and CUDA use it)
    area: np.ndarray  # B int64
    run_lo: np.ndarray  # B x 224 int64
    run_hi: np.ndarray  # B x 224 int64
    ref: np.ndarray  # B x 224 int64
    table: np.ndarray  # K x 225 int64

    def __len__(self) -> int:
        return self.masks.shape[0]

    def __getitem__(self, index: slice) -> "PreparedGt":
        if not isinstance(index, slice):
            raise ValueError(f"PreparedGt: only slices are supported, got {type(index).__name__}")
        return PreparedGt(self.masks[index], self.area[index], self.run_lo[index], self.run_hi[index],
                          self.ref[index], self.table)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The kernels' prepared-GT arguments."""
        return self.area, self.run_lo, self.run_hi, self.ref, self.table


def ensure_kernels(stream: Any = None) -> None:
    """Compile the Numba kernels of the metrics once per install, with a message saying so and how
    long it takes (:mod:`vssl_helpers.kernel_cache`); a no-op once they are. Every compiled metric
    call makes sure of it; ``scripts/bootstrap.sh`` calls it at install."""
    _kernel_cache.ensure_compiled(_warm_up_kernels, stream)


def _warm_up_kernels() -> None:
    """Call every kernel once through the public metrics, with the argument types real calls pass
    (maps float32, thresholds float64, GT raw and prepared), so that Numba compiles (or loads) each."""
    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 7, 7, generator=gen)
    other = torch.rand(2, 7, 7, generator=gen)
    gt = torch.zeros(2, GT_SIZE, GT_SIZE, dtype=torch.bool)
    gt[:, 50:150, 60:160] = True
    gt[1, 20:40, 10:200] = True  # a row form with two runs in some rows
    prepared = prepare_gt(gt)
    for g in (gt, prepared):
        ciou(maps, g, 0.5)
        ciou_adaptive(maps, g)
    pia(maps, 0.5)
    map_iou(maps, other, 0.5)


def prepare_gt(gt: torch.Tensor | np.ndarray) -> PreparedGt:
    """Validate GT masks (as :func:`as_gt`) and convert them once for repeated scoring (see
    :class:`PreparedGt`). Costs about one read of the masks."""
    g = as_gt(gt).cpu()
    ensure_kernels()
    return PreparedGt(g, *_accel.prepare_gt_arrays(g))


def _as_threshold(threshold: float | torch.Tensor | np.ndarray, batch: int, device: torch.device) -> torch.Tensor:
    """A scalar or per-sample threshold as a float64 ``B × 1 × 1`` tensor.

    Never rounded to float32 (DESIGN.md): the upsampled values it is compared with are float64
    (the compiled kernels and the tensor code of :mod:`vssl_helpers._metrics_accel`), so a
    pixel within ~3e-8 of the threshold is decided by the threshold the caller gave, not by its
    nearest float32.
    """
    t = torch.as_tensor(threshold, dtype=torch.float64, device=device)  # a Python float stays float64
    if t.ndim == 0:
        t = t.expand(batch)
    if t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(f"threshold: expected a scalar or a length-{batch} vector, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("threshold: must be finite")
    return t.view(batch, 1, 1)


def _as_values(values: torch.Tensor | np.ndarray | Sequence[float], name: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64)
    if t.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D vector of per-sample values, got shape {tuple(t.shape)}")
    return t


def _check_masks(a: torch.Tensor, name: str) -> torch.Tensor:
    if a.dtype != torch.bool or a.ndim != 3:
        raise ValueError(f"{name}: expected a boolean B x H x W mask, got dtype {a.dtype}, shape {tuple(a.shape)}")
    return a


# ----------------------------------------------------------------------------------------------
# Upsampling and binarisation
# ----------------------------------------------------------------------------------------------
def upsample(maps: torch.Tensor | np.ndarray, size: int = GT_SIZE) -> torch.Tensor:
    r"""Bring native maps to ``size × size`` with half-pixel bilinear interpolation.

    Formula (per axis, output pixel :math:`i`, scale :math:`s = h/\mathrm{size}`): source coordinate
    :math:`x = (i + 0.5)\,s - 0.5`, clamped to :math:`[0, h-1]`, then linear interpolation between
    the two neighbouring native pixels. This is ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False)``, identical to OpenCV's ``INTER_LINEAR``, which the paper's code uses for
    every negative map. The same upsampler is used for every map (positive and negative), unlike the
    paper's code (audit M12).

    The result is clamped to each map's native [min, max]: exact interpolation never leaves that
    range, and the clamp removes 1-ulp rounding excursions, so that a map whose native maximum is
    ``<=`` a threshold is guaranteed to binarise to an empty map (a constant map stays constant).
    Maps already at ``size × size`` are returned unchanged (as float32).
    """
    return _accel.upsample(as_maps(maps), size)


def binarize(maps224: torch.Tensor, threshold: float | torch.Tensor | np.ndarray) -> torch.Tensor:
    r"""Localization maps: ``maps224 > threshold`` (strict), threshold scalar or per sample.

    .. math:: m_i(x) = [\hat S_i(x) > t_i]

    A pixel exactly equal to the threshold is *not* active. Consequences, by design: a map whose
    maximum equals the threshold is empty; a binary {0, 1} map (an oracle) at threshold 1 is empty and
    at any threshold in [0, 1) equals its mask.
    """
    m = as_maps(maps224, "maps224")
    return m > _as_threshold(threshold, m.shape[0], m.device)


# ----------------------------------------------------------------------------------------------
# Per-sample metrics
# ----------------------------------------------------------------------------------------------
def mask_iou(pred: torch.Tensor, gt: torch.Tensor, empty_gt: EmptyGtRule = "exclude") -> torch.Tensor:
    r"""Per-sample IoU of boolean masks: :math:`|P \cap G| / |P \cup G|`.

    For an empty GT the value follows ``empty_gt`` (see :data:`EmptyGtRule`); for a non-empty GT the
    union is never empty, so the ratio is always defined.
    """
    _check_masks(pred, "pred")
    gt = as_gt(gt, pred.shape[0]).to(pred.device)
    return _iou_from_counts(_accel.mask_area(pred), _accel.mask_area(pred & gt), _accel.mask_area(gt), empty_gt)


def ciou(
    maps: torch.Tensor | np.ndarray,
    gt: torch.Tensor | np.ndarray | PreparedGt,
    threshold: float | torch.Tensor | np.ndarray,
    empty_gt: EmptyGtRule = "exclude",
) -> torch.Tensor:
    r"""Per-sample IoU with the GT of the map binarised at ``threshold`` (the paper's cIoU, U. th.).

    .. math:: \mathrm{IoU}_i = \frac{|\{x: \hat S_i(x) > t\} \cap G_i|}{|\{x: \hat S_i(x) > t\} \cup G_i|}

    where :math:`\hat S_i` is the map upsampled to 224 × 224 (:func:`upsample`) and :math:`G_i` the
    GT mask. Aggregate with :func:`mean_iou` (Table I "cIoU U. th."), :func:`success_rate` or :func:`auc`.
    ``gt`` may be a :class:`PreparedGt` (faster when the same GT is scored many times).
    """
    m = as_maps(maps)
    g = as_gt(gt, m.shape[0]).to(m.device)
    thr = _as_threshold(threshold, m.shape[0], m.device).view(-1)
    prepared = gt.arrays() if isinstance(gt, PreparedGt) else None
    if USE_COMPILED_KERNELS:
        ensure_kernels()
    active, inter, area = _accel.active_counts(m, thr, g, prepared, compiled=USE_COMPILED_KERNELS)
    return _iou_from_counts(active, inter, area, empty_gt)  # type: ignore[arg-type]


def _iou_from_counts(
    active: torch.Tensor, inter: torch.Tensor, gt_area: torch.Tensor, empty_gt: EmptyGtRule
) -> torch.Tensor:
    """IoU from the counts: ``inter / (active + gt_area - inter)`` in float64, the :data:`EmptyGtRule`
    where the GT is empty."""
    inter = inter.double()
    union = active.double() + gt_area.double() - inter
    out = inter / union.clamp_min(1)
    empty = gt_area == 0
    if bool(empty.any()):
        if empty_gt == "exclude":
            fill = torch.full_like(out, float("nan"))
        elif empty_gt == "zero":
            fill = torch.zeros_like(out)
        elif empty_gt == "match_empty":
            fill = (active == 0).double()
        else:
            raise ValueError(f"empty_gt: expected 'exclude', 'zero' or 'match_empty', got {empty_gt!r}")
        out = torch.where(empty, fill, out)
    return out


def adaptive_mask(maps224: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """Activate exactly ``area[i]`` pixels of each map: the top-M pixels by value.

    Ties are broken deterministically by raster order (row-major flat index; the lower index wins),
    i.e. the first M entries of a *stable* descending sort. So a constant map activates its first M
    pixels in raster order, and exactly M pixels are always active (the paper's code activates M - 1,
    or fewer with ties; audit M5). ``area`` may be 0 (empty mask) up to 224² (all pixels).
    """
    m = as_maps(maps224, "maps224")
    b, h, w = m.shape
    area = torch.as_tensor(area, device=m.device).long().view(-1)
    if area.shape[0] != b:
        raise ValueError(f"area: expected {b} values, got {area.shape[0]}")
    if bool(((area < 0) | (area > h * w)).any()):
        raise ValueError(f"area: values must lie in [0, {h * w}]")
    return _accel.top_m(m.flatten(1), area).view(b, h, w)


def ciou_adaptive(
    maps: torch.Tensor | np.ndarray,
    gt: torch.Tensor | np.ndarray | PreparedGt,
    empty_gt: EmptyGtRule = "exclude",
) -> torch.Tensor:
    r"""Per-sample IoU of the top-M pixels with the GT, M = GT area (the adaptive threshold of [22]).

    .. math:: \mathrm{IoU}^{adap}_i = \mathrm{IoU}(\mathrm{top}_{|G_i|}(\hat S_i), G_i)

    The top-M pixels are those of :func:`adaptive_mask` (ties by raster order), ranked on the
    upsampled values in float64. The compiled CPU kernel (:func:`vssl_helpers._run_kernels.adaptive_counts`)
    and the tensor code (a sort per map, for CUDA) compute those values with different float64
    roundings, so they could order two pixels differently only where the values agree to ~1e-16
    (exact ties, such as a constant map or the clamped borders, are exact in both).

    This needs the GT size, i.e. a prior on the sounding object; Table I's "cIoU Adap." is
    :func:`success_rate` of these values (fraction >= 0.5), "AUC Adap." is :func:`auc` of them.
    An empty GT gives an empty prediction, scored by ``empty_gt``. ``gt`` may be a :class:`PreparedGt`.
    """
    m = as_maps(maps)
    g = as_gt(gt, m.shape[0]).to(m.device)
    prepared = gt.arrays() if isinstance(gt, PreparedGt) else None
    if USE_COMPILED_KERNELS:
        ensure_kernels()
    inter, area = _accel.adaptive_counts(m, g, prepared, compiled=USE_COMPILED_KERNELS, margin_sd=ADAPTIVE_MARGIN_SD)
    # M pixels are active and the GT has M pixels: IoU = inter / (M + M - inter)
    return _iou_from_counts(area, inter, area, empty_gt)


def pia(maps: torch.Tensor | np.ndarray, threshold: float | torch.Tensor | np.ndarray) -> torch.Tensor:
    r"""Per-sample fraction of the image that is active: :math:`\mathrm{pIA}_i = \sum_x m_i(x) / (H W)`.

    :math:`m_i` is the 224 × 224 localization map (:func:`upsample`, then :func:`binarize`). For a
    negative audio (silence, noise, off-screen) the ideal value is 0; lower is better.
    """
    m = as_maps(maps)
    thr = _as_threshold(threshold, m.shape[0], m.device).view(-1)
    if USE_COMPILED_KERNELS:
        ensure_kernels()
    active, _, _ = _accel.active_counts(m, thr, compiled=USE_COMPILED_KERNELS)
    return active.double() / (GT_SIZE * GT_SIZE)


def _pair_iou_from_counts(inter: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    """``inter / union`` in float64, 1 where the union is empty (two empty maps agree)."""
    inter, union = inter.double(), union.double()
    return torch.where(union == 0, torch.ones_like(union), inter / union.clamp_min(1))


def mask_pair_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Per-sample IoU of two boolean masks, with IoU = 1 when both are empty (the paper's rule).

    .. math:: \mathrm{IoU}(A_i, B_i) = \frac{|A_i \cap B_i|}{|A_i \cup B_i|}, \quad 1 \text{ if } A_i \cup B_i = \emptyset
    """
    _check_masks(a, "a")
    _check_masks(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"masks: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    return _pair_iou_from_counts(_accel.mask_area(a & b), _accel.mask_area(a | b))


def map_iou(
    maps_a: torch.Tensor | np.ndarray,
    maps_b: torch.Tensor | np.ndarray,
    threshold: float | torch.Tensor | np.ndarray,
) -> torch.Tensor:
    r"""Per-sample IoU between the localization maps of two audios for the same image (Fig. 3).

    .. math:: \mathrm{IoU}_i = \frac{|\{x: \hat S^a_i(x) > t\} \cap \{x: \hat S^b_i(x) > t\}|}
              {|\{x: \hat S^a_i(x) > t\} \cup \{x: \hat S^b_i(x) > t\}|}, \quad 1 \text{ if the union is empty}

    Both maps are upsampled and binarised at the same (model's) threshold. Both empty: IoU = 1
    (the two maps agree); exactly one empty: 0. Caveat (audit M11): the both-empty rule also applies to
    positive vs negative, so a model whose *positive* map is empty scores 1 there.
    """
    a = as_maps(maps_a, "maps_a")
    b = as_maps(maps_b, "maps_b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"maps_b: batch size {b.shape[0]} does not match maps_a's {a.shape[0]}")
    thr = _as_threshold(threshold, a.shape[0], a.device).view(-1)
    if USE_COMPILED_KERNELS:
        ensure_kernels()
    inter, union = _accel.pair_counts(a, b, thr, compiled=USE_COMPILED_KERNELS)
    return _pair_iou_from_counts(inter, union)


def count_empty_gt(gt: torch.Tensor | np.ndarray) -> int:
    """How many GT masks in the batch are empty (the samples an :data:`EmptyGtRule` applies to)."""
    g = as_gt(gt)
    return int((g.flatten(1).sum(1) == 0).sum())


# ----------------------------------------------------------------------------------------------
# Aggregation over samples
# ----------------------------------------------------------------------------------------------
def _finite(values: torch.Tensor | np.ndarray | Sequence[float], name: str) -> torch.Tensor:
    v = _as_values(values, name)
    v = v[~torch.isnan(v)]
    if v.numel() == 0:
        raise ValueError(f"{name}: no defined (non-NaN) values to aggregate")
    return v


def _aggregated(values: torch.Tensor | np.ndarray | Sequence[float], name: str, nan: NanPolicy) -> torch.Tensor:
    """The values an aggregate runs over under the :data:`NanPolicy` ``nan``."""
    if nan == "skip":
        return _finite(values, name)
    if nan != "fail":
        raise ValueError(f"nan: expected 'skip' or 'fail', got {nan!r}")
    v = _as_values(values, name)
    if v.numel() == 0:
        raise ValueError(f"{name}: no values to aggregate")
    return v


def mean_iou(ious: torch.Tensor | np.ndarray | Sequence[float], nan: NanPolicy = "skip") -> float:
    r"""Mean of the per-sample IoUs, NaN (excluded) samples skipped: Table I's "cIoU U. th."
    (``nan="fail"``: NaN if any value is NaN, as ``np.mean``).

    .. math:: \overline{\mathrm{IoU}} = \frac{1}{N}\sum_{i=1}^{N} \mathrm{IoU}_i
    """
    return float(_aggregated(ious, "ious", nan).mean())


def success_rate(values: torch.Tensor | np.ndarray | Sequence[float], at: float = 0.5, nan: NanPolicy = "skip") -> float:
    r"""Fraction of samples with value ``>= at`` (NaN skipped, or counted as failures with
    ``nan="fail"``): Table I's "cIoU Adap." with ``at=0.5``.

    .. math:: \mathrm{SR}_{a} = \frac{1}{N}\,\#\{i: v_i \ge a\}
    """
    v = _aggregated(values, "values", nan)
    return float((v >= at).double().mean())


def success_curve(
    values: torch.Tensor | np.ndarray | Sequence[float], direction: Literal[">=", "<="] = ">=",
    grid: torch.Tensor | None = None, nan: NanPolicy = "skip",
) -> torch.Tensor:
    r"""Success ratio at each tau of ``grid`` (default :data:`TAU_GRID`): fraction of samples with
    ``value >= tau`` (IoU) or ``value <= tau`` (pIA). NaN samples are skipped (``nan="fail"``: they
    stay in the denominator and never succeed).

    .. math:: s(\tau_k) = \frac{1}{N}\,\#\{i: v_i \ge \tau_k\} \;\; \text{or} \;\;
              \frac{1}{N}\,\#\{i: v_i \le \tau_k\}
    """
    v = _aggregated(values, "values", nan)
    tau = (TAU_GRID if grid is None else grid).to(device=v.device, dtype=torch.float64)
    if direction == ">=":
        hit = v.unsqueeze(0) >= tau.unsqueeze(1)
    elif direction == "<=":
        hit = v.unsqueeze(0) <= tau.unsqueeze(1)
    else:
        raise ValueError(f"direction: expected '>=' or '<=', got {direction!r}")
    return hit.double().mean(1)


def _trapezoid(curve: torch.Tensor, grid: torch.Tensor | None = None) -> float:
    tau = (TAU_GRID if grid is None else grid).to(device=curve.device, dtype=torch.float64)
    return float(((curve[1:] + curve[:-1]) * (tau[1:] - tau[:-1])).sum() / 2)


def auc(ious: torch.Tensor | np.ndarray | Sequence[float], grid: torch.Tensor | None = None, nan: NanPolicy = "skip") -> float:
    r"""Area under the success curve of the IoUs, 21-point trapezoid over tau in [0, 1].

    .. math:: \mathrm{AUC} = \sum_{k=0}^{19} \frac{0.05}{2}\,\big(s(\tau_k) + s(\tau_{k+1})\big),
              \quad s(\tau) = \frac{1}{N}\,\#\{i: \mathrm{IoU}_i \ge \tau\}

    Caveat (audit M7): AUC = mean IoU + delta with delta in (-0.025, 0.025]; every sample with IoU 0
    adds 0.025/N, so AUC partly counts empty maps. ``grid`` and ``nan``: see :func:`success_curve`
    (the compatibility mode passes :data:`TAU_GRID_REFERENCE` and ``"fail"``).
    """
    return _trapezoid(success_curve(ious, ">=", grid, nan), grid)


def auc_n(pias: torch.Tensor | np.ndarray | Sequence[float], grid: torch.Tensor | None = None, nan: NanPolicy = "skip") -> float:
    r"""AUC_N: area under the success curve of negatives, success = ``pIA <= tau`` (higher is better).

    .. math:: \mathrm{AUC}_N = \sum_{k=0}^{19} \frac{0.05}{2}\,\big(s(\tau_k) + s(\tau_{k+1})\big),
              \quad s(\tau) = \frac{1}{N}\,\#\{i: \mathrm{pIA}_i \le \tau\}

    It equals 1 - mean pIA up to the trapezoid's discretisation (within 0.025). ``grid``, ``nan``:
    as :func:`auc`.
    """
    return _trapezoid(success_curve(pias, "<=", grid, nan), grid)


def harmonic_mean(a: float, b: float, zero_zero: float = 0.0) -> float:
    r"""``2ab / (a + b)``, defined as ``zero_zero`` (0) when ``a + b == 0``. Both in [0, 1].

    .. math:: H(a, b) = \frac{2ab}{a + b}

    The paper code computes ``2ab / (a + b)`` as is, so H(0, 0) = 0/0 = NaN there; the
    compatibility mode passes ``zero_zero=nan``.
    """
    for name, x in (("a", a), ("b", b)):
        if not (0.0 <= x <= 1.0):
            raise ValueError(f"harmonic_mean: {name} = {x} is outside [0, 1]")
    return zero_zero if a + b == 0 else 2 * a * b / (a + b)


def _mean_over_types(by_type: Mapping[str, float] | Sequence[float], name: str) -> float:
    vals = list(by_type.values()) if isinstance(by_type, Mapping) else list(by_type)
    if not vals:
        raise ValueError(f"{name}: need at least one negative type")
    return float(sum(vals) / len(vals))


def f_loc(ciou_mean: float, pia_by_type: Mapping[str, float] | Sequence[float], zero_zero: float = 0.0) -> float:
    r""":math:`F_{LOC} = H\big(\mathrm{cIoU},\; 1 - \overline{\mathrm{pIA}}\big)`, harmonic mean of the mean IoU
    on positives and one minus the pIA averaged over the negative types (each type weighted equally).
    ``zero_zero``: see :func:`harmonic_mean`."""
    return harmonic_mean(ciou_mean, 1.0 - _mean_over_types(pia_by_type, "pia_by_type"), zero_zero)


def f_auc(auc_value: float, auc_n_by_type: Mapping[str, float] | Sequence[float], zero_zero: float = 0.0) -> float:
    r""":math:`F_{AUC} = H\big(\mathrm{AUC},\; \overline{\mathrm{AUC}_N}\big)`, harmonic mean of the positive AUC and
    the AUC_N averaged over the negative types. ``zero_zero``: see :func:`harmonic_mean`."""
    return harmonic_mean(auc_value, _mean_over_types(auc_n_by_type, "auc_n_by_type"), zero_zero)


def auroc(positive: torch.Tensor | np.ndarray | Sequence[float], negative: torch.Tensor | np.ndarray | Sequence[float]) -> float:
    r"""Area under the ROC curve of a score that should be higher for positives than negatives.

    .. math:: \mathrm{AUROC} = P(s^+ > s^-) + \tfrac12 P(s^+ = s^-)

    (the Mann-Whitney statistic, ties counted one half). Used on the per-sample maxima of the raw
    maps: 1 means every positive map peaks above every negative one (a universal threshold can
    separate them), 0.5 means the maxima carry no information about the audio (Fig. 1's overlap).
    Not one of the paper's metrics; a diagnostic of its Fig. 1.
    """
    pos = _finite(positive, "positive")
    neg = _finite(negative, "negative")
    both = torch.cat([pos, neg])
    # mid-ranks handle ties: rank = (#smaller) + (#equal + 1) / 2
    order = torch.sort(both).values
    lo = torch.searchsorted(order, both, right=False).double()
    hi = torch.searchsorted(order, both, right=True).double()
    ranks = (lo + hi + 1) / 2
    n_pos, n_neg = pos.numel(), neg.numel()
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


# ----------------------------------------------------------------------------------------------
# Metric cards (what each metric measures, its range, its caveats), in the spirit of HF evaluate
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricCard:
    """A short card for one metric: name, formula (LaTeX), what it measures, range, caveats."""

    name: str
    function: str
    formula: str
    measures: str
    range: str
    better: str
    caveats: tuple[str, ...]

    def to_markdown(self) -> str:
        """The card as Markdown (used by the metric-definitions chapter)."""
        lines = [
            f"### {self.name}",
            "",
            f"$$ {self.formula} $$",
            "",
            f"- **Measures:** {self.measures}",
            f"- **Range:** {self.range}; {self.better}.",
            f"- **Function:** `vssl_helpers.metrics.{self.function}`",
        ]
        lines += [f"- **Caveat:** {c}" for c in self.caveats]
        return "\n".join(lines)


METRIC_CARDS: dict[str, MetricCard] = {
    c.function: c
    for c in [
        MetricCard(
            name="cIoU (universal threshold)",
            function="ciou",
            formula=r"\mathrm{cIoU} = \frac{1}{N}\sum_i \frac{|\{x:\hat S_i(x) > t\}\cap G_i|}{|\{x:\hat S_i(x) > t\}\cup G_i|}",
            measures="how well the map, binarised at the model's universal threshold t, covers the sounding object on positive audio",
            range="[0, 1] (tables: ×100)",
            better="higher is better",
            caveats=(
                "Table I's 'cIoU U. th.' is the mean per-sample IoU, while 'cIoU Adap.' is the fraction with IoU ≥ 0.5: two different quantities (audit M1).",
                "An empty GT (2 VGG-SS entries) has no IoU by default (excluded, reported).",
            ),
        ),
        MetricCard(
            name="cIoU Adap. (top-M)",
            function="ciou_adaptive",
            formula=r"\mathrm{cIoU}^{adap} = \frac{1}{N}\#\{i: \mathrm{IoU}(\mathrm{top}_{|G_i|}(\hat S_i), G_i) \ge 0.5\}",
            measures="localization when the size of the sounding object is known: the |G| highest pixels are activated",
            range="[0, 1]",
            better="higher is better",
            caveats=(
                "Assumes the object is visible and its size known: it cannot be used on negative audio.",
                "Exactly M pixels are activated, ties broken by raster order (the paper's code activates M−1).",
                "Pixels are ranked on their float64 upsampled values; CPU and CUDA round them differently, "
                "so they could rank two pixels whose values agree to ~1e-16 differently (exact ties are exact in both).",
            ),
        ),
        MetricCard(
            name="AUC",
            function="auc",
            formula=r"\mathrm{AUC} = \int_0^1 \tfrac{1}{N}\#\{i:\mathrm{IoU}_i\ge\tau\}\,d\tau \;\;(\text{21-point trapezoid})",
            measures="localization quality over all IoU success levels",
            range="[0, 1]",
            better="higher is better",
            caveats=("Within ±0.025 of the mean IoU; each empty map adds 0.025/N (audit M7).",),
        ),
        MetricCard(
            name="pIA",
            function="pia",
            formula=r"\mathrm{pIA} = \frac{1}{HW}\sum_x m(x), \quad m = [\hat S > t]",
            measures="how much of the image lights up for a negative audio (silence, noise, off-screen)",
            range="[0, 1]",
            better="lower is better (0: the model stays silent)",
            caveats=("Depends on the upsampler near the threshold; one upsampler is used for every map.",),
        ),
        MetricCard(
            name="AUC_N",
            function="auc_n",
            formula=r"\mathrm{AUC}_N = \int_0^1 \tfrac{1}{N}\#\{i:\mathrm{pIA}_i\le\tau\}\,d\tau",
            measures="robustness to negative audio over all tolerated activation levels",
            range="[0, 1]",
            better="higher is better",
            caveats=("Within 0.025 of 1 − mean pIA, so it adds little beyond pIA.",),
        ),
        MetricCard(
            name="F_LOC",
            function="f_loc",
            formula=r"F_{LOC} = \frac{2\,\mathrm{cIoU}\,(1-\overline{\mathrm{pIA}})}{\mathrm{cIoU} + 1 - \overline{\mathrm{pIA}}}",
            measures="one number for positive localization and negative silence together",
            range="[0, 1]",
            better="higher is better",
            caveats=("Dominated by the smaller term; negative types are weighted equally.",),
        ),
        MetricCard(
            name="F_AUC",
            function="f_auc",
            formula=r"F_{AUC} = \frac{2\,\mathrm{AUC}\,\overline{\mathrm{AUC}_N}}{\mathrm{AUC} + \overline{\mathrm{AUC}_N}}",
            measures="the AUC counterpart of F_LOC",
            range="[0, 1]",
            better="higher is better",
            caveats=("Since AUC_N ≈ 1 − pIA, F_AUC tracks F_LOC closely.",),
        ),
        MetricCard(
            name="Map-vs-map IoU",
            function="map_iou",
            formula=r"\mathrm{IoU}(m_a, m_b) = \frac{|m_a\cap m_b|}{|m_a\cup m_b|}, \; 1 \text{ if both empty}",
            measures="whether the model changes its map when the audio changes (Fig. 3)",
            range="[0, 1]",
            better="low for positive vs negative, high for negative vs negative",
            caveats=("Both-empty = 1 also applies to positive vs negative (audit M11).",),
        ),
    ]
}
