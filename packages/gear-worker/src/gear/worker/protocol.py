"""The worker role's protocol logic, free of sockets and threads.

The grab state machine of gear 0.16's worker, one state per server
connection. Each transition returns the new state and the packet type to
send (or None); the threaded :class:`gear.Worker` and the asyncio worker
both drive it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gear import constants
from gear.errors import RemoteProtocolError
from gear.util import convert_to_bytes

if TYPE_CHECKING:
    from gear.worker.worker import FunctionRecord

__all__ = [
    "INIT",
    "IDLE",
    "GRAB_WAIT",
    "SLEEP",
    "Transition",
    "on_demand",
    "on_no_job",
    "on_noop",
    "on_assign",
    "parse_assignment",
    "can_do_packet",
    "work_payload",
    "status_data",
    "greeting",
    "GRAB_DRAIN",
    "pipelined_demand",
    "pipelined_reply",
]

INIT = "INIT"
IDLE = "IDLE"
GRAB_WAIT = "GRAB_WAIT"
SLEEP = "SLEEP"

Transition = tuple[str, int | None]


def on_demand(state: str, wanted: int) -> Transition:
    """Re-evaluate a connection when the number of wanted jobs may have changed.

    An IDLE connection asks for work when someone wants a job; when nobody
    does, any other state settles back to IDLE (except INIT, not yet greeted).
    """
    if wanted > 0:
        if state == IDLE:
            return GRAB_WAIT, constants.GRAB_JOB_UNIQ
        return state, None
    if state in (GRAB_WAIT, SLEEP):
        return IDLE, None
    return state, None


def on_no_job(state: str) -> Transition:
    if state == GRAB_WAIT:
        return SLEEP, constants.PRE_SLEEP
    return state, None


def on_noop(state: str, wanted: int) -> Transition:
    if state == SLEEP:
        if wanted > 0:
            return GRAB_WAIT, constants.GRAB_JOB_UNIQ
        return IDLE, None
    return state, None


def on_assign(state: str) -> Transition:
    return IDLE, None


def parse_assignment(ptype: int, data: bytes) -> tuple[bytes, bytes, bytes | None, bytes]:
    """Return ``(handle, name, unique or None, arguments)`` of a JOB_ASSIGN*."""
    if ptype == constants.JOB_ASSIGN_UNIQ:
        parts = data.split(b"\x00", 3)
        if len(parts) != 4:
            raise RemoteProtocolError("JOB_ASSIGN_UNIQ needs 4 arguments")
        handle, name, unique, arguments = parts
        return handle, name, unique or None, arguments
    parts = data.split(b"\x00", 2)
    if len(parts) != 3:
        raise RemoteProtocolError("JOB_ASSIGN needs 3 arguments")
    handle, name, arguments = parts
    return handle, name, None, arguments


def can_do_packet(name: bytes, timeout: int | str | bytes | None) -> tuple[int, bytes]:
    """Return the CAN_DO or CAN_DO_TIMEOUT type and payload for a function."""
    if timeout:
        if isinstance(timeout, (bytes, bytearray)):
            raw = bytes(timeout)
        else:
            raw = str(timeout).encode("ascii")
        return constants.CAN_DO_TIMEOUT, name + b"\x00" + raw
    return constants.CAN_DO, name


def greeting(
    client_id: bytes | None, functions: Iterable[FunctionRecord]
) -> list[tuple[int, bytes]]:
    """Return what a worker sends on (re)connect: SET_CLIENT_ID, then a CAN_DO per function.

    ``functions`` are :class:`gear.FunctionRecord` instances.
    """
    packets = [(constants.SET_CLIENT_ID, client_id or b"")]
    packets.extend(
        can_do_packet(convert_to_bytes(record.name), record.timeout) for record in functions
    )
    return packets


def work_payload(handle: bytes, data: bytes | bytearray | None) -> bytes:
    """Return the payload of a WORK_* packet; ``data`` None (WORK_FAIL) sends the handle alone."""
    if data is None:
        return handle
    return handle + b"\x00" + bytes(data)


def status_data(numerator: object, denominator: object) -> bytes:
    """Return the ``numerator \0 denominator`` of a WORK_STATUS (numbers as decimal text)."""
    return _number(numerator) + b"\x00" + _number(denominator)


def _number(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf8")


# Pipelined grabs (used by the asyncio worker): a connection may have several
# GRAB_JOB_UNIQ unanswered, one per job still wanted, so a worker that wants
# N jobs does not pay one server round trip per job. Servers answer grabs in
# order. After a NO_JOB the connection asks for nothing more until every
# grab is answered (GRAB_DRAIN); if the last answer was NO_JOB it then
# sleeps with PRE_SLEEP exactly as in the one-grab machine above.

GRAB_DRAIN = "GRAB_DRAIN"


def pipelined_demand(state: str, extra: int) -> tuple[str, int]:
    """Return the new state and how many more GRAB_JOB_UNIQ to send.

    ``extra`` is how many jobs this connection should ask for beyond its
    grabs already outstanding. Only IDLE and GRAB_WAIT connections ask.
    """
    if extra > 0 and state in (IDLE, GRAB_WAIT):
        return GRAB_WAIT, extra
    return state, 0


def pipelined_reply(state: str, remaining: int, no_job: bool) -> Transition:
    """Apply a JOB_ASSIGN(_UNIQ) or NO_JOB answer; ``remaining`` grabs are still unanswered."""
    if remaining > 0:
        if no_job and state in (GRAB_WAIT, GRAB_DRAIN):
            return GRAB_DRAIN, None
        return state, None
    if no_job:
        if state in (GRAB_WAIT, GRAB_DRAIN):
            return SLEEP, constants.PRE_SLEEP
        return state, None
    return IDLE, None
