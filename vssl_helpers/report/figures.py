"""Figures for the book: how a map becomes a localization map, success curves, map comparisons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .. import metrics as M

if TYPE_CHECKING:
    import pandas as pd

    from ..testsets.base import Sample

__all__ = [
    "plot_binarisation",
    "plot_success_curves",
    "plot_map_pairs",
    "plot_samples",
    "plot_spectrograms",
    "plot_maxima",
    "log_mel_db",
    "AUDIO_TYPES",
    "AUDIO_COLOURS",
    "MAP_IOU_COLUMNS",
    "plot_threshold_choice",
    "plot_threshold_sweep",
    "clipped_normalised",
    "plot_qualitative_grid",
    "plot_map_iou_bars",
    "plot_audio_negatives",
    "plot_threshold_view",
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


# ==================================================================================================
# Result chapters: thresholds, sweeps, qualitative grids (Fig. 2), map-vs-map IoU (Fig. 3)

AUDIO_TYPES: tuple[str, ...] = ("positive", "silence", "noise", "offscreen")
"""Audio types in the order of the paper's figures."""

AUDIO_COLOURS: dict[str, str] = {"positive": "#2ca02c", "silence": "#7f7f7f", "noise": "#1f77b4", "offscreen": "#ff7f0e"}
"""One colour per audio type, shared by every result figure."""


