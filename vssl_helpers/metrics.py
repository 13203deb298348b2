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
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np
import torch

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

GT_SIZE = 224
"""Side of the evaluation grid (and of every GT mask), in pixels."""

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


def prepare_gt(gt: torch.Tensor | np.ndarray) -> PreparedGt:
    """Validate GT masks (as :func:`as_gt`) and convert them once for repeated scoring (see
    :class:`PreparedGt`). Costs about one read of the masks."""
    from vssl_helpers import _run_kernels

    g = as_gt(gt).cpu()
    pixels = np.ascontiguousarray(g.numpy()).view(np.uint8)
    area, run_lo, run_hi, ref, table = _run_kernels.prepare_gt(pixels.view(np.uint64), pixels)
    return PreparedGt(g, area, run_lo, run_hi, ref, table)


def _as_threshold(threshold: float | torch.Tensor | np.ndarray, batch: int, device: torch.device) -> torch.Tensor:
    """A scalar or per-sample threshold as a float64 ``B × 1 × 1`` tensor.

    Never rounded to float32 (DESIGN.md): the upsampled values it is compared with are float64
    (compiled kernels, :func:`_row_runs`, the tensor path's :func:`_upsample` in float64), so a
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
    return _upsample(as_maps(maps), size)


def _upsample(m: torch.Tensor, size: int = GT_SIZE, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """:func:`upsample` without validation (``m`` already checked float32), in ``dtype``.

    Computed separably, ``W_y @ m @ W_x^T`` with the two interpolation matrices, which is
    mathematically the same bilinear interpolation as ``F.interpolate`` and several times faster on
    CPU (two small batched matmuls instead of a gather per output pixel).
    """
    m = m.to(dtype)
    if tuple(m.shape[1:]) == (size, size):
        return m
    wy = _interp_matrix(m.shape[1], size, m.device, dtype)
    wx = _interp_matrix(m.shape[2], size, m.device, dtype)
    up = wy @ m @ wx.T
    lo = m.amin(dim=(1, 2)).view(-1, 1, 1)
    hi = m.amax(dim=(1, 2)).view(-1, 1, 1)
    return torch.maximum(torch.minimum(up, hi), lo)


def _source_coordinates(n_in: int, n_out: int) -> torch.Tensor:
    """Half-pixel source coordinate of each output index, clamped to the input: the one definition
    behind :func:`_interp_matrix` and the row-run pieces (float64)."""
    return ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(0, n_in - 1)


def _axis_weights(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output index: its lower and upper source index (int64) and the upper one's weight
    (float64), from :func:`_source_coordinates`."""
    x = _source_coordinates(n_in, n_out)
    x0 = x.floor().long()
    return x0, (x0 + 1).clamp(max=n_in - 1), x - x0


