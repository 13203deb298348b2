"""Figures for the book: how a map becomes a localization map, success curves, map comparisons."""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .. import metrics as M

__all__ = ["plot_binarisation", "plot_success_curves", "plot_map_pairs"]

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
