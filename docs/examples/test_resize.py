"""Tests of resize_worker.py with the fixtures of gear-server's pytest plugin."""

import pytest
from resize_worker import resize, worker

import gear
import gear.testing


@pytest.fixture
def gear_codec():
    return gear.JSONCodec()  # gear_client and gear_worker speak JSON, as the app


@pytest.mark.asyncio
async def test_resize_halves_the_size(gear_server, gear_client):
    async with gear.testing.serving(worker, gear_server), gear_client as client:
        result = await client.call("resize", {"width": 640, "height": 480})
    assert result == {"width": 320, "height": 240}


@pytest.mark.asyncio
async def test_a_bad_size_raises_on_the_client(gear_server, gear_client):
    async with gear.testing.serving(worker, gear_server), gear_client as client:
        with pytest.raises(gear.RemoteError) as error:
            await client.call("resize", {"width": 0, "height": 480})
    assert error.value.type_name == "ValueError"
    assert error.value.message == "sizes must be positive"


@pytest.mark.asyncio
async def test_the_function_alone():
    assert await resize({"width": 2, "height": 2}) == {"width": 1, "height": 1}


@pytest.mark.asyncio
async def test_client_code_against_a_stand_in_worker(gear_worker, gear_client):
    @gear_worker.function("resize")
    async def tiny(size):
        return {"width": 1, "height": 1}

    async with gear.testing.serving(gear_worker), gear_client as client:
        result = await client.call("resize", {"width": 9, "height": 9})
    assert result == {"width": 1, "height": 1}


def test_threaded_code_uses_the_same_server(gear_server):
    client = gear.Client("threaded")
    client.addServer(gear_server.host, gear_server.port)
    client.waitForServer(10)
    job = gear.Job("resize", b'{"width": 8, "height": 8}')
    client.submitJob(job, background=True)
    client.shutdown()
    assert len(gear_server.server.jobs) == 1  # queued: no worker in this test
