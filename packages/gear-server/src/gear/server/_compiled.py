"""Rules for the modules a compiled build turns into C (see ``_build``).

mypyc makes a class in a compiled module a *native* class, and interpreted
code can subclass a native class only when the class allows it. The
server's layer classes are stacked under ``gear.Server``, which gear 0.16
code subclasses, so each is decorated with
``@mypyc_attr(allow_interpreted_subclasses=True)``. The decorator is
mypy_extensions' when type checking and compiling, and a no-op at run time,
so mypy_extensions is not a run-time dependency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["mypyc_attr"]

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr
else:

    def mypyc_attr(**flags: Any) -> Any:
        """At run time only mypyc's own reading of the decorator matters."""
        return lambda cls: cls
