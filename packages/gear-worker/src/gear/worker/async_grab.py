"""Taking jobs: the asyncio worker's connections, registrations and grab requests.

"Wanting a job" means a task waiting in :meth:`~AsyncGrabber.get_job`
(directly, through :meth:`~AsyncGrabber.jobs` or through a serve slot),
exactly as a thread waiting in ``getJob`` does for the threaded worker.
Unlike the threaded worker, which keeps gear 0.16's one grab per
connection, it sends one GRAB_JOB_UNIQ per wanted job without waiting for
the previous answer (the pipelined rules of :mod:`gear.worker.protocol`),
so ``serve(concurrency=N)`` does not pay a server round trip per job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable

from gear import constants
from gear._aio import AsyncBase, AsyncConnection
from gear._server_spec import ServerEntry
from gear.codec import Frame, encode_packet
from gear.errors import (
    InterruptedError,
    TimeoutError,
)
from gear.hooks import Hooks
from gear.reconnect import ReconnectPolicy
from gear.util import convert_to_bytes
from gear.worker import protocol
from gear.worker.async_job import AsyncWorkerJob
from gear.worker.functions import JobFunction
from gear.worker.worker import FunctionRecord

__all__ = ["AsyncGrabber"]

_REQ = constants.REQ
_GRAB = encode_packet(_REQ, constants.GRAB_JOB_UNIQ)


class AsyncGrabber(AsyncBase):
    """The part of :class:`gear.AsyncWorker` that registers functions and takes jobs."""

    handlers: dict[bytes, JobFunction]

    def __init__(
        self,
        client_id: str | bytes | None = None,
        servers: Iterable[ServerEntry] | None = None,
        *,
        connect_timeout: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        super().__init__(
            client_id, servers, connect_timeout=connect_timeout, reconnect=reconnect, hooks=hooks
        )
        self.functions: dict[bytes, FunctionRecord] = {}
        self.handlers = {}
        self._queue: deque[AsyncWorkerJob] = deque()
        self._waiters: deque[asyncio.Future[AsyncWorkerJob]] = deque()
        self._stopping = False
        self._runners: set[asyncio.Task[None]] = set()
        #: Jobs whose handler is running now (what a drain may have to requeue).
        self._running_jobs = 0
        self._generation = 0

    def register(self, name: str | bytes, timeout: int | None = None) -> None:
        """Register ``name`` (CAN_DO, or CAN_DO_TIMEOUT with ``timeout`` seconds).

        Takes effect at once on connected servers and on every later
        (re)connect.
        """
        bname = convert_to_bytes(name)
        self.functions[bname] = FunctionRecord(bname, timeout)
        ptype, data = protocol.can_do_packet(bname, timeout)
        self.broadcast(encode_packet(_REQ, ptype, data))
        for conn in self.active_connections:
            if conn.state == protocol.SLEEP:
                conn.state = protocol.IDLE
        self._update()

    def unregister(self, name: str | bytes) -> None:
        """Stop taking jobs for ``name`` (CANT_DO); KeyError if not registered."""
        bname = convert_to_bytes(name)
        del self.functions[bname]
        self.handlers.pop(bname, None)
        self.broadcast(encode_packet(_REQ, constants.CANT_DO, bname))

    # -- jobs -------------------------------------------------------------

    async def get_job(self, timeout: float | None = None) -> AsyncWorkerJob:
        """Wait for a job and return it.

        Raises :class:`gear.InterruptedError` when :meth:`stop` interrupts
        the wait and :class:`gear.TimeoutError` after ``timeout`` seconds.
        """
        self._ensure_started()
        if self._queue:
            return self._queue.popleft()
        if self._stopping:
            raise InterruptedError("The worker is stopping")
        waiter: asyncio.Future[AsyncWorkerJob] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._update()
        taken = False
        try:
            if timeout is None:
                job = await waiter
            else:
                try:
                    job = await asyncio.wait_for(waiter, timeout)
                except asyncio.TimeoutError:
                    raise TimeoutError(
                        "No job was assigned within %s seconds" % (timeout,)
                    ) from None
            taken = True
            return job
        finally:
            if not taken:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._queue.appendleft(waiter.result())
                self._update()

    async def jobs(self) -> AsyncIterator[AsyncWorkerJob]:
        """Yield assigned jobs one at a time until :meth:`stop` is called."""
        generation = self._generation
        while generation == self._generation:
            try:
                job = await self.get_job()
            except InterruptedError:
                return
            yield job

    # -- grab state machine -----------------------------------------------

    def _wanted(self) -> int:
        if self._stopping:
            return 0
        return len(self._waiters) - len(self._queue)

    def _transition(self, conn: AsyncConnection, transition: protocol.Transition) -> None:
        state, ptype = transition
        conn.state = state
        if ptype is not None and conn.connected:
            conn.send(encode_packet(_REQ, ptype))

    def _update(self) -> None:
        """Spread GRAB_JOB_UNIQ requests over the servers, one per job wanted.

        Like the threaded worker, every idle server is asked once while
        anything is wanted; the rest of the demand is shared out evenly.
        """
        wanted = self._wanted()
        active = self.active_connections
        if wanted <= 0:
            for conn in active:
                if conn.state == protocol.SLEEP:
                    conn.state = protocol.IDLE
            return
        extra = wanted - sum(conn.grabs for conn in active)
        eligible = [c for c in active if c.state in (protocol.IDLE, protocol.GRAB_WAIT)]
        for index, conn in enumerate(eligible):
            share = -(-extra // (len(eligible) - index)) if extra > 0 else 0
            if conn.grabs == 0:
                share = max(share, 1)
            state, count = protocol.pipelined_demand(conn.state, share)
            conn.state = state
            if count and conn.connected:
                conn.send(_GRAB * count)
                conn.grabs += count
                extra -= count

    def _answered(self, conn: AsyncConnection, no_job: bool) -> None:
        conn.grabs = max(0, conn.grabs - 1)
        self._transition(conn, protocol.pipelined_reply(conn.state, conn.grabs, no_job))

    def _on_connect(self, conn: AsyncConnection) -> None:
        for ptype, data in protocol.greeting(self.client_id, self.functions.values()):
            conn.send(encode_packet(_REQ, ptype, data))
        conn.state = protocol.IDLE

    def _on_active(self, conn: AsyncConnection) -> None:
        self._update()

    def _handle_frame(self, conn: AsyncConnection, frame: Frame) -> None:
        ptype = frame.ptype
        if ptype == constants.JOB_ASSIGN_UNIQ or ptype == constants.JOB_ASSIGN:
            handle, name, unique, arguments = protocol.parse_assignment(ptype, frame.data)
            job = AsyncWorkerJob(handle, name, arguments, unique, conn)
            self._answered(conn, no_job=False)
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(job)
                    break
            else:
                self._queue.append(job)
            self._update()
        elif ptype == constants.NO_JOB:
            if conn.grabs:
                self._answered(conn, no_job=True)
        elif ptype == constants.NOOP:
            if conn.state == protocol.SLEEP:
                conn.state = protocol.IDLE
                self._update()
        elif ptype == constants.ECHO_RES:
            echo = conn.echo_waiters.pop(frame.data, None)
            if echo is not None and not echo.done():
                echo.set_result(None)
        elif ptype == constants.ERROR:
            self.log.error("Received ERROR from %s: %r", conn, frame.data)
        else:
            self.log.debug("Ignoring %s from %s", constants.types.get(ptype), conn)

    def _on_connection_lost(self, conn: AsyncConnection) -> None:
        conn.state = protocol.INIT
        conn.grabs = 0
        echoes = list(conn.echo_waiters.values())
        conn.echo_waiters.clear()
        for echo in echoes:
            if not echo.done():
                echo.set_result(None)  # nothing left to wait for on this connection
        if any(job._conn is conn for job in self._queue):
            # The server requeues them; nothing here could report on them.
            self._queue = deque(job for job in self._queue if job._conn is not conn)
