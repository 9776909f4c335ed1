"""A small read-only HTTP/1.1 listener on geard's own event loop.

It serves ``/metrics``, ``/healthz`` and the dashboard: GET and HEAD only,
one request per connection (``Connection: close``), answers computed on the
loop from a route table. It is written for peers that misbehave: a request
head is at most :data:`MAX_REQUEST_HEAD` bytes and must arrive within
:data:`REQUEST_TIMEOUT` seconds, a connection lives at most
:data:`CONNECTION_TIMEOUT` seconds however slowly it reads the answer, at
most :data:`MAX_CONNECTIONS` are open at once, and a body is never read.
On a loopback address it also refuses a ``Host`` header that names another
host, so a web page elsewhere cannot read it through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "CONNECTION_TIMEOUT",
    "HttpListenError",
    "MAX_CONNECTIONS",
    "MAX_REQUEST_HEAD",
    "REQUEST_TIMEOUT",
    "HttpListener",
    "Request",
    "Response",
    "Route",
]

MAX_REQUEST_HEAD = 8192
"""Bytes of request line and headers accepted; more is answered with 431."""
REQUEST_TIMEOUT = 10.0
"""Seconds a peer has to send its whole request head."""
CONNECTION_TIMEOUT = 60.0
"""Seconds a connection may stay open, reading the answer included."""
MAX_CONNECTIONS = 64
"""HTTP connections open at once; more are closed at accept."""
MAX_QUERY_FIELDS = 16

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class HttpListenError(OSError):
    """The HTTP port could not be bound (busy, or an address not on this host)."""


@dataclass(frozen=True)
class Request:
    """What a route is given: the path and the decoded query (its first value per name)."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


Route = Callable[[Request], Response]


def _text(status: int, text: str) -> Response:
    return Response(status, text.encode() + b"\n")


_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def _host_name(host: str) -> str:
    """``Host`` without its port, lower case (``[::1]:9464`` -> ``[::1]``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rpartition(":")[0] if ":" in host else host


def parse_head(head: bytes, loopback_only: bool = False) -> Request | Response:
    """The request in ``head`` (request line and headers), or the error to answer.

    ``loopback_only``: refuse a ``Host`` that is not a loopback name.
    """
    try:
        line, _, headers = head.decode("latin-1").partition("\r\n")
        line.encode("ascii")
    except UnicodeEncodeError:
        return _text(400, "bad request line")
    if loopback_only:
        for header in headers.split("\r\n"):
            name, _, value = header.partition(":")
            if name.strip().lower() == "host" and _host_name(value) not in _LOOPBACK_NAMES:
                return _text(403, "this listener answers only for localhost")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[1].startswith("/"):
        return _text(400, "bad request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        return _text(505, "HTTP/1.0 or HTTP/1.1 only")
    if method not in ("GET", "HEAD"):
        return Response(405, b"GET or HEAD only\n", headers=(("Allow", "GET, HEAD"),))
    url = urlsplit(target)
    try:
        pairs = parse_qsl(url.query, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        return _text(400, "too many query fields")
    query: dict[str, str] = {}
    for name, value in pairs:
        query.setdefault(name, value)
    return Request(method, url.path, query)


def render(response: Response, head_only: bool) -> bytes:
    """The bytes on the wire: status line, headers, and the body unless HEAD."""
    lines = [
        "HTTP/1.1 %d %s" % (response.status, _REASONS.get(response.status, "")),
        "Content-Type: " + response.content_type,
        "Content-Length: %d" % len(response.body),
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
    ]
    lines.extend("%s: %s" % pair for pair in response.headers)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


class _HttpConnection(asyncio.Protocol):
    def __init__(self, listener: HttpListener) -> None:
        self.listener = listener
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.timers: list[asyncio.TimerHandle] = []
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, don't check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        listener = self.listener
        if len(listener.connections) >= listener.max_connections:
            transport.abort()
            return
        listener.connections.add(self)
        loop = listener.loop
        self.timers = [
            loop.call_later(listener.request_timeout, self._request_timeout),
            loop.call_later(listener.connection_timeout, transport.abort),
        ]

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connections.discard(self)
        for timer in self.timers:
            timer.cancel()
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.answered:
            return  # a body, or a second request: never read
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_REQUEST_HEAD:
                self._answer(_text(431, "request head too large"), False)
            return
        if end > MAX_REQUEST_HEAD:
            self._answer(_text(431, "request head too large"), False)
            return
        parsed = parse_head(self.buffer[:end], self.listener.loopback)
        self.buffer = b""
        if isinstance(parsed, Response):
            self._answer(parsed, False)
            return
        self._answer(self.listener.dispatch(parsed), parsed.method == "HEAD")

    def _request_timeout(self) -> None:
        if not self.answered:
            self._answer(_text(408, "request not received in time"), False)

    def _answer(self, response: Response, head_only: bool) -> None:
        self.answered = True
        self.timers[0].cancel()
        transport = self.transport
        assert transport is not None
        if transport.is_closing():
            return
        transport.write(render(response, head_only))
        transport.close()  # after the answer has gone out; the deadline still applies


class HttpListener:
    """A bound listening socket and its route table (``path -> Route``).

    Bind in the constructor (so a busy port is an error at once), then
    :meth:`start` on the serving loop and :meth:`close` when the server stops.
    """

    def __init__(self, host: str, port: int, log_error: Callable[[str], None]) -> None:
        self.routes: dict[str, Route] = {}
        self.request_timeout = REQUEST_TIMEOUT
        self.connection_timeout = CONNECTION_TIMEOUT
        self.max_connections = MAX_CONNECTIONS
        self.connections: set[_HttpConnection] = set()
        self.log_error = log_error
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
        except OSError as e:
            raise HttpListenError(e.errno, e.strerror or str(e)) from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise HttpListenError(e.errno, e.strerror or str(e)) from None
        except BaseException:
            sock.close()
            raise
        self.socket = sock
        self.address: tuple[str, int] = sock.getsockname()[:2]
        #: Bound to 127.0.0.0/8 or ::1: answer only requests addressed to localhost.
        self.loopback = ipaddress.ip_address(self.address[0]).is_loopback
        self._server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        return self.address[1]

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._server = await loop.create_server(lambda: _HttpConnection(self), sock=self.socket)

    def dispatch(self, request: Request) -> Response:
        route = self.routes.get(request.path)
        if route is None:
            return _text(404, "not found")
        try:
            return route(request)
        except Exception as e:
            self.log_error("HTTP %s failed: %r" % (request.path, e))
            return _text(500, "internal error")

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        else:
            self.socket.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
