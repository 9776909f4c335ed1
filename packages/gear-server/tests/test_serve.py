"""gear.server.serve(): geard as a task of an asyncio loop the application owns."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from gear import constants as C
from gear.codec import Decoder, Frame, encode_packet
from gear.packet import Packet
from gear.server import MemoryQueueStore, Server, serve

HOST = "127.0.0.1"


class ClosingStore(MemoryQueueStore):
    def __init__(self) -> None:
        super().__init__()
        self.flushed = 0
        self.closed = False

    def flush(self) -> None:
        self.flushed += 1

    def close(self) -> None:
        self.closed = True


async def start(**kwargs: Any) -> tuple[asyncio.Task[None], Server]:
    ready: asyncio.Future[Server] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(0, host=HOST, started=ready.set_result, **kwargs))
    done, _ = await asyncio.wait([ready, task], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the start-up error
    return task, ready.result()


async def request(port: int, ptype: int, data: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(encode_packet(C.REQ, ptype, data))
        decoder = Decoder()
        for _ in range(100):
            chunk = await asyncio.wait_for(reader.read(4096), 10)
            assert chunk, "server closed the connection"
            for event in decoder.receive(chunk):
                assert isinstance(event, Frame)
                return event.ptype, event.data
        raise AssertionError("no reply")
    finally:
        writer.close()


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) != 0


def test_serves_on_the_callers_loop_and_stops_on_cancel() -> None:
    store = ClosingStore()

    async def main() -> None:
        task, server = await start(queue_store=store)
        assert server.loop is asyncio.get_running_loop()
        reply = await request(server.port, C.SUBMIT_JOB_BG, b"fn\x00\x00x")
        assert reply == (C.JOB_CREATED, b"H:127.0.0.1:1") and store.flushed >= 1
        assert server.total_jobs == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert server.stopped and store.closed
        assert refused(server.port)

    asyncio.run(main())


def test_shutdown_from_another_thread() -> None:
    async def main() -> None:
        task, server = await start()
        await asyncio.get_running_loop().run_in_executor(None, server.shutdown)
        await asyncio.wait_for(task, 10)
        assert server.stopped and server.wait(0)

    asyncio.run(main())


def test_subclass_hooks_and_server_class() -> None:
    seen: list[bytes] = []

    class Hooked(Server):
        def handleEchoReq(self, packet: Packet) -> None:
            seen.append(bytes(packet.data))
            super().handleEchoReq(packet)

    async def main() -> None:
        ready: asyncio.Future[Server] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(0, host=HOST, server_class=Hooked, started=ready.set_result)
        )
        server = await asyncio.wait_for(ready, 10)
        assert isinstance(server, Hooked)
        assert await request(server.port, C.ECHO_REQ, b"hi") == (C.ECHO_RES, b"hi")
        server.shutdown()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert seen == [b"hi"]


def test_start_up_error_is_raised_by_serve() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def main() -> None:
            with pytest.raises(Exception, match="Could not open socket"):
                await serve(port, host=HOST)

        asyncio.run(main())


def test_constructing_gear_server_still_starts_its_own_thread() -> None:
    server = Server(0, host=HOST)
    try:
        assert server._thread.name == "geard" and server.loop.is_running()
    finally:
        server.shutdown()
    assert server.stopped
