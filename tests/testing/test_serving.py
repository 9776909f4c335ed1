"""gear.testing.serving: a worker's functions served for the length of a block, against geard."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import gear
import gear.testing
from fixtures.aio import T, run


async def reverse(job: Any) -> bytes:
    return bytes(job.arguments[::-1])


def module_worker() -> gear.AsyncWorker:
    """A worker as an application module defines it: functions, and production servers."""
    worker = gear.AsyncWorker("app-worker", ["gearman.invalid:4730"])
    worker.function("reverse")(reverse)
    return worker


def test_serving_runs_a_copy_and_leaves_the_worker_alone() -> None:
    async def main() -> None:
        worker = module_worker()
        async with gear.testing.server() as srv:
            async with gear.testing.serving(worker, srv) as running:
                assert running is not worker and running.client_id == b"app-worker"
                assert [s.address for s in running.servers] == [srv.address]
                assert running.active_connections
                async with gear.AsyncClient("c", [srv.address]) as client:
                    assert await client.call("reverse", b"abc", timeout=T) == b"cba"
            assert not running.running and not running.active_connections
        assert worker.running and not worker.active_connections
        assert [s.address for s in worker.servers] == ["gearman.invalid:4730"]

    run(main())


def test_the_same_worker_is_served_in_one_test_after_another() -> None:
    worker = module_worker()

    async def one_test() -> bytes:
        async with gear.testing.server() as srv, gear.testing.serving(worker, srv):
            async with gear.AsyncClient("c", [srv.address]) as client:
                return await client.call("reverse", srv.address, timeout=T)

    for _ in range(2):
        assert run(one_test()).endswith(b":1.0.0.721")


def test_leaving_the_block_lets_held_jobs_finish() -> None:
    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()

        async def slow(job: Any) -> bytes:
            started.set()
            await release.wait()
            return b"finished"

        async with gear.testing.server() as srv, gear.AsyncClient("c", [srv.address]) as client:
            worker = gear.AsyncWorker("w")
            async with gear.testing.serving(worker, srv.address, handlers={"slow": slow}):
                job = await client.submit("slow", b"")
                await asyncio.wait_for(started.wait(), T)
                asyncio.get_running_loop().call_soon(release.set)
            assert await job.result(T) == b"finished"

    run(main())


def test_an_error_in_the_block_requeues_held_jobs_at_once() -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def stuck(job: Any) -> bytes:
            started.set()
            await asyncio.Event().wait()
            return b"never"

        async def done(job: Any) -> bytes:
            return b"done elsewhere"

        async with gear.testing.server() as srv, gear.AsyncClient("c", [srv.address]) as client:
            job = await client.submit("work", b"")
            with pytest.raises(RuntimeError, match="test failed"):
                async with gear.testing.serving(
                    gear.AsyncWorker("w1"), srv, handlers={"work": stuck}, drain_timeout=T * 5
                ):
                    await asyncio.wait_for(started.wait(), T)
                    raise RuntimeError("test failed")
            async with gear.testing.serving(gear.AsyncWorker("w2"), srv, handlers={"work": done}):
                assert await job.result(T) == b"done elsewhere"

    run(main(), timeout=T * 2)


def test_serving_takes_server_entries_and_several_servers() -> None:
    async def main() -> None:
        async with gear.testing.server() as one, gear.testing.server() as two:
            targets = [(one.host, one.port), two.address]
            async with gear.testing.serving(
                gear.AsyncWorker("w"), *targets, handlers={"reverse": reverse}
            ) as running:
                assert {s.address for s in running.servers} == {one.address, two.address}
                for srv in (one, two):
                    async with gear.AsyncClient("c", [srv.address]) as client:
                        result = await client.call("reverse", srv.address, timeout=T)
                        assert result == srv.address[::-1].encode()

    run(main())


def test_serving_needs_a_server() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="needs a server"):
            async with gear.testing.serving(gear.AsyncWorker("w"), handlers={"x": reverse}):
                pass

    run(main())
