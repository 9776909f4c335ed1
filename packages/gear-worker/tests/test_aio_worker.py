"""AsyncWorker scenarios over real sockets, on the C gearmand and on geard.

The worker-side scenarios of the threaded API (getJob, timeouts,
interruption, registration) rewritten for the asyncio API, plus ``serve``
with its concurrency limit and graceful stop. Only public names are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import gear
from fixtures.aio import RETRY, T, run, wait_until
from gear.errors import JobFailedError


@contextlib.asynccontextmanager
async def connected(
    server: Any, *functions: str, client_id: str = "aio-worker"
) -> AsyncIterator[tuple[Any, Any]]:
    """A connected (AsyncWorker, AsyncClient) pair; the worker can do ``functions``."""
    async with gear.AsyncWorker(client_id) as worker, gear.AsyncClient("aio-client") as client:
        for obj in (worker, client):
            obj.reconnect_delay = RETRY
            obj.add_server(server.host, server.port)
        for name in functions:
            worker.register(name)
        await worker.wait_for_server(T)
        await client.wait_for_server(T)
        yield worker, client


def test_jobs_iterator(server: Any) -> None:
    async def main() -> None:
        async with connected(server, "reverse") as (worker, client):
            jobs = [await client.submit("reverse", b"%d-ab" % i) for i in range(3)]

            async def consume() -> int:
                count = 0
                async for job in worker.jobs():
                    assert isinstance(job, gear.worker.AsyncWorkerJob)
                    assert job.name == "reverse" and job.unique is None
                    job.complete(job.arguments[::-1])
                    count += 1
                    if count == 3:
                        break
                return count

            assert await consume() == 3
            assert await asyncio.gather(*jobs) == [b"ba-%d" % i for i in range(3)]

    run(main())


def test_get_job_timeout_and_stop_interrupts(server: Any) -> None:
    async def main() -> None:
        async with connected(server, "never") as (worker, client):
            started = time.monotonic()
            with pytest.raises(gear.TimeoutError):
                await worker.get_job(timeout=0.3)
            assert time.monotonic() - started < 5
            waiters = [asyncio.create_task(worker.get_job()) for _ in range(3)]
            await asyncio.sleep(0.05)
            await worker.stop()
            for task in waiters:
                with pytest.raises(gear.InterruptedError):
                    await task
            # The worker keeps working after a stop.
            await client.submit("never", b"later")
            job = await worker.get_job(timeout=T)
            assert job.arguments == b"later"
            job.complete()

    run(main())


def test_cancelled_get_job_loses_no_job(server: Any) -> None:
    async def main() -> None:
        async with connected(server, "c") as (worker, client):
            for _ in range(5):
                waiter = asyncio.create_task(worker.get_job())
                await asyncio.sleep(0.01)
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
            job = await client.submit("c", b"after-cancel")
            got = await worker.get_job(timeout=T)
            got.complete(got.arguments)
            assert await job.result(T) == b"after-cancel"

    run(main())


def test_serve_concurrency_limit_and_graceful_stop(server: Any) -> None:
    async def main() -> None:
        running = 0
        peak = 0
        finished: list[bytes] = []

        async def slow(job: Any) -> bytes:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1
            finished.append(bytes(job.arguments))
            return bytes(job.arguments)

        async with connected(server) as (worker, client):
            serve = asyncio.create_task(worker.serve({"slow": slow}, concurrency=3))
            await wait_until(lambda: b"slow" in worker.functions)
            jobs = [await client.submit("slow", b"%d" % i) for i in range(12)]
            results = await asyncio.gather(*[job.result(T) for job in jobs])
            assert results == [b"%d" % i for i in range(12)]
            assert peak == 3
            # Stop while jobs are in flight: they finish, then serve returns.
            more = [await client.submit("slow", b"m%d" % i) for i in range(3)]
            await wait_until(lambda: running == 3)
            await worker.stop()
            assert running == 0
            await asyncio.wait_for(serve, T)
            assert await asyncio.gather(*[job.result(T) for job in more]) == [
                b"m0",
                b"m1",
                b"m2",
            ]
            with pytest.raises(gear.ConfigurationError):
                await worker.serve({"slow": slow}, concurrency=0)

    run(main())


def test_serve_handler_results_and_errors(server: Any) -> None:
    async def text(job: Any) -> str:
        job.send_data("dätä")
        return "ok: " + job.arguments.decode()

    async def ends_itself(job: Any) -> None:
        job.complete(b"manual")

    async def fails(job: Any) -> None:
        job.fail()
        with pytest.raises(gear.GearmanError, match="already ended"):
            job.complete()

    async def main() -> None:
        async with connected(server) as (worker, client):
            handlers = {"text": text, "manual": ends_itself, "fails": fails}
            serve = asyncio.create_task(worker.serve(handlers, concurrency=2))
            await wait_until(lambda: len(worker.functions) == 3)
            job = await client.submit("text", "grüß")
            assert await job.result(T) == "ok: grüß".encode()
            assert job.data == ["dätä".encode(), "ok: grüß".encode()]
            assert await (await client.submit("manual", b"")).result(T) == b"manual"
            with pytest.raises(JobFailedError):
                await (await client.submit("fails", b"")).result(T)
            await worker.stop()
            await asyncio.wait_for(serve, T)

    run(main())


def test_register_wakes_waiting_get_job(server: Any) -> None:
    async def main() -> None:
        async with connected(server, "first") as (worker, client):
            await client.submit("second", b"2", background=True)
            waiter = asyncio.create_task(worker.get_job(timeout=T))
            await wait_until(lambda: worker.active_connections[0].state == "SLEEP")
            worker.register("second")
            job = await waiter
            assert job.name == "second" and job.arguments == b"2"
            job.complete()

    run(main())


def test_register_with_timeout_and_unregister(server: Any) -> None:
    async def main() -> None:
        async with connected(server) as (worker, client):
            worker.register("timed", timeout=30)
            assert worker.functions[b"timed"].timeout == 30
            worker.register("gone")
            worker.unregister("gone")
            assert set(worker.functions) == {b"timed"}
            with pytest.raises(KeyError):
                worker.unregister("gone")
            job = await client.submit("timed", b"xy")
            got = await worker.get_job(timeout=T)
            got.complete(got.arguments[::-1])
            assert await job.result(T) == b"yx"

    run(main())


def test_several_waiters_each_get_one(server: Any) -> None:
    async def main() -> None:
        async with connected(server, "par") as (worker, client):
            waiters = [asyncio.create_task(worker.get_job(timeout=T)) for _ in range(3)]
            jobs = [await client.submit("par", b"%d" % i) for i in range(3)]
            got = await asyncio.gather(*waiters)
            assert sorted(job.arguments for job in got) == [b"0", b"1", b"2"]
            for job in got:
                job.complete(job.arguments)
            assert await asyncio.gather(*jobs) == [b"0", b"1", b"2"]

    run(main())


def test_worker_reconnects_and_registers_again(server: Any) -> None:
    async def main() -> None:
        async with gear.AsyncWorker("re") as worker:
            worker.reconnect_delay = RETRY
            worker.register("again")
            worker.add_server(server.host, server.port)
            await worker.wait_for_server(T)
            # geard stopped between the TCP handshake and its accepting the
            # connection leaves that socket open (a server issue of its own).
            geard = getattr(server, "server", None)
            await wait_until(lambda: geard is None or bool(geard.active_connections))
            server.stop()
            await wait_until(lambda: not worker.active_connections)
            server.restart()
            await worker.wait_for_server(T)
            async with gear.AsyncClient("re-client") as client:
                client.add_server(server.host, server.port)
                await client.wait_for_server(T)
                job = await client.submit("again", b"x")
                got = await worker.get_job(timeout=T)
                got.complete(b"back")
                assert await job.result(T) == b"back"

    run(main())


def test_worker_id_alias_and_client_id_required() -> None:
    worker = gear.AsyncWorker(worker_id="legacy")
    assert worker.client_id == b"legacy"
    with pytest.raises(gear.ConfigurationError, match="client_id"):
        gear.AsyncWorker()
    assert gear.AsyncWorker.__module__ == "gear"
    assert repr(worker).startswith("<gear.AsyncWorker 0x")


def test_send_after_disconnect_raises(server: Any) -> None:
    async def main() -> None:
        async with connected(server, "d") as (worker, client):
            await client.submit("d", b"", background=True)
            job = await worker.get_job(timeout=T)
            server.stop()
            await wait_until(lambda: not worker.active_connections)
            with pytest.raises(gear.DisconnectError):
                job.send_data(b"x")
            with pytest.raises(TypeError):
                job.send_data(12)

    run(main())


def test_pipelined_grab_rules() -> None:
    from gear.worker import protocol as p

    assert p.pipelined_demand(p.IDLE, 3) == (p.GRAB_WAIT, 3)
    assert p.pipelined_demand(p.GRAB_WAIT, 2) == (p.GRAB_WAIT, 2)
    assert p.pipelined_demand(p.GRAB_DRAIN, 2) == (p.GRAB_DRAIN, 0)
    assert p.pipelined_demand(p.SLEEP, 2) == (p.SLEEP, 0)
    assert p.pipelined_demand(p.IDLE, 0) == (p.IDLE, 0)
    # Answers while other grabs are outstanding.
    assert p.pipelined_reply(p.GRAB_WAIT, 2, no_job=False) == (p.GRAB_WAIT, None)
    assert p.pipelined_reply(p.GRAB_WAIT, 2, no_job=True) == (p.GRAB_DRAIN, None)
    assert p.pipelined_reply(p.GRAB_DRAIN, 1, no_job=False) == (p.GRAB_DRAIN, None)
    # The last answer decides: a job means ask again, NO_JOB means sleep.
    assert p.pipelined_reply(p.GRAB_DRAIN, 0, no_job=False) == (p.IDLE, None)
    assert p.pipelined_reply(p.GRAB_WAIT, 0, no_job=True) == (p.SLEEP, gear.constants.PRE_SLEEP)
    assert p.pipelined_reply(p.GRAB_DRAIN, 0, no_job=True) == (p.SLEEP, gear.constants.PRE_SLEEP)
    assert p.pipelined_reply(p.IDLE, 0, no_job=True) == (p.IDLE, None)


def test_many_waiters_are_served_by_pipelined_grabs(server: Any) -> None:
    async def main() -> None:
        async with connected(server, "pipe") as (worker, client):
            for i in range(40):
                await client.submit("pipe", b"%d" % i, background=True)
            got = await asyncio.gather(*[worker.get_job(timeout=T) for _ in range(40)])
            assert sorted(int(job.arguments) for job in got) == list(range(40))
            for job in got:
                job.complete()
            # Nothing more to do: the connection settles asleep.
            waiter = asyncio.create_task(worker.get_job(timeout=T))
            await wait_until(lambda: worker.active_connections[0].state == "SLEEP")
            await client.submit("pipe", b"wake")
            assert (await waiter).arguments == b"wake"

    run(main())


# -- issue 21: no hung or collateral failures -----------------------------


def test_handler_returning_another_type_ends_the_job(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Bug 1: a handler returning 42 left the job running until the client gave up."""

    async def answer(job: Any) -> Any:
        return 42 if job.arguments == b"int" else b"fine"

    async def main() -> None:
        async with connected(server) as (worker, client):
            task = asyncio.create_task(worker.serve({"answer": answer}))
            job = await client.submit("answer", b"int")
            with pytest.raises(JobFailedError) as info:
                await job.result(5)
            assert info.value.exception == (
                b"TypeError: the handler for 'answer' returned int, not bytes, str or None"
            )
            async with gear.AsyncClient(
                "no-exc", [(server.host, server.port)], exceptions=False
            ) as plain:
                with pytest.raises(JobFailedError) as failed:
                    await plain.call("answer", b"int", timeout=T)
                assert failed.value.exception is None
            job = await client.submit("answer", b"ok")
            assert await job.result(T) == b"fine"
            await worker.stop()
            await asyncio.wait_for(task, T)

    with caplog.at_level("ERROR", logger="gear.AsyncWorker"):
        run(main())
    assert [r.getMessage() for r in caplog.records if "returned int" in r.getMessage()]


