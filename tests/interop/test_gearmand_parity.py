"""Where geard must behave as gearmand does, checked with foreign peers.

* ``WORK_EXCEPTION`` reaches our ``gear.Client`` (it asks for the
  ``exceptions`` option on connect) on the C gearmand, on geard and on
  gear 0.16's own server, while a client that did not ask (the ``gearman``
  tool) still gets ``WORK_FAIL``. ``gear.AsyncClient`` asks the same way
  (OPTION_REQ, then a GET_STATUS probe), so on gear 0.16's server, which
  never answers OPTION_REQ, neither face is left with a request pending.
* ``STATUS_RES`` of a queued background job carries ``0``/``0`` progress,
  which python3-gearman (PyPI) parses as numbers.
* ``maxqueue FN N`` with a negative N means no limit.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gear
from fixtures.aio import run
from fixtures.geard import RawGearman
from fixtures.peers import Harness, reaped
from fixtures.servers import require_tool

pytestmark = pytest.mark.interop

T = 20

GEAR016_SERVER = """
import signal, gear
server = gear.Server(0, host='127.0.0.1')
print(server.port, flush=True)
signal.pause()
"""

#: python3-gearman: submit a background job and print its status; after a
#: line on stdin print it again. argv: port, function.
PY3_GEARMAN_STATUS = """
import json, sys, python3_gearman
client = python3_gearman.GearmanClient(['127.0.0.1:%s' % sys.argv[1]])
request = client.submit_job(sys.argv[2], 'payload', background=True,
                            wait_until_complete=False)
def status():
    s = client.get_job_status(request, poll_timeout=10).status
    return {k: s[k] for k in ('handle', 'known', 'running', 'numerator', 'denominator')}
print(json.dumps(status()), flush=True)
sys.stdin.readline()
print(json.dumps(status()), flush=True)
"""


@pytest.fixture
def gear016_server(gear016: Any) -> Iterator[Any]:
    """gear 0.16.0's own server: it never answers OPTION_REQ."""
    with reaped(gear016.start(GEAR016_SERVER)) as proc:
        assert proc.stdout is not None

        class Address:
            host = "127.0.0.1"
            port = int(proc.stdout.readline())

        yield Address


def _raise(job: Any) -> None:
    job.sendWorkException(b"work failed: " + job.arguments)


def test_exception_reaches_our_client_on_gear016_server(
    gear016_server: Any, harness: Harness
) -> None:
    worker = harness.worker(gear016_server, functions=("raises",))
    harness.serve(worker, _raise)
    client = harness.client(gear016_server)
    # 0.16's server ignored the OPTION_REQ; the GET_STATUS probe behind it
    # still let the connection go active at once.
    assert client.active_connections[0].options == set()
    job = gear.Job("raises", b"x")
    client.submitJob(job, timeout=T)
    assert job.wait(T)
    assert job.failure and job.exception == b"work failed: x"


#: What each server answers to OPTION_REQ exceptions, as the client records it.
ACCEPTED = {"gearmand": {b"exceptions"}, "geard": {b"exceptions"}, "gear016_server": set()}


@pytest.mark.parametrize("kind", list(ACCEPTED))
def test_both_faces_ask_for_exceptions_alike(
    kind: str, request: pytest.FixtureRequest, harness: Harness
) -> None:
    server = request.getfixturevalue(kind)
    worker = harness.worker(server, functions=("raises",))
    harness.serve(worker, _raise)

    threaded = harness.client(server)
    conn = threaded.active_connections[0]
    assert (conn.options, conn.pending_tasks) == (ACCEPTED[kind], [])
    job = gear.Job("raises", b"threaded")
    threaded.submitJob(job, timeout=T)
    assert job.wait(T)
    assert job.exception == b"work failed: threaded"

    async def asyncio_face() -> None:
        async with gear.AsyncClient("aio", [(server.host, server.port)]) as client:
            conn = client.active_connections[0]
            # Before, the OPTION_REQ stayed pending for ever on gear 0.16's
            # server, in front of every later request on the connection.
            assert (conn.options, list(conn.pending)) == (ACCEPTED[kind], [])
            for n in range(3):
                with pytest.raises(gear.JobExceptionError) as info:
                    await client.call("raises", b"aio-%d" % n, timeout=T)
                assert info.value.exception == b"work failed: aio-%d" % n
            assert list(conn.pending) == []

    run(asyncio_face())


def test_gearman_tool_gets_work_fail_while_our_client_gets_the_exception(
    geard: Any, harness: Harness
) -> None:
    worker = harness.worker(geard, functions=("raises",))
    harness.serve(worker, _raise)
    tool = subprocess.run(
        [require_tool("gearman"), "-h", geard.host, "-p", str(geard.port), "-f", "raises", "-s"],
        capture_output=True,
        text=True,
        timeout=T,
    )
    assert (tool.returncode, tool.stderr) == (1, "Job failed\n")
    client = harness.client(geard)
    job = gear.Job("raises", b"ours")
    client.submitJob(job, timeout=T)
    assert job.wait(T)
    assert job.failure and job.exception == b"work failed: ours"


def test_python3_gearman_reads_status_of_a_queued_background_job(
    server: Any, python3_gearman: Path, harness: Harness
) -> None:
    function = "py3-status"
    with reaped(
        subprocess.Popen(
            [str(python3_gearman), "-c", PY3_GEARMAN_STATUS, str(server.port), function],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        queued = json.loads(proc.stdout.readline() or "null")
        assert queued is not None, proc.communicate(timeout=T)[1]
        assert queued["known"] is True and queued["running"] is False
        assert (queued["numerator"], queued["denominator"]) == (0, 0)
        # A worker takes it and reports progress; an echo on its connection
        # makes sure the server has stored the WORK_STATUS.
        worker = harness.worker(server, functions=(function,))
        wjob = worker.getJob(timeout=T)
        assert wjob.handle.decode() == queued["handle"]
        wjob.sendWorkStatus(3, 10)
        wjob.connection.echo(timeout=T)
        out, err = proc.communicate("go\n", timeout=T)
        assert proc.returncode == 0, err
        running = json.loads(out)
        assert running["known"] is True and running["running"] is True
        assert (running["numerator"], running["denominator"]) == (3, 10)
        wjob.sendWorkComplete()


def test_maxqueue_negative_size_means_unlimited(server: Any) -> None:
    gearman = require_tool("gearman")
    with RawGearman(server.port) as admin:
        assert admin.admin("maxqueue neg -1").rstrip() == b"OK"
        assert admin.admin("maxqueue neg -1 -1 -1").rstrip() == b"OK"
        for n in range(3):
            proc = subprocess.run(
                [gearman, "-h", server.host, "-p", str(server.port), "-f", "neg", "-b", "-s"],
                capture_output=True,
                text=True,
                timeout=T,
            )
            assert proc.returncode == 0, (n, proc.stderr)
        lines = admin.admin("status").splitlines()
    assert b"neg\t3\t0\t0" in lines
