"""Compiled CPU kernels behind :mod:`vssl_helpers.metrics` (Numba), called by :mod:`vssl_helpers._metrics_accel`.

:func:`active_counts` (cIoU, pIA) and :func:`pair_counts` (map-vs-map IoU) compute exactly what the
tensor code of :func:`vssl_helpers._metrics_accel.row_runs` computes: for each output row, the map
interpolated along rows (float64), then per column piece the one run of pixels above the threshold,
in closed form. Fused per map: the row-interpolated map (224 × w float64) lives in per-thread
scratch, and the runs of one piece for all rows are one vectorised loop, so a map costs a few
microseconds instead of the 50 k pixel operations of upsampling it.

The GT is read in a *row form*: per row, its pixels as one run when they are (every row of a box),
else a row of prefix sums; a raw mask is converted per map (a row equal to the row above, compared
as machine words, is not re-read), a batch can be converted once (:func:`prepare_gt`), and the overlap
of an active run with a GT run is arithmetic.

:func:`adaptive_counts` (top-M IoU) selects the M best pixels without sorting the map (a sampled
bracket of the M-th value, one exact counting pass, a histogram of the few pixels in the bracket).

The tensor code stays the definition (and the CUDA path); ``tests/test_metrics.py`` checks both
against the per-pixel references. Kernels are compiled once per install (at the first metric call, with
a message, or by ``scripts/bootstrap.sh``: :mod:`vssl_helpers.kernel_cache`) and cached on disk by Numba.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _prefetch(typingctx, arr, i, y, x):  # noqa: ARG001 (numba's intrinsic signature)
    """Hint the CPU to fetch ``arr[i, y, x]`` into cache (LLVM's prefetch; no load, never faults).
    The positive kernel streams each 50 KB GT mask from memory; fetching the next map's mask while
    the current map's runs are computed overlaps the two."""
    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, list(args[1:]), wraparound=False)
        byte_ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [byte_ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read access, locality 2 (keep in L2), data cache
        builder.call(fn, [byte_ptr, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, i, y, x), codegen


@njit(inline="always", cache=True)
def _run(a: float, b: float, theta: float, start: int, stop: int, offset: float, scale: float) -> tuple[int, int]:
    """Columns ``[lo, hi)`` above ``theta`` of the piece interpolating from ``a`` towards ``b``; the
    rule of ``_metrics_accel.row_runs``, written as selects rather than branches (on real and random maps
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


# ----------------------------------------------------------------------------------------------
# The GT as the kernels read it: per row, its pixels as one run [run_lo, run_hi) when they are one
# run (every row of a box, most rows of a union of boxes; an empty row is an empty run), else a
# reference ``ref[y] >= 0`` into a table of prefix sums (``table[ref[y], x]`` = GT pixels left of x).
# Raw masks are converted per map into scratch; :func:`prepare_gt` converts a batch once.
# ----------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _gt_rows(
    words: np.ndarray, mask: np.ndarray, table: np.ndarray, run_lo: np.ndarray, run_hi: np.ndarray, ref: np.ndarray
) -> tuple[int, int]:
    """Read one mask once into the row form; ``table`` gets the prefix sums of its distinct rows
    (a row equal to the row above, compared as machine words, shares them). Returns (area, number
    of distinct rows in ``table``)."""
    size = mask.shape[0]
    k = -1
    n_gt = 0
    r0 = 0
    r1 = 0
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
            first = size
            last = -1
            table[k, 0] = 0
            for x in range(size):
                on = mask[y, x]
                acc += on
                table[k, x + 1] = acc
                if on:
                    first = min(first, x)
                    last = x
            r0, r1 = (0, 0) if acc == 0 else ((first, last + 1) if acc == last + 1 - first else (-1, -1))
        n_gt += table[k, size]
        run_lo[y] = max(r0, 0)
        run_hi[y] = max(r1, 0)
        ref[y] = k if r0 < 0 else -1
    return n_gt, k + 1


@njit(inline="always", cache=True)
def _gt_count(y: int, lo: int, hi: int, run_lo: np.ndarray, run_hi: np.ndarray, ref: np.ndarray, table: np.ndarray) -> int:
    """GT pixels of row ``y`` in columns ``[lo, hi)`` (``lo <= hi``)."""
    r = ref[y]
    if r >= 0:
        return table[r, hi] - table[r, lo]
    return max(min(hi, run_hi[y]) - max(lo, run_lo[y]), 0)


@njit(parallel=True, cache=True)
def prepare_gt(words: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A batch of masks in the row form: (area, run_lo, run_hi, ref, table), ``ref`` indexing the
    one shared ``table`` (only rows that are not one run are in it)."""
    b, size, _ = masks.shape
    area = np.zeros(b, np.int64)
    run_lo = np.zeros((b, size), np.int64)
    run_hi = np.zeros((b, size), np.int64)
    ref = np.zeros((b, size), np.int64)
    n_rows = np.zeros(b, np.int64)
    for i in prange(b):
        scratch = np.empty((size, size + 1), np.int64)
        n_gt, _ = _gt_rows(words[i], masks[i], scratch, run_lo[i], run_hi[i], ref[i])
        area[i] = n_gt
        seen = -1
        for y in range(size):  # distinct rows that are not one run, in order
            if ref[i, y] > seen:
                seen = ref[i, y]
                n_rows[i] += 1
    # second pass only for masks with such rows (none for boxes): the table's size is known now
    offset = np.zeros(b + 1, np.int64)
    offset[1:] = np.cumsum(n_rows)
    table = np.zeros((max(offset[b], 1), size + 1), np.int64)
    for i in prange(b):
        if n_rows[i] == 0:
            continue
        scratch = np.empty((size, size + 1), np.int64)
        _gt_rows(words[i], masks[i], scratch, run_lo[i], run_hi[i], ref[i])
        seen = -1
        k = offset[i] - 1
        for y in range(size):
            r = ref[i, y]
            if r < 0:
                continue
            if r > seen:
                seen = r
                k += 1
                table[k] = scratch[r]
            ref[i, y] = k
    return area, run_lo, run_hi, ref, table


@njit(inline="always", cache=True)
def _gt_of_map(
    i: int, words: np.ndarray, masks: np.ndarray, p_area: np.ndarray, p_lo: np.ndarray, p_hi: np.ndarray,
    p_ref: np.ndarray, p_table: np.ndarray, table: np.ndarray, run_lo: np.ndarray, run_hi: np.ndarray, ref: np.ndarray,
) -> int:
    """Map ``i``'s GT in the row form, in per-thread scratch: converted from its raw mask, or copied
    from a prepared batch (the rows that are not one run, usually none, copied into ``table``).
    Returns its area. (Always the same scratch arrays, so that the kernels' loops see one set of
    arrays and stay vectorised.)"""
    if masks.shape[0] > 0:
        n_gt, _ = _gt_rows(words[i], masks[i], table, run_lo, run_hi, ref)
        return n_gt
    k = -1
    seen = -1
    for y in range(run_lo.shape[0]):
        run_lo[y] = p_lo[i, y]
        run_hi[y] = p_hi[i, y]
        r = p_ref[i, y]
        if r >= 0:
            if r != seen:
                seen = r
                k += 1
                table[k] = p_table[r]
            ref[y] = k
        else:
            ref[y] = -1
    return p_area[i]


@njit(parallel=True, cache=True)
def active_counts(
    maps: np.ndarray,  # B x h x w float32
    thr: np.ndarray,  # B float64, the caller's threshold unrounded (compared with float64 values)
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
    p_area: np.ndarray,  # a prepared GT (prepare_gt), or empty arrays
    p_lo: np.ndarray,
    p_hi: np.ndarray,
    p_ref: np.ndarray,
    p_table: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per map: active pixels, active pixels inside the GT, GT area (the last two 0 without GT).

    Maps are taken in chunks per thread, with scratch allocated once per chunk. Per map: its GT in
    the row form (from the raw mask, or prepared), then per column piece the runs of all 224 rows in
    one loop over contiguous float64 columns, which the compiler vectorises, and their overlap with
    the GT rows that are one run, also vectorised. A raw mask is streamed from memory: the mask two
    maps ahead is prefetched while this map's runs are computed (about +25 % on positives).
    """
    b, _, w = maps.shape
    size = y0.shape[0]
    raw = gt.shape[0] > 0
    has_gt = raw or p_area.shape[0] > 0
    active = np.zeros(b, np.int64)
    inter = np.zeros(b, np.int64)
    area = np.zeros(b, np.int64)
    chunk = 64
    for c in prange((b + chunk - 1) // chunk):
        cols = np.empty((w, size), np.float64)
        lo = np.empty(size, np.int64)
        hi = np.empty(size, np.int64)
        table = np.empty((size if has_gt else 1, size + 1), np.int64)
        run_lo = np.zeros(size, np.int64)
        run_hi = np.zeros(size, np.int64)
        ref = np.zeros(size, np.int64)
        ragged = np.zeros(size, np.int64)
        for i in range(c * chunk, min((c + 1) * chunk, b)):
            theta = thr[i]
            n_gt = 0
            n_ragged = 0
            if has_gt:
                n_gt = _gt_of_map(i, gt_words, gt, p_area, p_lo, p_hi, p_ref, p_table, table, run_lo, run_hi, ref)
                for y in range(size):
                    if ref[y] >= 0:
                        ragged[n_ragged] = y
                        n_ragged += 1
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
                for blk in range(8):
                    # a few rows of the mask two maps ahead before each block of rows: small
                    # bursts overlap the arithmetic (one burst per piece measured 12 % slower)
                    if raw and i + 2 < b:
                        r0 = (j * 8 + blk) * size // (8 * w)
                        r1 = (j * 8 + blk + 1) * size // (8 * w)
                        for y in range(r0, r1):
                            for x in range(0, size, 64):
                                _prefetch(gt, i + 2, y, x)
                    for y in range(blk * size // 8, (blk + 1) * size // 8):  # vectorised
                        lo[y], hi[y] = _run(cols[j, y], cols[u, y], theta, s0, s1, off, scale)
                for y in range(size):
                    n_act += hi[y] - lo[y]
                if has_gt:
                    for y in range(size):  # rows that are one GT run (others have an empty one)
                        n_in += max(min(hi[y], run_hi[y]) - max(lo[y], run_lo[y]), 0)
                    for q in range(n_ragged):
                        y = ragged[q]
                        n_in += table[ref[y], hi[y]] - table[ref[y], lo[y]]
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
    gt_words: np.ndarray,  # B x size x words uint64, or 0 x 0 x 0
    gt: np.ndarray,  # B x size x size uint8, or 0 x 0 x 0
    p_area: np.ndarray,  # a prepared GT (prepare_gt), or empty arrays
    p_lo: np.ndarray,
    p_hi: np.ndarray,
    p_ref: np.ndarray,
    p_table: np.ndarray,
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
    3. the runs ``> U`` are taken whole (their GT pixels counted from the row form); a histogram of
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
        table = np.empty((size, size + 1), np.int64)
        run_lo = np.zeros(size, np.int64)
        run_hi = np.zeros(size, np.int64)
        ref = np.zeros(size, np.int64)
        hist = np.zeros(_BINS, np.int64)
        seg_y = np.empty(size * w, np.int64)
        seg_j = np.empty(size * w, np.int64)
        seg_first = np.empty(size * w, np.int64)
        seg_last = np.empty(size * w, np.int64)
        tied_v = np.empty(n_px, np.float64)
        tied_g = np.empty(n_px, np.uint8)
        for i in range(c * chunk, min((c + 1) * chunk, b)):
            n_gt = _gt_of_map(i, gt_words, gt, p_area, p_lo, p_hi, p_ref, p_table, table, run_lo, run_hi, ref)
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
                    n_in += _gt_count(y, 0, size, run_lo, run_hi, ref, table)
                inter[i] = n_in + (_gt_count(full, 0, part, run_lo, run_hi, ref, table) if part > 0 else 0)
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
                for j in range(w):
                    s0 = start[j]
                    s1 = stop[j]
                    a = cols[j, y]
                    d = cols[upper[j], y] - a
                    if d >= 0.0:  # non-decreasing along the segment: the runs end at s1
                        first, last = s1 - n_lo[j, y], s1 - n_hi[j, y]
                        n_in += _gt_count(y, last, s1, run_lo, run_hi, ref, table)
                    else:
                        first, last = s0 + n_hi[j, y], s0 + n_lo[j, y]
                        n_in += _gt_count(y, s0, first, run_lo, run_hi, ref, table)
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
                        n_in += _gt_count(y, x, x + 1, run_lo, run_hi, ref, table)
                    elif kv == k:
                        tied_v[n_tied] = -v
                        tied_g[n_tied] = _gt_count(y, x, x + 1, run_lo, run_hi, ref, table)
                        n_tied += 1
            order = np.argsort(tied_v[:n_tied], kind="mergesort")
            for q in range(need):
                n_in += tied_g[order[q]]
            inter[i] = n_in
    return inter, area
