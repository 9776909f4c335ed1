"""The asyncio client: :class:`AsyncClient` and its :class:`AsyncJob`.

A thin face over the same pieces as the threaded :class:`gear.Client`:
gear-core's codec frames the bytes and :mod:`gear.client.protocol` builds
the SUBMIT packets and applies WORK_* and STATUS_RES payloads to jobs.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar, get_origin, overload

from gear import constants
from gear._aio import AsyncBase, AsyncConnection
from gear._server_spec import ServerEntry
from gear.client import protocol, tracker
from gear.codec import Frame, encode_packet, split_arguments
from gear.errors import (
    ConfigurationError,
    DisconnectError,
    GearmanError,
    InvalidDataError,
    JobExceptionError,
    JobFailedError,
    RemoteError,
    TimeoutError,
)
from gear.hooks import Hooks, JobOutcome, call_hook
from gear.job import BaseJob
from gear.payload import Codec, parse_exception_payload
from gear.reconnect import ReconnectPolicy
from gear.util import convert_to_bytes

__all__ = ["AsyncClient", "AsyncJob", "WorkUpdate", "Priority"]

_REQ = constants.REQ
# The result type of call(); bytes unless a codec is given. The default (seen
# by type checkers only, so gear-client needs no typing_extensions at run
# time) lets code annotate a plain ``gear.AsyncClient`` as AsyncClient[bytes].
if TYPE_CHECKING:
    from typing_extensions import TypeVar as _DefaultTypeVar

    _R = _DefaultTypeVar("_R", default=bytes)
else:
    _R = TypeVar("_R")
_T = TypeVar("_T")

#: A job's priority by name; the ``gear.PRECEDENCE_*`` numbers work too.
Priority = Literal["low", "normal", "high"]
_PRIORITIES: dict[str, int] = {
    "low": constants.PRECEDENCE_LOW,
    "normal": constants.PRECEDENCE_NORMAL,
    "high": constants.PRECEDENCE_HIGH,
}


def _precedence(priority: Priority | int) -> int:
    if isinstance(priority, str):
        try:
            return _PRIORITIES[priority]
        except KeyError:
            raise ConfigurationError("Invalid priority %r" % (priority,)) from None
    return priority


def _kind(entry: tuple[str, Any, Any]) -> str:
    return entry[0]


def _tracker(conn: AsyncConnection) -> tracker.RequestTracker[Any]:
    """The connection's pending requests: ``(kind, future or None, job or option)``."""
    return tracker.RequestTracker(conn.pending, _kind)


def _count(value: bytes) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


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
    up to date too, by the same code that updates threaded jobs.

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
    def name(self) -> str:
        """The function name."""
        return self._name.decode("utf8")

    @name.setter
    def name(self, value: str | bytes) -> None:
        self._name = convert_to_bytes(value)

    @property
    def arguments(self) -> bytes:
        """The job's arguments as sent."""
        return bytes(self._arguments)

    @arguments.setter
    def arguments(self, value: bytes | bytearray) -> None:
        self._validate_arguments(value)
        self._arguments = bytes(value)

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


