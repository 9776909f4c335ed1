"""The asyncio worker: :class:`AsyncWorker` and its :class:`AsyncWorkerJob`.

A thin face over the same pieces as the threaded :class:`gear.Worker`:
gear-core's codec frames the bytes and :mod:`gear.worker.protocol` holds the
grab state machine, the assignment parser and the CAN_DO and WORK_*
payloads. "Wanting a job" means a task waiting in
:meth:`AsyncWorker.get_job` (directly, through :meth:`~AsyncWorker.jobs` or
through a :meth:`~AsyncWorker.serve` slot), exactly as a thread waiting in
``getJob`` does for the threaded worker. Unlike the threaded worker, which
keeps gear 0.16's one grab per connection, it sends one GRAB_JOB_UNIQ per
wanted job without waiting for the previous answer (the pipelined rules of
:mod:`gear.worker.protocol`), so ``serve(concurrency=N)`` does not pay a
server round trip per job.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import signal
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar, overload

from gear import constants
from gear._aio import AsyncBase, AsyncConnection, ServerAddress
from gear._server_spec import ServerEntry
from gear.codec import Frame, encode_packet
from gear.errors import (
    ConfigurationError,
    DisconnectError,
    GearmanError,
    InterruptedError,
    TimeoutError,
)
from gear.hooks import Hooks, JobOutcome, call_hook
from gear.job import BaseJob
from gear.payload import Codec, exception_payload
from gear.reconnect import ReconnectPolicy
from gear.util import convert_to_bytes
from gear.worker import protocol
from gear.worker.functions import FunctionTimeout, JobFunction
from gear.worker.worker import FunctionRecord

__all__ = ["AsyncWorker", "AsyncWorkerJob", "Handler", "HandlerResult", "OnCancel"]

_REQ = constants.REQ
_GRAB = encode_packet(_REQ, constants.GRAB_JOB_UNIQ)

#: What a handler may return: the WORK_COMPLETE payload (str is sent as
#: UTF-8, None as empty).
HandlerResult = bytes | bytearray | str | None

#: A :meth:`AsyncWorker.serve` handler: its return value becomes the
#: WORK_COMPLETE payload unless it ended the job itself.
Handler = Callable[["AsyncWorkerJob"], Awaitable[HandlerResult]]

#: What :meth:`AsyncWorker.serve` does with running jobs when it is cancelled.
OnCancel = Literal["requeue", "fail"]

_A = TypeVar("_A")
_T = TypeVar("_T")

#: The signals :meth:`AsyncWorker.run` handles by default.
DEFAULT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)

_OUTCOMES: dict[int, JobOutcome] = {
    constants.WORK_COMPLETE: "complete",
    constants.WORK_FAIL: "fail",
    constants.WORK_EXCEPTION: "exception",
}


def _seconds(timeout: int | str | bytes | None) -> float | None:
    """A FunctionRecord's timeout as the worker enforces it (None or 0: none)."""
    if timeout is None:
        return None
    try:
        seconds = float(timeout)
    except ValueError:
        return None  # the server refuses it too; nothing to enforce here
    return seconds if seconds > 0 else None


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
    :meth:`complete`, :meth:`fail` or :meth:`exception`.
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

    @property
    def name(self) -> str:
        """The function name."""
        return self._name.decode("utf8")

    @name.setter
    def name(self, value: str | bytes) -> None:
        self._name = convert_to_bytes(value)

    @property
    def arguments(self) -> bytes:
        """The job's arguments as the client sent them."""
        return bytes(self._arguments)

    @arguments.setter
    def arguments(self, value: bytes | bytearray) -> None:
        self._validate_arguments(value)
        self._arguments = bytes(value)

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


