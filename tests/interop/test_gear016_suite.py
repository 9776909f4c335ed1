"""gear 0.16.0's own test suite, unchanged, passes against our ``gear``.

The test downloads gear 0.16.0's wheel from PyPI (never from a cache, so a
missing network fails the test), extracts only its ``gear/tests`` package
and runs it with the stdlib unittest runner, the way its ``.testr.conf``
discovers it. ``gear`` itself is ours: the five source trees come first on
``PYTHONPATH`` and the extracted folder joins our namespace through
``gear.__path__`` (``pkgutil.extend_path``), as a sixth distribution would.

gear's functional tests start ``gear.Server(0)``, which listens on every
address; the suite runs in a private network namespace that has only a
loopback interface (``unshare -n``), so nothing is reachable from outside.
"""

from __future__ import annotations

import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from fixtures.pypi import download_gear016_wheel
from fixtures.servers import require_tool

pytestmark = [pytest.mark.interop, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = ("gear-core", "gear-client", "gear-worker", "gear-server", "gear-acl")
SOURCES = [ROOT / "packages" / d / "src" for d in DISTRIBUTIONS]
#: How many tests gear 0.16.0's suite holds (test_gear.py and test_functional.py).
EXPECTED = 43


def _extract_tests(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.startswith("gear/tests/") and n.endswith(".py")]
        assert "gear/tests/__init__.py" in names
        for name in names:
            zf.extract(name, dest)
    assert not (dest / "gear" / "__init__.py").exists()
    return dest


def _in_loopback_namespace(command: list[str]) -> list[str]:
    """``command`` in a new network namespace whose only interface is ``lo`` (up)."""
    unshare = require_tool("unshare")
    ip = require_tool("ip")
    # Not root (a developer's machine): map ourselves to root in a user
    # namespace first; CI runs as root and needs no such step.
    flags = "-n" if os.geteuid() == 0 else "-rn"
    script = '"$0" link set lo up && exec "$@"'
    return [unshare, flags, "sh", "-c", script, ip, *command]


def test_gear016_suite_passes_unchanged(gear016_suite_python: Path, tmp_path: Path) -> None:
    assert all((src / "gear").is_dir() for src in SOURCES)
    wheel = download_gear016_wheel(gear016_suite_python, tmp_path)
    top = _extract_tests(wheel, tmp_path / "suite")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, SOURCES), str(top)])
    env["OS_TEST_TIMEOUT"] = "60"  # per test, as gear's .testr.conf sets it
    command = [
        str(gear016_suite_python),
        "-m",
        "unittest",
        "discover",
        "-t",
        str(top),
        "-s",
        str(top / "gear" / "tests"),
        "-v",
    ]
    proc = subprocess.run(
        _in_loopback_namespace(command),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    report = proc.stderr
    assert proc.returncode == 0, report[-20000:]
    assert re.search(r"^Ran %d tests in " % EXPECTED, report, re.M), report[-3000:]
    assert re.search(r"^OK$", report, re.M), report[-3000:]
    # Every test module imported our gear, not a stray gear 0.16.
    assert (
        str(SOURCES[0])
        in subprocess.run(
            [str(gear016_suite_python), "-c", "import gear; print(gear.__file__)"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
    )


def test_the_suite_namespace_has_only_loopback() -> None:
    """What gear.Server(0) binds in there is reachable from nowhere else."""
    proc = subprocess.run(
        _in_loopback_namespace([require_tool("ip"), "-o", "link", "show"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    links = [line.split(":")[1].strip() for line in proc.stdout.splitlines()]
    assert links == ["lo"], proc.stdout
    assert "<LOOPBACK,UP" in proc.stdout, proc.stdout
