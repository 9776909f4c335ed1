"""The gear pytest plugin, used by a test file written as a user would write it.

The file runs in a fresh ``python -m pytest`` in an empty directory, so the
plugin is found through its ``pytest11`` entry point exactly as in a user's
project, and pytest-asyncio runs the ``async`` tests.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

USER_TESTS = """
import gear
import gear.testing
import pytest


async def resize(job):
    width, height = map(int, job.arguments.split(b"x"))
    return b"%dx%d" % (width // 2, height // 2)


@pytest.mark.asyncio
async def test_resize_halves_the_size(gear_worker, gear_client):
    async with gear.testing.serving(gear_worker, handlers={"resize": resize}):
        async with gear_client as client:
            await client.wait_for_server(10)
            job = await client.submit("resize", b"640x480")
            assert await job.result(10) == b"320x240"


@pytest.mark.asyncio
async def test_each_test_gets_an_empty_server(gear_server, gear_client):
    async with gear_client as client:
        await client.wait_for_server(10)
        await client.submit("resize", b"2x2", background=True)
    assert len(gear_server.server.jobs) == 1


def test_threaded_code_uses_the_same_server(gear_server):
    client = gear.Client("threaded")
    client.addServer(gear_server.host, gear_server.port)
    client.waitForServer(10)
    job = gear.Job(b"resize", b"8x8")
    client.submitJob(job, background=True)
    client.shutdown()
    assert len(gear_server.server.jobs) == 1


@pytest.mark.asyncio
async def test_a_wrong_expectation_fails(gear_worker, gear_client):
    async with gear.testing.serving(gear_worker, handlers={"resize": resize}):
        async with gear_client as client:
            await client.wait_for_server(10)
            job = await client.submit("resize", b"10x10")
            assert await job.result(10) == b"10x10"
"""


def test_user_test_file_runs_with_the_plugin_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_resize.py").write_text(textwrap.dedent(USER_TESTS))
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
