"""AsyncClient + AsyncWorker across packages: cancellation, timeouts, load, failover.

Every scenario runs on the C gearmand and on our geard. Cancelling a task
that awaits a submit, a result, a status or an update stream must leave the
connection in sync, so the next request on it still gets its own reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import gear
from fixtures.aio import RETRY, T, client_for, run, serving, wait_until
from fixtures.geard import RawGearman


@pytest.fixture(params=["gearmand", "geard"])
def two_servers(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    if request.param == "gearmand":
        start: Callable[[], Any] = request.getfixturevalue("gearmand_factory")  # type: ignore[assignment]
    else:
        start = request.getfixturevalue("geard_factory")
    return start(), start()


def echo_worker(
    *servers: Any, concurrency: int = 8, delay: float = 0
) -> contextlib.AbstractAsyncContextManager[Any]:
    """An AsyncWorker answering ``echo`` with the arguments (after ``delay`` s)."""

    async def echo(job: Any) -> bytes:
        if delay:
            await asyncio.sleep(delay)
        return bytes(job.arguments)

    return serving(*servers, handlers={"echo": echo}, concurrency=concurrency)


async def check_in_sync(client: Any, count: int = 20) -> None:
    """Submit ``count`` jobs and check each gets its own result."""
    jobs = [await client.submit("echo", b"check-%d" % i) for i in range(count)]
    results = await asyncio.gather(*[job.result(T) for job in jobs])
    assert results == [b"check-%d" % i for i in range(count)]


# -- cancellation ---------------------------------------------------------


def test_cancelled_submits_keep_the_connection_in_sync(server: Any) -> None:
    async def main() -> None:
        async with echo_worker(server), client_for(server) as client:
            for round_ in range(5):
                tasks = [
                    asyncio.create_task(client.submit("echo", b"r%d-%d" % (round_, i)))
                    for i in range(50)
                ]
                await asyncio.sleep(0)
                for task in tasks[::2]:
                    task.cancel()
                done = await asyncio.gather(*tasks, return_exceptions=True)
                survivors = [j for j in done if not isinstance(j, BaseException)]
                assert all(isinstance(j, asyncio.CancelledError) for j in done[::2])
                results = await asyncio.gather(*[job.result(T) for job in survivors])
                assert results == [bytes(job.arguments) for job in survivors]
                await check_in_sync(client, 5)
            assert len(client.active_connections) == 1

    run(main())


def test_cancelled_result_wait_leaves_job_intact(server: Any) -> None:
    async def main() -> None:
        async with echo_worker(server, delay=0.1), client_for(server) as client:
            job = await client.submit("echo", b"slow")
            waiter = asyncio.create_task(job.result())
            iterator = asyncio.create_task(anext_or_none(job))
            await asyncio.sleep(0.01)
            waiter.cancel()
            iterator.cancel()
            for task in (waiter, iterator):
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert await job.result(T) == b"slow"
            assert await job == b"slow"
            await check_in_sync(client)

    run(main())


async def anext_or_none(job: Any) -> Any:
    async for update in job:
        return update
    return None


def test_cancelled_status_and_wait_for_timeouts(server: Any) -> None:
    async def main() -> None:
        async with echo_worker(server, delay=0.2), client_for(server) as client:
            job = await client.submit("echo", b"status")
            for _ in range(3):
                task = asyncio.create_task(client.status(job))
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(client.submit("echo", b"maybe"), 0.0001)
            assert (await client.status(job, timeout=T)).known is True
            with pytest.raises(gear.TimeoutError):
                await job.result(0.01)
            assert await job.result(T) == b"status"
            await check_in_sync(client)

    run(main())


# -- timeouts -------------------------------------------------------------


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[str, int]]:
    """A TCP server on 127.0.0.1 that accepts and reads but never answers.

    A client that asks for the ``exceptions`` option on connect waits for the
    answer and never goes active here, so these tests use ``exceptions=False``.
    """
    readers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        readers.append(writer)
        while await reader.read(65536):
            pass

    srv = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield "127.0.0.1", srv.sockets[0].getsockname()[1]
    finally:
        for writer in readers:
            writer.close()
        srv.close()


def test_submit_timeout_fails_the_call_then_a_silent_server_is_dropped() -> None:
    async def main() -> None:
        async with silent_server() as (host, port):
            async with gear.AsyncClient(
                "timeouts", [(host, port)], connect_timeout=1, exceptions=False
            ) as client:
                client.reconnect_delay = RETRY
                first = client.active_connections[0]
                with pytest.raises(gear.TimeoutError, match="No JOB_CREATED"):
                    await client.submit("echo", b"x", timeout=0.1)
                # Only the call failed; the connection stays until the
                # server also leaves an ECHO_REQ unanswered (connect_timeout).
                assert client.active_connections == [first]
                started = time.monotonic()
                await wait_until(lambda: first not in client.active_connections)
                assert time.monotonic() - started < 5
                job = gear.client.AsyncJob("echo", b"")
                with pytest.raises(gear.GearmanError):
                    await client.status(job, timeout=0.1)

    run(main())


def test_status_timeout_on_silent_server() -> None:
    async def main() -> None:
        async with (
            silent_server() as (host, port),
            gear.AsyncClient("st", exceptions=False) as client,
        ):
            client.add_server(host, port)
            await client.wait_for_server(T)
            job = gear.client.AsyncJob("f", b"", unique="u")
            with pytest.raises(gear.TimeoutError):
                await client.status(job, timeout=0.1, unique=True)
            # An unanswered OPTION_REQ is logged, not raised (as gear.Client.setOption).
            assert await client.set_option("exceptions", timeout=0.1) is True
            assert len(client.active_connections) == 1

    run(main())


# -- load -----------------------------------------------------------------


def test_thousands_of_concurrent_submits_on_one_connection(server: Any) -> None:
    count = 3000

    async def main() -> None:
        async with echo_worker(server, concurrency=50), client_for(server) as client:
            jobs = await asyncio.gather(
                *[client.submit("echo", b"job-%d" % i, timeout=T) for i in range(count)]
            )
            assert len({job.handle for job in jobs}) == count
            results = await asyncio.gather(*[job.result(T) for job in jobs])
            assert results == [b"job-%d" % i for i in range(count)]
            assert len(client.active_connections) == 1

    run(main(), timeout=50)


# -- several servers ------------------------------------------------------


def queued(srv: Any, function: bytes) -> int:
    with RawGearman(srv.port) as admin:
        for line in admin.admin("status").splitlines():
            fields = line.split(b"\t")
            if fields[0] == function:
                return int(fields[1])
    return 0


def test_round_robin_failover_and_reconnect(two_servers: tuple[Any, Any]) -> None:
    a, b = two_servers

    async def main() -> None:
        async with client_for(a, b) as client:
            await wait_until(lambda: len(client.active_connections) == 2)
            for i in range(4):
                await client.submit("rr", b"%d" % i, background=True)
            assert (queued(a, b"rr"), queued(b, b"rr")) == (2, 2)
            async with echo_worker(a, b, concurrency=4):
                await check_in_sync(client, 10)
                pending = await client.submit("nobody", b"lost-with-a")
                waiting = [await client.submit("nobody", b"%d" % i) for i in range(4)]
                a.stop()
                await wait_until(lambda: len(client.active_connections) == 1)
                await check_in_sync(client, 10)
                lost = [job for job in [pending, *waiting] if job.lost]
                assert lost, "some job was on the killed server"
                with pytest.raises(gear.DisconnectError):
                    await lost[0].result(T)
                a.restart()
                await wait_until(lambda: len(client.active_connections) == 2)
                await check_in_sync(client, 10)
            for i in range(2):
                await client.submit("after", b"%d" % i, background=True)
            assert (queued(a, b"after"), queued(b, b"after")) == (1, 1)

    run(main())


def test_worker_serves_through_a_server_restart(server: Any) -> None:
    async def main() -> None:
        async with echo_worker(server) as worker, client_for(server) as client:
            await check_in_sync(client, 5)
            server.stop()
            await wait_until(lambda: not worker.active_connections)
            with pytest.raises(gear.GearmanError):
                await client.submit("echo", b"nowhere")
            server.restart()
            await client.wait_for_server(T)
            await worker.wait_for_server(T)
            await check_in_sync(client, 5)

    run(main())


# -- faces mixed and TLS --------------------------------------------------


def test_threaded_client_with_async_worker(server: Any) -> None:
    async def main() -> None:
        async with echo_worker(server):
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, threaded_round_trips, server)

    run(main())


def threaded_round_trips(server: Any) -> None:
    client = gear.Client("threaded")
    try:
        client.addServer(server.host, server.port)
        client.waitForServer(T)
        for i in range(10):
            job = gear.Job("echo", b"t%d" % i)
            client.submitJob(job, timeout=T)
            assert job.wait(T) and job.data == [b"t%d" % i]
    finally:
        client.shutdown()


def test_tls_client_and_worker(geard_factory: Any, certs: Any) -> None:
    srv = geard_factory(ssl_key=certs.server.key, ssl_cert=certs.server.cert, ssl_ca=certs.ca)
    tls = {"ssl_key": certs.client.key, "ssl_cert": certs.client.cert, "ssl_ca": certs.ca}

    async def main() -> None:
        async with gear.AsyncWorker("tls-w") as worker, gear.AsyncClient("tls-c") as client:
            worker.register("echo")
            worker.add_server(srv.host, srv.port, **tls)
            client.add_server(srv.host, srv.port, **tls)
            await worker.wait_for_server(T)
            await client.wait_for_server(T)
            job = await client.submit("echo", b"secret")
            got = await worker.get_job(timeout=T)
            got.complete(got.arguments)
            assert await job.result(T) == b"secret"

    run(main())


# -- the original gear 0.16.0 as the peer ---------------------------------

GEAR016_WORKER = """
import sys, gear
worker = gear.Worker("g016-worker")
worker.addServer("127.0.0.1", int(sys.argv[1]))
worker.registerFunction("rev016")
worker.waitForServer()
for _ in range(int(sys.argv[2])):
    job = worker.getJob()
    job.sendWorkData(b"chunk")
    job.sendWorkComplete(job.arguments[::-1])
