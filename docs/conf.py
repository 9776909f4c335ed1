"""Sphinx configuration for the gear documentation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Document the sources, also when the compiled build is installed: autodoc
# reads signatures from Python functions, not from mypyc's C methods.
for _src in sorted((Path(__file__).resolve().parents[1] / "packages").glob("*/src"), reverse=True):
    sys.path.insert(0, str(_src))

import gear  # noqa: E402

project = "gear"
author = "The gear authors"
copyright = "2026, the gear authors"
version = release = gear.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]

# Broken cross-references fail the build (-n -W). There is no intersphinx
# (the build must work offline).
nitpicky = True
nitpick_ignore = [
    # Internal per-connection protocol objects that appear in documented
    # signatures (gear.Server's hooks, gear.worker.AsyncWorkerJob's
    # constructor) but are not part of the documented API.
    ("py:class", "GeardConnection"),
    ("py:class", "gear.server.model.Session"),
    ("py:class", "gear._aio.AsyncConnection"),
    ("py:class", "gear._aio_connection.AsyncConnection"),
]

# References into the standard library cannot resolve without intersphinx;
# ignore them by module name, so that a docstring naming, say,
# ``dataclasses.replace`` does not break the build. References to gear's own
# names are still checked.
_STDLIB = "|".join(sorted(m for m in sys.stdlib_module_names if not m.startswith("_")))
nitpick_ignore_regex = [
    (r"py:.*", r"(%s)(\..*)?" % (_STDLIB,)),
    # asyncio.Task as Python names it at run time.
    (r"py:class", r"_asyncio\.\w+"),
    # The type variables of generic signatures (AsyncClient[_R], the decorator).
    (r"py:class", r"gear(\.\w+)*\._[A-Z]\w*"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
python_maximum_signature_line_length = 88

exclude_patterns = ["_build", "_generated", "examples"]
# furo: maintained, fluid width (code is not squeezed into a fixed column),
# light and dark mode.
html_theme = "furo"
html_title = "gear %s" % (release,)

# The copy button copies commands without their prompts, and no output.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_exclude = ".linenos, .gp, .go"

doctest_global_setup = "import gear"

HERE = Path(__file__).parent
GENERATED = HERE / "_generated"


def _geard_help() -> str:
    """Return the real ``geard --help`` output, or a note if it is missing."""
    code = "import sys; sys.argv = ['geard', '--help']; from gear.cmd.geard import main; main()"
    env = dict(os.environ, COLUMNS="79")
    try:
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(geard --help could not be run while building these docs: %s)\n" % (e,)
    if result.returncode != 0 or not result.stdout.strip():
        return "(gear-server is not installed where these docs were built.)\n"
    return result.stdout


def _generate(app: object) -> None:
    GENERATED.mkdir(exist_ok=True)
    target = GENERATED / "geard-help.txt"
    text = _geard_help()
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def setup(app: object) -> None:
    app.connect("builder-inited", _generate)  # type: ignore[attr-defined]
