"""vssl-companion: evaluate visual sound source localization models with negative audio.

Research companion of Juanola, Haro & Fuentes, "A Critical Assessment of Visual Sound Source
Localization Models Including Negative Audio" (ICASSP 2025).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vssl-companion")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
