"""Requests of the text admin protocol (``status``, ``workers``, ...).

A request is sent with :meth:`gear.Connection.sendAdminRequest`; the reply
lands in :attr:`AdminRequest.response` as raw bytes, terminator included.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from gear.util import convert_to_bytes

if TYPE_CHECKING:
    from gear.connection import Connection

__all__ = [
    "AdminRequest",
    "StatusAdminRequest",
    "ShowJobsAdminRequest",
    "ShowUniqueJobsAdminRequest",
    "CancelJobAdminRequest",
    "VersionAdminRequest",
    "WorkersAdminRequest",
    "ServerAdminRequest",
]

_ERR = b"ERR "


class AdminRequest:
    """Base class of admin requests; subclasses set ``command``.

    The base parsing rule reads a multi-line reply ending in a line holding a
    single ``.``. Unlike gear 0.16, a single ``ERR ...`` line also completes
    a multi-line request, so a server that refuses a command does not leave
    the caller waiting for its timeout.
    """

    command: bytes = b""
    arguments: tuple[bytes, ...] = ()
    response: bytes | None = None

    def __init__(self, *arguments: str | bytes) -> None:
        if type(self) is AdminRequest:
            raise NotImplementedError("AdminRequest must be subclassed")
        self.wait_event = threading.Event()
        self.arguments = tuple(convert_to_bytes(a) for a in arguments)
        self.response = None
        self._scan = 0

    def __repr__(self) -> str:
        return "<gear.AdminRequest 0x%x command: %s>" % (id(self), self.command.decode("utf8"))

    def getCommand(self) -> bytes:
        """Return the line to send, with its newline."""
        command = self.command
        if self.arguments:
            command += b" " + b" ".join(self.arguments)
        return command + b"\n"

    def isComplete(self, data: bytes) -> tuple[bool, bytes | None]:
        """Check a growing reply; return ``(True, rest)`` once it is whole.

        The start of ``data`` is checked on every call, not only the first:
        an empty listing may arrive a byte at a time (``.`` then ``\\n``).
        """
        for lone in (b".\n", b".\r\n"):
            if data.startswith(lone):
                self.response = data[: len(lone)]
                return True, data[len(lone) :]
        if data.startswith(_ERR):
            end = data.find(b"\n")
            if end >= 0:
                self.response = data[: end + 1]
                return True, data[end + 1 :]
        best: tuple[int, int] | None = None
        start = max(self._scan - 4, 0)
        for terminator in (b"\n.\n", b"\r\n.\r\n"):
            found = data.find(terminator, start)
            if found >= 0 and (best is None or found < best[0]):
                best = (found, found + len(terminator))
        if best is None:
            self._scan = max(len(data), 1)
            return False, None
        self.response = data[: best[1]]
        return True, data[best[1] :]

    def setComplete(self) -> None:
        self.wait_event.set()

    def waitForResponse(self, timeout: float | None = None) -> bool:
        """Block until the reply is in; False if ``timeout`` ran out."""
        self.wait_event.wait(timeout)
        return self.wait_event.is_set()


class _SingleLineAdminRequest(AdminRequest):
    def isComplete(self, data: bytes) -> tuple[bool, bytes | None]:
        end = data.find(b"\n")
        if end < 0:
            return False, None
        self.response = data[: end + 1]
        return True, data[end + 1 :]


class StatusAdminRequest(AdminRequest):
    """``status``: per function, queued+running total, running and workers."""

    command = b"status"

    def __init__(self) -> None:
        super().__init__()


class ShowJobsAdminRequest(AdminRequest):
    """``show jobs``: every job the server holds."""

    command = b"show jobs"

    def __init__(self) -> None:
        super().__init__()


class ShowUniqueJobsAdminRequest(AdminRequest):
    """``show unique jobs``: the unique id of every job."""

    command = b"show unique jobs"

    def __init__(self) -> None:
        super().__init__()


class CancelJobAdminRequest(_SingleLineAdminRequest):
    """``cancel job HANDLE``: remove a queued job; ``OK`` or ``ERR ...``."""

    command = b"cancel job"

    def __init__(self, handle: str | bytes) -> None:
        super().__init__(handle)


class VersionAdminRequest(_SingleLineAdminRequest):
    """``version``: the server's version line."""

    command = b"version"

    def __init__(self) -> None:
        super().__init__()


class WorkersAdminRequest(AdminRequest):
    """``workers``: every connection with its client id and functions."""

    command = b"workers"

    def __init__(self) -> None:
        super().__init__()


class ServerAdminRequest(AdminRequest):
    """One admin line received by a server; ``command`` is the line."""

    def __init__(self, connection: Connection) -> None:
        super().__init__()
        self.connection = connection

    def isComplete(self, data: bytes) -> tuple[bool, bytes | None]:
        end = data.find(b"\n")
        if end < 0:
            return False, None
        self.command = data[:end].rstrip(b"\r")
        return True, data[end + 1 :]