def plot_threshold_choice(
    maxima: Mapping[str, torch.Tensor | np.ndarray],
    threshold: float,
    per_type_q3: Mapping[str, float] | None = None,
    title: str = "",
) -> Figure:
    """Fig. 1 for one model: boxplots of the per-sample maximum of the raw map per audio type, the Q3
    of each negative type (dashed, in the type's colour) and the universal threshold (solid black).

    ``maxima[audio_type]`` holds the per-sample maxima (negatives pooled over seeds); ``per_type_q3``
    is :attr:`~vssl_helpers.threshold.UniversalThreshold.per_type_q3` (empty for a fixed rule).
    """
    kinds = [k for k in AUDIO_TYPES if k in maxima] + [k for k in maxima if k not in AUDIO_TYPES]
    data = [np.asarray(maxima[k], dtype=np.float64).ravel() for k in kinds]
    fig, ax = plt.subplots(figsize=(6.0, 3.6), constrained_layout=True)
    box = ax.boxplot(data, patch_artist=True, widths=0.55, flierprops={"markersize": 2, "alpha": 0.5})
    ax.set_xticks(range(1, len(kinds) + 1), kinds)
    for patch, k in zip(box["boxes"], kinds):
        patch.set_facecolor(AUDIO_COLOURS.get(k, "#cccccc"))
        patch.set_alpha(0.55)
    for median in box["medians"]:
        median.set_color("black")
    for k, q3 in (per_type_q3 or {}).items():
        if k in kinds:
            x = kinds.index(k) + 1
            ax.hlines(q3, x - 0.35, x + 0.35, colors=AUDIO_COLOURS.get(k, "black"), linestyles="--", linewidth=1.6)
            ax.text(x + 0.37, q3, f"Q3 {q3:.3f}", va="center", fontsize=7, color=AUDIO_COLOURS.get(k, "black"))
    ax.axhline(threshold, color="black", linewidth=1.5, label=f"threshold {threshold:.3f}")
    ax.set_ylabel("max of the raw map")
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_threshold_sweep(sweep: "pd.DataFrame", threshold: float | None = None, title: str = "") -> Figure:
    """cIoU and pIA (each negative type and their mean) against the threshold, from
    :func:`vssl_helpers.report.tables.threshold_sweep`; the chosen threshold as a vertical line."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6), constrained_layout=True)
    t = sweep["threshold"].to_numpy()
    ax.plot(t, sweep["ciou"], color=AUDIO_COLOURS["positive"], linewidth=2, label="cIoU (positive)")
    for k in ("silence", "noise", "offscreen"):
        ax.plot(t, sweep[f"pia_{k}"], color=AUDIO_COLOURS[k], linewidth=1, alpha=0.8, label=f"pIA {k}")
    ax.plot(t, sweep["pia_mean"], color="black", linewidth=1.6, linestyle=":", label="mean pIA")
    ax.plot(t, sweep["f_loc"], color="#9467bd", linewidth=1.6, label=r"$F_{LOC}$")
    if threshold is not None:
        ax.axvline(threshold, color="black", linewidth=1.2, label=f"U.th. {threshold:.3f}")
    ax.set_xlabel("threshold (raw map units)")
    ax.set_ylabel("percent")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def clipped_normalised(native: torch.Tensor, threshold: float) -> np.ndarray:
    """Fig. 2's display map: upsample to 224 × 224, clip everything at or below ``threshold`` (it
    becomes 0), then normalise to [0, 1]: ``max(S - t, 0) / max(S - t)``. Measuring from the threshold
    keeps the rule meaningful for negative thresholds too (a plain "set to 0" would lift the clipped
    pixels above the kept ones). An empty localization map stays all 0. ``native``: ``h × w`` or
    ``1 × h × w``."""
    up = M.upsample(native.reshape(1, *native.shape[-2:]))[0].double()
    above = (up - float(threshold)).clamp(min=0.0)
    hi = float(above.max())
    if hi <= 0:
        return np.zeros(above.shape, dtype=np.float64)
    return (above / hi).numpy()


def _image_axis(ax: plt.Axes, image: np.ndarray | None) -> None:
    # drawn over the 224 x 224 frame of the GT masks and upsampled maps, whatever its own size (a
    # model's view, e.g. 112 px for the demo models, or a decoded original)
    if image is not None:
        ax.imshow(np.asarray(image), extent=(-0.5, M.GT_SIZE - 0.5, M.GT_SIZE - 0.5, -0.5))
    ax.set_xticks([])
    ax.set_yticks([])


def plot_qualitative_grid(
    maps: Mapping[str, Mapping[str, torch.Tensor]],
    thresholds: Mapping[str, float],
    image: np.ndarray | Mapping[str, np.ndarray],
    gt: np.ndarray | torch.Tensor | None = None,
    title: str = "",
) -> Figure:
    """Fig. 2: one row per model, a first column with the image and its GT, then one column per audio.

    ``image``: one image for every row, or ``image[model]``, the image each model saw (its
    ``preprocessing.image_transform.view`` of the decoded frame), drawn over the 224 × 224 GT frame.

    ``maps[model][audio]`` is a native map (``h × w``); each is shown as
    :func:`clipped_normalised` at ``thresholds[model]`` overlaid on the image (transparent where
    zero), with the raw map's min and max above it.
    """
    models = list(maps)
    audios = list(next(iter(maps.values()))) if maps else []
    fig, axes = plt.subplots(
        len(models), len(audios) + 1, figsize=(1.9 * (len(audios) + 1), 2.0 * len(models) + 0.4),
        constrained_layout=True, squeeze=False,
    )
    gt_np = None if gt is None else np.asarray(gt).astype(bool)
    for r, model in enumerate(models):
        shown_image = image[model] if isinstance(image, Mapping) else image
        ax = axes[r][0]
        _image_axis(ax, shown_image)
        if gt_np is not None:
            _outline(ax, gt_np, GT_COLOUR)
        ax.set_ylabel(f"{model}\nthr {thresholds[model]:.3f}", fontsize=8)
        if r == 0:
            ax.set_title("image + GT", fontsize=9)
        for c, audio in enumerate(audios, start=1):
            ax = axes[r][c]
            native = maps[model][audio]
            shown = clipped_normalised(native, thresholds[model])
            _image_axis(ax, shown_image)
            ax.imshow(np.ma.masked_equal(shown, 0.0), cmap="jet", vmin=0, vmax=1, alpha=0.55)
            label = f"{audio}\n" if r == 0 else ""
            ax.set_title(f"{label}min {float(native.min()):.2f} max {float(native.max()):.2f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


MAP_IOU_COLUMNS: dict[str, str] = {
    "mapiou_pos_silence": "positive vs silence",
    "mapiou_pos_noise": "positive vs noise",
    "mapiou_pos_offscreen": "positive vs offscreen",
    "mapiou_neg_neg": "negative vs negative",
}
"""Fig. 3's bars: the result-row column of each map-vs-map IoU, and its label."""


