"""asyncio connection management shared by AsyncClient and AsyncWorker.

One :class:`asyncio.Protocol` per server socket (:mod:`gear._aio_connection`,
re-exported here) feeds gear-core's sans-IO :class:`~gear.codec.Decoder` and
hands each :class:`~gear.codec.Frame` to its owner. :class:`AsyncBase` keeps
the server list and applies the rules of the threaded
:class:`gear.BaseClient`: ``add_server`` only registers, a background task
per server dials it and redials after a failure as its
:class:`~gear.ReconnectPolicy` says, and requests go round-robin over the
connected servers. Roles subclass it and fill in ``_on_connect`` (and
``_greeted``, to wait for the greeting's answers), ``_handle_frame`` and
``_on_connection_lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from gear._aio_connection import AsyncConnection, ServerAddress
from gear._connect_errors import ConnectFailures, describe
from gear._server_spec import ServerEntry, ServerSpec, server_options
from gear.codec import Frame
from gear.errors import ConfigurationError, DisconnectError, NoConnectedServersError, TimeoutError
from gear.hooks import Hooks, call_hook
from gear.reconnect import ReconnectPolicy
from gear.util import convert_to_bytes

__all__ = ["AsyncConnection", "AsyncBase", "ServerAddress"]

_Self = TypeVar("_Self", bound="AsyncBase")


class AsyncBase:
    """Server list, reconnect tasks and round-robin shared by the async roles.

    Use it with ``async with``: entering starts connecting and, when servers
    were given (``servers=`` or ``add_server`` before the block), waits up to
    ``connect_timeout`` seconds for one of them; leaving closes every
    connection. ``reconnect`` is the :class:`~gear.ReconnectPolicy` between
    failed attempts (exponential back-off from 0.1 s to 10 s, with jitter,
    retrying forever by default).
    """

    _log_prefix = "gear.AsyncBase"

    def __init__(
        self,
        client_id: str | bytes | None = None,
        servers: Iterable[ServerEntry] | None = None,
        *,
        connect_timeout: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.client_id: bytes | None = convert_to_bytes(client_id)
        #: Connection and job event callbacks (:class:`gear.Hooks`), or None.
        self.hooks = hooks
        name = self._log_prefix
        if self.client_id:
            name += "." + self.client_id.decode("utf8", "replace")
        self.log = logging.getLogger(name)
        self.servers: list[ServerAddress] = []
        self.active_connections: list[AsyncConnection] = []
        self.connection_index = -1
        self.running = True
        #: Seconds one connection attempt may take, and how long entering
        #: ``async with`` waits for a first server.
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect if reconnect is not None else ReconnectPolicy()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server_waiters: list[asyncio.Future[None]] = []
        self._failures = ConnectFailures(self.log)
        #: How the connect tasks wait between attempts (tests put a fake clock here).
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        if isinstance(servers, (str, bytes, dict)) or (
            isinstance(servers, tuple) and any(isinstance(item, int) for item in servers)
        ):
            raise ConfigurationError(
                "servers is a list of servers, such as servers=[%r]" % (servers,)
            )
        for entry in servers or ():
            self.add_server(**server_options(entry))

    @property
    def reconnect_delay(self) -> float:
        """The first back-off of ``reconnect``; setting it fixes the back-off at that."""
        return self.reconnect.initial_delay

    @reconnect_delay.setter
    def reconnect_delay(self, delay: float) -> None:
        self.reconnect = ReconnectPolicy.fixed(delay, self.reconnect.max_attempts)

    async def __aenter__(self: _Self) -> _Self:
        """Start connecting; with servers added, wait for one (see :meth:`connect`)."""
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Start the connect tasks and wait up to ``connect_timeout`` for a first server.

        Returns at once when no server was added yet or one is connected.
        Raises :class:`gear.NoConnectedServersError` naming each server's
        last error (``127.0.0.1:4730: connection refused``) when none came up.
        """
        self._ensure_started()
        if not self.servers or self.active_connections:
            return
        try:
            await self.wait_for_server(self.connect_timeout)
        except TimeoutError:
            raise NoConnectedServersError(
                "No Gearman server was connected within %s seconds: %s"
                % (self.connect_timeout, self._summary(self.connect_timeout)),
                self._causes(self.connect_timeout),
            ) from None

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
        names) are all given; they are read on each connection attempt, so a
        missing file shows as that server's connect error. The keepalive
        options are those of the threaded ``addServer``. Raises
        :class:`gear.ConfigurationError` for a port that is not an integer
        from 1 to 65535, or a host and port already added.
        """
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
        server = ServerAddress(spec)
        self.servers.append(server)
        if self._loop is not None and self.running:
            self._spawn(server)

    async def wait_for_server(self, timeout: float | None = None) -> None:
        """Wait until some server is connected.

        Raises :class:`gear.TimeoutError` after ``timeout`` seconds, and
        :class:`gear.NoConnectedServersError` as soon as every server has been
        given up (``max_attempts`` of the reconnect policy); both messages
        name each server with the reason its last attempt failed.
        """
        self._ensure_started()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.active_connections:
            if not self.running:
                raise DisconnectError("The %s is closed" % (type(self).__name__,))
            if self.servers and all(s.gave_up for s in self.servers):
                raise NoConnectedServersError(
                    "No Gearman server could be reached: %s" % (self._summary(),),
                    self._causes(),
                )
            waiter: asyncio.Future[None] = loop.create_future()
            self._server_waiters.append(waiter)
            try:
                if deadline is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise TimeoutError(
                    "No Gearman server was connected within %s seconds: %s"
                    % (timeout, self._summary(self.connect_timeout))
                ) from None
            finally:
                if waiter in self._server_waiters:
                    self._server_waiters.remove(waiter)

    def connect_errors(self) -> dict[str, str]:
        """Each server not connected now (``"host:port"``) with its last connect error."""
        return self._causes()

    def _down(self) -> list[str]:
        up = {conn.server for conn in self.active_connections}
        return [s.address for s in self.servers if s not in up]

    def _causes(self, timeout: float | None = None) -> dict[str, str]:
        return self._failures.causes(self._down(), _pending(timeout))

    def _summary(self, timeout: float | None = None) -> str:
        return self._failures.summary(self._down(), _pending(timeout))

    def _wake_waiters(self) -> None:
        for waiter in self._server_waiters:
            if not waiter.done():
                waiter.set_result(None)

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

    async def _dial(self, server: ServerAddress) -> AsyncConnection:
        """One attempt: each address of the host in turn, then the TLS handshake."""
        loop = asyncio.get_running_loop()
        context = server.ssl_context()
        infos = await loop.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM)
        error: OSError = OSError("%s has no address" % (server.host,))
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, sockaddr)
            except OSError as e:
                sock.close()
                error = e
                continue
            except BaseException:
                sock.close()
                raise
            try:
                _, conn = await loop.create_connection(
                    lambda: AsyncConnection(self, server),
                    sock=sock,
                    ssl=context,
                    server_hostname=server.host if context else None,
                )
            except BaseException:
                sock.close()
                raise
            return conn
        raise error

    async def _open(self, server: ServerAddress) -> AsyncConnection:
        """One attempt: dial, greet, and wait for the greeting's answers."""
        conn = await self._dial(server)
        try:
            try:
                self._on_connect(conn)
            except Exception:
                self.log.exception("Greeting %s failed; dropping it", conn)
                raise
            await self._greeted(conn)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _connect_loop(self, server: ServerAddress) -> None:
        failures = 0
        while self.running:
            try:
                conn = await asyncio.wait_for(self._open(server), self.connect_timeout)
            except Exception as e:
                failures += 1
                self.log.debug("Unable to connect to %s: %r", server.address, e)
                self._failures.failed(server.address, describe(e, self.connect_timeout))
                if self.reconnect.gives_up(failures):
                    server.gave_up = True
                    self._failures.gave_up(server.address, failures)
                    self._wake_waiters()
                    return
                await self._sleep(self.reconnect.delay(failures))
                continue
            if not self.running:
                # close() cancelled this task as the attempt finished, and
                # Python < 3.12's wait_for can drop such a cancellation.
                conn.abort()
                return
            failures = 0
            self._failures.connected(server.address)
            server.connection = conn
            if conn.connected:
                self.active_connections.append(conn)
                self._on_active(conn)
                self._wake_waiters()
                self.log.debug("Connected to %s", conn)
                if self.hooks is not None:
                    call_hook(self.log, self.hooks.on_connect, conn.host, conn.port)
            await conn.closed

    def _connection_lost(self, conn: AsyncConnection) -> None:
        was_active = conn in self.active_connections
        if was_active:
            self.active_connections.remove(conn)
        self.log.debug("Lost connection to %s", conn)
        self._on_connection_lost(conn)
        if was_active and self.hooks is not None:
            call_hook(self.log, self.hooks.on_disconnect, conn.host, conn.port)

    def _next_connection(self) -> AsyncConnection:
        """Return the next connected server, round-robin."""
        active = self.active_connections
        if not active:
            raise NoConnectedServersError(
                "No connected Gearman servers: %s" % (self._summary(),), self._causes()
            )
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
            if conn.transport is not None and not conn.closed.done():
                conn.transport.abort()

    # -- role hooks -------------------------------------------------------

    def _on_connect(self, conn: AsyncConnection) -> None:
        """Send the role's greeting on a new connection (writes are buffered)."""

    async def _greeted(self, conn: AsyncConnection) -> None:
        """Wait for the server's answers to the greeting, before ``conn`` goes active.

        Bounded by ``connect_timeout`` with the dial; raising fails the
        attempt, which then counts toward the reconnect policy.
        """

    def _on_active(self, conn: AsyncConnection) -> None:
        """React once ``conn`` is in ``active_connections``."""

    def _handle_frame(self, conn: AsyncConnection, frame: Frame) -> None:
        """Handle one packet from ``conn``."""

    def _on_connection_lost(self, conn: AsyncConnection) -> None:
        """Release whatever waits on ``conn``'s replies."""


def _pending(timeout: float | None) -> str:
    if timeout is None:
        return "no connection attempt has finished yet"
    return "no answer within %g seconds" % (timeout,)
