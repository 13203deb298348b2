"""LVS-style ResNet-18 and the two models that use the LVS ``AVENet`` at inference: LVS and SSL-Align.

LVS (Chen et al., CVPR 2021) and SSL-Align (Senocak et al.; kaistmm/SSLalignment, whose test script
evaluates its checkpoints with LVS's class unchanged) compute

.. math:: A_{ij} = \\cos\\big(F_v(i,j),\\ f_a\\big) = \\frac{F_v(i,j)}{\\lVert F_v(i,j)\\rVert}\\cdot
          \\frac{f_a}{\\lVert f_a\\rVert},\\qquad f_a = \\max_{u,w} F_a(u, w),

with :math:`F_v` the 512 × 14 × 14 layer4 map of the image network (layer4 stride 1) and :math:`F_a`
the layer4 map of the audio network on a 1 × 257 × frames log-PSD. Range [-1, 1], 14 × 14.

The "LVS-style" ResNet-18 is torchvision's ResNet-18 with layer4's stride set to 1 and two extra
stems: ``conv1_a`` (1 channel, used for audio) and ``conv1_flow`` (6 channels, never used); every
checkpoint carries all three stems and the unused ``fc`` 512 → 1000 (models.md §1.1).
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ..threshold import ThresholdRule
from .audio_frontends import Frontend, ScipyLogPSD, first_seconds, ssl_align_window
from .registry import DotProductMapModel, ModelConfig, Preprocessing, VSSLModel, register_model
from .transforms import PILShortSideCentreCrop, TensorSquashResize

__all__ = ["LVSResNet18", "LVSAVENet", "lvs", "sslalign", "LVS_CONFIG", "SSLALIGN_CONFIG", "IMAGENET_MEAN", "IMAGENET_STD"]

Protocol = Literal["official", "paper"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LVSResNet18(torchvision.models.ResNet):
    """ResNet-18 of LVS (``models/base_models.py``): torchvision layout and parameter names, layer4
    stride 1 (224 → 14 × 14), extra stems ``conv1_a`` (1 → 64) and ``conv1_flow`` (6 → 64)."""

    def __init__(self) -> None:
        super().__init__(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2])  # random init, no download
        # layer4 stride 1: only the first block's 3x3 conv and its 1x1 shortcut carry the stride
        self.layer4[0].conv1.stride = (1, 1)
        self.layer4[0].downsample[0].stride = (1, 1)
        self.conv1_a = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.conv1_flow = nn.Conv2d(6, 64, kernel_size=7, stride=2, padding=3, bias=False)
        for conv in (self.conv1_a, self.conv1_flow):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def feature_map(self, x: torch.Tensor, modal: Literal["vision", "audio"]) -> torch.Tensor:
        """layer4 output; ``modal='audio'`` uses the 1-channel stem ``conv1_a``, otherwise ``conv1``."""
        stem = self.conv1_a if modal == "audio" else self.conv1
        x = self.maxpool(self.relu(self.bn1(stem(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def normalise_images(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` for ``B × 3 × H × W`` images in [0, 1] (checked: a common caller error is
    passing 0–255 images)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected B x 3 x H x W images, got shape {tuple(images.shape)}")
    return (images.float() - mean) / std


class LVSAVENet(DotProductMapModel):
    """LVS's ``AVENet`` (``imgnet`` + ``audnet``), used by LVS and SSL-Align. Factorized:
    ``encode_images`` → unit 512 × 14 × 14 maps, ``encode_audio`` → unit 512-d vectors, maps =
    channel dot products."""

    def __init__(self, config: ModelConfig, frontend: Frontend) -> None:
        super().__init__()
        self.config = config
        self.imgnet = LVSResNet18()
        self.audnet = LVSResNet18()
        self.frontend = frontend
        pre = config.preprocessing
        self.register_buffer("image_mean", torch.tensor(pre.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(pre.image_std).view(1, 3, 1, 1), persistent=False)

    def encode_images(self, images: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        x = normalise_images(images, self.image_mean, self.image_std)
        return F.normalize(self.imgnet.feature_map(x, "vision"), dim=1)

    def audio_feature_map(self, waveforms: torch.Tensor) -> torch.Tensor:
        """layer4 map of the audio network (``B × 512 × 17 × frames'``)."""
        return self.audnet.feature_map(self.frontend(waveforms.to(self.image_mean.device)), "audio")

    def encode_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        # the official wrapper's global *max* pool (its attribute is misleadingly called avgpool)
        return F.normalize(self.audio_feature_map(waveforms).amax(dim=(2, 3)), dim=1)


    def joint_maps(self, images: torch.Tensor, waveforms: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        """The official forward's first output, written as in AVENet: a 1 × 1 convolution of the
        normalised visual map with the normalised audio vector of the same row."""
        v = self.encode_images(images)
        a = self.encode_audio(waveforms)
        return torch.stack([F.conv2d(v[i : i + 1], a[i].view(1, -1, 1, 1))[0, 0] for i in range(v.shape[0])])


# --------------------------------------------------------------------------------------------------
# configs and factories
# --------------------------------------------------------------------------------------------------

_LVS_TEN_SECONDS = "first 10 s (tiled if shorter), clip [-1,1], scipy PSD (periodic Tukey 0.25, nperseg 512, noverlap 274, density), log(P+1e-7)/12 -> 1 x 257 x 671 at 16 kHz"
_SSLALIGN_AUDIO = "first 10 s (tiled), samples [3.5 s, 6.5 s), clip [-1,1], scipy PSD nperseg 512, noverlap 353 (hop 159), log(P+1e-7)/12 -> 1 x 257 x 299 at 16 kHz"

_LVS_KEYS_NOTE = "248 entries: imgnet.* 124 + audnet.* 124 (three stems and fc each)"

LVS_CONFIG = ModelConfig(
    name="lvs",
    family="lvs",
    description="LVS: cosine between layer4 visual features and max-pooled audio embedding (hard-way negatives)",
    map_size=(14, 14),
    map_units="cosine",
    map_range=(-1.0, 1.0),
    threshold_rule=ThresholdRule(),
    preprocessing=Preprocessing(
        image_size=224, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, sample_rate=16000, audio_seconds=10.0, audio_frontend=_LVS_TEN_SECONDS,
        # 3: the image transform and the audio window are applied to the decoded original media
        version=3, image_transform=PILShortSideCentreCrop(224, "bicubic"),  # models.md §3.3
    ),
    checkpoint_layout={
        "display_name": "LVS",
        "top_level_key": "model_state_dict",
        "prefix": "module.",
        "file_layout": "{'model_state_dict': DataParallel state_dict with 'module.' keys, ...}",
        "strict": True,
        "num_entries": 248,
        "keys": _LVS_KEYS_NOTE,
        "weights": "README of hche11/Localizing-Visual-Sounds-the-Hard-Way (Google Drive; VGG-Sound and Flickr models)",
    },
    paper="Chen et al., Localizing Visual Sounds the Hard Way, CVPR 2021",
    code_license="Apache-2.0 (hche11/Localizing-Visual-Sounds-the-Hard-Way)",
)

SSLALIGN_CONFIG = replace(
    LVS_CONFIG,
    name="sslalign",
    family="lvs",
    description="SSL-Align: LVS AVENet with SSL-Align weights; cosine map",
    # models.md §8.3: tensor bicubic resize (the paper's code copied this loader, so both protocols)
    preprocessing=replace(LVS_CONFIG.preprocessing, audio_seconds=10.0, audio_frontend=_SSLALIGN_AUDIO, image_transform=TensorSquashResize(224)),
    checkpoint_layout={
        "display_name": "SSL-Align (LVS AVENet)",
        "top_level_key": "model_state_dict",
        "prefix": "",
        "file_layout": "{'model_state_dict': state_dict without prefix, ...}; official loader adds 'module.' and loads strict=False",
        "strict": False,
        "num_entries": 248,
        "keys": _LVS_KEYS_NOTE,
        "weights": "kaistmm/SSLalignment README (Google Drive, ours_sup_previs.pth.tar for VGGSound-144K)",
    },
    paper="Senocak et al., Sound Source Localization is All about Cross-Modal Alignment, ICCV 2023",
    code_license="none stated (kaistmm/SSLalignment has no licence file)",
)


def _lvs_frontend(kind: Literal["ten", "align"], sr: int) -> Frontend:
    if kind == "ten":
        return Frontend(partial(first_seconds, seconds=10.0), ScipyLogPSD(sr, 512, 274), sr, _LVS_TEN_SECONDS)
    return Frontend(ssl_align_window, ScipyLogPSD(sr, 512, 353), sr, _SSLALIGN_AUDIO)


@register_model(LVS_CONFIG)
def lvs(pretrained: bool | str | os.PathLike = False, protocol: Protocol = "official") -> VSSLModel:
    """LVS. ``protocol='official'``: the LVS repository's audio (first 10 s, hop 238, 257 × 671) and
    image geometry (short-side resize + centre crop). ``protocol='paper'``: the paper code's choices,
    SSL-Align's audio (3.5–6.5 s, hop 159, 257 × 299) and a squashing tensor resize (models.md §3.5)."""
    from .checkpoints import apply_pretrained

    if protocol == "official":
        config, frontend = LVS_CONFIG, _lvs_frontend("ten", 16000)
    elif protocol == "paper":
        pre = replace(LVS_CONFIG.preprocessing, audio_frontend=_SSLALIGN_AUDIO + " (paper code)", version=4,
                      image_transform=TensorSquashResize(224))  # models.md §3.5
        config, frontend = replace(LVS_CONFIG, preprocessing=pre), _lvs_frontend("align", 16000)
    else:
        raise ValueError(f"lvs: protocol must be 'official' or 'paper', got {protocol!r}")
    return apply_pretrained(LVSAVENet(config, frontend), pretrained)


@register_model(SSLALIGN_CONFIG)
def sslalign(pretrained: bool | str | os.PathLike = False, protocol: Protocol = "official") -> VSSLModel:
    """SSL-Align. Official and paper preprocessing are the same (the paper code copied SSL-Align's
    loader); ``protocol`` is accepted for a uniform interface."""
    from .checkpoints import apply_pretrained

    if protocol not in ("official", "paper"):
        raise ValueError(f"sslalign: protocol must be 'official' or 'paper', got {protocol!r}")
    return apply_pretrained(LVSAVENet(SSLALIGN_CONFIG, _lvs_frontend("align", 16000)), pretrained)
