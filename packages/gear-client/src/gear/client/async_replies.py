"""How :class:`gear.AsyncClient` acts on what a server sends.

The replies side of the asyncio client: JOB_CREATED, ERROR and OPTION_RES
answer pending requests through :mod:`gear.client.tracker`; WORK_* and
STATUS_RES update jobs through :mod:`gear.client.protocol`; a lost
connection fails every waiter on it. The requests side
(:mod:`gear.client.aio`) extends this class.
"""

from __future__ import annotations

from typing import Any

from gear import constants
from gear._aio import AsyncBase, AsyncConnection
from gear.client import protocol, tracker
from gear.client.async_job import AsyncJob, WorkUpdate
from gear.codec import Frame, split_arguments
from gear.errors import DisconnectError, RemoteProtocolError
from gear.hooks import call_hook

__all__ = ["AsyncReplies", "requests_of"]


def _kind(entry: tuple[str, Any, Any]) -> str:
    return entry[0]


def requests_of(conn: AsyncConnection) -> tracker.RequestTracker[Any]:
    """The connection's pending requests: ``(kind, future or None, job or option)``."""
    return tracker.RequestTracker(conn.pending, _kind)


def _count(value: bytes) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


class AsyncReplies(AsyncBase):
    """The packet handlers of :class:`gear.AsyncClient`."""

    def _on_connection_lost(self, conn: AsyncConnection) -> None:
        error = DisconnectError("Lost the connection to %s:%s" % (conn.host, conn.port))
        if conn.greeting is not None:
            self._end_greeting(
                conn, DisconnectError("%s closed the connection while greeting" % (conn,))
            )
        for _, future, _ in requests_of(conn).drain():
            if future is not None and not future.done():
                future.set_exception(error)
        waiters = [w for ws in conn.status_waiters.values() for w in ws]
        conn.status_waiters.clear()
        for future, _ in waiters:
            if not future.done():
                future.set_exception(error)
        echoes = list(conn.echo_waiters.values())
        conn.echo_waiters.clear()
        for echo in echoes:
            echo.cancel()
        jobs = list(conn.related_jobs.values())
        conn.related_jobs.clear()
        for job in jobs:
            job._finish(lost=True)

    # -- packets ----------------------------------------------------------

    def _handle_frame(self, conn: AsyncConnection, frame: Frame) -> None:
        if conn.greeting is not None:
            self._greeting_reply(conn, frame)
            return
        handler = _HANDLERS.get(frame.ptype)
        if handler is None:
            self.log.debug("Ignoring %s from %s", constants.types.get(frame.ptype), conn)
            return
        handler(self, conn, frame.data)

    def _greeting_reply(self, conn: AsyncConnection, frame: Frame) -> None:
        """Feed a reply to the connect-time ``exceptions`` request (see ``_on_connect``)."""
        request, _ = conn.greeting
        try:
            if request.feed(frame.ptype, frame.data):
                self._end_greeting(conn, None)
        except RemoteProtocolError as e:
            self._end_greeting(conn, e)

    def _end_greeting(self, conn: AsyncConnection, error: BaseException | None) -> None:
        _, answered = conn.greeting
        conn.greeting = None
        if not answered.done():
            answered.set_result(error)

    def _job_created(self, conn: AsyncConnection, data: bytes) -> None:
        entry = requests_of(conn).answer(tracker.SUBMIT)
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
        created.set_result(None)
        hooks = job._hooks
        if hooks is not None:
            call_hook(self.log, hooks.on_submit, job)
            if job.background:
                job._hooks = None

    def _error(self, conn: AsyncConnection, data: bytes) -> None:
        error = tracker.parse_error(data)
        self.log.error("Received ERROR from %s: %s: %s", conn, error.code, error.text)
        entry = requests_of(conn).error()
        if entry is None:
            self.log.error("ERROR with no request pending on %s; dropping it", conn)
            conn.abort()
            return
        kind, future, _ = entry
        if future is not None and not future.done():
            future.set_result(error if kind == tracker.SUBMIT else False)

    def _option_res(self, conn: AsyncConnection, data: bytes) -> None:
        entry = requests_of(conn).answer(tracker.OPTION)
        if entry is None:
            self.log.warning("OPTION_RES %r from %s with no request pending", data, conn)
            return
        _, future, option = entry
        if option == data:
            conn.options.add(option)
        if future is not None and not future.done():
            future.set_result(option == data)

    def _work(self, conn: AsyncConnection, data: bytes) -> tuple[AsyncJob | None, bytes]:
        handle, rest = protocol.split_handle(data)
        return conn.related_jobs.get(handle), rest

    def _work_data(self, conn: AsyncConnection, data: bytes) -> None:
        job, rest = self._work(conn, data)
        if job is not None:
            if job.keep_updates:
                protocol.apply_work_data(job, rest)
            job._push(WorkUpdate("data", rest))

    def _work_warning(self, conn: AsyncConnection, data: bytes) -> None:
        job, rest = self._work(conn, data)
        if job is not None:
            if job.keep_updates:
                protocol.apply_work_warning(job, rest)
            job.warning = True
            job._push(WorkUpdate("warning", rest))

    def _work_status(self, conn: AsyncConnection, data: bytes) -> None:
        handle, numerator, denominator = split_arguments(constants.WORK_STATUS, data)
        job = conn.related_jobs.get(handle)
        if job is not None:
            protocol.apply_work_status(job, numerator, denominator)
            job._push(WorkUpdate("status", b"", _count(numerator), _count(denominator)))

    def _echo_res(self, conn: AsyncConnection, data: bytes) -> None:
        waiter = conn.echo_waiters.pop(data, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

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
    constants.JOB_CREATED: AsyncReplies._job_created,
    constants.ERROR: AsyncReplies._error,
    constants.OPTION_RES: AsyncReplies._option_res,
    constants.WORK_DATA: AsyncReplies._work_data,
    constants.WORK_WARNING: AsyncReplies._work_warning,
    constants.WORK_STATUS: AsyncReplies._work_status,
    constants.WORK_COMPLETE: AsyncReplies._work_complete,
    constants.WORK_FAIL: AsyncReplies._work_fail,
    constants.WORK_EXCEPTION: AsyncReplies._work_exception,
    constants.STATUS_RES: AsyncReplies._status_res,
    constants.STATUS_RES_UNIQUE: AsyncReplies._status_res_unique,
    constants.ECHO_RES: AsyncReplies._echo_res,
}
