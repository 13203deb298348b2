"""Training the demo models on the synthetic train split (three objectives, one architecture).

Objectives, written from the papers' descriptions at small scale:

* ``ezvsl`` (Mo & Morgado 2022): multiple-instance contrastive learning. The score of an
  (image i, audio j) pair is the maximum over locations of the cosine map, divided by tau; a
  symmetric InfoNCE over the batch. During a warm-up the score is (max + mean) / 2, which shortens
  the plateau at the chance loss ln(batch) that every run starts on (measured in the feasibility
  study).
* ``lvs`` (Chen et al. 2021): the own map is split into a positive region (soft mask
  sigmoid((S - eps_p) / tau_m)) and a background region (1 - sigmoid((S - eps_n) / tau_m)); the
  positive score is the mean similarity over the positive region, the background of the same image
  is a hard negative and the other audios of the batch are easy negatives.
* ``negaware``: ``ezvsl`` plus a binary cross-entropy on w * (max S - b) (learnable w, b) that asks
  for a high maximum on genuine pairs and a low one for silence, noise and off-screen audio.

**Realism knob.** In-the-wild training video often has its sound source off-screen or absent, yet a
contrastive objective treats every (frame, audio) pair as positive. ``TrainConfig.offscreen_share``
replaces that share of training pairs' audio by an *absent-source* audio, drawn from
``absent_kinds``: another clip of a category that is not in the image ("offscreen"), a sound of
another category that shares the acoustics of the image's sounding class ("neighbour"), or noise
shaped like the sounding class's spectrum ("shaped_noise"). The contrastive objectives still count
those pairs as positives (they cannot know); the negative-aware objective excludes them from its
positive term. Default: 0.0 (clean data).

Training is capped by **steps**, never by wall time (the cores may be shared), seeded, and
deterministic on CPU at a fixed thread count (:data:`TRAIN_THREADS`). Weights are identified by a
hash of (objective config, code version, data version), :meth:`TrainConfig.key`:
:func:`trained_state_dict` returns the **shipped** weights when the key is theirs
(``vssl_helpers/data/weights/<name>-seed0.pt``, the default config; sha256-checked against their
record), else the cached ones, else trains and saves them atomically. Every file loads with
``weights_only=True``.

**Resumable**: :func:`train_to_cache` (``vssl train``) checkpoints the whole training state every N
steps (model, optimizer, scheduler, RNG and data-order states); an interrupted run continues from
the last checkpoint and ends with exactly the weights of an uninterrupted run.

**Record** (``<weights>.json``, :func:`training_record`): model, seed, steps, threads, the full
config and its key, the training code version (``train_version``, package and torch versions), the
training data (split, scene count, data seed, generator version, numpy version), the loss history
and final loss, training seconds, and the weights file's sha256 and size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..defaults import DEFAULTS
from .demo import TRAINED_DEMOS, TwoTowerCNN, get_demo_config

__all__ = [
    "TRAIN_THREADS", "TrainConfig", "TrainResult", "train", "train_to_cache", "trained_state_dict", "training_record",
    "shipped_weights", "SHIPPED_DIR", "cache_dir", "OBJECTIVES",
]

TRAIN_VERSION = 1
"""Bump when the training code changes in a way that changes the weights."""

OBJECTIVES = {"demo-ezvsl": "ezvsl", "demo-lvs": "lvs", "demo-negaware": "negaware"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a demo model's weights (hashed for the cache)."""

    objective: str = "ezvsl"
    seed: int = 0
    steps: int = DEFAULTS.train_steps
    batch_size: int = DEFAULTS.train_batch_size
    lr: float = 3e-3
    tau: float = 0.1
    warmup_steps: int = DEFAULTS.warmup_steps
    n_train_images: int = DEFAULTS.n_train_images
    data_seed: int = 0
    image_size: int = 112
    offscreen_share: float = 0.0
    absent_kinds: tuple[str, ...] = ("offscreen",)
    neg_weight: float = 1.0
    lvs_eps_p: float = 0.65
    lvs_eps_n: float = 0.4
    lvs_tau_m: float = 0.03

    def __post_init__(self) -> None:
        # canonical form, so that equivalent configs share one cache entry
        kinds = tuple(self.absent_kinds) if self.offscreen_share > 0 else ("offscreen",)
        object.__setattr__(self, "absent_kinds", kinds)
        if self.objective not in ("ezvsl", "lvs", "negaware"):
            raise ValueError(f"TrainConfig.objective: expected 'ezvsl', 'lvs' or 'negaware', got {self.objective!r}")
        if not 0.0 <= self.offscreen_share <= 1.0:
            raise ValueError(f"TrainConfig.offscreen_share: expected a value in [0, 1], got {self.offscreen_share}")
        bad = set(self.absent_kinds) - {"offscreen", "neighbour", "shaped_noise"}
        if bad or not self.absent_kinds:
            raise ValueError(f"TrainConfig.absent_kinds: unknown or empty {sorted(bad) or self.absent_kinds}")

    def key(self) -> str:
        """Hash of the config, the training code version and the data generator version."""
        from ..testsets import synthetic

        payload = json.dumps(
            {"config": dataclasses.asdict(self), "train_version": TRAIN_VERSION, "generator": synthetic.GENERATOR_VERSION},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    """Weights and the record of how they were obtained."""

    state_dict: dict[str, torch.Tensor]
    config: TrainConfig
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def cache_dir() -> Path:
    """Where generated data and trained demo weights are cached: :func:`vssl_helpers.cache.cache_root`."""
    from ..cache import cache_root

    return cache_root()


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
@dataclass
class _TrainData:
    images: torch.Tensor  # N x 3 x S x S float in [0, 1]
    mels: torch.Tensor  # N x 1 x 64 x F
    category: np.ndarray  # N
    visible: np.ndarray  # N x 8 bool
    absent: dict[str, torch.Tensor]  # kind -> bank of mels (per sample for neighbour / shaped noise)
    silence: torch.Tensor  # 1 x 1 x 64 x F
    noise: torch.Tensor  # K x 1 x 64 x F


def _mels(frontend: nn.Module, audio: np.ndarray | torch.Tensor, batch: int = 256) -> torch.Tensor:
    audio = torch.as_tensor(audio, dtype=torch.float32)
    with torch.no_grad():
        return torch.cat([frontend(audio[s : s + batch]) for s in range(0, audio.shape[0], batch)])


def _prepare(cfg: TrainConfig, frontend: nn.Module, progress: bool) -> _TrainData:
    from ..testsets.synthetic import SyntheticConfig, SyntheticSet, neighbour_sound, shaped_noise

    ds = SyntheticSet(SyntheticConfig(split="train", n_images=cfg.n_train_images, sources=1, seed=cfg.data_seed))
    arr = ds.arrays(image_size=cfg.image_size, progress=progress)
    images = torch.from_numpy(arr["images"]).permute(0, 3, 1, 2).float() / 255.0
    mels = _mels(frontend, arr["audio"])
    n, t = arr["audio"].shape
    sr = ds.config.sample_rate
    rng = np.random.default_rng([cfg.data_seed, 7])
    absent: dict[str, torch.Tensor] = {}
    # Banks of absent-source audio for the realism knob, one clip per training sample, synthesized
    # only for the kinds in use (each is keyed to the sample's own sounding class).
    if cfg.offscreen_share > 0:
        from ..testsets.synthetic import SYNTHETIC_CLASSES

        names = list(SYNTHETIC_CLASSES)
        for kind in cfg.absent_kinds:
            if kind == "offscreen":
                continue
            clips = np.empty((n, t), np.float32)
            for i in range(n):
                cls = names[int(arr["class_index"][i])]
                if kind == "neighbour":
                    clips[i] = neighbour_sound(cls, rng, duration=t / sr, sample_rate=sr)[0][:t]
                else:
                    clips[i] = shaped_noise(cls, rng, duration=t / sr, sample_rate=sr)[:t]
            absent[kind] = _mels(frontend, clips)
    noise_rng = np.random.default_rng([cfg.data_seed, 11])
    noise = np.clip(noise_rng.standard_normal((64, t)), -1, 1).astype(np.float32)
    return _TrainData(
        images=images,
        mels=mels,
        category=arr["category"].astype(np.int64),
        visible=arr["visible_categories"].astype(bool),
        absent=absent,
        silence=_mels(frontend, np.zeros((1, t), np.float32)),
        noise=_mels(frontend, noise),
    )


def _absent_partner(rng: np.random.Generator, visible: np.ndarray, category: np.ndarray, i: int) -> int | None:
    """A training sample whose sounding category is absent from image ``i`` (None if none)."""
    for _ in range(32):
        j = int(rng.integers(len(category)))
        if not visible[i, category[j]]:
            return j
    return None


# ----------------------------------------------------------------------------------------------
# Objectives
# ----------------------------------------------------------------------------------------------
def _all_maps(model: TwoTowerCNN, images: torch.Tensor, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    v = F.normalize(model.image_tower((images - model.image_mean) / model.image_std), dim=1)
    h = model.audio_tower(mels)
    a = F.normalize(model.audio_proj(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1)), dim=1)
    return v, a


def _mil_scores(maps: torch.Tensor, warm: bool) -> torch.Tensor:
    flat = maps.flatten(2)
    return (flat.amax(2) + flat.mean(2)) / 2 if warm else flat.amax(2)


def _ezvsl_loss(v: torch.Tensor, a: torch.Tensor, tau: float, warm: bool) -> torch.Tensor:
    logits = _mil_scores(torch.einsum("vdhw,ad->vahw", v, a), warm) / tau
    target = torch.arange(v.shape[0])
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _lvs_loss(v: torch.Tensor, a: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    maps = torch.einsum("vdhw,ad->vahw", v, a).flatten(2)  # B x B x HW
    pos_w = torch.sigmoid((maps - cfg.lvs_eps_p) / cfg.lvs_tau_m)
    # every pair is scored on its own positive region (mean similarity where it exceeds eps_p)
    region = (pos_w * maps).sum(2) / pos_w.sum(2).clamp_min(1e-6)  # B x B
    own = maps.diagonal(dim1=0, dim2=1).T  # B x HW
    neg_w = 1 - torch.sigmoid((own - cfg.lvs_eps_n) / cfg.lvs_tau_m)
    pos = region.diagonal()
    hard = (neg_w * own).sum(1) / neg_w.sum(1).clamp_min(1e-6)  # background of the own image
    easy = region  # other audios scored on their own positive regions
    b = v.shape[0]
    off_diag = easy.masked_select(~torch.eye(b, dtype=torch.bool)).view(b, b - 1)
    logits = torch.cat([pos.unsqueeze(1), hard.unsqueeze(1), off_diag], 1) / 0.07
    return F.cross_entropy(logits, torch.zeros(b, dtype=torch.long))


# ----------------------------------------------------------------------------------------------
# Training loop
# ----------------------------------------------------------------------------------------------
TRAIN_THREADS = 2
"""Intra-op threads of every training run. CPU training is bit-reproducible only at a fixed thread
count (measured: 15 steps of demo-negaware with 1 and with 2 threads end up 0.67 apart in some
weight; two runs with 2 threads are identical), so the count is pinned instead of following the
machine's cores; 2 is what the project's machines have. Bump :data:`TRAIN_VERSION` if it changes."""


def train(
    cfg: TrainConfig,
    progress: bool = True,
    *,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 50,
    after_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train one demo model from scratch (seeded, step-capped, CPU-deterministic at
    :data:`TRAIN_THREADS` threads, whatever the caller's setting, which is restored afterwards).

    Resumable: with ``checkpoint`` (a file path), the whole training state (model, negative-aware
    calibration, optimizer, scheduler, the data-order and torch RNG states, loss history, elapsed
    time) is written there atomically every ``checkpoint_every`` steps, and a run that finds a
    checkpoint of the same config there continues from it. The continued run ends with exactly the
    weights of an uninterrupted one (tested). ``after_step(step)`` is called after each step (and
    after its checkpoint): a test hook that can interrupt the run by raising.
    """
    if checkpoint_every < 1:
        raise ValueError(f"train: checkpoint_every must be >= 1, got {checkpoint_every}")
    before = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        return _train(cfg, progress, None if checkpoint is None else Path(checkpoint), checkpoint_every, after_step)
    finally:
        torch.set_num_threads(before)


CHECKPOINT_FORMAT = 1
"""Version of the resumable-training checkpoint layout (a checkpoint of another layout is ignored)."""


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    from ..atomic import atomic_write

    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_checkpoint(path: Path | None, cfg: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it is one of ``cfg`` (same config key and layout), else None."""
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated or foreign file: start again (writes are atomic, so rare)
        return None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or state.get("config_key") != cfg.key():
        return None
    return state


def _train(
    cfg: TrainConfig, progress: bool, checkpoint: Path | None, every: int, after_step: Callable[[int], None] | None
) -> TrainResult:
    from ..progress import bar as progress_bar

    name = {v: k for k, v in OBJECTIVES.items()}[cfg.objective]
    torch.manual_seed(cfg.seed)
    model = TwoTowerCNN(get_demo_config(name))
    data = _prepare(cfg, model.frontend, progress)
    calib = nn.Parameter(torch.tensor([10.0, 0.3]))  # w, b of the negative-aware term
    params = list(model.parameters()) + ([calib] if cfg.objective == "negaware" else [])
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    rng = np.random.default_rng([cfg.seed, 1])
    n = data.images.shape[0]
    history: list[dict[str, float]] = []
    start, spent = 0, 0.0
    resumed = _load_checkpoint(checkpoint, cfg)
    if resumed is not None:
        # every piece of state the next step reads: weights (BatchNorm statistics included), Adam's
        # moments and step counts, the schedule's position, the batch/flip/negative draws
        model.load_state_dict(resumed["model"])
        with torch.no_grad():
            calib.copy_(resumed["calib"])
        opt.load_state_dict(resumed["optimizer"])
        sched.load_state_dict(resumed["scheduler"])
        rng.bit_generator.state = json.loads(resumed["rng"])
        torch.set_rng_state(resumed["torch_rng"])
        history = list(resumed["history"])
        start, spent = int(resumed["step"]), float(resumed["seconds"])
    model.train()
    t0 = time.perf_counter()
    bar = progress_bar(range(start, cfg.steps), total=cfg.steps, initial=start, desc=f"train {name} seed {cfg.seed}",
                       disable=not progress, mininterval=2)
    for step in bar:
        idx = rng.choice(n, cfg.batch_size, replace=False)
        images = data.images[idx]
        if rng.random() < 0.5:  # horizontal flip (the map flips with the image: audio is unaffected)
            images = images.flip(3)
        mels = data.mels[idx].clone()
        genuine = torch.ones(cfg.batch_size, dtype=torch.bool)
        if cfg.offscreen_share > 0:
            for r, i in enumerate(idx):
                if rng.random() >= cfg.offscreen_share:
                    continue
                kind = cfg.absent_kinds[int(rng.integers(len(cfg.absent_kinds)))]
                if kind == "offscreen":
                    j = _absent_partner(rng, data.visible, data.category, int(i))
                    if j is None:
                        continue
                    mels[r] = data.mels[j]
                else:
                    mels[r] = data.absent[kind][i]
                genuine[r] = False
        v, a = _all_maps(model, images, mels)
        warm = step < cfg.warmup_steps
        if cfg.objective == "lvs":
            loss = _lvs_loss(v, a, cfg)
        else:
            loss = _ezvsl_loss(v, a, cfg.tau, warm)
        if cfg.objective == "negaware":
            loss = loss + cfg.neg_weight * _negative_term(model, v, a, data, idx, genuine, calib, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            history.append({"step": step, "loss": float(loss.detach())})
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
        if checkpoint is not None and (step + 1) % every == 0 and step + 1 < cfg.steps:
            _save_checkpoint(checkpoint, {
                "format": CHECKPOINT_FORMAT, "config_key": cfg.key(), "step": step + 1,
                "model": model.state_dict(), "calib": calib.detach().clone(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": json.dumps(rng.bit_generator.state),
                "torch_rng": torch.get_rng_state(), "history": history,
                "seconds": spent + time.perf_counter() - t0,
            })
        if after_step is not None:
            after_step(step)
    bar.close()
    model.eval()
    return TrainResult({k: t.detach().clone() for k, t in model.state_dict().items()}, cfg,
                       spent + time.perf_counter() - t0, history)


def _negative_term(
    model: TwoTowerCNN,
    v: torch.Tensor,
    a: torch.Tensor,
    data: _TrainData,
    idx: np.ndarray,
    genuine: torch.Tensor,
    calib: torch.Tensor,
    rng: np.random.Generator,
) -> torch.Tensor:
    """BCE on calibrated map maxima: 1 for genuine pairs, 0 for silence, noise and off-screen."""
    b = v.shape[0]
    own_max = torch.einsum("bdhw,bd->bhw", v, a).flatten(1).amax(1)
    # a few noise clips per step, cycled over the batch: the audio tower is the costly part
    k = min(16, b)
    noise = data.noise[rng.integers(len(data.noise), size=k)]
    h = model.audio_tower(torch.cat([data.silence, noise]))
    neg_a = F.normalize(model.audio_proj(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1)), dim=1)
    sil_max = torch.einsum("bdhw,d->bhw", v, neg_a[0]).flatten(1).amax(1)
    noise_max = torch.einsum("bdhw,bd->bhw", v, neg_a[1:][torch.arange(b) % k]).flatten(1).amax(1)
    # off-screen: an in-batch audio whose category is absent from the image
    cat = data.category[idx]
    vis = data.visible[idx]
    partner = [next((j for j in rng.permutation(b) if not vis[r, cat[j]]), -1) for r in range(b)]
    rows = [r for r, j in enumerate(partner) if j >= 0]
    terms = []
    w, bias = calib[0], calib[1]

    def bce(x: torch.Tensor, target: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(w * (x - bias), torch.full_like(x, target))

    if bool(genuine.any()):
        terms.append(bce(own_max[genuine], 1.0))
    negs = [bce(sil_max, 0.0), bce(noise_max, 0.0)]
    if rows:
        off = torch.einsum("bdhw,bd->bhw", v[rows], a[[partner[r] for r in rows]]).flatten(1).amax(1)
        negs.append(bce(off, 0.0))
    terms.append(torch.stack(negs).mean())
    return torch.stack(terms).sum()


SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data" / "weights"
"""Package data: the demo models' weights as trained by :func:`train` with the default
:class:`TrainConfig`, each ``<name>-seed<seed>.pt`` with its record ``<name>-seed<seed>.json``."""


def _file_name(name: str, seed: int) -> str:
    return f"{name}-seed{seed}"


def _cache_path(cfg: TrainConfig, name: str) -> Path:
    return cache_dir() / "models" / f"{_file_name(name, cfg.seed)}-{cfg.key()}.pt"


def _config(name: str, seed: int, overrides: dict[str, Any]) -> TrainConfig:
    if name not in TRAINED_DEMOS:
        raise ValueError(f"{name!r} is not a trained demo model ({', '.join(TRAINED_DEMOS)})")
    return TrainConfig(objective=OBJECTIVES[name], seed=seed, **overrides)


def shipped_weights(name: str, seed: int = 0, **overrides: Any) -> tuple[Path, dict[str, Any]] | None:
    """``(weights file, record)`` of the shipped weights of ``name`` when their training config is
    exactly the requested one (same :meth:`TrainConfig.key`: config, training code version and data
    generator version), else None."""
    cfg = _config(name, seed, overrides)
    path = SHIPPED_DIR / f"{_file_name(name, seed)}.pt"
    record_path = path.with_suffix(".json")
    if not (path.is_file() and record_path.is_file()):
        return None
    record = json.loads(record_path.read_text(encoding="utf-8"))
    return (path, record) if record.get("config_key") == cfg.key() else None


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_verified(path: Path, record: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Weights of ``path`` after checking its sha256 against ``record`` (a clear error otherwise)."""
    data = path.read_bytes()
    digest = _sha256_bytes(data)
    if digest != record.get("sha256"):
        raise ValueError(f"{path}: sha256 {digest} does not match its record ({record.get('sha256')}); "
                         "the file is damaged: restore it (git checkout) or retrain with `vssl train`")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _record(name: str, result: TrainResult, data: bytes) -> dict[str, Any]:
    """What a weights file records: how to reproduce it and what it is (see the module docstring)."""
    from .. import __version__
    from ..testsets import synthetic

    cfg = result.config
    return {
        "model": name,
        "seed": cfg.seed,
        "steps": cfg.steps,
        "threads": TRAIN_THREADS,
        "config": dataclasses.asdict(cfg),
        "config_key": cfg.key(),
        "train_version": TRAIN_VERSION,
        "data": {"split": "train", "n_images": cfg.n_train_images, "data_seed": cfg.data_seed,
                 "generator_version": synthetic.GENERATOR_VERSION, "numpy": np.__version__},
        "code": {"package_version": __version__, "train_version": TRAIN_VERSION, "torch": torch.__version__},
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "history": result.history,
        "seconds": result.seconds,
        "sha256": _sha256_bytes(data),
        "bytes": len(data),
    }


def _serialize(state_dict: dict[str, torch.Tensor]) -> bytes:
    """The state dict as ``torch.save`` bytes, saved through a buffer so that the bytes (and the
    sha256) do not depend on the file name (``torch.save`` to a path names its archive after it)."""
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    return buf.getvalue()


def train_to_cache(
    name: str,
    seed: int = 0,
    progress: bool = True,
    *,
    checkpoint_every: int = 50,
    force: bool = False,
    after_step: Callable[[int], None] | None = None,
    **overrides: Any,
) -> tuple[Path, dict[str, Any]]:
    """Train demo model ``name`` into the training cache, resumably, and return ``(weights file,
    record)``. Never reads the shipped weights (this is how they are reproduced: ``vssl train``).

    An interrupted run continues from its checkpoint (``<weights>.ckpt``, written every
    ``checkpoint_every`` steps, removed at the end) and ends with the weights of an uninterrupted
    run. Weights already in the cache are returned as they are unless ``force`` (which also drops
    the checkpoint and trains from step 0).
    """
    cfg = _config(name, seed, overrides)
    path = _cache_path(cfg, name)
    ckpt = path.with_suffix(".ckpt")
    record_path = path.with_suffix(".json")
    if force:
        for p in (path, record_path, ckpt):
            p.unlink(missing_ok=True)
    elif path.is_file() and record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if "sha256" in record:
            return path, record
        # a cache entry of the training code before records had hashes: same weights, new record
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        result = TrainResult(state_dict, cfg, float(record.get("seconds", 0.0)), list(record.get("history", [])))
        return path, _write_entry(path, name, result)
    result = train(cfg, progress=progress, checkpoint=ckpt, checkpoint_every=checkpoint_every, after_step=after_step)
    record = _write_entry(path, name, result)
    ckpt.unlink(missing_ok=True)
    return path, record


def _write_entry(path: Path, name: str, result: TrainResult) -> dict[str, Any]:
    """Write weights (:func:`_serialize` bytes) and their record atomically; return the record."""
    from ..atomic import atomic_write

    data = _serialize(result.state_dict)
    record = _record(name, result, data)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return record


def trained_state_dict(name: str, seed: int = 0, progress: bool = True, **overrides: Any) -> dict[str, torch.Tensor]:
    """Weights of a trained demo model: the shipped ones when the requested training config is
    theirs (:func:`shipped_weights`, sha256-checked), else from the training cache, else trained
    now (resumably, :func:`train_to_cache`) and cached atomically.

    ``overrides`` are :class:`TrainConfig` fields (e.g. ``steps=200`` for a quick run).
    """
    try:
        _config(name, seed, overrides)
    except ValueError as e:
        raise ValueError(f"trained_state_dict: {e}") from None
    shipped = shipped_weights(name, seed, **overrides)
    if shipped is not None:
        return _load_verified(*shipped)
    path, _ = train_to_cache(name, seed, progress, **overrides)
    return torch.load(path, map_location="cpu", weights_only=True)


def training_record(name: str, seed: int = 0, **overrides: Any) -> dict[str, Any] | None:
    """The JSON record (config, training seconds, loss history, sha256, ...) of the weights
    :func:`trained_state_dict` returns for these arguments (shipped or cached), if any."""
    if name not in OBJECTIVES:  # untrained models (saliency, random, oracle) have no record
        return None
    shipped = shipped_weights(name, seed, **overrides)
    if shipped is not None:
        return shipped[1]
    path = _cache_path(_config(name, seed, overrides), name).with_suffix(".json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