@functools.lru_cache(maxsize=64)
def _interp_matrix(n_in: int, n_out: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n_out × n_in`` half-pixel bilinear interpolation weights (two non-zeros per row, summing to 1)."""
    x0, x1, t = _axis_weights(n_in, n_out)
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    w.index_put_((rows, x0), 1 - t, accumulate=True)
    w.index_put_((rows, x1), t, accumulate=True)
    return w.to(dtype=dtype, device=device)


def _chunk_size(device: torch.device) -> int:
    # On CPU, 32 maps of 224 x 224 float32 (6.4 MB) stay in cache; bigger chunks are memory-bound.
    return 32 if device.type == "cpu" else 4096


def _run_chunk_size(device: torch.device) -> int:
    # The row-run path touches ~224 x w float64 values per map, not 224²; on CPU chunks of 64 to
    # 512 maps measured alike (16-32: per-op overhead shows).
    return 256 if device.type == "cpu" else 8192


@functools.lru_cache(maxsize=64)
def _column_pieces(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """How output columns split into *pieces* of constant lower source column.

    The source coordinate of output column ``x`` is ``src(x) = clamp((x + 0.5) s - 0.5, 0, n_in - 1)``
    with ``s = n_in / n_out``, non-decreasing in ``x``. Piece ``j`` is the output columns
    ``start[j] <= x < stop[j]`` with ``floor(src(x)) = j`` (weight ``t = src(x) - j`` in [0, 1)),
    interpolating between source columns ``j`` and ``upper[j] = min(j + 1, n_in - 1)``. Returns
    ``(start, stop, upper)`` as ``1 × 1 × n_in`` int64 tensors (broadcast over batch and rows).
    """
    lower = _source_coordinates(n_in, n_out).floor().long()
    j = torch.arange(n_in)
    start = torch.searchsorted(lower, j, right=False)
    stop = torch.searchsorted(lower, j, right=True)
    upper = (j + 1).clamp(max=n_in - 1)
    return tuple(v.view(1, 1, n_in).to(device) for v in (start, stop, upper))  # type: ignore[return-value]


def _row_runs(m: torch.Tensor, thr: torch.Tensor, size: int = GT_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The active pixels of each upsampled, binarised map as runs: one per (output row, piece).

    Along an output row the bilinear map is, on each piece :math:`j` of columns (see
    :func:`_column_pieces`), :math:`a + t\,d` with :math:`a = R_{y,j}`, :math:`d = R_{y,j+1} - R_{y,j}`
    (:math:`R` = the map interpolated along rows only, in float64) and :math:`t` the column's weight,
    non-decreasing along the piece. So the pixels above the threshold :math:`\theta` form one run:
    those with :math:`t > c` if :math:`d > 0`, with :math:`t < c` if :math:`d < 0`
    (:math:`c = (\theta - a)/d`), all or none if :math:`d = 0`. The run's end is the column where
    :math:`t` crosses :math:`c`, in closed form: :math:`t(x) = (x + 0.5)s - 0.5 - j`, so
    :math:`t(x) \le c \iff x \le X = (j + c + 0.5)/s - 0.5`. This is the per-pixel comparison
    ``value > threshold`` of the definition without forming the 224 × 224 map: about 224 × w values
    per map instead of 224².

    Returns ``(lo, hi)``: ``B × size × w`` int64 column bounds of each run (``hi >= lo``).
    """
    b, h, w = m.shape
    rows = _interp_matrix(h, size, m.device, torch.float64) @ m.double()  # B x size x w, along y only
    start, stop, upper = _column_pieces(w, size, m.device)
    d = rows.index_select(2, upper.view(-1)) - rows
    theta = thr.double().view(b, 1, 1)
    # A flat piece (d = 0) is all on or all off: the same as a rising one with c < 0 or c > 1.
    # c outside [0, 1] decides the whole piece; clamping keeps X finite for tiny slopes.
    rising = d >= 0
    c = torch.where(d == 0, torch.where(rows > theta, -1.0, 2.0), (theta - rows) / d).clamp_(-1.0, 2.0)
    # The clamped border columns of piece 0 have t pinned to 0: rising, they are on iff c < 0;
    # falling, off iff c <= 0. Moving such c to -1 puts X left of the piece, which settles them.
    c = torch.where((c < 0) | ((c == 0) & ~rising), -1.0, c)
    x = c * (size / w) + _piece_offsets(w, size, m.device)
    # rising: on where t > c, i.e. columns x > X: [floor(X) + 1, stop); falling: on where t < c,
    # columns x < X: [start, ceil(X)).
    lo = torch.where(rising, x.floor() + 1, start.double()).long().clamp_(start, stop)
    hi = torch.where(rising, stop.double(), x.ceil()).long().clamp_(start, stop)
    return lo, hi.clamp_(min=lo)


@functools.lru_cache(maxsize=64)
def _piece_offsets(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """``(j + 0.5) n_out / n_in - 0.5`` for each piece ``j``: the output column where ``t = 0``."""
    j = torch.arange(n_in, dtype=torch.float64)
    return ((j + 0.5) * (n_out / n_in) - 0.5).to(device)


def _mask_area(gt: torch.Tensor) -> torch.Tensor:
    """Number of True pixels of each mask (int64). On CPU through NumPy: torch's reductions over
    boolean tensors measured 10x slower there."""
    if gt.device.type != "cpu":
        return gt.flatten(1).sum(1)
    flat = gt.numpy().reshape(gt.shape[0], -1).view(np.uint8)
    return torch.from_numpy(flat.sum(1, dtype=np.int64))


def _active_counts(
    m: torch.Tensor, threshold: float | torch.Tensor | np.ndarray, gt: torch.Tensor | None = None,
    prepared: PreparedGt | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Per map: number of active pixels after upsampling and ``> threshold``; when ``gt`` is given,
    also the number of those inside the GT and the GT area (``prepared``: the same GT, prepared,
    which the compiled kernels read instead).

    Interpolated values lie in each map's native [min, max], so a map whose native max is
    ``<= threshold`` has no active pixel and one whose native min is ``> threshold`` is all active:
    those are settled from the native map alone (at the universal threshold this is most negatives,
    at least 75 % of the decisive type by construction). On CPU every map goes through the compiled
    kernel (:func:`_active_counts_compiled`: row runs, the GT in row form). On other
    devices the other maps are counted from their row runs (:func:`_row_runs`, no 224 × 224 map is
    formed, values and threshold in float64), the GT pixels inside each run from the prefix sums of
    the GT rows; maps already at 224 × 224 are compared pixel by pixel in float64.
    """
    b = m.shape[0]
    thr = _as_threshold(threshold, b, m.device).view(b)
    if _compiled(m.device):
        return _active_counts_compiled(m, thr, gt, prepared)
    flat = m.flatten(1)
    none_on = flat.amax(1) <= thr
    all_on = flat.amin(1) > thr
    mixed = ~(none_on | all_on)
    active = torch.where(all_on, GT_SIZE * GT_SIZE, 0).long()
    inter = area = None
    if gt is not None:
        inter = torch.zeros(b, dtype=torch.int64, device=m.device)
        area = _mask_area(gt)
    runs = tuple(m.shape[1:]) != (GT_SIZE, GT_SIZE)
    step = (_run_chunk_size(m.device) if gt is None else _chunk_size(m.device)) if runs else _chunk_size(m.device)
    for s in range(0, b, step):
        e = min(s + step, b)
        sel = mixed[s:e]
        n_sel = int(sel.sum())
        if n_sel == 0:
            continue
        # contiguous slices when the whole chunk needs work (the usual case for positives)
        idx = slice(s, e) if n_sel == e - s else torch.nonzero(sel).view(-1) + s
        if runs:
            # the runs of the definition (float64, the threshold unrounded), as the compiled
            # kernels count them; GT pixels inside a run from the GT rows' prefix sums
            lo, hi = _row_runs(m[idx], thr[idx])
            active[idx] = (hi - lo).flatten(1).sum(1)
            if inter is not None:
                g = gt[idx].to(torch.int32)  # type: ignore[index]
                pref = torch.nn.functional.pad(g.cumsum(2, dtype=torch.int32), (1, 0))  # B x size x (size + 1)
                inter[idx] = (pref.gather(2, hi) - pref.gather(2, lo)).flatten(1).sum(1).long()
            continue
        act = m[idx].double() > thr[idx].view(-1, 1, 1)  # maps at 224: upsampling is the identity
        active[idx] = act.flatten(1).sum(1)
        if inter is not None:
            inter[idx] = (act & gt[idx]).flatten(1).sum(1)  # type: ignore[index]
    if inter is not None:
        inter = torch.where(all_on, area, inter)  # type: ignore[arg-type]
    return active, inter, area


USE_COMPILED_KERNELS = True
"""Count runs with the compiled kernels on CPU (:mod:`vssl_helpers._run_kernels`). Off, the tensor
code runs on CPU too; the two give the same values (tested); the kernels are 10-20x faster."""


def _compiled(device: torch.device) -> bool:
    return device.type == "cpu" and USE_COMPILED_KERNELS


@functools.lru_cache(maxsize=64)
def _kernel_axes(h: int, w: int, size: int = GT_SIZE) -> tuple:
    """The interpolation geometry the compiled kernels take as NumPy arrays: per output row its two
    source rows and the upper one's weight, per column piece (start, stop, upper, offset), scale."""
    y0, y1, ty = _axis_weights(h, size)
    start, stop, upper = (v.view(-1).numpy() for v in _column_pieces(w, size, torch.device("cpu")))
    offset = _piece_offsets(w, size, torch.device("cpu")).numpy()
    return y0.numpy(), y1.numpy(), ty.numpy(), start, stop, upper, offset, size / w


@functools.lru_cache(maxsize=64)
def _column_weights(w: int, size: int = GT_SIZE) -> np.ndarray:
    """Each output column's interpolation weight within its piece (float64), for the kernels."""
    return _axis_weights(w, size)[2].numpy()


_NO_PREPARED = (np.zeros(0, np.int64), np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64),
                np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64))


def _gt_arrays(gt: torch.Tensor | None, prepared: PreparedGt | None = None) -> tuple[np.ndarray, ...]:
    """A GT batch as the kernels take it: the raw masks as machine words (for comparing rows) and
    as bytes, then the five arrays of a prepared GT; the unused ones empty."""
    no_masks = (np.zeros((0, 0, 0), np.uint64), np.zeros((0, 0, 0), np.uint8))
    if prepared is not None:
        return no_masks + prepared.arrays()
    if gt is None:
        return no_masks + _NO_PREPARED
    pixels = np.ascontiguousarray(gt.numpy()).view(np.uint8)
    return (pixels.view(np.uint64), pixels) + _NO_PREPARED  # 224 bytes per row = 28 words


def _active_counts_compiled(
    m: torch.Tensor, thr: torch.Tensor, gt: torch.Tensor | None, prepared: PreparedGt | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """:func:`_active_counts` on CPU: the row runs of :func:`_row_runs` fused per map in compiled
    code (:mod:`vssl_helpers._run_kernels`), the GT read in its row form (from the raw masks, or
    from ``prepared``)."""
    from vssl_helpers import _run_kernels

    axes = _kernel_axes(m.shape[1], m.shape[2])
    active, inter, area = _run_kernels.active_counts(
        np.ascontiguousarray(m.numpy()), thr.double().numpy(), *axes, *_gt_arrays(gt, prepared)
    )
    if gt is None:
        return torch.from_numpy(active), None, None
    return torch.from_numpy(active), torch.from_numpy(inter), torch.from_numpy(area)


def binarize(maps224: torch.Tensor, threshold: float | torch.Tensor | np.ndarray) -> torch.Tensor:
    """Localization maps: ``maps224 > threshold`` (strict), threshold scalar or per sample.

    A pixel exactly equal to the threshold is *not* active. Consequences, by design: a map whose
    maximum equals the threshold is empty; a binary {0, 1} map (an oracle) at threshold 1 is empty and
    at any threshold in [0, 1) equals its mask.
    """
    m = as_maps(maps224, "maps224")
    return m > _as_threshold(threshold, m.shape[0], m.device)


def _check_masks(a: torch.Tensor, name: str) -> torch.Tensor:
    if a.dtype != torch.bool or a.ndim != 3:
        raise ValueError(f"{name}: expected a boolean B x H x W mask, got dtype {a.dtype}, shape {tuple(a.shape)}")
    return a


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
    return _iou_from_counts(_mask_area(pred), _mask_area(pred & gt), _mask_area(gt), empty_gt)


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
    active, inter, area = _active_counts(m, threshold, g, gt if isinstance(gt, PreparedGt) else None)
    return _iou_from_counts(active, inter, area, empty_gt)  # type: ignore[arg-type]


def _iou_from_counts(
    active: torch.Tensor, inter: torch.Tensor, gt_area: torch.Tensor, empty_gt: EmptyGtRule
) -> torch.Tensor:
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
    select = _top_m_by_selection if m.device.type == "cpu" else _top_m_by_sort
    return select(m.flatten(1), area).view(b, h, w)


def _top_m_by_sort(flat: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """Top-M mask by one batched stable descending sort (fast on GPU)."""
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    keep = torch.arange(flat.shape[1], device=flat.device).unsqueeze(0) < area.unsqueeze(1)
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, keep)


def _top_m_by_selection(flat: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """Top-M mask by an O(N) selection per map (about 4x faster than sorting on CPU). Same result
    as :func:`_top_m_by_sort`: every pixel above the M-th largest value, then the pixels tied with
    it in raster order until there are M."""
    n = flat.shape[1]
    out = torch.zeros_like(flat, dtype=torch.bool)
    for i, k in enumerate(area.tolist()):
        if k == 0:
            continue
        if k == n:
            out[i] = True
            continue
        v = torch.kthvalue(flat[i], n - k + 1).values
        above = flat[i] > v
        ties = flat[i] == v
        out[i] = above | (ties & (torch.cumsum(ties, 0) <= k - int(above.sum())))
    return out


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
    if _compiled(m.device):
        inter, area = _adaptive_counts_compiled(m, g, gt if isinstance(gt, PreparedGt) else None)
    else:
        inter, area = _adaptive_counts(m, g)
    return _iou_from_counts(area, inter, area, empty_gt)


def _adaptive_counts(m: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per map: top-M pixels inside the GT, and M; upsampled in float64, in chunks."""
    area = _mask_area(gt)
    inter = torch.zeros_like(area)
    select = _top_m_by_selection if m.device.type == "cpu" else _top_m_by_sort
    step = max(_chunk_size(m.device) // 4, 1)  # float64 maps and a sort's int64 indices
    for s in range(0, m.shape[0], step):
        e = min(s + step, m.shape[0])
        pred = select(_upsample(m[s:e], dtype=torch.float64).flatten(1), area[s:e])
        inter[s:e] = (pred & gt[s:e].flatten(1)).sum(1)
    return inter, area


ADAPTIVE_MARGIN_SD = 4.0
"""Width of the compiled adaptive kernel's sampled bracket, in standard deviations of the sample's
rank: a speed setting only (a bracket that misses is widened and recounted; the values never change)."""


def _adaptive_counts_compiled(
    m: torch.Tensor, gt: torch.Tensor, prepared: PreparedGt | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_adaptive_counts` on CPU: selection without sorting (:mod:`vssl_helpers._run_kernels`)."""
    from vssl_helpers import _run_kernels

    y0, y1, ty, start, stop, upper, _, _ = _kernel_axes(m.shape[1], m.shape[2])
    inter, area = _run_kernels.adaptive_counts(
        np.ascontiguousarray(m.numpy()), y0, y1, ty, start, stop, upper, _column_weights(m.shape[2]),
        *_gt_arrays(gt, prepared), ADAPTIVE_MARGIN_SD,
    )
    return torch.from_numpy(inter), torch.from_numpy(area)


def pia(maps: torch.Tensor | np.ndarray, threshold: float | torch.Tensor | np.ndarray) -> torch.Tensor:
    r"""Per-sample fraction of the image that is active: :math:`\mathrm{pIA}_i = \sum_x m_i(x) / (H W)`.

    :math:`m_i` is the 224 × 224 localization map (:func:`upsample`, then :func:`binarize`). For a
    negative audio (silence, noise, off-screen) the ideal value is 0; lower is better.
    """
    active, _, _ = _active_counts(as_maps(maps), threshold)
    return active.double() / (GT_SIZE * GT_SIZE)


def _pair_iou_from_counts(inter: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    """``inter / union`` in float64, 1 where the union is empty (two empty maps agree)."""
    inter, union = inter.double(), union.double()
    return torch.where(union == 0, torch.ones_like(union), inter / union.clamp_min(1))


def mask_pair_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample IoU of two boolean masks, with IoU = 1 when both are empty (the paper's rule)."""
    _check_masks(a, "a")
    _check_masks(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"masks: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    return _pair_iou_from_counts(_mask_area(a & b), _mask_area(a | b))


def map_iou(
    maps_a: torch.Tensor | np.ndarray,
    maps_b: torch.Tensor | np.ndarray,
    threshold: float | torch.Tensor | np.ndarray,
) -> torch.Tensor:
    r"""Per-sample IoU between the localization maps of two audios for the same image (Fig. 3).

    Both maps are upsampled and binarised at the same (model's) threshold. Both empty: IoU = 1
    (the two maps agree); exactly one empty: 0. Caveat (audit M11): the both-empty rule also applies to
    positive vs negative, so a model whose *positive* map is empty scores 1 there.
    """
    a = as_maps(maps_a, "maps_a")
    b = as_maps(maps_b, "maps_b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"maps_b: batch size {b.shape[0]} does not match maps_a's {a.shape[0]}")
    thr = _as_threshold(threshold, a.shape[0], a.device)
    if _compiled(a.device) and a.shape[1:] == b.shape[1:]:
        from vssl_helpers import _run_kernels

        inter, union = _run_kernels.pair_counts(
            np.ascontiguousarray(a.numpy()), np.ascontiguousarray(b.numpy()), thr.view(-1).double().numpy(),
            *_kernel_axes(a.shape[1], a.shape[2]),
        )
        return _pair_iou_from_counts(torch.from_numpy(inter), torch.from_numpy(union))
    out = torch.empty(a.shape[0], dtype=torch.float64, device=a.device)
    if a.shape[1:] != b.shape[1:] or tuple(a.shape[1:]) == (GT_SIZE, GT_SIZE):
        # maps at 224 (upsampling is the identity) or of different native sizes (their pieces
        # differ): compare pixel by pixel
        step = _chunk_size(a.device)
        for s in range(0, a.shape[0], step):
            e = min(s + step, a.shape[0])
            out[s:e] = mask_pair_iou(_upsample(a[s:e], dtype=torch.float64) > thr[s:e],
                                     _upsample(b[s:e], dtype=torch.float64) > thr[s:e])
        return out
    # same native size: both maps' runs share their pieces, so runs intersect in closed form. Pairs
    # of maps whose native maxima are both <= t are both empty (IoU 1) without any work: at the
    # universal threshold that is most pairs of negatives.
    flat_thr = thr.view(-1)
    out.fill_(1.0)
    work = torch.nonzero((a.flatten(1).amax(1) > flat_thr) | (b.flatten(1).amax(1) > flat_thr)).view(-1)
    step = _run_chunk_size(a.device)
    for s in range(0, work.numel(), step):
        idx = work[s : s + step]
        lo_a, hi_a = _row_runs(a[idx], flat_thr[idx])
        lo_b, hi_b = _row_runs(b[idx], flat_thr[idx])
        inter = (torch.minimum(hi_a, hi_b) - torch.maximum(lo_a, lo_b)).clamp_(min=0).flatten(1).sum(1).double()
        union = (hi_a - lo_a).flatten(1).sum(1).double() + (hi_b - lo_b).flatten(1).sum(1).double() - inter
        out[idx] = _pair_iou_from_counts(inter, union)
    return out


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
    """Mean of the per-sample IoUs, NaN (excluded) samples skipped: Table I's "cIoU U. th."
    (``nan="fail"``: NaN if any value is NaN, as ``np.mean``)."""
    return float(_aggregated(ious, "ious", nan).mean())


def success_rate(values: torch.Tensor | np.ndarray | Sequence[float], at: float = 0.5, nan: NanPolicy = "skip") -> float:
    """Fraction of samples with value ``>= at`` (NaN skipped, or counted as failures with
    ``nan="fail"``): Table I's "cIoU Adap." with ``at=0.5``."""
    v = _aggregated(values, "values", nan)
    return float((v >= at).double().mean())


def success_curve(
    values: torch.Tensor | np.ndarray | Sequence[float], direction: Literal[">=", "<="] = ">=",
    grid: torch.Tensor | None = None, nan: NanPolicy = "skip",
) -> torch.Tensor:
    """Success ratio at each tau of ``grid`` (default :data:`TAU_GRID`): fraction of samples with
    ``value >= tau`` (IoU) or ``value <= tau`` (pIA). NaN samples are skipped (``nan="fail"``: they
    stay in the denominator and never succeed)."""
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
    """``2ab / (a + b)``, defined as ``zero_zero`` (0) when ``a + b == 0``. Both in [0, 1].

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
