"""gear.testing.serving: an AsyncWorker run for the length of a block, against geard."""

from __future__ import annotations

import asyncio
from typing import Any

import gear
import gear.testing
from fixtures.aio import T, run


async def reverse(job: Any) -> bytes:
    return bytes(job.arguments[::-1])


def test_serving_runs_the_worker_and_closes_it() -> None:
    async def main() -> None:
        async with gear.testing.server() as srv:
            worker = gear.AsyncWorker("w")
            async with gear.testing.serving(worker, srv, handlers={"reverse": reverse}):
                assert worker.active_connections
                async with gear.AsyncClient("c") as client:
                    client.add_server(srv.host, srv.port)
                    await client.wait_for_server(T)
                    job = await client.submit("reverse", b"abc")
                    assert await job.result(T) == b"cba"
            assert not worker.running and not worker.active_connections

    run(main())


def test_leaving_the_block_lets_held_jobs_finish() -> None:
    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()

        async def slow(job: Any) -> bytes:
            started.set()
            await release.wait()
            return b"finished"

        async with gear.testing.server() as srv, gear.AsyncClient("c") as client:
            client.add_server(srv.host, srv.port)
            worker = gear.AsyncWorker("w")
            async with gear.testing.serving(worker, srv.address, handlers={"slow": slow}):
                await client.wait_for_server(T)
                job = await client.submit("slow", b"")
                await asyncio.wait_for(started.wait(), T)
                asyncio.get_running_loop().call_soon(release.set)
            assert await job.result(T) == b"finished"

    run(main())


def test_serving_takes_host_port_pairs_and_several_servers() -> None:
    async def main() -> None:
        async with gear.testing.server() as one, gear.testing.server() as two:
            worker = gear.AsyncWorker("w")
            targets = [(one.host, one.port), "%s:%d" % (two.host, two.port)]
            async with gear.testing.serving(worker, *targets, handlers={"reverse": reverse}):
                assert {(s.host, s.port) for s in worker.servers} == {
                    (one.host, one.port),
                    (two.host, two.port),
                }
                for srv in (one, two):
                    async with gear.AsyncClient("c") as client:
                        client.add_server(srv.host, srv.port)
                        await client.wait_for_server(T)
                        job = await client.submit("reverse", srv.address)
                        assert await job.result(T) == srv.address[::-1].encode()

    run(main())
