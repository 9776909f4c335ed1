"""Why a server could not be reached, in words a person can act on.

The threaded and asyncio faces both dial servers in the background and
retry. :class:`ConnectFailures` remembers the last reason per server, logs it
at WARNING when it changes (not on every retry) and phrases it for the error
a waiting caller gets: ``127.0.0.1:4730: connection refused``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections.abc import Iterable

__all__ = ["ConnectFailures", "check_tls_files_readable", "describe", "server_address"]


def server_address(host: str | None, port: int | str) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    text = str(host)
    if ":" in text:
        text = "[%s]" % (text,)
    return "%s:%s" % (text, port)


def check_tls_files_readable(*paths: str) -> None:
    """Raise :class:`OSError` naming the first file that cannot be opened.

    The ssl module reports a missing certificate as a bare "No such file or
    directory"; opening each file first gets its name into the error.
    """
    for path in paths:
        with open(path, "rb"):
            pass


def describe(error: BaseException, timeout: float | None = None) -> str:
    """One short lower-case reason for a failed connection attempt."""
    cause = error
    while cause.__cause__ is not None and not isinstance(cause, (OSError, ssl.SSLError)):
        cause = cause.__cause__
    if isinstance(cause, OSError) and cause.__cause__ is not None and cause.errno is None:
        cause = cause.__cause__
    if isinstance(cause, socket.gaierror):
        return _lower(cause.strerror or str(cause))
    if isinstance(cause, ssl.SSLCertVerificationError):
        return "TLS handshake failed: %s" % (cause.verify_message or cause.reason or cause,)
    if isinstance(cause, ssl.SSLError):
        return "TLS failed: %s" % (_lower(str(cause.reason or cause)),)
    if isinstance(cause, asyncio.TimeoutError) or (
        isinstance(cause, TimeoutError) and not cause.errno
    ):
        if timeout is None:
            return "timed out"
        return "no answer within %g seconds" % (timeout,)
    if isinstance(cause, OSError):
        if cause.errno is not None and cause.errno > 0:
            reason = _lower(os.strerror(cause.errno))
        else:
            reason = _lower(cause.strerror or str(cause))
        if cause.filename is not None:
            return "%s: %s" % (cause.filename, reason)
        return reason
    return str(cause) or type(cause).__name__


_PENDING = "no connection attempt has finished yet"


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


class ConnectFailures:
    """The last connect failure per server (by its ``host:port``)."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._causes: dict[str, str] = {}

    def failed(self, address: str, cause: str) -> None:
        """Record ``cause``; log it at WARNING if it is new for this server."""
        if self._causes.get(address) != cause:
            self.log.warning("Unable to connect to %s: %s (will retry)", address, cause)
        self._causes[address] = cause

    def gave_up(self, address: str, attempts: int) -> None:
        cause = self._causes.get(address, "unknown error")
        self.log.warning(
            "Giving up on %s after %d failed attempts; last error: %s", address, attempts, cause
        )

    def connected(self, address: str) -> None:
        """Forget the server's cause; say so if it had been failing."""
        if self._causes.pop(address, None) is not None:
            self.log.info("Connected to %s", address)

    def cause(self, address: str) -> str | None:
        return self._causes.get(address)

    def causes(self, addresses: Iterable[str], pending: str = _PENDING) -> dict[str, str]:
        """Each of ``addresses`` with its last cause (``pending`` when none is known)."""
        return {a: self._causes.get(a, pending) for a in addresses}

    def summary(self, addresses: Iterable[str], pending: str = _PENDING) -> str:
        """``"a:1: connection refused; b:2: ..."``, or a note that no server was added."""
        causes = self.causes(addresses, pending)
        if not causes:
            return "no server was added"
        return "; ".join("%s: %s" % item for item in causes.items())
