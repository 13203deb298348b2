"""RCGrad (Wu et al., Interspeech 2022): Grad-CAM of a CLIP-style image/audio embedding pair.

The official map is a Grad-CAM on the image encoder's last layer4 block, :math:`A \\in
\\mathbb{R}_{\\ge 0}^{512\\times 14\\times 14}`, back-propagating the score :math:`s = \\langle e_v,
e_a\\rangle` of the *unnormalised* embeddings, where :math:`e_v = \\frac{1}{196}\\sum_{ij} A_{:,ij}`
(global average pool). Since :math:`\\partial s / \\partial A_{c,ij} = e_{a,c}/196` at every cell,
the Grad-CAM weights are :math:`w_c = e_{a,c}/196` and the CAM has the closed form

.. math:: \\mathrm{CAM}_{ij} = \\mathrm{ReLU}\\Big(\\frac{1}{196}\\sum_c e_{a,c} A_{c,ij}\\Big),

which factorizes: image features once (:math:`A`), audio embeddings once (:math:`e_a`). The native
map is the CAM after pytorch-grad-cam 1.3.7's first scaling,

.. math:: M = \\frac{\\mathrm{CAM} - \\min \\mathrm{CAM}}{\\max(\\mathrm{CAM} - \\min\\mathrm{CAM}) + 10^{-7}}\\in[0,1),

at 14 × 14. :func:`official_postprocess` reproduces the rest of the official chain at 224 × 224
(bilinear resize, min-max, median zeroing) for comparisons with the original repository.

Audio encoder (``ResNetSpec``): torchaudio ``Spectrogram(n_fft=512, hop_length=353)`` (its window is a
checkpoint entry), :math:`\\log(P + 10^{-7})`, standardised with the mean and unbiased std of the
whole input tensor (+1e-9), a 1-channel torchvision ResNet-18 (layer4 stride 2), global average
pool → 512-d. **Quirk kept by default**: the official code never puts the audio encoder in eval
mode, so its BatchNorm layers normalise with the statistics of the current input (one clip).
``audio_bn='running'`` uses the stored running statistics instead.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
import torchaudio
import torchvision
from torch import nn

from ..threshold import RCGRAD_RULE
from .lvs_family import LVSResNet18, normalise_images
from .registry import ModelConfig, Preprocessing, VSSLModel, register_model
from .transforms import PILSquashResize

__all__ = ["ResNetSpec", "RCGradNet", "rcgrad", "official_postprocess", "RCGRAD_CONFIG", "CLIP_MEAN", "CLIP_STD"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_AUDIO = (
    "whole clip (no window), in-model torchaudio Spectrogram(n_fft 512, hop 353, periodic Hann, center reflect, power 2), "
    "log(P+1e-7), standardised per clip with its mean and unbiased std (+1e-9); 257 x (1 + T//353) frames"
)

RCGRAD_CONFIG = ModelConfig(
    name="rcgrad",
    family="rcgrad",
    description="RCGrad: Grad-CAM (closed form) of the image/audio embedding dot product, min-max scaled to [0, 1]",
    map_size=(14, 14),
    map_units="Grad-CAM in [0, 1]",
    map_range=(0.0, 1.0),
    threshold_rule=RCGRAD_RULE,
    preprocessing=Preprocessing(
        image_size=224, image_mean=CLIP_MEAN, image_std=CLIP_STD, sample_rate=16000, audio_seconds=10.0, audio_frontend=_AUDIO,
        # 3: the image transform is applied to the decoded original image and the clip reaches the
        # model whole; audio_seconds is the length of noise and silence (the paper code's 10 s)
        version=3, image_transform=PILSquashResize(224, "bicubic"),  # models.md §2.3
    ),
    checkpoint_layout={
        "display_name": "RCGrad",
        "top_level_key": None,
        "prefix": "",
        "file_layout": "flat mapping with 'image_encoder.' / 'audio_encoder.' keys (other keys, e.g. logit_scale, ignored)",
        "read_prefixes": ("image_encoder.", "audio_encoder."),
        "strict": True,
        "num_entries": 245,
        "keys": "image_encoder.* 124 (LVS-style ResNet-18) + audio_encoder.* 121 (incl. spectrogram.window [512])",
        "weights": "github.com/hohsiangwu/rethinking-visual-sound-localization/releases/download/v0.1.0-alpha/rc_grad.pt",
    },
    paper="Wu et al., How to Listen? Rethinking Visual Sound Localization, Interspeech 2022",
    code_license="MIT (hohsiangwu/rethinking-visual-sound-localization)",
)


class ResNetSpec(torchvision.models.ResNet):
    """RCGrad's audio encoder: spectrogram front end + 1-channel ResNet-18 (no fc) → 512-d."""

    def __init__(self) -> None:
        super().__init__(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2])
        self.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.fc = nn.Identity()  # no fc keys in the checkpoint
        self.spectrogram = torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353)  # window is persistent (a checkpoint key)

    def log_spectrogram(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``B × 257 × frames``: :math:`(L - \\bar L) / (\\sigma_L + 10^{-9})`, :math:`L = \\log(P + 10^{-7})`,
        mean and unbiased std over the whole tensor (call it per clip for per-clip statistics)."""
        x = torch.log(self.spectrogram(waveforms.float()) + 1e-7)
        return (x - x.mean()) / (x.std() + 1e-9)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = self.log_spectrogram(waveforms).unsqueeze(1)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


@contextlib.contextmanager
def batch_statistics(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``module`` normalise with the current batch's statistics and leave their
    running buffers untouched (official RCGrad runs its audio encoder in training mode; we avoid the
    side effect of updating the buffers so repeated calls are deterministic)."""
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            saved.append((m, m.training, m.track_running_stats))
            m.train()
            m.track_running_stats = False  # -> F.batch_norm gets no running buffers: batch stats, no update
    try:
        yield
    finally:
        for m, training, track in saved:
            m.train(training)
            m.track_running_stats = track


class RCGradNet(VSSLModel):
    """``image_encoder`` (LVS-style ResNet-18) + ``audio_encoder`` (:class:`ResNetSpec`).

    ``encode_images`` → layer4 activations :math:`A` (``B × 512 × 14 × 14``, unnormalised);
    ``encode_audio`` → :math:`e_a` (``B × 512``, unnormalised), one clip at a time (batch-of-one
    statistics, as the official per-clip evaluation); maps by the closed form above.
    """

    def __init__(self, config: ModelConfig, audio_bn: Literal["batch", "running"] = "batch") -> None:
        super().__init__()
        if audio_bn not in ("batch", "running"):
            raise ValueError(f"rcgrad: audio_bn must be 'batch' or 'running', got {audio_bn!r}")
        self.config = config
        self.audio_bn = audio_bn
        self.image_encoder = LVSResNet18()
        self.audio_encoder = ResNetSpec()
        pre = config.preprocessing
        self.register_buffer("image_mean", torch.tensor(pre.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(pre.image_std).view(1, 3, 1, 1), persistent=False)

    def encode_images(self, images: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        return self.image_encoder.feature_map(normalise_images(images, self.image_mean, self.image_std), "vision")

    def image_embedding(self, visual: torch.Tensor) -> torch.Tensor:
        """:math:`e_v`: the official image encoder's output (global average pool of layer4)."""
        return visual.mean(dim=(2, 3))

    def encode_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        if waveforms.dim() != 2:
            raise ValueError(f"rcgrad: expected B x T mono waveforms, got shape {tuple(waveforms.shape)}")
        waveforms = waveforms.to(self.image_mean.device)
        ctx = batch_statistics(self.audio_encoder) if self.audio_bn == "batch" else contextlib.nullcontext()
        with ctx:
            return torch.cat([self.audio_encoder(waveforms[i : i + 1]) for i in range(waveforms.shape[0])])

    @staticmethod
    def _scale(cam: torch.Tensor) -> torch.Tensor:
        # pytorch-grad-cam 1.3.7 scale_cam_image: x - min, then / (max + 1e-7), per map
        flat = cam.flatten(-2)
        flat = flat - flat.amin(dim=-1, keepdim=True)
        return (flat / (flat.amax(dim=-1, keepdim=True) + 1e-7)).view_as(cam)

    def similarity_all(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        hw = visual.shape[-2] * visual.shape[-1]
        return self._scale(F.relu(torch.einsum("vchw,ac->vahw", visual, audio) / hw))

    def similarity(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        if visual.shape[0] != audio.shape[0]:
            raise ValueError(f"similarity: {visual.shape[0]} visual rows but {audio.shape[0]} audio rows")
        hw = visual.shape[-2] * visual.shape[-1]
        return self._scale(F.relu(torch.einsum("bchw,bc->bhw", visual, audio) / hw))

    def joint_maps(self, images: torch.Tensor, waveforms: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        """The official route: Grad-CAM with autograd (gradient of :math:`\\langle e_v, e_a\\rangle`
        with respect to the layer4 output, spatially averaged into channel weights)."""
        e_a = self.encode_audio(waveforms).detach()
        with torch.enable_grad():
            acts = self.encode_images(images).detach().requires_grad_(True)
            # the encoder's remaining ops after layer4[-1] are the average pool (and the unused fc)
            score = (self.image_embedding(acts) * e_a).sum()
            (grads,) = torch.autograd.grad(score, acts)
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * acts.detach()).sum(dim=1))
        return self._scale(cam)


def official_postprocess(maps: torch.Tensor, size: int = 224) -> torch.Tensor:
    """The rest of the official RCGrad chain, for ``B × 14 × 14`` native maps → ``B × size × size``:
    bilinear resize with half-pixel centres (= ``cv2.resize`` INTER_LINEAR), clip at 0, min-shift /
    (max + 1e-7), then ``clean_pred``: exact min-max (skipped for constant maps) and every value below
    the element at sorted index ⌊size²/2⌋ set to 0. The official cIoU then thresholds at 0.5 (≥)."""
    x = F.interpolate(maps.unsqueeze(1).float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    x = RCGradNet._scale(x.clamp_min(0))
    flat = x.flatten(1)
    lo, hi = flat.amin(dim=1, keepdim=True), flat.amax(dim=1, keepdim=True)
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    flat = torch.where(hi > lo, (flat - lo) / span, flat)
    med = flat.sort(dim=1).values[:, (size * size) // 2 : (size * size) // 2 + 1]
    flat = torch.where(flat < med, torch.zeros_like(flat), flat)
    return flat.view(-1, size, size)


@register_model(RCGRAD_CONFIG)
def rcgrad(pretrained: bool | str | os.PathLike = False, protocol: Literal["official", "paper"] = "official", audio_bn: Literal["batch", "running"] = "batch") -> VSSLModel:
    """RCGrad. The paper's code has no RCGrad path (models.md §2.5), so ``protocol='paper'`` is the
    official preprocessing. ``audio_bn='batch'`` reproduces the official training-mode BatchNorm of
    the audio encoder; ``'running'`` uses the checkpoint's running statistics."""
    from .checkpoints import apply_pretrained

    if protocol not in ("official", "paper"):
        raise ValueError(f"rcgrad: protocol must be 'official' or 'paper', got {protocol!r}")
    config = RCGRAD_CONFIG if audio_bn == "batch" else replace(RCGRAD_CONFIG, preprocessing=replace(RCGRAD_CONFIG.preprocessing, version=4))
    return apply_pretrained(RCGradNet(config, audio_bn=audio_bn), pretrained)
