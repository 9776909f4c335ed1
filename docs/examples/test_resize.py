"""Tests of a resize worker, written with gear's pytest fixtures (pip install gear-server)."""

import pytest

import gear
import gear.testing


async def resize(job):
    width, height = map(int, job.arguments.split(b"x"))
    return b"%dx%d" % (width // 2, height // 2)


@pytest.mark.asyncio
async def test_resize_halves_the_size(gear_worker, gear_client):
    async with gear.testing.serving(gear_worker, handlers={"resize": resize}):
        async with gear_client as client:
            await client.wait_for_server(10)
            job = await client.submit("resize", b"640x480")
            assert await job.result(10) == b"320x240"


@pytest.mark.asyncio
async def test_each_test_gets_an_empty_server(gear_server, gear_client):
    async with gear_client as client:
        await client.wait_for_server(10)
        await client.submit("resize", b"2x2", background=True)
    assert len(gear_server.server.jobs) == 1


def test_threaded_code_uses_the_same_server(gear_server):
    client = gear.Client("threaded")
    client.addServer(gear_server.host, gear_server.port)
    client.waitForServer(10)
    job = gear.Job(b"resize", b"8x8")
    client.submitJob(job, background=True)
    client.shutdown()
    assert len(gear_server.server.jobs) == 1
