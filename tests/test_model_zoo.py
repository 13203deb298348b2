"""The seven official models: official checkpoint layouts, maps, front ends, refusal of bad files.

Checkpoints are random tensors in the exact official layout described by
``vssl_helpers/data/checkpoint_keys/<model>.json`` (top-level key, ``module.`` prefix, extra entries), saved to
tmp_path and read back through :func:`vssl_helpers.models.load`. Kept small for 2 busy CPU cores:
batch 2, one model build per model (cached for the module).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import signal

from vssl_helpers.models import CheckpointError, get_config, load
from vssl_helpers.models.checkpoints import load_checkpoint_into
from vssl_helpers.models.registry import create_model
from vssl_helpers.threshold import RCGRAD_RULE, ThresholdRule

# the official checkpoints' key names and shapes are shipped with the package (see data/README.md)
from official_checkpoints import KEYS_DIR, _spec, official_file, random_state  # noqa: E402,F401

MODELS = ["rcgrad", "lvs", "ezvsl", "fnac", "slavc", "ssltie", "sslalign"]
SR = 16000


_CACHE: dict[str, tuple] = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on 2 cores shared with other jobs, oversubscription made these tests
    3-4x slower (measured: 76 s with the default vs 21 s with one thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ckpts")


def loaded(name: str, ckpt_dir: Path):
    """(model, state, path): each model is built and loaded once for the whole module."""
    if name not in _CACHE:
        state = random_state(name)
        path = ckpt_dir / f"{name}.pth"
        torch.save(official_file(name, state), path)
        _CACHE[name] = (load(name, checkpoint=path, device="cpu"), state, path)
    return _CACHE[name]


def test_audio(seconds: float = 4.0, n: int = 2) -> torch.Tensor:
    """Deterministic test clips: a chirp plus a little noise, different per row."""
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    g = torch.Generator().manual_seed(3)
    rows = [0.5 * torch.sin(2 * math.pi * (300 + 400 * k) * t * (1 + 0.2 * t)) + 0.05 * torch.randn(t.shape, generator=g, dtype=torch.float64) for k in range(n)]
    return torch.stack(rows).float()


test_audio.__test__ = False  # a helper, not a test


# --------------------------------------------------------------------------------------------------
# every model: load, maps, factorized == joint, determinism
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_official_layout_loads_and_maps_are_consistent(name, ckpt_dir):
    model, state, path = loaded(name, ckpt_dir)
    config = get_config(name)
    rep = model.load_report
    assert rep.missing == [] and rep.unexpected == [] and rep.sha256 == model.weights_sha256
    assert rep.top_level_key == _spec(name)["checkpoint_top_level_key"]
    if _spec(name)["checkpoint_top_level_key"]:
        assert rep.extra_entries == ["epoch", "optimizer"]
    # the weights really are the file's
    key = next(k for k in state if k.endswith("layer4.1.conv2.weight"))
    assert torch.equal(model.state_dict()[key], state[key])
    assert config.threshold_rule == (RCGRAD_RULE if name == "rcgrad" else ThresholdRule())

    torch.manual_seed(0)
    images = torch.rand(2, 3, 224, 224)
    audio = test_audio(1.5 if name == "rcgrad" else 4.0)  # RCGrad reads the whole clip: keep it short
    with torch.no_grad():
        v, a = model.encode_images(images), model.encode_audio(audio)
        every = model.similarity_all(v, a)
        paired = model.similarity(v, a)
        # the joint forward on a crossed pair (image 0, audio 1), in a batch of its own, twice
        crossed = model.joint_maps(images[:1], audio[1:2])
        crossed_again = model.joint_maps(images[:1], audio[1:2])
    h, w = config.map_size
    assert every.shape == (2, 2, h, w) and paired.shape == (2, h, w) and crossed.shape == (1, h, w)
    assert torch.isfinite(every).all()
    lo, hi = config.map_range
    assert float(every.min()) >= lo - 1e-5 and float(every.max()) <= hi + 1e-5
    assert float(every.max() - every.min()) > 0  # not a constant map
    # maps from precomputed embeddings == the joint forward (other pairing, other batch size)
    torch.testing.assert_close(every[0, 1], crossed[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(every.diagonal(dim1=0, dim2=1).permute(2, 0, 1), paired, atol=1e-5, rtol=0)
    assert torch.equal(crossed, crossed_again)  # deterministic
    assert not model.training


def test_rcgrad_closed_form_equals_autograd_gradcam(ckpt_dir):
    model, _, _ = loaded("rcgrad", ckpt_dir)
    torch.manual_seed(1)
    images = torch.rand(1, 3, 224, 224)
    audio = test_audio(1.0, n=2)
    with torch.no_grad():
        e_a2 = model.encode_audio(audio)
        e_a = e_a2[1:]
        maps = model.similarity(model.encode_images(images), e_a)
    # Grad-CAM from scratch: hook the last layer4 block, back-propagate <e_v, e_a> with e_v the
    # encoder's own global average pool, weights = spatial mean of the gradient
    enc = model.image_encoder
    acts = {}
    handle = enc.layer4[-1].register_forward_hook(lambda m, i, o: acts.setdefault("A", o))
    x = (images - model.image_mean) / model.image_std
    x = enc.maxpool(enc.relu(enc.bn1(enc.conv1(x))))
    out = enc.layer4(enc.layer3(enc.layer2(enc.layer1(x))))
    handle.remove()
    e_v = torch.flatten(enc.avgpool(out), 1)
    grads = torch.autograd.grad((e_v * e_a).sum(), acts["A"])[0]
    cam = F.relu((grads.mean(dim=(2, 3), keepdim=True) * acts["A"]).sum(1)).detach()
    flat = cam.flatten(1) - cam.flatten(1).amin(1, keepdim=True)
    ref = (flat / (flat.amax(1, keepdim=True) + 1e-7)).view_as(cam)
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=0)
    assert float(maps.amax()) <= 1.0 and float(maps.amin()) >= 0.0
    # per-clip audio statistics: a clip's embedding does not depend on its batch mates
    with torch.no_grad():
        torch.testing.assert_close(model.encode_audio(audio[1:2]), e_a, atol=1e-6, rtol=0)
    # official post-processing: [0, 1], at least half of the pixels exactly zero
    from vssl_helpers.models.rcgrad import official_postprocess

    post = official_postprocess(maps)
    assert post.shape == (1, 224, 224) and float(post.min()) == 0.0 and float(post.max()) <= 1.0
    assert ((post == 0).flatten(1).float().mean(1) >= 0.5).all()


# --------------------------------------------------------------------------------------------------
# audio front ends against independent computations
# --------------------------------------------------------------------------------------------------


def _scipy_logpsd(x: np.ndarray, noverlap: int) -> np.ndarray:
    _, _, s = signal.spectrogram(np.clip(x, -1, 1), SR, nperseg=512, noverlap=noverlap)
    return np.log(s + 1e-7) / 12.0


def test_scipy_psd_frontends_match_scipy(ckpt_dir):
    from vssl_helpers.models.audio_frontends import Frontend, ScipyLogPSD, paper_ezvsl_window, paper_fnac_window
    from vssl_helpers.models.lvs_family import _lvs_frontend

    clip = test_audio(4.0, n=1)  # 4 s: exercises tiling for the 10 s windows
    ten = test_audio(10.0, n=1) * 2.5  # 10 s and partly beyond [-1, 1]: exercises clipping
    x4, x10 = clip[0].double().numpy(), ten[0].double().numpy()
    tiled10 = np.tile(x4, 3)[: 10 * SR]

    lvs_model = loaded("lvs", ckpt_dir)[0]
    got = lvs_model.frontend(clip)[0, 0].numpy()
    assert got.shape == (257, 671)
    np.testing.assert_allclose(got, _scipy_logpsd(tiled10, 274), atol=2e-5, rtol=0)

    align = _lvs_frontend("align", SR)(ten)[0, 0].numpy()
    assert align.shape == (257, 299)
    np.testing.assert_allclose(align, _scipy_logpsd(x10[56000:104000], 353), atol=2e-5, rtol=0)

    ez = loaded("ezvsl", ckpt_dir)[0].frontend(ten)[0, 0].numpy()  # official: 3 s centred
    assert ez.shape == (257, 200)
    np.testing.assert_allclose(ez, _scipy_logpsd(x10[80000 - 24000 : 80000 + 24000], 274), atol=2e-5, rtol=0)

    paper_ez = Frontend(paper_ezvsl_window, ScipyLogPSD(SR, 512, 274, crop_frames=200), SR, "")(clip)[0, 0].numpy()
    rolled = np.roll(tiled10, 5 * SR - len(x4) // 2)
    np.testing.assert_allclose(paper_ez, _scipy_logpsd(rolled, 274)[:, 236:436], atol=2e-5, rtol=0)

    paper_fnac = Frontend(paper_fnac_window, ScipyLogPSD(SR, 512, 274), SR, "")(ten)[0, 0].numpy()
    np.testing.assert_allclose(paper_fnac, _scipy_logpsd(np.roll(x10[: 3 * SR], -56000), 274), atol=2e-5, rtol=0)


def _htk_mel_fb(n_freqs: int, n_mels: int, sr: int) -> np.ndarray:
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    m = np.linspace(mel(0.0), mel(sr / 2), n_mels + 2)
    f_pts = 700.0 * (10 ** (m / 2595.0) - 1.0)
    freqs = np.linspace(0, sr / 2, n_freqs)
    slopes = f_pts[None, :] - freqs[:, None]
    diff = np.diff(f_pts)
    down, up = -slopes[:, :-2] / diff[:-1], slopes[:, 2:] / diff[1:]
    return np.maximum(0.0, np.minimum(down, up))  # n_freqs x n_mels


def test_ssltie_mel_db_matches_numpy(ckpt_dir):
    model = loaded("ssltie", ckpt_dir)[0]
    clip = test_audio(10.0, n=1)
    got = model.frontend(clip)[0, 0].double().numpy()
    x = clip[0].double().numpy()
    xp = np.pad(x, 256, mode="reflect")
    n_frames = 1 + len(x) // 239
    frames = np.stack([xp[i * 239 : i * 239 + 512] for i in range(n_frames)])
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * win, axis=1)) ** 2 / np.sum(win**2)  # normalized=True
    mel = power @ _htk_mel_fb(257, 257, SR)
    ref = 10 * np.log10(np.maximum(mel, 1e-10)).T
    assert got.shape == ref.shape == (257, 670)
    np.testing.assert_allclose(got, ref, atol=2e-3, rtol=1e-4)
    assert int((np.ptp(got, axis=1) == 0).sum()) == 28 and float(got.min()) == -100.0  # the empty mel filters


def test_rcgrad_log_spectrogram_matches_numpy(ckpt_dir):
    model = loaded("rcgrad", ckpt_dir)[0]
    clip = test_audio(1.0, n=1)
    got = model.audio_encoder.log_spectrogram(clip)[0].double().numpy()
    x = clip[0].double().numpy()
    xp = np.pad(x, 256, mode="reflect")
    n_frames = 1 + len(x) // 353
    frames = np.stack([xp[i * 353 : i * 353 + 512] for i in range(n_frames)])
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    logp = np.log(np.abs(np.fft.rfft(frames * win, axis=1)).T ** 2 + 1e-7)
    ref = (logp - logp.mean()) / (logp.std(ddof=1) + 1e-9)
    assert got.shape == ref.shape == (257, 46)
    np.testing.assert_allclose(got, ref, atol=5e-4, rtol=0)  # float32 log of tiny powers


# --------------------------------------------------------------------------------------------------
# refusals and SSL-Align's non-strict load
# --------------------------------------------------------------------------------------------------


def test_renamed_key_and_wrong_shape_are_refused(ckpt_dir, tmp_path):
    model, state, _ = loaded("ezvsl", ckpt_dir)
    bad = dict(state)
    bad["aud_proj.wieght"] = bad.pop("aud_proj.weight")
    path = tmp_path / "renamed.pth"
    torch.save(official_file("ezvsl", bad), path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint_into(model, path)
    msg = str(e.value)
    assert "load('ezvsl')" in msg and str(path) in msg and "EZ-VSL" in msg
    assert "1 missing key(s) ['aud_proj.weight']" in msg and "1 unexpected key(s) ['aud_proj.wieght']" in msg

    bad = dict(state)
    bad["img_proj.weight"] = torch.zeros(256, 512, 1, 1)
    path = tmp_path / "shape.pth"
    torch.save(official_file("ezvsl", bad), path)
    with pytest.raises(CheckpointError, match=r"1 shape mismatch\(es\) \[img_proj.weight: file \[256, 512, 1, 1\] vs model \[512, 512, 1, 1\]\]"):
        load_checkpoint_into(model, path)
    # nothing was copied into the model by the refused loads
    assert torch.equal(model.state_dict()["aud_proj.weight"], state["aud_proj.weight"])


class Payload:
    """Stands for an arbitrary pickled Python object inside a checkpoint."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_python_object_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {"imgnet.conv1.weight": torch.zeros(1)}, "args": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"load\('lvs'\): refusing checkpoint .*evil.pth.*pickled Python objects.*weights_only=True"):
        load("lvs", checkpoint=path)
    assert "must never run" not in capsys.readouterr().out


