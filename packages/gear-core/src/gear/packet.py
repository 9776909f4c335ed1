"""The :class:`Packet`: one binary Gearman packet as user code sees it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gear import constants
from gear.codec import _HEADER
from gear.errors import InvalidDataError, UnknownJobError

if TYPE_CHECKING:
    from gear.connection import Connection
    from gear.job import BaseJob

__all__ = ["Packet"]

_HANDLE_FIRST = frozenset(
    {
        constants.JOB_CREATED,
        constants.WORK_STATUS,
        constants.WORK_COMPLETE,
        constants.WORK_FAIL,
        constants.WORK_EXCEPTION,
        constants.WORK_DATA,
        constants.WORK_WARNING,
        constants.GET_STATUS,
        constants.STATUS_RES,
        constants.JOB_ASSIGN,
        constants.JOB_ASSIGN_UNIQ,
        constants.JOB_ASSIGN_ALL,
    }
)
_SUBMITS = frozenset(
    {
        constants.SUBMIT_JOB,
        constants.SUBMIT_JOB_BG,
        constants.SUBMIT_JOB_HIGH,
        constants.SUBMIT_JOB_HIGH_BG,
        constants.SUBMIT_JOB_LOW,
        constants.SUBMIT_JOB_LOW_BG,
        constants.SUBMIT_JOB_SCHED,
        constants.SUBMIT_JOB_EPOCH,
        constants.SUBMIT_REDUCE_JOB,
        constants.SUBMIT_REDUCE_JOB_BACKGROUND,
    }
)
_FUNCTION_ONLY = frozenset({constants.CAN_DO, constants.CANT_DO, constants.CAN_DO_TIMEOUT})


class Packet:
    """A binary packet: magic ``code``, type ``ptype`` and payload ``data``.

    ``connection`` is the connection it arrived on, if any. Instances take
    extra attributes, as gear 0.16's did (code that tags packets, or stubs
    ``getJob`` in tests, keeps working); the four fields stay slots.
    """

    __slots__ = ("__dict__", "code", "connection", "data", "ptype")

    def __init__(
        self,
        code: bytes | bytearray,
        ptype: int,
        data: bytes | bytearray,
        connection: Connection | None = None,
    ) -> None:
        if not isinstance(code, (bytes, bytearray)):
            raise TypeError("code must be of type bytes or bytearray")
        if code[:1] != b"\x00":
            raise InvalidDataError("Invalid packet magic code: %r" % (bytes(code),))
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("data must be of type bytes or bytearray")
        self.code = code
        self.ptype = ptype
        self.data = data
        self.connection = connection

    def __repr__(self) -> str:
        name = constants.types.get(self.ptype, "UNKNOWN")
        extra = ""
        try:
            if self.ptype in _HANDLE_FIRST:
                extra = " handle: %s" % (self.getArgument(0).decode("utf8", "replace"),)
            elif self.ptype in _SUBMITS:
                extra = " function: %s unique: %s" % (
                    self.getArgument(0).decode("utf8", "replace"),
                    self.getArgument(1).decode("utf8", "replace"),
                )
            elif self.ptype in _FUNCTION_ONLY:
                extra = " function: %s" % (self.getArgument(0).decode("utf8", "replace"),)
            elif self.ptype == constants.ERROR:
                extra = " code: %s message: %s" % (
                    self.getArgument(0).decode("utf8", "replace"),
                    self.getArgument(1, True).decode("utf8", "replace"),
                )
        except IndexError:
            pass
        return "<gear.Packet 0x%x type: %s%s>" % (id(self), name, extra)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return (self.code, self.ptype, self.data) == (other.code, other.ptype, other.data)

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def toBinary(self) -> bytearray:
        """Return the wire form of the packet."""
        out = bytearray(_HEADER.pack(bytes(self.code), self.ptype, len(self.data)))
        out += self.data
        return out

    def getArgument(self, index: int, last: bool = False) -> bytes:
        """Return NUL-separated argument ``index``; with ``last``, the rest too."""
        parts = bytes(self.data).split(b"\x00", index if last else index + 1)
        if last and index >= len(parts):
            raise IndexError("packet argument index out of range")
        return parts[index]

    def getJob(self) -> BaseJob:
        """Return the job named by argument 0 among the connection's jobs.

        On a client connection that is the :class:`gear.Job` submitted there.
        """
        handle = self.getArgument(0)
        jobs = self.connection.related_jobs if self.connection is not None else {}
        job = jobs.get(handle)
        if job is None:
            raise UnknownJobError()
        return job
