"""Evaluation engine: encode once, score many.

For a model and an extended test set (positives plus, for each of S seeds, silence, noise and an
off-screen clip per sample), every image is encoded once and every *distinct* audio once: silence
is one clip for the whole set (it is the same for every seed), off-screen audio is another test
clip whose embedding already exists, and only the noise clips are new (one per sample and seed, as
the paper; with a manifest's opt-in noise bank, :func:`vssl_helpers.negatives.with_noise_bank`, K
clips per seed encoded once). Maps come from pairing
embeddings; metrics are computed from the maps afterwards, never inside the model loop.

This module holds the one evaluation function, :func:`evaluate` (model, test set, manifest,
:class:`EvalOptions` -> :class:`EvalResult`): media decoded in DataLoader workers, maps written in
atomic shards to a :class:`~vssl_helpers.store.MapStore` (resumable; a temporary store when nothing
should persist), metrics computed from the store, pooled over seeds and per seed
(:func:`summarize_extended`, :func:`summarize`), and results files (:func:`results_dict`,
:func:`write_results`). The ``vssl`` command line (:mod:`vssl_helpers.cli`), the book
(:mod:`vssl_helpers.report.runs`), the notebooks and the benchmarks call it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.utils.data

from . import metrics as M
from .compat import Compat, Scorer, negative_frontend, noise_clipped
from .defaults import DEFAULTS
from .models.registry import Preprocessing, VSSLModel
from .negatives import Manifest
from .store import MapStore, StoreKey, StoreRun, atomic_write, state_dict_sha256
from .threshold import NEGATIVE_TYPES, ThresholdRule, UniversalThreshold, per_sample_max

__all__ = [
    "ExtendedMaps",
    "summarize",
    "resolve_threshold",
    "maxima_by_type",
    "summarize_extended",
    "EvalOptions",
    "EvalResult",
    "evaluate",
    "compute_shards",
    "store_run",
    "ShardReport",
    "load_stored_maps",
    "store_key",
    "results_dict",
    "write_results",
    "compare_dtypes",
]


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


def maxima_by_type(maps: ExtendedMaps) -> dict[str, torch.Tensor]:
    """Per-sample maxima of the raw maps for positives and each negative type (pooled over seeds)."""
    out = {"positive": per_sample_max(maps.positive)}
    for kind in NEGATIVE_TYPES:
        out[kind] = per_sample_max(maps.negatives(kind))
    return out


def resolve_threshold(
    rule: ThresholdRule, maxima: Mapping[str, torch.Tensor], threshold: float | UniversalThreshold | None = None
) -> UniversalThreshold:
    """The threshold of a run: ``threshold`` when given (a number, e.g. the VGG-SS threshold reused
    on IS3, or a resolved one), otherwise the model's own rule applied to the negatives' maxima."""
    if threshold is None:
        return rule.resolve({k: maxima[k] for k in NEGATIVE_TYPES})
    if isinstance(threshold, UniversalThreshold):
        return threshold
    return UniversalThreshold(value=float(threshold), rule="given")


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
    # one implementation of the arithmetic: the pooled row of summarize_extended (per-map values are
    # computed once there; the per-seed rows come almost for free)
    return summarize_extended(maps, gt, threshold, empty_gt)[0]



# ==================================================================================================
# Per-seed and pooled summary from per-map values computed once


def _row(
    t: float,
    ious: torch.Tensor,
    ious_adap: torch.Tensor,
    pos_max: torch.Tensor,
    neg: dict[str, dict[str, torch.Tensor]],
    neg_neg: torch.Tensor,
    n_samples: int,
    n_empty: int,
    scorer: Scorer | None = None,
) -> dict[str, float]:
    """One Table I row from per-map values (same formulas and reduction order as :func:`summarize`);
    the aggregates of ``scorer`` (default: the plain metrics; see :mod:`vssl_helpers.compat`)."""
    sc = scorer or Scorer()
    row: dict[str, float] = {
        "threshold": t,
        "ciou_uth": 100 * sc.mean_iou(ious),
        "ciou_adap": 100 * sc.success_rate(ious_adap, 0.5),
        "auc_uth": 100 * sc.auc(ious),
        "auc_adap": 100 * sc.auc(ious_adap),
        "ciou05_uth": 100 * sc.success_rate(ious, 0.5),
        "n_samples": float(n_samples),
        "n_empty_gt": float(n_empty),
    }
    pia_mean, aucn = {}, {}
    for kind in NEGATIVE_TYPES:
        p = neg[kind]["pia"]
        pia_mean[kind] = float(p.mean())
        aucn[kind] = sc.auc_n(p)
        row[f"pia_{kind}"] = 100 * pia_mean[kind]
        row[f"auc_n_{kind}"] = 100 * aucn[kind]
        row[f"auroc_{kind}"] = M.auroc(pos_max, neg[kind]["max"])
        row[f"mapiou_pos_{kind}"] = 100 * float(neg[kind]["mapiou_pos"].mean())
    row["mapiou_neg_neg"] = 100 * float(np.mean([x.mean() for x in neg_neg]))  # as summarize()
    row["f_loc"] = 100 * sc.f_loc(row["ciou_uth"] / 100, pia_mean)
    row["f_auc"] = 100 * sc.f_auc(row["auc_uth"] / 100, aucn)
    return row


def summarize_extended(
    maps: ExtendedMaps,
    gt: torch.Tensor,
    threshold: float | UniversalThreshold,
    empty_gt: M.EmptyGtRule = "exclude",
    compat: Compat | None = None,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """The pooled Table I row (equal to :func:`summarize`) and one row per seed, at one threshold.

    Per-map values (IoUs, pIA, map-vs-map IoUs, maxima) are computed once: positives once for all
    seeds, silence once (it does not depend on the seed), noise and off-screen once per seed. Rows
    are aggregates of those; the pooled row concatenates the seeds in the order of
    :meth:`ExtendedMaps.negatives`, so it equals :func:`summarize` value for value. Each per-seed row
    has the same columns plus ``seed``; its positive columns are the pooled ones (positives do not
    depend on the seed) and its AUROC compares positive maxima with that seed's negatives.

    ``compat``: the metric switches of the reference-code compatibility mode
    (:class:`vssl_helpers.compat.Compat`); ``None`` or no effective switch is the default scoring.
    """
    t = float(threshold)
    sc = Scorer(compat)
    s_count, n = maps.noise.shape[:2]
    gt_rows = M.prepare_gt(gt)  # read once for both positive scores
    ious = sc.ciou(maps.positive, gt_rows, t, empty_gt)
    ious_adap = sc.ciou_adaptive(maps.positive, gt, gt_rows, empty_gt)
    n_empty = M.count_empty_gt(gt)
    pos_max = per_sample_max(maps.positive)
    sil = {"pia": sc.pia(maps.silence, t), "max": per_sample_max(maps.silence),
           "mapiou_pos": sc.map_iou(maps.positive, maps.silence, t, a_positive=True)}
    per_seed_neg: list[dict[str, dict[str, torch.Tensor]]] = []
    per_seed_nn: list[list[torch.Tensor]] = []
    for s in range(s_count):
        d = {"silence": sil}
        for kind, m in (("noise", maps.noise[s]), ("offscreen", maps.offscreen[s])):
            d[kind] = {"pia": sc.pia(m, t), "max": per_sample_max(m), "mapiou_pos": sc.map_iou(maps.positive, m, t, a_positive=True)}
        per_seed_neg.append(d)
        per_seed_nn.append([
            sc.map_iou(maps.silence, maps.noise[s], t),
            sc.map_iou(maps.silence, maps.offscreen[s], t),
            sc.map_iou(maps.noise[s], maps.offscreen[s], t),
        ])
    rows = []
    for s in range(s_count):
        r = _row(t, ious, ious_adap, pos_max, per_seed_neg[s], torch.stack(per_seed_nn[s]), n, n_empty, sc)
        rows.append({"seed": float(s), **r})
    pooled_neg = {
        kind: {key: torch.cat([per_seed_neg[s][kind][key] for s in range(s_count)]) for key in ("pia", "max", "mapiou_pos")}
        for kind in NEGATIVE_TYPES
    }
    # per pair, seeds concatenated (seed-major), as summarize() pairs negatives(a) with negatives(b)
    pooled_nn = [torch.cat([per_seed_nn[s][j] for s in range(s_count)]) for j in range(3)]
    pooled = _row(t, ious, ious_adap, pos_max, pooled_neg, pooled_nn, n, n_empty, sc)  # type: ignore[arg-type]
    return pooled, rows


# ==================================================================================================
# Stored path: media sources, DataLoader datasets, shards


def _collate_clips(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """Whole clips of a batch, kept as a list (their lengths may differ; see :func:`_encode_clips`)."""
    return list(batch)


def _encode_clips(encode: Callable[[torch.Tensor], torch.Tensor], clips: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """``encode`` of whole clips of possibly different lengths, rows in input order.

    The model's front end chooses its window from the whole clip, so clips are not cut to a common
    length here; clips of equal length are stacked and encoded together (one call in the common
    all-equal case), each length group separately otherwise.
    """
    if not clips:
        raise ValueError("_encode_clips: no clips")
    lengths = [int(c.shape[-1]) for c in clips]
    if len(set(lengths)) == 1:
        return encode(torch.stack(clips).to(device, non_blocking=True))
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    out: list[torch.Tensor | None] = [None] * len(clips)
    for idx in groups.values():
        emb = encode(torch.stack([clips[i] for i in idx]).to(device, non_blocking=True))
        for k, i in enumerate(idx):
            out[i] = emb[k]
    return torch.stack(out)  # type: ignore[arg-type]


def testset_fingerprint(testset: Any, image_size: int) -> str:
    """What identifies a test set's data in a store key
    (:meth:`~vssl_helpers.testsets.base.TestSet.fingerprint`: the synthetic generator's cache key at
    the model's image size, or a real set's name, resolved media folder and annotation source)."""
    return testset.fingerprint(int(image_size))


class _MediaSource:
    """A test set's media as the engine reads them: model input image, whole audio clip, GT mask.

    Images go through the model's own transform (``preprocessing.image_transform``) applied to the
    decoded original image (:meth:`~vssl_helpers.testsets.base.TestSet.decoded_image`), giving
    float32 ``3 × S × S`` in [0, 1]. Real sets decode their files on every access (in DataLoader
    workers); the synthetic set reads its cached arrays, rendered at the model's size, where every
    transform is the identity. Audio is the whole clip at the model's rate (the model's front end
    chooses its window); ``n_audio`` is the model's clip length, at which noise and silence are drawn.
    Any :class:`~vssl_helpers.testsets.base.TestSet` works; nothing here depends on its class.
    """

    def __init__(self, testset: Any, preprocessing: Preprocessing, progress: bool = False) -> None:
        pre = preprocessing
        self.image_size = int(pre.image_size)
        self.transform = pre.image_transform
        self.n_audio = int(round(pre.sample_rate * pre.audio_seconds))
        name = getattr(testset, "name", type(testset).__name__)
        if int(testset.sample_rate) != int(pre.sample_rate):
            raise ValueError(f"{name}: audio delivered at {testset.sample_rate} Hz, model expects {pre.sample_rate} Hz")
        testset.prepare(self.image_size, progress=progress)  # e.g. generate the synthetic arrays once
        self.ids = [str(x) for x in testset.ids]
        self.masks = testset.masks(self.image_size)
        self.fingerprint = testset_fingerprint(testset, self.image_size)
        self._set = testset
        self.index = {sid: j for j, sid in enumerate(self.ids)}

    def decoded_image(self, j: int) -> np.ndarray:
        """Row ``j``'s image as decoded (uint8 ``H × W × 3``; synthetic: at the model's size)."""
        return self._set.decoded_image(j, self.image_size)

    def image(self, j: int) -> torch.Tensor:
        """Row ``j``'s network input image: float32 ``3 × S × S`` in [0, 1] (before normalisation)."""
        return self.transform(self.decoded_image(j))

    def audio(self, j: int) -> np.ndarray:
        """Row ``j``'s whole clip, float32 mono at the model's rate."""
        return np.ascontiguousarray(self._set.whole_audio(j), dtype=np.float32)


