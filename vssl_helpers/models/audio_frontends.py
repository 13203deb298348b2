"""Audio front ends of the official VSSL models, in torch (no scipy at inference time).

Every function takes a batch of mono waveforms ``B × T`` (float, at the model's sample rate) and
returns what the official data loader would have handed to the audio network, ``B × 1 × F × frames``.
Three families exist (see ``reference/models.md``):

* **scipy PSD** (LVS, SSL-Align, EZ-VSL, SLAVC, FNAC): ``scipy.signal.spectrogram`` with its defaults,
  re-implemented by :class:`ScipyLogPSD`; then :math:`\\log(P + 10^{-7}) / 12`.
* **mel dB** (SSL-TIE): ``torchaudio`` ``MelSpectrogram(n_fft=512, hop=239, n_mels=257,
  normalized=True)`` followed by ``AmplitudeToDB()``.
* **in-model spectrogram** (RCGrad): lives inside the RCGrad audio encoder (see :mod:`.rcgrad`).

The *window* functions (which part of the clip is read, tiling of short clips) are separate from the
spectrograms, because the official repositories and the paper's code differ mostly there.
"""

from __future__ import annotations

import math
import warnings

import torch
import torchaudio
from torch import nn

__all__ = [
    "crop_or_tile",
    "first_seconds",
    "centred_window",
    "ssl_align_window",
    "paper_ezvsl_window",
    "paper_fnac_window",
    "paper_offscreen_window",
    "tukey_periodic",
    "ScipyLogPSD",
    "MelDB",
    "non_persistent",
    "Frontend",
]


# --------------------------------------------------------------------------------------------------
# windows: which samples the model reads
# --------------------------------------------------------------------------------------------------


