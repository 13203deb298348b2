"""Slow, obviously-correct reference implementations of the metrics, one sample at a time.

Written from the definitions (DESIGN.md, paper §II), independently of ``vssl_helpers.metrics``:
explicit per-pixel bilinear interpolation in float64, boolean masks with NumPy, Python loops over
samples and over the tau grid. Only the tests use them.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

SIZE = 224


def _axis_weights(n_in: int, n_out: int) -> list[tuple[int, int, float]]:
    """For each output index: (lower source index, upper source index, weight of the upper one)."""
    out = []
    scale = n_in / n_out
    for i in range(n_out):
        x = (i + 0.5) * scale - 0.5
        x = min(max(x, 0.0), n_in - 1)
        x0 = int(math.floor(x))
        x1 = min(x0 + 1, n_in - 1)
        out.append((x0, x1, x - x0))
    return out


def upsample_one(m: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Half-pixel bilinear upsampling of one map, pixel by pixel, in float64."""
    m = np.asarray(m, dtype=np.float64)
    h, w = m.shape
    if (h, w) == (size, size):
        return m.copy()
    wy = _axis_weights(h, size)
    wx = _axis_weights(w, size)
    out = np.empty((size, size))
    for i, (y0, y1, ty) in enumerate(wy):
        for j, (x0, x1, tx) in enumerate(wx):
            top = (1 - tx) * m[y0, x0] + tx * m[y0, x1]
            bot = (1 - tx) * m[y1, x0] + tx * m[y1, x1]
            out[i, j] = (1 - ty) * top + ty * bot
    return out


def _exact_axis(i: int, n_in: int, n_out: int) -> tuple[int, int, Fraction]:
    x = (i + Fraction(1, 2)) * Fraction(n_in, n_out) - Fraction(1, 2)
    x = min(max(x, Fraction(0)), Fraction(n_in - 1))
    x0 = math.floor(x)
    return x0, min(x0 + 1, n_in - 1), x - x0


def binarise_exact(m: np.ndarray, thr: float, size: int = SIZE, near: float = 1e-9) -> np.ndarray:
    """``upsample_one(m) > thr``, with every pixel within ``near`` of the threshold decided again in
    exact rational arithmetic (float64 rounding splits exact ties, which occur when native values
    on a grid meet non-dyadic interpolation weights)."""
    up = upsample_one(m, size)
    out = up > thr
    t = Fraction(float(thr))
    for y, x in np.argwhere(np.abs(up - thr) < near):
        y0, y1, ty = _exact_axis(int(y), m.shape[0], size)
        x0, x1, tx = _exact_axis(int(x), m.shape[1], size)
        v = [[Fraction(float(m[r, c])) for c in (x0, x1)] for r in (y0, y1)]
        top = (1 - tx) * v[0][0] + tx * v[0][1]
        bot = (1 - tx) * v[1][0] + tx * v[1][1]
        out[y, x] = (1 - ty) * top + ty * bot > t
    return out


def iou_one(pred: np.ndarray, gt: np.ndarray, empty_gt: str = "exclude") -> float:
    if gt.sum() == 0:
        if empty_gt == "exclude":
            return float("nan")
        if empty_gt == "zero":
            return 0.0
        return 1.0 if pred.sum() == 0 else 0.0
    inter = np.logical_and(pred, gt).sum()
    union = np.logical_or(pred, gt).sum()
    return inter / union


def ciou_ref(maps, gts, thr, empty_gt="exclude"):
    out = []
    for i in range(len(maps)):
        t = thr[i] if np.ndim(thr) else thr
        out.append(iou_one(upsample_one(maps[i]) > t, gts[i], empty_gt))
    return np.array(out)


def adaptive_ref(maps, gts, empty_gt="exclude"):
    out = []
    for i in range(len(maps)):
        up = upsample_one(maps[i]).ravel()
        m = int(gts[i].sum())
        order = np.argsort(-up, kind="stable")  # stable: ties keep raster order
        pred = np.zeros(up.size, dtype=bool)
        pred[order[:m]] = True
        out.append(iou_one(pred.reshape(SIZE, SIZE), gts[i], empty_gt))
    return np.array(out)


def pia_ref(maps, thr):
    return np.array([(upsample_one(m) > thr).mean() for m in maps])


def map_iou_ref(maps_a, maps_b, thr):
    out = []
    for a, b in zip(maps_a, maps_b):
        ma, mb = upsample_one(a) > thr, upsample_one(b) > thr
        union = np.logical_or(ma, mb).sum()
        out.append(1.0 if union == 0 else np.logical_and(ma, mb).sum() / union)
    return np.array(out)


def auc_ref(values, direction=">="):
    vals = [v for v in values if not math.isnan(v)]
    taus = [k / 20 for k in range(21)]
    succ = []
    for t in taus:
        hits = sum(1 for v in vals if (v >= t if direction == ">=" else v <= t))
        succ.append(hits / len(vals))
    return sum((succ[k] + succ[k + 1]) * 0.05 / 2 for k in range(20))
