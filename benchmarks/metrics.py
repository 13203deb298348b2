"""Batched metrics vs a per-sample NumPy loop that computes the same values.

Workloads (the hot path of an extended evaluation: per test image 1 positive map scored by IoU and
30 negative maps scored by pIA and by their IoU with the positive map): upsample a native 7 × 7 map
to 224 × 224, binarise at the threshold, then (positives) IoU with the GT mask, (negatives) pIA, or
(pairs) map-vs-map IoU. Positives are timed twice: with the GT masks as given, and with the GT
prepared once (``metrics.prepare_gt``, as the engine and the threshold sweep do: a test set's GT is
scored for every model, threshold and seed); the preparation's own rate is printed. The baseline is what the
paper's code does per sample: one map at a time, NumPy, a bilinear resize per map (vectorised inside
the map, as cv2.resize is), then the metric sums. Both paths are checked to give identical values
before timing. The adaptive (top-M) IoU is timed separately: it needs a ranking of each map and is
computed once per positive sample only.

Usage: python benchmarks/metrics.py [--n 4096] [--device cpu|cuda] [--native 7]
Prints maps/s for each path and their ratio.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from vssl_helpers import __version__
from vssl_helpers import metrics as M


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    x0 = np.floor(x).astype(int)
    return x0, np.minimum(x0 + 1, n_in - 1), (x - x0)


def numpy_upsample(m: np.ndarray, size: int = 224) -> np.ndarray:
    y0, y1, ty = _axis(m.shape[0], size)
    x0, x1, tx = _axis(m.shape[1], size)
    rows = m[y0] * (1 - ty)[:, None] + m[y1] * ty[:, None]  # size x w
    return rows[:, x0] * (1 - tx)[None, :] + rows[:, x1] * tx[None, :]


def numpy_iou_loop(maps: np.ndarray, gts: np.ndarray, thr: float) -> np.ndarray:
    ious = np.empty(len(maps))
    for i in range(len(maps)):
        act = numpy_upsample(maps[i]) > thr
        ious[i] = np.logical_and(act, gts[i]).sum() / np.logical_or(act, gts[i]).sum()
    return ious


def numpy_pia_loop(maps: np.ndarray, thr: float) -> np.ndarray:
    return np.array([(numpy_upsample(m) > thr).mean() for m in maps])


def numpy_map_iou_loop(maps_a: np.ndarray, maps_b: np.ndarray, thr: float) -> np.ndarray:
    out = np.empty(len(maps_a))
    for i in range(len(maps_a)):
        a, b = numpy_upsample(maps_a[i]) > thr, numpy_upsample(maps_b[i]) > thr
        union = np.logical_or(a, b).sum()
        out[i] = 1.0 if union == 0 else np.logical_and(a, b).sum() / union
    return out


def numpy_adaptive_loop(maps: np.ndarray, gts: np.ndarray) -> np.ndarray:
    out = np.empty(len(maps))
    for i in range(len(maps)):
        up = numpy_upsample(maps[i]).ravel()
        order = np.argsort(-up, kind="stable")
        pred = np.zeros(up.size, bool)
        pred[order[: gts[i].sum()]] = True
        g = gts[i].ravel()
        out[i] = np.logical_and(pred, g).sum() / np.logical_or(pred, g).sum()
    return out


def batched_iou(maps: torch.Tensor, gts: "torch.Tensor | M.PreparedGt", thr: float, batch: int) -> torch.Tensor:
    return torch.cat([M.ciou(maps[s : s + batch], gts[s : s + batch], thr) for s in range(0, maps.shape[0], batch)])


def timeit(fn, repeat: int = 3) -> float:
    """Best of ``repeat`` runs (the loops too: the fairest figure for the baseline)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8192, help="maps in the batched run")
    ap.add_argument("--n-loop", type=int, default=512, help="maps in the NumPy loop run")
    ap.add_argument("--native", type=int, default=7, help="native map side (7 for ResNet-18 at 224)")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    maps = rng.normal(size=(args.n, args.native, args.native)).astype(np.float32)
    gts = np.zeros((args.n, 224, 224), bool)
    for i in range(args.n):
        x0, y0 = rng.integers(0, 150, 2)
        gts[i, y0 : y0 + rng.integers(20, 74), x0 : x0 + rng.integers(20, 74)] = True
    thr = 0.5
    tm, tg = torch.from_numpy(maps).to(args.device), torch.from_numpy(gts).to(args.device)

    # same values first (on the loop subset); a pixel within float32 rounding of the threshold may flip
    n_loop = min(args.n_loop, args.n)
    ref_iou = numpy_iou_loop(maps[:n_loop], gts[:n_loop], thr)
    got_iou = batched_iou(tm[:n_loop], tg[:n_loop], thr, args.batch)
    assert np.allclose(got_iou.cpu().numpy(), ref_iou, atol=1e-3)
    n_adap = min(128, n_loop)
    ref_adap = numpy_adaptive_loop(maps[:n_adap], gts[:n_adap])
    assert np.allclose(M.ciou_adaptive(tm[:n_adap], tg[:n_adap]).cpu().numpy(), ref_adap, atol=1e-3)

    batched_iou(tm[: args.batch], tg[: args.batch], thr, args.batch)  # warm-up
    t_loop = timeit(lambda: numpy_iou_loop(maps[:n_loop], gts[:n_loop], thr))
    t_bat = timeit(lambda: batched_iou(tm, tg, thr, args.batch))
    loop_rate, bat_rate = n_loop / t_loop, args.n / t_bat
    if args.device == "cpu":  # the prepared GT is read by the compiled CPU kernels
        M.prepare_gt(tg[:64])  # warm-up (compilation)
        t_prep = timeit(lambda: M.prepare_gt(tg))
        prepared = M.prepare_gt(tg)
        assert torch.equal(batched_iou(tm, prepared, thr, args.batch), batched_iou(tm, tg, thr, args.batch))
        t_bat_prep = timeit(lambda: batched_iou(tm, prepared, thr, args.batch))

    # negatives at the universal threshold: Q3 of the per-map maxima, so >= 75 % of maps are empty
    neg_thr = float(np.quantile(maps.reshape(len(maps), -1).max(1), 0.75))
    ref_neg = numpy_pia_loop(maps[:n_loop], neg_thr)
    assert np.allclose(M.pia(tm[:n_loop], neg_thr).cpu().numpy(), ref_neg, atol=1e-4)
    t_neg_loop = timeit(lambda: numpy_pia_loop(maps[:n_loop], neg_thr))
    t_neg_bat = timeit(lambda: M.pia(tm, neg_thr))
    neg_loop_rate, neg_bat_rate = n_loop / t_neg_loop, args.n / t_neg_bat

    # map-vs-map IoU (Fig. 3): each positive map against a negative map at the threshold
    maps_b = rng.normal(size=maps.shape).astype(np.float32)
    tb = torch.from_numpy(maps_b).to(args.device)
    ref_mi = numpy_map_iou_loop(maps[:n_loop], maps_b[:n_loop], thr)
    assert np.allclose(M.map_iou(tm[:n_loop], tb[:n_loop], thr).cpu().numpy(), ref_mi, atol=1e-3)
    t_mi_loop = timeit(lambda: numpy_map_iou_loop(maps[:n_loop], maps_b[:n_loop], thr))
    t_mi_bat = timeit(lambda: M.map_iou(tm, tb, thr))
    mi_loop_rate, mi_bat_rate = n_loop / t_mi_loop, args.n / t_mi_bat

    t_adap_loop = timeit(lambda: numpy_adaptive_loop(maps[:n_adap], gts[:n_adap]), repeat=2)
    n_adap_b = min(args.n, 4096)
    t_adap_bat = timeit(lambda: M.ciou_adaptive(tm[:n_adap_b], tg[:n_adap_b]), repeat=2)

    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    print(f"vssl_helpers {__version__}, torch {torch.__version__}, device: {dev}")
    print(f"workload: positives, {args.native}x{args.native} -> 224x224, threshold + IoU with GT per map")
    print(f"  numpy per-sample loop : {loop_rate:12,.0f} maps/s  ({n_loop} maps)")
    print(f"  batched ({args.device:4s})        : {bat_rate:12,.0f} maps/s  ({args.n} maps, batch {args.batch})")
    print(f"  ratio                 : {bat_rate / loop_rate:12.1f}x")
    if args.device == "cpu":
        print(f"  batched, GT prepared  : {args.n / t_bat_prep:12,.0f} maps/s  (prepare_gt once: {args.n / t_prep:,.0f} masks/s)")
        print(f"  ratio                 : {(args.n / t_bat_prep) / loop_rate:12.1f}x")
    print(f"workload: negatives at the universal threshold (Q3 of maxima = {neg_thr:.3f}): pIA per map")
    print(f"  numpy per-sample loop : {neg_loop_rate:12,.0f} maps/s")
    print(f"  batched ({args.device:4s})        : {neg_bat_rate:12,.0f} maps/s")
    print(f"  ratio                 : {neg_bat_rate / neg_loop_rate:12.1f}x")
    print(f"workload: map-vs-map IoU (positive vs negative map, both at t = {thr})")
    print(f"  numpy per-sample loop : {mi_loop_rate:12,.0f} maps/s")
    print(f"  batched ({args.device:4s})        : {mi_bat_rate:12,.0f} pairs/s")
    print(f"  ratio                 : {mi_bat_rate / mi_loop_rate:12.1f}x")
    print("workload: adaptive top-M IoU per map")
    print(f"  numpy per-sample loop : {n_adap / t_adap_loop:12,.0f} maps/s")
    print(f"  batched ({args.device:4s})        : {n_adap_b / t_adap_bat:12,.0f} maps/s")
    print(f"  ratio                 : {(n_adap_b / t_adap_bat) / (n_adap / t_adap_loop):12.1f}x")


if __name__ == "__main__":
    main()
