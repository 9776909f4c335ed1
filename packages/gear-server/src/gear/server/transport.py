"""Sockets and asyncio: accepting, TLS, input limits and back-pressure.

Each accepted socket becomes a :class:`GeardConnection`, an
``asyncio.Protocol`` that hands its bytes to the handlers and takes their
replies from the outbox. This layer enforces what only the transport can
see: the connection limit (counted before any TLS handshake), the
handshake timeout and a peer that stops reading.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from socket import socket as Socket
from typing import Any, cast

from gear.connection import set_keepalive
from gear.server.inbox import Inbox
from gear.server.model import Session
from gear.tls import peer_common_name

__all__ = ["GeardConnection", "Transport"]

_WRITE_HIGH_WATER = 1024 * 1024
_ACCEPT_BATCH = 64
_ACCEPT_BACKOFF = 0.25
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class GeardConnection(Session, asyncio.Protocol):
    """One accepted connection: a :class:`~gear.server.model.Session` on an asyncio transport."""

    def __init__(self, server: Transport) -> None:
        Session.__init__(self, server)
        self.server = server
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.server._connection_made(self, cast(asyncio.Transport, transport))
        # The outbox calls the transport's own write: no Python frame per flush.
        self.write = cast(asyncio.Transport, transport).write  # type: ignore[method-assign]

    def data_received(self, data: bytes) -> None:
        self.server._feed(self, data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connection_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0


class Transport(Inbox):
    """The listener and the connections' asyncio side."""

    loop: asyncio.AbstractEventLoop
    socket: Socket
    keepalive: bool
    tcp_keepidle: int
    tcp_keepintvl: int
    tcp_keepcnt: int
    _ssl_context: ssl.SSLContext | None

    def _init_transport(self) -> None:
        self._init_inbox()
        self._pending: dict[GeardConnection, asyncio.Task[None]] = {}
        self._listening = False
        self._accept_retry: asyncio.TimerHandle | None = None

    def _set_keepalive(self, sock: Any) -> None:
        set_keepalive(sock, self.tcp_keepidle, self.tcp_keepintvl, self.tcp_keepcnt, self.log)

    # ------------------------------------------------------------------
    # accepting

    def _accept(self) -> None:
        """Accept what the listener has; count each connection before any handshake.

        geard accepts itself (not ``loop.create_server``) so that a TLS
        connection counts toward ``max_connections`` from its first byte, its
        handshake has its own timeout, and running out of descriptors pauses
        accepting instead of spinning, on asyncio and uvloop alike.
        """
        listener = self.socket
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _OUT_OF_RESOURCES:
                    self._log_limited(
                        "accept",
                        logging.WARNING,
                        "Cannot accept a connection: %s; pausing accepts for %gs",
                        e.strerror or e,
                        _ACCEPT_BACKOFF,
                    )
                    self._pause_accepting()
                    return
                self._log_limited("accept-error", logging.INFO, "accept() failed: %s", e)
                continue
            if (
                self._stopping
                or self._graceful
                or len(self._connections) + len(self._pending) >= self.max_connections
            ):
                self._log_limited(
                    "limit",
                    logging.WARNING,
                    "Refusing connection from %s: connection limit (%d) reached",
                    addr[0] if addr else "?",
                    self.max_connections,
                )
                sock.close()
                continue
            sock.setblocking(False)
            conn = GeardConnection(self)
            if addr:
                conn.host, conn.port = str(addr[0]), int(addr[1])
            self._pending[conn] = self.loop.create_task(self._attach(conn, sock))

    def _pause_accepting(self) -> None:
        if self._listening:
            self._listening = False
            self.loop.remove_reader(self.socket.fileno())
            self._accept_retry = self.loop.call_later(_ACCEPT_BACKOFF, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._accept_retry = None
        if not (self._stopping or self._graceful or self._listening):
            self._listening = True
            self.loop.add_reader(self.socket.fileno(), self._accept)

    def _stop_listening(self) -> None:
        if self._accept_retry is not None:
            self._accept_retry.cancel()
            self._accept_retry = None
        if self._listening:
            self._listening = False
            self.loop.remove_reader(self.socket.fileno())
        self.socket.close()

    async def _attach(self, conn: GeardConnection, sock: Socket) -> None:
        """Make the transport (after the TLS handshake, bounded in time)."""
        context = self._ssl_context
        started = self.loop.time()
        try:
            await self.loop.connect_accepted_socket(
                lambda: conn,
                sock,
                ssl=context,
                ssl_handshake_timeout=self.tls_handshake_timeout if context else None,
            )
        except BaseException as e:
            sock.close()
            if not isinstance(e, Exception):
                raise
            # asyncio and uvloop both abort a handshake past its deadline with
            # ConnectionAbortedError, but uvloop also uses it for a peer that
            # leaves mid-handshake: tell them apart by the time taken.
            waited = self.loop.time() - started
            if isinstance(e, TimeoutError) or (
                isinstance(e, ConnectionAbortedError)
                and context is not None
                and waited >= 0.9 * self.tls_handshake_timeout
            ):
                self._log_limited(
                    "handshake-timeout",
                    logging.INFO,
                    "Closing %s: TLS handshake timed out (%gs)",
                    conn.host,
                    self.tls_handshake_timeout,
                )
            else:
                self._log_limited(
                    "handshake", logging.INFO, "Closing %s: TLS handshake failed: %r", conn.host, e
                )
        finally:
            self._pending.pop(conn, None)

    # ------------------------------------------------------------------
    # connections

    def _connection_made(self, conn: GeardConnection, transport: asyncio.Transport) -> None:
        conn.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            conn.host, conn.port = str(peer[0]), int(peer[1])
        conn.handle_prefix = b"H:" + conn.host.encode() + b":"
        self._pending.pop(conn, None)
        if self._stopping:
            conn.closed = True
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            conn.fd = sock.fileno()
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.keepalive:
                    self._set_keepalive(sock)
            except OSError:
                pass
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            conn.ssl_subject = peer_common_name(sslobj)
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        self._open_session(conn)

    def _connection_lost(self, conn: Session) -> None:
        conn.closed = True
        conn.out.clear()
        self._forget_input(conn)
        self._forget_session(conn)
