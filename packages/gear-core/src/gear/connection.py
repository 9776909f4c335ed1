"""Connections to a Gearman server: blocking (client/worker) and non-blocking.

The socket work is here; framing is :class:`gear.codec.Decoder`'s.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from typing import Any

from gear import constants
from gear.admin import AdminRequest, ServerAdminRequest
from gear.codec import _HEADER, AdminLine, Decoder, Event, Frame, encode_packet
from gear.errors import (
    ConnectionError,
    InvalidDataError,
    RemoteProtocolError,
    RetryIOError,
    TimeoutError,
)
from gear.job import BaseJob
from gear.packet import Packet
from gear.tasks import Task
from gear.tls import load_context, peer_common_name
from gear.util import convert_to_bytes

__all__ = ["Connection", "NonBlockingConnection", "ServerConnection", "set_keepalive"]

_RECV_SIZE = 65536


def set_keepalive(
    sock: socket.socket, idle: int, interval: int, count: int, log: logging.Logger
) -> None:
    """Turn on TCP keepalive with the given timings where the OS allows."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
    else:
        log.warning("Keepalive timings are not supported on this platform")


class Connection:
    """One blocking TCP (optionally TLS) connection to a Gearman server."""

    #: Seconds allowed for the TCP connect and TLS handshake (None: the OS
    #: limit, minutes for an unreachable host). Clients and workers set it so
    #: one dead server does not hold up reconnecting to the others.
    connect_timeout: float | None = None
    #: Turn off Nagle's algorithm on TCP connections. Off by default, so
    #: ``connect()`` needs no more of a (patched) socket than gear 0.16's
    #: did; clients and workers turn it on for the connections they make.
    tcp_nodelay: bool = False

    def __init__(
        self,
        host: str | None,
        port: int | str,
        ssl_key: str | None = None,
        ssl_cert: str | None = None,
        ssl_ca: str | None = None,
        client_id: str | bytes | None = "unknown",
        keepalive: bool = False,
        tcp_keepidle: int = 7200,
        tcp_keepintvl: int = 75,
        tcp_keepcnt: int = 9,
    ) -> None:
        self.log = logging.getLogger("gear.Connection.%s" % (_id_text(client_id),))
        self.host = host
        self.port = port
        self.ssl_key = ssl_key
        self.ssl_cert = ssl_cert
        self.ssl_ca = ssl_ca
        self.keepalive = keepalive
        self.tcp_keepidle = tcp_keepidle
        self.tcp_keepintvl = tcp_keepintvl
        self.tcp_keepcnt = tcp_keepcnt
        self.use_ssl = bool(ssl_key and ssl_cert and ssl_ca)
        self.echo_lock = threading.Lock()
        self.send_lock = threading.Lock()
        #: The socket (None when not connected). Typed Any because gear 0.16
        #: code may patch ``socket.socket`` with its own socket-like class.
        self.conn: Any = None
        self.connected = False
        self.connect_time: float | None = None
        self.related_jobs: dict[bytes, BaseJob] = {}
        self.pending_tasks: list[Task] = []
        self.admin_requests: list[AdminRequest] = []
        self.echo_conditions: dict[bytes, threading.Condition] = {}
        self.options: set[bytes] = set()
        self.state = "INIT"
        self.state_time = time.time()
        self._decoder = Decoder()
        self._events: deque[Event] = deque()
        self._admin_buffer = b""

    def __repr__(self) -> str:
        return "<gear.Connection 0x%x host: %s port: %s>" % (id(self), self.host, self.port)

    @property
    def input_buffer(self) -> bytes:
        """Received bytes not yet returned by :meth:`readPacket`."""
        return self._decoder.pending() + b"".join(_event_bytes(e) for e in self._events)

    @property
    def need_bytes(self) -> bool:
        return not self._events and self._decoder.buffered > 0

    def changeState(self, state: str) -> None:
        self.log.debug("Setting state to: %s", state)
        self.state = state
        self.state_time = time.time()

    def _reset_input(self) -> None:
        self._decoder = Decoder()
        self._events.clear()
        self._admin_buffer = b""

    def _make_socket(self) -> socket.socket:
        last_error: Exception | None = None
        for family, socktype, proto, _, sockaddr in socket.getaddrinfo(
            self.host, self.port, socket.AF_UNSPEC, socket.SOCK_STREAM
        ):
            try:
                sock = socket.socket(family, socktype, proto)
            except OSError as e:
                last_error = e
                continue
            if self.keepalive:
                set_keepalive(
                    sock, self.tcp_keepidle, self.tcp_keepintvl, self.tcp_keepcnt, self.log
                )
            if self.use_ssl:
                context = load_context(str(self.ssl_key), str(self.ssl_cert), str(self.ssl_ca))
                sock = context.wrap_socket(sock, server_hostname=self.host)
            try:
                if self.connect_timeout is None:
                    sock.connect(sockaddr)
                else:
                    sock.settimeout(self.connect_timeout)
                    sock.connect(sockaddr)
                    sock.settimeout(None)
            except OSError as e:
                last_error = e
                sock.close()
                continue
            if self.tcp_nodelay and family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        self.log.debug("Unable to open socket to %s:%s: %s", self.host, self.port, last_error)
        detail = ": %s" % (last_error,) if last_error is not None else ""
        raise ConnectionError("Unable to open socket%s" % (detail,)) from last_error

    def connect(self) -> None:
        """Open the connection; raises :class:`gear.ConnectionError` on failure."""
        self.log.debug("Connecting to %s port %s", self.host, self.port)
        self.conn = self._make_socket()
        self._reset_input()
        self.connected = True
        self.connect_time = time.time()
        self.changeState("INIT")

    def disconnect(self) -> None:
        """Close the socket and forget every per-connection request."""
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.log.debug("Disconnected from %s port %s", self.host, self.port)
        self.conn = None
        self.connected = False
        self.connect_time = None
        self.related_jobs = {}
        self.pending_tasks = []
        self.admin_requests = []
        self.echo_conditions = {}
        self.options = set()
        self._reset_input()
        self.changeState("INIT")

    def reconnect(self) -> None:
        self.disconnect()
        self.connect()

    def sendRaw(self, data: bytes | bytearray) -> None:
        """Send every byte of ``data``."""
        with self.send_lock:
            self._send_locked(data)

    def _send_locked(self, data: bytes | bytearray) -> None:
        if self.conn is None:
            raise ConnectionError("Not connected to %s:%s" % (self.host, self.port))
        view = memoryview(data)
        while view:
            try:
                sent = self.conn.send(view)
            except ssl.SSLWantReadError:
                select.select([self.conn], [self.conn], [], 1.0)
                continue
            except ssl.SSLWantWriteError:
                select.select([], [self.conn], [], 1.0)
                continue
            view = view[sent:]

    def sendPacketWithTask(self, packet: Packet, task: Task) -> None:
        """Queue ``task`` on ``pending_tasks`` and send ``packet``, atomically.

        Holding the send lock across both keeps the FIFO of tasks in the
        order the requests hit the wire when several threads submit at once.
        """
        data = encode_packet(bytes(packet.code), packet.ptype, packet.data)
        with self.send_lock:
            self.pending_tasks.append(task)
            self._send_locked(data)

    def sendPacket(self, packet: Packet) -> None:
        self.log.debug("Sending packet to %s: %s", self, packet)
        self.sendRaw(encode_packet(bytes(packet.code), packet.ptype, packet.data))

    def _recv(self) -> bytes:
        return bytes(self.conn.recv(_RECV_SIZE))

    def _next_event(self) -> Event | None:
        """Return the next event, reading from the socket as needed."""
        while not self._events:
            data = self._recv()
            if not data:
                return None
            self._events.extend(self._decoder.receive(data))
        return self._events.popleft()

    def readPacket(self) -> Packet | AdminRequest | None:
        """Return the next packet or completed admin reply; None at EOF."""
        while True:
            event = self._next_event()
            if event is None:
                return None
            if isinstance(event, Frame):
                return Packet(event.magic, event.ptype, event.data, connection=self)
            done = self._admin_line(event.line)
            if done is not None:
                return done

    def _admin_line(self, line: bytes) -> AdminRequest | None:
        if not self.admin_requests:
            raise RemoteProtocolError(
                "unexpected admin text from %s:%s: %r" % (self.host, self.port, line[:80])
            )
        self._admin_buffer += line
        request = self.admin_requests[0]
        complete, rest = request.isComplete(self._admin_buffer)
        if not complete:
            return None
        self.admin_requests.pop(0)
        self._admin_buffer = rest or b""
        return request

    def readAvailable(self) -> list[Packet | AdminRequest] | None:
        """Read what the socket has and return every complete item; None at EOF.

        For poll loops: called when the socket is readable, it never waits
        for the rest of a partial packet. A TLS socket is switched to
        non-blocking on first use, so a TLS record carrying no application
        data (a TLS 1.3 session ticket) returns ``[]`` instead of blocking.
        """
        out: list[Packet | AdminRequest] = []
        if not self._events:
            sock = self.conn
            if isinstance(sock, ssl.SSLSocket):
                with self.send_lock:
                    if sock.getblocking():
                        sock.setblocking(False)
                    try:
                        data = sock.recv(_RECV_SIZE)
                        while data and sock.pending():
                            data += sock.recv(_RECV_SIZE)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        return out
            else:
                data = sock.recv(_RECV_SIZE)
            if not data:
                return None
            self._events.extend(self._decoder.receive(data))
        events = self._events
        while events:
            event = events.popleft()
            if isinstance(event, Frame):
                out.append(Packet(event.magic, event.ptype, event.data, connection=self))
            else:
                done = self._admin_line(event.line)
                if done is not None:
                    out.append(done)
        return out

    def hasPendingData(self) -> bool:
        return bool(self._events) or self._decoder.buffered > 0

    def sendAdminRequest(self, request: AdminRequest, timeout: float | None = 90) -> None:
        """Send an admin request and block until its reply is in."""
        self.admin_requests.append(request)
        self.sendRaw(request.getCommand())
        if not request.waitForResponse(timeout):
            raise TimeoutError("No reply to admin request %r in %s seconds" % (request, timeout))

    def echo(self, data: bytes | str | None = None, timeout: float | None = 30) -> bytes:
        """Round-trip ECHO_REQ; return the echoed data, or raise TimeoutError."""
        payload = uuid.uuid4().hex.encode("utf8") if data is None else convert_to_bytes(data)
        condition = threading.Condition()
        with self.echo_lock:
            if payload in self.echo_conditions:
                raise InvalidDataError(
                    "This client is already waiting on an echo response of: %r" % (payload,)
                )
            self.echo_conditions[payload] = condition
        try:
            with condition:
                self.sendEchoReq(payload)
                answered = condition.wait(timeout)
        finally:
            with self.echo_lock:
                self.echo_conditions.pop(payload, None)
        if not answered:
            raise TimeoutError("No ECHO_RES in %s seconds" % (timeout,))
        return payload

    def sendEchoReq(self, data: bytes) -> None:
        self.sendPacket(Packet(constants.REQ, constants.ECHO_REQ, data))

    def handleEchoRes(self, data: bytes) -> bool:
        """Wake the ``echo`` caller waiting for ``data``; True if there was one."""
        with self.echo_lock:
            condition = self.echo_conditions.pop(data, None)
        if condition is None:
            return False
        with condition:
            condition.notify_all()
        return True

    def handleOptionRes(self, option: bytes) -> None:
        self.options.add(option)


