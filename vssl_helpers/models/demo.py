"""Demo models of the embedded benchmark: small two-tower CNNs and three reference points.

Trained models (same architecture, three training objectives, see :mod:`vssl_helpers.models.training`):

* ``demo-ezvsl``: EZ-VSL's multiple-instance contrastive objective (max over locations, InfoNCE).
* ``demo-lvs``: LVS's hard-negative objective (positive / background regions of the own map).
* ``demo-negaware``: EZ-VSL's objective plus a term that drives the map's maximum to 0 for silence,
  noise and off-screen audio (the remedy the paper's conclusion points to).

Weights: the three ship with the package (``vssl_helpers/data/weights/``, trained by
:mod:`vssl_helpers.models.training` with the default :class:`~vssl_helpers.models.training.TrainConfig`,
seed 0, each with its training record and sha256); ``pretrained=True`` loads them when the requested
training config is that one, and otherwise trains (or reads the training cache), as
:func:`~vssl_helpers.models.training.trained_state_dict` says. ``vssl train`` retrains them.

The factories are registered by :mod:`vssl_helpers.models.demo_zoo` (this module holds the networks
and their configs only, so that :mod:`~vssl_helpers.models.training` can import it without a cycle).

Reference points (untrained):

* ``demo-saliency``: audio-blind visual saliency (colour contrast), the same map whatever the audio.
* ``demo-random``: the two-tower architecture with random weights.
* ``demo-oracle``: returns the ground-truth mask (audio-blind, reads the GT), as GT coverage of a
  28 × 28 grid (saturated: interior cells are exactly 1).

Architecture (at 112 px, as measured feasible on 2 CPU cores): image tower of five conv3×3-BN-ReLU
layers (16-32-32-64-64 channels, strides 2-2-1-2-1) and a 1×1 projection to D = 64, giving a
14 × 14 × 64 map; audio tower of three conv-BN-ReLU layers (16-32-64) with two 2×2 max-pools on a
64-mel log spectrogram of 2 s, then mean+max pooling and a linear layer to D = 64. The map is the
cosine between each location and the audio embedding, in [-1, 1].
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from ..threshold import ThresholdRule
from .audio_frontends import crop_or_tile
from .registry import DotProductMapModel, ModelConfig, Preprocessing, VSSLModel
from .transforms import PILSquashResize

__all__ = ["TwoTowerCNN", "SaliencyModel", "OracleModel", "DEMO_PREPROCESSING", "TRAINED_DEMOS", "DEMO_CONFIGS",
           "get_demo_config"]

DEMO_PREPROCESSING = Preprocessing(
    image_size=112,
    image_mean=(0.5, 0.5, 0.5),
    image_std=(0.25, 0.25, 0.25),
    sample_rate=16000,
    audio_seconds=2.0,
    audio_frontend="2 s centred on the clip (tiled if shorter), log-mel: 64 mels, n_fft 512, hop 256 (2 s -> 64 x 126), 10 log10(power + 1e-10)",
    version=1,
    # the synthetic generator's resize (SyntheticSet.arrays), so real and synthetic images match
    image_transform=PILSquashResize(112, "bilinear"),
)

TRAINED_DEMOS = ("demo-ezvsl", "demo-lvs", "demo-negaware")


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LogMel(nn.Module):
    """Waveform (``B × T``) → log-mel (``B × 1 × 64 × frames``), silence maps to -100 dB exactly.

    ``log=False`` (set only by :func:`vssl_helpers.compat.negative_frontend`) skips the ``10 log10``
    and scales the mel power with the same affine map, the demo analogue of the paper code's
    un-logged negatives (audit D2).
    """

    def __init__(self, pre: Preprocessing = DEMO_PREPROCESSING, log: bool = True) -> None:
        super().__init__()
        self.log = log
        self.n_samples = int(pre.sample_rate * pre.audio_seconds)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=pre.sample_rate, n_fft=512, hop_length=256, n_mels=64, power=2.0
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        # the demo window: n samples centred on the clip, tiled if shorter (the whole clip reaches
        # the model; this is where it is cut)
        x = crop_or_tile(waveforms.float(), self.n_samples, centre=True)
        power = self.mel(x)
        db = 10 * torch.log10(power + 1e-10) if self.log else power
        # fixed affine so typical clips sit around 0 +- 1; BatchNorm handles the rest
        return ((db + 40.0) / 20.0).unsqueeze(1)


class TwoTowerCNN(DotProductMapModel):
    """Small image and audio CNNs whose cosine similarity is the localization map."""

    def __init__(self, config: ModelConfig, dim: int = 64) -> None:
        super().__init__()
        self.config = config
        pre = config.preprocessing
        self.register_buffer("image_mean", torch.tensor(pre.image_mean).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(pre.image_std).view(1, 3, 1, 1))
        self.image_tower = nn.Sequential(
            _conv(3, 16, 2), _conv(16, 32, 2), _conv(32, 32, 1), _conv(32, 64, 2), _conv(64, 64, 1), nn.Conv2d(64, dim, 1)
        )
        self.frontend = LogMel(pre)
        self.audio_tower = nn.Sequential(
            _conv(1, 16, 1), nn.MaxPool2d(2), _conv(16, 32, 1), nn.MaxPool2d(2), _conv(32, 64, 1)
        )
        self.audio_proj = nn.Linear(2 * 64, dim)

    def encode_images(self, images: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        x = (images - self.image_mean) / self.image_std
        return F.normalize(self.image_tower(x), dim=1)

    def encode_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        h = self.audio_tower(self.frontend(waveforms))
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return F.normalize(self.audio_proj(pooled), dim=1)


class SaliencyModel(VSSLModel):
    """Audio-blind visual saliency: colour distance to the image's median colour, smoothed and
    pooled to 14 × 14. Salient silent objects light up as much as sounding ones."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        k = torch.outer(k, k) / 256
        self.register_buffer("blur", k.view(1, 1, 5, 5))

    def encode_images(self, images: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        median = images.flatten(2).median(dim=2).values.view(-1, 3, 1, 1)
        dist = (images - median).norm(dim=1, keepdim=True)
        smooth = F.conv2d(dist, self.blur, padding=2)
        return F.adaptive_avg_pool2d(smooth, self.config.map_size)[:, 0]

    def encode_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        return torch.zeros(waveforms.shape[0], 1, device=waveforms.device)

    def similarity_all(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return visual.unsqueeze(1).expand(-1, audio.shape[0], -1, -1)

    def similarity(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return visual


class OracleModel(SaliencyModel):
    """Returns the ground-truth mask, whatever the audio: the fraction of each cell of a 28 × 28 grid
    (8 × 8 pixels) covered by the GT. A 224 × 224 native map would be exact but 64× larger in
    every store and summary (31 maps per sample); at 28 × 28, upsampled and thresholded at 0.5, it
    reproduces the mask up to the boundary pixels. Interior cells are exactly 1, so the map is
    saturated like a binary one (see the threshold rule in its config)."""

    def encode_images(self, images: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        if gt is None:
            raise ValueError("demo-oracle: needs the GT masks (config.needs_gt); pass gt=...")
        return F.adaptive_avg_pool2d(gt.float().unsqueeze(1), self.config.map_size)[:, 0]


def _demo_config(name: str, description: str, **kw: Any) -> ModelConfig:
    base: dict[str, Any] = dict(
        name=name,
        family="demo",
        description=description,
        map_size=(14, 14),
        map_units="cosine",
        map_range=(-1.0, 1.0),
        threshold_rule=ThresholdRule(),
        preprocessing=DEMO_PREPROCESSING,
        paper="vssl-companion embedded benchmark (objective after the cited paper)",
        code_license="BSD-3-Clause (this project)",
    )
    base.update(kw)
    return ModelConfig(**base)


DEMO_CONFIGS: dict[str, ModelConfig] = {
    c.name: c
    for c in (
        _demo_config("demo-ezvsl", "two-tower CNN, EZ-VSL multiple-instance contrastive objective",
                     paper="Mo & Morgado, ECCV 2022 (objective)"),
        _demo_config("demo-lvs", "two-tower CNN, LVS hard-negative objective", paper="Chen et al., CVPR 2021 (objective)"),
        _demo_config("demo-negaware", "two-tower CNN, EZ-VSL objective + negative-audio term"),
        _demo_config("demo-random", "two-tower CNN with random weights (seeded)"),
        _demo_config(
            "demo-saliency",
            "audio-blind colour-contrast saliency (same map for every audio)",
            map_units="colour distance",
            map_range=(0.0, 3.0**0.5),
            audio_blind=True,
        ),
        _demo_config(
            "demo-oracle",
            "ground-truth mask for every audio (audio-blind upper bound on positives)",
            map_size=(28, 28),
            map_units="binary",
            map_range=(0.0, 1.0),
            # A binary or saturated map's maxima are all 1, so the universal rule would give t = 1 and,
            # with the strict '>', empty maps: such maps use a fixed threshold between 0 and 1 instead.
            threshold_rule=ThresholdRule(kind="fixed", value=0.5),
            needs_gt=True,
            audio_blind=True,
        ),
    )
}
"""The config of every demo model by name (registered with its factory in :mod:`~vssl_helpers.models.demo_zoo`)."""


def get_demo_config(name: str) -> ModelConfig:
    """The config of demo model ``name`` (``KeyError`` for another name)."""
    return DEMO_CONFIGS[name]
