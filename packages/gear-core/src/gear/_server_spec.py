"""What ``addServer`` and ``add_server`` were given, checked in one place.

The threaded and the asyncio faces take the same server options; they share
this record and its checks, and differ only in how they dial.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

from gear._connect_errors import server_address
from gear.errors import ConfigurationError
from gear.tls import check_tls_files

__all__ = ["ServerSpec", "ServerOptions", "ServerEntry", "server_options"]


class _ServerHost(TypedDict):
    host: str


class ServerOptions(_ServerHost, total=False):
    """One entry of ``servers=``: the keyword arguments of ``add_server``."""

    port: int | str
    ssl_key: str | None
    ssl_cert: str | None
    ssl_ca: str | None
    keepalive: bool
    tcp_keepidle: int
    tcp_keepintvl: int
    tcp_keepcnt: int


#: A server as ``servers=`` takes it: ``"host"``, ``"host:4730"``,
#: ``"[::1]:4730"``, ``("host", 4730)`` or a :class:`ServerOptions` dict.
ServerEntry = str | tuple[str, int | str] | ServerOptions


def server_options(entry: ServerEntry) -> ServerOptions:
    """Turn one ``servers=`` entry into ``add_server`` keyword arguments."""
    if isinstance(entry, dict):
        if "host" not in entry:
            raise ConfigurationError("A server entry needs a host: %r" % (entry,))
        unknown = set(entry) - ServerOptions.__required_keys__ - ServerOptions.__optional_keys__
        if unknown:
            raise ConfigurationError(
                "Unknown server option(s) %s in %r" % (", ".join(sorted(unknown)), entry)
            )
        return entry
    if isinstance(entry, tuple):
        if len(entry) != 2:
            raise ConfigurationError("A server tuple is (host, port), not %r" % (entry,))
        return {"host": entry[0], "port": entry[1]}
    if not isinstance(entry, str):
        raise ConfigurationError("Unknown server entry %r" % (entry,))
    text = entry.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigurationError("Bad server address %r" % (entry,))
        return {"host": host, "port": rest[1:]} if rest else {"host": host}
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return {"host": host, "port": port}
    return {"host": text}


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
        if not self.host or not isinstance(self.host, str):
            raise ConfigurationError("A server needs a host name, not %r" % (self.host,))
        check_port(self.port)
        try:
            check_tls_files(self.ssl_key, self.ssl_cert, self.ssl_ca)
        except ValueError as e:
            raise ConfigurationError(str(e)) from None

    @property
    def address(self) -> str:
        """``host:port`` as errors and logs name the server."""
        return server_address(self.host, self.port)

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


def check_port(port: object) -> int:
    """Return ``port`` as an int; raise :class:`gear.ConfigurationError` unless it is 0-65535.

    ``"4730"`` is accepted; ``"gear"``, ``4730.5`` or ``True`` are not, so a
    typo fails where it is made instead of in the background connect loop.
    Port 0 is accepted, as gear 0.16 did (its own tests use it for a server
    that never answers); connecting to it fails and names the cause.
    """
    value: int | None = None
    if isinstance(port, int) and not isinstance(port, bool):
        value = port
    elif isinstance(port, str) and port.strip().isdigit():
        value = int(port)
    if value is None:
        raise ConfigurationError("The port must be an integer, not %r" % (port,))
    if not 0 <= value < 65536:
        raise ConfigurationError("The port must be between 0 and 65535, not %d" % (value,))
    return value


def _port_key(port: int | str) -> int | str:
    """A port number as an int."""
    if isinstance(port, str) and port.strip().isdigit():
        return int(port)
    return port