class _AudioDataset(torch.utils.data.Dataset):
    """Whole audio clips of test-set rows (pool clips); batch with :func:`_collate_clips`."""

    def __init__(self, source: _MediaSource, rows: np.ndarray) -> None:
        self.source, self.rows = source, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.source.audio(int(self.rows[i])).copy())


class _ItemDataset(torch.utils.data.Dataset):
    """Everything one manifest row needs: the model's input image (float32 ``3 × S × S``, the model's
    transform applied in the worker), GT if the model reads it, the whole positive clip if it is not a
    pool clip, and its S noise clips at the model's clip length (generated here, in the workers).
    Batch with :func:`_collate_items`."""

    def __init__(self, source: _MediaSource, rows: np.ndarray, noise_seeds: np.ndarray | None, need_gt: bool, need_audio: bool,
                 noise_clip: bool = True) -> None:
        self.source, self.rows, self.noise_seeds = source, rows, noise_seeds
        self.need_gt, self.need_audio = need_gt, need_audio
        self.noise_clip = noise_clip  # False: compatibility mode, the paper code's unclipped noise

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from .negatives import noise_waveform

        j = int(self.rows[i])
        n = self.source.n_audio
        out = {
            "row": torch.tensor(i),
            "image": self.source.image(j),
        }
        if self.noise_seeds is not None:  # None: a noise bank, encoded once per run instead
            out["noise"] = torch.from_numpy(np.stack([noise_waveform(int(k), n, self.noise_clip) for k in self.noise_seeds[i]]))
        if self.need_gt:
            out["gt"] = torch.from_numpy(np.ascontiguousarray(self.source.masks[j]))
        if self.need_audio:
            out["audio"] = torch.from_numpy(self.source.audio(j).copy())
        return out


