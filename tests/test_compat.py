"""Reference-code compatibility mode (vssl_helpers.compat) and the unrounded threshold.

Every expected value here is computed by hand in the test (or by an independent formula: scipy's
spectrogram, a per-pixel bilinear loop), not by the code under test.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.signal
import torch
import torchaudio

from vssl_helpers import compat as C
from vssl_helpers import metrics as M
from vssl_helpers.cli import main
from vssl_helpers.models.audio_frontends import MelDB, ScipyLogPSD
from vssl_helpers.models.demo import LogMel
from vssl_helpers.negatives import noise_waveform

N = 224 * 224


@pytest.fixture(params=["compiled", "tensor"])
def counting_path(request, monkeypatch):
    """Run a test through the compiled CPU kernels and through the tensor code (the CUDA path)."""
    monkeypatch.setattr(M, "USE_COMPILED_KERNELS", request.param == "compiled")
    return request.param


def box_gt(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    g = torch.zeros(1, 224, 224, dtype=torch.bool)
    g[0, y0:y1, x0:x1] = True
    return g


# ---------------------------------------------------------------- item 5: the threshold is not rounded
@pytest.mark.parametrize("size", [7, 14, 224])
def test_flat_map_at_threshold_plus_minus_1e9_is_exact(size, counting_path):
    """0.5 ± 1e-9 rounds to 0.5 in float32; compared unrounded, a flat 0.5 map is all on just below
    and all off just above."""
    maps = torch.full((1, size, size), 0.5)
    gt = box_gt(100, 150, 50, 200)  # 7,500 pixels
    for t, on in ((0.5 - 1e-9, True), (0.5 + 1e-9, False)):
        assert float(M.pia(maps, t)[0]) == (1.0 if on else 0.0)
        assert float(M.ciou(maps, gt, t)[0]) == (7500 / N if on else 0.0)
        assert float(M.ciou(maps, M.prepare_gt(gt), t)[0]) == (7500 / N if on else 0.0)
        assert float(M.map_iou(maps, maps, t)[0]) == 1.0


def test_almost_flat_map_counts_runs_with_the_unrounded_threshold(counting_path):
    """A 14 x 14 map at 0.5 except cell (0, 0) = 0 (not flat, so the run counting runs): with the
    half-pixel upsampler (scale 16) cell (0, 0) has weight in output rows/columns 0..23 only
    (source coordinate (i + 0.5)/16 - 0.5 < 1), so 224² - 24² pixels are exactly 0.5."""
    maps = torch.full((1, 14, 14), 0.5)
    maps[0, 0, 0] = 0.0
    gt = box_gt(100, 150, 50, 200)
    active = N - 24 * 24
    assert float(M.pia(maps, 0.5 - 1e-9)[0]) == active / N
    assert float(M.pia(maps, 0.5 + 1e-9)[0]) == 0.0
    assert float(M.ciou(maps, gt, 0.5 - 1e-9)[0]) == 7500 / active
    assert float(M.ciou(maps, gt, 0.5 + 1e-9)[0]) == 0.0
    other = maps.clone()
    other[0, 13, 13] = 0.0  # the opposite corner: 24 x 24 more pixels off there
    assert float(M.map_iou(maps, other, 0.5 - 1e-9)[0]) == (N - 2 * 576) / (N - 576)


# ---------------------------------------------------------------- switches, preset, lineages
def test_switch_names_and_reference_preset():
    assert set(C.REFERENCE_PRESET) == set(C.SWITCHES) - {"geq_binarize"}
    assert C.parse_switches(True) == frozenset(C.REFERENCE_PRESET)
    assert C.parse_switches(None) == frozenset()
    with pytest.raises(ValueError, match="unknown compat switch 'nope'; known switches: tau_grid"):
        C.parse_switches(["tau_grid", "nope"])


@pytest.mark.parametrize(
    "model, testset, align, unlogged, unclipped",
    [
        ("ezvsl", "vggss", True, True, True), ("ezvsl", "is3", True, True, True),
        ("slavc", "vggss", True, True, True), ("fnac", "is3", True, True, True),
        ("lvs", "vggss", False, False, True), ("lvs", "is3", True, False, True),
        ("sslalign", "is3", True, False, True), ("ssltie", "vggss", False, True, True),
        ("rcgrad", "vggss", False, False, False),
        ("demo-ezvsl", "vggss", True, True, True), ("demo-negaware", "vggss", True, True, True),
        ("demo-lvs", "vggss", False, False, True), ("demo-lvs", "is3", True, False, True),
        ("demo-saliency", "vggss", False, False, False),
    ],
)
def test_where_each_switch_applies(model, testset, align, unlogged, unclipped):
    c = C.Compat.create(True, model, testset)
    assert c.on("align_corners_positive") is align
    assert c.on("silence_unlogged") is unlogged and c.on("noise_unlogged") is unlogged
    assert c.on("noise_unclipped") is unclipped
    for name in ("tau_grid", "adaptive_cut", "empty_gt_rules"):  # evaluator-level: every model
        assert c.on(name)
    assert not c.on("geq_binarize")  # not in the preset
    rec = c.record()
    assert list(rec["switches"]) == list(C.SWITCHES) and rec["reference_preset"]


def test_testset_kind_of_synthetic_and_real_sets():
    assert C.testset_kind(SimpleNamespace(name="is3")) == "is3"
    assert C.testset_kind(SimpleNamespace(name="vggss")) == "vggss"
    assert C.testset_kind(SimpleNamespace(name="synthetic", config=SimpleNamespace(sources=2))) == "is3"
    assert C.testset_kind(SimpleNamespace(name="synthetic", config=SimpleNamespace(sources=1))) == "vggss"


# ---------------------------------------------------------------- tau grid (M7)
def test_auc_with_the_float_grid_at_iou_exactly_0_15():
    """One sample, IoU 0.15 = 3/20. Exact grid: s = 1 at tau 0, .05, .1, .15 -> AUC = 3 x 0.05 +
    0.05 / 2 = 0.175. Paper grid: 0.05 * 3 = 0.15000000000000002 > 0.15, so s(tau_3) = 0 ->
    AUC = 0.1 + (0.15000000000000002 - 0.1) / 2."""
    iou = torch.tensor([3 / 20], dtype=torch.float64)
    assert 0.05 * 3 > 0.15 and 3 / 20 == 0.15
    assert M.auc(iou) == pytest.approx(0.175, abs=1e-15)
    want = 0.1 + (0.05 * 3 - 0.05 * 2) / 2
    sc = C.Scorer(C.Compat.create(["tau_grid"], "demo-ezvsl"))
    assert sc.auc(iou) == pytest.approx(want, abs=1e-15)
    assert sc.auc(iou) == pytest.approx(0.125, abs=1e-12)
    # AUC_N: pIA 0.15 succeeds at tau_3 on both grids (<=)
    assert sc.auc_n(iou) == pytest.approx(M.auc_n(iou), abs=1e-12)
    # an IoU of exactly 0.15 obtained from pixel counts: 3 of 20 GT pixels active, nothing outside
    maps = torch.zeros(1, 224, 224)
    maps[0, 0, :3] = 1.0
    gt = box_gt(0, 1, 0, 20)
    assert float(M.ciou(maps, gt, 0.5)[0]) == 0.15


# ---------------------------------------------------------------- adaptive cut (M5)
def raster_map() -> torch.Tensor:
    return torch.arange(N, dtype=torch.float32).view(1, 224, 224)  # value = raster index, exact


def test_adaptive_cut_activates_m_minus_1_and_fewer_on_ties():
    gt = box_gt(223, 224, 124, 224)  # the last 100 pixels: the 100 highest values
    m = raster_map()
    assert float(C.adaptive_cut_iou(m, gt)[0]) == 99 / 100  # theta = sorted[N-100] = N-100, '>' keeps 99
    assert float(C.adaptive_cut_iou(m, gt, geq=True)[0]) == 1.0  # '>=' keeps 100
    assert float(M.ciou_adaptive(m, gt)[0]) == 1.0  # the companion: exactly M
    tied = m.clone().view(-1)
    tied[N - 100 : N - 89] = N - 100  # ranks N-100..N-90 tie with the cut value
    tied = tied.view(1, 224, 224)
    assert float(C.adaptive_cut_iou(tied, gt)[0]) == 89 / 100
    assert float(C.adaptive_cut_iou(tied, gt, geq=True)[0]) == 1.0
    const = torch.full((1, 224, 224), 0.3)
    assert float(C.adaptive_cut_iou(const, gt)[0]) == 0.0  # no pixel: 0 / 100


def test_adaptive_cut_empty_gt_uses_half_the_image():
    empty = torch.zeros(1, 224, 224, dtype=torch.bool)
    # M = N/2: theta = sorted[N/2] = 25088, pixels 25089..N-1 active (25,087), IoU 0 / 25087 = 0
    assert float(C.adaptive_cut_iou(raster_map(), empty)[0]) == 0.0
    # a constant map: nothing active, 0/0 = NaN as in the paper code
    assert math.isnan(float(C.adaptive_cut_iou(torch.full((1, 224, 224), 0.3), empty)[0]))


def test_scorer_adaptive_cut_and_empty_rules_on_stored_maps():
    m = torch.cat([raster_map(), torch.full((1, 224, 224), 0.3), raster_map()])
    gt = torch.cat([box_gt(223, 224, 124, 224), torch.zeros(1, 224, 224, dtype=torch.bool), box_gt(223, 224, 124, 224)])
    rows = M.prepare_gt(gt)
    cut = C.Scorer(C.Compat.create(["adaptive_cut"], "demo-ezvsl"))
    v = cut.ciou_adaptive(m, gt, rows, "exclude").numpy()
    assert v[0] == 0.99 and math.isnan(v[1]) and v[2] == 0.99
    assert cut.success_rate(torch.from_numpy(v)) == 1.0  # NaN skipped without empty_gt_rules
    both = C.Scorer(C.Compat.create(["adaptive_cut", "empty_gt_rules"], "demo-ezvsl"))
    v = both.ciou_adaptive(m, gt, rows, "exclude")
    assert math.isnan(float(v[1]))  # constant map, empty GT: 0/0
    assert both.success_rate(v) == pytest.approx(2 / 3)  # NaN counted as a failure


# ---------------------------------------------------------------- empty-GT rules
def test_empty_gt_rules_at_the_universal_threshold_and_in_aggregates():
    maps = torch.zeros(2, 224, 224)
    maps[:, 10:20, 10:20] = 1.0  # 100 active pixels
    gt = torch.zeros(2, 224, 224, dtype=torch.bool)
    gt[0, 10:20, 10:30] = True  # 200 pixels, 100 of them active: IoU 0.5; sample 1: empty GT
    rows = M.prepare_gt(gt)
    default = C.Scorer(None).ciou(maps, rows, 0.5, "exclude").numpy()
    assert default[0] == 0.5 and math.isnan(default[1])
    rules = C.Scorer(C.Compat.create(["empty_gt_rules"], "demo-ezvsl"))
    assert rules.ciou(maps, rows, 0.5, "exclude").tolist() == [0.5, 0.0]  # the paper code's NaN -> 0
    vals = torch.tensor([1.0, float("nan")], dtype=torch.float64)
    assert M.success_rate(vals) == 1.0 and rules.success_rate(vals) == 0.5
    # AUC: the NaN sample never succeeds: half of the default curve
    assert rules.auc(vals) == pytest.approx(M.auc(vals) / 2, abs=1e-15)
    assert math.isnan(rules.mean_iou(vals)) and M.mean_iou(vals) == 1.0
    # adaptive without the cut: top-0 of an empty GT activates nothing, 0/0 = NaN
    adap = rules.ciou_adaptive(maps, gt, rows, "exclude")
    # sample 0: the top 200 are the 100 ones and the first 100 zeros in raster order (row 0, outside
    # the GT): 100 / 300
    assert float(adap[0]) == pytest.approx(1 / 3, abs=1e-15) and math.isnan(float(adap[1]))


def test_harmonic_mean_of_zeros_is_nan_in_compat_mode():
    rules = C.Scorer(C.Compat.create(["empty_gt_rules"], "demo-ezvsl"))
    assert math.isnan(rules.f_loc(0.0, {"silence": 1.0, "noise": 1.0, "offscreen": 1.0}))
    assert math.isnan(rules.f_auc(0.0, [0.0, 0.0, 0.0]))
    assert M.f_loc(0.0, [1.0, 1.0, 1.0]) == 0.0
    assert rules.f_loc(0.5, [0.5, 0.5, 0.5]) == pytest.approx(0.5)  # 2 * .5 * .5 / 1


# ---------------------------------------------------------------- align-corners upsampling (M12)
def bilinear_align_corners(m: np.ndarray, size: int = 224) -> np.ndarray:
    """Per-pixel reference: source coordinate i (h - 1) / (size - 1)."""
    h, w = m.shape
    out = np.empty((size, size))
    for i in range(size):
        y = i * (h - 1) / (size - 1)
        y0 = min(int(np.floor(y)), h - 1)
        y1 = min(y0 + 1, h - 1)
        ty = y - y0
        for j in range(size):
            x = j * (w - 1) / (size - 1)
            x0 = min(int(np.floor(x)), w - 1)
            x1 = min(x0 + 1, w - 1)
            tx = x - x0
            top = (1 - tx) * m[y0, x0] + tx * m[y0, x1]
            bot = (1 - tx) * m[y1, x0] + tx * m[y1, x1]
            out[i, j] = (1 - ty) * top + ty * bot
    return out


def test_align_corners_upsampling_against_brute_force():
    rng = np.random.default_rng(3)
    m = rng.random((2, 7, 7)).astype(np.float32)
    up = C.upsample_align_corners(torch.from_numpy(m)).numpy()
    for i in range(2):
        np.testing.assert_allclose(up[i], bilinear_align_corners(m[i].astype(np.float64)), atol=1e-6)
        # corners on corners (interior source pixels fall between output pixels: 223 is prime)
        assert up[i][0, 0] == m[i][0, 0] and up[i][-1, -1] == m[i][-1, -1] and up[i][0, -1] == m[i][0, -1]
    # the scorer binarises the align-corners map for positives only
    gt = box_gt(30, 120, 40, 200)
    thr = float(np.quantile(m[0], 0.7))
    sc = C.Scorer(C.Compat.create(["align_corners_positive"], "demo-ezvsl", "vggss"))
    want = []
    for i in range(2):
        act = bilinear_align_corners(m[i].astype(np.float64)) > thr
        want.append((act & gt[0].numpy()).sum() / (act | gt[0].numpy()).sum())
    got = sc.ciou(torch.from_numpy(m), M.prepare_gt(gt.expand(2, -1, -1).clone()), thr, "exclude").numpy()
    np.testing.assert_allclose(got, want, atol=2e-4)  # float32 F.interpolate vs float64 loop: boundary pixels
    lvs = C.Scorer(C.Compat.create(["align_corners_positive"], "demo-lvs", "vggss"))  # LVS: IS3 only
    rows = M.prepare_gt(gt.expand(2, -1, -1).clone())
    assert torch.equal(lvs.ciou(torch.from_numpy(m), rows, thr, "exclude"), M.ciou(torch.from_numpy(m), rows, thr))
    # pos vs neg: positive align-corners, negative cv2-style (the paper code's Fig. 3 bias)
    neg = torch.from_numpy(m)
    iou = sc.map_iou(torch.from_numpy(m), neg, thr, a_positive=True).numpy()
    for i in range(2):
        a = bilinear_align_corners(m[i].astype(np.float64)) > thr
        b = M.upsample(neg[i : i + 1]).double().numpy()[0] > thr
        assert iou[i] == pytest.approx((a & b).sum() / (a | b).sum(), abs=2e-3)
    assert torch.equal(sc.map_iou(neg, neg, thr), M.map_iou(neg, neg, thr))  # neg vs neg unchanged


# ---------------------------------------------------------------- >= (original LVS evaluators)
def test_geq_binarize_activates_pixels_equal_to_the_threshold(counting_path):
    maps = torch.zeros(1, 224, 224)
    maps[0, :10, :10] = 0.5  # 100 pixels exactly at the threshold
    maps[0, 50, :7] = 0.75  # 7 above
    sc = C.Scorer(C.Compat.create(["geq_binarize"], "demo-lvs"))
    assert float(M.pia(maps, 0.5)[0]) * N == 7
    assert float(sc.pia(maps, 0.5)[0]) * N == 107
    native = torch.full((1, 7, 7), 0.5)  # a flat native map at the threshold: empty with '>', full with '>='
    assert float(sc.pia(native, 0.5)[0]) == 1.0 and float(M.pia(native, 0.5)[0]) == 0.0


# ---------------------------------------------------------------- audio switches (D1, D2, D3)
class _Holder(torch.nn.Module):
    def __init__(self, frontend: torch.nn.Module) -> None:
        super().__init__()
        self.frontend = frontend


def test_unlogged_and_unclipped_noise_against_scipy_spectrogram():
    sr = 16000
    wave = noise_waveform(12345, 3 * sr, clip=False)
    clipped = noise_waveform(12345, 3 * sr)
    assert np.abs(wave).max() > 2.0 and np.array_equal(np.clip(wave, -1, 1), clipped)  # same draws
    _, _, psd = scipy.signal.spectrogram(wave.astype(np.float64), fs=sr, nperseg=512, noverlap=274)
    _, _, psd_clip = scipy.signal.spectrogram(np.clip(wave, -1, 1).astype(np.float64), fs=sr, nperseg=512, noverlap=274)
    model = _Holder(ScipyLogPSD(sr, 512, 274))
    x = torch.from_numpy(wave).unsqueeze(0)
    ez = C.Compat.create(True, "ezvsl")
    with C.negative_frontend(model, "noise", ez):
        got = model.frontend(x)[0, 0].double().numpy()
    np.testing.assert_allclose(got, psd / 12, rtol=1e-5, atol=1e-12)  # not logged, not clipped
    only_log = C.Compat.create(["noise_unlogged"], "ezvsl")
    with C.negative_frontend(model, "noise", only_log):
        got = model.frontend(x)[0, 0].double().numpy()
    np.testing.assert_allclose(got, psd_clip / 12, rtol=1e-5, atol=1e-12)  # the clamp still applies
    np.testing.assert_allclose(model.frontend(x)[0, 0].double().numpy(), np.log(psd_clip + 1e-7) / 12, atol=1e-5)  # restored
    # silence: the all-zero input of the EZ-VSL loader instead of log(1e-7)/12
    zeros = torch.zeros(1, 3 * sr)
    with C.negative_frontend(model, "silence", ez):
        assert torch.equal(model.frontend(zeros), torch.zeros_like(model.frontend(zeros)))
    assert torch.allclose(model.frontend(zeros), torch.full((1,), math.log(1e-7) / 12))
    # the LVS loader logs every negative: only the clamp goes
    lvs = C.Compat.create(True, "lvs")
    with C.negative_frontend(model, "noise", lvs):
        got = model.frontend(x)[0, 0].double().numpy()
    np.testing.assert_allclose(got, np.log(psd + 1e-7) / 12, atol=1e-5)


def test_ssltie_mel_power_and_demo_log_mel_unlogged():
    sr = 16000
    wave = torch.from_numpy(noise_waveform(7, sr, clip=False)).unsqueeze(0)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=sr, n_fft=512, hop_length=239, n_mels=257, normalized=True)
    tie = _Holder(MelDB(sr))
    with C.negative_frontend(tie, "noise", C.Compat.create(True, "ssltie")):
        got = tie.frontend(wave)[:, 0]
    assert torch.allclose(got, mel(wave), rtol=1e-5, atol=1e-6)  # mel power, not dB
    demo = _Holder(LogMel())
    demo_mel = demo.frontend.mel
    x = wave[:, : 2 * sr] if wave.shape[1] >= 2 * sr else torch.cat([wave, wave], 1)[:, : 2 * sr]
    with C.negative_frontend(demo, "noise", C.Compat.create(True, "demo-ezvsl")):
        got = demo.frontend(x)[:, 0]
    assert torch.allclose(got, (demo_mel(x) + 40.0) / 20.0)
    with C.negative_frontend(demo, "noise", C.Compat.create(True, "demo-lvs")):  # LVS lineage: logged
        assert torch.allclose(demo.frontend(x), LogMel()(x))


# ---------------------------------------------------------------- store key, results file, CLI
def test_store_key_changes_only_for_effective_audio_switches():
    from vssl_helpers.engine import store_key
    from vssl_helpers.models import create_model

    manifest = SimpleNamespace(sha256="0" * 64)
    ez = create_model("demo-random", seed=0)
    base = store_key(ez, manifest, data="d")
    assert store_key(ez, manifest, data="d", compat=C.Compat.create(["tau_grid", "adaptive_cut", "empty_gt_rules",
                                                                     "align_corners_positive", "geq_binarize"], "demo-random")) == base
    assert store_key(ez, manifest, data="d", compat=C.Compat.create(["noise_unlogged"], "demo-random")) != base
    assert store_key(ez, manifest, data="d", compat=C.Compat.create(["noise_unlogged"], "demo-random")) != \
        store_key(ez, manifest, data="d", compat=C.Compat.create(["noise_unclipped"], "demo-random"))
    # demo-lvs follows LVS: its loader logs every negative, so noise_unlogged changes nothing there
    lvs = create_model("demo-lvs", pretrained=False)
    assert store_key(lvs, manifest, data="d", compat=C.Compat.create(["noise_unlogged"], "demo-lvs")) == store_key(lvs, manifest, data="d")


SMALL = ["--model", "demo-random", "--testset", "synthetic", "--n-images", "8", "--seeds", "2", "--no-progress"]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VSSL_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_cli_compat_results_file_lists_switches_and_table_marks_rows(cache, capsys):
    store = str(cache / "s")
    plain, ref, one = cache / "plain.json", cache / "ref.json", cache / "one.json"
    assert main(["evaluate", *SMALL, "--store", store, "--out", str(plain)]) == 0
    assert main(["evaluate", *SMALL, "--store", store, "--compat", "--out", str(ref)]) == 0
    assert "COMPATIBILITY MODE" in capsys.readouterr().out
    assert main(["evaluate", *SMALL, "--store", store, "--compat-switch", "tau_grid", "--compat-switch",
                 "geq_binarize", "--out", str(one)]) == 0
    r_plain, r_ref, r_one = (json.loads(p.read_text()) for p in (plain, ref, one))
    assert r_plain["compat"]["switches"] == {n: False for n in C.SWITCHES}
    assert r_ref["compat"]["switches"] == {n: n != "geq_binarize" for n in C.SWITCHES}
    assert r_one["compat"]["switches"] == {n: n in ("tau_grid", "geq_binarize") for n in C.SWITCHES}
    # metric-only switches reuse the stored maps; the reference preset has audio switches: new maps
    assert r_one["store"]["run"] == r_plain["store"]["run"] and r_one["store"]["shards"]["computed"] == 0
    assert r_ref["store"]["run"] != r_plain["store"]["run"]
    assert r_ref["compat"]["lineage"] == "ezvsl"  # demo-random follows EZ-VSL
    capsys.readouterr()
    assert main(["table", str(plain), str(ref), str(one)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "compat" in lines[0]
    assert " - " in lines[1] and "reference" in lines[2] and "tau_grid+geq_binarize" in lines[3]


def test_cli_unknown_switch_lists_the_names(cache, capsys):
    assert main(["evaluate", *SMALL, "--compat-switch", "no_such"]) == 2
    err = capsys.readouterr().err
    assert "--compat-switch: unknown compat switch 'no_such'" in err and "noise_unclipped" in err


def test_book_config_compat_key(tmp_path):
    from vssl_helpers.report.runs import BookConfigError, book_config_from_dict

    base = {"testsets": {"vggss": {"data_root": str(tmp_path)}}, "models": {"ezvsl": None}}
    assert book_config_from_dict(base).compat == ()
    assert set(book_config_from_dict({**base, "compat": True}).compat) == set(C.REFERENCE_PRESET)
    assert book_config_from_dict({**base, "compat": ["geq_binarize"]}).compat == ("geq_binarize",)
    with pytest.raises(BookConfigError, match="compat: unknown compat switch 'x'"):
        book_config_from_dict({**base, "compat": ["x"]})
    with pytest.raises(BookConfigError, match="compat: expected true, false or a list"):
        book_config_from_dict({**base, "compat": "yes"})
    cfg = book_config_from_dict({**base, "compat": True})
    assert book_config_from_dict(cfg.to_dict()).compat == cfg.compat


# ---------------------------------------------------------------- engine and chapter consistency
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from vssl_helpers.embedded import synthetic_manifest
    from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSSL_CACHE", str(tmp_path_factory.mktemp("cache")))
        ds = SyntheticSet(SyntheticConfig(split="test", n_images=8, seed=3))
        yield ds, synthetic_manifest(ds, n_seeds=2), tmp_path_factory.mktemp("store")


def test_engine_audio_switches_equal_negative_maps_and_default_is_unchanged(tiny):
    """The stored engine's silence / noise maps under audio switches equal compat.negative_maps
    (two implementations of the same inputs); positives and off-screen maps do not move; with no
    effective switch the scoring is the default one, value for value."""
    from vssl_helpers.engine import evaluate, summarize_extended
    from vssl_helpers.models import create_model

    ds, manifest, store = tiny
    model = create_model("demo-random", seed=1)
    base = evaluate(model, ds, manifest, store)
    ref = evaluate(model, ds, manifest, store, compat=["silence_unlogged", "noise_unlogged", "noise_unclipped"])
    assert torch.equal(ref.maps.positive, base.maps.positive) and torch.equal(ref.maps.offscreen, base.maps.offscreen)
    assert not torch.allclose(ref.maps.noise, base.maps.noise)
    arr = ds.arrays(image_size=112)
    pos = {str(x): j for j, x in enumerate(arr["ids"])}
    order = np.array([pos[s] for s in manifest.ids])
    images = torch.from_numpy(arr["images"][order]).permute(0, 3, 1, 2).float() / 255.0
    cmp = C.Compat.create(["silence_unlogged", "noise_unlogged", "noise_unclipped"], "demo-random", ds)
    sil, noise = C.negative_maps(model, images, manifest.noise_seeds, 32000, cmp)
    assert torch.allclose(sil, ref.maps.silence, atol=1e-5) and torch.allclose(noise, ref.maps.noise, atol=1e-5)
    sil0, noise0 = C.negative_maps(model, images, manifest.noise_seeds, 32000, None)
    assert torch.allclose(sil0, base.maps.silence, atol=1e-5) and torch.allclose(noise0, base.maps.noise, atol=1e-5)
    # switches that mean nothing for a model without lineage: the default row exactly
    none = C.Compat.create(True, "demo-saliency", ds)
    assert none.effective == frozenset(C.SWITCHES) - {"align_corners_positive", "silence_unlogged", "noise_unlogged",
                                                      "noise_unclipped", "geq_binarize"}
    pooled, _ = summarize_extended(base.maps, base.gt, base.threshold, compat=C.Compat.create(["noise_unlogged"], "demo-saliency"))
    assert pooled == base.row


def test_effect_chapter_rows(tiny):
    from vssl_helpers.report.compat_effects import compat_effects, compat_variants, effect_table

    _, _, store = tiny  # the chapter builds the same 8-image set and manifest itself
    eff = compat_effects(["demo-random"], n_test_images=8, n_seeds=2, effect_images=6, effect_seeds=2, store=store)
    assert list(eff["variant"]) == [v for v, _ in compat_variants()]
    default = eff[eff["variant"] == "default"].iloc[0]
    assert all(default[f"d_{c}"] == 0 for c in ("ciou_uth", "pia_noise", "f_loc"))
    assert eff.set_index("variant").loc["tau_grid", "maps_reused"]
    assert not eff.set_index("variant").loc["noise_unlogged", "maps_reused"]
    assert eff["n_samples"].iloc[0] == 12
    table = effect_table(eff, "demo-random")
    assert "cIoU U.th." in table.columns and table.loc["default", "cIoU U.th."] == default["ciou_uth"]
