"""Test sets: the Sample record, the embedded synthetic benchmark, VGG-SS and IS3."""

from .base import BROAD_CATEGORIES, Sample
from .is3 import load_is3
from .synthetic import SyntheticConfig, SyntheticSet
from .vggss import load_vggss

__all__ = ["BROAD_CATEGORIES", "Sample", "SyntheticConfig", "SyntheticSet", "load_is3", "load_vggss"]