def _collate_items(batch: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Stack every field of :class:`_ItemDataset` rows except ``audio`` (whole clips, a list)."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        vals = [b[key] for b in batch]
        out[key] = vals if key == "audio" else torch.stack(vals)
    return out


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _autocast(device: torch.device, dtype: str) -> Any:
    import contextlib

    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[dtype])


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: CUDA is not available on this machine (use --device cpu)")
    return d


def store_key(
    model: VSSLModel, manifest: Manifest, data: str = "", weights: str | None = None, dtype: str = "float32",
    compat: Compat | None = None,
) -> StoreKey:
    """The :class:`~vssl_helpers.store.StoreKey` of ``model`` on ``manifest``.

    ``weights``: ``"sha256:<hex>"`` of the checkpoint file when there is one; default: the hash of the
    model's state dict (``"state:<hex>"``), which identifies seeded untrained and in-process trained
    weights alike. ``compat``: its effective *audio* switches (they change the silence / noise maps)
    are appended to ``data``; metric-only switches leave the key, hence the stored maps, as they are,
    and so does no switch at all (default keys are those of earlier versions).
    """
    audio = compat.audio_key() if compat is not None else ""
    if audio:
        data = f"{data}|compat-audio:{audio}"
    return StoreKey(
        model=model.config.name,
        weights=weights or f"state:{state_dict_sha256(model)}",
        manifest_sha256=manifest.sha256,
        preprocessing_version=int(model.config.preprocessing.version),
        data=data,
        compute_dtype=dtype,
        map_size=tuple(model.config.map_size),
    )


@dataclass
class EvalResult:
    """One model on one extended test set: the maps (manifest order), the GT masks, the threshold,
    the pooled Table I row and one row per seed, the per-sample maxima, provenance and timings
    (:func:`results_dict` turns it into a results file)."""

    model: str
    maps: ExtendedMaps
    gt: torch.Tensor
    threshold: UniversalThreshold
    row: dict[str, float]
    per_seed: list[dict[str, float]]
    maxima: dict[str, torch.Tensor]
    provenance: dict[str, Any]
    timings: dict[str, float]