class NonBlockingConnection(Connection):
    """A connection whose reads and writes never block.

    Writes queue in ``send_queue`` and drain as far as the socket allows;
    a read that would block raises :class:`gear.RetryIOError`.
    """

    def __init__(
        self,
        host: str | None,
        port: int | str,
        ssl_key: str | None = None,
        ssl_cert: str | None = None,
        ssl_ca: str | None = None,
        client_id: str | bytes | None = "unknown",
    ) -> None:
        super().__init__(host, port, ssl_key, ssl_cert, ssl_ca, client_id)
        self.send_queue: list[bytes] = []

    def connect(self) -> None:
        super().connect()
        self.conn.setblocking(False)

    def _recv(self) -> bytes:
        try:
            return super()._recv()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError) as e:
            raise RetryIOError() from e
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise RetryIOError() from e
            raise

    def sendPacket(self, packet: Packet) -> None:
        self.log.debug("Queuing packet to %s: %s", self, packet)
        self.sendRaw(encode_packet(bytes(packet.code), packet.ptype, packet.data))

    def sendRaw(self, data: bytes | bytearray) -> None:
        with self.send_lock:
            self.send_queue.append(bytes(data))
        self.sendQueuedData()

    def sendQueuedData(self) -> None:
        """Write queued bytes until the socket would block."""
        with self.send_lock:
            try:
                while self.send_queue:
                    chunk = self.send_queue.pop(0)
                    try:
                        sent = self.conn.send(chunk)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                        self.send_queue.insert(0, chunk)
                        return
                    if sent < len(chunk):
                        self.send_queue.insert(0, chunk[sent:])
                        return
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                raise


