"""The demo models' factories, registered in the model registry.

Apart from :mod:`vssl_helpers.models.demo` (networks and configs) because the trained demos load
their weights through :mod:`vssl_helpers.models.training`, which itself builds the demo networks:
keeping the factories here keeps the import graph acyclic (``demo_zoo -> training -> demo``).
"""

from __future__ import annotations

from typing import Any

import torch

from .demo import OracleModel, SaliencyModel, TwoTowerCNN, get_demo_config
from .registry import VSSLModel, register_model
from .training import trained_state_dict

__all__ = ["demo_ezvsl", "demo_lvs", "demo_negaware", "demo_random", "demo_saliency", "demo_oracle"]


def _trained(name: str, pretrained: bool, seed: int, **train_kw: Any) -> VSSLModel:
    model = TwoTowerCNN(get_demo_config(name))
    if pretrained:
        model.load_state_dict(trained_state_dict(name, seed=seed, **train_kw))
    model.eval()
    return model


@register_model(get_demo_config("demo-ezvsl"))
def demo_ezvsl(pretrained: bool = True, seed: int = 0, **train_kw: Any) -> VSSLModel:
    return _trained("demo-ezvsl", pretrained, seed, **train_kw)


@register_model(get_demo_config("demo-lvs"))
def demo_lvs(pretrained: bool = True, seed: int = 0, **train_kw: Any) -> VSSLModel:
    return _trained("demo-lvs", pretrained, seed, **train_kw)


@register_model(get_demo_config("demo-negaware"))
def demo_negaware(pretrained: bool = True, seed: int = 0, **train_kw: Any) -> VSSLModel:
    return _trained("demo-negaware", pretrained, seed, **train_kw)


@register_model(get_demo_config("demo-random"))
def demo_random(seed: int = 0, **_: Any) -> VSSLModel:
    torch.manual_seed(seed)
    model = TwoTowerCNN(get_demo_config("demo-random"))
    return model.eval()


@register_model(get_demo_config("demo-saliency"))
def demo_saliency(**_: Any) -> VSSLModel:
    return SaliencyModel(get_demo_config("demo-saliency")).eval()


@register_model(get_demo_config("demo-oracle"))
def demo_oracle(**_: Any) -> VSSLModel:
    return OracleModel(get_demo_config("demo-oracle")).eval()