@dataclass(frozen=True)
class EvalOptions:
    """How :func:`evaluate` runs; the defaults come from :data:`vssl_helpers.defaults.DEFAULTS`.

    Attributes:
        threshold: ``None``: the model's own rule on this run's negatives (universal: Q3 of the
            per-sample maxima; fixed: its value); a number or a resolved
            :class:`~vssl_helpers.threshold.UniversalThreshold` to reuse one (e.g. VGG-SS's on IS3).
        batch_size: images per batch (noise clips are encoded in chunks of as many clips).
        shard_size: samples per stored shard (part of the run's layout in the store).
        num_workers: DataLoader workers decoding media and generating noise.
        device: ``cpu``, ``cuda``, ``cuda:1``, ... or ``auto`` (a GPU if present).
        dtype: compute precision (``bfloat16``/``float16`` run the encoders under autocast; see
            :func:`compare_dtypes` for the accuracy check); part of the store key.
        store_dtype: precision of the stored maps (``float32`` or ``float16``).
        empty_gt: the rule for samples with an empty GT mask (:mod:`vssl_helpers.metrics`).
        compat: the reference-code compatibility mode (:mod:`vssl_helpers.compat`): ``True`` for the
            reference preset, switch names, or a resolved :class:`~vssl_helpers.compat.Compat`;
            never the default. Audio switches change the silence / noise maps (and the store key),
            metric switches only the scoring. The provenance records every switch.
        progress: progress bars (under the package's bar policy, :mod:`vssl_helpers.progress`).
        reuse_metrics: when every map was already in the store, read the pooled and per-seed rows
            saved beside them for the same threshold, compatibility switches and empty-GT rule
            instead of recomputing every metric (IoUs at 224 x 224 for every map of every seed).
        after_shard: called with (shard index, path) after each shard is written (progress hooks).
    """

    threshold: float | UniversalThreshold | None = None
    batch_size: int = DEFAULTS.batch_size
    shard_size: int = DEFAULTS.shard_size
    num_workers: int = DEFAULTS.workers
    device: str | torch.device = DEFAULTS.eval_device
    dtype: str = DEFAULTS.dtype
    store_dtype: str = "float32"
    empty_gt: M.EmptyGtRule = "exclude"
    compat: Compat | bool | Sequence[str] | None = None
    progress: bool = False
    reuse_metrics: bool = True
    after_shard: Callable[[int, Path], None] | None = None


def store_run(
    model: VSSLModel, testset: Any, manifest: Manifest, store: MapStore | str | Path, options: EvalOptions | None = None,
    *, weights: str | None = None,
) -> StoreRun:
    """The run directory of the store that :func:`evaluate` fills for these arguments (same key and
    shard layout), without loading any media: what a scheduler reads to plan the pending shards."""
    opt = options or EvalOptions()
    cfg = model.config
    cmp = opt.compat if isinstance(opt.compat, Compat) else Compat.create(opt.compat, cfg.name, testset)
    key = store_key(model, manifest, data=testset_fingerprint(testset, int(cfg.preprocessing.image_size)),
                    weights=weights, dtype=opt.dtype, compat=cmp)
    st = store if isinstance(store, MapStore) else MapStore(store)
    return st.run(key, manifest.ids, manifest.n_seeds, opt.shard_size)


@dataclass
class ShardReport:
    """What :func:`compute_shards` did in a run of the map store: the shards it computed, those it
    found finished (written by an earlier or a concurrent task), and its timings."""

    store_run: str
    n_shards: int
    computed: list[int]
    reused: list[int]
    timings: dict[str, float]


def load_stored_maps(run: StoreRun, offscreen_index: np.ndarray, model: str = "") -> ExtendedMaps:
    """Every shard of a finished run concatenated into :class:`ExtendedMaps` (float32, manifest order)."""
    if run.pending():
        raise RuntimeError(f"{run.path}: shards {run.pending()[:5]} are not finished")
    parts = list(run.iter_shards())
    cat = lambda key, dim: torch.from_numpy(np.concatenate([p[key] for p in parts], axis=dim)).float()  # noqa: E731
    return ExtendedMaps(
        positive=cat("positive", 0), silence=cat("silence", 0), noise=cat("noise", 1), offscreen=cat("offscreen", 1),
        offscreen_index=np.asarray(offscreen_index), meta={"model": model, "store": str(run.path)},
    )


