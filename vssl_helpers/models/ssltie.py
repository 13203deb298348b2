"""SSL-TIE (Liu et al., ACM MM 2022): LVS-style ResNet-18 pair on a mel-dB front end.

At inference (``forward(..., mode='val')``) the map is the same formula as LVS,

.. math:: A_{ij} = \\cos\\big(F_v(i,j),\\ \\max_{u,w} F_a(u,w)\\big)\\in[-1,1],\\quad 14\\times 14,

computed inside a joint forward that also evaluates modules whose outputs are discarded
(``conv3``/``norm3`` on the map) or only used in training (``vision_fc1``). They are kept so the
checkpoint loads strictly (257 entries). Because nothing in the map depends on another row of the
batch, the map factorizes exactly; :meth:`SSLTIENet.joint_maps` reproduces the joint forward (with
the discarded branch evaluated, as officially) and the tests check it against the factorized path.

Audio: first 10 s (tiled), torchaudio ``MelSpectrogram(n_fft=512, hop=239, n_mels=257,
normalized=True)`` → ``AmplitudeToDB()``, 1 × 257 × 670 at 16 kHz, no further scaling.
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..threshold import ThresholdRule
from .audio_frontends import Frontend, MelDB, first_seconds
from .lvs_family import IMAGENET_MEAN, IMAGENET_STD, LVSAVENet
from .registry import ModelConfig, Preprocessing, VSSLModel, register_model
from .transforms import PILShortSideCentreCrop, TensorSquashResize

__all__ = ["SSLTIENet", "ssltie", "SSLTIE_CONFIG"]

Protocol = Literal["official", "paper"]

_AUDIO = (
    "first 10 s (tiled if shorter), no clipping, torchaudio MelSpectrogram(n_fft 512, hop 239, 257 mels, "
    "periodic Hann, center reflect, power 2, normalized=True) -> AmplitudeToDB (10 log10 max(x, 1e-10)) -> 1 x 257 x 670 at 16 kHz"
)

SSLTIE_CONFIG = ModelConfig(
    name="ssltie",
    family="ssltie",
    description="SSL-TIE: cosine between layer4 visual features and max-pooled audio embedding (mel-dB input)",
    map_size=(14, 14),
    map_units="cosine",
    map_range=(-1.0, 1.0),
    threshold_rule=ThresholdRule(),
    preprocessing=Preprocessing(
        image_size=224, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, sample_rate=16000, audio_seconds=10.0, audio_frontend=_AUDIO,
        # 3: the image transform and the audio window are applied to the decoded original media
        version=3, image_transform=PILShortSideCentreCrop(224, "bicubic"),  # models.md §7.3
    ),
    checkpoint_layout={
        "display_name": "SSL-TIE",
        "top_level_key": "state_dict",
        "prefix": "",
        "file_layout": "{'epoch', 'state_dict' (no prefix), 'best_miou', 'optimizer', 'iteration'}",
        "strict": True,
        "num_entries": 257,
        "keys": "imgnet.* 124 + audnet.* 124 + vision_fc1 (2) + conv3 (2) + norm3 (5)",
        "weights": "jinxiang-liu/SSL-TIE README (Google Drive folder / Baidu Pan), vggsound144k.pth.tar",
    },
    paper="Liu et al., Exploiting Transformation Invariance and Equivariance for Self-supervised Sound Localisation, ACM MM 2022",
    code_license="MIT (jinxiang-liu/SSL-TIE)",
)


class SSLTIENet(LVSAVENet):
    """SSL-TIE's AVENet: LVS's ``imgnet``/``audnet`` plus ``vision_fc1``, ``conv3``, ``norm3``."""

    def __init__(self, config: ModelConfig, frontend: Frontend) -> None:
        super().__init__(config, frontend)
        self.vision_fc1 = nn.Conv2d(1024, 512, kernel_size=1)  # training-only
        self.conv3 = nn.Conv2d(1, 1, kernel_size=1)  # evaluated on the map, output discarded
        self.norm3 = nn.BatchNorm2d(1)

    def joint_maps(self, images: torch.Tensor, waveforms: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        """Joint forward as in ``mode='val'``: both networks on the paired rows, then A."""
        v = F.normalize(self.imgnet.feature_map((images.float() - self.image_mean) / self.image_std, "vision"), dim=1)
        a = F.normalize(F.adaptive_max_pool2d(self.audio_feature_map(waveforms), 1).flatten(1), dim=1)
        maps = torch.einsum("ncqa,nchw->nqa", v, a.unsqueeze(2).unsqueeze(3)).unsqueeze(1)
        _ = self.norm3(self.conv3(maps))  # official forward computes this and drops it (no effect in eval mode)
        return maps[:, 0]


@register_model(SSLTIE_CONFIG)
def ssltie(pretrained: bool | str | os.PathLike = False, protocol: Protocol = "official") -> VSSLModel:
    """SSL-TIE. Official and paper audio are the same (10 s mel dB); the paper code squashes the
    image with a tensor resize instead of short-side resize + centre crop (models.md §7.5)."""
    from .checkpoints import apply_pretrained

    config = SSLTIE_CONFIG
    if protocol == "paper":
        # models.md §7.5: tensor squash instead of short-side resize + centre crop; same audio
        config = replace(config, preprocessing=replace(config.preprocessing, version=4, image_transform=TensorSquashResize(224)))
    elif protocol != "official":
        raise ValueError(f"ssltie: protocol must be 'official' or 'paper', got {protocol!r}")
    sr = SSLTIE_CONFIG.preprocessing.sample_rate
    frontend = Frontend(partial(first_seconds, seconds=10.0), MelDB(sr), sr, _AUDIO)
    return apply_pretrained(SSLTIENet(config, frontend), pretrained)
