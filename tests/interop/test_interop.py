"""Our Client and Worker with foreign peers through the C gearmand.

Peers: the ``gearman`` command-line tool (client and ``-w`` worker) and the
original gear 0.16.0 from PyPI (its Worker serves our Client, its Client
submits to our Worker).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

import gear
from fixtures.gear016 import WORKER
from fixtures.peers import Harness, reaped, serve
from fixtures.servers import require_tool

pytestmark = pytest.mark.interop

T = 20


@pytest.fixture
def client(gearmand: Any, harness: Harness) -> Any:
    return harness.client(gearmand, client_id="interop-client", timeout=T)


@pytest.fixture
def worker(gearmand: Any, harness: Harness) -> Any:
    return harness.worker(gearmand, client_id="interop-worker", timeout=T)


def test_gearman_cli_client_foreground(gearmand: Any, worker: Any) -> None:
    worker.registerFunction("rev")
    thread = serve(worker, 1, lambda job: job.sendWorkComplete(job.arguments[::-1]))
    out = subprocess.run(
        [
            require_tool("gearman"),
            "-h",
            gearmand.host,
            "-p",
            str(gearmand.port),
            "-f",
            "rev",
            "hello world",
        ],
        capture_output=True,
        timeout=T,
    )
    thread.join(T)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"dlrow olleh"


def test_gearman_cli_client_background(gearmand: Any, worker: Any) -> None:
    worker.registerFunction("bg")
    got: list[Any] = []

    def handler(job: Any) -> None:
        got.append((job.name, job.arguments, job.unique))
        job.sendWorkComplete(b"")

    out = subprocess.run(
        [
            require_tool("gearman"),
            "-h",
            gearmand.host,
            "-p",
            str(gearmand.port),
            "-f",
            "bg",
            "-b",
            "-u",
            "cli-unique",
            "payload",
        ],
        capture_output=True,
        timeout=T,
    )
    assert out.returncode == 0, out.stderr
    thread = serve(worker, 1, handler)
    thread.join(T)
    assert got == [("bg", b"payload", b"cli-unique")]


def test_gearman_cli_worker_serves_our_client(gearmand: Any, client: Any) -> None:
    proc = subprocess.Popen(
        [
            require_tool("gearman"),
            "-w",
            "-h",
            gearmand.host,
            "-p",
            str(gearmand.port),
            "-f",
            "upper",
            "-c",
            "2",
            "--",
            "tr",
            "a-z",
            "A-Z",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with reaped(proc):
        for text in (b"hello", b"gear"):
            job = gear.Job("upper", text)
            client.submitJob(job, timeout=T)
            assert job.wait(T)
            assert b"".join(job.data) == text.upper()
            assert not job.failure
        assert proc.wait(T) == 0


def test_gear016_worker_serves_our_client(gearmand: Any, client: Any, gear016: Any) -> None:
    proc = gear016.start(WORKER, str(gearmand.port), "4", "rev016")
    with reaped(proc):
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        for arg in (b"abc", b"12345", b"x" * 100000):
            job = gear.Job("rev016", arg)
            client.submitJob(job, timeout=T)
            assert job.wait(T)
            assert job.data == [b"chunk", arg[::-1]]
            assert job.fraction_complete == 0.5
        job = gear.Job("rev016", b"fail")
        client.submitJob(job, timeout=T)
        assert job.wait(T) and job.failure
        assert proc.wait(T) == 0, proc.stderr.read() if proc.stderr else ""


GEAR016_CLIENT = """
import json, sys, time, gear
c = gear.Client('gear016-client')
c.addServer('127.0.0.1', int(sys.argv[1]))
c.waitForServer()
results = []
jobs = [gear.Job('ours', arg.encode(), unique=('u-' + arg) if i % 2 else None)
        for i, arg in enumerate(['one', 'two', 'three'])]
for job in jobs:
    c.submitJob(job)
bg = gear.Job('ours', b'background')
c.submitJob(bg, background=True)
deadline = time.time() + 20
while not all(j.complete for j in jobs) and time.time() < deadline:
    time.sleep(0.01)
print(json.dumps([[j.complete, j.failure, [d.decode() for d in j.data]] for j in jobs]))
c.shutdown()
"""


def test_gear016_client_submits_to_our_worker(gearmand: Any, worker: Any, gear016: Any) -> None:
    seen: list[Any] = []

    def handler(job: Any) -> None:
        seen.append((job.arguments, job.unique))
        job.sendWorkData(b"data-" + job.arguments)
        job.sendWorkComplete(job.arguments.upper())

    worker.registerFunction("ours")
    thread = serve(worker, 4, handler)
    out = gear016.run(GEAR016_CLIENT, str(gearmand.port), timeout=60)
    thread.join(T)
    assert json.loads(out.stdout) == [
        [True, False, ["data-one", "ONE"]],
        [True, False, ["data-two", "TWO"]],
        [True, False, ["data-three", "THREE"]],
    ]
    assert sorted(seen) == sorted(
        [(b"one", None), (b"two", b"u-two"), (b"three", None), (b"background", None)]
    )


GEAR016_SERVER = """
import signal, gear
server = gear.Server(0, host='127.0.0.1')
print(server.port, flush=True)
signal.pause()
"""


@pytest.fixture
def gear016_server(gear016: Any) -> Iterator[int]:
    """gear 0.16.0's own server, which never answers OPTION_REQ (§f.11)."""
    with reaped(gear016.start(GEAR016_SERVER)) as proc:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())


def test_set_option_unanswered_does_not_cascade(gear016_server: int) -> None:
    worker = gear.Worker("w-on-016")
    client = gear.Client("c-on-016")
    try:
        worker.registerFunction("rev")
        for obj in (worker, client):
            obj.addServer("127.0.0.1", gear016_server)
            obj.waitForServer(T)
        conn = client.getConnection()
        assert client.setOption("exceptions", timeout=0.3) is True
        assert client.active_connections == [conn]
        thread = serve(worker, 3, lambda job: job.sendWorkComplete(job.arguments[::-1]))
        for arg in (b"abc", b"de", b"f"):
            job = gear.Job("rev", arg)
            client.submitJob(job, timeout=T)
            assert job.wait(T) and job.data == [arg[::-1]]
        thread.join(T)
        assert client.active_connections == [conn]
    finally:
        worker.shutdown()
        client.shutdown()
