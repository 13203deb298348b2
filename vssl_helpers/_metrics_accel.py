"""How :mod:`vssl_helpers.metrics` computes its counts fast (private; no public API here).

:mod:`vssl_helpers.metrics` holds the definitions: validation, the formulas, and the step that turns
per-sample *counts* (active pixels, active pixels inside the GT, GT area, pair intersections and
unions) into values. This module computes those counts from already validated tensors, and is
free to be clever about it, as long as every count equals the per-pixel definition (upsample to
224 × 224, compare ``value > threshold`` in float64); ``tests/test_metrics.py`` checks each path
against slow per-pixel references.

Two paths, chosen per call:

* **Compiled kernels** (CPU, ``compiled=True``, the default of ``metrics.USE_COMPILED_KERNELS``):
  the Numba kernels of :mod:`vssl_helpers._run_kernels`, fed by :func:`kernel_axes` (the
  interpolation geometry as NumPy arrays) and :func:`gt_arrays` (the GT as raw masks or prepared
  rows).
* **Tensor code** (any device; the CUDA path, and CPU with ``compiled=False``): the runs of active
  pixels per (output row, column piece) in closed form (:func:`row_runs`), processed in chunks sized
  per device; maps already at 224 × 224 are compared pixel by pixel.

Nothing here imports :mod:`vssl_helpers.metrics` (which imports this module): a prepared GT
arrives as its tuple of arrays (``PreparedGt.arrays()``), and the speed settings as arguments.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

GT_SIZE = 224
"""Side of the evaluation grid, defined here (the module ``metrics`` imports) and public as ``metrics.GT_SIZE``."""

PreparedArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""A prepared GT as the kernels read it: (area, run_lo, run_hi, ref, table); see ``metrics.PreparedGt``."""


# ----------------------------------------------------------------------------------------------
# Geometry of the half-pixel bilinear upsampler
# ----------------------------------------------------------------------------------------------
def _source_coordinates(n_in: int, n_out: int) -> torch.Tensor:
    """Half-pixel source coordinate of each output index, clamped to the input: the one definition
    behind :func:`interp_matrix` and the row-run pieces (float64)."""
    return ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(0, n_in - 1)


