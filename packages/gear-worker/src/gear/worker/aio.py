"""The asyncio worker :class:`AsyncWorker`: its constructor, ``function`` and ``copy``.

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

The class is built in layers, one module each: :mod:`gear.worker.async_job`
(the job and handler types), :mod:`gear.worker.async_grab` (registering and
taking jobs) and :mod:`gear.worker.async_serve` (running them); the names
are importable from here too.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from gear import constants
from gear._aio import ServerAddress
from gear._server_spec import ServerEntry
from gear.codec import encode_packet
from gear.errors import (
    ConfigurationError,
    TimeoutError,
)
from gear.hooks import Hooks
from gear.payload import Codec
from gear.reconnect import ReconnectPolicy
from gear.util import convert_to_bytes
from gear.worker.async_job import AsyncWorkerJob, Handler, HandlerResult, OnCancel
from gear.worker.async_serve import DEFAULT_SIGNALS, AsyncServing
from gear.worker.functions import JobFunction
from gear.worker.worker import FunctionRecord

__all__ = [
    "AsyncWorker",
    "AsyncWorkerJob",
    "Handler",
    "HandlerResult",
    "OnCancel",
    "DEFAULT_SIGNALS",
]

_REQ = constants.REQ
_A = TypeVar("_A")
_T = TypeVar("_T")


class AsyncWorker(AsyncServing):
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
        #: Functions registered with :meth:`function`, by name.
        self.handlers: dict[bytes, JobFunction] = {}

    def __repr__(self) -> str:
        return "<gear.AsyncWorker 0x%x>" % (id(self),)

    # -- functions --------------------------------------------------------

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


AsyncWorker.__module__ = "gear"