def crop_or_tile(waveforms: torch.Tensor, n: int, *, centre: bool = False) -> torch.Tensor:
    r"""Exactly ``n`` samples of each row of ``B × T`` waveforms: a window of the clip, tiled if short.

    The window starts at sample :math:`s = 0`, or with ``centre=True`` at
    :math:`s = \max(\lfloor T/2 \rfloor - \lfloor n/2 \rfloor, 0)` (the clip's middle minus half
    the window: the official loaders' "seek to duration/2 − n/2"). The output is samples
    :math:`[s, s + n)` of the clip; when fewer than ``n`` samples remain after :math:`s`, the
    remainder ``x[s:]`` is repeated end to end and cut at ``n``, as the official loaders'
    ``np.tile(audio, int(n / T) + 1)[:n]`` (with ``centre=True`` this happens only when ``T < n``,
    where :math:`s = 0`). Every audio window of the package (official, paper code, demo) reads the clip
    through this function.

    Raises:
        ValueError: an empty waveform (nothing to tile).
    """
    t = waveforms.shape[-1]
    if t == 0:
        raise ValueError("crop_or_tile: empty waveform (0 samples); expected at least one sample to crop or tile")
    start = max(t // 2 - n // 2, 0) if centre else 0
    rest = waveforms[..., start:]
    if rest.shape[-1] < n:
        rest = rest.repeat(*([1] * (rest.ndim - 1)), n // rest.shape[-1] + 1)
    return rest[..., :n]


def first_seconds(waveforms: torch.Tensor, sr: int, seconds: float) -> torch.Tensor:
    """The first ``seconds`` of each clip, tiled if the clip is shorter (LVS, SSL-TIE, SSL-Align)."""
    return crop_or_tile(waveforms, int(round(sr * seconds)))


def centred_window(waveforms: torch.Tensor, sr: int, seconds: float = 3.0) -> torch.Tensor:
    """EZ-VSL / SLAVC / FNAC original repositories: ``seconds`` centred on the clip.

    Start sample :math:`s = \\max(\\lfloor T/2 \\rfloor - \\lfloor n/2 \\rfloor, 0)` with
    :math:`n = \\text{sr}\\cdot\\text{seconds}`; the official code seeks to ``duration/2 - 1.5 s`` with
    PyAV (same sample up to PyAV's rounding, which we cannot check without the decoder); short
    remainders are tiled.
    """
    return crop_or_tile(waveforms, int(round(sr * seconds)), centre=True)


def ssl_align_window(waveforms: torch.Tensor, sr: int = 16000) -> torch.Tensor:
    """SSL-Align (and the paper code for LVS): first 10 s tiled, then samples
    ``[3.5·16000, 6.5·16000)``. The indices are hard-coded for 16 kHz in the original; we scale them
    by ``sr`` so the window stays at 3.5–6.5 s for other rates (identical at 16 kHz)."""
    ten = first_seconds(waveforms, sr, 10.0)
    return ten[..., int(3.5 * sr) : int(6.5 * sr)]


def paper_ezvsl_window(waveforms: torch.Tensor, sr: int) -> torch.Tensor:
    """Paper code (``vssl_eval`` ``load_spectrogram(dur=10)``) for EZ-VSL and SLAVC: first 10 s,
    tiled, then circularly rolled by :math:`\\lfloor 5\\,\\text{sr}\\rfloor - \\lfloor T/2\\rfloor`
    so the clip's centre lands at 5 s (a no-op for 10 s clips). The 200-frame centre crop of the
    spectrogram happens afterwards (:class:`ScipyLogPSD` ``crop_frames``)."""
    t = waveforms.shape[-1]
    ten = first_seconds(waveforms, sr, 10.0)
    shift = int(sr * 10.0 / 2) - int(t / 2)
    return torch.roll(ten, shifts=shift, dims=-1)


def paper_fnac_window(waveforms: torch.Tensor, sr: int) -> torch.Tensor:
    """Paper code for FNAC (effective path ``load_spectrogram(dur=3)``, models.md §6.5): the *first*
    3 s, tiled, rolled by :math:`\\lfloor 1.5\\,\\text{sr}\\rfloor - \\lfloor T/2\\rfloor`
    (−56,000 samples for a 10 s clip at 16 kHz)."""
    t = waveforms.shape[-1]
    three = first_seconds(waveforms, sr, 3.0)
    shift = int(sr * 3.0 / 2) - int(t / 2)
    return torch.roll(three, shifts=shift, dims=-1)


def paper_offscreen_window(waveforms: torch.Tensor, sr: int, seconds: float) -> torch.Tensor:
    """Paper code, off-screen clip of EZ-VSL / SLAVC (``seconds`` = 10) and FNAC (3): the first
    ``seconds``, tiled, **without** the roll applied to positives (paper-code-audit.md D7(c)). A clip
    shorter than ``seconds / 2`` is tiled to full length here; the paper's code tiles it only twice
    (its repeat count comes from the positive's length, D7(a)), which we do not reproduce."""
    return first_seconds(waveforms, sr, seconds)


# --------------------------------------------------------------------------------------------------
# spectrograms
# --------------------------------------------------------------------------------------------------


def tukey_periodic(n: int, alpha: float = 0.25, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Periodic Tukey window (scipy's ``get_window(('tukey', alpha), n)``, i.e. the symmetric window
    of length ``n + 1`` without its last sample).

    Symmetric window of length :math:`M`, :math:`w = \\lfloor \\alpha (M-1)/2 \\rfloor`:

    .. math::
        x_k = \\tfrac12\\left(1 + \\cos\\pi\\left(-1 + \\tfrac{2k}{\\alpha(M-1)}\\right)\\right),\\ k \\le w;
        \\quad 1 \\text{ in the middle};\\quad
        \\tfrac12\\left(1 + \\cos\\pi\\left(1 - \\tfrac{2}{\\alpha} + \\tfrac{2k}{\\alpha(M-1)}\\right)\\right),
        \\ k \\ge M - w - 1.
    """
    m = n + 1
    k = torch.arange(m, dtype=dtype)
    width = int(math.floor(alpha * (m - 1) / 2.0))
    w = torch.ones(m, dtype=dtype)
    lo = k[: width + 1]
    hi = k[m - width - 1 :]
    w[: width + 1] = 0.5 * (1 + torch.cos(math.pi * (-1 + 2.0 * lo / alpha / (m - 1))))
    w[m - width - 1 :] = 0.5 * (1 + torch.cos(math.pi * (-2.0 / alpha + 1 + 2.0 * hi / alpha / (m - 1))))
    return w[:n]


class ScipyLogPSD(nn.Module):
    """``log(scipy.signal.spectrogram(x, fs, nperseg, noverlap) + 1e-7) / 12`` in torch.

    scipy's defaults, re-implemented: periodic Tukey(0.25) window :math:`g`, segments of ``nperseg``
    samples every ``nperseg - noverlap`` (no padding, so :math:`\\lfloor (T - \\text{noverlap}) /
    \\text{hop} \\rfloor` frames), per-segment mean removed, one-sided FFT of length ``nperseg`` and
    density scaling

    .. math:: P_f = c_f\\,\\frac{|\\sum_n g_n (x_n - \\bar x) e^{-2\\pi i f n / N}|^2}{f_s \\sum_n g_n^2},
       \\qquad c_f = 2 \\text{ except at DC and Nyquist}.

    Computed in float64 (the loaders work in float64 NumPy) and returned as float32
    ``B × 1 × 257 × frames``. ``crop_frames`` takes the centre ``crop_frames`` columns like
    torchvision's ``CenterCrop`` (left offset ``round((frames - crop) / 2)``); ``clip`` clamps the
    waveform to [-1, 1] first, as every official loader of this family does. ``log=False`` skips the
    log (``P / 12``), as the paper code's loader does for silence and noise of the EZ-VSL family
    (audit D2; set only by :func:`vssl_helpers.compat.negative_frontend`).
    """

    def __init__(
        self, sample_rate: int, nperseg: int = 512, noverlap: int = 274, crop_frames: int | None = None,
        clip: bool = True, log: bool = True,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.nperseg = nperseg
        self.hop = nperseg - noverlap
        self.crop_frames = crop_frames
        self.clip = clip
        self.log = log
        # not persistent: no official checkpoint stores the loader's window
        self.register_buffer("window", tukey_periodic(nperseg), persistent=False)

    def psd(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Power spectral density ``B × 257 × frames`` (float64), before the log."""
        x = waveforms.to(torch.float64)
        if self.clip:
            x = x.clamp(-1.0, 1.0)
        if x.shape[-1] < self.nperseg:
            raise ValueError(f"ScipyLogPSD: need at least {self.nperseg} samples, got {x.shape[-1]}")
        seg = x.unfold(-1, self.nperseg, self.hop)  # B × frames × nperseg
        seg = seg - seg.mean(dim=-1, keepdim=True)  # detrend='constant'
        spec = torch.fft.rfft(seg * self.window, n=self.nperseg, dim=-1)
        p = spec.real**2 + spec.imag**2
        p = p / (self.sample_rate * float((self.window**2).sum()))
        if self.nperseg % 2 == 0:
            p[..., 1:-1] *= 2.0
        else:
            p[..., 1:] *= 2.0
        return p.transpose(-1, -2)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        p = self.psd(waveforms)
        logp = (torch.log(p + 1e-7) if self.log else p) / 12.0
        if self.crop_frames is not None:
            n = logp.shape[-1]
            if n < self.crop_frames:
                raise ValueError(f"ScipyLogPSD: {n} frames, cannot centre-crop {self.crop_frames}")
            left = int(round((n - self.crop_frames) / 2.0))
            logp = logp[..., left : left + self.crop_frames]
        return logp.to(torch.float32).unsqueeze(1)


def non_persistent(module: nn.Module) -> nn.Module:
    """Mark every buffer of ``module`` (recursively) as non-persistent, so a front end built from
    torchaudio transforms does not add keys (``window``, ``fb``) that no official checkpoint has."""
    for m in module.modules():
        m._non_persistent_buffers_set.update(m._buffers.keys())  # torch keeps this set per module
    return module


class MelDB(nn.Module):
    """SSL-TIE's front end: ``AmplitudeToDB()(MelSpectrogram(sr, n_fft=512, hop_length=239,
    n_mels=257, normalized=True)(x))``.

    torchaudio defaults apply: periodic Hann window of 512, ``center=True`` with reflect padding, power
    2, HTK mel scale from 0 to sr/2, no filter-bank normalisation; ``normalized=True`` divides the
    power by :math:`\\sum_n g_n^2`; dB is :math:`10\\log_{10}(\\max(x, 10^{-10}))` without ``top_db``.
    Output ``B × 1 × 257 × (1 + \\lfloor T/239 \\rfloor)``; no clipping or standardisation (as the
    official loader). ``log=False`` returns the mel power without the dB step, as the paper code's
    SSL-TIE loader does for silence and noise (audit D2).
    """

    def __init__(self, sample_rate: int = 16000, log: bool = True) -> None:
        super().__init__()
        with warnings.catch_warnings():
            # 257 mels on a 257-bin STFT leave 28 all-zero filters; that is the official setting (models.md §7.3)
            warnings.filterwarnings("ignore", message=".*filterbank has all zero values.*")
            mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=512, hop_length=239, n_mels=257, normalized=True)
        self.mel = non_persistent(mel)
        self.to_db = non_persistent(torchaudio.transforms.AmplitudeToDB())
        self.log = log

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        power = self.mel(waveforms.to(torch.float32))
        return (self.to_db(power) if self.log else power).unsqueeze(1)


class Frontend(nn.Module):
    """A window function (which samples are read) followed by a spectrogram module.

    ``window(waveforms, sample_rate) -> waveforms`` is one of the functions above; ``spectrogram`` maps
    ``B × T'`` to ``B × 1 × F × frames``. ``description`` goes into ``Preprocessing.audio_frontend``.
    The front end receives whole clips (nothing is cropped before it). ``offscreen_window``, when
    given, is the window of clips used as off-screen audio (:meth:`offscreen`), for loaders that read
    them differently from positives (the paper's code: first seconds without the centring roll,
    paper-code-audit.md D7(c)); ``None`` reads them like positives.
    """

    def __init__(self, window, spectrogram: nn.Module, sample_rate: int, description: str, offscreen_window=None) -> None:
        super().__init__()
        self.window = window
        self.offscreen_window = offscreen_window
        self.spectrogram = spectrogram
        self.sample_rate = sample_rate
        self.description = description

    @staticmethod
    def _check(waveforms: torch.Tensor) -> None:
        if waveforms.dim() != 2:
            raise ValueError(f"audio front end: expected B x T mono waveforms, got shape {tuple(waveforms.shape)}")

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        self._check(waveforms)
        return self.spectrogram(self.window(waveforms, self.sample_rate))

    def offscreen(self, waveforms: torch.Tensor) -> torch.Tensor:
        """The spectrogram of clips used as off-screen audio (``offscreen_window``, or the positive
        window when there is none)."""
        self._check(waveforms)
        window = self.window if self.offscreen_window is None else self.offscreen_window
        return self.spectrogram(window(waveforms, self.sample_rate))
