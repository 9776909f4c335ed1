"""Which build of gear is imported: ``compiled`` (mypyc) or ``pure`` Python.

A platform wheel carries the hot modules as C extensions; a source install
without a C compiler (or with ``GEAR_MYPYC=0``) runs the same modules as
Python. geard's start-up line and ``geard --version`` say which one runs.
"""

from __future__ import annotations

import importlib

__all__ = ["BUILD", "COMPILED_MODULES", "compiled_modules"]

#: The modules a compiled build carries as C extensions.
COMPILED_MODULES = (
    "gear.codec",
    "gear.server.stats",
    "gear.server.outbox",
    "gear.server.acl_admin",
    "gear.server.engine",
    "gear.server.store_events",
    "gear.server.handlers",
)


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED_MODULES` that are imported from an extension."""
    found = []
    for name in COMPILED_MODULES:
        path = getattr(importlib.import_module(name), "__file__", None) or ""
        if path.endswith((".so", ".pyd")):
            found.append(name)
    return found


#: ``compiled`` when the engine is a C extension, else ``pure``.
BUILD = "compiled" if "gear.server.engine" in compiled_modules() else "pure"