class AsyncClient(AsyncBase, Generic[_R]):
    """An asyncio Gearman client::

        async with gear.AsyncClient("my-client", servers=["127.0.0.1:4730"]) as client:
            result = await client.call("reverse", b"abc")

    Entering the block connects (see :meth:`~gear.AsyncClient.connect`).
    ``servers`` entries are ``"host"``, ``"host:port"``, ``("host", port)``
    or a dict of :meth:`add_server` arguments (for TLS); ``add_server``
    works at any time too. The client asks every server for the
    ``exceptions`` option (``exceptions=False`` to not), so a handler's
    exception reaches :meth:`call` as :class:`gear.JobExceptionError`.

    Many submits may run concurrently on one connection; replies are matched
    in order. At most ``max_in_flight`` jobs (None: no limit) are in flight
    at once, from submit to their end (to JOB_CREATED for background
    jobs); a submit beyond that waits for a slot. Servers are used
    round-robin and a submit moves on to the next server when one refuses
    it or drops, as :meth:`gear.Client.submitJob` does.

    With a ``codec`` (see :doc:`/reference/payloads`), :meth:`call` takes
    and returns objects: the client is an ``AsyncClient[object]`` to a type
    checker, and an ``AsyncClient[bytes]`` without one. ``hooks`` receives
    connection and job events (:class:`gear.Hooks`).
    """

    _log_prefix = "gear.AsyncClient"

    @overload
    def __init__(
        self: AsyncClient[bytes],
        client_id: str | bytes | None = "unknown",
        servers: Iterable[ServerEntry] | None = None,
        *,
        connect_timeout: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        exceptions: bool = True,
        max_in_flight: int | None = 10_000,
        codec: None = None,
        hooks: Hooks | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: AsyncClient[object],
        client_id: str | bytes | None = "unknown",
        servers: Iterable[ServerEntry] | None = None,
        *,
        connect_timeout: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        exceptions: bool = True,
        max_in_flight: int | None = 10_000,
        codec: Codec,
        hooks: Hooks | None = None,
    ) -> None: ...

    def __init__(
        self,
        client_id: str | bytes | None = "unknown",
        servers: Iterable[ServerEntry] | None = None,
        *,
        connect_timeout: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        exceptions: bool = True,
        max_in_flight: int | None = 10_000,
        codec: Codec | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigurationError("max_in_flight must be at least 1 (or None)")
        super().__init__(
            client_id, servers, connect_timeout=connect_timeout, reconnect=reconnect, hooks=hooks
        )
        #: The payload codec of :meth:`call` (None: bytes in, bytes out).
        self.codec = codec
        self.options: set[bytes] = {b"exceptions"} if exceptions else set()
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight is not None else None
        self._in_flight = 0
        self._probes: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return "<gear.AsyncClient 0x%x>" % (id(self),)

    @property
    def in_flight(self) -> int:
        """Jobs submitted (or being submitted) that have not ended yet."""
        return self._in_flight

    def _release_slot(self) -> None:
        self._in_flight -= 1
        if self._slots is not None:
            self._slots.release()

    # -- requests ---------------------------------------------------------

    @overload
    async def call(
        self,
        name: str | bytes,
        data: object = None,
        *,
        unique: str | bytes | None = None,
        priority: Priority | int = "normal",
        timeout: float | None = None,
    ) -> _R: ...

    @overload
    async def call(
        self,
        name: str | bytes,
        data: object = None,
        *,
        returns: type[_T],
        unique: str | bytes | None = None,
        priority: Priority | int = "normal",
        timeout: float | None = None,
    ) -> _T: ...

    async def call(
        self,
        name: str | bytes,
        data: object = None,
        *,
        returns: type[Any] | None = None,
        unique: str | bytes | None = None,
        priority: Priority | int = "normal",
        timeout: float | None = None,
    ) -> Any:
        """Submit a job, wait for its end and return its WORK_COMPLETE data.

        Without a :attr:`codec`, ``data`` is bytes or str (sent as UTF-8;
        None sends nothing) and the result is bytes; with one, ``data`` (by
        default None) is encoded and the result decoded by it. ``returns``
        names the type the result must have (``str``, ``dict``, ...; for
        ``dict[str, int]`` only the ``dict`` is checked), which a type
        checker then knows too; another type raises
        :class:`gear.InvalidDataError`. A handler's exception sent in the
        structured format raises :class:`gear.RemoteError` (a kind of
        :class:`gear.JobExceptionError`) with its remote type and message.

        ``timeout`` bounds the whole call (waiting for a slot, the submit
        and the job). Raises :class:`gear.JobFailedError` (WORK_FAIL),
        :class:`gear.JobExceptionError` (WORK_EXCEPTION, with the payload),
        :class:`gear.TimeoutError` (a :class:`TimeoutError`),
        :class:`gear.DisconnectError` if the server was lost meanwhile, and
        what :meth:`submit` raises. The job keeps no update history.
        """
        codec = self.codec
        payload: bytes | bytearray | str
        if codec is not None:
            payload = codec.encode(data)
        elif data is None:
            payload = b""
        elif isinstance(data, (bytes, bytearray, str)):
            payload = data
        else:
            raise TypeError(
                "call() sends bytes or str without a codec, not %s" % (type(data).__name__,)
            )
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            job = await asyncio.wait_for(
                self.submit(name, payload, unique=unique, precedence=priority, keep_updates=False),
                timeout,
            )
        except asyncio.TimeoutError:
            raise TimeoutError(
                "Job %r was not accepted within %s seconds" % (name, timeout)
            ) from None
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        result: Any = await job.result(remaining)
        if codec is not None:
            result = codec.decode(result)
        if returns is not None:
            expected = get_origin(returns) or returns
            if not isinstance(result, expected):
                raise InvalidDataError(
                    "Job %r returned %s, not %s"
                    % (job.handle, type(result).__name__, expected.__name__)
                )
        return result

    async def submit(
        self,
        name: str | bytes,
        arguments: bytes | bytearray | str = b"",
        *,
        unique: str | bytes | None = None,
        background: bool = False,
        precedence: Priority | int = constants.PRECEDENCE_NORMAL,
        timeout: float | None = None,
        keep_updates: bool = True,
    ) -> AsyncJob:
        """Submit a job and return it once a server has given it a handle.

        ``arguments`` may be ``str`` (sent as UTF-8); ``precedence`` is
        ``"low"``, ``"normal"``, ``"high"`` or a ``gear.PRECEDENCE_*``.
        ``timeout`` bounds the wait for JOB_CREATED: when it runs out this
        call raises :class:`gear.TimeoutError` and nothing else is touched
        (the connection and its other jobs carry on; if the server then does
        not answer an ECHO_REQ within ``connect_timeout`` it is dropped).
        Raises :class:`gear.GearmanError` when no connected server accepted
        the job (also when none is connected: the message then says why),
        :class:`gear.ConfigurationError` for a bad precedence.
        ``keep_updates=False`` keeps no update history on the job (for
        long streams).
        """
        ptype = protocol.submit_type(background, _precedence(precedence))
        if isinstance(arguments, str):
            arguments = arguments.encode("utf8")
        job = AsyncJob(name, arguments, unique, keep_updates=keep_updates)
        job.background = bool(background)
        if self.hooks is not None:
            job._hooks = self.hooks
            job._submitted = asyncio.get_running_loop().time()
        packet = encode_packet(_REQ, ptype, protocol.submit_payload(job))
        self._ensure_started()
        if self._slots is not None:
            await self._slots.acquire()
        self._in_flight += 1
        job._slot = self._release_slot
        try:
            failed = await self._submit(job, packet, timeout)
        except BaseException:
            job._free_slot()
            raise
        if failed is None:
            if job.background:
                job._free_slot()
            return job
        job._free_slot()
        raise GearmanError(failed)

    async def _submit(self, job: AsyncJob, packet: bytes, timeout: float | None) -> str | None:
        """Try each active server once; None once one created the job, else why not."""
        loop = asyncio.get_running_loop()
        failover: tracker.SubmitFailover[AsyncConnection] = tracker.SubmitFailover()
        while True:
            conn = failover.next(lambda: self.active_connections, self._next_connection)
            if conn is None:
                return failover.message(self._summary)
            created: asyncio.Future[tracker.ServerError | None] = loop.create_future()
            try:
                conn.send(packet)
            except DisconnectError:
                continue
            _tracker(conn).sent((tracker.SUBMIT, created, job))
            try:
                if timeout is None:
                    await created
                else:
                    await asyncio.wait_for(created, timeout)
            except asyncio.TimeoutError:
                self._check_alive(conn)
                raise TimeoutError(
                    "No JOB_CREATED from %s:%s within %s seconds" % (conn.host, conn.port, timeout)
                ) from None
            except DisconnectError:
                continue
            error = created.result()
            if error is None:
                return None
            failover.refused("%s:%s" % (conn.host, conn.port), error)

    def _check_alive(self, conn: AsyncConnection) -> None:
        """Drop ``conn`` if it answers no ECHO_REQ within ``connect_timeout`` (once at a time)."""
        if conn.echo_waiters or not conn.connected:
            return
        token = os.urandom(8).hex().encode("ascii")
        answered: asyncio.Future[None] = conn.loop.create_future()
        conn.echo_waiters[token] = answered
        conn.send(encode_packet(_REQ, constants.ECHO_REQ, token))

        async def probe() -> None:
            try:
                await asyncio.wait_for(answered, self.connect_timeout)
            except asyncio.TimeoutError:
                if conn.connected:
                    self.log.warning(
                        "%s answered no ECHO_REQ within %s seconds; dropping it",
                        conn,
                        self.connect_timeout,
                    )
                    conn.abort()
            except DisconnectError:
                pass
            finally:
                conn.echo_waiters.pop(token, None)

        task = conn.loop.create_task(probe())
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def close(self) -> None:
        """Close every connection and stop reconnecting; a second call is harmless."""
        for task in list(self._probes):
            task.cancel()
        await super().close()

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
        some server refused it. A server that does not answer within
        ``timeout`` seconds (gear 0.16's never does) or drops meanwhile is
        logged and left alone, as :meth:`gear.Client.setOption` does.
        """
        self._ensure_started()
        option = convert_to_bytes(name)
        self.options.add(option)
        loop = asyncio.get_running_loop()
        replies: list[tuple[AsyncConnection, asyncio.Future[bool]]] = []
        for conn in list(self.active_connections):
            reply: asyncio.Future[bool] = loop.create_future()
            try:
                conn.send(encode_packet(_REQ, constants.OPTION_REQ, option))
            except DisconnectError:
                continue
            _tracker(conn).sent((tracker.OPTION, reply, option))
            replies.append((conn, reply))
        if not replies:
            return True
        await asyncio.wait([reply for _, reply in replies], timeout=timeout)
        refused = False
        for conn, reply in replies:
            if not reply.done():
                self.log.warning("No reply to OPTION_REQ %r from %s", option, conn)
                reply.cancel()  # its entry keeps its place; a late OPTION_RES is dropped
            elif reply.exception() is None and reply.result() is False:
                refused = True
        return not refused

    # -- connection steps -------------------------------------------------

    def _on_connect(self, conn: AsyncConnection) -> None:
        if self.client_id:
            conn.send(encode_packet(_REQ, constants.SET_CLIENT_ID, self.client_id))
        for option in self.options:
            conn.send(encode_packet(_REQ, constants.OPTION_REQ, option))
            _tracker(conn).sent((tracker.OPTION, None, option))

    def _on_connection_lost(self, conn: AsyncConnection) -> None:
        error = DisconnectError("Lost the connection to %s:%s" % (conn.host, conn.port))
        for _, future, _ in _tracker(conn).drain():
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
        handler = _HANDLERS.get(frame.ptype)
        if handler is None:
            self.log.debug("Ignoring %s from %s", constants.types.get(frame.ptype), conn)
            return
        handler(self, conn, frame.data)

    def _job_created(self, conn: AsyncConnection, data: bytes) -> None:
        entry = _tracker(conn).answer(tracker.SUBMIT)
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
        entry = _tracker(conn).error()
        if entry is None:
            self.log.error("ERROR with no request pending on %s; dropping it", conn)
            conn.abort()
            return
        kind, future, _ = entry
        if future is not None and not future.done():
            future.set_result(error if kind == tracker.SUBMIT else False)

    def _option_res(self, conn: AsyncConnection, data: bytes) -> None:
        entry = _tracker(conn).answer(tracker.OPTION)
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
    constants.ECHO_RES: AsyncClient._echo_res,
}

AsyncClient.__module__ = "gear"
AsyncJob.__module__ = "gear.client"
WorkUpdate.__module__ = "gear.client"
