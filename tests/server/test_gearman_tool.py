"""The C ``gearman`` and ``gearadmin`` tools against our geard."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures.geard import Geard, RawGearman
from fixtures.servers import require_tool
from fixtures.waiting import wait_until
from gear.server import __version__

pytestmark = pytest.mark.interop


def gearman(geard: Any, *args: str, data: bytes | None = None) -> bytes:
    tool = require_tool("gearman")
    out = subprocess.run(
        [tool, "-h", geard.host, "-p", str(geard.port), *args],
        input=data,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return out.stdout


def gearadmin(geard: Any, *args: str) -> bytes:
    tool = require_tool("gearadmin")
    out = subprocess.run(
        [tool, "-h", geard.host, "-p", str(geard.port), *args],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return out.stdout


@pytest.fixture
def workers(geard: Geard) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait(10)


def start_worker(geard: Any, procs: list[subprocess.Popen[bytes]], *args: str) -> None:
    tool = require_tool("gearman")
    procs.append(
        subprocess.Popen(
            [tool, "-h", geard.host, "-p", str(geard.port), "-w", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )


def wait_status(geard: Any, line: bytes) -> None:
    with RawGearman(geard.port) as admin:
        wait_until(lambda: line in admin.admin("status"), 15, 0.02, "status never showed %r" % line)


def test_foreground_job(geard: Geard, workers: list[subprocess.Popen[bytes]]) -> None:
    start_worker(geard, workers, "-f", "rev", "--", "rev")
    wait_status(geard, b"rev\t0\t0\t1\n")
    assert gearman(geard, "-f", "rev", "hello") == b"olleh"
    assert gearman(geard, "-f", "rev", "-u", "k1", "abc") == b"cba"


def test_work_data_lines_same_as_gearmand(
    geard: Geard, gearmand: Any, workers: list[subprocess.Popen[bytes]]
) -> None:
    outputs = []
    for server in (geard, gearmand):
        start_worker(server, workers, "-n", "-f", "lines", "--", "printf", "a\\nb\\n")
        wait_status(server, b"lines\t0\t0\t1\n")
        outputs.append(gearman(server, "-f", "lines", "x"))
    assert outputs[0] == outputs[1]
    assert outputs[0].endswith(b"a\nb\n")


def test_background_jobs_priorities_and_unique(
    geard: Geard, workers: list[subprocess.Popen[bytes]]
) -> None:
    gearman(geard, "-b", "-L", "-f", "bg", "low")
    gearman(geard, "-b", "-f", "bg", "normal")
    gearman(geard, "-b", "-I", "-f", "bg", "high")
    gearman(geard, "-b", "-u", "same", "-f", "bg", "u1")
    gearman(geard, "-b", "-u", "same", "-f", "bg", "u2")
    assert [j.arguments for j in geard.server.getQueue()] == [b"high", b"normal", b"u1", b"low"]
    assert gearadmin(geard, "--status") == b"bg\t4\t0\t0\n.\n"
    assert gearadmin(geard, "--priority-status") == b"bg\t1\t2\t1\t0\n.\n"
    uniques = gearadmin(geard, "--show-unique-jobs").splitlines()
    assert b"same" in uniques and len(uniques) == 5 and uniques[-1] == b"."
    start_worker(geard, workers, "-c", "4", "-f", "bg", "--", "cat")
    # The worker exits after its 4 jobs; bg, with no job and no worker, is then freed.
    wait_until(lambda: geard.server.total_jobs == 0, 15, 0.02, "bg jobs never ran")
    wait_until(lambda: b"bg\t" not in gearadmin(geard, "--status"), 15, 0.05, "bg not freed")


def test_gearadmin_commands(geard: Geard, workers: list[subprocess.Popen[bytes]]) -> None:
    start_worker(geard, workers, "-f", "adm", "--", "cat")
    wait_status(geard, b"adm\t0\t0\t1\n")
    assert gearadmin(geard, "--server-version") == __version__.encode() + b"\n"
    assert gearadmin(geard, "--getpid") == b"%d\n" % os.getpid()
    assert b" : adm\n" in gearadmin(geard, "--workers")
    gearman(geard, "-b", "-f", "queued-only", "data")
    (job,) = geard.server.getQueue()
    assert job.handle in gearadmin(geard, "--show-jobs")
    gearadmin(geard, "--cancel-job", job.handle.decode())
    assert geard.server.total_jobs == 0
    gearadmin(geard, "--create-function", "made")
    assert b"made\t0\t0\t0\n" in gearadmin(geard, "--status")
    gearadmin(geard, "--drop-function", "made")
    assert b"made" not in gearadmin(geard, "--status")