def axis_weights(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output index: its lower and upper source index (int64) and the upper one's weight
    (float64), from :func:`_source_coordinates`."""
    x = _source_coordinates(n_in, n_out)
    x0 = x.floor().long()
    return x0, (x0 + 1).clamp(max=n_in - 1), x - x0


@functools.lru_cache(maxsize=64)
def interp_matrix(n_in: int, n_out: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n_out × n_in`` half-pixel bilinear interpolation weights (two non-zeros per row, summing to 1)."""
    x0, x1, t = axis_weights(n_in, n_out)
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    w.index_put_((rows, x0), 1 - t, accumulate=True)
    w.index_put_((rows, x1), t, accumulate=True)
    return w.to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def column_pieces(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


@functools.lru_cache(maxsize=64)
def piece_offsets(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """``(j + 0.5) n_out / n_in - 0.5`` for each piece ``j``: the output column where ``t = 0``."""
    j = torch.arange(n_in, dtype=torch.float64)
    return ((j + 0.5) * (n_out / n_in) - 0.5).to(device)


# ----------------------------------------------------------------------------------------------
# Upsampling, chunking, mask areas
# ----------------------------------------------------------------------------------------------
def upsample(m: torch.Tensor, size: int = GT_SIZE, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``metrics.upsample`` without validation (``m`` already checked float32), in ``dtype``.

    Computed separably, ``W_y @ m @ W_x^T`` with the two interpolation matrices, which is
    mathematically the same bilinear interpolation as ``F.interpolate`` and several times faster on
    CPU (two small batched matmuls instead of a gather per output pixel). Clamped to each map's
    native [min, max] (see ``metrics.upsample``).
    """
    m = m.to(dtype)
    if tuple(m.shape[1:]) == (size, size):
        return m
    wy = interp_matrix(m.shape[1], size, m.device, dtype)
    wx = interp_matrix(m.shape[2], size, m.device, dtype)
    up = wy @ m @ wx.T
    lo = m.amin(dim=(1, 2)).view(-1, 1, 1)
    hi = m.amax(dim=(1, 2)).view(-1, 1, 1)
    return torch.maximum(torch.minimum(up, hi), lo)


def chunk_size(device: torch.device) -> int:
    """Maps per chunk when 224 × 224 maps are formed."""
    # On CPU, 32 maps of 224 x 224 float32 (6.4 MB) stay in cache; bigger chunks are memory-bound.
    return 32 if device.type == "cpu" else 4096


def run_chunk_size(device: torch.device) -> int:
    """Maps per chunk on the row-run path."""
    # The row-run path touches ~224 x w float64 values per map, not 224²; on CPU chunks of 64 to
    # 512 maps measured alike (16-32: per-op overhead shows).
    return 256 if device.type == "cpu" else 8192


def mask_area(masks: torch.Tensor) -> torch.Tensor:
    """Number of True pixels of each boolean mask (int64). On CPU through NumPy: torch's reductions
    over boolean tensors measured 10x slower there."""
    if masks.device.type != "cpu":
        return masks.flatten(1).sum(1)
    flat = masks.numpy().reshape(masks.shape[0], -1).view(np.uint8)
    return torch.from_numpy(flat.sum(1, dtype=np.int64))


# ----------------------------------------------------------------------------------------------
# Row runs: the active pixels of an upsampled, binarised map without forming it (tensor path)
# ----------------------------------------------------------------------------------------------
def row_runs(m: torch.Tensor, thr: torch.Tensor, size: int = GT_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The active pixels of each upsampled, binarised map as runs: one per (output row, piece).

    Along an output row the bilinear map is, on each piece :math:`j` of columns (see
    :func:`column_pieces`), :math:`a + t\,d` with :math:`a = R_{y,j}`, :math:`d = R_{y,j+1} - R_{y,j}`
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
    rows = interp_matrix(h, size, m.device, torch.float64) @ m.double()  # B x size x w, along y only
    start, stop, upper = column_pieces(w, size, m.device)
    d = rows.index_select(2, upper.view(-1)) - rows
    theta = thr.double().view(b, 1, 1)
    # A flat piece (d = 0) is all on or all off: the same as a rising one with c < 0 or c > 1.
    # c outside [0, 1] decides the whole piece; clamping keeps X finite for tiny slopes.
    rising = d >= 0
    c = torch.where(d == 0, torch.where(rows > theta, -1.0, 2.0), (theta - rows) / d).clamp_(-1.0, 2.0)
    # The clamped border columns of piece 0 have t pinned to 0: rising, they are on iff c < 0;
    # falling, off iff c <= 0. Moving such c to -1 puts X left of the piece, which settles them.
    c = torch.where((c < 0) | ((c == 0) & ~rising), -1.0, c)
    x = c * (size / w) + piece_offsets(w, size, m.device)
    # rising: on where t > c, i.e. columns x > X: [floor(X) + 1, stop); falling: on where t < c,
    # columns x < X: [start, ceil(X)).
    lo = torch.where(rising, x.floor() + 1, start.double()).long().clamp_(start, stop)
    hi = torch.where(rising, stop.double(), x.ceil()).long().clamp_(start, stop)
    return lo, hi.clamp_(min=lo)


# ----------------------------------------------------------------------------------------------
# What the compiled kernels take
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def kernel_axes(h: int, w: int, size: int = GT_SIZE) -> tuple:
    """The interpolation geometry the compiled kernels take as NumPy arrays: per output row its two
    source rows and the upper one's weight, per column piece (start, stop, upper, offset), scale."""
    y0, y1, ty = axis_weights(h, size)
    start, stop, upper = (v.view(-1).numpy() for v in column_pieces(w, size, torch.device("cpu")))
    offset = piece_offsets(w, size, torch.device("cpu")).numpy()
    return y0.numpy(), y1.numpy(), ty.numpy(), start, stop, upper, offset, size / w


@functools.lru_cache(maxsize=64)
def _column_weights(w: int, size: int = GT_SIZE) -> np.ndarray:
    """Each output column's interpolation weight within its piece (float64), for the kernels."""
    return axis_weights(w, size)[2].numpy()


_NO_PREPARED = (np.zeros(0, np.int64), np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64),
                np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64))


def gt_arrays(gt: torch.Tensor | None, prepared: PreparedArrays | None = None) -> tuple[np.ndarray, ...]:
    """A GT batch as the kernels take it: the raw masks as machine words (for comparing rows) and
    as bytes, then the five arrays of a prepared GT; the unused ones empty."""
    no_masks = (np.zeros((0, 0, 0), np.uint64), np.zeros((0, 0, 0), np.uint8))
    if prepared is not None:
        return no_masks + tuple(prepared)
    if gt is None:
        return no_masks + _NO_PREPARED
    pixels = np.ascontiguousarray(gt.numpy()).view(np.uint8)
    return (pixels.view(np.uint64), pixels) + _NO_PREPARED  # 224 bytes per row = 28 words


@functools.cache
def _kernels() -> Any:
    """The compiled kernels (:mod:`vssl_helpers._run_kernels`), with Numba's thread pool launched.

    Numba's OpenMP threading layer sets the process's OpenMP thread count when it launches its pool
    (at the first parallel kernel call), and that count is torch's intra-op thread count too: a
    caller's ``torch.set_num_threads(n)`` silently became the core count after the first metric. CPU
    maps depend on the thread count in the last bit (measured ~1e-7), so maps computed after a metric
    differed from maps computed before it (and a scale-out task's from a local run's). The pool is
    launched here, once, and torch's count restored.
    """
    from vssl_helpers import _run_kernels

    n = torch.get_num_threads()
    try:
        from numba.np.ufunc.parallel import _launch_threads

        _launch_threads()
    except ImportError:  # pragma: no cover - private Numba API moved: the first call launches it
        pass
    finally:
        torch.set_num_threads(n)
    return _run_kernels


def prepare_gt_arrays(masks: torch.Tensor) -> PreparedArrays:
    """Validated CPU GT masks in the kernels' row form (``metrics.PreparedGt``'s arrays)."""
    _run_kernels = _kernels()

    pixels = np.ascontiguousarray(masks.numpy()).view(np.uint8)
    return _run_kernels.prepare_gt(pixels.view(np.uint64), pixels)


def _use_kernels(compiled: bool, device: torch.device) -> bool:
    return compiled and device.type == "cpu"


# ----------------------------------------------------------------------------------------------
# Counts: threshold (cIoU, pIA)
# ----------------------------------------------------------------------------------------------
def active_counts(
    m: torch.Tensor, thr: torch.Tensor, gt: torch.Tensor | None = None, prepared: PreparedArrays | None = None,
    *, compiled: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Per map: number of active pixels after upsampling and ``> thr`` (a float64 ``B`` vector);
    when ``gt`` is given, also the number of those inside the GT and the GT area (``prepared``: the
    same GT, prepared, which the compiled kernels read instead).

    Interpolated values lie in each map's native [min, max], so a map whose native max is
    ``<= threshold`` has no active pixel and one whose native min is ``> threshold`` is all active:
    those are settled from the native map alone (at the universal threshold this is most negatives,
    at least 75 % of the decisive type by construction). On CPU with ``compiled`` every map goes
    through the compiled kernel (row runs, the GT in row form). Otherwise the other maps are counted
    from their row runs (:func:`row_runs`, no 224 × 224 map is formed, values and threshold in
    float64), the GT pixels inside each run from the prefix sums of the GT rows; maps already at
    224 × 224 are compared pixel by pixel in float64.
    """
    if _use_kernels(compiled, m.device):
        return _active_counts_compiled(m, thr, gt, prepared)
    b = m.shape[0]
    flat = m.flatten(1)
    none_on = flat.amax(1) <= thr
    all_on = flat.amin(1) > thr
    mixed = ~(none_on | all_on)
    active = torch.where(all_on, GT_SIZE * GT_SIZE, 0).long()
    inter = area = None
    if gt is not None:
        inter = torch.zeros(b, dtype=torch.int64, device=m.device)
        area = mask_area(gt)
    runs = tuple(m.shape[1:]) != (GT_SIZE, GT_SIZE)
    step = (run_chunk_size(m.device) if gt is None else chunk_size(m.device)) if runs else chunk_size(m.device)
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
            lo, hi = row_runs(m[idx], thr[idx])
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


def _active_counts_compiled(
    m: torch.Tensor, thr: torch.Tensor, gt: torch.Tensor | None, prepared: PreparedArrays | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """:func:`active_counts` on CPU: the row runs of :func:`row_runs` fused per map in compiled
    code (:mod:`vssl_helpers._run_kernels`), the GT read in its row form (from the raw masks, or
    from ``prepared``)."""
    _run_kernels = _kernels()

    axes = kernel_axes(m.shape[1], m.shape[2])
    active, inter, area = _run_kernels.active_counts(
        np.ascontiguousarray(m.numpy()), thr.double().numpy(), *axes, *gt_arrays(gt, prepared)
    )
    if gt is None:
        return torch.from_numpy(active), None, None
    return torch.from_numpy(active), torch.from_numpy(inter), torch.from_numpy(area)


# ----------------------------------------------------------------------------------------------
# Counts: top-M (adaptive cIoU)
# ----------------------------------------------------------------------------------------------
def top_m_by_sort(flat: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """Top-M mask by one batched stable descending sort (fast on GPU)."""
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    keep = torch.arange(flat.shape[1], device=flat.device).unsqueeze(0) < area.unsqueeze(1)
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, keep)


def top_m_by_selection(flat: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """Top-M mask by an O(N) selection per map (about 4x faster than sorting on CPU). Same result
    as :func:`top_m_by_sort`: every pixel above the M-th largest value, then the pixels tied with
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


def top_m(flat: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """Top-M mask of flattened maps (``B × N``), by selection on CPU and by sorting elsewhere."""
    return (top_m_by_selection if flat.device.type == "cpu" else top_m_by_sort)(flat, area)


def adaptive_counts(
    m: torch.Tensor, gt: torch.Tensor, prepared: PreparedArrays | None = None, *, compiled: bool = True,
    margin_sd: float = 4.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per map: its top-M pixels (M = GT area, ranked on the float64 upsampled values, ties by raster
    order) inside the GT, and M. On CPU with ``compiled``: selection without sorting in compiled
    code, with a sampled bracket ``margin_sd`` standard deviations wide (a speed setting only);
    otherwise upsampled in chunks and selected by :func:`top_m`."""
    if _use_kernels(compiled, m.device):
        _run_kernels = _kernels()

        y0, y1, ty, start, stop, upper, _, _ = kernel_axes(m.shape[1], m.shape[2])
        inter, area = _run_kernels.adaptive_counts(
            np.ascontiguousarray(m.numpy()), y0, y1, ty, start, stop, upper, _column_weights(m.shape[2]),
            *gt_arrays(gt, prepared), margin_sd,
        )
        return torch.from_numpy(inter), torch.from_numpy(area)
    area = mask_area(gt)
    inter = torch.zeros_like(area)
    step = max(chunk_size(m.device) // 4, 1)  # float64 maps and a sort's int64 indices
    for s in range(0, m.shape[0], step):
        e = min(s + step, m.shape[0])
        pred = top_m(upsample(m[s:e], dtype=torch.float64).flatten(1), area[s:e])
        inter[s:e] = (pred & gt[s:e].flatten(1)).sum(1)
    return inter, area


# ----------------------------------------------------------------------------------------------
# Counts: pairs of maps (map-vs-map IoU)
# ----------------------------------------------------------------------------------------------
def pair_counts(a: torch.Tensor, b: torch.Tensor, thr: torch.Tensor, *, compiled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair of maps binarised at ``thr`` (a float64 ``B`` vector): the number of pixels active in
    both (intersection) and in either (union); both 0 for two empty maps.

    Same native size: both maps' runs share their pieces, so runs intersect in closed form (compiled
    on CPU, :func:`row_runs` elsewhere), and pairs whose native maxima are both ``<= thr`` are both
    empty without any work (at the universal threshold, most pairs of negatives). Maps at 224 × 224
    or of different native sizes are compared pixel by pixel.
    """
    n = a.shape[0]
    if _use_kernels(compiled, a.device) and a.shape[1:] == b.shape[1:]:
        _run_kernels = _kernels()

        inter, union = _run_kernels.pair_counts(
            np.ascontiguousarray(a.numpy()), np.ascontiguousarray(b.numpy()), thr.double().numpy(),
            *kernel_axes(a.shape[1], a.shape[2]),
        )
        return torch.from_numpy(inter), torch.from_numpy(union)
    inter = torch.zeros(n, dtype=torch.int64, device=a.device)
    union = torch.zeros(n, dtype=torch.int64, device=a.device)
    if a.shape[1:] != b.shape[1:] or tuple(a.shape[1:]) == (GT_SIZE, GT_SIZE):
        # maps at 224 (upsampling is the identity) or of different native sizes (their pieces
        # differ): compare pixel by pixel
        step = chunk_size(a.device)
        for s in range(0, n, step):
            e = min(s + step, n)
            t = thr[s:e].view(-1, 1, 1)
            pa = upsample(a[s:e], dtype=torch.float64) > t
            pb = upsample(b[s:e], dtype=torch.float64) > t
            inter[s:e] = mask_area(pa & pb)
            union[s:e] = mask_area(pa | pb)
        return inter, union
    work = torch.nonzero((a.flatten(1).amax(1) > thr) | (b.flatten(1).amax(1) > thr)).view(-1)
    step = run_chunk_size(a.device)
    for s in range(0, work.numel(), step):
        idx = work[s : s + step]
        lo_a, hi_a = row_runs(a[idx], thr[idx])
        lo_b, hi_b = row_runs(b[idx], thr[idx])
        both = (torch.minimum(hi_a, hi_b) - torch.maximum(lo_a, lo_b)).clamp_(min=0).flatten(1).sum(1)
        inter[idx] = both
        union[idx] = (hi_a - lo_a).flatten(1).sum(1) + (hi_b - lo_b).flatten(1).sum(1) - both
    return inter, union
