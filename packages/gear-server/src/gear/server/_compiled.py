"""Rules for the modules a compiled build turns into C (see ``_build``).

mypyc makes a class in a compiled module a *native* class unless it is
told otherwise, and interpreted code cannot subclass a native class or
patch its methods. The server's layer classes are stacked under
``gear.Server``, which gear 0.16 code subclasses and patches, so they are
decorated with :func:`python_class`: their method bodies are compiled, the
class itself stays an ordinary Python class.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["python_class"]

_C = TypeVar("_C", bound=type)


def python_class(cls: _C) -> _C:
    """Keep ``cls`` an ordinary, subclassable Python class under mypyc."""
    return cls
