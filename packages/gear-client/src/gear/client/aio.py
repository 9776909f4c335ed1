"""The asyncio client :class:`AsyncClient`: its requests (call, submit, status, options).

A thin face over the same pieces as the threaded :class:`gear.Client`:
gear-core's codec frames the bytes, :mod:`gear.client.protocol` builds the
SUBMIT packets and :mod:`gear.client.tracker` matches replies to requests.
What it does with replies is :mod:`gear.client.async_replies`; the job it
returns is :mod:`gear.client.async_job` (both importable from here too).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, get_origin, overload

from gear import constants
from gear._aio import AsyncConnection
from gear._server_spec import ServerEntry
from gear.client import protocol, tracker
from gear.client.async_job import AsyncJob, WorkUpdate
from gear.client.async_replies import AsyncReplies, requests_of
from gear.codec import encode_packet
from gear.errors import (
    ConfigurationError,
    DisconnectError,
    GearmanError,
    InvalidDataError,
    TimeoutError,
)
from gear.hooks import Hooks
from gear.payload import Codec
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


class AsyncClient(AsyncReplies, Generic[_R]):
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
            requests_of(conn).sent((tracker.SUBMIT, created, job))
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
            requests_of(conn).sent((tracker.OPTION, reply, option))
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
        if b"exceptions" in self.options:
            # As gear.Client does: OPTION_REQ with a GET_STATUS probe behind
            # it, answered before the connection goes active, so a server
            # that never answers options (gear 0.16's) leaves no request
            # pending in front of later ones.
            request = protocol.ExceptionsRequest()
            for ptype, data in request.packets:
                conn.send(encode_packet(_REQ, ptype, data))
            answered: asyncio.Future[BaseException | None] = conn.loop.create_future()
            conn.greeting = (request, answered)
        for option in self.options - {b"exceptions"}:
            conn.send(encode_packet(_REQ, constants.OPTION_REQ, option))
            requests_of(conn).sent((tracker.OPTION, None, option))

    async def _greeted(self, conn: AsyncConnection) -> None:
        if conn.greeting is None:
            return
        request, answered = conn.greeting
        error = await answered
        if error is not None:
            raise error
        if request.accepted:
            conn.options.add(b"exceptions")
        else:
            self.log.debug("%s did not accept the exceptions option (%s)", conn, request.accepted)


AsyncClient.__module__ = "gear"
