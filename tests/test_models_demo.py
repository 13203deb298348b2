"""Model registry, the factorized adapter interface, and the demo models."""

from __future__ import annotations

import pytest
import torch

from vssl_helpers import metrics as M
from vssl_helpers.models import create_model, get_config, list_models, register_model
from vssl_helpers.threshold import universal_threshold

DEMOS = ["demo-ezvsl", "demo-lvs", "demo-negaware", "demo-oracle", "demo-random", "demo-saliency"]


def test_registry_lists_demo_models_and_rejects_unknown():
    assert set(DEMOS) <= set(list_models())
    with pytest.raises(ValueError, match="unknown model 'nope'; registered models: .*demo-ezvsl"):
        get_config("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_model(get_config("demo-random"))(lambda: None)


@pytest.mark.parametrize("name", ["demo-ezvsl", "demo-random"])
def test_factorized_maps_equal_joint_forward(name):
    torch.manual_seed(0)
    model = create_model(name, pretrained=False) if name != "demo-random" else create_model(name)
    images = torch.rand(5, 3, 112, 112)
    audio = torch.randn(5, 32000).clamp(-1, 1) * 0.3
    torch.set_grad_enabled(False)
    visual, emb = model.encode_images(images), model.encode_audio(audio)
    paired = model.similarity(visual, emb)
    every = model.similarity_all(visual, emb)
    joint = model.joint_maps(images, audio)
    assert paired.shape == (5, 14, 14) and every.shape == (5, 5, 14, 14)
    torch.testing.assert_close(paired, joint, atol=1e-5, rtol=0)
    torch.testing.assert_close(paired, every.diagonal(dim1=0, dim2=1).permute(2, 0, 1), atol=1e-5, rtol=0)
    # one image encoded in a batch or alone gives the same features (eval-mode BatchNorm)
    torch.testing.assert_close(model.encode_images(images[2:3]), visual[2:3], atol=1e-5, rtol=0)
    assert float(paired.abs().max()) <= 1 + 1e-5  # cosine maps
    torch.set_grad_enabled(True)


def test_audio_length_is_fitted():
    model = create_model("demo-random")
    short, long = torch.randn(2, 8000) * 0.1, torch.randn(2, 64000) * 0.1
    assert model.encode_audio(short).shape == model.encode_audio(long).shape == (2, 64)


def test_saliency_is_audio_blind_and_oracle_returns_gt():
    sal = create_model("demo-saliency")
    images = torch.rand(3, 3, 112, 112)
    v = sal.encode_images(images)
    a1, a2 = sal.encode_audio(torch.zeros(3, 100)), sal.encode_audio(torch.randn(3, 100))
    assert torch.equal(sal.similarity(v, a1), sal.similarity(v, a2))
    assert sal.config.audio_blind
    oracle = create_model("demo-oracle")
    gt = torch.zeros(3, 224, 224, dtype=torch.bool)
    gt[:, 20:80, 30:90] = True
    with pytest.raises(ValueError, match="needs the GT"):
        oracle.encode_images(images)
    maps = oracle.similarity(oracle.encode_images(images, gt=gt), oracle.encode_audio(torch.zeros(3, 10)))
    # GT coverage of each 8 x 8 cell, computed here by a plain loop
    want = torch.zeros(3, 28, 28)
    for r in range(28):
        for c in range(28):
            want[:, r, c] = gt[:, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8].float().mean(dim=(1, 2))
    torch.testing.assert_close(maps, want, atol=1e-6, rtol=0)
    # thresholded at its fixed 0.5 it recovers the box exactly (box edges on the 8-px grid here: 20..80 x 30..90
    # are not all multiples of 8, so allow the boundary)
    assert M.ciou(maps, gt, 0.5).min() > 0.9


def test_binary_maps_under_the_universal_rule_and_the_fixed_rule():
    # The oracle's maps are binary: every negative maximum is exactly 1, so the universal rule gives
    # t = 1, and with the strict '>' no pixel is active: cIoU 0 and pIA 0. Its config therefore
    # declares a fixed threshold of 0.5, under which positives score IoU 1.
    gt = torch.zeros(4, 224, 224, dtype=torch.bool)
    gt[:, 10:100, 50:120] = True
    maps = gt.float()
    t_univ = universal_threshold({k: maps.amax(dim=(1, 2)) for k in ("silence", "noise", "offscreen")})
    assert t_univ.value == 1.0
    assert M.ciou(maps, gt, t_univ.value).tolist() == [0.0] * 4
    assert M.pia(maps, t_univ.value).tolist() == [0.0] * 4
    rule = get_config("demo-oracle").threshold_rule
    assert rule.kind == "fixed" and rule.value == 0.5
    assert M.ciou(maps, gt, rule.resolve().value).tolist() == [1.0] * 4
    # audio-blind: the same map for negatives, so pIA = GT area
    assert M.pia(maps, 0.5)[0].item() == pytest.approx(90 * 70 / 224**2)


def test_random_model_is_seeded():
    a = create_model("demo-random", seed=3).state_dict()
    b = create_model("demo-random", seed=3).state_dict()
    c = create_model("demo-random", seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
