"""Figures for the book: how a map becomes a localization map, success curves, map comparisons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .. import metrics as M

if TYPE_CHECKING:
    from ..testsets.base import Sample

__all__ = [
    "plot_binarisation",
    "plot_success_curves",
    "plot_map_pairs",
    "plot_samples",
    "plot_spectrograms",
    "plot_maxima",
    "log_mel_db",
]

GT_COLOUR = "#2ca02c"


def _outline(ax: plt.Axes, mask: np.ndarray, colour: str, label: str | None = None) -> None:
    if mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.5)
    if label:
        ax.plot([], [], color=colour, label=label)


def plot_binarisation(
    native: torch.Tensor,
    threshold: float,
    gt: torch.Tensor | None = None,
    title: str = "",
) -> Figure:
    """Native map → upsampled 224 × 224 map → localization map at ``threshold`` (with the GT outline).

    Panels carry the numbers a reader can check: native max, IoU with the GT (when given) and pIA.
    ``native`` is ``1 × h × w``, ``gt`` is ``1 × 224 × 224`` boolean.
    """
    up = M.upsample(native)[0].numpy()
    loc = up > threshold
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.4), constrained_layout=True)
    vmin, vmax = float(native.min()), float(native.max())
    im = axes[0].imshow(native[0].numpy(), cmap="magma", vmin=vmin, vmax=vmax)
    axes[0].set_title(f"native {native.shape[1]}×{native.shape[2]} (max {vmax:.3f})")
    axes[1].imshow(up, cmap="magma", vmin=vmin, vmax=vmax)
    axes[1].contour(up, levels=[threshold], colors=["white"], linewidths=1, linestyles="--")
    axes[1].set_title(f"upsampled 224×224, t = {threshold:g}")
    axes[2].imshow(loc, cmap="gray", vmin=0, vmax=1)
    text = f"pIA = {M.pia(native, threshold).item():.3f}"
    if gt is not None:
        _outline(axes[2], gt[0].numpy(), GT_COLOUR, "GT")
        text = f"IoU = {M.ciou(native, gt, threshold).item():.3f}, " + text
        axes[2].legend(loc="lower right", fontsize=8)
    axes[2].set_title(text)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[:2], shrink=0.8, label="similarity")
    if title:
        fig.suptitle(title)
    return fig


def plot_success_curves(
    curves: Mapping[str, Sequence[float] | torch.Tensor],
    direction: Literal[">=", "<="] = ">=",
    xlabel: str = r"$\tau$",
) -> Figure:
    """Success-ratio curves over the 21-point tau grid with their trapezoid area (AUC or AUC_N)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4), constrained_layout=True)
    tau = M.TAU_GRID.numpy()
    for name, values in curves.items():
        s = M.success_curve(values, direction).numpy()
        area = M.auc(values) if direction == ">=" else M.auc_n(values)
        line = ax.plot(tau, s, marker="o", ms=3, label=f"{name}: area = {area:.3f}")[0]
        ax.fill_between(tau, s, alpha=0.12, color=line.get_color())
    what = "IoU ≥ τ" if direction == ">=" else "pIA ≤ τ"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"fraction of samples with {what}")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    return fig


def plot_map_pairs(
    maps: Mapping[str, torch.Tensor],
    threshold: float,
    reference: str,
) -> Figure:
    """Localization maps of several audios for one image, each with its IoU against ``reference``."""
    names = list(maps)
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.9), constrained_layout=True)
    ref = maps[reference]
    for ax, name in zip(np.atleast_1d(axes), names):
        loc = M.binarize(M.upsample(maps[name]), threshold)[0].numpy()
        ax.imshow(loc, cmap="gray", vmin=0, vmax=1)
        iou = M.map_iou(ref, maps[name], threshold).item()
        label = "" if name == reference else f"\nIoU vs {reference} = {iou:.2f}"
        ax.set_title(f"{name}{label}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def plot_samples(samples: Sequence[Sample], columns: int = 4) -> Figure:
    """A grid of test samples: image, GT outline, and the sounding class as title."""
    rows = -(-len(samples) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.5 * columns, 2.7 * rows), constrained_layout=True)
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, s in zip(np.atleast_1d(axes).ravel(), samples):
        ax.imshow(np.asarray(s.image))
        _outline(ax, np.asarray(s.gt_mask), GT_COLOUR)
        ax.set_title(f"{s.classes[0]}\n({s.category})", fontsize=8)
    return fig


def log_mel_db(waveform: np.ndarray, sample_rate: int, n_mels: int = 64) -> np.ndarray:
    """Log-mel power spectrogram in dB (n_fft 512, hop 256), for pictures."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=512, hop_length=256, n_mels=n_mels)
    return (10 * torch.log10(mel(torch.as_tensor(waveform, dtype=torch.float32)) + 1e-10)).numpy()


def plot_spectrograms(clips: Mapping[str, np.ndarray], sample_rate: int, columns: int = 4) -> Figure:
    """Log-mel spectrograms of named clips (e.g. one sound per category), on one colour scale."""
    names = list(clips)
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 2.2 * rows), constrained_layout=True, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        ax.axis("on")
        spec = log_mel_db(clips[name], sample_rate)
        dur = len(clips[name]) / sample_rate
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=max(-20.0, float(spec.max())), extent=(0, dur, 0, spec.shape[0]))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("s", fontsize=8)
        ax.set_yticks([])
    return fig


def plot_maxima(maxima: Mapping[str, Mapping[str, torch.Tensor | np.ndarray]], thresholds: Mapping[str, float] | None = None) -> Figure:
    """Fig. 1: boxplots of the per-sample maximum of the raw map, per model and audio type, with
    each model's universal threshold as a horizontal line. ``maxima[model][audio_type]``."""
    import pandas as pd
    import seaborn as sns

    rows = [
        {"model": model, "audio": kind, "max": float(v)}
        for model, by_kind in maxima.items()
        for kind, values in by_kind.items()
        for v in np.asarray(values).ravel()
    ]
    df = pd.DataFrame(rows)
    models = list(maxima)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.9 * len(models)), 3.8), constrained_layout=True)
    sns.boxplot(data=df, x="model", y="max", hue="audio", ax=ax, fliersize=1, linewidth=0.8, order=models)
    if thresholds:
        for k, m in enumerate(models):
            if m in thresholds:
                ax.hlines(thresholds[m], k - 0.45, k + 0.45, colors="black", linewidth=1.6)
                ax.text(k, thresholds[m], f"Thr {thresholds[m]:.3f}", ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("max of the raw map")
    ax.set_xlabel("")
    ax.legend(fontsize=8, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig
