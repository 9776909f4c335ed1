"""The job :meth:`gear.AsyncClient.submit` returns: awaitable, with an update stream.

:class:`AsyncJob` keeps the attributes of :class:`gear.Job` up to date
(through :mod:`gear.client.protocol`, as the threaded job does) and adds
what only an event loop has: a future for the end of the job and a
per-reader position in its WORK_DATA / WORK_WARNING / WORK_STATUS stream.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from gear.errors import (
    DisconnectError,
    GearmanError,
    JobExceptionError,
    JobFailedError,
    RemoteError,
    TimeoutError,
)
from gear.hooks import Hooks, JobOutcome, call_hook
from gear.job import BaseJob
from gear.payload import parse_exception_payload

if TYPE_CHECKING:
    from gear._aio import AsyncConnection

__all__ = ["AsyncJob", "WorkUpdate"]


class WorkUpdate(NamedTuple):
    """One WORK_DATA, WORK_WARNING or WORK_STATUS packet of a running job.

    ``data`` is the payload (empty for status); ``numerator`` and
    ``denominator`` are set for status only (None if a worker sent
    something that is not a whole number).
    """

    kind: Literal["data", "warning", "status"]
    data: bytes
    numerator: int | None = None
    denominator: int | None = None


class AsyncJob(BaseJob):
    """A job submitted by :meth:`gear.AsyncClient.submit`.

    ``await job`` (or ``await job.result(timeout)``) gives the WORK_COMPLETE
    payload; ``async for update in job`` yields each :class:`WorkUpdate`
    until the job ends. The attributes of :class:`gear.Job` (``data``,
    ``complete``, ``failure``, ``exception``, ``warning``, ``numerator``,
    ``denominator``, ``fraction_complete``, ``known``, ``running``) are kept
    up to date too, by the same code that updates threaded jobs; ``name``
    (str), ``arguments`` (bytes, as sent) and ``unique`` are those of
    :class:`gear.BaseJob`.

    With ``keep_updates=False`` (see :meth:`~gear.AsyncClient.submit`) the
    job keeps no history: ``updates`` stays empty, ``data`` holds only the
    result, and ``async for`` yields the updates that arrive while it runs.
    """

    def __init__(
        self,
        name: str | bytes,
        arguments: bytes | bytearray,
        unique: str | bytes | None = None,
        *,
        keep_updates: bool = True,
    ) -> None:
        super().__init__(name, arguments, unique)
        self.data: list[bytes] = []
        self.exception: bytes | None = None
        self.warning = False
        self.complete = False
        self.failure = False
        self.numerator: bytes | None = None
        self.denominator: bytes | None = None
        self.fraction_complete: float | None = None
        self.known: bool | None = None
        self.running: bool | None = None
        self.background = False
        self.lost = False
        self.result_data: bytes | None = None
        self.keep_updates = keep_updates
        self.updates: list[WorkUpdate] = []
        self._conn: AsyncConnection | None = None
        self._end: asyncio.Future[None] | None = None
        self._pulse: asyncio.Event | None = None
        self._total = 0
        self._recent: deque[WorkUpdate] = deque()
        self._readers: weakref.WeakSet[_Updates] = weakref.WeakSet()
        self._slot: Callable[[], None] | None = None
        self._hooks: Hooks | None = None
        self._submitted = 0.0

    def __repr__(self) -> str:
        return "<gear.AsyncJob 0x%x handle: %r name: %s>" % (id(self), self.handle, self.name)

    @property
    def done(self) -> bool:
        """True once the job ended or its server connection was lost."""
        return self._end is not None and self._end.done()

    def __await__(self) -> Generator[Any, None, bytes]:
        return self.result().__await__()

    async def result(self, timeout: float | None = None) -> bytes:
        """Wait for the end of the job and return its WORK_COMPLETE payload.

        Raises :class:`gear.JobExceptionError` on WORK_EXCEPTION (its
        ``exception`` is the payload) and :class:`gear.JobFailedError` on
        WORK_FAIL, :class:`gear.DisconnectError` if the server connection
        was lost first, :class:`gear.TimeoutError` after ``timeout`` seconds
        and :class:`gear.GearmanError` for a background job, which has no
        result. Cancelling the waiting task leaves the job (and connection)
        intact.
        """
        if self.background:
            raise GearmanError("Background job %r sends no result to wait for" % (self.handle,))
        end = self._end
        if end is None:
            raise GearmanError("Job %r has not been submitted" % (self,))
        if not end.done():
            try:
                await asyncio.wait_for(asyncio.shield(end), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    "Job %r did not finish within %s seconds" % (self.handle, timeout)
                ) from None
        if self.lost:
            raise DisconnectError(
                "Lost the connection to the server of job %r before it finished" % (self.handle,)
            )
        if self.failure:
            if self.exception is not None:
                remote = parse_exception_payload(self.exception)
                if remote is not None:
                    raise RemoteError(*remote, self.exception)
                raise JobExceptionError(
                    "Job %r raised an exception: %s"
                    % (self.handle, self.exception.decode("utf8", "replace")),
                    self.exception,
                )
            raise JobFailedError("Job %r failed (WORK_FAIL)" % (self.handle,))
        return self.result_data or b""

    def __aiter__(self) -> _Updates:
        return _Updates(self)

    def _push(self, update: WorkUpdate) -> None:
        if self.keep_updates:
            self.updates.append(update)
        elif self._readers:
            self._recent.append(update)
        else:
            self._recent.clear()
        self._total += 1
        self._notify()

    def _update_at(self, position: int) -> WorkUpdate:
        if self.keep_updates:
            return self.updates[position]
        return self._recent[position - (self._total - len(self._recent))]

    def _trim(self) -> None:
        """Drop the updates every reader has seen (``keep_updates=False`` only)."""
        if self.keep_updates:
            return
        oldest = min((reader.position for reader in self._readers), default=self._total)
        first = self._total - len(self._recent)
        for _ in range(oldest - first):
            self._recent.popleft()

    def _notify(self) -> None:
        pulse = self._pulse
        if pulse is not None:
            self._pulse = None
            pulse.set()

    def _free_slot(self) -> None:
        slot = self._slot
        if slot is not None:
            self._slot = None
            slot()

    def _finish(self, lost: bool = False) -> None:
        self.lost = lost
        if self._end is not None and not self._end.done():
            self._end.set_result(None)
        self._free_slot()
        self._notify()
        hooks = self._hooks
        if hooks is not None and self._conn is not None:
            self._hooks = None
            outcome: JobOutcome
            if lost:
                outcome = "lost"
            elif self.failure:
                outcome = "exception" if self.exception is not None else "fail"
            else:
                outcome = "complete"
            seconds = self._conn.loop.time() - self._submitted
            call_hook(self._conn.owner.log, hooks.on_job_end, self, outcome, seconds)


class _Updates:
    """One ``async for`` over a job's updates; each reader has its own position."""

    def __init__(self, job: AsyncJob) -> None:
        self.job = job
        self.position = 0 if job.keep_updates else job._total
        job._readers.add(self)

    def __aiter__(self) -> _Updates:
        return self

    async def __anext__(self) -> WorkUpdate:
        job = self.job
        while True:
            if self.position < job._total:
                update = job._update_at(self.position)
                self.position += 1
                job._trim()
                return update
            if job._end is None or job._end.done():
                job._readers.discard(self)
                raise StopAsyncIteration
            if job._pulse is None:
                job._pulse = asyncio.Event()
            await job._pulse.wait()


AsyncJob.__module__ = "gear.client"
WorkUpdate.__module__ = "gear.client"
