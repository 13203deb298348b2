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


@njit(inline="always", cache=True)
def _gt_rows(words: np.ndarray, mask: np.ndarray, prefix: np.ndarray, row_id: np.ndarray, row_sum: np.ndarray) -> int:
    """Read one GT mask once: prefix sums of its distinct rows (``prefix[row_id[y]]``; a row equal
    to the row above, compared as machine words, shares them), each row's count, and the area."""
    size = mask.shape[0]
    k = -1
    n_gt = 0
    for y in range(size):
        same = y > 0
        if same:
            diff = np.uint64(0)
            for q in range(words.shape[1]):
                diff |= words[y, q] ^ words[y - 1, q]
            same = diff == 0
        if not same:
            k += 1
            acc = 0
            prefix[k, 0] = 0
            for x in range(size):
                acc += mask[y, x]
                prefix[k, x + 1] = acc
        row_id[y] = k
        row_sum[y] = prefix[k, size]
        n_gt += prefix[k, size]
    return n_gt


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
                n_gt = _gt_rows(gt_words[i], gt[i], prefix, row_id, row_sum)
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



_BINS = 1024  # histogram bins of the adaptive selection


@njit(inline="always", cache=True)
def _bin(v: float, lo: float, inv: float) -> int:
    # clamped as a float, then truncated: vectorises (the clamp guards against rounding past the range)
    return int(min(max((v - lo) * inv, 0.0), _BINS - 1.0))


