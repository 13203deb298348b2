"""Random checkpoints in the exact official layouts of ``vssl_helpers/data/checkpoint_keys/*.json``
(key names, shapes, top-level key, ``module.`` prefix, extra entries), for tests that load them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

KEYS_DIR = Path(__file__).resolve().parents[1] / "vssl_helpers" / "data" / "checkpoint_keys"


def _spec(name: str) -> dict:
    return json.loads((KEYS_DIR / f"{name}.json").read_text())


def random_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random but numerically sane tensors for every key of the official dump (He-scaled convs,
    BN near identity, positive running variances)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in _spec(name)["params"].items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("spectrogram.window"):
            out[key] = torch.hann_window(shape[0])
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif key.endswith("running_mean"):
            out[key] = torch.randn(shape, generator=g) * 0.05
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            out[key] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
        elif key.endswith("weight"):
            out[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            out[key] = 0.05 * torch.randn(shape, generator=g)
    return out


def official_file(name: str, state: dict[str, torch.Tensor]) -> dict:
    """Wrap a state dict the way the official training code saved it."""
    spec = _spec(name)
    prefix = spec["prefix"] if spec["prefix"] == "module." else ""
    sd = {prefix + k: v for k, v in state.items()}
    top = spec["checkpoint_top_level_key"]
    if top is None:  # RCGrad: flat mapping, plus the training loss's logit scale
        return {**sd, "logit_scale": torch.tensor(2.659)}
    optimizer = {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4, "params": [0]}]}
    return {top: sd, "optimizer": optimizer, "epoch": 7}


def write_official_checkpoint(name: str, path: Path, seed: int = 0) -> Path:
    """Save a random checkpoint of ``name`` in its official layout to ``path``."""
    torch.save(official_file(name, random_state(name, seed)), path)
    return path
