"""Evaluation engine: encode once, score many.

For a model and an extended test set (positives plus, for each of S seeds, silence, noise and an
off-screen clip per sample), every image is encoded once and every *distinct* audio once: silence
is one clip for the whole set (it is the same for every seed), off-screen audio is another test
clip whose embedding already exists, and only the noise clips are new. Maps come from pairing
embeddings; metrics are computed from the maps afterwards, never inside the model loop.

This module holds the in-memory core. (Map store, resume and the command line build on it.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import metrics as M
from .models.registry import VSSLModel
from .threshold import NEGATIVE_TYPES, UniversalThreshold, per_sample_max

__all__ = ["ExtendedMaps", "compute_extended_maps", "summarize", "maxima_by_type"]


@dataclass
class ExtendedMaps:
    """All native maps of one model on one extended test set.

    ``positive``: N × h × w. ``silence``: N × h × w (identical for every seed). ``noise`` and
    ``offscreen``: S × N × h × w. ``offscreen_index``: S × N, the test clip used as off-screen audio.
    """

    positive: torch.Tensor
    silence: torch.Tensor
    noise: torch.Tensor
    offscreen: torch.Tensor
    offscreen_index: np.ndarray
    meta: dict = field(default_factory=dict)

    def negatives(self, kind: str) -> torch.Tensor:
        """Maps of one negative type pooled over seeds: (S·N) × h × w (silence repeated S times)."""
        s = self.noise.shape[0]
        if kind == "silence":
            return self.silence.unsqueeze(0).expand(s, -1, -1, -1).reshape(-1, *self.silence.shape[1:])
        if kind == "noise":
            return self.noise.reshape(-1, *self.noise.shape[2:])
        if kind == "offscreen":
            return self.offscreen.reshape(-1, *self.offscreen.shape[2:])
        raise ValueError(f"negative type: expected one of {NEGATIVE_TYPES}, got {kind!r}")


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    out = [fn(x[s : s + batch].to(device)) for s in range(0, x.shape[0], batch)]
    return torch.cat(out)


@torch.no_grad()
def compute_extended_maps(
    model: VSSLModel,
    images: torch.Tensor,
    audio: torch.Tensor,
    offscreen_index: np.ndarray,
    noise: Callable[[int, int, int], np.ndarray],
    gt: torch.Tensor | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> ExtendedMaps:
    """Maps of ``model`` for every sample with its positive audio and the S seeds' negatives.

    Args:
        images: N × 3 × H × W float in [0, 1] at the model's input size.
        audio: N × T positive waveforms (the off-screen pool is these same clips).
        offscreen_index: S × N int array: for seed s, sample i is paired with clip
            ``offscreen_index[s, i]`` as off-screen audio.
        noise: ``noise(seed_index, sample_index, n_samples) -> waveform``, the noise clip of that
            (seed, sample) (e.g. :func:`vssl_helpers.negatives.noise` with the manifest's seeds).
        gt: N × 224 × 224 masks, passed to models that declare ``config.needs_gt``.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    model = model.to(device).eval()
    n, t = audio.shape
    s_count = offscreen_index.shape[0]
    if offscreen_index.shape != (s_count, n):
        raise ValueError(f"offscreen_index: expected shape (S, {n}), got {offscreen_index.shape}")
    if model.config.needs_gt and gt is None:
        raise ValueError(f"{model.config.name}: this model needs the GT masks (gt=...)")

    def enc_img(i0: int, i1: int) -> torch.Tensor:
        g = gt[i0:i1].to(device) if (gt is not None and model.config.needs_gt) else None
        return model.encode_images(images[i0:i1].to(device), gt=g)

    visual = torch.cat([enc_img(s, min(s + batch_size, n)) for s in range(0, n, batch_size)])
    pos_emb = _batched(model.encode_audio, audio, batch_size, device)
    sil_emb = model.encode_audio(torch.zeros(1, t, device=device))
    positive = model.similarity(visual, pos_emb)
    silence = model.similarity(visual, sil_emb.expand(n, *sil_emb.shape[1:]))
    noise_maps, off_maps = [], []
    for s in tqdm(range(s_count), desc=f"{model.config.name}: seeds", disable=not progress):
        clips = torch.from_numpy(np.stack([noise(s, i, t) for i in range(n)]).astype(np.float32))
        noise_maps.append(model.similarity(visual, _batched(model.encode_audio, clips, batch_size, device)))
        off_maps.append(model.similarity(visual, pos_emb[torch.as_tensor(offscreen_index[s], device=device)]))
    return ExtendedMaps(
        positive=positive.float().cpu(),
        silence=silence.float().cpu(),
        noise=torch.stack(noise_maps).float().cpu(),
        offscreen=torch.stack(off_maps).float().cpu(),
        offscreen_index=np.asarray(offscreen_index),
        meta={"model": model.config.name},
    )


def maxima_by_type(maps: ExtendedMaps) -> dict[str, torch.Tensor]:
    """Per-sample maxima of the raw maps for positives and each negative type (pooled over seeds)."""
    out = {"positive": per_sample_max(maps.positive)}
    for kind in NEGATIVE_TYPES:
        out[kind] = per_sample_max(maps.negatives(kind))
    return out


def summarize(
    maps: ExtendedMaps,
    gt: torch.Tensor,
    threshold: float | UniversalThreshold,
    empty_gt: M.EmptyGtRule = "exclude",
) -> dict[str, float]:
    """Every Table I column (in percent) plus diagnostics, from the maps at one threshold.

    Columns: ``ciou_uth`` (mean IoU), ``ciou_adap`` (fraction of top-M IoUs >= 0.5), ``auc_uth``,
    ``auc_adap``, ``pia_<type>``, ``auc_n_<type>`` (pooled over seeds), ``f_loc``, ``f_auc``;
    diagnostics: ``auroc_<type>`` (max similarity, positive vs each negative), ``mapiou_pos_<type>``
    and ``mapiou_neg_neg`` (Fig. 3), ``ciou05_uth`` (fraction of IoUs >= 0.5 at U.th.).
    """
    t = float(threshold)
    s_count = maps.noise.shape[0]
    ious = M.ciou(maps.positive, gt, t, empty_gt)
    ious_adap = M.ciou_adaptive(maps.positive, gt, empty_gt)
    row: dict[str, float] = {
        "threshold": t,
        "ciou_uth": 100 * M.mean_iou(ious),
        "ciou_adap": 100 * M.success_rate(ious_adap, 0.5),
        "auc_uth": 100 * M.auc(ious),
        "auc_adap": 100 * M.auc(ious_adap),
        "ciou05_uth": 100 * M.success_rate(ious, 0.5),
        "n_samples": float(maps.positive.shape[0]),
        "n_empty_gt": float(M.count_empty_gt(gt)),
    }
    pia_mean, aucn = {}, {}
    maxima = maxima_by_type(maps)
    pos_rep = maps.positive.unsqueeze(0).expand(s_count, -1, -1, -1).reshape(-1, *maps.positive.shape[1:])
    neg_maps = {}
    for kind in NEGATIVE_TYPES:
        neg = maps.negatives(kind)
        neg_maps[kind] = neg
        p = M.pia(neg, t)
        pia_mean[kind] = float(p.mean())
        aucn[kind] = M.auc_n(p)
        row[f"pia_{kind}"] = 100 * pia_mean[kind]
        row[f"auc_n_{kind}"] = 100 * aucn[kind]
        row[f"auroc_{kind}"] = M.auroc(maxima["positive"], maxima[kind])
        row[f"mapiou_pos_{kind}"] = 100 * float(M.map_iou(pos_rep, neg, t).mean())
    pairs = [("silence", "noise"), ("silence", "offscreen"), ("noise", "offscreen")]
    row["mapiou_neg_neg"] = 100 * float(np.mean([M.map_iou(neg_maps[a], neg_maps[b], t).mean() for a, b in pairs]))
    row["f_loc"] = 100 * M.f_loc(row["ciou_uth"] / 100, pia_mean)
    row["f_auc"] = 100 * M.f_auc(row["auc_uth"] / 100, aucn)
    return row

