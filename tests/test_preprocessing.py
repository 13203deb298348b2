"""What reaches each network on real media: the image after the model's own transform and the audio
window its own loader reads, through the engine's real-data path (VGG-SS layout on disk → loader →
engine datasets → model), compared with constructions written here from models.md ("Preprocessing"
of each model, and the paper-code sections) with PIL / torchvision / NumPy / SciPy calls.

The media: a 300 × 200 and a 200 × 300 JPEG and two 10 s WAVs at 16 kHz, so every geometry (squash,
short-side resize + crop, tensor resize) and every window (centred 3 s, first 10 s, 3.5–6.5 s, the
paper's rolls, whole clip) is visible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from scipy import signal
from scipy.io import wavfile

from vssl_helpers.engine import _encode_clips, _MediaSource, evaluate
from vssl_helpers.models import create_model, get_config
from vssl_helpers.models.transforms import PILShortSideCentreCrop, PILSquashResize, TensorSquashResize, to_tensor
from vssl_helpers.negatives import build_manifest, noise_waveform
from vssl_helpers.testsets.vggss import load_vggss

SR = 16000
BICUBIC = T.InterpolationMode.BICUBIC
# (id, class, width, height): one landscape and one portrait frame, of two broad categories so that
# each is the other's off-screen clip
CLIPS = [("AAAAAAAAAAA_000010", "playing cello", 300, 200), ("BBBBBBBBBBB_000020", "dog barking", 200, 300)]


# --- independent constructions (models.md) ---------------------------------------------------------


def pil_squash(img: Image.Image) -> torch.Tensor:
    """§2.3 RCGrad, §4.3 EZ-VSL, §5.3 SLAVC, §6.3 FNAC: Resize((224, 224), bicubic) on the PIL image."""
    return T.Compose([T.Resize((224, 224), interpolation=BICUBIC), T.ToTensor()])(img)


def pil_short_side_crop(img: Image.Image) -> torch.Tensor:
    """§3.3 LVS, §7.3 SSL-TIE: Resize(224) (short side, bicubic) on the PIL image, CenterCrop(224)."""
    return T.Compose([T.Resize(224, interpolation=BICUBIC), T.CenterCrop(224), T.ToTensor()])(img)


def tensor_squash(img: Image.Image) -> torch.Tensor:
    """§3.5/§4.5/§5.5/§6.5/§7.5 paper code and §8.3 SSL-Align: ToTensor, bicubic resize of the tensor
    without antialiasing (torchvision 0.14), CenterCrop(224) (no-op)."""
    x = T.ToTensor()(img)
    x = F.interpolate(x[None], size=(224, 224), mode="bicubic", align_corners=False, antialias=False)[0]
    return T.CenterCrop(224)(x)


def first(x: np.ndarray, seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    return np.tile(x, n // len(x) + 1)[:n]


def centred(x: np.ndarray, seconds: float) -> np.ndarray:
    """§4.3: start = duration/2 − 1.5 s."""
    n = int(seconds * SR)
    s = max(len(x) // 2 - n // 2, 0)
    return first(x[s:], seconds)


def align(x: np.ndarray) -> np.ndarray:
    """§8.3: first 10 s, then samples [56000, 104000)."""
    return first(x, 10.0)[56000:104000]


def paper_ez(x: np.ndarray) -> np.ndarray:
    """§4.5: first 10 s, rolled so the clip's centre lands at 5 s."""
    return np.roll(first(x, 10.0), int(SR * 5) - len(x) // 2)


def paper_fnac(x: np.ndarray) -> np.ndarray:
    """§6.5: first 3 s, rolled by 1.5 s·sr − T/2 (−56,000 for 10 s)."""
    return np.roll(first(x, 3.0), int(SR * 1.5) - len(x) // 2)


def whole(x: np.ndarray) -> np.ndarray:
    """§2.3 RCGrad: the whole clip."""
    return x


def first10(x: np.ndarray) -> np.ndarray:
    return first(x, 10.0)


def first3(x: np.ndarray) -> np.ndarray:
    return first(x, 3.0)


def centred3(x: np.ndarray) -> np.ndarray:
    return centred(x, 3.0)


# (model, protocol) -> (image construction, positive window, off-screen window, log-PSD (noverlap, crop)
# or None); the off-screen window is the positive one (the same function) unless the loader differs
EXPECTED: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}
for _p in ("official", "paper"):
    EXPECTED["rcgrad", _p] = (pil_squash, whole, whole, None)  # §2.5: no paper path
    EXPECTED["sslalign", _p] = (tensor_squash, align, align, (353, None))
    EXPECTED["ssltie", _p] = (pil_short_side_crop if _p == "official" else tensor_squash, first10, first10, None)
EXPECTED["lvs", "official"] = (pil_short_side_crop, first10, first10, (274, None))
EXPECTED["lvs", "paper"] = (tensor_squash, align, align, (353, None))
for _m in ("ezvsl", "slavc", "fnac"):
    EXPECTED[_m, "official"] = (pil_squash, centred3, centred3, (274, None))
# paper code: the off-screen clip is read from its start without the roll (paper-code-audit.md D7(c), D6)
EXPECTED["ezvsl", "paper"] = (tensor_squash, paper_ez, first10, (274, 200))
EXPECTED["slavc", "paper"] = EXPECTED["ezvsl", "paper"]
EXPECTED["fnac", "paper"] = (tensor_squash, paper_fnac, first3, (274, None))


def scipy_log_psd(x: np.ndarray, noverlap: int, crop: int | None) -> np.ndarray:
    """The loaders' ``log(spectrogram(x, 16000, nperseg=512, noverlap) + 1e-7) / 12``, centre-cropped."""
    _, _, p = signal.spectrogram(np.clip(x.astype(np.float64), -1, 1), SR, nperseg=512, noverlap=noverlap)
    s = np.log(p + 1e-7) / 12
    if crop is not None:
        left = int(round((s.shape[1] - crop) / 2))
        s = s[:, left : left + crop]
    return s


# --- the real-layout media --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("vggss")
    (root / "frames").mkdir()
    (root / "audio").mkdir()
    rng = np.random.default_rng(7)
    entries, images, waves = [], {}, {}
    for k, (sid, cls, w, h) in enumerate(CLIPS):
        yy, xx = np.mgrid[0:h, 0:w]
        rgb = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) % 64) * 4], axis=-1)
        rgb = np.clip(rgb + rng.integers(-20, 21, size=rgb.shape), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / "frames" / f"{sid}.jpg", quality=90)
        t = np.arange(10 * SR) / SR
        # a chirp-like tone whose pitch changes over the clip, so every window reads other samples
        wave = 0.4 * np.sin(2 * np.pi * (200 + 60 * (k + 1) * t) * t) + 0.05 * rng.standard_normal(len(t))
        wavfile.write(root / "audio" / f"{sid}.wav", SR, np.round(wave * 32767).astype(np.int16))
        entries.append({"file": sid, "class": cls, "bbox": [[0.1, 0.2, 0.6, 0.7]]})
        # decoded once more here, with PIL and SciPy, to get the same pixels and samples
        with Image.open(root / "frames" / f"{sid}.jpg") as im:
            images[sid] = im.convert("RGB")
        images[sid].load()
        sr, pcm = wavfile.read(root / "audio" / f"{sid}.wav")
        assert sr == SR and len(pcm) == 10 * SR
        waves[sid] = pcm.astype(np.float64) / 32768.0
    (root / "vggss.json").write_text(json.dumps(entries))
    ds = load_vggss(root / "vggss.json", root)
    manifest = build_manifest(ds.manifest_items(), n_seeds=1, name="vggss")
    return {"root": root, "ds": ds, "manifest": manifest, "images": images, "waves": waves}


