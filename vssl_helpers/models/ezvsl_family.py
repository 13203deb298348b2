"""EZ-VSL, FNAC and SLAVC: torchvision ResNet-18 trunks with projection heads.

EZ-VSL (Mo & Morgado, ECCV 2022) and FNAC (Sun et al., CVPR 2023; parameter-for-parameter the same
network) compute, with a 1 × 1 convolution :math:`P` on the 512 × 7 × 7 layer4 map and a linear
layer :math:`Q` on the globally max-pooled audio features,

.. math:: S_{ij} = \\frac{1}{\\tau}\\cos\\big(P F_v(i,j),\\ Q f_a\\big),\\qquad \\tau = 0.03,

a 7 × 7 map in :math:`[-1/\\tau, 1/\\tau]`. SLAVC (Mo & Morgado, NeurIPS 2022) has two heads per
modality and averages the two cosines:

.. math:: S_{ij} = \\frac{1}{2\\tau}\\Big[\\cos(P_1 F_v(i,j), Q_1 f_a) + \\cos(P_2 F_v(i,j), Q_2 f_a)\\Big].

The paper's code returns :math:`(\\cos + 1)/2` instead (same ordering, range [0, 1]); ``protocol="paper"``
selects those units so that its hard-coded thresholds (e.g. EZ-VSL 0.6382) apply unchanged.
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
from .audio_frontends import Frontend, ScipyLogPSD, centred_window, paper_ezvsl_window, paper_fnac_window, paper_offscreen_window
from .lvs_family import IMAGENET_MEAN, IMAGENET_STD, normalise_images
from .registry import ModelConfig, Preprocessing, VSSLModel, register_model
from .transforms import PILSquashResize, TensorSquashResize

__all__ = ["EZVSLNet", "SLAVCNet", "ezvsl", "fnac", "slavc", "EZVSL_CONFIG", "FNAC_CONFIG", "SLAVC_CONFIG", "TAU"]

Protocol = Literal["official", "paper"]
TAU = 0.03


def vision_trunk() -> torchvision.models.ResNet:
    """torchvision ResNet-18 with avgpool and fc replaced by identities (no ``fc`` keys)."""
    m = torchvision.models.resnet18(weights=None)
    m.avgpool, m.fc = nn.Identity(), nn.Identity()
    return m


def audio_trunk() -> torchvision.models.ResNet:
    """torchvision ResNet-18 with a 1-channel stem, global max pool and no fc → 512-d."""
    m = torchvision.models.resnet18(weights=None)
    m.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    m.avgpool, m.fc = nn.AdaptiveMaxPool2d((1, 1)), nn.Identity()
    return m


def vision_map(m: torchvision.models.ResNet, x: torch.Tensor) -> torch.Tensor:
    """layer4 output ``B × 512 × 7 × 7`` (what the official code gets by reshaping the flat output)."""
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    return m.layer4(m.layer3(m.layer2(m.layer1(x))))


class _TorchvisionPair(VSSLModel):
    """Shared plumbing: normalisation buffers, front end, units conversion."""

    def __init__(self, config: ModelConfig, frontend: Frontend, units: Protocol) -> None:
        super().__init__()
        self.config = config
        self.units = units
        self.frontend = frontend
        pre = config.preprocessing
        self.register_buffer("image_mean", torch.tensor(pre.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(pre.image_std).view(1, 3, 1, 1), persistent=False)

    @property
    def offscreen_window_differs(self) -> bool:
        return self.frontend.offscreen_window is not None

    def _units(self, cos: torch.Tensor) -> torch.Tensor:
        # official: cos / tau (forward's second output); paper code: (cos + 1) / 2
        return cos / TAU if self.units == "official" else (cos + 1.0) / 2.0

    def similarity(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        if visual.shape[0] != audio.shape[0]:
            raise ValueError(f"similarity: {visual.shape[0]} visual rows but {audio.shape[0]} audio rows")
        return self._pair(visual, audio, "b")

    def similarity_all(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self._pair(visual, audio, "all")

    def _pair(self, visual: torch.Tensor, audio: torch.Tensor, mode: str) -> torch.Tensor:
        raise NotImplementedError


class EZVSLNet(_TorchvisionPair):
    """EZ-VSL / FNAC: ``imgnet`` + ``img_proj`` (1 × 1 conv) and ``audnet`` + ``aud_proj`` (linear)."""

    def __init__(self, config: ModelConfig, frontend: Frontend, units: Protocol, dim: int = 512) -> None:
        super().__init__(config, frontend, units)
        self.imgnet = vision_trunk()
        self.img_proj = nn.Conv2d(512, dim, kernel_size=1)
        self.audnet = audio_trunk()
        self.aud_proj = nn.Linear(512, dim)

    def encode_images(self, images: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        x = normalise_images(images, self.image_mean, self.image_std)
        return F.normalize(self.img_proj(vision_map(self.imgnet, x)), dim=1)

    def _embed_spectrogram(self, spec: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.aud_proj(self.audnet(spec)), dim=1)

    def encode_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self._embed_spectrogram(self.frontend(waveforms.to(self.image_mean.device)))

    def encode_offscreen_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self._embed_spectrogram(self.frontend.offscreen(waveforms.to(self.image_mean.device)))

    def _pair(self, visual: torch.Tensor, audio: torch.Tensor, mode: str) -> torch.Tensor:
        eq = "bdhw,bd->bhw" if mode == "b" else "vdhw,ad->vahw"
        return self._units(torch.einsum(eq, visual, audio))


class SLAVCNet(_TorchvisionPair):
    """SLAVC: two projection heads per modality plus ``momentum_*`` copies of everything.

    ``use_momentum_eval=False`` (the official test default and the paper code) uses the online
    branch; True uses the momentum branch. Encodings stack the two heads: visual
    ``B × 2 × D × 7 × 7``, audio ``B × 2 × D``.
    """

    def __init__(self, config: ModelConfig, frontend: Frontend, units: Protocol, dim: int = 512, use_momentum_eval: bool = False) -> None:
        super().__init__(config, frontend, units)
        self.use_momentum_eval = use_momentum_eval
        for prefix in ("", "momentum_"):
            setattr(self, prefix + "imgnet", vision_trunk())
            setattr(self, prefix + "img_proj1", nn.Conv2d(512, dim, kernel_size=1))
            setattr(self, prefix + "img_proj2", nn.Conv2d(512, dim, kernel_size=1))
            setattr(self, prefix + "audnet", audio_trunk())
            setattr(self, prefix + "aud_proj1", nn.Linear(512, dim))
            setattr(self, prefix + "aud_proj2", nn.Linear(512, dim))

    def _branch(self, name: str) -> nn.Module:
        return getattr(self, ("momentum_" if self.use_momentum_eval else "") + name)

    def encode_images(self, images: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        x = normalise_images(images, self.image_mean, self.image_std)
        f = vision_map(self._branch("imgnet"), x)
        return torch.stack([F.normalize(self._branch(f"img_proj{k}")(f), dim=1) for k in (1, 2)], dim=1)

    def _embed_spectrogram(self, spec: torch.Tensor) -> torch.Tensor:
        f = self._branch("audnet")(spec)
        return torch.stack([F.normalize(self._branch(f"aud_proj{k}")(f), dim=1) for k in (1, 2)], dim=1)

    def encode_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self._embed_spectrogram(self.frontend(waveforms.to(self.image_mean.device)))

    def encode_offscreen_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self._embed_spectrogram(self.frontend.offscreen(waveforms.to(self.image_mean.device)))

    def _pair(self, visual: torch.Tensor, audio: torch.Tensor, mode: str) -> torch.Tensor:
        eq = "bkdhw,bkd->bhw" if mode == "b" else "vkdhw,akd->vahw"
        return self._units(torch.einsum(eq, visual, audio) / 2.0)  # mean of the two cosines


# --------------------------------------------------------------------------------------------------
# configs and factories
# --------------------------------------------------------------------------------------------------

_OFFICIAL_AUDIO = "3 s centred on the clip (tiled if short), clip [-1,1], scipy PSD (periodic Tukey 0.25, nperseg 512, noverlap 274, density), log(P+1e-7)/12 -> 1 x 257 x 200 at 16 kHz"
_PAPER_AUDIO = "paper code: first 10 s (tiled), rolled so the clip centre is at 5 s, scipy PSD over 10 s (257 x 671), log(P+1e-7)/12, centre crop of 200 frames (columns 236-435); off-screen clips: first 10 s without the roll"
_PAPER_FNAC_AUDIO = "paper code (FNAC): first 3 s (tiled), rolled by 1.5 s*sr - T/2 samples (-56,000 for a 10 s clip), scipy PSD noverlap 274, log(P+1e-7)/12 -> 1 x 257 x 200; off-screen clips: first 3 s without the roll"
_OFFICIAL_IMAGE = PILSquashResize(224, "bicubic")  # models.md §4.3, §5.3, §6.3
_PAPER_IMAGE = TensorSquashResize(224)  # models.md §4.5, §5.5, §6.5

_EZ_LAYOUT = {
    "display_name": "EZ-VSL",
    "top_level_key": "model",
    "prefix": "module.",
    "file_layout": "{'model': DistributedDataParallel state_dict ('module.' keys), 'optimizer', 'epoch', 'best_cIoU', 'best_Auc'}",
    "strict": True,
    "num_entries": 244,
    "keys": "imgnet.* 120, img_proj.{weight [512,512,1,1], bias}, audnet.* 120 (conv1 [64,1,7,7]), aud_proj.{weight [512,512], bias}",
    "weights": "stoneMo/EZ-VSL README (Google Drive folder)",
}

EZVSL_CONFIG = ModelConfig(
    name="ezvsl",
    family="ezvsl",
    description="EZ-VSL: cosine / 0.03 between projected 7x7 visual features and projected max-pooled audio",
    map_size=(7, 7),
    map_units="cosine / 0.03",
    map_range=(-1.0 / TAU, 1.0 / TAU),
    threshold_rule=ThresholdRule(),
    preprocessing=Preprocessing(
        image_size=224, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, sample_rate=16000, audio_seconds=3.0, audio_frontend=_OFFICIAL_AUDIO,
        # 3: the image transform and the audio window are applied to the decoded original media
        version=3, image_transform=_OFFICIAL_IMAGE,
    ),
    checkpoint_layout=_EZ_LAYOUT,
    paper="Mo & Morgado, Localizing Visual Sounds the Easy Way, ECCV 2022",
    code_license="Apache-2.0 (stoneMo/EZ-VSL)",
)

FNAC_CONFIG = replace(
    EZVSL_CONFIG,
    name="fnac",
    description="FNAC: EZ-VSL network trained with false-negative-aware contrastive learning; cosine / 0.03",
    checkpoint_layout={**_EZ_LAYOUT, "display_name": "FNAC", "weights": "OpenNLPLab/FNAC_AVL README (Google Drive folder)"},
    paper="Sun et al., Learning Audio-Visual Source Localization via False Negative Aware Contrastive Learning, CVPR 2023",
    code_license="none stated (OpenNLPLab/FNAC_AVL has no licence file)",
)

SLAVC_CONFIG = replace(
    EZVSL_CONFIG,
    name="slavc",
    description="SLAVC: mean of two head cosines / 0.03 (online branch)",
    map_units="mean of two cosines / 0.03",
    checkpoint_layout={
        **_EZ_LAYOUT,
        "display_name": "SLAVC",
        "num_entries": 496,
        "keys": "online imgnet/img_proj1/img_proj2/audnet/aud_proj1/aud_proj2 + the same set prefixed momentum_",
        "weights": "stoneMo/SLAVC README (Google Drive file)",
    },
    paper="Mo & Morgado, A Closer Look at Weakly-Supervised Audio-Visual Source Localization, NeurIPS 2022",
    code_license="Apache-2.0 (stoneMo/SLAVC)",
)


def _configure(base: ModelConfig, protocol: Protocol, paper_audio: str) -> tuple[ModelConfig, Frontend]:
    sr = base.preprocessing.sample_rate
    if protocol == "official":
        frontend = Frontend(partial(centred_window, seconds=3.0), ScipyLogPSD(sr, 512, 274), sr, _OFFICIAL_AUDIO)
        return base, frontend
    if protocol != "paper":
        raise ValueError(f"{base.name}: protocol must be 'official' or 'paper', got {protocol!r}")
    # the paper's code reads an off-screen clip's first seconds without the roll it gives positives
    if base.name == "fnac":
        seconds = 3.0
        frontend = Frontend(paper_fnac_window, ScipyLogPSD(sr, 512, 274), sr, paper_audio,
                            offscreen_window=partial(paper_offscreen_window, seconds=seconds))
    else:
        seconds = 10.0
        frontend = Frontend(paper_ezvsl_window, ScipyLogPSD(sr, 512, 274, crop_frames=200), sr, paper_audio,
                            offscreen_window=partial(paper_offscreen_window, seconds=seconds))
    pre = replace(base.preprocessing, audio_seconds=seconds, audio_frontend=paper_audio, version=4, image_transform=_PAPER_IMAGE)
    units = "(mean cos + 1) / 2" if base.name == "slavc" else "(cos + 1) / 2"
    return replace(base, preprocessing=pre, map_units=units, map_range=(0.0, 1.0)), frontend


@register_model(EZVSL_CONFIG)
def ezvsl(pretrained: bool | str | os.PathLike = False, protocol: Protocol = "official") -> VSSLModel:
    """EZ-VSL. ``protocol='paper'``: 10 s PSD centre-cropped to 200 frames, tensor resize, and maps in
    (cos+1)/2 as in the paper's code (models.md §4.5)."""
    from .checkpoints import apply_pretrained

    config, frontend = _configure(EZVSL_CONFIG, protocol, _PAPER_AUDIO)
    return apply_pretrained(EZVSLNet(config, frontend, protocol), pretrained)


@register_model(FNAC_CONFIG)
def fnac(pretrained: bool | str | os.PathLike = False, protocol: Protocol = "official") -> VSSLModel:
    """FNAC. ``protocol='paper'``: the effective paper-code window (first 3 s rolled by −0.5 s mod 3 s,
    models.md §6.5), tensor resize, maps in (cos+1)/2."""
    from .checkpoints import apply_pretrained

    config, frontend = _configure(FNAC_CONFIG, protocol, _PAPER_FNAC_AUDIO)
    return apply_pretrained(EZVSLNet(config, frontend, protocol), pretrained)


@register_model(SLAVC_CONFIG)
def slavc(pretrained: bool | str | os.PathLike = False, protocol: Protocol = "official", use_momentum_eval: bool = False) -> VSSLModel:
    """SLAVC (online branch unless ``use_momentum_eval``). ``protocol='paper'`` as EZ-VSL."""
    from .checkpoints import apply_pretrained

    config, frontend = _configure(SLAVC_CONFIG, protocol, _PAPER_AUDIO)
    return apply_pretrained(SLAVCNet(config, frontend, protocol, use_momentum_eval=use_momentum_eval), pretrained)
