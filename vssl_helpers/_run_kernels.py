"""Compiled CPU kernels behind :mod:`vssl_helpers.metrics` (Numba).

They compute exactly what the tensor code of :func:`vssl_helpers.metrics._row_runs` computes: for
each output row, the map interpolated along rows (float64), then per column piece the one run of
pixels above the threshold, in closed form. Fused per map: the row-interpolated map (224 × w
float64) lives in per-thread scratch, the runs of one piece for all rows are one vectorised loop, and
the GT is read once per map through prefix sums of its *distinct* rows (a union of boxes has a
handful; a row equal to the row above reuses its sums), so a positive map costs a few microseconds
instead of the 50 k pixel operations of upsampling it.

The tensor code stays the definition (and the CUDA path); ``tests/test_metrics.py`` checks both
against the per-pixel references. Kernels are compiled on first use and cached on disk by Numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(inline="always", cache=True)
def _run(a: float, b: float, theta: float, start: int, stop: int, offset: float, scale: float) -> tuple[int, int]:
    """Columns ``[lo, hi)`` above ``theta`` of the piece interpolating from ``a`` towards ``b``; the
    rule of ``metrics._row_runs``, written as selects rather than branches (on real and random maps
    the branches are unpredictable and mispredictions cost more than the arithmetic)."""
    d = b - a
    rising = d >= 0.0
    flat = d == 0.0
    c = (theta - a) / (1.0 if flat else d)
    c = (-1.0 if a > theta else 2.0) if flat else c
    c = min(max(c, -1.0), 2.0)
    c = -1.0 if (c < 0.0) | ((c == 0.0) & (not rising)) else c
    x = c * scale + offset
    lo = int(np.floor(x)) + 1 if rising else start
    hi = stop if rising else int(np.ceil(x))
    # Values on the piece are convex combinations of its two ends: both ends on one side of theta
    # settle the whole piece exactly (and guard the closed form against rounding there).
    all_on = (a > theta) & (b > theta)
    all_off = (a <= theta) & (b <= theta)
    lo = start if all_on | all_off else min(max(lo, start), stop)
    hi = stop if all_on else (start if all_off else min(max(hi, start), stop))
    return lo, max(hi, lo)


@njit(inline="always", cache=True)
def _rows_by_column(m: np.ndarray, y0: np.ndarray, y1: np.ndarray, ty: np.ndarray, out: np.ndarray) -> None:
    """``out[j, y]``: the map interpolated along rows only, column by column (contiguous in y)."""
    for y in range(y0.shape[0]):
        for j in range(m.shape[1]):
            out[j, y] = (1.0 - ty[y]) * np.float64(m[y0[y], j]) + ty[y] * np.float64(m[y1[y], j])


@njit(parallel=True, cache=True)
def active_counts(
    maps: np.ndarray,  # B x h x w float32
    thr: np.ndarray,  # B float64
    y0: np.ndarray,  # size int64: lower source row of each output row
    y1: np.ndarray,  # size int64: upper source row
    ty: np.ndarray,  # size float64: weight of the upper row
    start: np.ndarray,  # w int64: first output column of each piece
    stop: np.ndarray,  # w int64: end of each piece
    upper: np.ndarray,  # w int64: right source column of each piece
    offset: np.ndarray,  # w float64: output column where the piece's weight is 0
    scale: float,  # size / w
    gt_words: np.ndarray,  # B x size x words uint64 (the GT rows as bytes), or 0 x 0 x 0
    gt: np.ndarray,  # B x size x size uint8, or 0 x 0 x 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per map: active pixels, active pixels inside the GT, GT area (the last two 0 without GT).

    Maps are taken in chunks per thread, with scratch allocated once per chunk. Per map: its GT rows
    (a row equal to the one above shares its prefix sums), then per column piece the runs of all
    224 rows in one loop over contiguous float64 columns, which the compiler vectorises.
    """
    b, _, w = maps.shape
    size = y0.shape[0]
    has_gt = gt.shape[0] > 0
    active = np.zeros(b, np.int64)
    inter = np.zeros(b, np.int64)
    area = np.zeros(b, np.int64)
    chunk = 64
    for c in prange((b + chunk - 1) // chunk):
        cols = np.empty((w, size), np.float64)
        lo = np.empty(size, np.int64)
        hi = np.empty(size, np.int64)
        prefix = np.empty((size if has_gt else 1, size + 1), np.int64)
        row_id = np.zeros(size, np.int64)
        row_sum = np.zeros(size, np.int64)
        for i in range(c * chunk, min((c + 1) * chunk, b)):
            theta = thr[i]
            n_gt = 0
            if has_gt:
                k = -1
                for y in range(size):
                    same = y > 0
                    if same:
                        diff = np.uint64(0)
                        for q in range(gt_words.shape[2]):
                            diff |= gt_words[i, y, q] ^ gt_words[i, y - 1, q]
                        same = diff == 0
                    if not same:
                        k += 1
                        acc = 0
                        prefix[k, 0] = 0
                        for x in range(size):
                            acc += gt[i, y, x]
                            prefix[k, x + 1] = acc
                    row_id[y] = k
                    row_sum[y] = prefix[k, size]
                    n_gt += prefix[k, size]
            area[i] = n_gt
            if maps[i].max() <= theta:
                continue
            if maps[i].min() > theta:
                active[i] = size * size
                inter[i] = n_gt
                continue
            _rows_by_column(maps[i], y0, y1, ty, cols)
            n_act = 0
            n_in = 0
            for j in range(w):
                u = upper[j]
                s0 = start[j]
                s1 = stop[j]
                off = offset[j]
                for y in range(size):  # no gathers, no calls: vectorised
                    lo[y], hi[y] = _run(cols[j, y], cols[u, y], theta, s0, s1, off, scale)
                for y in range(size):
                    n_act += hi[y] - lo[y]
                if has_gt:
                    for y in range(size):
                        if row_sum[y] > 0:
                            n_in += prefix[row_id[y], hi[y]] - prefix[row_id[y], lo[y]]
            active[i] = n_act
            inter[i] = n_in
    return active, inter, area


@njit(parallel=True, cache=True)
def pair_counts(
    maps_a: np.ndarray,
    maps_b: np.ndarray,
    thr: np.ndarray,
    y0: np.ndarray,
    y1: np.ndarray,
    ty: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    upper: np.ndarray,
    offset: np.ndarray,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of same-shape maps: pixels active in both, pixels active in either."""
    b, _, w = maps_a.shape
    size = y0.shape[0]
    inter = np.zeros(b, np.int64)
    union = np.zeros(b, np.int64)
    chunk = 64
    for c in prange((b + chunk - 1) // chunk):
        ca = np.empty((w, size), np.float64)
        cb = np.empty((w, size), np.float64)
        for i in range(c * chunk, min((c + 1) * chunk, b)):
            theta = thr[i]
            if maps_a[i].max() <= theta and maps_b[i].max() <= theta:
                continue
            _rows_by_column(maps_a[i], y0, y1, ty, ca)
            _rows_by_column(maps_b[i], y0, y1, ty, cb)
            n_in = 0
            n_un = 0
            for j in range(w):
                u = upper[j]
                s0 = start[j]
                s1 = stop[j]
                off = offset[j]
                for y in range(size):
                    la, ha = _run(ca[j, y], ca[u, y], theta, s0, s1, off, scale)
                    lb, hb = _run(cb[j, y], cb[u, y], theta, s0, s1, off, scale)
                    both = max(min(ha, hb) - max(la, lb), 0)
                    n_in += both
                    n_un += (ha - la) + (hb - lb) - both
            inter[i] = n_in
            union[i] = n_un
    return inter, union