class ServerConnection(NonBlockingConnection):
    """A server's side of an accepted connection.

    Every admin line read becomes a new :class:`gear.ServerAdminRequest`.
    """

    def __init__(
        self,
        addr: tuple[str, int] | tuple[str, int, int, int],
        conn: socket.socket,
        use_ssl: bool,
        client_id: str | bytes | None,
    ) -> None:
        super().__init__(addr[0], addr[1], client_id=client_id)
        if client_id:
            self.log = logging.getLogger("gear.ServerConnection.%s" % (_id_text(client_id),))
        else:
            self.log = logging.getLogger("gear.ServerConnection")
        self.client_id: bytes | None = None
        self.functions: set[bytes] = set()
        self.ssl_subject: str | None = None
        self.use_ssl = use_ssl
        self.conn = conn
        self.connected = True
        self.connect_time = time.time()
        conn.setblocking(False)
        if use_ssl and isinstance(conn, ssl.SSLSocket):
            self.ssl_subject = peer_common_name(conn)

    def __repr__(self) -> str:
        return "<gear.ServerConnection 0x%x name: %s host: %s port: %s>" % (
            id(self),
            str(self.client_id),
            self.host,
            self.port,
        )

    def _admin_line(self, line: bytes) -> AdminRequest | None:
        request = ServerAdminRequest(self)
        request.isComplete(line)
        return request


def _id_text(client_id: str | bytes | None) -> str:
    if isinstance(client_id, bytes):
        return client_id.decode("utf8", "replace")
    return str(client_id)


def _event_bytes(event: Event) -> bytes:
    if isinstance(event, AdminLine):
        return event.line
    return _HEADER.pack(event.magic, event.ptype, len(event.data)) + event.data
