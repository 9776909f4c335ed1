"""gear-worker."""

from gear.worker._version import __version__

__all__ = ["__version__"]
