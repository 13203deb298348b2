"""vssl_helpers.metrics against slow per-sample references (tests/reference_metrics.py).

Most random maps are *dyadic*: values are multiples of 1/256 and native sizes divide 224 by a power
of two, so every bilinear weight is a multiple of 1/64 and float32 interpolation is exact. That lets
the tests demand exact equality, ties with the threshold included. Other native sizes are checked with
a tolerance that only forgives pixels lying within 3e-5 of the threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vssl_helpers import metrics as M

from reference_metrics import (
    SIZE,
    adaptive_ref,
    binarise_exact,
    iou_one,
    auc_ref,
    ciou_ref,
    map_iou_ref,
    pia_ref,
    upsample_one,
)

DYADIC_SIZES = [7, 14, 28, 56, 112]


def dyadic_maps(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    return (rng.integers(0, 257, size=(b, n, n)) / 256).astype(np.float32)


def random_boxes_gt(rng: np.random.Generator, b: int) -> np.ndarray:
    gt = np.zeros((b, SIZE, SIZE), dtype=bool)
    for i in range(b):
        for _ in range(rng.integers(1, 3)):
            x0, y0 = rng.integers(0, 200, size=2)
            x1, y1 = x0 + rng.integers(1, 120), y0 + rng.integers(1, 120)
            gt[i, y0:y1, x0:x1] = True
    return gt


def assert_same(actual: torch.Tensor, expected: np.ndarray) -> None:
    a = actual.cpu().numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(expected))
    np.testing.assert_allclose(a[~np.isnan(a)], expected[~np.isnan(expected)], rtol=0, atol=1e-12)


@pytest.fixture(params=["compiled", "tensor"])
def counting_path(request, monkeypatch):
    """Run a test through the compiled CPU kernels and through the tensor code (the CUDA path)."""
    monkeypatch.setattr(M, "USE_COMPILED_KERNELS", request.param == "compiled")
    return request.param


# ---------------------------------------------------------------- upsampler
@pytest.mark.parametrize("n", DYADIC_SIZES)
def test_upsample_matches_per_pixel_bilinear_exactly(n):
    rng = np.random.default_rng(n)
    maps = dyadic_maps(rng, 2, n)
    up = M.upsample(torch.from_numpy(maps)).numpy()
    for i in range(2):
        np.testing.assert_array_equal(up[i], upsample_one(maps[i]).astype(np.float32))


@pytest.mark.parametrize("n", [5, 20, 31])
def test_upsample_non_dyadic_sizes_close(n):
    rng = np.random.default_rng(n)
    maps = rng.normal(size=(2, n, n)).astype(np.float32)
    up = M.upsample(torch.from_numpy(maps)).numpy()
    for i in range(2):
        # float32 source coordinates (scale n/224 is inexact) cost up to ~1e-5
        np.testing.assert_allclose(up[i], upsample_one(maps[i]), atol=3e-5)


def test_upsample_identity_at_224_and_constant_maps_stay_constant():
    rng = np.random.default_rng(0)
    m224 = rng.normal(size=(2, SIZE, SIZE)).astype(np.float32)
    assert torch.equal(M.upsample(torch.from_numpy(m224)), torch.from_numpy(m224))
    const = torch.full((3, 9, 9), 0.3141592, dtype=torch.float32)
    up = M.upsample(const)
    assert bool((up == const[0, 0, 0]).all())


# ---------------------------------------------------------------- cIoU, pIA, map IoU on random maps
@pytest.mark.parametrize("n", DYADIC_SIZES)
def test_ciou_pia_mapiou_exact_on_dyadic_maps(n, counting_path):
    rng = np.random.default_rng(100 + n)
    b = 4
    maps = dyadic_maps(rng, b, n)
    maps_b = dyadic_maps(rng, b, n)
    gt = random_boxes_gt(rng, b)
    # on-grid threshold (ties with upsampled values occur) and off-grid
    for thr in (128 / 256, 0.5 + 2.0**-22, 200 / 256):
        assert_same(M.ciou(torch.from_numpy(maps), torch.from_numpy(gt), thr), ciou_ref(maps, gt, thr))
        assert_same(M.pia(torch.from_numpy(maps), thr), pia_ref(maps, thr))
        assert_same(M.map_iou(torch.from_numpy(maps), torch.from_numpy(maps_b), thr), map_iou_ref(maps, maps_b, thr))


def test_ciou_per_sample_threshold_vector():
    rng = np.random.default_rng(7)
    maps = dyadic_maps(rng, 3, 14)
    gt = random_boxes_gt(rng, 3)
    thr = np.array([0.25, 0.5, 0.75])
    assert_same(M.ciou(maps, gt, torch.tensor(thr)), ciou_ref(maps, gt, thr))


@pytest.mark.parametrize("shape", [(1, 2), (1, 5), (3, 1), (2, 2), (5, 9), (13, 31), (20, 20), (300, 300), (240, 17)])
def test_row_run_counting_is_exact_on_odd_shapes(shape, counting_path):
    """Counting runs per (row, column piece) instead of pixels: exact for non-square, non-dyadic,
    single-row/column and downsampled (300 > 224) maps, with per-sample thresholds drawn from the
    maps' own values. Grid values with non-dyadic weights meet the threshold in exact ties, which
    the reference decides in rational arithmetic (``binarise_exact``)."""
    rng = np.random.default_rng(sum(shape))
    b = 5
    maps = (rng.integers(0, 257, size=(b, *shape)) / 256).astype(np.float32)
    maps_b = rng.random(size=(b, *shape)).astype(np.float32)
    gt = random_boxes_gt(rng, b)
    gt[0] = rng.random((SIZE, SIZE)) < 0.3  # a ragged mask, many runs per row
    thr = np.array([maps[i].flat[rng.integers(maps[i].size)] for i in range(b)], dtype=np.float32)
    a = [binarise_exact(maps[i], thr[i]) for i in range(b)]
    bb = [binarise_exact(maps_b[i], thr[i]) for i in range(b)]
    t = torch.from_numpy(thr)
    assert_same(M.ciou(maps, gt, t, empty_gt="zero"), np.array([iou_one(a[i], gt[i], "zero") for i in range(b)]))
    assert_same(M.pia(maps, t), np.array([a[i].mean() for i in range(b)]))
    union = [np.logical_or(a[i], bb[i]).sum() for i in range(b)]
    want = np.array([1.0 if union[i] == 0 else np.logical_and(a[i], bb[i]).sum() / union[i] for i in range(b)])
    assert_same(M.map_iou(maps, maps_b, t), want)


@pytest.mark.parametrize("n", [7, 20])
def test_ciou_non_dyadic_only_differs_at_threshold_ties(n):
    rng = np.random.default_rng(n)
    maps = rng.normal(size=(3, n, n)).astype(np.float32)
    gt = random_boxes_gt(rng, 3)
    thr = 0.3
    got = M.ciou(maps, gt, thr).numpy()
    want = ciou_ref(maps, gt, thr)
    for i in range(3):
        near = np.abs(upsample_one(maps[i]) - thr) < 3e-5
        union = np.logical_or(upsample_one(maps[i]) > thr, gt[i]).sum()
        assert abs(got[i] - want[i]) <= (near.sum() + 1e-12) / max(union - near.sum(), 1)


@pytest.mark.parametrize("n", [7, 14, 224])
def test_adaptive_matches_stable_sort_reference(n, counting_path):
    rng = np.random.default_rng(200 + n)
    maps = dyadic_maps(rng, 4, n)  # dyadic values: plenty of exact ties
    gt = random_boxes_gt(rng, 4)
    assert_same(M.ciou_adaptive(maps, gt), adaptive_ref(maps, gt))
    # a constant map and a map with plateaus (ties across many pixels, first in raster order)
    maps[0] = 0.5
    maps[1] = np.round(maps[1] * 2) / 2
    assert_same(M.ciou_adaptive(maps, gt), adaptive_ref(maps, gt))
    # exactly M pixels active, always
    mask = M.adaptive_mask(M.upsample(maps), torch.from_numpy(gt).flatten(1).sum(1))
    assert torch.equal(mask.flatten(1).sum(1), torch.from_numpy(gt).flatten(1).sum(1))


# ---------------------------------------------------------------- edge cases
def test_empty_gt_rules():
    maps = torch.zeros(2, 7, 7)
    maps[1, 3, 3] = 1.0  # second map has an active blob
    gt = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    thr = 0.5
    exclude = M.ciou(maps, gt, thr)
    assert math.isnan(exclude[0]) and math.isnan(exclude[1])
    assert M.ciou(maps, gt, thr, empty_gt="zero").tolist() == [0.0, 0.0]
    assert M.ciou(maps, gt, thr, empty_gt="match_empty").tolist() == [1.0, 0.0]
    assert M.count_empty_gt(gt) == 2
    # aggregation skips excluded samples
    gt2 = torch.zeros(3, SIZE, SIZE, dtype=torch.bool)
    gt2[1:, :112] = True
    m3 = torch.ones(3, 7, 7)
    vals = M.ciou(m3, gt2, 0.5)
    assert math.isnan(vals[0]) and vals[1:].tolist() == [0.5, 0.5]
    assert M.mean_iou(vals) == 0.5
    with pytest.raises(ValueError, match="empty_gt"):
        M.ciou(maps, gt, thr, empty_gt="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no defined"):
        M.mean_iou(torch.tensor([float("nan")]))


def test_all_zero_and_constant_maps():
    gt = torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
    gt[0, 50:100, 50:150] = True  # 5,000 px
    zero = torch.zeros(1, 7, 7)
    assert M.ciou(zero, gt, 0.0).item() == 0.0  # 0 > 0 is false: empty map
    assert M.pia(zero, 0.0).item() == 0.0
    assert M.ciou(zero, gt, -0.1).item() == pytest.approx(5000 / SIZE**2)  # everything active
    const = torch.full((1, 14, 14), 0.7)
    assert M.pia(const, 0.69).item() == 1.0
    assert M.pia(const, 0.7).item() == 0.0  # map equal to threshold: strict '>'
    # adaptive on a constant map: exactly M pixels, first in raster order
    mask = M.adaptive_mask(M.upsample(const), torch.tensor([300]))
    assert mask.sum() == 300 and bool(mask[0, 0, :224].all()) and bool(mask[0, 1, :76].all())
    assert mask[0, 1, 76:].sum() == 0


def test_map_equal_to_threshold_after_upsampling_is_empty():
    # whatever the rounding of interpolation, a map whose native max equals t is empty at t
    rng = np.random.default_rng(3)
    maps = torch.from_numpy(rng.uniform(0.2, 0.6, size=(8, 7, 7)).astype(np.float32))
    thr = maps.amax(dim=(1, 2))
    assert M.pia(maps, thr).tolist() == [0.0] * 8


def test_single_pixel_gt():
    gt = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    gt[:, 10, 20] = True
    m = torch.zeros(2, SIZE, SIZE)
    m[0, 10, 20] = 1.0  # hits the pixel exactly
    m[1, 10, 21] = 1.0  # one pixel off
    assert M.ciou(m, gt, 0.5).tolist() == [1.0, 0.0]
    assert M.ciou_adaptive(m, gt).tolist() == [1.0, 0.0]


def test_maps_already_at_224():
    rng = np.random.default_rng(11)
    maps = rng.normal(size=(3, SIZE, SIZE)).astype(np.float32)
    gt = random_boxes_gt(rng, 3)
    assert_same(M.ciou(maps, gt, 0.1), ciou_ref(maps, gt, 0.1))
    assert_same(M.pia(maps, 0.1), pia_ref(maps, 0.1))
    assert_same(M.ciou_adaptive(maps, gt), adaptive_ref(maps, gt))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_precision_input_equals_float32_of_same_values(dtype):
    rng = np.random.default_rng(5)
    maps = dyadic_maps(rng, 3, 14)  # multiples of 1/256 in [0,1] are exact in fp16 and bf16
    gt = random_boxes_gt(rng, 3)
    low = torch.from_numpy(maps).to(dtype)
    assert torch.equal(low.float(), torch.from_numpy(maps))
    assert_same(M.ciou(low, gt, 0.5), ciou_ref(maps, gt, 0.5))
    assert_same(M.pia(low, 0.5), pia_ref(maps, 0.5))
    assert_same(M.ciou_adaptive(low, gt), adaptive_ref(maps, gt))


def test_binary_oracle_map():
    gt = torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
    gt[0, 30:90, 40:200] = True
    oracle = gt.float()
    assert M.ciou(oracle, gt, 0.5).item() == 1.0
    assert M.ciou(oracle, gt, 0.0).item() == 1.0
    assert M.pia(oracle, 1.0).item() == 0.0  # max == threshold: nothing is '>' 1


# ---------------------------------------------------------------- aggregation
def test_auc_and_auc_n_against_reference_and_hand_values():
    rng = np.random.default_rng(1)
    ious = rng.uniform(size=50)
    assert M.auc(ious) == pytest.approx(auc_ref(ious), abs=1e-12)
    assert M.auc_n(ious) == pytest.approx(auc_ref(ious, "<="), abs=1e-12)
    # hand-computed: all IoU = 0 -> success only at tau=0 -> one trapezoid half-step 0.025
    assert M.auc([0.0, 0.0]) == pytest.approx(0.025)
    assert M.auc([1.0]) == pytest.approx(1.0)
    assert M.auc_n([0.0]) == pytest.approx(1.0)
    assert M.auc_n([1.0]) == pytest.approx(0.025)
    # grid point exactly on 0.15: counted as success (i/20 grid, not 0.05*i)
    assert M.success_curve([0.15])[3].item() == 1.0
    # AUC - mean IoU lies in (-0.025, 0.025] (audit M7)
    d = M.auc(ious) - ious.mean()
    assert -0.025 < d <= 0.025 + 1e-12


def test_success_rate_and_mean_iou():
    v = [0.2, 0.5, 0.7, float("nan")]
    assert M.success_rate(v, 0.5) == pytest.approx(2 / 3)
    assert M.mean_iou(v) == pytest.approx((0.2 + 0.5 + 0.7) / 3)


def test_f_scores_hand_computed():
    # F_LOC = H(0.2, 1 - mean(0.1, 0.2, 0.3)) = H(0.2, 0.8) = 2*0.16/1.0 = 0.32
    assert M.f_loc(0.2, {"silence": 0.1, "noise": 0.2, "offscreen": 0.3}) == pytest.approx(0.32)
    assert M.f_auc(0.5, [0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert M.harmonic_mean(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="outside"):
        M.harmonic_mean(1.5, 0.2)


# ---------------------------------------------------------------- input validation
def test_bad_inputs_raise_clear_errors():
    gt = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    ok = torch.zeros(2, 7, 7)
    nan = ok.clone()
    nan[1, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"maps: 1 NaN/Inf values .* \(first: sample 1\)"):
        M.ciou(nan, gt, 0.5)
    inf = ok.clone()
    inf[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="maps: 1 NaN/Inf"):
        M.pia(inf, 0.5)
    with pytest.raises(ValueError, match=r"maps: expected a 3-D batch B x h x w, got shape \(7, 7\)"):
        M.pia(torch.zeros(7, 7), 0.5)
    with pytest.raises(ValueError, match=r"gt: batch size 2 does not match maps' batch size 3"):
        M.ciou(torch.zeros(3, 7, 7), gt, 0.5)
    with pytest.raises(ValueError, match=r"gt: expected a boolean mask, got dtype torch.float32"):
        M.ciou(ok, gt.float(), 0.5)
    with pytest.raises(ValueError, match=r"gt: expected shape B x 224 x 224, got \(2, 112, 112\)"):
        M.ciou(ok, torch.zeros(2, 112, 112, dtype=torch.bool), 0.5)
    with pytest.raises(ValueError, match="maps: expected a floating-point tensor, got dtype torch.int64"):
        M.pia(torch.zeros(2, 7, 7, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="maps_b: batch size 1 does not match maps_a's 2"):
        M.map_iou(ok, torch.zeros(1, 7, 7), 0.5)
    with pytest.raises(ValueError, match="threshold: expected a scalar or a length-2 vector"):
        M.pia(ok, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="threshold: must be finite"):
        M.pia(ok, float("nan"))
    with pytest.raises(ValueError, match="maps: expected a torch.Tensor or numpy.ndarray, got list"):
        M.pia([[[0.0]]], 0.5)  # type: ignore[arg-type]


def test_metric_cards_cover_every_metric():
    for fn in ("ciou", "ciou_adaptive", "auc", "pia", "auc_n", "f_loc", "f_auc", "map_iou"):
        card = M.METRIC_CARDS[fn]
        assert callable(getattr(M, fn))
        assert card.formula and card.caveats and "$$" in card.to_markdown()
        assert getattr(M, fn).__doc__


# ---------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(9)
    maps = torch.from_numpy(rng.normal(size=(16, 7, 7)).astype(np.float32))
    maps_b = torch.from_numpy(rng.normal(size=(16, 7, 7)).astype(np.float32))
    gt = torch.from_numpy(random_boxes_gt(rng, 16))
    for fn, args in [
        (M.ciou, (maps, gt, 0.3)),
        (M.pia, (maps, 0.3)),
        (M.ciou_adaptive, (maps, gt)),
        (M.map_iou, (maps, maps_b, 0.3)),
    ]:
        cpu = fn(*args)
        gpu = fn(*[a.cuda() if isinstance(a, torch.Tensor) else a for a in args])
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-12)
    half = maps.half()
    torch.testing.assert_close(M.pia(half.cuda(), 0.3).cpu(), M.pia(half, 0.3), rtol=0, atol=0)


def test_batch_mixing_empty_full_and_partial_maps(counting_path):
    # maps settled from their native range (all below / all above) next to maps that need upsampling
    rng = np.random.default_rng(21)
    maps = dyadic_maps(rng, 6, 14)
    maps[0] = maps[0] * 0.25  # max <= 64/256 < threshold: empty
    maps[1] = 0.75 + maps[1] * 0.25  # min >= 192/256 > threshold: full
    maps[2] = 0.5  # constant, equal to the threshold: empty
    gt = random_boxes_gt(rng, 6)
    thr = 0.5
    assert_same(M.ciou(maps, gt, thr), ciou_ref(maps, gt, thr))
    assert_same(M.pia(maps, thr), pia_ref(maps, thr))
    assert M.pia(maps, thr)[:3].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("margin_sd", [-1.0, 0.0, 4.0])
@pytest.mark.parametrize("shape", [(7, 7), (5, 9), (20, 20), (224, 224), (300, 250)])
def test_adaptive_kernel_exact_whatever_its_sampled_bracket(shape, margin_sd, monkeypatch):
    """The compiled kernel brackets the M-th value from a pixel sample: a bracket that misses
    (forced by a zero or negative margin) must be widened, never change the result. GT areas from 1
    pixel to all but one, plateaus and random values."""
    monkeypatch.setattr(M, "ADAPTIVE_MARGIN_SD", margin_sd)
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    b = 12
    maps = rng.normal(size=(b, *shape)).astype(np.float32)
    maps[:4] = np.round(maps[:4] * 2) / 4  # plateaus: exact ties across rows and pieces
    maps[4] = 1.0
    gt = random_boxes_gt(rng, b)
    gt[5] = False
    gt[5, 100, 100] = True  # M = 1
    gt[6] = True
    gt[6, 0, 0] = False  # M = all but one
    gt[7] = rng.random((SIZE, SIZE)) < 0.5  # ragged, half the image
    assert_same(M.ciou_adaptive(maps, gt), adaptive_ref(maps, gt))


def _masks_from_prepared(p: M.PreparedGt) -> np.ndarray:
    """Rebuild masks from the row form, pixel by pixel: a run, or differences of prefix sums."""
    out = np.zeros(p.masks.shape, dtype=bool)
    for i in range(len(p)):
        for y in range(SIZE):
            r = p.ref[i, y]
            if r >= 0:
                out[i, y] = np.diff(p.table[r]) == 1
            else:
                out[i, y, p.run_lo[i, y] : p.run_hi[i, y]] = True
    return out


def test_prepared_gt_holds_the_masks_and_scores_the_same(counting_path):
    rng = np.random.default_rng(41)
    b = 14
    gt = random_boxes_gt(rng, b)  # unions of boxes: rows of one run and of two
    gt[0] = False
    gt[1] = True
    gt[2] = rng.random((SIZE, SIZE)) < 0.3  # ragged rows everywhere
    gt[3, ::2] = False  # alternate rows
    gt[4] = False
    gt[4, :, 223] = True  # last column only
    prepared = M.prepare_gt(gt)
    assert len(prepared) == b and prepared.area.tolist() == gt.reshape(b, -1).sum(1).tolist()
    np.testing.assert_array_equal(_masks_from_prepared(prepared), gt)
    assert (prepared.ref[:2] < 0).all() and (prepared.ref[2] >= 0).any()
    maps = dyadic_maps(rng, b, 14)
    for thr in (0.3, 0.5):
        assert torch.equal(M.ciou(maps, prepared, thr, empty_gt="zero"), M.ciou(maps, gt, thr, empty_gt="zero"))
        assert_same(M.ciou(maps, prepared, thr), ciou_ref(maps, gt, thr))
    assert_same(M.ciou_adaptive(maps, prepared), adaptive_ref(maps, gt))
    assert_same(M.ciou(maps[5:9], prepared[5:9], 0.4), ciou_ref(maps[5:9], gt[5:9], 0.4))  # a slice
    assert M.count_empty_gt(prepared) == 1
    with pytest.raises(ValueError, match="gt: batch size 14 does not match maps' batch size 3"):
        M.ciou(maps[:3], prepared, 0.5)
    with pytest.raises(ValueError, match="gt: expected a boolean mask"):
        M.prepare_gt(gt.astype(np.uint8))
    with pytest.raises(ValueError, match="only slices"):
        prepared[3]  # type: ignore[index]


def test_top_m_selection_and_sort_paths_agree():
    # the CPU path (selection) and the GPU path (stable sort) must give the same masks, ties included
    rng = np.random.default_rng(4)
    flat = torch.from_numpy((rng.integers(0, 8, size=(12, 500)) / 8).astype(np.float32))  # many ties
    area = torch.tensor([0, 1, 7, 50, 250, 499, 500, 3, 100, 2, 64, 128])
    by_sort = M._top_m_by_sort(flat, area)
    by_select = M._top_m_by_selection(flat, area)
    assert torch.equal(by_sort, by_select)
    assert by_select.sum(1).tolist() == area.tolist()


def test_auroc_against_pairwise_count():
    rng = np.random.default_rng(2)
    pos = np.round(rng.normal(1, 1, size=40), 1)  # rounding makes ties
    neg = np.round(rng.normal(0, 1, size=55), 1)
    pairs = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    assert M.auroc(pos, neg) == pytest.approx(pairs / (40 * 55), abs=1e-12)
    assert M.auroc([2, 3], [0, 1]) == 1.0 and M.auroc([0, 1], [2, 3]) == 0.0
    assert M.auroc([1, 1], [1, 1]) == 0.5


@pytest.mark.parametrize("shape", [(7, 7), (14, 14), (5, 9), (1, 3), (224, 224), (300, 250)])
def test_compiled_kernels_equal_the_tensor_code(shape, monkeypatch):
    """Random normal maps (no exact ties), box and ragged GTs, per-sample thresholds: the compiled
    CPU kernels and the tensor code count the same pixels, map by map (adaptive: the same top-M)."""
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    b = 40
    maps = rng.normal(size=(b, *shape)).astype(np.float32)
    maps_b = rng.normal(size=(b, *shape)).astype(np.float32)
    maps[:4] -= 10  # all below
    maps[4:8] += 10  # all above
    gt = random_boxes_gt(rng, b)
    gt[8:12] = rng.random((4, SIZE, SIZE)) < 0.5
    gt[12] = False
    thr = torch.from_numpy(rng.normal(0.3, 0.5, size=b))
    got = {}
    for flag in (True, False):
        monkeypatch.setattr(M, "USE_COMPILED_KERNELS", flag)
        got[flag] = (
            M.ciou(maps, gt, thr, empty_gt="zero"), M.pia(maps, thr), M.map_iou(maps, maps_b, thr),
            M.ciou_adaptive(maps, gt, empty_gt="match_empty"),
            M.ciou(maps, M.prepare_gt(gt), thr, empty_gt="zero"),
            M.ciou_adaptive(maps, M.prepare_gt(gt), empty_gt="match_empty"),
        )
    for compiled, tensor in zip(got[True], got[False]):
        assert torch.equal(compiled, tensor)
