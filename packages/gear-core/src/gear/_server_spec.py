"""What ``addServer`` and ``add_server`` were given, checked in one place.

The threaded and the asyncio faces take the same server options; they share
this record and its checks, and differ only in how they dial.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gear.errors import ConfigurationError
from gear.tls import check_tls_files

__all__ = ["ServerSpec"]


@dataclass(frozen=True)
class ServerSpec:
    """One server's address, TLS files and keepalive options, as given."""

    host: str
    port: int | str
    ssl_key: str | None = None
    ssl_cert: str | None = None
    ssl_ca: str | None = None
    keepalive: bool = False
    tcp_keepidle: int = 7200
    tcp_keepintvl: int = 75
    tcp_keepcnt: int = 9

    def __post_init__(self) -> None:
        try:
            check_tls_files(self.ssl_key, self.ssl_cert, self.ssl_ca)
        except ValueError as e:
            raise ConfigurationError(str(e)) from None

    @property
    def ssl_files(self) -> tuple[str, str, str] | None:
        """``(key, cert, ca)`` when all three are given: TLS is used only then."""
        if self.ssl_key and self.ssl_cert and self.ssl_ca:
            return (self.ssl_key, self.ssl_cert, self.ssl_ca)
        return None

    @property
    def keepalive_timings(self) -> tuple[int, int, int] | None:
        """``(idle, interval, count)`` when keepalive is on, else None."""
        if self.keepalive:
            return (self.tcp_keepidle, self.tcp_keepintvl, self.tcp_keepcnt)
        return None

    def check_new(self, added: Iterable[tuple[str | None, int | str]]) -> None:
        """Raise :class:`gear.ConfigurationError` if ``(host, port)`` is among ``added``.

        ``4730`` and ``"4730"`` are the same port.
        """
        key = (self.host, _port_key(self.port))
        for host, port in added:
            if (host, _port_key(port)) == key:
                raise ConfigurationError("Host/port already specified")


def _port_key(port: int | str) -> int | str:
    """A port number as an int; a service name (``"gearman"``) as given."""
    if isinstance(port, str) and port.strip().isdigit():
        return int(port)
    return port
