"""Running jobs: :meth:`gear.AsyncWorker.serve`, ``run``, ``serving`` and ``stop``.

Each serve slot waits in ``get_job``, runs the job's function (an
``async def`` on the loop, a plain ``def`` in the executor) under its
timeout, and ends the job with what it returned or raised; cancelling
requeues or fails the jobs still running.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import signal
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from gear import constants
from gear.errors import (
    ConfigurationError,
    DisconnectError,
    GearmanError,
    InterruptedError,
)
from gear.hooks import JobOutcome, call_hook
from gear.payload import Codec, exception_payload
from gear.util import convert_to_bytes
from gear.worker.async_grab import AsyncGrabber
from gear.worker.async_job import AsyncWorkerJob, Handler, OnCancel
from gear.worker.functions import FunctionTimeout, JobFunction

__all__ = ["AsyncServing", "DEFAULT_SIGNALS"]

_REQ = constants.REQ

#: The signals :meth:`AsyncWorker.run` handles by default.
DEFAULT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


def _seconds(timeout: int | str | bytes | None) -> float | None:
    """A FunctionRecord's timeout as the worker enforces it (None or 0: none)."""
    if timeout is None:
        return None
    try:
        seconds = float(timeout)
    except ValueError:
        return None  # the server refuses it too; nothing to enforce here
    return seconds if seconds > 0 else None


class AsyncServing(AsyncGrabber):
    """The part of :class:`gear.AsyncWorker` that runs the jobs it takes."""

    #: The payload codec (see :class:`gear.AsyncWorker`).
    codec: Codec | None
    grab_wait_timeout: float = 5.0

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
        self._running_jobs += 1
        try:
            await self._run_counted(table, job, on_cancel)
        finally:
            self._running_jobs -= 1

    async def _run_counted(
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
                    # Idle runners (waiting for a job) hold nothing to requeue.
                    if self._running_jobs:
                        self.log.warning("Requeueing %d running jobs", self._running_jobs)
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
