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
from collections.abc import Awaitable, Callable
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


def _start(fn: Callable[..., Awaitable[Any]], argument: Any) -> asyncio.Future[Any]:
    awaitable: Awaitable[Any] = fn(argument)
    return asyncio.ensure_future(awaitable)


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
        context = contextvars.copy_context()
        context.run(_current_job.set, job)
        loop = asyncio.get_running_loop()
        task: asyncio.Future[Any]
        if self.is_async:
            # A task runs in a copy of the context current when it is created.
            task = context.run(_start, self.fn, argument)
        else:
            task = loop.run_in_executor(None, context.run, self.fn, argument)
        if self.timeout is None:
            return await task
        try:
            done, _ = await asyncio.wait((task,), timeout=self.timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if done:
            return task.result()
        task.cancel()
        if self.is_async:
            await asyncio.wait((task,))
            if not task.cancelled():
                task.exception()  # retrieved: the job ends with the timeout either way
        raise FunctionTimeout(self.name, self.timeout)