def closest(rows: list[np.ndarray], expected: np.ndarray) -> float:
    """Smallest max-abs difference between ``expected`` and a captured row of its length (inf if none)."""
    diffs = [float(np.abs(r - expected).max()) for r in rows if r.shape == expected.shape]
    return min(diffs, default=float("inf"))


def capture(model: Any) -> dict[str, list]:
    """Record the images entering the model's normalisation and the waveforms (and spectrograms)
    entering its audio network."""
    seen: dict[str, list] = {"images": [], "visual": [], "windows": [], "specs": []}
    encode_images = model.encode_images

    def images_in(images: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        seen["images"].append(images.detach().cpu().clone())
        out = encode_images(images, gt=gt)
        seen["visual"].append(out.detach().cpu().clone())
        return out

    model.encode_images = images_in
    if hasattr(model, "frontend"):
        def hook(_m: Any, args: tuple, out: torch.Tensor) -> None:
            seen["windows"].extend(args[0].detach().double().cpu().numpy())
            seen["specs"].extend(out.detach().double().cpu().numpy()[:, 0])

        model.frontend.spectrogram.register_forward_hook(hook)
    else:  # RCGrad: the waveform enters its audio encoder (the spectrogram is inside it)
        model.audio_encoder.register_forward_pre_hook(lambda _m, args: seen["windows"].extend(args[0].detach().double().cpu().numpy()))
    return seen


@pytest.mark.parametrize("protocol", ["official", "paper"])
@pytest.mark.parametrize("name", ["rcgrad", "lvs", "ezvsl", "fnac", "slavc", "ssltie", "sslalign"])
def test_network_inputs_on_real_media(media: dict[str, Any], tmp_path: Path, name: str, protocol: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, protocol=protocol).eval()
    make_image, window, off_window, psd = EXPECTED[name, protocol]
    seen = capture(model)
    ds, manifest = media["ds"], media["manifest"]
    res = evaluate(model, ds, manifest, tmp_path / "store", batch_size=2, shard_size=2)

    # images: the model's transform of the decoded original, in manifest order
    got = torch.cat(seen["images"])
    want = torch.stack([make_image(media["images"][sid]) for sid in manifest.ids])
    assert got.shape == want.shape == (len(manifest), 3, 224, 224)
    assert float((got - want).abs().max()) <= 1e-6, f"{name}/{protocol}: image is not {make_image.__name__}"

    # audio: every window the model's own loader gives each audio type reached the network
    pre = model.config.preprocessing
    n_model = int(round(pre.sample_rate * pre.audio_seconds))
    rows = seen["windows"]
    for sid in manifest.ids:
        x = media["waves"][sid]
        assert closest(rows, window(x)) <= 1e-6, f"{name}/{protocol}: positive window of {sid}"
        assert closest(rows, off_window(x)) <= 1e-6, f"{name}/{protocol}: off-screen window of {sid}"
        if psd is not None:
            for w in (window(x), off_window(x)):
                assert closest(seen["specs"], scipy_log_psd(w, *psd)) <= 1e-6, f"{name}/{protocol}: log-PSD of {sid}"
        for s in range(manifest.n_seeds):
            noise = noise_waveform(int(manifest.noise_seed(sid, s)), n_model).astype(np.float64)
            assert closest(rows, window(noise)) <= 1e-6, f"{name}/{protocol}: noise window of {sid}, seed {s}"
    assert closest(rows, window(np.zeros(n_model))) == 0.0, f"{name}/{protocol}: silence"

    # where the off-screen window differs, the stored maps pair each image with the right embedding:
    # positives through encode_audio, off-screen clips through encode_offscreen_audio, of whole clips
    # (elsewhere both are encode_audio, and tests/test_engine.py checks the pairing)
    assert model.offscreen_window_differs == (window is not off_window)
    if model.offscreen_window_differs:
        visual = torch.cat(seen["visual"])
        whole = {sid: torch.from_numpy(media["waves"][sid]).float()[None] for sid in manifest.ids}
        with torch.no_grad():
            for i, sid in enumerate(manifest.ids):
                pos = model.similarity(visual[i : i + 1], model.encode_audio(whole[sid]))[0]
                torch.testing.assert_close(res.maps.positive[i], pos, atol=1e-5, rtol=0)
                other = manifest.offscreen_clip(sid, 0).id
                off = model.similarity(visual[i : i + 1], model.encode_offscreen_audio(whole[other]))[0]
                torch.testing.assert_close(res.maps.offscreen[0, i], off, atol=1e-5, rtol=0)
                x = media["waves"][other]
                if not np.array_equal(window(x), off_window(x)):  # EZ-VSL/SLAVC: the roll is 0 for 10 s clips
                    wrong = model.similarity(visual[i : i + 1], model.encode_audio(whole[other]))[0]
                    gap = float((res.maps.offscreen[0, i] - wrong).abs().max())
                    assert gap > 1e-4, f"off-screen clip read like a positive (max map difference {gap:.2g})"


def test_fnac_paper_windows_are_the_paper_codes(media: dict[str, Any]) -> None:
    """audit D6/D7(c): FNAC's paper positive is the first 3 s rolled by −56,000 samples, its
    off-screen clip the first 3 s unrolled; a crop before the window (the old engine) loses the roll."""
    model = create_model("fnac", protocol="paper")
    assert model.offscreen_window_differs and not create_model("fnac").offscreen_window_differs
    x = media["waves"][CLIPS[0][0]]
    clip = torch.from_numpy(x)[None]
    fe = model.frontend
    pos = fe.window(clip, SR)[0].numpy()
    off = fe.offscreen_window(clip, SR)[0].numpy()
    np.testing.assert_array_equal(pos, np.roll(x[:48000], -56000))
    np.testing.assert_array_equal(off, x[:48000])
    assert np.abs(pos - off).max() > 0.1
    spec = fe(clip)[0, 0].double().numpy()
    assert np.abs(spec - scipy_log_psd(np.roll(x[:48000], -56000), 274, None)).max() <= 1e-6
    spec_off = fe.offscreen(clip)[0, 0].double().numpy()
    assert np.abs(spec_off - scipy_log_psd(x[:48000], 274, None)).max() <= 1e-6


@pytest.mark.parametrize("transform", [PILSquashResize(224), PILSquashResize(112, "bilinear"), PILShortSideCentreCrop(224),
                                       TensorSquashResize(224)])
def test_transform_is_identity_at_model_size(transform: Any) -> None:
    """Synthetic images are rendered at the model's size: every transform must pass them unchanged."""
    rgb = np.random.default_rng(1).integers(0, 256, size=(transform.size, transform.size, 3), dtype=np.uint8)
    out = transform(rgb)
    assert out.dtype == torch.float32 and out.shape == (3, transform.size, transform.size)
    assert torch.equal(out, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0)
    assert torch.equal(transform(Image.fromarray(rgb)), out)


def test_every_model_config_carries_its_transform() -> None:
    """The transform of each (model, protocol) is the one models.md gives, and describe() says so."""
    kinds = {pil_squash: PILSquashResize, pil_short_side_crop: PILShortSideCentreCrop, tensor_squash: TensorSquashResize}
    for (name, protocol), (make_image, *_rest) in EXPECTED.items():
        t = create_model(name, protocol=protocol).config.preprocessing.image_transform
        assert type(t) is kinds[make_image], (name, protocol)
        assert t.size == 224 and getattr(t, "resample", "bicubic") == "bicubic", (name, protocol)
        assert "224" in t.describe()
    assert get_config("demo-ezvsl").preprocessing.image_transform == PILSquashResize(112, "bilinear")
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        PILSquashResize(224)(np.zeros((4, 4), np.float32))


def test_media_source_reads_whole_clips_and_decoded_images(media: dict[str, Any]) -> None:
    src = _MediaSource(media["ds"], get_config("ezvsl").preprocessing)
    sid, _, w, h = CLIPS[1]
    j = src.index[sid]
    assert src.decoded_image(j).shape == (h, w, 3)
    np.testing.assert_array_equal(src.decoded_image(j), np.asarray(media["images"][sid]))
    np.testing.assert_allclose(src.audio(j), media["waves"][sid], atol=0)  # 10 s, not the model's 3 s
    assert src.n_audio == 3 * SR
    assert torch.equal(src.image(j), pil_squash(media["images"][sid]))


def test_clips_of_different_lengths_are_encoded_by_length_group() -> None:
    calls: list[tuple[int, int]] = []

    def encode(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return torch.stack([x.sum(dim=1), torch.full((x.shape[0],), float(x.shape[1]))], dim=1)

    clips = [torch.full((n,), float(k)) for k, n in enumerate([5, 7, 5, 9, 7])]
    out = _encode_clips(encode, clips, torch.device("cpu"))
    want = torch.tensor([[k * n, n] for k, n in enumerate([5, 7, 5, 9, 7])], dtype=torch.float32)
    assert torch.equal(out, want), "rows stay in input order"
    assert sorted(calls) == [(1, 9), (2, 5), (2, 7)]
    calls.clear()
    _encode_clips(encode, [torch.ones(4)] * 3, torch.device("cpu"))
    assert calls == [(3, 4)], "equal lengths: one batched call"


def test_to_tensor_matches_torchvision() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    assert torch.equal(to_tensor(rgb), T.ToTensor()(rgb))


def test_figures_show_each_models_view_on_the_gt_frame(media: dict[str, Any]) -> None:
    """Fig. 2 draws, per model row, the image that model saw, stretched over the 224 × 224 GT frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vssl_helpers.report.figures import plot_qualitative_grid

    sid = CLIPS[0][0]
    decoded = np.asarray(media["images"][sid])
    views = {m: get_config(m).preprocessing.image_transform.view(decoded) for m in ("lvs", "demo-ezvsl")}
    assert views["lvs"].shape == (224, 224, 3) and views["demo-ezvsl"].shape == (112, 112, 3)
    np.testing.assert_allclose(views["lvs"], pil_short_side_crop(media["images"][sid]).permute(1, 2, 0).numpy(), atol=1e-6)
    maps = {m: {"positive": torch.rand(7, 7), "silence": torch.rand(7, 7)} for m in views}
    fig = plot_qualitative_grid(maps, {m: 0.5 for m in views}, views, gt=np.ones((224, 224), bool))
    try:
        for r, m in enumerate(views):
            for ax in fig.axes[3 * r : 3 * r + 3]:
                shown = ax.get_images()[0]
                assert shown.get_array().shape == views[m].shape, m
                assert tuple(shown.get_extent()) == (-0.5, 223.5, 223.5, -0.5)
    finally:
        plt.close(fig)