@njit(parallel=True, cache=True)
def adaptive_counts(
    maps: np.ndarray,  # B x h x w float32
    y0: np.ndarray,
    y1: np.ndarray,
    ty: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    upper: np.ndarray,
    tx: np.ndarray,  # size float64: each output column's weight within its piece
    gt_words: np.ndarray,  # B x size x words uint64
    gt: np.ndarray,  # B x size x size uint8
    margin_sd: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per map: pixels of the top-M set inside the GT, and M (the GT area).

    The top-M set is the first M pixels in the order (value descending, raster index ascending).
    Pixel values are ``a + t (b - a)`` along each output row, from rows interpolated the same way:
    in floating point that is monotone in ``t``, so on each (row, column piece) *segment* the pixels
    above any value form one run at one end, and a constant stretch of the native map stays exactly
    constant (ties stay ties). Selection without sorting the map:

    1. a histogram of a 1-in-16 grid of pixels brackets the M-th value, ``L <= v_M <= U``, with a
       margin of ``margin_sd`` standard deviations of the sample's rank;
    2. one vectorised pass counts, per segment, the pixels ``> U`` and ``>= L`` (exact: every pixel
       is compared); where the bracket missed, the failed side is opened and the pass repeated, so
       the result never depends on the sample (``margin_sd < 0`` forces misses, for the tests);
    3. the runs ``> U`` are taken whole (their GT pixels through the prefix sums); a histogram of
       the pixels in ``[L, U]`` finds the bin of the (M - #above)-th, and only that bin's pixels are
       gathered in raster order and sorted stably.
    """
    b, _, w = maps.shape
    size = y0.shape[0]
    n_px = size * size
    inter = np.zeros(b, np.int64)
    area = np.zeros(b, np.int64)
    chunk = 16
    for c in prange((b + chunk - 1) // chunk):
        cols = np.empty((w, size), np.float64)
        slope = np.empty(size, np.float64)
        n_hi = np.empty((w, size), np.int64)
        n_lo = np.empty((w, size), np.int64)
        prefix = np.empty((size, size + 1), np.int64)
        row_id = np.zeros(size, np.int64)
        row_sum = np.zeros(size, np.int64)
        hist = np.zeros(_BINS, np.int64)
        seg_y = np.empty(size * w, np.int64)
        seg_j = np.empty(size * w, np.int64)
        seg_first = np.empty(size * w, np.int64)
        seg_last = np.empty(size * w, np.int64)
        tied_v = np.empty(n_px, np.float64)
        tied_g = np.empty(n_px, np.uint8)
        for i in range(c * chunk, min((c + 1) * chunk, b)):
            n_gt = _gt_rows(gt_words[i], gt[i], prefix, row_id, row_sum)
            area[i] = n_gt
            if n_gt == 0 or n_gt == n_px:
                inter[i] = n_gt
                continue
            m = maps[i]
            for y in range(size):
                for j in range(w):
                    cols[j, y] = m[y0[y], j] + ty[y] * (m[y1[y], j] - m[y0[y], j])
            lo = cols.min()
            hi = cols.max()
            if lo == hi:  # constant map, all pixels tied: the first M in raster order
                full, part = n_gt // size, n_gt % size
                n_in = 0
                for y in range(full):
                    n_in += row_sum[y]
                inter[i] = n_in + (prefix[row_id[full], part] if part > 0 else 0)
                continue
            inv = _BINS / (hi - lo)
            # 1. bracket from a grid sample
            hist[:] = 0
            n_sample = 0
            for j in range(w):
                u = upper[j]
                for x in range(start[j], stop[j], 4):
                    t = tx[x]
                    for y in range(0, size, 4):
                        hist[_bin(cols[j, y] + t * (cols[u, y] - cols[j, y]), lo, inv)] += 1
                        n_sample += 1
            rank = n_gt * n_sample / n_px
            margin = margin_sd * np.sqrt(rank * (1.0 - n_gt / n_px)) + (2.0 if margin_sd >= 0 else 0.0)
            upper_v = np.inf
            lower_v = -np.inf
            acc = 0
            for k in range(_BINS - 1, -1, -1):
                if upper_v == np.inf and rank - margin > 0 and acc + hist[k] >= rank - margin:
                    upper_v = lo + (k + 1) * (hi - lo) / _BINS
                acc += hist[k]
                if acc >= rank + margin:
                    lower_v = lo + k * (hi - lo) / _BINS
                    break
            lower_v = min(lower_v, upper_v)  # so that the pixels > U are among those >= L
            # 2. exact counts per segment; open the bracket where it missed
            above = 0
            for attempt in range(3):
                for j in range(w):
                    u = upper[j]
                    for y in range(size):
                        slope[y] = cols[u, y] - cols[j, y]
                        n_hi[j, y] = 0
                        n_lo[j, y] = 0
                    for x in range(start[j], stop[j]):
                        t = tx[x]
                        for y in range(size):  # contiguous: vectorised
                            v = cols[j, y] + t * slope[y]
                            n_hi[j, y] += 1 if v > upper_v else 0
                            n_lo[j, y] += 1 if v >= lower_v else 0
                above = n_hi.sum()
                if above >= n_gt:
                    lower_v, upper_v = upper_v, np.inf
                elif n_lo.sum() < n_gt:
                    upper_v, lower_v = lower_v, -np.inf
                else:
                    break
            # 3. runs above U whole; a histogram of the candidates (in [L, U]) finds the bin of
            # the (M - above)-th; only that bin's pixels are gathered, in raster order, and sorted
            # stably, so that ties keep raster order
            base = max(lower_v, lo)
            top = min(upper_v, hi)
            inv_c = _BINS / (top - base) if top > base else 0.0
            hist[:] = 0
            n_in = 0
            n_seg = 0
            for y in range(size):
                p = prefix[row_id[y]]
                for j in range(w):
                    s0 = start[j]
                    s1 = stop[j]
                    a = cols[j, y]
                    d = cols[upper[j], y] - a
                    if d >= 0.0:  # non-decreasing along the segment: the runs end at s1
                        first, last = s1 - n_lo[j, y], s1 - n_hi[j, y]
                        n_in += p[s1] - p[last]
                    else:
                        first, last = s0 + n_hi[j, y], s0 + n_lo[j, y]
                        n_in += p[first] - p[s0]
                    if last > first:
                        seg_y[n_seg] = y
                        seg_j[n_seg] = j
                        seg_first[n_seg] = first
                        seg_last[n_seg] = last
                        n_seg += 1
                        for x in range(first, last):
                            hist[_bin(a + tx[x] * d, base, inv_c)] += 1
            need = n_gt - above
            k = _BINS - 1
            while hist[k] < need:
                need -= hist[k]
                k -= 1
            n_tied = 0
            for q in range(n_seg):
                y = seg_y[q]
                j = seg_j[q]
                a = cols[j, y]
                d = cols[upper[j], y] - a
                for x in range(seg_first[q], seg_last[q]):
                    v = a + tx[x] * d
                    kv = _bin(v, base, inv_c)
                    if kv > k:
                        n_in += gt[i, y, x]
                    elif kv == k:
                        tied_v[n_tied] = -v
                        tied_g[n_tied] = gt[i, y, x]
                        n_tied += 1
            order = np.argsort(tied_v[:n_tied], kind="mergesort")
            for q in range(need):
                n_in += tied_g[order[q]]
            inter[i] = n_in
    return inter, area
