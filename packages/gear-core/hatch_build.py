"""Build hook: compile the hot modules with mypyc into a platform wheel.

The modules are listed under ``[tool.hatch.build.targets.wheel.hooks.custom]``
``modules``. ``GEAR_MYPYC`` picks the build: unset or ``auto`` compiles when
mypyc, setuptools and a working C compiler are there and otherwise builds
the usual pure-Python wheel (with a warning); ``1`` fails instead of falling
back; ``0`` never compiles. Editable installs are always pure. The same
file is in gear-core and gear-server (tests/packaging checks they match).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# Run in a child process so a compiler failure cannot leave this one half-built.
_COMPILE = """
import sys
from mypyc.build import mypycify
from setuptools import setup

out, temp, *paths = sys.argv[1:]
setup(
    name="gear-mypyc",
    ext_modules=mypycify(
        ["--explicit-package-bases", "--ignore-missing-imports", *paths], opt_level="3"
    ),
    script_args=["build_ext", "--build-lib", out, "--build-temp", temp],
)
"""


class MypycBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        mode = os.environ.get("GEAR_MYPYC", "auto")
        if mode not in ("auto", "0", "1"):
            raise ValueError("GEAR_MYPYC must be auto, 0 or 1, not %r" % mode)
        if self.target_name != "wheel" or version == "editable" or mode == "0":
            return
        self._work = Path(tempfile.mkdtemp(prefix="gear-mypyc-"))
        try:
            built = self._compile(self.config["modules"])
        except Exception as e:
            if mode == "1":
                raise
            self.app.display_warning("gear: building a pure-Python wheel: %s" % e)
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        for path, target in built.items():
            build_data["force_include"][path] = target

    def finalize(self, version: str, build_data: dict[str, Any], artifact: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)

    def _compile(self, modules: list[str]) -> dict[str, str]:
        root = Path(self.root)
        out, temp = self._work / "lib", self._work / "temp"
        search = [str(root / "src")]
        sibling = root.parent / "gear-core" / "src"
        if sibling.is_dir() and sibling != root / "src":
            search.append(str(sibling))
        env = dict(os.environ, MYPYPATH=os.pathsep.join(search))
        result = subprocess.run(
            [sys.executable, "-c", _COMPILE, str(out), str(temp), *modules],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise RuntimeError("mypyc failed: %s" % (lines[-1] if lines else result.returncode))
        built = {
            str(p): str(p.relative_to(out)) for p in out.rglob("*") if p.suffix in (".so", ".pyd")
        }
        if not built:
            raise RuntimeError("mypyc built no extension")
        return built