def evaluate(
    model: VSSLModel,
    testset: Any,
    manifest: Manifest,
    store: MapStore | str | Path | None = None,
    options: EvalOptions | None = None,
    *,
    weights: str | None = None,
    **overrides: Any,
) -> EvalResult:
    """Evaluate ``model`` on the extended ``testset``: every map through the map store, every metric.

    ``store``: a :class:`~vssl_helpers.store.MapStore` or its folder (finished shards are reused, an
    interrupted run resumes); ``None``: a temporary store, deleted before returning (nothing
    persists; the maps are in the result). ``options``: an :class:`EvalOptions`; ``overrides``: any
    of its fields by name (``evaluate(m, ds, man, store, batch_size=8)``). ``weights``: the
    checkpoint identity of the store key (``"sha256:<hex>"`` of the file); default: the hash of the
    model's state dict.

    Raises:
        TypeError: an override that is not a field of :class:`EvalOptions`.
        ValueError: a bad option value, or a manifest whose samples are not in ``testset``.
    """
    import dataclasses

    opt = options or EvalOptions()
    if overrides:
        known = {f.name for f in dataclasses.fields(EvalOptions)}
        bad = sorted(set(overrides) - known)
        if bad:
            raise TypeError(f"evaluate(): unknown option(s) {bad}; expected fields of EvalOptions: {sorted(known)}")
        opt = dataclasses.replace(opt, **overrides)
    if store is not None:
        return _evaluate(model, testset, manifest, store if isinstance(store, MapStore) else MapStore(store), opt, weights)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vssl-maps-") as tmp:
        result = _evaluate(model, testset, manifest, MapStore(tmp), opt, weights)
    result.provenance["store_run"] = None  # the temporary store is gone; the maps are in memory
    return result


def compute_shards(
    model: VSSLModel,
    testset: Any,
    manifest: Manifest,
    store: MapStore | str | Path,
    shards: Sequence[int],
    options: EvalOptions | None = None,
    *,
    weights: str | None = None,
) -> ShardReport:
    """Compute the maps of shards ``shards`` of the run of ``model`` on ``testset`` in ``store``, and
    nothing else: shards already finished are skipped, no metric is computed. The pool audio
    embeddings are read from the run, or computed and stored first (``shards=()`` does only that).

    The unit of work of the scale-out executor (:mod:`vssl_helpers.scale`): tasks on several
    processes or machines fill disjoint shard ranges of one run, each shard written atomically, and
    :func:`evaluate` then finds every shard finished and computes the metrics. The shards are those
    of :meth:`~vssl_helpers.store.StoreRun.shard_range` for ``options.shard_size``; batches never
    cross a shard, so a shard's maps are the same whichever call computes it.

    Raises:
        ValueError: a shard index outside ``0 .. n_shards - 1`` (and as :func:`evaluate`).
    """
    if isinstance(shards, (str, bytes)) or not all(isinstance(k, (int, np.integer)) for k in shards):
        raise ValueError(f"shards: expected a sequence of shard indices (int), got {shards!r}")
    out = _evaluate(model, testset, manifest, store if isinstance(store, MapStore) else MapStore(store),
                    options or EvalOptions(), weights, shards=[int(k) for k in shards])
    assert isinstance(out, ShardReport)
    return out