def test_cancelling_serve_requeues_running_jobs(server: Any) -> None:
    """Bug 3: Ctrl-C (cancellation) failed the running jobs with WORK_FAIL."""
    started: list[bytes] = []

    async def stuck(job: Any) -> bytes:
        started.append(job.arguments)
        await asyncio.Event().wait()
        return b"never"

    async def done(job: Any) -> bytes:
        return b"done by another worker: " + job.arguments

    async def main() -> None:
        async with connected(server, "job", client_id="first") as (first, client):
            serving = asyncio.create_task(first.serve({"job": stuck}, concurrency=2))
            jobs = [await client.submit("job", b"%d" % i) for i in range(2)]
            await wait_until(lambda: len(started) == 2)
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
            async with gear.AsyncWorker("second") as second:
                second.add_server(server.host, server.port)
                rescue = asyncio.create_task(second.serve({"job": done}))
                results = [await job.result(T) for job in jobs]
                assert results == [b"done by another worker: 0", b"done by another worker: 1"]
                await second.stop()
                await asyncio.wait_for(rescue, T)

    run(main())


def test_cancelling_serve_with_on_cancel_fail_fails_them(server: Any) -> None:
    started = asyncio.Event()

    async def stuck(job: Any) -> bytes:
        started.set()
        await asyncio.Event().wait()
        return b"never"

    async def main() -> None:
        servers = [(server.host, server.port)]
        async with (
            gear.AsyncWorker("failing", servers) as worker,
            gear.AsyncClient("fail", servers) as client,
        ):
            serving = asyncio.create_task(worker.serve({"job": stuck}, on_cancel="fail"))
            call = asyncio.create_task(client.call("job", b""))
            await asyncio.wait_for(started.wait(), T)
            serving.cancel()
            with pytest.raises(JobFailedError):
                await asyncio.wait_for(call, T)
            assert len(worker.active_connections) == 1
            with pytest.raises(gear.ConfigurationError):
                await worker.serve({"job": stuck}, on_cancel="drop")  # type: ignore[arg-type]

    run(main())