def test_missing_top_level_key_is_named(tmp_path):
    path = tmp_path / "wrapped.pth"
    torch.save({"net": {"a": torch.zeros(1)}, "epoch": 1}, path)
    with pytest.raises(CheckpointError, match=r"no top-level key 'state_dict'.*\['epoch', 'net'\]"):
        load("ssltie", checkpoint=path)


def test_sslalign_non_strict_reports_and_refuses_large_gaps(tmp_path, ckpt_dir):
    _, state, _ = loaded("sslalign", ckpt_dir)
    model = create_model("sslalign")
    small = {k: v for k, v in state.items() if not k.endswith("fc.bias")}
    small["queue"] = torch.zeros(4)
    path = tmp_path / "ours.pth.tar"
    torch.save({"model_state_dict": small}, path)
    with pytest.warns(UserWarning, match=r"non-strict load .* ignored 1.2%: 2 missing key\(s\) \['imgnet.fc.bias', 'audnet.fc.bias'\]; 1 unexpected key\(s\) \['queue'\]"):
        rep = load_checkpoint_into(model, path)
    assert rep.missing == ["imgnet.fc.bias", "audnet.fc.bias"] and rep.unexpected == ["queue"] and not rep.strict

    half = {k: v for k, v in state.items() if k.startswith("imgnet.")}
    torch.save({"model_state_dict": half}, path)
    with pytest.raises(CheckpointError, match=r"refusing checkpoint .*ours.pth.tar: non-strict load would ignore 50.0%.*124 missing key\(s\)"):
        load_checkpoint_into(model, path)
    # the same small gap is an error when strictness is asked for
    torch.save({"model_state_dict": small}, path)
    with pytest.raises(CheckpointError, match=r"\(strict\): 2 missing key"):
        load_checkpoint_into(model, path, strict=True)


