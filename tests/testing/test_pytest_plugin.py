"""The gear pytest plugin, used by a test file written as a user would write it.

The files are the documentation's example (docs/examples/test_resize.py and
the module it tests). They run in a fresh ``python -m pytest`` in an empty
directory, so the plugin is found through its ``pytest11`` entry point
exactly as in a user's project, and pytest-asyncio runs the ``async`` tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

# A user's mistake: the fixtures must not hide a failing assertion.
MISTAKE = """
import pytest

import gear.testing
from resize_worker import worker


@pytest.mark.asyncio
async def test_a_wrong_expectation_fails(gear_server, gear_client):
    async with gear.testing.serving(worker, gear_server), gear_client as client:
        assert await client.call("resize", b'{"width": 10, "height": 10}') == b"{}"
"""


def test_user_test_file_runs_with_the_plugin_fixtures(tmp_path: Path) -> None:
    for name in ("test_resize.py", "resize_worker.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "test_mistake.py").write_text(MISTAKE)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed, 5 passed" in out, out
    assert "b'{\"width\":5,\"height\":5}' == b'{}'" in out, out
