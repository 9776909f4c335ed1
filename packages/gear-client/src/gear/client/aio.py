"""The asyncio client: :class:`AsyncClient` and its :class:`AsyncJob`.

A thin face over the same pieces as the threaded :class:`gear.Client`:
gear-core's codec frames the bytes and :mod:`gear.client.protocol` builds
the SUBMIT packets and applies WORK_* and STATUS_RES payloads to jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import Any, NamedTuple

from gear import constants
from gear._aio import AsyncBase, AsyncConnection
from gear.client import protocol
from gear.codec import Frame, encode_packet, split_arguments
from gear.errors import (
    DisconnectError,
    GearmanError,
    JobFailedError,
    TimeoutError,
)
from gear.job import BaseJob
from gear.util import convert_to_bytes

__all__ = ["AsyncClient", "AsyncJob", "WorkUpdate"]

_REQ = constants.REQ
_SUBMIT = 0
_OPTION = 1


class WorkUpdate(NamedTuple):
    """One WORK_DATA, WORK_WARNING or WORK_STATUS packet of a running job.

    ``kind`` is ``"data"``, ``"warning"`` or ``"status"``; ``data`` is the
    payload (empty for status), ``numerator``/``denominator`` are set for
    status only.
    """

    kind: str
    data: bytes
    numerator: bytes | None = None
    denominator: bytes | None = None


class AsyncJob(BaseJob):
    """A job submitted by :meth:`gear.AsyncClient.submit`.

    ``await job`` (or ``await job.result(timeout)``) gives the WORK_COMPLETE
    payload; ``async for update in job`` yields each :class:`WorkUpdate`
    until the job ends. The attributes of :class:`gear.Job` (``data``,
    ``complete``, ``failure``, ``exception``, ``warning``, ``numerator``,
    ``denominator``, ``fraction_complete``, ``known``, ``running``) are kept
    up to date too, by the same code that updates threaded jobs.
    """

    def __init__(
        self, name: str | bytes, arguments: bytes | bytearray, unique: str | bytes | None = None
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
        self.updates: list[WorkUpdate] = []
        self._conn: AsyncConnection | None = None
        self._end: asyncio.Future[None] | None = None
        self._pulse: asyncio.Event | None = None

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

        Raises :class:`gear.errors.JobFailedError` on WORK_FAIL or
        WORK_EXCEPTION (``exception`` holds the latter's payload),
        :class:`gear.DisconnectError` if the server connection was lost first,
        :class:`gear.TimeoutError` after ``timeout`` seconds and
        :class:`gear.GearmanError` for a background job, which has no result.
        Cancelling the waiting task leaves the job (and connection) intact.
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
                raise JobFailedError(
                    "Job %r raised an exception: %s"
                    % (self.handle, self.exception.decode("utf8", "replace")),
                    self.exception,
                )
            raise JobFailedError("Job %r failed (WORK_FAIL)" % (self.handle,))
        return self.result_data or b""

    def __aiter__(self) -> AsyncIterator[WorkUpdate]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WorkUpdate]:
        index = 0
        while True:
            if index < len(self.updates):
                yield self.updates[index]
                index += 1
                continue
            if self._end is None or self._end.done():
                return
            if self._pulse is None:
                self._pulse = asyncio.Event()
            await self._pulse.wait()

    def _notify(self) -> None:
        pulse = self._pulse
        if pulse is not None:
            self._pulse = None
            pulse.set()

    def _finish(self, lost: bool = False) -> None:
        self.lost = lost
        if self._end is not None and not self._end.done():
            self._end.set_result(None)
        self._notify()


class AsyncClient(AsyncBase):
    """An asyncio Gearman client::

        async with gear.AsyncClient("my-client") as client:
            client.add_server("127.0.0.1")
            await client.wait_for_server(10)
            job = await client.submit("reverse", b"abc")
            print(await job)

    Many submits may run concurrently on one connection; replies are matched
    in order. Servers are used round-robin and a submit moves on to the next
    server when one refuses it, drops or does not answer, as
    :meth:`gear.Client.submitJob` does.
    """

    _log_prefix = "gear.AsyncClient"

    def __init__(self, client_id: str | bytes | None = "unknown") -> None:
        super().__init__(client_id)
        self.options: set[bytes] = set()

    def __repr__(self) -> str:
        return "<gear.AsyncClient 0x%x>" % (id(self),)

    # -- requests ---------------------------------------------------------

    async def submit(
        self,
        name: str | bytes,
        arguments: bytes | bytearray | str = b"",
        *,
        unique: str | bytes | None = None,
        background: bool = False,
        precedence: int = constants.PRECEDENCE_NORMAL,
        timeout: float | None = None,
    ) -> AsyncJob:
        """Submit a job and return it once a server has given it a handle.

        ``arguments`` may be ``str`` (sent as UTF-8). ``timeout`` bounds the
        wait for each server's JOB_CREATED; a server that misses it is
        dropped and the next one tried. Raises :class:`gear.GearmanError`
        when no connected server accepted the job (also when none is
        connected), :class:`gear.ConfigurationError` for a bad precedence.
        """
        ptype = protocol.submit_type(background, precedence)
        if isinstance(arguments, str):
            arguments = arguments.encode("utf8")
        job = AsyncJob(name, arguments, unique)
        job.background = bool(background)
        packet = encode_packet(_REQ, ptype, protocol.submit_payload(job))
        self._ensure_started()
        loop = asyncio.get_running_loop()
        attempted: set[AsyncConnection] = set()
        while True:
            active = self.active_connections
            if not active or attempted.issuperset(active):
                break
            conn = self._next_connection()
            if conn in attempted:
                continue
            attempted.add(conn)
            created: asyncio.Future[bool] = loop.create_future()
            try:
                conn.send(packet)
            except DisconnectError:
                continue
            conn.pending.append((_SUBMIT, created, job))
            try:
                if timeout is None:
                    await created
                else:
                    await asyncio.wait_for(created, timeout)
            except asyncio.TimeoutError:
                self.log.warning("No JOB_CREATED from %s in %s seconds; dropping it", conn, timeout)
                conn.abort()
                continue
            except DisconnectError:
                continue
            if created.result():
                return job
        raise GearmanError("Unable to submit job to any connected servers")

    async def status(
        self, job: AsyncJob, *, timeout: float | None = None, unique: bool = False
    ) -> AsyncJob:
        """Ask the job's server for its status; update and return ``job``.

        Sends GET_STATUS for the handle, or with ``unique=True``
        GET_STATUS_UNIQUE for the unique id (the C gearmand and geard support
        it). Sets ``known``, ``running``, ``numerator``, ``denominator`` and
        ``fraction_complete``. Raises :class:`gear.TimeoutError` and
        :class:`gear.DisconnectError` like :meth:`gear.Client.getStatus`.
        """
        self._ensure_started()
        conn = job._conn
        ptype, reply, key = protocol.status_request(job, unique, conn)
        if unique and (conn is None or not conn.connected):
            conn = self._next_connection()
        assert conn is not None
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.send(encode_packet(_REQ, ptype, key))
        conn.status_waiters.setdefault((reply, key), []).append((answered, job))
        try:
            await asyncio.wait_for(answered, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("No status reply from %s in %s seconds" % (conn, timeout)) from None
        return job

    async def set_option(self, name: str | bytes, timeout: float | None = None) -> bool:
        """Ask every connected server to enable option ``name`` (e.g. ``"exceptions"``).

        Remembered and requested again on every reconnect. Returns False if
        some server refused it; raises :class:`gear.TimeoutError` if one does
        not answer in ``timeout`` seconds.
        """
        self._ensure_started()
        option = convert_to_bytes(name)
        self.options.add(option)
        loop = asyncio.get_running_loop()
        replies: list[asyncio.Future[bool]] = []
        for conn in list(self.active_connections):
            reply: asyncio.Future[bool] = loop.create_future()
            try:
                conn.send(encode_packet(_REQ, constants.OPTION_REQ, option))
            except DisconnectError:
                continue
            conn.pending.append((_OPTION, reply, option))
            replies.append(reply)
        if not replies:
            return True
        done, _ = await asyncio.wait(replies, timeout=timeout)
        if len(done) != len(replies):
            for reply in replies:
                reply.cancel()
            raise TimeoutError("No reply to OPTION_REQ %r in %s seconds" % (option, timeout))
        return all(not f.cancelled() and f.exception() is None and f.result() for f in done)

    # -- connection steps -------------------------------------------------

    def _on_connect(self, conn: AsyncConnection) -> None:
        if self.client_id:
            conn.send(encode_packet(_REQ, constants.SET_CLIENT_ID, self.client_id))
        for option in self.options:
            conn.send(encode_packet(_REQ, constants.OPTION_REQ, option))
            conn.pending.append((_OPTION, None, option))

    def _on_connection_lost(self, conn: AsyncConnection) -> None:
        error = DisconnectError("Lost the connection to %s:%s" % (conn.host, conn.port))
        pending = list(conn.pending)
        conn.pending.clear()
        for _, future, _ in pending:
            if future is not None and not future.done():
                future.set_exception(error)
        waiters = [w for ws in conn.status_waiters.values() for w in ws]
        conn.status_waiters.clear()
        for future, _ in waiters:
            if not future.done():
                future.set_exception(error)
        jobs = list(conn.related_jobs.values())
        conn.related_jobs.clear()
        for job in jobs:
            job._finish(lost=True)

    # -- packets ----------------------------------------------------------

    def _handle_frame(self, conn: AsyncConnection, frame: Frame) -> None:
        handler = _HANDLERS.get(frame.ptype)
        if handler is None:
            self.log.debug("Ignoring %s from %s", constants.types.get(frame.ptype), conn)
            return
        handler(self, conn, frame.data)

    def _pop(self, conn: AsyncConnection, kind: int) -> Any:
        pending = conn.pending
        if pending and pending[0][0] == kind:
            return pending.popleft()
        for index, entry in enumerate(pending):
            if entry[0] == kind:
                del pending[index]
                return entry
        return None

    def _job_created(self, conn: AsyncConnection, data: bytes) -> None:
        entry = self._pop(conn, _SUBMIT)
        if entry is None:
            self.log.error("JOB_CREATED from %s with no submit pending; dropping it", conn)
            conn.abort()
            return
        _, created, job = entry
        if created.done():
            return
        job.handle = data
        job._conn = conn
        if not job.background:
            job._end = conn.loop.create_future()
            conn.related_jobs[data] = job
        created.set_result(True)

    def _error(self, conn: AsyncConnection, data: bytes) -> None:
        code, _, text = data.partition(b"\x00")
        self.log.error(
            "Received ERROR from %s: %s: %s",
            conn,
            code.decode("utf8", "replace"),
            text.decode("utf8", "replace"),
        )
        if not conn.pending:
            self.log.error("ERROR with no request pending on %s; dropping it", conn)
            conn.abort()
            return
        _, future, _ = conn.pending.popleft()
        if future is not None and not future.done():
            future.set_result(False)

    def _option_res(self, conn: AsyncConnection, data: bytes) -> None:
        entry = self._pop(conn, _OPTION)
        if entry is None:
            self.log.warning("OPTION_RES %r from %s with no request pending", data, conn)
            return
        _, future, option = entry
        if future is not None and not future.done():
            future.set_result(option == data)

    def _work(self, conn: AsyncConnection, data: bytes) -> tuple[AsyncJob | None, bytes]:
        handle, rest = protocol.split_handle(data)
        return conn.related_jobs.get(handle), rest

    def _work_data(self, conn: AsyncConnection, data: bytes) -> None:
        job, rest = self._work(conn, data)
        if job is not None:
            protocol.apply_work_data(job, rest)
            job.updates.append(WorkUpdate("data", rest))
            job._notify()

    def _work_warning(self, conn: AsyncConnection, data: bytes) -> None:
        job, rest = self._work(conn, data)
        if job is not None:
            protocol.apply_work_warning(job, rest)
            job.updates.append(WorkUpdate("warning", rest))
            job._notify()

    def _work_status(self, conn: AsyncConnection, data: bytes) -> None:
        handle, numerator, denominator = split_arguments(constants.WORK_STATUS, data)
        job = conn.related_jobs.get(handle)
        if job is not None:
            protocol.apply_work_status(job, numerator, denominator)
            job.updates.append(WorkUpdate("status", b"", numerator, denominator))
            job._notify()

    def _work_complete(self, conn: AsyncConnection, data: bytes) -> None:
        handle, rest = protocol.split_handle(data)
        job = conn.related_jobs.pop(handle, None)
        if job is not None:
            protocol.apply_work_complete(job, rest)
            job.result_data = rest
            job._finish()

    def _work_fail(self, conn: AsyncConnection, data: bytes) -> None:
        # The C gearmand turns WORK_EXCEPTION into "handle\0" for clients
        # without the exceptions option, so the handle ends at the first NUL.
        job = conn.related_jobs.pop(protocol.split_handle(data)[0], None)
        if job is not None:
            protocol.apply_work_fail(job)
            job._finish()

    def _work_exception(self, conn: AsyncConnection, data: bytes) -> None:
        handle, rest = protocol.split_handle(data)
        job = conn.related_jobs.pop(handle, None)
        if job is not None:
            protocol.apply_work_exception(job, rest)
            job._finish()

    def _status_res(self, conn: AsyncConnection, data: bytes) -> None:
        key, *fields = split_arguments(constants.STATUS_RES, data)
        self._answer_status(conn, (constants.STATUS_RES, key), fields)

    def _status_res_unique(self, conn: AsyncConnection, data: bytes) -> None:
        key, *fields = split_arguments(constants.STATUS_RES_UNIQUE, data)
        self._answer_status(conn, (constants.STATUS_RES_UNIQUE, key), fields[:4])

    def _answer_status(
        self, conn: AsyncConnection, key: tuple[int, bytes], fields: list[bytes]
    ) -> None:
        for future, job in conn.status_waiters.pop(key, []):
            protocol.apply_status(job, *fields)
            if not future.done():
                future.set_result(None)


_HANDLERS: dict[int, Any] = {
    constants.JOB_CREATED: AsyncClient._job_created,
    constants.ERROR: AsyncClient._error,
    constants.OPTION_RES: AsyncClient._option_res,
    constants.WORK_DATA: AsyncClient._work_data,
    constants.WORK_WARNING: AsyncClient._work_warning,
    constants.WORK_STATUS: AsyncClient._work_status,
    constants.WORK_COMPLETE: AsyncClient._work_complete,
    constants.WORK_FAIL: AsyncClient._work_fail,
    constants.WORK_EXCEPTION: AsyncClient._work_exception,
    constants.STATUS_RES: AsyncClient._status_res,
    constants.STATUS_RES_UNIQUE: AsyncClient._status_res_unique,
}

AsyncClient.__module__ = "gear"
AsyncJob.__module__ = "gear.client"
WorkUpdate.__module__ = "gear.client"