@torch.no_grad()
def _evaluate(
    model: VSSLModel, testset: Any, manifest: Manifest, store: MapStore, opt: EvalOptions, weights: str | None,
    shards: list[int] | None = None,
) -> EvalResult | ShardReport:
    """:func:`evaluate` in ``store``; with ``shards``, :func:`compute_shards` (steps 1 and 2 for
    those shards only).

    Steps: (1) audio of every off-screen pool clip (the test set's own clips) is decoded in
    ``num_workers`` DataLoader workers and encoded once (twice, through the positive and the
    off-screen window, for a model whose ``offscreen_window_differs``), plus silence once; the
    embeddings are stored. Images reach the model through its own transform
    (``preprocessing.image_transform``) applied to the decoded original, in the workers; clips reach it
    whole (its front end picks the window), noise and silence at its clip length. (2) Samples are processed in manifest order in shards of ``shard_size``; each image is
    encoded once and paired with its positive (a pool embedding), silence, its S noise clips
    (generated in the workers and encoded) and its S off-screen clips (pool embeddings). Each shard
    is written atomically; shards already in the store are skipped. (3) Maps are read back from the
    store and every metric is computed: the threshold (``None``: the model's rule on these maxima),
    the pooled Table I row and one row per seed.

    ``testset``: a :class:`~vssl_helpers.testsets.base.TestSet` (the synthetic set, a real set loaded
    with a media root, or a plugin's); ``manifest``: the negatives; its items must be samples of
    ``testset``, its pool clips too. The options are documented on :class:`EvalOptions`.
    """
    from .progress import bar as tqdm  # the package's bar policy (log mode, --no-progress)

    t_start = time.perf_counter()
    threshold, batch_size, shard_size, num_workers = opt.threshold, opt.batch_size, opt.shard_size, opt.num_workers
    device, dtype, store_dtype, empty_gt = opt.device, opt.dtype, opt.store_dtype, opt.empty_gt
    compat, progress, after_shard = opt.compat, opt.progress, opt.after_shard
    if dtype not in _DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(_DTYPES)}, got {dtype!r}")
    if store_dtype not in ("float32", "float16"):
        raise ValueError(f"store_dtype: expected 'float32' or 'float16', got {store_dtype!r}")
    dev = _resolve_device(device)
    cfg = model.config
    if not cfg.factorized:
        raise NotImplementedError(f"{cfg.name}: not factorized (joint forward); the stored engine needs encode/similarity")
    source = _MediaSource(testset, cfg.preprocessing, progress=progress)
    n_audio = source.n_audio
    cmp = compat if isinstance(compat, Compat) else Compat.create(compat, cfg.name, testset)
    missing = [sid for sid in manifest.ids if sid not in source.index]
    if missing:
        raise ValueError(
            f"manifest {manifest.name!r}: {len(missing)} of {len(manifest)} items are not in the test set (e.g. {missing[:3]})"
        )
    pool_ids = [c.id for c in manifest.pool]
    missing = [pid for pid in pool_ids if pid not in source.index]
    if missing:
        raise ValueError(
            f"manifest {manifest.name!r}: {len(missing)} off-screen pool clips are not test-set samples "
            f"(e.g. {missing[:3]}); the engine reads the pool from the test set"
        )
    rows = np.array([source.index[sid] for sid in manifest.ids], np.int64)
    pool_rows = np.array([source.index[pid] for pid in pool_ids], np.int64)
    pool_of = {pid: k for k, pid in enumerate(pool_ids)}
    pos_pool = np.array([pool_of.get(sid, -1) for sid in manifest.ids], np.int64)
    need_audio = bool((pos_pool < 0).any())
    key = store_key(model, manifest, data=source.fingerprint, weights=weights, dtype=dtype, compat=cmp)
    run = store.run(key, manifest.ids, manifest.n_seeds, shard_size)
    model = model.to(dev).eval()
    s_count = manifest.n_seeds
    loader_kw: dict[str, Any] = {"num_workers": num_workers, "pin_memory": dev.type == "cuda"}
    if num_workers > 0:
        loader_kw["persistent_workers"] = False
        loader_kw["prefetch_factor"] = 2
    timings: dict[str, float] = {}

    # (1) pool audio embeddings + silence, once per (key, pool); a model that reads off-screen clips
    # through another window (offscreen_window_differs) also gets the pool's off-screen embeddings,
    # stored after the positive ones under the ids "offscreen:<id>"
    t0 = time.perf_counter()
    pending = run.pending()
    if shards is not None:  # one task of the scale-out executor: these shards only, no metrics
        bad = sorted({k for k in shards if not 0 <= k < run.n_shards})
        if bad:
            raise ValueError(f"shards: {bad} out of range; expected indices in 0..{run.n_shards - 1}")
        wanted = set(shards)
        pending = [k for k in pending if k in wanted]
    # the pool is needed to compute shards; a shard task makes sure it is stored (shards=(): only that)
    need_pool = bool(pending) or shards is not None
    two_windows = model.offscreen_window_differs
    stored_ids = pool_ids + ([f"offscreen:{pid}" for pid in pool_ids] if two_windows else [])
    stored_pool = run.load_pool(stored_ids) if need_pool else None  # nothing to compute: not needed
    if stored_pool is not None:
        both, sil_emb = stored_pool["pool"].to(dev), stored_pool["silence"].to(dev)
    elif need_pool:
        loader = torch.utils.data.DataLoader(
            _AudioDataset(source, pool_rows), batch_size=batch_size, shuffle=False, collate_fn=_collate_clips, **loader_kw
        )
        embs: list[torch.Tensor] = []
        off_embs: list[torch.Tensor] = []
        with _autocast(dev, dtype):
            for clips in tqdm(loader, desc=f"{cfg.name}: pool audio", disable=not progress, unit="batch"):
                embs.append(_encode_clips(model.encode_audio, clips, dev).float())
                if two_windows:  # the same decoded clips, read through the off-screen window
                    off_embs.append(_encode_clips(model.encode_offscreen_audio, clips, dev).float())
            with negative_frontend(model, "silence", cmp):
                sil_emb = model.encode_audio(torch.zeros(1, n_audio, device=dev)).float()
        both = torch.cat(embs + off_embs)
        run.save_pool(stored_ids, both, sil_emb)
    if stored_pool is not None or need_pool:
        pool_emb = both[: len(pool_ids)]
        off_pool_emb = both[len(pool_ids) :] if two_windows else pool_emb
    timings["pool_audio_s"] = time.perf_counter() - t0

    # (2) shards
    t0 = time.perf_counter()
    run.stats["reused"] = run.n_shards - len(pending)
    if pending:
        batches = []
        for k in pending:
            i0, i1 = run.shard_range(k)
            batches.extend(list(range(b, min(b + batch_size, i1))) for b in range(i0, i1, batch_size))
        bank = manifest.noise_bank_seeds  # S × K clip seeds of an opt-in noise bank, else None
        if bank is not None:
            # a noise bank: its S·K clips are encoded once here (seed-major), and every sample's noise
            # map pairs its image with the embedding of the clip the manifest assigns it
            from .negatives import noise_waveform

            waves = torch.from_numpy(np.stack([noise_waveform(int(k), n_audio, noise_clipped(cmp)) for k in bank.reshape(-1)]))
            with _autocast(dev, dtype), negative_frontend(model, "noise", cmp):
                bank_emb = torch.cat([model.encode_audio(waves[c : c + batch_size].to(dev))
                                      for c in range(0, waves.shape[0], batch_size)]).float()
            bank_k = bank.shape[1]
            assign = torch.as_tensor(manifest.noise_assign, device=dev)  # N × S clip indices
            seed_base = torch.arange(s_count, device=dev).view(-1, 1) * bank_k
        ds = _ItemDataset(source, rows, None if bank is not None else manifest.noise_seeds, cfg.needs_gt, need_audio,
                          noise_clipped(cmp))
        loader = torch.utils.data.DataLoader(ds, batch_sampler=batches, collate_fn=_collate_items, **loader_kw)
        off_idx = torch.as_tensor(manifest.offscreen, device=dev)  # N × S pool indices
        pos_idx = torch.as_tensor(pos_pool, device=dev)
        buf: dict[str, list[torch.Tensor]] = {"positive": [], "silence": [], "noise": [], "offscreen": []}
        bar = tqdm(total=sum(run.shard_range(k)[1] - run.shard_range(k)[0] for k in pending),
                   desc=f"{cfg.name}: maps", unit="sample", disable=not progress)
        shard_iter = iter(pending)
        cur = next(shard_iter)
        for batch in loader:
            r = batch["row"].to(dev)
            b = r.shape[0]
            with _autocast(dev, dtype):
                images = batch["image"].to(dev, non_blocking=True)  # the model's transform, applied in the workers
                gt = batch["gt"].to(dev) if cfg.needs_gt else None
                visual = model.encode_images(images, gt=gt)
                if need_audio:
                    own = _encode_clips(model.encode_audio, batch["audio"], dev).float()
                    pos = torch.where((pos_idx[r] >= 0).view(-1, *[1] * (own.dim() - 1)), pool_emb[pos_idx[r].clamp(min=0)], own)
                else:
                    pos = pool_emb[pos_idx[r]]
                buf["positive"].append(model.similarity(visual, pos.to(visual.dtype)).float().cpu())
                buf["silence"].append(model.similarity(visual, sil_emb.expand(b, *sil_emb.shape[1:]).to(visual.dtype)).float().cpu())
                if bank is not None:
                    nemb = bank_emb[(seed_base + assign[r].T).reshape(-1)]  # seed-major, as below
                else:
                    noise = batch["noise"].to(dev, non_blocking=True)  # B × S × T
                    # seed-major so that a reshape gives S × B maps; encoded in chunks of batch_size clips
                    flat = noise.transpose(0, 1).reshape(s_count * b, -1)
                    with negative_frontend(model, "noise", cmp):
                        nemb = torch.cat([model.encode_audio(flat[c : c + batch_size]) for c in range(0, flat.shape[0], batch_size)])
                vis_rep = visual.unsqueeze(0).expand(s_count, *visual.shape).reshape(s_count * b, *visual.shape[1:])
                nmaps = model.similarity(vis_rep, nemb.to(visual.dtype)).float()
                buf["noise"].append(nmaps.reshape(s_count, b, *nmaps.shape[1:]).cpu())
                oemb = off_pool_emb[off_idx[r].T.reshape(-1)]  # seed-major
                omaps = model.similarity(vis_rep, oemb.to(visual.dtype)).float()
                buf["offscreen"].append(omaps.reshape(s_count, b, *omaps.shape[1:]).cpu())
            bar.update(b)
            i0, i1 = run.shard_range(cur)
            if int(batch["row"][-1]) == i1 - 1:  # the shard's last batch: write it
                path = run.write_shard(
                    cur,
                    torch.cat(buf["positive"]).numpy(), torch.cat(buf["silence"]).numpy(),
                    torch.cat(buf["noise"], dim=1).numpy(), torch.cat(buf["offscreen"], dim=1).numpy(),
                    store_dtype=store_dtype,
                )
                buf = {k: [] for k in buf}
                if after_shard is not None:
                    after_shard(cur, path)
                cur = next(shard_iter, -1)
        bar.close()
    timings["maps_s"] = time.perf_counter() - t0
    if shards is not None:
        timings["total_s"] = time.perf_counter() - t_start
        return ShardReport(str(run.path), run.n_shards, list(pending), sorted(set(shards) - set(pending)), timings)

    # (3) metrics from the store
    t0 = time.perf_counter()
    maps = load_stored_maps(run, manifest.offscreen.T, cfg.name)
    gt = torch.from_numpy(np.ascontiguousarray(source.masks[rows]))
    maxima = maxima_by_type(maps)
    thr = resolve_threshold(cfg.threshold_rule, maxima, threshold)
    summary = run.path / f"summary-{_summary_tag(thr, cmp, empty_gt)}.json"
    saved = _read_summary(summary, thr) if (opt.reuse_metrics and run.stats["computed"] == 0) else None
    if saved is not None:
        pooled, per_seed = saved
    else:
        pooled, per_seed = summarize_extended(maps, gt, thr, empty_gt, cmp)
        text = json.dumps({"threshold": float(thr.value), "row": pooled, "per_seed": per_seed})
        atomic_write(summary, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    timings["metrics_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    prov = {
        "manifest": manifest.name,
        "manifest_sha256": manifest.sha256,
        "n_seeds": s_count,
        "noise_bank": manifest.noise_bank,
        "weights": key.weights,
        "store_run": str(run.path),
        "store_key": asdict(key),
        "shards": {"total": run.n_shards, "computed": run.stats["computed"], "reused": run.stats["reused"], "size": shard_size},
        "engine": {"device": str(dev), "dtype": dtype, "store_dtype": store_dtype, "batch_size": batch_size,
                   "num_workers": num_workers, "empty_gt": empty_gt},
        "data": source.fingerprint,
        "compat": cmp.record(),
        "summary_cache": str(summary) if saved is not None else None,
    }
    return EvalResult(cfg.name, maps, gt, thr, pooled, per_seed, maxima, prov, timings)


def _summary_tag(thr: UniversalThreshold, cmp: Compat, empty_gt: str) -> str:
    """The name under which a run's metric rows are saved beside its maps: the threshold's value,
    the effective compatibility switches (metric switches rescore the same maps) and a non-default
    empty-GT rule. Default runs keep the tags of earlier versions, so their saved rows stay valid."""
    import hashlib

    tag = hashlib.sha256(repr(float(thr.value)).encode()).hexdigest()[:12]
    if cmp.active:
        tag += "-compat-" + hashlib.sha256(",".join(sorted(cmp.effective)).encode()).hexdigest()[:8]
    if empty_gt != "exclude":
        tag += f"-emptygt-{empty_gt}"
    return tag


def _read_summary(path: Path, thr: UniversalThreshold) -> tuple[dict[str, float], list[dict[str, float]]] | None:
    """The (pooled, per-seed) rows saved at ``path`` for threshold ``thr``, or ``None`` when there are
    none or they cannot be used (unreadable, another threshold): then they are computed again."""
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if float(saved["threshold"]) != float(thr.value):
            return None
        return dict(saved["row"]), [dict(r) for r in saved["per_seed"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ==================================================================================================
# Results files


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None  # JSON has no NaN; a missing value reads as null
    return x


def results_dict(result: EvalResult, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-ready record of an :class:`EvalResult`: provenance, threshold, pooled and per-seed rows.

    Keys: ``format``, ``package_version``, ``torch_version``, ``model``, ``checkpoint_sha256`` (the
    file hash, or ``None`` when the weights are identified by their state-dict hash ``weights``),
    ``manifest`` and ``manifest_sha256``, ``n_seeds``, ``seeds``, ``threshold`` (value, rule,
    per-type Q3, decisive type, counts), ``pooled`` (Table I row), ``per_seed`` (rows), ``timings``,
    ``engine``, ``store``, ``compat`` (every switch of the compatibility mode -> on/off, the
    effective ones, the model's lineage; all off for a default run).
    """
    from . import __version__

    thr = result.threshold
    w = result.provenance["weights"]
    out = {
        "format": "vssl-results/1",
        "package_version": __version__,
        "torch_version": torch.__version__,
        "model": result.model,
        "weights": w,
        "checkpoint_sha256": w.split(":", 1)[1] if w.startswith("sha256:") else None,
        "manifest": result.provenance["manifest"],
        "manifest_sha256": result.provenance["manifest_sha256"],
        "n_seeds": result.provenance["n_seeds"],
        "noise_bank": result.provenance.get("noise_bank"),
        "seeds": list(range(result.provenance["n_seeds"])),
        "data": result.provenance["data"],
        "threshold": {
            "value": thr.value, "rule": thr.rule, "per_type_q3": dict(thr.per_type_q3),
            "decisive_type": thr.decisive_type, "n_per_type": dict(thr.n_per_type),
        },
        "pooled": result.row,
        "per_seed": result.per_seed,
        "timings": result.timings,
        "engine": result.provenance["engine"],
        "store": {"run": result.provenance["store_run"], "key": result.provenance["store_key"],
                  "shards": result.provenance["shards"]},
        "compat": result.provenance.get("compat") or Compat().record(),
    }
    if extra:
        out.update(extra)
    return _jsonable(out)


def write_results(path: str | Path, results: dict[str, Any]) -> Path:
    """Write a results record as JSON, atomically (temporary file + rename)."""
    p = Path(path)
    text = json.dumps(results, indent=1, sort_keys=False, allow_nan=False) + "\n"
    atomic_write(p, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return p


# ==================================================================================================
# Reduced precision: measured accuracy check


@torch.no_grad()
def compare_dtypes(
    model: VSSLModel,
    images: torch.Tensor,
    audio: torch.Tensor | list[torch.Tensor],
    dtype: str,
    device: str | torch.device = "cpu",
    threshold: float | None = None,
) -> dict[str, float]:
    """Maps of paired (image, audio) rows in float32 and in ``dtype`` (autocast), compared.

    ``audio``: ``B × T`` waveforms, or a list of B whole clips of possibly different lengths.

    Returns the max and mean absolute map difference, the map range (for scale), and, when a
    threshold is given, the fraction of upsampled pixels whose binarisation flips and the mean
    absolute pIA difference in percentage points. Run it on a few hundred samples before trusting
    a reduced-precision evaluation.
    """
    dev = _resolve_device(device)
    model = model.to(dev).eval()
    x = images.to(dev)
    clips = list(audio) if isinstance(audio, (list, tuple)) else list(audio.unbind(0))
    ref = model.similarity(model.encode_images(x), _encode_clips(model.encode_audio, clips, dev)).float()
    with _autocast(dev, dtype):
        low = model.similarity(model.encode_images(x), _encode_clips(model.encode_audio, clips, dev)).float()
    diff = (ref - low).abs()
    out = {
        "dtype": dtype,  # type: ignore[dict-item]
        "n_maps": float(ref.shape[0]),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "map_range": float(ref.max() - ref.min()),
    }
    if threshold is not None:
        up_r, up_l = M.upsample(ref.cpu()) > threshold, M.upsample(low.cpu()) > threshold
        out["flipped_pixels"] = float((up_r != up_l).float().mean())
        out["pia_abs_diff_pp"] = 100 * float((M.pia(ref.cpu(), threshold) - M.pia(low.cpu(), threshold)).abs().mean())
    return out
