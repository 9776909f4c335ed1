"""How the asyncio worker calls a registered function: executor, deadline, current job.

A function registered with :meth:`gear.AsyncWorker.function` (or given to
:meth:`~gear.AsyncWorker.serve`) is either an ``async def``, awaited on the
event loop, or a plain ``def``, run in the loop's default thread executor so
it may block. With a ``timeout`` the call gets that many seconds: an
``async def`` is then cancelled; a thread cannot be stopped, so a plain
``def`` runs on in the background while its job ends, and should bound its
own blocking calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gear.worker.aio import AsyncWorkerJob

__all__ = ["JobFunction", "FunctionTimeout", "current_job"]

_current_job: contextvars.ContextVar[AsyncWorkerJob] = contextvars.ContextVar("gear_current_job")


def current_job() -> AsyncWorkerJob:
    """The job whose handler is running here (its task, or its thread for a plain ``def``).

    With a codec, handlers receive decoded arguments instead of the job;
    this is how they reach it to send status or data. Raises
    :class:`LookupError` outside a handler.
    """
    return _current_job.get()


class FunctionTimeout(Exception):
    """A registered function ran past its timeout (the worker reports it to the client)."""

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__("function %r ran past its timeout of %g s" % (name, timeout))
        self.name = name
        self.timeout = timeout


#: asyncio.timeout (Python 3.11+), or None.
_timeout: Callable[[float | None], Any] | None = getattr(asyncio, "timeout", None)


class JobFunction:
    """One registered function: the callable, its timeout, and how to call it."""

    __slots__ = ("fn", "is_async", "name", "timeout")

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        timeout: float | None = None,
        *,
        is_async: bool | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds, not %r" % (timeout,))
        self.name = name
        self.fn = fn
        self.timeout = timeout
        #: Awaited on the loop (``async def``, or any callable returning an
        #: awaitable when ``is_async=True``) rather than run in a thread.
        self.is_async = inspect.iscoroutinefunction(fn) if is_async is None else is_async

    def __repr__(self) -> str:
        return "<gear.worker.JobFunction %s timeout: %s>" % (self.name, self.timeout)

    @property
    def server_timeout(self) -> int | None:
        """The CAN_DO_TIMEOUT seconds: the timeout rounded up, plus one.

        The server's deadline is a backstop for a worker that hangs; it comes
        a little after the worker's own, so the client normally sees the
        worker's WORK_EXCEPTION naming the timeout rather than the server's
        bare WORK_FAIL.
        """
        if self.timeout is None:
            return None
        return math.ceil(self.timeout) + 1

    async def call(self, job: AsyncWorkerJob, argument: Any) -> Any:
        """Run the function on ``argument`` with ``job`` as :func:`current_job`.

        Raises :class:`FunctionTimeout` past the timeout, after the
        ``async def`` has been cancelled.
        """
        if not self.is_async:
            return await self._call_in_thread(job, argument)
        # An async function runs in the caller's task: no task of its own to
        # create per job, and cancelling the caller cancels it.
        token = _current_job.set(job)
        try:
            if self.timeout is None:
                return await self.fn(argument)
            if _timeout is None:  # Python 3.10
                return await self._call_in_task(job, argument)
            deadline = _timeout(self.timeout)
            try:
                async with deadline:
                    return await self.fn(argument)
            except TimeoutError:
                if deadline.expired():
                    raise FunctionTimeout(self.name, self.timeout) from None
                raise
        finally:
            _current_job.reset(token)

    async def _call_in_thread(self, job: AsyncWorkerJob, argument: Any) -> Any:
        context = contextvars.copy_context()
        context.run(_current_job.set, job)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, context.run, self.fn, argument)
        if self.timeout is None:
            return await future
        done, _ = await asyncio.wait((future,), timeout=self.timeout)
        if done:
            return future.result()
        future.cancel()  # the thread runs on; its result is dropped
        raise FunctionTimeout(self.name, self.timeout)

    async def _call_in_task(self, job: AsyncWorkerJob, argument: Any) -> Any:
        assert self.timeout is not None
        task = asyncio.ensure_future(self.fn(argument))
        try:
            done, _ = await asyncio.wait((task,), timeout=self.timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if done:
            return task.result()
        task.cancel()
        await asyncio.wait((task,))
        if not task.cancelled():
            task.exception()  # retrieved: the job ends with the timeout either way
        raise FunctionTimeout(self.name, self.timeout)
