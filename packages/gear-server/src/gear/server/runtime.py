"""Running geard: the listening socket, the event loop, the tick, stopping.

``gear.Server`` runs its loop in a thread of its own (gear 0.16's model:
it serves as soon as it is constructed); :func:`gear.server.serve` runs the
same server as a task of a loop the application already has. Either way
the server's state is touched only on that loop.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from gear.server._build import BUILD
from gear.server.transport import Transport

if TYPE_CHECKING:
    from gear.server.monitor import Monitor

__all__ = [
    "EVENT_LOOPS",
    "Runtime",
    "bind",
    "bind_error",
    "check_event_loop",
    "engine_compiled",
    "loop_name",
    "new_event_loop",
]

_T = TypeVar("_T")


#: The choices of ``event_loop`` (``geard --loop``).
EVENT_LOOPS = ("auto", "asyncio", "uvloop")


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """A new loop of ``kind``: ``auto`` is uvloop's when it is installed, else asyncio's.

    gear-server depends on uvloop where uvloop ships wheels, so ``auto`` is
    uvloop there; ``asyncio`` opts out. ``uvloop`` when it is missing raises
    ImportError naming the package.
    """
    check_event_loop(kind)
    if kind == "asyncio":
        return asyncio.new_event_loop()
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if kind == "uvloop":
            raise ImportError("event_loop 'uvloop' needs the uvloop package: pip install uvloop")
        return asyncio.new_event_loop()
    return cast(asyncio.AbstractEventLoop, uvloop.new_event_loop())


def check_event_loop(kind: str) -> None:
    """Refuse an unknown ``kind``, or ``uvloop`` when it is not installed."""
    if kind not in EVENT_LOOPS:
        raise ValueError("event_loop must be one of %s, not %r" % (", ".join(EVENT_LOOPS), kind))
    if kind == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ImportError("event_loop 'uvloop' needs the uvloop package: pip install uvloop")


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what the start-up line says geard runs on."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def engine_compiled() -> bool:
    """True when the engine runs as a compiled extension module (mypyc), not Python source."""
    module = importlib.import_module("gear.server.engine")
    return not (getattr(module, "__file__", None) or "").endswith(".py")


def bind(
    host: str | None, port: int | str, backlog: int, keepalive: Callable[[Any], None] | None
) -> socket.socket:
    """A listening, non-blocking socket; IPv6 (dual-stack) before IPv4 when both resolve."""
    try:
        infos = socket.getaddrinfo(
            host,
            port,
            socket.AF_UNSPEC,
            socket.SOCK_STREAM,
            0,
            socket.AI_PASSIVE | socket.AI_ADDRCONFIG,
        )
    except socket.gaierror as e:
        raise bind_error(e, host, port) from e
    infos.sort(key=lambda info: info[0], reverse=True)
    last: OSError | None = None
    for family, socktype, proto, _, addr in infos:
        try:
            sock = socket.socket(family, socktype, proto)
        except OSError as e:
            last = e
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if keepalive is not None:
                keepalive(sock)
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            last = e
            continue
        return sock
    assert last is not None  # getaddrinfo returns at least one address
    raise bind_error(last, host, port) from last


def bind_error(cause: OSError, host: str | None, port: int | str) -> OSError:
    """An OSError that says where: geard shows it, and ``cause`` says why."""
    where = "%s port %s" % (host, port) if host else "port %s" % (port,)
    reason = cause.strerror or str(cause)
    return OSError(cause.errno, "Could not open socket on %s: %s" % (where, reason))


class Runtime(Transport):
    """Start, tick and stop, on the server's own thread or inside a running loop."""

    host: str | None
    port: int
    use_ssl: bool
    event_loop: str

    def _init_runtime(self) -> None:
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._inline = False
        self._on_stop: Callable[[], None] = lambda: None
        #: The HTTP listener of ``metrics_port`` (None without one).
        self.monitor: Monitor | None = None

    def _bind(self, port: int | str) -> socket.socket:
        return bind(self.host, port, self.backlog, self._set_keepalive if self.keepalive else None)

    def _start_thread(self) -> None:
        self.loop = new_event_loop(self.event_loop)
        self.timers = self.loop
        self._thread = threading.Thread(target=self._run, name="geard", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._loop_exception)

        def stop_loop() -> None:
            loop.call_soon(loop.stop)

        self._on_stop = stop_loop
        try:
            loop.run_until_complete(self._start())
        except BaseException as e:
            self._startup_error = e
            self._close_resources()
            loop.run_until_complete(self._aclose_store())
            loop.close()
            self._stopped.set()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._aclose_store())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self.running = False
                self._stopped.set()
                self.log.info("Server stopped")

    async def _serve_here(self, started: Callable[[Any], object] | None) -> None:
        """Serve on the running loop until :meth:`shutdown` or cancellation."""
        loop = asyncio.get_running_loop()
        self.loop = self.timers = loop
        self._thread = threading.current_thread()
        self._inline = True
        done: asyncio.Future[None] = loop.create_future()
        self._on_stop = lambda: None if done.done() else done.set_result(None)
        try:
            await self._start()
        except BaseException:
            self._close_resources()
            await self._aclose_store()
            self._stopped.set()
            raise
        try:
            if started is not None:
                started(self)
            await done
        finally:
            self._stop()
            await self._aclose_store()
            self.running = False
            self._stopped.set()
            self.log.info("Server stopped")

    def _close_listeners(self) -> None:
        self.socket.close()
        if self.monitor is not None:
            self.monitor.close()

    def _close_resources(self) -> None:
        self._close_listeners()
        if self.queue_store is not None:
            self.queue_store.close()

    async def _aclose_store(self) -> None:
        """Let the store write what is pending and disconnect (network stores)."""
        if self.queue_store is not None:
            try:
                await self.queue_store.aclose()
            except Exception:
                self.log.exception("Closing the queue store failed")

    async def _start(self) -> None:
        if self.queue_store is not None:
            await self.queue_store.open(
                self
            )  # before the first peer: no submit meets a closed store
            self._restore(self.queue_store)
        self.loop.add_reader(self.socket.fileno(), self._accept)
        self._listening = True
        self.loop.call_later(1.0, self._tick)
        if self.monitor is not None:
            await self.monitor.start(self.loop)
        self.log.info(
            "Listening on %s port %s (%s%s event loop, %s build)",
            self.socket.getsockname()[0],
            self.port,
            "TLS, " if self.use_ssl else "",
            loop_name(self.loop),
            BUILD,
        )

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, (ConnectionError, OSError)) or "SSL" in str(context.get("message")):
            self._log_limited(
                "connection", logging.INFO, "Connection error: %s", context.get("message")
            )
            return
        loop.default_exception_handler(context)

    def shutdown(self, graceful: bool = False) -> None:
        """Stop serving: close the listener and every connection, then the loop.

        Safe to call twice and from any thread, including from the server's
        own loop (e.g. the ``shutdown`` admin command). With ``graceful``
        (SIGTERM, ``shutdown graceful``) it returns at once: new connections
        and jobs are refused, running jobs get ``shutdown_timeout`` seconds
        to finish, then the store is flushed and the server stops; use
        :meth:`wait`.
        """
        if self._stopped.is_set():
            return
        on_loop = threading.current_thread() is self._thread
        if graceful:
            if on_loop:
                self._begin_graceful()
            else:
                try:
                    self.loop.call_soon_threadsafe(self._begin_graceful)
                except RuntimeError:
                    pass
            return
        if on_loop:
            self._stop()
            return
        try:
            self.loop.call_soon_threadsafe(self._stop)
        except RuntimeError:
            pass
        if self._inline:
            self._stopped.wait(30)
        else:
            self._thread.join(30)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped; True if it has."""
        return self._stopped.wait(timeout)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _begin_graceful(self) -> None:
        if self._graceful or self._stopping:
            return
        self._graceful = True
        self._stop_listening()
        self.log.info(
            "Graceful shutdown: refusing new connections and jobs; waiting up to %gs for %d"
            " running jobs",
            self.shutdown_timeout,
            self.running_jobs,
        )
        self.loop.call_later(self.shutdown_timeout, self._graceful_deadline)
        self._check_graceful()

    def _graceful_deadline(self) -> None:
        if self._stopping:
            return
        self.log.warning(
            "Graceful shutdown: %d jobs still running after %gs; stopping anyway%s",
            self.running_jobs,
            self.shutdown_timeout,
            " (background jobs stay in the queue file)" if self.queue_store is not None else "",
        )
        self._stop()

    def _stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.running = False
        self.log.info("Shutting down")
        self._stop_listening()
        for task in list(self._pending.values()):
            task.cancel()
        self._finish_commit_now()
        self._flush()
        for conn in list(self._connections):
            conn.closed = True
            conn.abort()
        if self.queue_store is not None:
            self.queue_store.close()
        if self.monitor is not None:
            self.monitor.close()
        if self.statsd is not None and hasattr(self.statsd, "close"):
            self.statsd.close()
        self._on_stop()

    def _call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the loop thread (state is only touched there)."""
        if threading.current_thread() is self._thread or not self.loop.is_running():
            return fn()

        async def run() -> _T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def _tick(self) -> None:
        if self._stopping:
            return
        self._expire_partial()
        self._report_suppressed()
        if self.statsd is not None:
            self._report_stats()
        self.loop.call_later(1.0, self._tick)