def plot_map_iou_bars(rows: Mapping[str, Mapping[str, float]], title: str = "") -> Figure:
    """Fig. 3: IoU (percent) between localization maps of pairs of audios, one bar per model in each
    group. ``rows[model]`` is a result row with the :data:`MAP_IOU_COLUMNS` (percent)."""
    models = list(rows)
    groups = list(MAP_IOU_COLUMNS)
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(7.0, 3.4), constrained_layout=True)
    for k, model in enumerate(models):
        values = [float(rows[model][g]) for g in groups]
        ax.bar(x - 0.4 + width * (k + 0.5), values, width=width, label=model)
    ax.set_xticks(x, [MAP_IOU_COLUMNS[g] for g in groups], fontsize=8)
    ax.set_ylabel("IoU between localization maps (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(3, len(models)), loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_audio_negatives(
    image: np.ndarray,
    gt: np.ndarray | torch.Tensor,
    clips: Mapping[str, np.ndarray],
    sample_rate: int,
    title: str = "",
) -> Figure:
    """One sample of the extended test set: the image with its GT, then the log-mel spectrogram of
    each audio paired with it (positive, silence, noise, offscreen) on one colour scale."""
    names = list(clips)
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(2.3 * (len(names) + 1), 2.4), constrained_layout=True)
    _image_axis(axes[0], image)
    _outline(axes[0], np.asarray(gt).astype(bool), GT_COLOUR)
    axes[0].set_title(title or "image + GT", fontsize=8)
    for ax, name in zip(axes[1:], names):
        wave = np.asarray(clips[name], dtype=np.float32)
        spec = log_mel_db(wave, sample_rate)
        dur = len(wave) / sample_rate
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=max(-20.0, float(spec.max())),
                  extent=(0, dur, 0, spec.shape[0]))
        ax.set_title(name, fontsize=9, color=AUDIO_COLOURS.get(name.split(":")[0], "black"))
        ax.set_xlabel("s", fontsize=8)
        ax.set_yticks([])
    return fig


def plot_threshold_view(
    image: np.ndarray,
    gt: np.ndarray | torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    threshold: float,
) -> Figure:
    """Localization maps of one image at ``threshold``: the binarised map of each audio over the image,
    titled with the IoU with the GT (positive) or the pIA (negatives). ``maps[audio]`` is ``h × w``."""
    gt_t = torch.as_tensor(np.asarray(gt)).bool().reshape(1, M.GT_SIZE, M.GT_SIZE)
    fig, axes = plt.subplots(1, len(maps), figsize=(2.4 * len(maps), 2.7), constrained_layout=True, squeeze=False)
    for ax, (name, native) in zip(axes[0], maps.items()):
        m = native.reshape(1, *native.shape[-2:])
        loc = M.binarize(M.upsample(m), threshold)[0].numpy()
        _image_axis(ax, image)
        ax.imshow(np.ma.masked_equal(loc.astype(float), 0.0), cmap="autumn", vmin=0, vmax=1, alpha=0.5)
        _outline(ax, gt_t[0].numpy(), GT_COLOUR)
        if name == "positive":
            text = f"IoU {M.ciou(m, gt_t, threshold, empty_gt='zero').item():.2f}"
        else:
            text = f"pIA {100 * M.pia(m, threshold).item():.1f}%"
        ax.set_title(f"{name}\nmax {float(native.max()):.3f} | {text}", fontsize=8, color=AUDIO_COLOURS.get(name, "black"))
    return fig
