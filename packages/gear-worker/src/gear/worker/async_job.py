"""The job an :class:`gear.AsyncWorker` hands to a function, and what a handler is.

:class:`AsyncWorkerJob`'s reporting methods queue WORK_* packets (built by
:mod:`gear.worker.protocol`) on the job's connection; the first one that
ends the job frees its place for the next.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Literal

from gear import constants
from gear._aio import AsyncConnection
from gear.codec import encode_packet
from gear.errors import (
    DisconnectError,
    GearmanError,
)
from gear.hooks import JobOutcome
from gear.job import BaseJob
from gear.worker import protocol

__all__ = ["AsyncWorkerJob", "Handler", "HandlerResult", "OnCancel"]

_REQ = constants.REQ


#: What a handler may return: the WORK_COMPLETE payload (str is sent as
#: UTF-8, None as empty).
HandlerResult = bytes | bytearray | str | None

#: A :meth:`AsyncWorker.serve` handler: its return value becomes the
#: WORK_COMPLETE payload unless it ended the job itself.
Handler = Callable[["AsyncWorkerJob"], Awaitable[HandlerResult]]

#: What :meth:`AsyncWorker.serve` does with running jobs when it is cancelled.
OnCancel = Literal["requeue", "fail"]

_OUTCOMES: dict[int, JobOutcome] = {
    constants.WORK_COMPLETE: "complete",
    constants.WORK_FAIL: "fail",
    constants.WORK_EXCEPTION: "exception",
}


def _as_bytes(data: bytes | bytearray | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf8")
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("work data must be bytes, bytearray or str, not %s" % type(data).__name__)
    return bytes(data)


class AsyncWorkerJob(BaseJob):
    """A job assigned to an :class:`gear.AsyncWorker`.

    The reporting methods are plain (not ``async``): each queues one packet
    on the job's connection, and queued packets are written once per event
    loop turn, so there is nothing to wait for. They raise
    :class:`gear.DisconnectError` if that connection is gone (the server then
    hands the job to another worker). ``ended`` becomes True after
    :meth:`complete`, :meth:`fail` or :meth:`exception`. ``name`` (str),
    ``arguments`` (bytes, as the client sent them) and ``unique`` are those
    of :class:`gear.BaseJob`.
    """

    def __init__(
        self,
        handle: bytes,
        name: str | bytes,
        arguments: bytes | bytearray,
        unique: str | bytes | None,
        conn: AsyncConnection,
    ) -> None:
        super().__init__(name, arguments, unique, handle)
        self._conn = conn
        self._handle = handle
        self._thread = threading.get_ident()
        self.ended = False
        #: How the job ended: ``"complete"``, ``"fail"``, ``"exception"``
        #: (``None`` while it runs, or when the worker let go of it).
        self.outcome: JobOutcome | None = None

    def __repr__(self) -> str:
        return "<gear.AsyncWorkerJob 0x%x handle: %r name: %s>" % (
            id(self),
            self.handle,
            self.name,
        )

    def _send(self, ptype: int, data: bytes | None) -> None:
        packet = encode_packet(_REQ, ptype, protocol.work_payload(self._handle, data))
        if threading.get_ident() == self._thread:
            self._conn.send(packet)
        else:
            # A plain ``def`` handler reports from its executor thread.
            self._conn.loop.call_soon_threadsafe(self._send_soon, packet)

    def _send_soon(self, packet: bytes) -> None:
        try:
            self._conn.send(packet)
        except DisconnectError:
            pass
        except Exception:
            self._conn.owner.log.exception("Unable to report on job %r", self.handle)

    def _end(self, ptype: int, data: bytes | None) -> None:
        if self.ended:
            raise GearmanError("Job %r has already ended" % (self.handle,))
        self._send(ptype, data)
        self.ended = True
        self.outcome = _OUTCOMES[ptype]

    def send_data(self, data: bytes | bytearray | str = b"") -> None:
        """Send a WORK_DATA chunk (str is sent as UTF-8)."""
        self._send(constants.WORK_DATA, _as_bytes(data))

    def send_warning(self, data: bytes | bytearray | str = b"") -> None:
        """Send a WORK_WARNING chunk."""
        self._send(constants.WORK_WARNING, _as_bytes(data))

    def send_status(self, numerator: int | bytes | str, denominator: int | bytes | str) -> None:
        """Send WORK_STATUS: ``numerator`` of ``denominator`` done."""
        self._send(constants.WORK_STATUS, protocol.status_data(numerator, denominator))

    def complete(self, data: bytes | bytearray | str = b"") -> None:
        """End the job successfully with WORK_COMPLETE and ``data`` as the result."""
        self._end(constants.WORK_COMPLETE, _as_bytes(data))

    def fail(self) -> None:
        """End the job with WORK_FAIL."""
        self._end(constants.WORK_FAIL, None)

    def exception(self, data: bytes | bytearray | str = b"") -> None:
        """End the job with WORK_EXCEPTION carrying ``data``.

        Clients that did not set the ``exceptions`` option get a WORK_FAIL
        from the server instead.
        """
        self._end(constants.WORK_EXCEPTION, _as_bytes(data))


AsyncWorkerJob.__module__ = "gear.worker"
