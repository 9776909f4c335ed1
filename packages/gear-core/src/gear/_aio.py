"""asyncio connections shared by :class:`gear.AsyncClient` and :class:`gear.AsyncWorker`.

One :class:`asyncio.Protocol` per server socket feeds gear-core's sans-IO
:class:`~gear.codec.Decoder` and hands each :class:`~gear.codec.Frame` to
its owner. :class:`AsyncBase` keeps the server list and applies the rules of
the threaded :class:`gear.BaseClient`: ``add_server`` only registers, a
background task per server dials it and redials with a back-off of
``reconnect_delay`` seconds after a failure, and requests go round-robin over
the connected servers. Roles subclass it and fill in ``_on_connect``,
``_handle_frame`` and ``_on_connection_lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import deque
from typing import Any

from gear._server_spec import ServerSpec
from gear.codec import Decoder, Frame
from gear.connection import set_keepalive
from gear.errors import (
    DisconnectError,
    NoConnectedServersError,
    RemoteProtocolError,
    TimeoutError,
)
from gear.tls import load_context
from gear.util import convert_to_bytes

__all__ = ["AsyncConnection", "AsyncBase", "ServerAddress"]


class ServerAddress:
    """A server added with ``add_server``: where to dial and with what TLS."""

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        keepalive: tuple[int, int, int] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.keepalive = keepalive
        self.task: asyncio.Task[None] | None = None
        self.connection: AsyncConnection | None = None

    def __repr__(self) -> str:
        return "<gear.ServerAddress host: %s port: %s>" % (self.host, self.port)


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
        #: Worker: the grab state (gear.worker.protocol).
        self.state = "INIT"
        #: Worker: GRAB_JOB_UNIQ requests not answered yet.
        self.grabs = 0

    def __repr__(self) -> str:
        return "<gear.AsyncConnection 0x%x host: %s port: %s>" % (id(self), self.host, self.port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
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
        was_connected = self.connected
        self.connected = False
        self._wbuf.clear()
        if was_connected:
            self.owner._connection_lost(self)
        if not self.closed.done():
            self.closed.set_result(None)

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
        was_connected = self.connected
        self.connected = False
        self._wbuf.clear()
        if was_connected:
            self.owner._connection_lost(self)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self._flush()
        if self.transport is not None:
            self.transport.close()


class AsyncBase:
    """Server list, reconnect tasks and round-robin shared by the async roles.

    Use it with ``async with``; leaving the block closes every connection.
    ``reconnect_delay`` is the back-off after a failed connect (2 s as in gear
    0.16; tests lower it).
    """

    reconnect_delay: float = 2.0
    connect_timeout: float = 10.0
    _log_prefix = "gear.AsyncBase"

    def __init__(self, client_id: str | bytes | None = None) -> None:
        self.client_id: bytes | None = convert_to_bytes(client_id)
        name = self._log_prefix
        if self.client_id:
            name += "." + self.client_id.decode("utf8", "replace")
        self.log = logging.getLogger(name)
        self.servers: list[ServerAddress] = []
        self.active_connections: list[AsyncConnection] = []
        self.connection_index = -1
        self.running = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server_waiters: list[asyncio.Future[None]] = []

    async def __aenter__(self) -> Any:
        self._ensure_started()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- servers ----------------------------------------------------------

    def add_server(
        self,
        host: str,
        port: int | str = 4730,
        ssl_key: str | None = None,
        ssl_cert: str | None = None,
        ssl_ca: str | None = None,
        keepalive: bool = False,
        tcp_keepidle: int = 7200,
        tcp_keepintvl: int = 75,
        tcp_keepcnt: int = 9,
    ) -> None:
        """Register a server; a background task connects to it (does not block).

        TLS is used when ``ssl_key``, ``ssl_cert`` and ``ssl_ca`` (file
        names) are all given; the keepalive options are those of the
        threaded ``addServer``. Raises :class:`gear.ConfigurationError` for a
        host and port already added.
        """
        port = int(port)
        spec = ServerSpec(
            host,
            port,
            ssl_key,
            ssl_cert,
            ssl_ca,
            keepalive,
            tcp_keepidle,
            tcp_keepintvl,
            tcp_keepcnt,
        )
        spec.check_new((s.host, s.port) for s in self.servers)
        files = spec.ssl_files
        context = load_context(*files) if files else None
        server = ServerAddress(host, port, context, spec.keepalive_timings)
        self.servers.append(server)
        if self._loop is not None and self.running:
            self._spawn(server)

    async def wait_for_server(self, timeout: float | None = None) -> None:
        """Wait until some server is connected; :class:`gear.TimeoutError` after ``timeout`` s."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.active_connections:
            if not self.running:
                raise DisconnectError("The %s is closed" % (type(self).__name__,))
            waiter: asyncio.Future[None] = loop.create_future()
            self._server_waiters.append(waiter)
            try:
                if deadline is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise TimeoutError(
                    "No Gearman server was connected within %s seconds" % (timeout,)
                ) from None
            finally:
                if waiter in self._server_waiters:
                    self._server_waiters.remove(waiter)

    def _ensure_started(self) -> None:
        if not self.running:
            raise DisconnectError("The %s is closed" % (type(self).__name__,))
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            for server in self.servers:
                self._spawn(server)

    def _spawn(self, server: ServerAddress) -> None:
        assert self._loop is not None
        server.task = self._loop.create_task(self._connect_loop(server))

    async def _connect_loop(self, server: ServerAddress) -> None:
        loop = asyncio.get_running_loop()
        while self.running:
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: AsyncConnection(self, server),
                        server.host,
                        server.port,
                        ssl=server.ssl_context,
                        server_hostname=server.host if server.ssl_context else None,
                    ),
                    self.connect_timeout,
                )
            except (OSError, asyncio.TimeoutError, ssl.SSLError) as e:
                self.log.debug("Unable to connect to %s:%s: %s", server.host, server.port, e)
                await asyncio.sleep(self.reconnect_delay)
                continue
            server.connection = conn
            try:
                self._on_connect(conn)
            except Exception:
                self.log.exception("Greeting %s failed; dropping it", conn)
                conn.abort()
            if conn.connected and self.running:
                self.active_connections.append(conn)
                self._on_active(conn)
                for waiter in self._server_waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                self.log.debug("Connected to %s", conn)
            await conn.closed

    def _connection_lost(self, conn: AsyncConnection) -> None:
        if conn in self.active_connections:
            self.active_connections.remove(conn)
        self.log.debug("Lost connection to %s", conn)
        self._on_connection_lost(conn)

    def _next_connection(self) -> AsyncConnection:
        """Return the next connected server, round-robin."""
        active = self.active_connections
        if not active:
            raise NoConnectedServersError("No connected Gearman servers")
        self.connection_index += 1
        if self.connection_index >= len(active):
            self.connection_index = 0
        return active[self.connection_index]

    def broadcast(self, data: bytes) -> None:
        """Send ``data`` to every connected server."""
        for conn in list(self.active_connections):
            with contextlib.suppress(DisconnectError):
                conn.send(data)

    async def close(self) -> None:
        """Close every connection and stop reconnecting; a second call is harmless."""
        if not self.running:
            return
        self.running = False
        tasks = [s.task for s in self.servers if s.task is not None]
        for task in tasks:
            task.cancel()
        conns = [s.connection for s in self.servers if s.connection is not None]
        for conn in conns:
            conn.close()
        for waiter in self._server_waiters:
            if not waiter.done():
                waiter.set_exception(DisconnectError("The client was closed"))
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        closing = [c.closed for c in conns if c.transport is not None]
        if closing:
            await asyncio.wait(closing, timeout=5)
        for conn in conns:
            if conn.connected:
                conn.abort()

    # -- role hooks -------------------------------------------------------

    def _on_connect(self, conn: AsyncConnection) -> None:
        """Send the role's greeting on a new connection (writes are buffered)."""

    def _on_active(self, conn: AsyncConnection) -> None:
        """React once ``conn`` is in ``active_connections``."""

    def _handle_frame(self, conn: AsyncConnection, frame: Frame) -> None:
        """Handle one packet from ``conn``."""

    def _on_connection_lost(self, conn: AsyncConnection) -> None:
        """Release whatever waits on ``conn``'s replies."""
