"""Test sets: the Sample record, the embedded synthetic benchmark, VGG-SS and IS3."""

from .base import BROAD_CATEGORIES, Sample
from .synthetic import SyntheticConfig, SyntheticSet

__all__ = ["BROAD_CATEGORIES", "Sample", "SyntheticConfig", "SyntheticSet"]
