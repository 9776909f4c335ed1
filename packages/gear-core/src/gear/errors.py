"""Every exception gear raises.

The names and the flat hierarchy (each derives from :class:`Exception`) are
those of gear 0.16, so ``except gear.TimeoutError`` keeps working. The names
that collide with builtins also derive from the builtin, so ``except
TimeoutError`` catches :class:`gear.TimeoutError` too.

:class:`ProtocolError` is new: :class:`LocalProtocolError` means this side
misused the protocol, :class:`RemoteProtocolError` means the peer sent bytes
that are not valid Gearman.
"""

import builtins
from collections.abc import Mapping
from typing import ClassVar

__all__ = [
    "GearmanError",
    "ConnectionError",
    "InvalidDataError",
    "ConfigurationError",
    "NoConnectedServersError",
    "UnknownJobError",
    "InterruptedError",
    "TimeoutError",
    "DisconnectError",
    "RetryIOError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "BadMagicError",
    "PacketTooLargeError",
    "LineTooLongError",
    "InvalidArgumentsError",
    "JobFailedError",
    "JobExceptionError",
    "RemoteError",
]


class GearmanError(Exception):
    """A request was not accepted by any server, or a reply did not match."""


class ConnectionError(builtins.ConnectionError):
    """No connection to a Gearman server could be opened or kept."""


class InvalidDataError(Exception):
    """Data given to gear is not valid for the operation."""


class ConfigurationError(Exception):
    """The object was configured in a way that cannot work."""


class NoConnectedServersError(Exception):
    """There is no connected server to send a request to.

    ``errors`` maps each server (``"host:port"``) to the last reason it could
    not be reached, when that is known; the message names them too.
    """

    def __init__(self, message: str, errors: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.errors: dict[str, str] = dict(errors or {})


class UnknownJobError(Exception):
    """A packet names a job handle this side does not know."""


class InterruptedError(builtins.InterruptedError):
    """A blocking wait was interrupted by ``stopWaitingForJobs`` or shutdown."""


class TimeoutError(builtins.TimeoutError):
    """A blocking wait ran out of time."""


class DisconnectError(Exception):
    """The peer closed the connection."""


class RetryIOError(Exception):
    """A non-blocking read or write would block; try again when ready."""


class ProtocolError(Exception):
    """Bytes on the wire broke the Gearman protocol."""


class LocalProtocolError(ProtocolError):
    """This side tried to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that is not valid Gearman.

    The connection it came on cannot be trusted to stay in sync and should be
    closed; other connections are unaffected. ``code`` is the error code a
    server answers with (the first argument of an ERROR packet), so callers
    tell errors apart by class or code, never by message text.
    """

    code: ClassVar[str] = "INVALID_ARGUMENTS"


class BadMagicError(RemoteProtocolError):
    """A binary packet started with something other than ``\\0REQ`` or ``\\0RES``."""

    code: ClassVar[str] = "BAD_MAGIC"


class PacketTooLargeError(RemoteProtocolError):
    """A packet header declared a payload over the decoder's limit."""

    code: ClassVar[str] = "PACKET_TOO_LARGE"


class LineTooLongError(RemoteProtocolError):
    """An admin text line ran past the decoder's limit without a newline."""

    code: ClassVar[str] = "LINE_TOO_LONG"


class InvalidArgumentsError(RemoteProtocolError):
    """A packet's payload does not hold the arguments its type needs."""

    code: ClassVar[str] = "INVALID_ARGUMENTS"


class JobFailedError(GearmanError):
    """A job ended with WORK_FAIL or WORK_EXCEPTION.

    ``exception`` holds the WORK_EXCEPTION payload, or ``None`` for WORK_FAIL.
    """

    def __init__(self, message: str, exception: bytes | None = None) -> None:
        super().__init__(message)
        self.exception = exception


class JobExceptionError(JobFailedError):
    """A job ended with WORK_EXCEPTION; ``exception`` holds its payload (bytes).

    A kind of :class:`JobFailedError`, so code that catches every failed job
    keeps working.
    """

    exception: bytes

    def __init__(self, message: str, exception: bytes) -> None:
        super().__init__(message, exception)


class RemoteError(JobExceptionError):
    """A handler raised, and its worker sent the structured WORK_EXCEPTION payload.

    ``type_name`` is the remote exception's class (``"ValueError"``,
    ``"myapp.errors.QuotaExceeded"``) and ``message`` its text; the remote
    class itself is never imported or rebuilt here. ``exception`` holds the
    raw payload (see :mod:`gear.payload` for its format). A kind of
    :class:`JobExceptionError`, so code catching that keeps working.
    """

    def __init__(self, type_name: str, message: str, exception: bytes = b"") -> None:
        super().__init__("%s: %s" % (type_name, message) if message else type_name, exception)
        self.type_name = type_name
        self.message = message

    def __reduce__(self) -> tuple[type["RemoteError"], tuple[str, str, bytes]]:
        return type(self), (self.type_name, self.message, self.exception)
