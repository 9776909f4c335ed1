"""AsyncWorker.run(): a real worker process, real signals, a real geard.

The worker process holds running jobs when it gets SIGTERM. Jobs that can
finish within the drain deadline finish there; the others are requeued when
it passes and another worker does them. No job is lost and none fails.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import gear
import gear.testing
from fixtures.aio import T, run, wait_until
from gear.testing import InProcessServer

WORKER = """
import asyncio, logging, sys
import gear

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
port, drain = int(sys.argv[1]), float(sys.argv[2])
worker = gear.AsyncWorker("drainer", [("127.0.0.1", port)], codec=gear.JSONCodec())


@worker.function("sleep")
async def sleep(seconds):
    print("started", seconds, flush=True)
    await asyncio.sleep(seconds)
    return {"slept": seconds, "by": "drainer"}


async def main():
    async with worker:
        print("ready", flush=True)
        await worker.run(concurrency=8, drain_timeout=drain)
    print("returned", flush=True)


asyncio.run(main())
"""


async def spawn_worker(tmp_path: Path, srv: InProcessServer, drain: float) -> Any:
    script = tmp_path / "drainer.py"
    script.write_text(WORKER)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(srv.port),
        str(drain),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert await line(proc.stdout) == "ready"
    return proc


async def line(stream: Any) -> str:
    data = await asyncio.wait_for(stream.readline(), T)
    assert data, "the worker process ended early"
    return str(data.decode().strip())


async def wait_for_log(proc: Any, text: str) -> None:
    for _ in range(50):
        if text in await line(proc.stderr):
            return
    raise AssertionError("the worker never logged %r" % (text,))


def rescuer() -> gear.AsyncWorker:
    worker = gear.AsyncWorker("rescuer", codec=gear.JSONCodec())

    @worker.function("sleep")
    async def sleep(seconds: float) -> dict[str, Any]:
        return {"slept": seconds, "by": "rescuer"}

    return worker


def test_sigterm_drains_then_requeues(tmp_path: Path, gear_server: InProcessServer) -> None:
    async def main() -> None:
        proc = await spawn_worker(tmp_path, gear_server, drain=1.5)
        try:
            async with gear.AsyncClient("c", [gear_server.address], codec=gear.JSONCodec()) as c:
                lengths = [0.3, 0.5, 60, 60]
                calls = [asyncio.create_task(c.call("sleep", n, timeout=T * 3)) for n in lengths]
                started = sorted([float((await line(proc.stdout)).split()[1]) for _ in lengths])
                assert started == sorted(lengths)

                signalled = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                await wait_for_log(proc, "SIGTERM: finishing running jobs")
                # A job submitted now is not lost either. (It normally waits
                # for the rescuer, but a GRAB_JOB the worker sent before the
                # signal may still bring it to the draining worker.)
                calls.append(asyncio.create_task(c.call("sleep", 0.1, timeout=T * 3)))
                last = await line(proc.stdout)
                if last == "started 0.1":
                    last = await line(proc.stdout)
                assert last == "returned"
                assert await asyncio.wait_for(proc.wait(), T) == 0
                took = time.monotonic() - signalled
                assert 1.5 <= took < 1.5 + 5, took

                assert not any(call.done() for call in calls[2:4])
                async with gear.testing.serving(rescuer(), gear_server):
                    results = await asyncio.gather(*calls)
            assert results[:4] == [
                {"slept": 0.3, "by": "drainer"},
                {"slept": 0.5, "by": "drainer"},
                {"slept": 60, "by": "rescuer"},
                {"slept": 60, "by": "rescuer"},
            ]
            assert results[4]["slept"] == 0.1
            assert gear_server.server.jobs == {}
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    run(main(), timeout=60)


def test_a_second_signal_requeues_at_once(tmp_path: Path, gear_server: InProcessServer) -> None:
    async def main() -> None:
        proc = await spawn_worker(tmp_path, gear_server, drain=60)
        try:
            async with gear.AsyncClient("c", [gear_server.address], codec=gear.JSONCodec()) as c:
                call = asyncio.create_task(c.call("sleep", 60, timeout=T * 3))
                assert await line(proc.stdout) == "started 60"
                signalled = time.monotonic()
                proc.send_signal(signal.SIGINT)
                await wait_for_log(proc, "SIGINT: finishing running jobs")
                proc.send_signal(signal.SIGTERM)
                await wait_for_log(proc, "SIGTERM again: requeueing the running jobs now")
                assert await asyncio.wait_for(proc.wait(), T) == 0
                assert time.monotonic() - signalled < T
                async with gear.testing.serving(rescuer(), gear_server):
                    assert await call == {"slept": 60, "by": "rescuer"}
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    run(main(), timeout=60)


def test_run_restores_the_signal_handlers_and_serving_runs_beside_other_tasks(
    gear_server: InProcessServer,
) -> None:
    worker = gear.AsyncWorker("beside", [gear_server.address])

    @worker.function("echo")
    async def echo(job: Any) -> bytes:
        return bytes(job.arguments)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with worker:
            running = asyncio.create_task(worker.run(2, signals=[signal.SIGUSR1], drain_timeout=5))
            async with gear.AsyncClient("c", [gear_server.address]) as client:
                assert await client.call("echo", b"one", timeout=T) == b"one"
                loop.call_soon(signal.raise_signal, signal.SIGUSR1)
                await asyncio.wait_for(running, T)
                # The loop no longer handles SIGUSR1 (the default would end the process,
                # so check the registration rather than raising it again).
                assert not loop.remove_signal_handler(signal.SIGUSR1)
                async with worker.serving(concurrency=2):
                    assert await client.call("echo", b"two", timeout=T) == b"two"

    run(main())


def test_after_the_first_signal_no_new_job_is_taken(
    gear_server: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    worker = gear.AsyncWorker("one-at-a-time", [gear_server.address])
    started = asyncio.Event()
    release = asyncio.Event()

    @worker.function("hold")
    async def hold(job: Any) -> bytes:
        started.set()
        await release.wait()
        return b"held"

    async def main() -> None:
        caplog.set_level(logging.INFO, logger="gear.AsyncWorker")
        async with worker, gear.AsyncClient("c", [gear_server.address]) as client:
            running = asyncio.create_task(worker.run(1, signals=[signal.SIGUSR1]))
            first = asyncio.create_task(client.call("hold", b"1", timeout=T))
            await asyncio.wait_for(started.wait(), T)
            signal.raise_signal(signal.SIGUSR1)
            await wait_until(lambda: "SIGUSR1: finishing running jobs" in caplog.text)
            second = await client.submit("hold", b"2")
            release.set()
            assert await first == b"held"
            await asyncio.wait_for(running, T)
            # The second job waits on the server: the draining worker left it.
            await client.status(second, timeout=T)
            assert (second.known, second.running, second.done) == (True, False, False)

    run(main())


def test_leaving_serving_by_an_exception_with_no_job_running_requeues_nothing(
    gear_server: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Idle runners hold no job: no "requeueing" warning (Ctrl-C before run() took over)."""
    worker = gear.AsyncWorker("idle-stop", [gear_server.address])

    @worker.function("echo")
    async def echo(job: Any) -> bytes:
        return bytes(job.arguments)

    async def main() -> None:
        async with worker:
            with pytest.raises(KeyError):
                async with worker.serving(concurrency=4):
                    await asyncio.sleep(0)
                    raise KeyError("stop")

    with caplog.at_level(logging.WARNING):
        run(main())
    assert "equeueing" not in caplog.text, caplog.text