worker.shutdown()
"""

GEAR016_CLIENT = """
import sys, time, gear
client = gear.Client("g016-client")
client.addServer("127.0.0.1", int(sys.argv[1]))
client.waitForServer()
for i in range(3):
    job = gear.Job("up", b"abc%d" % i)
    client.submitJob(job)
    deadline = time.time() + 10
    while not job.complete and time.time() < deadline:
        time.sleep(0.005)
    assert job.complete and not job.failure, job
    print(b"".join(job.data).decode())
client.shutdown()
"""


@pytest.mark.interop
def test_gear016_worker_serves_async_client(gearmand: Any, gear016: Any) -> None:
    async def main() -> None:
        async with client_for(gearmand) as client:
            loop = asyncio.get_running_loop()
            peer = loop.run_in_executor(
                None, lambda: gear016.run(GEAR016_WORKER, str(gearmand.port), "3", timeout=30)
            )
            jobs = [await client.submit("rev016", b"%d-xyz" % i) for i in range(3)]
            assert await asyncio.gather(*[job.result(T) for job in jobs]) == [
                b"zyx-%d" % i for i in range(3)
            ]
            for job in jobs:
                assert [u async for u in job] == [gear.client.WorkUpdate("data", b"chunk")]
            await peer

    run(main())


@pytest.mark.interop
def test_gear016_client_submits_to_async_worker(gearmand: Any, gear016: Any) -> None:
    async def upper(job: Any) -> bytes:
        return bytes(job.arguments).upper()

    async def main() -> None:
        async with gear.AsyncWorker("aio-worker") as worker:
            worker.add_server(gearmand.host, gearmand.port)
            serve = asyncio.create_task(worker.serve({"up": upper}, concurrency=2))
            loop = asyncio.get_running_loop()
            proc = await loop.run_in_executor(
                None, lambda: gear016.run(GEAR016_CLIENT, str(gearmand.port), timeout=30)
            )
            assert proc.stdout.split() == ["ABC0", "ABC1", "ABC2"]
            await worker.stop()
            await asyncio.wait_for(serve, T)

    run(main())
