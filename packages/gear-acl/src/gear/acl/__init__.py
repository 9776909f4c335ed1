"""gear-acl."""

from gear.acl._version import __version__

__all__ = ["__version__"]
