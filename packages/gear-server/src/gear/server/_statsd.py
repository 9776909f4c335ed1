"""A minimal statsd UDP client, used when the ``statsd`` package is absent.

It speaks the plain statsd line protocol (``name:value|c``), enough for the
counters and gauges the server reports, so metrics work without an extra
dependency; with ``gear-server[statsd]`` installed the real client is used.
"""

from __future__ import annotations

import socket
from typing import cast

from gear.server.stats import StatsClientLike

__all__ = ["StatsClient", "StatsClientLike", "make_statsd"]


class StatsClient:
    """Fire-and-forget statsd sender over UDP."""

    def __init__(self, host: str = "localhost", port: int = 8125, prefix: str | None = None):
        self._prefix = prefix + "." if prefix else ""
        family, _, _, _, addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
        self._addr = addr
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def _send(self, line: str) -> None:
        try:
            self._sock.sendto((self._prefix + line).encode(), self._addr)
        except OSError:
            pass

    def incr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        self._send("%s:%d|c" % (stat, count))

    def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> None:
        self._send("%s:%s|g" % (stat, value))

    def timing(self, stat: str, delta: float, rate: float = 1) -> None:
        self._send("%s:%0.6f|ms" % (stat, delta))

    def close(self) -> None:
        self._sock.close()


def make_statsd(host: str, port: int, prefix: str | None) -> StatsClientLike:
    """The ``statsd`` package's client when installed, else the built-in one."""
    import gear

    module = getattr(gear, "statsd", None)
    if module is not None:
        return cast(StatsClientLike, module.StatsClient(host, port, prefix))
    return StatsClient(host, port, prefix)
