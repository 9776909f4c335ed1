"""The asyncio client and worker on uvloop (geard's default loop, and many apps')."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

import gear
from gear.worker import AsyncWorkerJob


@pytest.fixture
def geard() -> Iterator[gear.Server]:
    server = gear.Server(0, host="127.0.0.1")
    yield server
    server.shutdown()


async def reverse(job: AsyncWorkerJob) -> bytes:
    return job.arguments[::-1]


def test_client_and_worker_run_a_job_on_uvloop(geard: gear.Server) -> None:
    address = ("127.0.0.1", geard.port)

    async def main() -> bytes:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        async with gear.AsyncWorker("uv-worker", [address], connect_timeout=5) as worker:
            serving = asyncio.create_task(worker.serve({"reverse": reverse}))
            try:
                async with gear.AsyncClient("uv-client", [address], connect_timeout=5) as client:
                    return await client.call("reverse", b"uvloop", timeout=10)
            finally:
                serving.cancel()
                await asyncio.gather(serving, return_exceptions=True)

    assert uvloop.run(main()) == b"poolvu"
