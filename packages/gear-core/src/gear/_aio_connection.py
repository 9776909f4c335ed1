"""One asyncio connection to a Gearman server, and the address it dials.

:class:`AsyncConnection` is the :class:`asyncio.Protocol` of one server
socket: it feeds gear-core's sans-IO :class:`~gear.codec.Decoder`, hands
each :class:`~gear.codec.Frame` to its owner (an :class:`gear._aio.AsyncBase`)
and collects writes to flush once per loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from gear._connect_errors import check_tls_files_readable
from gear._server_spec import ServerSpec
from gear.codec import Decoder, Frame
from gear.connection import set_keepalive
from gear.errors import DisconnectError, RemoteProtocolError
from gear.tls import load_context

if TYPE_CHECKING:
    from gear._aio import AsyncBase

__all__ = ["AsyncConnection", "ServerAddress"]


class ServerAddress:
    """A server added with ``add_server``: where to dial, with what TLS, and how it went."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.host = spec.host
        self.port = int(spec.port)
        self.address = spec.address
        self.keepalive = spec.keepalive_timings
        self.task: asyncio.Task[None] | None = None
        self.connection: AsyncConnection | None = None
        #: True once the reconnect policy's ``max_attempts`` ran out.
        self.gave_up = False

    def __repr__(self) -> str:
        return "<gear.ServerAddress host: %s port: %s>" % (self.host, self.port)

    def ssl_context(self) -> ssl.SSLContext | None:
        """Load the TLS files (on every attempt, so fixed or renewed files are picked up)."""
        files = self.spec.ssl_files
        if files is None:
            return None
        check_tls_files_readable(*files)
        return load_context(*files)


class AsyncConnection(asyncio.Protocol):
    """One socket to one server; a new one is made on every (re)connect.

    Writes are collected and flushed once per event-loop turn, so the many
    small packets of concurrent requests go out in one ``send``.
    """

    def __init__(self, owner: AsyncBase, server: ServerAddress) -> None:
        self.owner = owner
        self.server = server
        self.host = server.host
        self.port = server.port
        self.transport: asyncio.Transport | None = None
        self.decoder = Decoder()
        self.connected = False
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._wbuf: list[bytes] = []
        #: Client: requests answered in order (submits, options), oldest first.
        self.pending: deque[Any] = deque()
        #: Client: (reply type, key) -> waiters for STATUS_RES(_UNIQUE).
        self.status_waiters: dict[tuple[int, bytes], list[Any]] = {}
        #: Client: handle -> foreground job awaiting WORK_* packets.
        self.related_jobs: dict[bytes, Any] = {}
        #: Client: options the server accepted (OPTION_RES), as Connection.options.
        self.options: set[bytes] = set()
        #: Client: the greeting's exchange while it waits for its answers.
        self.greeting: Any = None
        #: Client: ECHO_REQ payload -> waiter for the ECHO_RES (liveness probe).
        self.echo_waiters: dict[bytes, asyncio.Future[None]] = {}
        #: Worker: the grab state (gear.worker.protocol).
        self.state = "INIT"
        #: Worker: GRAB_JOB_UNIQ requests not answered yet.
        self.grabs = 0

    def __repr__(self) -> str:
        return "<gear.AsyncConnection 0x%x host: %s port: %s>" % (id(self), self.host, self.port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, don't check.
        self.transport = transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.server.keepalive is not None:
                set_keepalive(sock, *self.server.keepalive, self.owner.log)
        self.connected = True

    def data_received(self, data: bytes) -> None:
        try:
            events = self.decoder.receive(data)
        except RemoteProtocolError as e:
            self.owner.log.error("Protocol error from %s: %s; dropping it", self, e)
            self.abort()
            return
        handle = self.owner._handle_frame
        for event in events:
            if not self.connected:
                return
            if type(event) is Frame:
                try:
                    handle(self, event)
                except Exception:
                    self.owner.log.exception("Exception while handling %s from %s", event, self)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()
        if not self.closed.done():
            self.closed.set_result(None)

    def _lost(self) -> None:
        was_connected = self.connected
        self.connected = False
        self._wbuf.clear()
        if was_connected:
            self.owner._connection_lost(self)

    def send(self, data: bytes) -> None:
        """Queue ``data``; raises :class:`gear.DisconnectError` once disconnected."""
        if not self.connected:
            raise DisconnectError("Not connected to %s:%s" % (self.host, self.port))
        if not self._wbuf:
            self.loop.call_soon(self._flush)
        self._wbuf.append(data)

    def _flush(self) -> None:
        if self._wbuf and self.transport is not None and self.connected:
            data = b"".join(self._wbuf)
            self._wbuf.clear()
            self.transport.write(data)

    def abort(self) -> None:
        """Drop the connection and tell the owner now, not on the next loop turn."""
        self._lost()
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Send what is queued, then close; the owner is told at once."""
        self._flush()
        self._lost()
        if self.transport is not None:
            self.transport.close()
