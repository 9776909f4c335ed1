"""AsyncClient scenarios over real sockets, on the C gearmand and on geard.

The scenarios of test_scenarios.py (the threaded client) rewritten for the
asyncio API; the peer is an AsyncWorker except where a threaded Worker shows
that both faces interoperate. Only public names are used.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import gear
from fixtures.aio import RETRY, T, client_for, run, serving
from gear.errors import JobFailedError


async def reverse(job: Any) -> bytes:
    return bytes(job.arguments[::-1])


def test_submit_and_await(server: Any) -> None:
    async def main() -> None:
        async with serving(server, handlers={"reverse": reverse}), client_for(server) as client:
            job = await client.submit("reverse", b"abc")
            assert isinstance(job, gear.client.AsyncJob)
            assert isinstance(job.handle, bytes)
            assert await job == b"cba"
            assert await job.result() == b"cba"
            assert job.complete and not job.failure and job.done
            assert job.data == [b"cba"]
            assert await client.submit("reverse", "grüß") is not None

    run(main())


def test_updates_async_for(server: Any) -> None:
    async def chunks(job: Any) -> bytes:
        job.send_data(b"one")
        job.send_warning("careful")
        job.send_status(1, 4)
        job.send_data(b"")
        return b"done"

    async def main() -> None:
        async with serving(server, handlers={"chunks": chunks}), client_for(server) as client:
            job = await client.submit("chunks", b"")
            updates = [u async for u in job]
            assert updates == [
                gear.client.WorkUpdate("data", b"one"),
                gear.client.WorkUpdate("warning", b"careful"),
                gear.client.WorkUpdate("status", b"", 1, 4),
                gear.client.WorkUpdate("data", b""),
            ]
            assert await job == b"done"
            assert job.data == [b"one", b"careful", b"done"]
            assert job.warning is True
            assert (job.numerator, job.denominator, job.fraction_complete) == (b"1", b"4", 0.25)
            # A second iteration after the end replays the updates.
            assert len([u async for u in job]) == 4

    run(main())


def test_fail_raises_job_failed(server: Any) -> None:
    async def fails(job: Any) -> None:
        job.fail()

    async def main() -> None:
        async with serving(server, handlers={"fails": fails}), client_for(server) as client:
            job = await client.submit("fails", b"x")
            with pytest.raises(JobFailedError) as info:
                await job
            assert info.value.exception is None
            assert isinstance(info.value, gear.GearmanError)
            assert job.complete and job.failure

    run(main())


def test_exception_with_option(server: Any) -> None:
    async def raises(job: Any) -> None:
        job.exception(b"boom")

    async def main() -> None:
        async with serving(server, handlers={"raises": raises}), client_for(server) as client:
            assert await client.set_option("exceptions", timeout=T) is True
            assert b"exceptions" in client.options
            job = await client.submit("raises", b"x")
            with pytest.raises(JobFailedError, match="boom") as info:
                await job.result(T)
            assert info.value.exception == b"boom"
            assert job.exception == b"boom" and job.data == []

    run(main())


def test_handler_exception_reaches_client(server: Any) -> None:
    async def broken(job: Any) -> bytes:
        raise ValueError("bad input")

    async def main() -> None:
        async with serving(server, handlers={"broken": broken}), client_for(server) as client:
            await client.set_option("exceptions", timeout=T)
            job = await client.submit("broken", b"")
            with pytest.raises(JobFailedError) as info:
                await job.result(T)
            assert info.value.exception == b"ValueError: bad input"

    run(main())


def test_handler_exception_without_option_fails_job(server: Any) -> None:
    async def broken(job: Any) -> bytes:
        raise RuntimeError("no option")

    async def main() -> None:
        async with (
            serving(server, handlers={"broken": broken}),
            gear.AsyncClient("plain", [(server.host, server.port)], exceptions=False) as client,
        ):
            assert client.options == set()
            job = await client.submit("broken", b"")
            with pytest.raises(JobFailedError) as info:
                await job.result(T)
            assert not isinstance(info.value, gear.JobExceptionError)
            assert job.failure and info.value.exception is None

    run(main())


def test_keepalive_option(server: Any) -> None:
    async def main() -> None:
        async with serving(server, handlers={"reverse": reverse}), gear.AsyncClient("ka") as client:
            client.add_server(server.host, server.port, keepalive=True, tcp_keepidle=60)
            await client.wait_for_server(T)
            assert await (await client.submit("reverse", b"ka")).result(T) == b"ak"

    run(main())


def test_unknown_option_is_refused_without_breaking_submits(server: Any) -> None:
    async def main() -> None:
        async with serving(server, handlers={"reverse": reverse}), client_for(server) as client:
            assert await client.set_option("no-such-option", timeout=T) is False
            job = await client.submit("reverse", b"ab", timeout=T)
            assert await job.result(T) == b"ba"

    run(main())


def test_background_job(server: Any) -> None:
    async def main() -> None:
        async with client_for(server) as client:
            job = await client.submit("later", b"payload", unique="bg-1", background=True)
            assert job.handle
            with pytest.raises(gear.GearmanError):
                await job
            async with gear.AsyncWorker("bg-worker") as worker:
                worker.register("later")
                worker.add_server(server.host, server.port)
                got = await worker.get_job(timeout=T)
                assert (got.name, got.arguments, got.unique) == ("later", b"payload", b"bg-1")
                assert got.handle == job.handle
                got.complete(b"ignored")

    run(main())


def test_precedence(server: Any) -> None:
    async def main() -> None:
        async with client_for(server) as client:
            for name, precedence in (
                ("low", gear.PRECEDENCE_LOW),
                ("normal", gear.PRECEDENCE_NORMAL),
                ("high", gear.PRECEDENCE_HIGH),
            ):
                await client.submit("prec", name, background=True, precedence=precedence)
            with pytest.raises(gear.ConfigurationError):
                await client.submit("prec", b"", precedence=7)
            async with gear.AsyncWorker("prec-worker") as worker:
                worker.register("prec")
                worker.add_server(server.host, server.port)
                order = []
                for _ in range(3):
                    job = await worker.get_job(timeout=T)
                    order.append(job.arguments)
                    job.complete()
            assert order == [b"high", b"normal", b"low"]

    run(main())


def test_foreground_precedence_and_unique(server: Any) -> None:
    seen: list[Any] = []

    async def record(job: Any) -> bytes:
        seen.append((job.unique, job.arguments))
        return b"ok"

    async def main() -> None:
        async with serving(server, handlers={"u": record}), client_for(server) as client:
            a = await client.submit("u", b"a", unique="id-a", precedence=gear.PRECEDENCE_HIGH)
            b = await client.submit("u", b"b", precedence=gear.PRECEDENCE_LOW)
            assert await a == b"ok" and await b == b"ok"
            assert a.unique == b"id-a" and b.unique is None

    run(main())
    assert sorted(seen, key=repr) == sorted([(b"id-a", b"a"), (None, b"b")], key=repr)


def test_large_payload(server: Any) -> None:
    async def echo(job: Any) -> bytes:
        return bytes(job.arguments)

    async def main() -> None:
        payload = bytes(range(256)) * 8192
        async with serving(server, handlers={"echo": echo}), client_for(server) as client:
            job = await client.submit("echo", payload)
            assert await job.result(T) == payload

    run(main())


def test_threaded_worker_serves_async_client(server: Any) -> None:
    worker = gear.Worker("threaded")
    worker.reconnect_delay = RETRY
    worker.registerFunction("reverse")
    worker.addServer(server.host, server.port)
    worker.waitForServer(T)

    def loop() -> None:
        for _ in range(5):
            job = worker.getJob(timeout=T)
            job.sendWorkData(b"chunk")
            job.sendWorkComplete(job.arguments[::-1])

    async def main() -> None:
        async with client_for(server) as client:
            serve = asyncio.get_running_loop().run_in_executor(None, loop)
            jobs = [await client.submit("reverse", b"%d-x" % i) for i in range(5)]
            results = await asyncio.gather(*jobs)
            assert results == [b"x-%d" % i for i in range(5)]
            assert all(job.data[0] == b"chunk" for job in jobs)
            await serve

    try:
        run(main())
    finally:
        worker.shutdown()


def test_status(server: Any) -> None:
    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()

        async def slow(job: Any) -> bytes:
            job.send_status(3, 10)
            started.set()
            await release.wait()
            return b""

        async with serving(server, handlers={"slow": slow}), client_for(server) as client:
            job = await client.submit("slow", b"", unique="status-u")
            await asyncio.wait_for(started.wait(), T)
            with pytest.raises(gear.TimeoutError):
                await job.result(0.05)
            assert await client.status(job, timeout=T) is job
            assert job.known is True and job.running is True
            assert (job.numerator, job.denominator, job.fraction_complete) == (b"3", b"10", 0.3)
            await client.status(job, timeout=T, unique=True)
            assert job.known is True and job.running is True
            release.set()
            await job.result(T)
            await client.status(job, timeout=T)
            assert job.known is False and job.running is False

    run(main())


def test_status_of_background_job(server: Any) -> None:
    async def main() -> None:
        async with client_for(server) as client:
            job = await client.submit("nobody-does-this", b"", unique="bg-status", background=True)
            await client.status(job, timeout=T)
            assert job.known is True and job.running is False
            other = gear.client.AsyncJob("nobody-does-this", b"", unique="never-submitted")
            await client.status(other, timeout=T, unique=True)
            assert other.known is False
            with pytest.raises(gear.GearmanError):
                await client.status(gear.client.AsyncJob("f", b""))

    run(main())


def test_no_server_errors() -> None:
    async def main() -> None:
        async with gear.AsyncClient("lonely") as client:
            with pytest.raises(gear.GearmanError, match="Unable to submit job"):
                await client.submit("f", b"")
            with pytest.raises(gear.TimeoutError):
                await client.wait_for_server(0.1)
            client.add_server("127.0.0.1", 1)
            with pytest.raises(gear.ConfigurationError, match="already specified"):
                client.add_server("127.0.0.1", 1)
            with pytest.raises(gear.ConfigurationError, match="already specified"):
                client.add_server("127.0.0.1", "1")
            with pytest.raises(gear.GearmanError, match="not been submitted"):
                await gear.client.AsyncJob("f", b"").result()
            with pytest.raises(gear.GearmanError, match="not been submitted"):
                await client.status(gear.client.AsyncJob("f", b""))
            with pytest.raises(gear.GearmanError, match="no unique id"):
                await client.status(gear.client.AsyncJob("f", b""), unique=True)
        with pytest.raises(gear.DisconnectError):
            await client.submit("f", b"")

    run(main())


def test_disconnect_ends_waits(server: Any) -> None:
    async def main() -> None:
        async with client_for(server) as client:
            job = await client.submit("nobody", b"")
            server.stop()
            with pytest.raises(gear.DisconnectError):
                await job.result(T)
            assert not job.complete and job.lost
            assert [u async for u in job] == []

    run(main())


def test_reprs_and_module() -> None:
    assert gear.AsyncClient.__module__ == "gear"
    assert repr(gear.AsyncClient()).startswith("<gear.AsyncClient 0x")
    assert repr(gear.client.AsyncJob("f", b"")).endswith("handle: None name: f>")
