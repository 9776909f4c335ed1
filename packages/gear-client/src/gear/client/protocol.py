"""The client role's protocol logic, free of sockets and threads.

The threaded :class:`gear.Client` and the asyncio client both build their
SUBMIT packets and apply WORK_* / STATUS_RES payloads to jobs through these
functions, so both faces update jobs identically.
"""

from __future__ import annotations

from typing import Any

from gear import constants
from gear.codec import join_arguments
from gear.errors import ConfigurationError, GearmanError, RemoteProtocolError

__all__ = [
    "submit_type",
    "submit_payload",
    "apply_work_data",
    "apply_work_warning",
    "apply_work_status",
    "apply_work_complete",
    "apply_work_fail",
    "apply_work_exception",
    "apply_status",
    "status_request",
    "fraction",
    "split_handle",
    "EXCEPTIONS_PROBE",
    "ExceptionsRequest",
]

_SUBMIT_TYPES: dict[tuple[bool, int], int] = {
    (False, constants.PRECEDENCE_NORMAL): constants.SUBMIT_JOB,
    (False, constants.PRECEDENCE_LOW): constants.SUBMIT_JOB_LOW,
    (False, constants.PRECEDENCE_HIGH): constants.SUBMIT_JOB_HIGH,
    (True, constants.PRECEDENCE_NORMAL): constants.SUBMIT_JOB_BG,
    (True, constants.PRECEDENCE_LOW): constants.SUBMIT_JOB_LOW_BG,
    (True, constants.PRECEDENCE_HIGH): constants.SUBMIT_JOB_HIGH_BG,
}


def submit_type(background: bool, precedence: int) -> int:
    """Return the SUBMIT_JOB* packet type for a background flag and precedence."""
    try:
        return _SUBMIT_TYPES[(bool(background), precedence)]
    except (KeyError, TypeError):
        raise ConfigurationError("Invalid precedence value") from None


def submit_payload(job: Any) -> bytes:
    """Return ``name \\0 unique \\0 arguments``; a None unique goes out empty."""
    unique = job.binary_unique
    return join_arguments(job.binary_name, unique or b"", job.binary_arguments)


def status_request(job: Any, unique: bool, conn: Any) -> tuple[int, int, bytes]:
    """Return ``(request type, reply type, key)`` to ask for ``job``'s status.

    ``conn`` is the connection the job was submitted on, or None. Asking by
    handle needs the job submitted; asking by unique id needs one.
    """
    if unique:
        key = job.binary_unique
        if not key:
            raise GearmanError("Job %r has no unique id to ask about" % (job,))
        return constants.GET_STATUS_UNIQUE, constants.STATUS_RES_UNIQUE, key
    handle = job.handle
    if handle is None or conn is None:
        raise GearmanError("Job %r has not been submitted" % (job,))
    return constants.GET_STATUS, constants.STATUS_RES, handle


def split_handle(data: bytes | bytearray) -> tuple[bytes, bytes]:
    """Split a WORK_* payload into the handle and the rest."""
    handle, _, rest = bytes(data).partition(b"\x00")
    return handle, rest


def fraction(numerator: bytes, denominator: bytes) -> float | None:
    try:
        return float(numerator) / float(denominator)
    except Exception:
        return None


def apply_work_data(job: Any, data: bytes) -> None:
    if data:
        job.data.append(data)


def apply_work_warning(job: Any, data: bytes) -> None:
    if data:
        job.data.append(data)
    job.warning = True


def apply_work_status(job: Any, numerator: bytes, denominator: bytes) -> None:
    job.numerator = numerator
    job.denominator = denominator
    job.fraction_complete = fraction(numerator, denominator)


def apply_work_complete(job: Any, data: bytes) -> None:
    if data:
        job.data.append(data)
    job.complete = True
    job.failure = False


def apply_work_fail(job: Any) -> None:
    job.complete = True
    job.failure = True


def apply_work_exception(job: Any, data: bytes) -> None:
    job.exception = data
    job.complete = True
    job.failure = True


def apply_status(
    job: Any, known: bytes, running: bytes, numerator: bytes, denominator: bytes
) -> None:
    """Apply a STATUS_RES (or STATUS_RES_UNIQUE) reply to ``job``."""
    job.known = known == b"1"
    job.running = running == b"1"
    job.numerator = numerator
    job.denominator = denominator
    job.fraction_complete = fraction(numerator, denominator)


#: The handle asked about right after ``OPTION_REQ exceptions``. No job has
#: it; what matters is that every server answers ``GET_STATUS`` in order, so
#: its ``STATUS_RES`` closes the server's answer to the option (gear 0.16's
#: server answers ``GET_STATUS`` but never ``OPTION_REQ``).
EXCEPTIONS_PROBE = b"-gear-exceptions-probe-"


class ExceptionsRequest:
    """The ``exceptions`` option asked for on connect, and the server's answer.

    Servers forward ``WORK_EXCEPTION`` only to clients that asked for this
    option (the rest get ``WORK_FAIL``), so a client asks before it submits
    anything: send :attr:`packets`, then :meth:`feed` each reply until it
    returns True. :attr:`accepted` is then True (``OPTION_RES``), False
    (``ERROR``: the server does not know the option) or None (no answer:
    gear 0.16's server, which forwards ``WORK_EXCEPTION`` to everyone).
    """

    #: Replies :meth:`feed` takes before it calls the peer broken.
    MAX_REPLIES = 8

    packets: tuple[tuple[int, bytes], ...] = (
        (constants.OPTION_REQ, b"exceptions"),
        (constants.GET_STATUS, EXCEPTIONS_PROBE),
    )

    def __init__(self) -> None:
        self.accepted: bool | None = None
        self._replies = 0

    def feed(self, ptype: int, data: bytes) -> bool:
        """Take one reply; True once the server has answered everything."""
        self._replies += 1
        if ptype == constants.OPTION_RES and data == b"exceptions":
            self.accepted = True
        elif ptype == constants.ERROR:
            if self.accepted is not None:
                return True  # the option was answered; this refuses the probe
            self.accepted = False
        elif ptype == constants.STATUS_RES and split_handle(data)[0] == EXCEPTIONS_PROBE:
            return True
        if self._replies >= self.MAX_REPLIES:
            raise RemoteProtocolError(
                "no STATUS_RES after %d replies to OPTION_REQ exceptions" % (self._replies,)
            )
        return False
