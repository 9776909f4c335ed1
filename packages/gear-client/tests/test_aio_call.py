"""The AsyncClient people expect: servers=, connect on enter, call(), flow control.

Over real sockets, on the C gearmand and on geard; the peer is an
AsyncWorker. Also the regressions of issue 21: a submit timeout fails that
call only, and a handler's exception reaches the client without asking.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import gear
from fixtures.aio import RETRY, T, client_for, run, serving, wait_until
from fixtures.geard import RawGearman
from fixtures.servers import closed_port


async def echo(job: Any) -> bytes:
    return bytes(job.arguments)


def test_servers_in_each_form_and_enter_returns_the_connected_client(server: Any) -> None:
    forms: list[Any] = [
        [(server.host, server.port)],
        ["%s:%d" % (server.host, server.port)],
        [{"host": server.host, "port": str(server.port)}],
    ]

    async def main() -> None:
        async with serving(server, handlers={"echo": echo}):
            for servers in forms:
                client = gear.AsyncClient("forms", servers)
                async with client as entered:
                    assert entered is client
                    assert len(client.active_connections) == 1
                    assert await client.call("echo", b"hi", timeout=T) == b"hi"
                    assert client.connect_errors() == {}

    run(main())


def test_enter_with_no_server_up_names_each_cause() -> None:
    closed = closed_port()

    async def main() -> None:
        client = gear.AsyncClient(
            "none-up", [("127.0.0.1", closed), "no-such-host.invalid:4730"], connect_timeout=2
        )
        client.reconnect_delay = RETRY
        with pytest.raises(gear.NoConnectedServersError) as info:
            async with client:
                raise AssertionError("entered without a server")
        message = str(info.value)
        assert "127.0.0.1:%d: connection refused" % closed in message
        assert "no-such-host.invalid:4730: " in message
        assert info.value.errors["127.0.0.1:%d" % closed] == "connection refused"
        assert not client.running  # closed on the way out: no task left dialling

    run(main())


def test_enter_with_one_of_two_servers_up(server: Any) -> None:
    closed = closed_port()

    async def main() -> None:
        async with serving(server, handlers={"echo": echo}):
            servers = [("127.0.0.1", closed), (server.host, server.port)]
            async with gear.AsyncClient("one-up", servers) as client:
                client.reconnect_delay = RETRY
                assert [c.port for c in client.active_connections] == [server.port]
                for i in range(3):
                    assert await client.call("echo", b"%d" % i, timeout=T) == b"%d" % i
                down = {"127.0.0.1:%d" % closed: "connection refused"}
                await wait_until(lambda: client.connect_errors() == down)

    run(main())


def test_servers_must_be_a_list() -> None:
    for servers in ["127.0.0.1:4730", ("127.0.0.1", 4730), {"host": "127.0.0.1"}]:
        with pytest.raises(gear.ConfigurationError, match="list of servers"):
            gear.AsyncClient("one", servers)  # type: ignore[arg-type]


def test_enter_without_servers_does_not_wait_and_add_server_still_works(server: Any) -> None:
    async def main() -> None:
        async with gear.AsyncClient("later") as client:
            assert client.active_connections == []
            client.add_server(server.host, server.port)
            await client.connect()
            assert len(client.active_connections) == 1

    run(main())


def test_call_returns_the_result_or_raises_per_outcome(server: Any) -> None:
    release = asyncio.Event()

    async def outcome(job: Any) -> bytes | None:
        kind = job.arguments
        if kind == b"fail":
            job.fail()
        elif kind == b"exception":
            job.exception(b"it broke")
        elif kind == b"raise":
            raise KeyError("missing")
        elif kind == b"slow":
            await release.wait()
        elif kind == b"none":
            return None
        return b"ok:" + kind

    async def main() -> None:
        async with (
            serving(server, handlers={"outcome": outcome}),
            gear.AsyncClient("calls", [(server.host, server.port)]) as client,
        ):
            assert await client.call("outcome", b"fine") == b"ok:fine"
            assert await client.call("outcome", "text", priority="high") == b"ok:text"
            assert await client.call("outcome", b"none", unique="u-1") == b""
            with pytest.raises(gear.JobFailedError) as failed:
                await client.call("outcome", b"fail", timeout=T)
            assert not isinstance(failed.value, gear.JobExceptionError)
            assert failed.value.exception is None
            with pytest.raises(gear.JobExceptionError) as raised:
                await client.call("outcome", b"exception", timeout=T)
            assert raised.value.exception == b"it broke"
            assert isinstance(raised.value, gear.JobFailedError)
            with pytest.raises(gear.JobExceptionError) as raised:
                await client.call("outcome", b"raise", priority="low", timeout=T)
            assert raised.value.exception == b"KeyError: 'missing'"
            with pytest.raises(TimeoutError):
                await client.call("outcome", b"slow", timeout=0.2)
            release.set()
            with pytest.raises(gear.ConfigurationError):
                await client.call("outcome", b"x", priority="urgent")  # type: ignore[arg-type]
            assert client.in_flight == 0 or await wait_for_idle(client)

    run(main())


async def wait_for_idle(client: Any) -> bool:
    await wait_until(lambda: client.in_flight == 0)
    return True


def test_submit_timeout_fails_that_call_only(server: Any) -> None:
    """Issue 21 bug 2: an expired submit dropped the connection and every job on it."""
    release = asyncio.Event()

    async def held(job: Any) -> bytes:
        await release.wait()
        return b"done"

    async def main() -> None:
        async with (
            serving(server, handlers={"held": held, "echo": echo}),
            client_for(server) as client,
        ):
            running = await client.submit("held", b"")
            conn = client.active_connections[0]
            with pytest.raises(gear.TimeoutError, match="No JOB_CREATED"):
                await client.submit("echo", b"late", timeout=0)
            release.set()
            assert await running.result(T) == b"done"
            assert client.active_connections == [conn]
            job = await client.submit("echo", b"after", timeout=T)
            assert await job.result(T) == b"after"

    run(main())


def test_handler_exception_reaches_the_client_without_asking(server: Any) -> None:
    """Issue 21 bug 4: the client asks for ``exceptions`` on connect."""

    async def broken(job: Any) -> bytes:
        raise ValueError("bad input")

    async def main() -> None:
        async with serving(server, handlers={"broken": broken}), client_for(server) as client:
            job = await client.submit("broken", b"")
            with pytest.raises(gear.errors.JobFailedError) as info:
                await job.result(T)
            assert info.value.exception == b"ValueError: bad input"
            assert isinstance(info.value, gear.JobExceptionError)
            assert "bad input" in str(info.value)
            assert client.options == {b"exceptions"}

    run(main())


def test_max_in_flight_makes_submits_wait(server: Any) -> None:
    release = asyncio.Event()

    async def held(job: Any) -> bytes:
        await release.wait()
        return bytes(job.arguments)

    def total_jobs() -> int:
        with RawGearman(server.port) as admin:
            for line in admin.admin("status").decode().splitlines():
                fields = line.split("\t")
                if fields[0] == "held":
                    return int(fields[1])
        return 0

    async def main() -> None:
        async with (
            serving(server, handlers={"held": held}, concurrency=1),
            gear.AsyncClient("capped", [(server.host, server.port)], max_in_flight=2) as client,
        ):
            first = await client.submit("held", b"1")
            second = await client.submit("held", b"2")
            third = asyncio.create_task(client.submit("held", b"3"))
            for _ in range(20):
                await asyncio.sleep(0)
            assert not third.done() and client.in_flight == 2
            assert await asyncio.to_thread(total_jobs) == 2
            release.set()
            assert await first.result(T) == b"1"
            job = await asyncio.wait_for(third, T)
            assert [await second.result(T), await job.result(T)] == [b"2", b"3"]
            await wait_until(lambda: client.in_flight == 0)
            # A background job holds its slot only until JOB_CREATED.
            for _ in range(3):
                await client.submit("held", b"bg", background=True)
            assert client.in_flight == 0

    run(main())


def test_status_updates_are_ints_and_history_is_optional(server: Any) -> None:
    go = asyncio.Event()

    async def stream(job: Any) -> bytes:
        await go.wait()
        for i in range(1, 4):
            job.send_data(b"chunk-%d" % i)
            job.send_status(i, 3)
        job.send_warning(b"w")
        return b"end"

    async def main() -> None:
        async with (
            serving(server, handlers={"stream": stream}),
            gear.AsyncClient("stream", [(server.host, server.port)]) as client,
        ):
            job = await client.submit("stream", b"", keep_updates=False)
            reader = asyncio.create_task(collect(job))
            late = aiter(job)
            go.set()
            assert await job.result(T) == b"end"
            updates = await asyncio.wait_for(reader, T)
            assert [u.kind for u in updates] == ["data", "status"] * 3 + ["warning"]
            assert updates[1] == gear.client.WorkUpdate("status", b"", 1, 3)
            assert isinstance(updates[1].numerator, int)
            assert [u async for u in late] == updates
            assert job.updates == [] and job.data == [b"end"] and job.warning
            assert job.numerator == b"3" and job.fraction_complete == 1.0
            assert [u async for u in job] == []  # no history to replay

            go.clear()
            kept = await client.submit("stream", b"")
            go.set()
            assert await kept.result(T) == b"end"
            assert [u async for u in kept] == updates
            assert kept.data == [b"chunk-1", b"chunk-2", b"chunk-3", b"w", b"end"]

    run(main())


async def collect(job: Any) -> list[Any]:
    return [update async for update in job]


def test_reconnect_back_off_timing_with_a_fake_clock() -> None:
    """The connect task waits as the policy says, then gives up; no real sleeping."""
    closed = closed_port()
    waits: list[float] = []

    async def fake_sleep(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(0)

    async def main() -> None:
        policy = gear.ReconnectPolicy(
            initial_delay=1, max_delay=8, multiplier=2, jitter=0.5, max_attempts=6
        )
        client = gear.AsyncClient("backoff", [("127.0.0.1", closed)], reconnect=policy)
        client._sleep = fake_sleep
        started = asyncio.get_running_loop().time()
        with pytest.raises(gear.NoConnectedServersError) as info:
            async with client:
                raise AssertionError("connected to a closed port")
        assert asyncio.get_running_loop().time() - started < 5
        assert str(info.value) == (
            "No Gearman server could be reached: 127.0.0.1:%d: connection refused" % closed
        )
        assert info.value.errors == {"127.0.0.1:%d" % closed: "connection refused"}

    run(main())
    # Six attempts, so five waits between them: 1, 2, 4, 8, 8 seconds ± 50 %,
    # never above the cap.
    assert len(waits) == 5
    for wait, base in zip(waits, [1, 2, 4, 8, 8], strict=True):
        assert base * 0.5 <= wait <= min(base * 1.5, 8)
