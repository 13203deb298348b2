"""Test sets: the Sample record, the embedded synthetic benchmark, and (later) VGG-SS and IS3."""

from .base import Sample

__all__ = ["Sample"]
