"""NonBlockingConnection and ServerConnection over a real loopback socket."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest

import gear
from gear import constants


@pytest.fixture
def accepted() -> Iterator[tuple[gear.ServerConnection, socket.socket]]:
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(listener.getsockname())
    conn, addr = listener.accept()
    listener.close()
    server_side = gear.ServerConnection(addr, conn, False, "test")
    yield server_side, peer
    peer.close()
    server_side.disconnect()


def _read(server_side: gear.ServerConnection) -> gear.Packet | gear.AdminRequest | None:
    for _ in range(100):
        select.select([server_side.conn], [], [], 1.0)
        try:
            return server_side.readPacket()
        except gear.RetryIOError:
            continue
    raise AssertionError("nothing readable")


def test_reads_that_would_block_raise_retry(
    accepted: tuple[gear.ServerConnection, socket.socket],
) -> None:
    server_side, _ = accepted
    with pytest.raises(gear.RetryIOError):
        server_side.readPacket()


def test_partial_packet_is_kept_until_complete(
    accepted: tuple[gear.ServerConnection, socket.socket],
) -> None:
    server_side, peer = accepted
    wire = bytes(gear.Packet(constants.REQ, constants.CAN_DO, b"fn").toBinary())
    peer.sendall(wire[:5])
    select.select([server_side.conn], [], [], 5)
    with pytest.raises(gear.RetryIOError):
        server_side.readPacket()
    peer.sendall(wire[5:])
    packet = _read(server_side)
    assert isinstance(packet, gear.Packet)
    assert (packet.ptype, packet.data, packet.connection) == (constants.CAN_DO, b"fn", server_side)


def test_admin_lines_become_server_admin_requests(
    accepted: tuple[gear.ServerConnection, socket.socket],
) -> None:
    server_side, peer = accepted
    peer.sendall(b"status\r\nworkers\n")
    first = _read(server_side)
    second = _read(server_side)
    assert isinstance(first, gear.ServerAdminRequest) and first.command == b"status"
    assert isinstance(second, gear.ServerAdminRequest) and second.command == b"workers"
    assert first.connection is server_side


def test_queued_sends_reach_the_peer(
    accepted: tuple[gear.ServerConnection, socket.socket],
) -> None:
    server_side, peer = accepted
    server_side.sendPacket(gear.Packet(constants.RES, constants.NOOP, b""))
    server_side.sendRaw(b"OK\n")
    assert server_side.send_queue == []
    got = b""
    peer.settimeout(5)
    while len(got) < 15:
        got += peer.recv(100)
    assert got == b"\x00RES\x00\x00\x00\x06\x00\x00\x00\x00OK\n"


def test_peer_close_reads_none(accepted: tuple[gear.ServerConnection, socket.socket]) -> None:
    server_side, peer = accepted
    peer.close()
    assert _read(server_side) is None


def test_repr_and_identity(accepted: tuple[gear.ServerConnection, socket.socket]) -> None:
    server_side, _ = accepted
    assert server_side.client_id is None and server_side.functions == set()
    assert server_side.ssl_subject is None
    assert repr(server_side).startswith("<gear.ServerConnection 0x")
    assert "name: None host: 127.0.0.1 port: " in repr(server_side)
