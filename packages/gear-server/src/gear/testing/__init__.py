"""Test helpers for code that uses gear: a real geard in the test process.

Tests of Gearman code are most honest against a real server, and geard is
small enough to start inside the test process in a few milliseconds::

    async with gear.testing.server() as srv:
        async with gear.testing.serving(worker, srv):
            ...  # clients talk to srv.address

:func:`server` runs :class:`gear.Server` on a free port of 127.0.0.1 in its
own thread, so it serves threaded and asyncio code alike and works with any
event loop (or none). :func:`serving` runs a :class:`gear.AsyncWorker` for
the duration of a block. The pytest plugin (:mod:`gear.testing.pytest_plugin`,
loaded automatically when gear-server is installed) wraps both as fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gear
    from gear.server import Server

__all__ = ["InProcessServer", "server", "serving"]

LOOPBACK = "127.0.0.1"


class InProcessServer:
    """A geard in this process, listening on a free port of ``host``.

    Use it with ``with`` or ``async with`` (or call :meth:`start` and
    :meth:`stop`). ``options`` go to :class:`gear.Server` (``acl=``,
    ``ssl_key=``, ``job_retries=``, ...). :meth:`stop` may be called inside
    the block to test what clients and workers do when the server goes
    away.
    """

    def __init__(self, host: str = LOOPBACK, port: int = 0, **options: Any) -> None:
        self.host = host
        self._port = port
        self._options = options
        self._server: Server | None = None

    def __repr__(self) -> str:
        state = "port %d" % self.port if self._server is not None else "not started"
        return "<gear.testing.InProcessServer %s %s>" % (self.host, state)

    @property
    def server(self) -> Server:
        """The running :class:`gear.Server` (its queues, connections, ...)."""
        if self._server is None:
            raise RuntimeError("the server has not been started")
        return self._server

    @property
    def port(self) -> int:
        """The port it listens on, picked by the system unless one was given."""
        return int(self.server.port)

    @property
    def address(self) -> str:
        """``"host:port"``, as ``servers=`` and the ``gearman`` tool take it."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (host, self.port)

    def start(self) -> InProcessServer:
        """Start serving; returns once the server listens."""
        from gear.server import Server

        if self._server is not None and not self._server.stopped:
            raise RuntimeError("the server is already running")
        self._server = Server(self._port, host=self.host, **self._options)
        return self

    def stop(self) -> None:
        """Stop at once: every connection is closed and queued jobs are dropped."""
        if self._server is not None:
            self._server.shutdown()

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> InProcessServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


def server(*, host: str = LOOPBACK, port: int = 0, **options: Any) -> InProcessServer:
    """A geard for a ``with`` or ``async with`` block (see :class:`InProcessServer`)."""
    return InProcessServer(host, port, **options)


def _entry(target: Any) -> Any:
    if isinstance(target, InProcessServer):
        return target.address
    return target


@contextlib.asynccontextmanager
async def serving(
    worker: gear.AsyncWorker,
    *servers: Any,
    handlers: Mapping[str, Callable[[Any], Awaitable[Any]]] | None = None,
    concurrency: int = 4,
    drain_timeout: float = 10.0,
) -> AsyncIterator[gear.AsyncWorker]:
    """Serve ``worker``'s functions on ``servers`` for the block.

    What runs is ``worker.copy(servers)`` (:meth:`gear.AsyncWorker.copy`):
    the same client id, functions, codec and hooks, connected only to
    ``servers`` (:class:`InProcessServer` objects or ``servers=`` entries;
    by default the worker's own). So a worker defined once in a module, with
    production servers, can be served by every test and is never connected
    itself. The block starts once a server is connected and has handled the
    functions' registration (:meth:`gear.AsyncWorker.sync`); :class:`gear.NoConnectedServersError`
    if none comes up. ``handlers`` adds handlers as :meth:`gear.AsyncWorker.serve`
    does. Leaving the block lets the jobs the copy holds finish (up to
    ``drain_timeout`` seconds) and closes it. Yields the running copy.
    """
    entries = [_entry(target) for target in servers]
    if not entries and not worker.servers:
        raise ValueError("serving() needs a server: pass one, or add one to the worker")
    twin = worker.copy(entries or None)
    async with twin, twin.serving(concurrency, handlers=handlers, drain_timeout=drain_timeout):
        await twin.sync(twin.connect_timeout)
        yield twin
