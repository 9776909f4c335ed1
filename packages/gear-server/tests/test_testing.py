"""gear.testing: the in-process geard users run in their own tests."""

from __future__ import annotations

import asyncio
import socket

import pytest

import gear
import gear.testing
from fixtures.geard import RawGearman, echo_once
from gear import constants as C
from gear.codec import Decoder, Frame, encode_packet


def test_server_listens_on_a_free_loopback_port_until_stopped() -> None:
    with gear.testing.server() as srv, gear.testing.server() as other:
        assert srv.port != other.port and srv.port > 0
        assert srv.address == "127.0.0.1:%d" % srv.port
        assert srv.server.socket.getsockname()[0] == "127.0.0.1"
        assert echo_once(srv.port) == b"x"
        port = srv.port
        srv.stop()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert echo_once(other.port) == b"x"
    assert other.server.stopped


def test_server_passes_options_to_gear_server() -> None:
    with gear.testing.server(max_packet_size=16, server_id="small") as srv:
        assert isinstance(srv.server, gear.Server)
        assert srv.server.server_id == "small"
        with RawGearman(srv.port) as conn:
            conn.send(C.ECHO_REQ, b"x" * 17)
            assert conn.expect(C.ERROR).startswith(b"PACKET_TOO_LARGE")


def test_server_before_start_says_so() -> None:
    srv = gear.testing.server()
    assert "not started" in repr(srv)
    with pytest.raises(RuntimeError, match="not been started"):
        srv.port  # noqa: B018
    srv.stop()  # harmless


def test_ipv6_address_is_bracketed() -> None:
    with gear.testing.server(host="::1") as srv:
        assert srv.address == "[::1]:%d" % srv.port
        assert srv.server.socket.getsockname()[0] == "::1"


def test_async_with_does_not_block_the_loop() -> None:
    async def main() -> bytes:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        context = gear.testing.server()
        before = ticks
        srv = await context.__aenter__()
        assert ticks > before, "the event loop stood still while the server started"
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(encode_packet(C.REQ, C.ECHO_REQ, b"async"))
            decoder = Decoder()
            events: list[object] = []
            while not events:
                chunk = await asyncio.wait_for(reader.read(4096), 10)
                assert chunk, "server closed the connection"
                events.extend(decoder.receive(chunk))
            writer.close()
        finally:
            before = ticks
            await context.__aexit__(None, None, None)
            assert ticks > before, "the event loop stood still while the server stopped"
        ticker.cancel()
        assert srv.server.stopped
        frame = events[0]
        assert isinstance(frame, Frame) and frame.ptype == C.ECHO_RES
        return frame.data

    assert asyncio.run(asyncio.wait_for(main(), 30)) == b"async"


def test_gear_server_fixture(gear_server: gear.testing.InProcessServer) -> None:
    """The pytest plugin is loaded by its entry point in the project's own runs too."""
    assert echo_once(gear_server.port) == b"x"
    assert gear.testing is not None and "testing" in gear.__all__
