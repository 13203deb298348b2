"""Your own model, written as a user of vssl-companion would: one file, no training.

"Listening saliency" is a deliberately simple baseline. It looks for the object that stands out
by colour (colour contrast to the image's median colour), and it lights that object up only as much
as the audio sounds like a *source*: a loud and tonal clip opens the gate, silence (no energy) and
white noise (a flat spectrum) close it. So it should do well on two of the paper's negatives
(silence, noise) and not on the third: an off-screen sound is loud and tonal too, and the map does
not depend on *what* the sound is.

Evaluate it on the embedded benchmark with::

    vssl evaluate --model examples/my_model.py:factory --testset synthetic --n-images 100

What a model needs (DESIGN.md, "Model adapter"): a ``ModelConfig`` (its name, native map size and
value range, the images and audio it expects) and three methods, ``encode_images``, ``encode_audio``
and a similarity between the two. ``DotProductMapModel`` supplies the similarity: the map is the dot
product of a ``D x h x w`` visual feature map with a ``D``-vector audio embedding (here D = 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vssl_helpers.models.registry import DotProductMapModel, ModelConfig, Preprocessing

CONFIG = ModelConfig(
    name="my-listening-saliency",
    family="example",
    description="colour-contrast saliency gated by the loudness and tonality of the audio (examples/my_model.py)",
    map_size=(14, 14),
    map_units="colour distance x audio gate",
    map_range=(0.0, 3.0**0.5),  # colour distance of RGB in [0, 1] (at most sqrt(3)), gate in [0, 1)
    # 112 px images and 2 s of 16 kHz audio: what the embedded benchmark's demo models read
    preprocessing=Preprocessing(image_size=112, sample_rate=16000, audio_seconds=2.0,
                                audio_frontend="2 s centre window; RMS loudness and spectral flatness"),
)


class ListeningSaliency(DotProductMapModel):
    """Colour-contrast map (images) times an audio gate in [0, 1) (audio); no learned weights."""

    def __init__(self, config: ModelConfig = CONFIG, loudness_scale: float = 0.05) -> None:
        super().__init__()
        self.config = config
        self.loudness_scale = loudness_scale  # RMS at which the loudness half of the gate is 0.5
        self.window = int(config.preprocessing.sample_rate * config.preprocessing.audio_seconds)

    def encode_images(self, images: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        # images: B x 3 x 112 x 112 in [0, 1]; distance of every pixel to the image's median colour
        median = images.flatten(2).median(dim=2).values[:, :, None, None]
        contrast = (images - median).norm(dim=1, keepdim=True)  # B x 1 x H x W
        return F.adaptive_avg_pool2d(contrast, self.config.map_size)  # B x 1 x 14 x 14 (D = 1)

    def encode_audio(self, waveforms: torch.Tensor) -> torch.Tensor:
        # waveforms: B x T whole clips; read the centre 2 s (or the whole clip if shorter)
        t = waveforms.shape[-1]
        start = max(0, (t - self.window) // 2)
        x = waveforms[:, start : start + self.window].float()
        rms = x.pow(2).mean(dim=1).sqrt()
        loudness = rms / (rms + self.loudness_scale)  # 0 for silence
        power = torch.stft(x, n_fft=512, hop_length=256, window=torch.hann_window(512, device=x.device),
                           return_complex=True).abs().pow(2).mean(dim=2) + 1e-10  # B x 257, mean over time
        flatness = power.log().mean(dim=1).exp() / power.mean(dim=1)  # 1 for white noise, ~0 for a tone
        return (loudness * (1.0 - flatness)).unsqueeze(1)  # B x 1


def factory() -> ListeningSaliency:
    """What ``--model examples/my_model.py:factory`` calls."""
    return ListeningSaliency().eval()