def test_no_download_and_protocol_option():
    with pytest.raises(ValueError, match="nothing is downloaded"):
        load("fnac")
    with pytest.raises(ValueError, match="pretrained=True would need a download"):
        create_model("rcgrad", pretrained=True)
    paper = create_model("ezvsl", protocol="paper")
    assert paper.config.map_units == "(cos + 1) / 2" and paper.config.map_range == (0.0, 1.0)
    assert paper.config.preprocessing.version != get_config("ezvsl").preprocessing.version
    with pytest.raises(ValueError, match="protocol must be"):
        create_model("ezvsl", protocol="nope")


def test_numpy_scalar_metadata_needs_explicit_permission(tmp_path):
    from vssl_helpers.models.checkpoints import read_state_dict

    path = tmp_path / "best.pth"
    torch.save({"model": {"module.aud_proj.bias": torch.zeros(2)}, "best_cIoU": np.float64(0.3)}, path)
    with pytest.raises(CheckpointError, match="allow_numpy_scalars=True"):
        read_state_dict(path, "ezvsl")
    state, info = read_state_dict(path, "ezvsl", allow_numpy_scalars=True)
    assert list(state) == ["aud_proj.bias"] and info["extra_entries"] == ["best_cIoU"] and info["stripped_prefix"] == 1
