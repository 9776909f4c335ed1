"""The gear pytest plugin, used by a test file written as a user would write it.

The file is the documentation's example (docs/examples/test_resize.py). It
runs in a fresh ``python -m pytest`` in an empty directory, so the plugin is
found through its ``pytest11`` entry point exactly as in a user's project,
and pytest-asyncio runs the ``async`` tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "test_resize.py"

# A user's mistake: the fixtures must not hide a failing assertion.
MISTAKE = """
import pytest

import gear.testing
from test_resize import resize


@pytest.mark.asyncio
async def test_a_wrong_expectation_fails(gear_worker, gear_client):
    async with gear.testing.serving(gear_worker, handlers={"resize": resize}):
        async with gear_client as client:
            await client.wait_for_server(10)
            job = await client.submit("resize", b"10x10")
            assert await job.result(10) == b"10x10"
"""


def test_user_test_file_runs_with_the_plugin_fixtures(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "test_resize.py")
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
    assert "1 failed, 3 passed" in out, out
    assert "test_a_wrong_expectation_fails" in out and "b'5x5' == b'10x10'" in out, out
