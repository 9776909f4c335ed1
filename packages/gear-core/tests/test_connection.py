"""gear.Connection against the real C gearmand over loopback (and TLS)."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

import gear
from gear import constants
from gear.tls import load_context


class Reader:
    """What a client's poll thread does: read, then wake waiters.

    ``poll=True`` reads as gear's own poll thread does (wait until readable,
    then ``readAvailable``), which is what a TLS socket needs while another
    thread sends on it; the default is gear 0.16's blocking ``readPacket``.
    """

    def __init__(self, conn: gear.Connection, poll: bool = False) -> None:
        self.conn = conn
        self.poll = poll
        self.packets: list[gear.Packet] = []
        self.got_packet = threading.Condition()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def items(self) -> Iterator[gear.Packet | gear.AdminRequest | None]:
        if not self.poll:
            while True:
                yield self.conn.readPacket()
        while True:
            sock = self.conn.conn
            if sock is None:
                yield None
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable:
                batch = self.conn.readAvailable()
                if batch is None:
                    yield None
                yield from batch or []

    def run(self) -> None:
        items = self.items()
        while True:
            try:
                item = next(items)
            except (OSError, ValueError, AttributeError):
                return  # the test closed the connection (conn.conn is then None)
            if item is None:
                return
            if isinstance(item, gear.AdminRequest):
                item.setComplete()
            elif item.ptype == constants.ECHO_RES:
                self.conn.handleEchoRes(item.data)
            else:
                with self.got_packet:
                    self.packets.append(item)
                    self.got_packet.notify_all()

    def wait_packet(self, timeout: float = 10) -> gear.Packet:
        with self.got_packet:
            assert self.got_packet.wait_for(lambda: self.packets, timeout)
            return self.packets.pop(0)


@pytest.fixture
def connected(gearmand: object) -> Iterator[tuple[gear.Connection, Reader]]:
    conn = gear.Connection(gearmand.host, gearmand.port, client_id="test")  # type: ignore[attr-defined]
    conn.connect()
    reader = Reader(conn)
    yield conn, reader
    conn.disconnect()


def test_connect_sets_state(gearmand: object) -> None:
    conn = gear.Connection(gearmand.host, gearmand.port)  # type: ignore[attr-defined]
    assert not conn.connected and conn.conn is None
    conn.connect()
    try:
        assert conn.connected and conn.connect_time is not None
        assert not conn.conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert conn.conn.gettimeout() is None
        assert repr(conn).endswith("host: %s port: %s>" % (conn.host, conn.port))
    finally:
        conn.disconnect()
    assert not conn.connected and conn.state == "INIT"
    conn.tcp_nodelay = True
    conn.connect_timeout = 5
    conn.connect()
    try:
        assert conn.conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert conn.conn.gettimeout() is None
    finally:
        conn.disconnect()


class MinimalSocket:
    """A stand-in for ``socket.socket`` with only what gear 0.16's connect used.

    Code under test patches ``socket.socket`` with objects like this; it
    talks to the real server through a real socket it does not expose.
    """

    def __init__(self, family: int, type: int, proto: int = 0) -> None:
        self._sock = real_socket(family, type, proto)

    def connect(self, address: object) -> None:
        self._sock.connect(address)

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def send(self, data: bytes) -> int:
        return self._sock.send(data)

    def close(self) -> None:
        self._sock.close()


real_socket = socket.socket


def test_connect_needs_only_a_minimal_socket(
    gearmand: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "socket", MinimalSocket)
    conn = gear.Connection("127.0.0.1", gearmand.port)  # type: ignore[attr-defined]
    conn.connect()
    try:
        assert isinstance(conn.conn, MinimalSocket)
        conn.sendPacket(gear.Packet(constants.REQ, constants.ECHO_REQ, b"minimal"))
        reply = conn.readPacket()
        assert isinstance(reply, gear.Packet)
        assert (reply.ptype, reply.data) == (constants.ECHO_RES, b"minimal")
    finally:
        conn.disconnect()


def test_connect_failure_raises_gear_connection_error() -> None:
    from fixtures.servers import free_port

    conn = gear.Connection("127.0.0.1", free_port())
    with pytest.raises(gear.ConnectionError, match="Unable to open socket"):
        conn.connect()


def test_echo_returns_the_data(connected: tuple[gear.Connection, Reader]) -> None:
    conn, _ = connected
    assert conn.echo(b"hello", timeout=10) == b"hello"
    assert len(conn.echo(timeout=10)) == 32
    assert conn.echo_conditions == {}


def test_echo_times_out_without_a_reply(gearmand: object) -> None:
    conn = gear.Connection(gearmand.host, gearmand.port)  # type: ignore[attr-defined]
    conn.connect()
    try:
        with pytest.raises(gear.TimeoutError):
            conn.echo(b"nobody reads", timeout=0.2)
    finally:
        conn.disconnect()


def test_admin_version_status_workers(connected: tuple[gear.Connection, Reader]) -> None:
    conn, reader = connected
    version = gear.VersionAdminRequest()
    conn.sendAdminRequest(version, timeout=10)
    assert version.response is not None and version.response.startswith(b"OK ")
    conn.sendPacket(gear.Packet(constants.REQ, constants.CAN_DO, b"reverse"))
    status = gear.StatusAdminRequest()
    conn.sendAdminRequest(status, timeout=10)
    assert status.response is not None
    assert b"reverse\t0\t0\t1\n" in status.response
    assert status.response.endswith(b".\n")
    workers = gear.WorkersAdminRequest()
    conn.sendAdminRequest(workers, timeout=10)
    assert workers.response is not None and b"reverse" in workers.response
    assert reader.packets == []


def test_admin_and_binary_interleave(connected: tuple[gear.Connection, Reader]) -> None:
    conn, reader = connected
    status = gear.StatusAdminRequest()
    conn.admin_requests.append(status)
    conn.sendRaw(
        gear.Packet(constants.REQ, constants.SUBMIT_JOB_BG, b"fn\x00\x00x").toBinary()
        + status.getCommand()
    )
    created = reader.wait_packet()
    assert created.ptype == constants.JOB_CREATED and created.data.startswith(b"H:")
    assert status.waitForResponse(10)
    assert status.response is not None and b"fn\t1\t0\t0\n" in status.response


def test_unknown_admin_command_does_not_hang(connected: tuple[gear.Connection, Reader]) -> None:
    class Bogus(gear.AdminRequest):
        command = b"no such command"

    conn, _ = connected
    req = Bogus()
    conn.sendAdminRequest(req, timeout=10)
    assert req.response is not None and req.response.startswith(b"ERR ")


class TLSProxy:
    """A TLS front for the C gearmand (Debian's build has no TLS)."""

    def __init__(self, context: ssl.SSLContext, target: tuple[str, int]) -> None:
        self.context = context
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.errors: list[BaseException] = []
        self.versions: list[str | None] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                tls = self.context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.errors.append(e)
                raw.close()
                continue
            self.versions.append(tls.version())
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self.pipe, args=(tls, upstream), daemon=True).start()
            threading.Thread(target=self.pipe, args=(upstream, tls), daemon=True).start()

    @staticmethod
    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_handshake_and_echo(gearmand: object, certs: object, version: ssl.TLSVersion) -> None:
    ctx = load_context(certs.server.key, certs.server.cert, certs.ca, server_side=True)  # type: ignore[attr-defined]
    ctx.minimum_version = ctx.maximum_version = version
    proxy = TLSProxy(ctx, (gearmand.host, gearmand.port))  # type: ignore[attr-defined]
    conn = gear.Connection(
        "127.0.0.1",
        proxy.port,
        certs.client.key,
        certs.client.cert,
        certs.ca,  # type: ignore[attr-defined]
    )
    assert conn.use_ssl
    try:
        conn.connect()
        Reader(conn, poll=True)
        assert conn.echo(b"over tls", timeout=10) == b"over tls"
        assert proxy.versions == [{ssl.TLSVersion.TLSv1_2: "TLSv1.2"}.get(version, "TLSv1.3")]
    finally:
        conn.disconnect()
        proxy.close()


def test_tls_refuses_a_server_from_another_ca(
    gearmand: object, certs: object, other_ca_certs: object
) -> None:
    ctx = load_context(
        other_ca_certs.server.key,
        other_ca_certs.server.cert,
        other_ca_certs.ca,
        server_side=True,  # type: ignore[attr-defined]
    )
    proxy = TLSProxy(ctx, (gearmand.host, gearmand.port))  # type: ignore[attr-defined]
    conn = gear.Connection(
        "127.0.0.1",
        proxy.port,
        certs.client.key,
        certs.client.cert,
        certs.ca,  # type: ignore[attr-defined]
    )
    try:
        with pytest.raises(gear.ConnectionError, match="CERTIFICATE_VERIFY_FAILED") as info:
            conn.connect()
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    finally:
        proxy.close()