class AsyncWorker(AsyncBase):
    """An asyncio Gearman worker::

        async def reverse(job: AsyncWorkerJob) -> bytes:
            return job.arguments[::-1]

        async with gear.AsyncWorker("my-worker", servers=["127.0.0.1:4730"]) as worker:
            await worker.serve({"reverse": reverse}, concurrency=10)

    ``servers``, ``connect_timeout`` and ``reconnect`` are those of
    :class:`gear.AsyncClient`. ``serve`` runs until :meth:`stop`;
    ``async for job in worker.jobs()`` is the pull-style alternative.
    Functions are re-registered on every reconnect.
    """

    _log_prefix = "gear.AsyncWorker"
    #: Seconds :meth:`stop` lets an outstanding GRAB_JOB_UNIQ take before it
    #: gives up on (and drops) that server connection.
    grab_wait_timeout: float = 5.0

    def __init__(
        self,
        client_id: str | bytes | None = None,
        servers: Iterable[ServerEntry] | None = None,
        *,
        worker_id: str | bytes | None = None,
        connect_timeout: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        codec: Codec | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        if not client_id:
            client_id = worker_id
        if not client_id:
            raise ConfigurationError("A client_id must be provided")
        super().__init__(
            client_id, servers, connect_timeout=connect_timeout, reconnect=reconnect, hooks=hooks
        )
        #: The payload codec: handlers get ``codec.decode(arguments)`` and
        #: their results are encoded (None: handlers get the job, return bytes).
        self.codec = codec
        self.functions: dict[bytes, FunctionRecord] = {}
        #: Functions registered with :meth:`function`, by name.
        self.handlers: dict[bytes, JobFunction] = {}
        self._queue: deque[AsyncWorkerJob] = deque()
        self._waiters: deque[asyncio.Future[AsyncWorkerJob]] = deque()
        self._stopping = False
        self._runners: set[asyncio.Task[None]] = set()
        self._generation = 0

    def __repr__(self) -> str:
        return "<gear.AsyncWorker 0x%x>" % (id(self),)

    # -- functions --------------------------------------------------------

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

    @overload
    def function(
        self, name: Callable[[_A], _T], *, timeout: float | None = None
    ) -> Callable[[_A], _T]: ...

    @overload
    def function(
        self, name: str | None = None, *, timeout: float | None = None
    ) -> Callable[[Callable[[_A], _T]], Callable[[_A], _T]]: ...

    def function(
        self, name: str | Callable[..., Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Register the decorated function as the Gearman function ``name``::

            @worker.function("resize", timeout=30)
            async def resize(job): ...

            @worker.function            # named "thumbnail"
            def thumbnail(job): ...     # a plain def runs in a thread

        Without a name, the function's ``__name__`` is used. It is called
        with the job (or, with a :attr:`codec`, the decoded arguments: reach
        the job with :func:`gear.worker.current_job`) and returns the result
        (bytes, str or None; with a codec, anything it can encode). An
        ``async def`` is awaited on the loop; a plain ``def`` runs in the
        loop's default executor, so it may block.

        ``timeout`` (seconds) is enforced here: an ``async def`` still
        running then is cancelled, and the job ends with WORK_EXCEPTION
        naming the timeout (a plain ``def`` cannot be stopped: its job ends
        and the thread runs on). The server is sent CAN_DO_TIMEOUT with the
        timeout rounded up plus one second, a backstop for a worker that
        hangs. Returns the function unchanged, so it can still be called
        directly in tests. :meth:`run`, :meth:`serving` and :meth:`serve`
        run every registered function.
        """
        if callable(name):
            return self.function(None, timeout=timeout)(name)

        def register(fn: Callable[[_A], _T]) -> Callable[[_A], _T]:
            fname = name or getattr(fn, "__name__", None)
            if not fname:
                raise ConfigurationError("%r has no __name__: give the function a name" % (fn,))
            record = JobFunction(fname, fn, timeout)
            self.register(fname, record.server_timeout)
            self.handlers[convert_to_bytes(fname)] = record
            return fn

        return register

    def copy(self, servers: Iterable[ServerEntry] | None = None) -> AsyncWorker:
        """A new, unstarted worker with this one's client id, functions, codec and hooks.

        It connects to ``servers`` (by default, to this worker's servers)
        and shares no connection or job with this one. Tests use it to serve
        a module's worker on a test server without touching the original
        (see :func:`gear.testing.serving`).
        """
        twin = type(self)(
            self.client_id,
            servers,
            connect_timeout=self.connect_timeout,
            reconnect=self.reconnect,
            codec=self.codec,
            hooks=self.hooks,
        )
        if servers is None:
            for server in self.servers:
                twin.servers.append(ServerAddress(server.spec))
        for name, record in self.functions.items():
            twin.functions[name] = FunctionRecord(name, record.timeout)
        twin.handlers.update(self.handlers)
        return twin

    async def sync(self, timeout: float | None = None) -> None:
        """Return once every connected server has handled all this worker sent it.

        One ECHO round trip per connection: afterwards each server knows the
        functions registered so far (a test can submit and rely on a
        worker being there). Raises :class:`gear.TimeoutError` after
        ``timeout`` seconds; a connection lost meanwhile is skipped.
        """
        self._ensure_started()
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        for conn in list(self.active_connections):
            token = os.urandom(8).hex().encode("ascii")
            answered: asyncio.Future[None] = loop.create_future()
            conn.echo_waiters[token] = answered
            conn.send(encode_packet(_REQ, constants.ECHO_REQ, token))
            waits.append(answered)
        if not waits:
            return
        done, _ = await asyncio.wait(waits, timeout=timeout)
        if len(done) != len(waits):
            raise TimeoutError("A server did not answer ECHO_REQ within %s seconds" % (timeout,))

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

    async def serve(
        self,
        handlers: Mapping[str, Handler] | Mapping[bytes, Handler] | None = None,
        concurrency: int = 1,
        *,
        on_cancel: OnCancel = "requeue",
    ) -> None:
        """Run the registered functions for assigned jobs, at most ``concurrency`` at once.

        ``handlers`` maps more names to ``async`` handlers (they are
        registered if they are not yet, and win over a :meth:`function` of
        the same name). A handler's return value (bytes, str or None) is
        sent with WORK_COMPLETE unless the handler ended the job itself; an
        exception it raises, or a return value of another type (a
        :class:`TypeError`), is sent as WORK_EXCEPTION (clients without the
        ``exceptions`` option get WORK_FAIL). With a :attr:`codec`, handlers
        get the decoded arguments, their results are encoded, and exceptions
        travel as the structured payload :class:`gear.RemoteError` reads. A
        function registered with a timeout (here or with :meth:`register`)
        is cancelled past it. Returns after :meth:`stop`, once every job
        already taken has finished.

        Cancelling ``serve`` (Ctrl-C in ``asyncio.run``) cancels the running
        handlers. With ``on_cancel="requeue"`` their jobs are not failed: the
        connections that carry them are closed, so the server gives them to
        another worker (this worker reconnects; other jobs taken on those
        connections are requeued too). ``on_cancel="fail"`` sends WORK_FAIL
        for each instead.
        """
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        if on_cancel not in ("requeue", "fail"):
            raise ConfigurationError("on_cancel must be 'requeue' or 'fail', not %r" % (on_cancel,))
        table = dict(self.handlers)
        for name, handler in (handlers or {}).items():
            bname = convert_to_bytes(name)
            if bname not in self.functions:
                self.register(bname)
            record = self.functions[bname]
            text = bname.decode("utf8", "replace")
            table[bname] = JobFunction(text, handler, _seconds(record.timeout), is_async=True)
        self._ensure_started()
        loop = asyncio.get_running_loop()
        runners = [loop.create_task(self._runner(table, on_cancel)) for _ in range(concurrency)]
        self._runners.update(runners)
        try:
            await asyncio.gather(*runners)
        except asyncio.CancelledError:
            self._runners.difference_update(runners)
            if on_cancel == "requeue" and not self._runners and not self._waiters:
                while self._queue:
                    self._requeue(self._queue.popleft(), "nobody is left to run it")
            raise
        finally:
            for task in runners:
                task.cancel()
            self._runners.difference_update(runners)

    async def _runner(self, table: dict[bytes, JobFunction], on_cancel: OnCancel) -> None:
        while True:
            try:
                job = await self.get_job()
            except InterruptedError:
                while self._queue:
                    await self._run(table, self._queue.popleft(), on_cancel)
                return
            await self._run(table, job, on_cancel)

    async def _run(
        self, table: dict[bytes, JobFunction], job: AsyncWorkerJob, on_cancel: OnCancel
    ) -> None:
        hooks = self.hooks
        if hooks is None:
            await self._call(table, job, on_cancel)
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        call_hook(self.log, hooks.on_job_start, job)
        outcome: JobOutcome = "requeued"
        try:
            outcome = await self._call(table, job, on_cancel)
        finally:
            if job.outcome == "fail" and outcome == "requeued":
                outcome = "fail"  # cancelled with on_cancel="fail"
            call_hook(self.log, hooks.on_job_end, job, outcome, loop.time() - started)

    async def _call(
        self, table: dict[bytes, JobFunction], job: AsyncWorkerJob, on_cancel: OnCancel
    ) -> JobOutcome:
        """Run ``job``'s function and end the job; return how it ended."""
        function = table.get(job.binary_name)
        codec = self.codec
        try:
            if function is None:
                raise GearmanError("No handler for function %r" % (job.name,))
            result = await function.call(job, job if codec is None else codec.decode(job.arguments))
        except asyncio.CancelledError:
            if not job.ended:
                if on_cancel == "fail":
                    with contextlib.suppress(Exception):
                        job.fail()
                else:
                    self._requeue(job, "its handler was cancelled")
            raise
        except FunctionTimeout as e:
            self.log.error("Job %r (%s) failed: %s", job.handle, job.name, e)
            self._end_with_exception(job, builtins.TimeoutError(str(e)))
            return "timeout"
        except Exception as e:
            self.log.exception("Handler for %s (%r) raised", job.name, job.handle)
            self._end_with_exception(job, e)
            return job.outcome or "exception"
        if job.ended:
            return job.outcome or "complete"
        try:
            data = self._encode_result(job, result)
        except Exception as e:
            self.log.error("Job %r (%s) failed: %s: %s", job.handle, job.name, type(e).__name__, e)
            self._end_with_exception(job, e)
            return "exception"
        try:
            job.complete(data)
        except DisconnectError:
            self.log.warning(
                "Lost the connection of job %r before it completed; it is not ours any more",
                job.handle,
            )
            return "requeued"
        except Exception:
            self.log.exception("Unable to complete %r", job.handle)
        return "complete"

    def _encode_result(self, job: AsyncWorkerJob, result: Any) -> bytes | bytearray | str:
        if self.codec is not None:
            return self.codec.encode(result)
        if result is None:
            return b""
        if not isinstance(result, (bytes, bytearray, str)):
            raise TypeError(
                "the handler for %r returned %s, not bytes, str or None"
                % (job.name, type(result).__name__)
            )
        return result

    def _end_with_exception(self, job: AsyncWorkerJob, error: BaseException) -> None:
        """End ``job`` with WORK_EXCEPTION for ``error``: structured with a codec, else text."""
        if job.ended:
            return
        if self.codec is not None:
            data = exception_payload(error)
        else:
            data = ("%s: %s" % (type(error).__name__, error)).encode("utf8", "replace")
        try:
            job.exception(data)
        except Exception:
            self.log.exception("Unable to send WORK_EXCEPTION for %r", job.handle)

    def _requeue(self, job: AsyncWorkerJob, why: str) -> None:
        """Close ``job``'s connection so its server hands it (and the others on it) out again."""
        conn = job._conn
        job.ended = True
        if conn.connected:
            self.log.warning("Closing %s so the server requeues job %r: %s", conn, job.handle, why)
            conn.close()

    async def stop(self) -> None:
        """Stop taking jobs, let :meth:`serve` finish the ones it has, then return.

        Waits (up to ``grab_wait_timeout``) for outstanding GRAB_JOB_UNIQ
        requests to be answered, so a job assigned meanwhile
        still runs, then interrupts every :meth:`get_job` waiter with
        :class:`gear.InterruptedError`. The worker stays connected and can
        serve again afterwards.
        """
        self._stopping = True
        self._generation += 1
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.grab_wait_timeout
            while True:
                stuck = [c for c in self.active_connections if c.grabs]
                if not stuck:
                    break
                if loop.time() > deadline:
                    for conn in stuck:
                        self.log.warning("No reply to GRAB_JOB_UNIQ from %s; dropping it", conn)
                        conn.abort()
                    break
                await asyncio.sleep(0.005)
            self._update()
            waiters = list(self._waiters)
            self._waiters.clear()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(InterruptedError("The worker is stopping"))
            current = asyncio.current_task()
            runners = [t for t in self._runners if t is not current]
            if runners:
                await asyncio.gather(*runners, return_exceptions=True)
        finally:
            self._stopping = False

    async def run(
        self,
        concurrency: int = 8,
        *,
        signals: Iterable[int] = DEFAULT_SIGNALS,
        drain_timeout: float = 30.0,
    ) -> None:
        """Serve the registered functions until a signal, then drain and return.

        The first of ``signals`` (SIGINT and SIGTERM by default) stops
        taking new jobs and gives the running ones ``drain_timeout`` seconds
        to finish; the jobs still running then are requeued: their handlers
        are cancelled and their connections closed, so the server hands them
        to another worker without failing them. A second signal requeues at
        once. The previous handlers of the signals are restored on return.
        Signal handlers need the main thread and a loop that supports
        :meth:`asyncio.loop.add_signal_handler` (not Windows); pass
        ``signals=()`` elsewhere and use :meth:`serving`.
        """
        loop = asyncio.get_running_loop()
        stopping = loop.create_future()
        now = asyncio.Event()
        received: list[int] = []

        def on_signal(signum: int) -> None:
            received.append(signum)
            name = signal.Signals(signum).name
            if len(received) == 1:
                self.log.info(
                    "%s: finishing running jobs (up to %s s), taking no new ones",
                    name,
                    drain_timeout,
                )
                if not stopping.done():
                    stopping.set_result(None)
            else:
                self.log.warning("%s again: requeueing the running jobs now", name)
                now.set()

        installed: list[int] = []
        try:
            for signum in signals:
                loop.add_signal_handler(signum, on_signal, signum)
                installed.append(signum)
            async with self._serving(concurrency, None, drain_timeout, now) as task:
                await asyncio.wait((stopping, task), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    def serving(
        self,
        concurrency: int = 8,
        *,
        handlers: Mapping[str, Handler] | Mapping[bytes, Handler] | None = None,
        drain_timeout: float = 30.0,
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
        """Serve in the background for the block::

            async with worker, worker.serving(concurrency=8):
                await other_work()

        Leaving the block drains as :meth:`run` does after its first signal:
        no new jobs, ``drain_timeout`` seconds for the running ones, then
        the rest are requeued. Leaving it by an exception (or cancellation)
        requeues them at once.
        Yields the task running :meth:`serve`: awaiting it raises what made
        serving fail, and leaving the block raises that too. ``handlers`` is
        as for :meth:`serve`.
        """
        return self._serving(concurrency, handlers, drain_timeout, None)

    @contextlib.asynccontextmanager
    async def _serving(
        self,
        concurrency: int,
        handlers: Mapping[str, Handler] | Mapping[bytes, Handler] | None,
        drain_timeout: float,
        now: asyncio.Event | None,
    ) -> AsyncIterator[asyncio.Task[None]]:
        task = asyncio.create_task(self.serve(handlers, concurrency))
        try:
            yield task
        except BaseException:
            await self._drain(task, 0.0, None, check=False)
            raise
        await self._drain(task, drain_timeout, now)

    async def _drain(
        self,
        task: asyncio.Task[None],
        timeout: float,
        now: asyncio.Event | None,
        check: bool = True,
    ) -> None:
        """Stop ``task`` (a :meth:`serve`): let running jobs finish, requeue past ``timeout``."""
        if not task.done():
            stopper = asyncio.create_task(self.stop())
            waits: set[asyncio.Future[Any]] = {task}
            hurry = asyncio.create_task(now.wait()) if now is not None else None
            if hurry is not None:
                waits.add(hurry)
            try:
                if timeout > 0:
                    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if hurry is not None:
                    hurry.cancel()
                if not task.done():
                    left = len([r for r in self._runners if not r.done()])
                    self.log.warning("Requeueing the jobs of %d unfinished handlers", left)
                    task.cancel()
                await asyncio.wait((task,))
                stopper.cancel()
                await asyncio.wait((stopper,))
                self._stopping = False
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and check:
            raise error

    async def close(self) -> None:
        """Interrupt waiters, cancel :meth:`serve` and close every connection."""
        self._stopping = True
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_exception(InterruptedError("The worker is closed"))
        self._waiters.clear()
        for task in list(self._runners):
            task.cancel()
        await super().close()

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


AsyncWorker.__module__ = "gear"
AsyncWorkerJob.__module__ = "gear.worker"
