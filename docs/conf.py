"""Sphinx configuration for the gear documentation."""

from __future__ import annotations

import gear

project = "gear"
author = "The gear authors"
copyright = "2026, the gear authors"
version = release = gear.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]

nitpicky = True
nitpick_ignore: list[tuple[str, str]] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = "gear %s" % (release,)
