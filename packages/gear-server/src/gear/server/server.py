"""geard's engine: an asyncio Gearman job server.

One event loop runs in a background thread (so ``gear.Server(...)`` serves
as soon as it is constructed, as in gear 0.16). Each accepted socket gets a
:class:`GeardConnection` protocol object; bytes go through gear-core's sans-IO
:class:`~gear.codec.Decoder`. Every function has three deques (high, normal,
low), a unique-id index and a set of sleeping workers, so submit, grab and
wake-up cost O(1) in the queue length and in the number of idle connections.
Replies are collected per connection and written once per loop turn.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import importlib
import logging
import os
import re
import resource
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from gear import constants as C
from gear.admin import ServerAdminRequest
from gear.codec import DEFAULT_MAX_ADMIN_LINE, Decoder
from gear.connection import set_keepalive
from gear.errors import LineTooLongError, RemoteProtocolError
from gear.packet import Packet
from gear.server import schedule
from gear.server._statsd import StatsClientLike
from gear.server._version import __version__
from gear.server.job import DONE, PRIORITY_INDEX, QUEUED, RUNNING, SCHEDULED, ServerJob
from gear.server.store import QueueStore, StoredJob
from gear.tls import check_tls_files, load_context, peer_common_name

if TYPE_CHECKING:
    from gear.acl import ACLEntry

__all__ = ["Server", "GeardConnection", "FunctionQueue"]

_HEADER = struct.Struct("!4sII")
_REQ = C.REQ
_RES = C.RES

DEFAULT_MAX_PACKET_SIZE = 32 * 1024 * 1024
"""Largest packet payload accepted by default (32 MiB)."""
DEFAULT_MAX_OUTPUT_BUFFER = 64 * 1024 * 1024
"""Bytes queued for a peer that does not read before it is disconnected."""
DEFAULT_PARTIAL_TIMEOUT = 120.0
"""Seconds a connection may hold an unfinished packet or line (slowloris)."""
DEFAULT_BACKLOG = 8192
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
"""Seconds a graceful shutdown waits for running jobs before stopping anyway."""
DEFAULT_TLS_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a new TLS connection has to finish its handshake."""
DEFAULT_MAX_PARTIAL_TOTAL = 256 * 1024 * 1024
"""Bytes of unfinished packets and lines held for all connections together."""
DEFAULT_MAX_FUNCTION_NAME = 512
"""Longest function name (gearmand's limit)."""
DEFAULT_MAX_UNIQUE_ID = 64
"""Longest unique id (gearmand's limit)."""
DEFAULT_MAX_CLIENT_ID = 128
"""Longest client id (SET_CLIENT_ID)."""
MAX_TIMEOUT = 2**31 - 1
"""Largest CAN_DO_TIMEOUT, in seconds."""
MAX_EPOCH = 2**40
"""Largest SUBMIT_JOB_EPOCH run time (Unix seconds, about year 36800)."""
_WRITE_HIGH_WATER = 1024 * 1024
_ACCEPT_BATCH = 64
_ACCEPT_BACKOFF = 0.25
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_LISTING_CHUNK = 64 * 1024
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_CONTROL_TEXT = re.compile(r"[\x00-\x1f\x7f]")

_T = TypeVar("_T")


def _packet(ptype: int, data: bytes = b"") -> bytes:
    return _HEADER.pack(_RES, ptype, len(data)) + data


_NOOP = _packet(C.NOOP)
_NO_JOB = _packet(C.NO_JOB)


class ACLLike(Protocol):
    """What the server needs from :class:`gear.ACL` (gear-acl)."""

    def canRegister(self, subject: str | None, name: str) -> bool: ...
    def canInvoke(self, subject: str | None, name: str) -> bool: ...
    def canGrant(self, subject: str | None) -> bool: ...
    def canAdmin(self, subject: str | None) -> bool: ...
    def grantInvoke(self, subject: str, invoke: str) -> None: ...
    def grantRegister(self, subject: str, register: str) -> None: ...
    def grantGrant(self, subject: str) -> None: ...
    def revokeInvoke(self, subject: str) -> None: ...
    def revokeRegister(self, subject: str) -> None: ...
    def revokeGrant(self, subject: str) -> None: ...
    def remove(self, subject: str) -> None: ...
    def getEntries(self) -> list[ACLEntry]: ...


class FunctionQueue:
    """Everything the server keeps per function name."""

    __slots__ = (
        "counts",
        "max_queue",
        "name",
        "queues",
        "running",
        "scheduled",
        "sleepers",
        "uniques",
        "workers",
    )

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.queues: tuple[deque[ServerJob], deque[ServerJob], deque[ServerJob]] = (
            deque(),
            deque(),
            deque(),
        )
        self.counts = [0, 0, 0]
        self.running = 0
        self.scheduled = 0
        self.workers = 0
        self.sleepers: dict[GeardConnection, None] = {}
        self.uniques: dict[bytes, ServerJob] = {}
        self.max_queue: tuple[int, int, int] | None = None

    @property
    def queued(self) -> int:
        return self.counts[0] + self.counts[1] + self.counts[2]

    @property
    def total(self) -> int:
        return self.counts[0] + self.counts[1] + self.counts[2] + self.running + self.scheduled


class GeardConnection(asyncio.Protocol):
    """One accepted connection: client, worker or admin session (or all three).

    Attribute names follow gear 0.16's ``ServerConnection`` where they exist
    (``client_id``, ``functions``, ``ssl_subject``, ``state``, ``host``,
    ``port``, ``related_jobs``).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.host = ""
        self.port = 0
        self.fd = -1
        self.handle_prefix = b"H:"
        self.client_id: bytes | None = None
        self.functions: set[bytes] = set()
        self.abilities: dict[bytes, FunctionQueue] = {}
        self.timeouts: dict[bytes, float] = {}
        self.state = "INIT"
        self.ssl_subject: str | None = None
        self.options: set[bytes] = set()
        self.client_jobs: dict[bytes, ServerJob] = {}
        self.worker_jobs: dict[bytes, ServerJob] = {}
        self.decoder = Decoder(server.max_packet_size, server.max_admin_line)
        self.on_frame = partial(server._frame, self)
        self.on_line = partial(server._line, self)
        self.out: list[bytes] = []
        self.write_paused = False
        self.closed = False
        self.partial_since: float | None = None
        self.buffered = 0
        self.connect_time = time.time()

    def __repr__(self) -> str:
        return "<gear.ServerConnection 0x%x name: %r host: %s port: %s>" % (
            id(self),
            self.client_id,
            self.host,
            self.port,
        )

    @property
    def related_jobs(self) -> dict[bytes, ServerJob]:
        """Jobs this connection submitted (foreground) or is running."""
        return {**self.client_jobs, **self.worker_jobs}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.server._connection_made(self, cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:
        self.server._data_received(self, data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connection_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()


def _split(data: bytes, count: int, ptype: int) -> list[bytes]:
    parts = data.split(b"\x00", count - 1)
    if len(parts) != count:
        raise RemoteProtocolError(
            "%s needs %d NUL-separated arguments, got %d" % (C.types[ptype], count, len(parts))
        )
    return parts


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _acl_line(entry: Any) -> bytes:
    """One ``acl list`` line: gear 0.16's, plus ``admin=True`` only where it is set."""
    fields = [
        _escape_text(str(entry.subject)),
        "register=%s" % _escape_text(str(entry.register)),
        "invoke=%s" % _escape_text(str(entry.invoke)),
        "grant=%s" % (entry.grant,),
    ]
    if getattr(entry, "admin", False):
        fields.append("admin=True")
    return ("\t".join(fields) + "\n").encode("utf-8", "backslashreplace")


#: Admin commands that change the server: with an ACL they need ``admin``.
_ADMIN_VERBS = frozenset((b"shutdown", b"maxqueue", b"create", b"drop"))


def _bounded_int(raw: bytes, what: str, high: int) -> int:
    """A decimal in 0..``high``; anything else is the peer's error, not ours."""
    text = raw.strip()
    if not text.isdigit() or len(text) > len(str(high)) or int(text) > high:
        raise RemoteProtocolError(
            "%s %r is not an integer from 0 to %d" % (what, bytes(raw[:40]), high)
        )
    return int(text)


def _escape_text(text: str) -> str:
    """Control characters as ``\\xNN``: a listing line stays one line."""
    return _CONTROL_TEXT.sub(lambda m: "\\x%02x" % ord(m.group()), text)


def _err_text(text: str) -> bytes:
    """gearmand's admin error style: ``ERR CODE words+joined+by+plus``."""
    return text.replace(" ", "+").encode()


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop()
    return cast(asyncio.AbstractEventLoop, uvloop.new_event_loop())


def _default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(16, soft - 32)


#: packet type -> (internal handler, gear 0.16 hook name). Overriding a hook in
#: a subclass routes that packet type through it as a :class:`gear.Packet`.
_HANDLERS: dict[int, tuple[str, str]] = {
    C.SUBMIT_JOB: ("_on_submit", "handleSubmitJob"),
    C.SUBMIT_JOB_BG: ("_on_submit", "handleSubmitJobBg"),
    C.SUBMIT_JOB_HIGH: ("_on_submit", "handleSubmitJobHigh"),
    C.SUBMIT_JOB_HIGH_BG: ("_on_submit", "handleSubmitJobHighBg"),
    C.SUBMIT_JOB_LOW: ("_on_submit", "handleSubmitJobLow"),
    C.SUBMIT_JOB_LOW_BG: ("_on_submit", "handleSubmitJobLowBg"),
    C.SUBMIT_JOB_SCHED: ("_on_submit_job_sched", "handleSubmitJobSched"),
    C.SUBMIT_JOB_EPOCH: ("_on_submit_job_epoch", "handleSubmitJobEpoch"),
    C.SUBMIT_REDUCE_JOB: ("_on_submit_reduce_job", ""),
    C.SUBMIT_REDUCE_JOB_BACKGROUND: ("_on_submit_reduce_job", ""),
    C.GRAB_JOB: ("_on_grab_job", "handleGrabJob"),
    C.GRAB_JOB_UNIQ: ("_on_grab_job_uniq", "handleGrabJobUniq"),
    C.GRAB_JOB_ALL: ("_on_grab_job_all", "handleGrabJobAll"),
    C.PRE_SLEEP: ("_on_pre_sleep", "handlePreSleep"),
    C.CAN_DO: ("_on_can_do", "handleCanDo"),
    C.CAN_DO_TIMEOUT: ("_on_can_do_timeout", "handleCanDoTimeout"),
    C.CANT_DO: ("_on_cant_do", "handleCantDo"),
    C.RESET_ABILITIES: ("_on_reset_abilities", "handleResetAbilities"),
    C.SET_CLIENT_ID: ("_on_set_client_id", "handleSetClientID"),
    C.WORK_DATA: ("_on_work_data", "handleWorkData"),
    C.WORK_WARNING: ("_on_work_warning", "handleWorkWarning"),
    C.WORK_STATUS: ("_on_work_status", "handleWorkStatus"),
    C.WORK_COMPLETE: ("_on_work_complete", "handleWorkComplete"),
    C.WORK_FAIL: ("_on_work_fail", "handleWorkFail"),
    C.WORK_EXCEPTION: ("_on_work_exception", "handleWorkException"),
    C.GET_STATUS: ("_on_get_status", "handleGetStatus"),
    C.GET_STATUS_UNIQUE: ("_on_get_status_unique", "handleGetStatusUnique"),
    C.ECHO_REQ: ("_on_echo_req", "handleEchoReq"),
    C.OPTION_REQ: ("_on_option_req", "handleOptionReq"),
    C.ALL_YOURS: ("_on_all_yours", "handleAllYours"),
}


#: submit packet type -> (priority index, background)
_SUBMIT_MODES: dict[int, tuple[int, bool]] = {
    C.SUBMIT_JOB: (1, False),
    C.SUBMIT_JOB_BG: (1, True),
    C.SUBMIT_JOB_HIGH: (0, False),
    C.SUBMIT_JOB_HIGH_BG: (0, True),
    C.SUBMIT_JOB_LOW: (2, False),
    C.SUBMIT_JOB_LOW_BG: (2, True),
}


def _hook(ptype: int) -> Callable[[Server, Packet], None]:
    def method(self: Server, packet: Packet) -> None:
        self._internal_handler(ptype)(cast(GeardConnection, packet.connection), bytes(packet.data))

    method.__doc__ = (
        "Handle one %s packet (override point; call the base to keep it)." % (C.types[ptype])
    )
    return method


class Server:
    """A Gearman job server that starts serving when constructed.

    Positional parameters and their order are gear 0.16's. Keyword-only
    extras set the limits that keep one bad peer from hurting the others:
    ``max_packet_size`` (bytes of one packet payload), ``max_admin_line``,
    ``max_output_buffer`` (bytes queued for a peer that does not read),
    ``max_connections``, ``partial_timeout`` (seconds an unfinished packet or
    admin line may sit in a buffer), ``backlog``, ``job_retries`` (how many
    times a job whose worker disconnected is requeued before it is failed;
    None is unlimited) and ``queue_store`` (see :mod:`gear.server.store`).
    ``queue_file`` is a shortcut for ``queue_store=SQLiteQueueStore(path)``:
    background jobs then survive a crash or restart (a bad file raises
    :class:`~gear.server.store.QueueStoreError`). ``shutdown_timeout`` is how
    long a graceful shutdown waits for running jobs.
    ``tls_handshake_timeout`` bounds a TLS handshake (connections in their
    handshake count toward ``max_connections``), ``max_partial_total`` the
    unfinished input of all connections together, and ``max_function_name``,
    ``max_unique_id`` and ``max_client_id`` the sizes of those fields.
    Call :meth:`shutdown` to stop.
    """

    def __init__(
        self,
        port: int | str = 4730,
        ssl_key: str | None = None,
        ssl_cert: str | None = None,
        ssl_ca: str | None = None,
        statsd_host: str | None = None,
        statsd_port: int = 8125,
        statsd_prefix: str | None = None,
        server_id: str | None = None,
        acl: ACLLike | None = None,
        host: str | None = None,
        keepalive: bool = False,
        tcp_keepidle: int = 7200,
        tcp_keepintvl: int = 75,
        tcp_keepcnt: int = 9,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_admin_line: int = DEFAULT_MAX_ADMIN_LINE,
        max_output_buffer: int = DEFAULT_MAX_OUTPUT_BUFFER,
        max_connections: int | None = None,
        partial_timeout: float = DEFAULT_PARTIAL_TIMEOUT,
        backlog: int = DEFAULT_BACKLOG,
        job_retries: int | None = None,
        queue_store: QueueStore | None = None,
        queue_file: str | os.PathLike[str] | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        max_partial_total: int = DEFAULT_MAX_PARTIAL_TOTAL,
        max_function_name: int = DEFAULT_MAX_FUNCTION_NAME,
        max_unique_id: int = DEFAULT_MAX_UNIQUE_ID,
        max_client_id: int = DEFAULT_MAX_CLIENT_ID,
    ) -> None:
        self.server_id = server_id
        name = "gear.Server" + (".%s" % server_id if server_id else "")
        self.log = logging.getLogger(name)
        self.host = host
        self.ssl_key = ssl_key
        self.ssl_cert = ssl_cert
        self.ssl_ca = ssl_ca
        self.use_ssl = check_tls_files(ssl_key, ssl_cert, ssl_ca)
        self.acl: ACLLike | None = acl
        self.keepalive = keepalive
        self.tcp_keepidle = tcp_keepidle
        self.tcp_keepintvl = tcp_keepintvl
        self.tcp_keepcnt = tcp_keepcnt
        self.max_packet_size = max_packet_size
        self.max_admin_line = max_admin_line
        self.max_output_buffer = max_output_buffer
        self.max_connections = (
            max_connections if max_connections is not None else _default_max_connections()
        )
        self.partial_timeout = partial_timeout
        self.backlog = backlog
        self.job_retries = job_retries
        self.queue_store = queue_store
        self.shutdown_timeout = shutdown_timeout
        self.tls_handshake_timeout = tls_handshake_timeout
        self.max_partial_total = max_partial_total
        self.max_function_name = max_function_name
        self.max_unique_id = max_unique_id
        self.max_client_id = max_client_id
        self._store_dirty = False
        self._committing = False
        self._commit_gen = 0
        self._held: dict[GeardConnection, bytes] = {}

        self.jobs: dict[bytes, ServerJob] = {}
        self.functions: set[bytes] = set()
        self.function_queues: dict[bytes, FunctionQueue] = {}
        self.running_jobs = 0
        self.max_handle = 0
        self.connection_map: dict[int, GeardConnection] = {}
        self.poll = None
        self.running = True
        self._connections: dict[GeardConnection, None] = {}
        self._dirty: list[GeardConnection] = []
        self._flush_scheduled = False
        self._partial: set[GeardConnection] = set()
        self._buffered_total = 0
        self._pending: dict[GeardConnection, asyncio.Task[None]] = {}
        self._listening = False
        self._accept_retry: asyncio.TimerHandle | None = None
        self._log_state: dict[str, list[Any]] = {}
        self._created: set[bytes] = set()
        self._scheduled: list[tuple[float, int, ServerJob]] = []
        self._schedule_timer: asyncio.TimerHandle | None = None
        self._graceful = False
        self._stopping = False
        self._stopped = threading.Event()
        self._packet_counts: dict[int, int] = {}
        self._trace = False
        self._last_gauges: tuple[int, int, int] | None = None

        self.statsd: StatsClientLike | None = None
        if statsd_host:
            self.statsd = self._make_statsd(statsd_host, statsd_port, statsd_prefix)

        self._ssl_context = (
            load_context(ssl_key, ssl_cert, ssl_ca, server_side=True)
            if ssl_key and ssl_cert and ssl_ca
            else None
        )
        self.socket = self._bind(port)
        #: The port listened on (the real one when ``0`` was given).
        self.port: int = self.socket.getsockname()[1]
        self._dispatch = self._build_dispatch()

        if queue_file is not None:
            if queue_store is not None:
                self.socket.close()
                raise ValueError("give queue_file or queue_store, not both")
            from gear.server.sqlite_store import SQLiteQueueStore

            try:
                self.queue_store = SQLiteQueueStore(queue_file)
            except BaseException:
                self.socket.close()
                raise

        self.loop = _new_event_loop()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="geard", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error

    # ------------------------------------------------------------------
    # lifecycle

    def _bind(self, port: int | str) -> socket.socket:
        try:
            infos = socket.getaddrinfo(
                self.host,
                port,
                socket.AF_UNSPEC,
                socket.SOCK_STREAM,
                0,
                socket.AI_PASSIVE | socket.AI_ADDRCONFIG,
            )
        except socket.gaierror as e:
            raise self._bind_error(e, port) from e
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
                if self.keepalive:
                    self._set_keepalive(sock)
                sock.bind(addr)
                sock.listen(self.backlog)
                sock.setblocking(False)
            except OSError as e:
                sock.close()
                last = e
                continue
            return sock
        assert last is not None  # getaddrinfo returns at least one address
        raise self._bind_error(last, port) from last

    def _bind_error(self, cause: OSError, port: int | str) -> OSError:
        """An OSError that says where: geard shows it, and ``cause`` says why."""
        where = "%s port %s" % (self.host, port) if self.host else "port %s" % (port,)
        reason = cause.strerror or str(cause)
        return OSError(cause.errno, "Could not open socket on %s: %s" % (where, reason))

    def _set_keepalive(self, sock: Any) -> None:
        set_keepalive(sock, self.tcp_keepidle, self.tcp_keepintvl, self.tcp_keepcnt, self.log)

    def _make_statsd(self, host: str, port: int, prefix: str | None) -> StatsClientLike:
        import gear

        module = getattr(gear, "statsd", None)
        if module is not None:
            return cast(StatsClientLike, module.StatsClient(host, port, prefix))
        from gear.server._statsd import StatsClient

        return StatsClient(host, port, prefix)

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._loop_exception)
        try:
            loop.run_until_complete(self._start())
        except BaseException as e:
            self._startup_error = e
            self.socket.close()
            if self.queue_store is not None:
                self.queue_store.close()
            loop.close()
            self._stopped.set()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self.running = False
                self._stopped.set()
                self.log.info("Server stopped")

    async def _start(self) -> None:
        self.loop.add_reader(self.socket.fileno(), self._accept)
        self._listening = True
        if self.queue_store is not None:
            self._restore(self.queue_store)
        self.loop.call_later(1.0, self._tick)
        self.log.info(
            "Listening on %s port %s (%s%s event loop)",
            self.socket.getsockname()[0],
            self.port,
            "TLS, " if self.use_ssl else "",
            "uvloop" if type(self.loop).__module__.startswith("uvloop") else "asyncio",
        )

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, (ConnectionError, OSError)) or "SSL" in str(context.get("message")):
            self._log_limited(
                "connection", logging.INFO, "Connection error: %s", context.get("message")
            )
            return
        loop.default_exception_handler(context)

    def _log_limited(self, key: str, level: int, message: str, *args: Any) -> None:
        """Log at most once a second per ``key``; :meth:`_tick` reports the rest with a count.

        A flood of failing peers (handshakes, accepts without descriptors)
        must not turn into a flood of log lines.
        """
        now = time.monotonic()
        state = self._log_state.get(key)
        if state is None:
            state = self._log_state[key] = [now - 2.0, 0, level, message, args]
        if now - state[0] >= 1.0 and not state[1]:
            state[0] = now
            self.log.log(level, message, *args)
            return
        state[1] += 1
        state[2:] = [level, message, args]

    def _report_suppressed(self) -> None:
        now = time.monotonic()
        for state in self._log_state.values():
            if state[1] and now - state[0] >= 1.0:
                count, level, message, args = state[1:]
                self.log.log(
                    level,
                    message + " (%d times in the last %.1fs)",
                    *args,
                    count,
                    now - state[0],
                )
                state[0], state[1] = now, 0

    # ------------------------------------------------------------------
    # accepting

    def _accept(self) -> None:
        """Accept what the listener has; count each connection before any handshake.

        geard accepts itself (not ``loop.create_server``) so that a TLS
        connection counts toward ``max_connections`` from its first byte, its
        handshake has its own timeout, and running out of descriptors pauses
        accepting instead of spinning, on asyncio and uvloop alike.
        """
        listener = self.socket
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _OUT_OF_RESOURCES:
                    self._log_limited(
                        "accept",
                        logging.WARNING,
                        "Cannot accept a connection: %s; pausing accepts for %gs",
                        e.strerror or e,
                        _ACCEPT_BACKOFF,
                    )
                    self._pause_accepting()
                    return
                self._log_limited("accept-error", logging.INFO, "accept() failed: %s", e)
                continue
            if (
                self._stopping
                or self._graceful
                or len(self._connections) + len(self._pending) >= self.max_connections
            ):
                self._log_limited(
                    "limit",
                    logging.WARNING,
                    "Refusing connection from %s: connection limit (%d) reached",
                    addr[0] if addr else "?",
                    self.max_connections,
                )
                sock.close()
                continue
            sock.setblocking(False)
            conn = GeardConnection(self)
            if addr:
                conn.host, conn.port = str(addr[0]), int(addr[1])
            self._pending[conn] = self.loop.create_task(self._attach(conn, sock))

    def _pause_accepting(self) -> None:
        if self._listening:
            self._listening = False
            self.loop.remove_reader(self.socket.fileno())
            self._accept_retry = self.loop.call_later(_ACCEPT_BACKOFF, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._accept_retry = None
        if not (self._stopping or self._graceful or self._listening):
            self._listening = True
            self.loop.add_reader(self.socket.fileno(), self._accept)

    def _stop_listening(self) -> None:
        if self._accept_retry is not None:
            self._accept_retry.cancel()
            self._accept_retry = None
        if self._listening:
            self._listening = False
            self.loop.remove_reader(self.socket.fileno())
        self.socket.close()

    async def _attach(self, conn: GeardConnection, sock: socket.socket) -> None:
        """Make the transport (after the TLS handshake, bounded in time)."""
        context = self._ssl_context
        try:
            await self.loop.connect_accepted_socket(
                lambda: conn,
                sock,
                ssl=context,
                ssl_handshake_timeout=self.tls_handshake_timeout if context else None,
            )
        except BaseException as e:
            sock.close()
            if not isinstance(e, Exception):
                raise
            if isinstance(e, (TimeoutError, ConnectionAbortedError)):
                self._log_limited(
                    "handshake-timeout",
                    logging.INFO,
                    "Closing %s: TLS handshake timed out (%gs)",
                    conn.host,
                    self.tls_handshake_timeout,
                )
            else:
                self._log_limited(
                    "handshake", logging.INFO, "Closing %s: TLS handshake failed: %r", conn.host, e
                )
        finally:
            self._pending.pop(conn, None)

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
        if graceful:
            if threading.current_thread() is self._thread:
                self._begin_graceful()
            else:
                try:
                    self.loop.call_soon_threadsafe(self._begin_graceful)
                except RuntimeError:
                    pass
            return
        if threading.current_thread() is self._thread:
            self._stop()
            return
        try:
            self.loop.call_soon_threadsafe(self._stop)
        except RuntimeError:
            pass
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

    def _check_graceful(self) -> None:
        if self._graceful and not self.running_jobs and not self._stopping:
            self.log.info("Graceful shutdown: no job is running")
            self._stop()

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
        if self._committing:  # finish the commit in flight here and now
            self._committing = False
            held, self._held = self._held, {}
            if self._commit_store():
                for conn, data in held.items():
                    if not conn.closed:
                        self._write(conn, data)
        self._flush()
        for conn in list(self._connections):
            conn.closed = True
            if conn.transport is not None:
                conn.transport.abort()
        if self.queue_store is not None:
            self.queue_store.close()
        if self.statsd is not None and hasattr(self.statsd, "close"):
            self.statsd.close()
        self.loop.call_soon(self.loop.stop)

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
        if self._partial:
            limit = time.monotonic() - self.partial_timeout
            for conn in [c for c in self._partial if (c.partial_since or 0) < limit]:
                self.log.info("Closing %s: unfinished input for too long", conn.host)
                self._protocol_error(conn, b"TIMEOUT", "unfinished packet or line for too long")
        self._report_suppressed()
        if self.statsd is not None:
            self._report_stats()
        self.loop.call_later(1.0, self._tick)

    def _report_stats(self) -> None:
        statsd = self.statsd
        assert statsd is not None
        counts, self._packet_counts = self._packet_counts, {}
        for ptype, count in counts.items():
            statsd.incr("packet.%s" % C.types.get(ptype, ptype), count)
        gauges = (len(self.jobs), self.running_jobs, len(self.jobs) - self.running_jobs)
        if gauges != self._last_gauges:
            self._last_gauges = gauges
            statsd.gauge("queue.total", gauges[0])
            statsd.gauge("queue.running", gauges[1])
            statsd.gauge("queue.waiting", gauges[2])

    def reportTimingStats(self, ptype: int, duration: float) -> None:
        """Send a timer (ms) and a counter for one packet type to statsd."""
        if self.statsd is None:
            return
        name = "packet.%s" % C.types.get(ptype, ptype)
        self.statsd.timing(name, int(duration * 1000))
        self.statsd.incr(name)

    # ------------------------------------------------------------------
    # public state (gear 0.16 attribute names)

    @property
    def total_jobs(self) -> int:
        return len(self.jobs)

    @property
    def waiting_jobs(self) -> int:
        return len(self.jobs) - self.running_jobs

    @property
    def active_connections(self) -> list[GeardConnection]:
        return list(self._connections)

    def _queue_list(self, priority: int) -> list[ServerJob]:
        return [
            job
            for fq in self.function_queues.values()
            for job in fq.queues[priority]
            if job.state == QUEUED
        ]

    @property
    def high_queue(self) -> list[ServerJob]:
        return self._call(lambda: self._queue_list(0))

    @property
    def normal_queue(self) -> list[ServerJob]:
        return self._call(lambda: self._queue_list(1))

    @property
    def low_queue(self) -> list[ServerJob]:
        return self._call(lambda: self._queue_list(2))

    def getQueue(self) -> list[ServerJob]:
        """Return a new list of queued jobs: high, then normal, then low."""
        return self._call(lambda: self._queue_list(0) + self._queue_list(1) + self._queue_list(2))

    # ------------------------------------------------------------------
    # connections and I/O

    def _connection_made(self, conn: GeardConnection, transport: asyncio.Transport) -> None:
        conn.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            conn.host, conn.port = str(peer[0]), int(peer[1])
        conn.handle_prefix = b"H:" + conn.host.encode() + b":"
        self._pending.pop(conn, None)
        if self._stopping:
            conn.closed = True
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            conn.fd = sock.fileno()
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.keepalive:
                    self._set_keepalive(sock)
            except OSError:
                pass
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            conn.ssl_subject = peer_common_name(sslobj)
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        self._connections[conn] = None
        self.connection_map[conn.fd] = conn
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("Accepted connection %r", conn)

    def _connection_lost(self, conn: GeardConnection) -> None:
        was_open = conn in self._connections
        conn.closed = True
        conn.out.clear()
        self._partial.discard(conn)
        self._buffered_total -= conn.buffered
        conn.buffered = 0
        if not was_open:
            return
        del self._connections[conn]
        if self.connection_map.get(conn.fd) is conn:
            del self.connection_map[conn.fd]
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("Lost connection %r", conn)
        if self._stopping:
            return
        self._drop_worker(conn)
        for job in list(conn.client_jobs.values()):
            if conn in job.clients:
                job.clients = [c for c in job.clients if c is not conn]
            if not job.clients and not job.background and job.state in (QUEUED, SCHEDULED):
                self._remove_waiting(job)
        conn.client_jobs.clear()

    def _drop_worker(self, conn: GeardConnection) -> None:
        woken = conn.state == "AWAKE"
        for fq in conn.abilities.values():
            fq.workers -= 1
            fq.sleepers.pop(conn, None)
        for job in list(conn.worker_jobs.values()):
            self._requeue(job)
        conn.worker_jobs.clear()
        if woken:
            for fq in conn.abilities.values():
                if fq.queued and fq.sleepers:
                    self._wake(next(iter(fq.sleepers)))
        abilities = list(conn.abilities.values())
        conn.abilities.clear()
        conn.functions.clear()
        for fq in abilities:
            self._release(fq)

    def _requeue(self, job: ServerJob) -> None:
        """A worker holding ``job`` went away: put it back at the head."""
        fq = job.function
        assert fq is not None
        fq.running -= 1
        self.running_jobs -= 1
        job.worker_connection = None
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        job.state = DONE
        if not job.background and not job.clients:
            self._forget(job)
            return
        if self.job_retries is not None and job.retries >= self.job_retries:
            self.log.warning(
                "Job %r (%r) failed: its worker disconnected %d times",
                job.handle,
                job._name,
                job.retries + 1,
            )
            self._fail(job)
            self._check_graceful()
            return
        job.retries += 1
        if job.background and self.queue_store is not None:
            self.queue_store.retried(job.handle, job.retries)
            self._store_changed()
        self._enqueue(job, head=True)
        self._check_graceful()

    def _send(self, conn: GeardConnection, data: bytes) -> None:
        if conn.closed:
            return
        if not conn.out:
            self._dirty.append(conn)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)
        conn.out.append(data)

    def _store_changed(self) -> None:
        """Make sure the store is committed this loop turn, reply or not."""
        self._store_dirty = True
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _commit_store(self) -> bool:
        """Commit the store's batch before any reply of this turn is written.

        False if it failed: the caller must then not send those replies, so
        no client is told JOB_CREATED for a job that is not durable.
        """
        self._store_dirty = False
        if self.queue_store is None:
            return True
        try:
            self.queue_store.flush()
        except Exception:
            self._store_dirty = True
            self.log.exception("Queue store write failed: dropping this turn's replies")
            return False
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._committing:
            return  # replies wait for the commit in flight; _committed flushes again
        dirty, self._dirty = self._dirty, []
        if self._store_dirty:
            if self._start_commit(dirty):
                return
            if not self._commit_store():
                for conn in dirty:
                    conn.out.clear()
                    conn.closed = True
                    if conn.transport is not None:
                        conn.transport.abort()
                return
        for conn in dirty:
            out = conn.out
            if conn.closed or not out:
                out.clear()
                continue
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._write(conn, data)

    def _write(self, conn: GeardConnection, data: bytes) -> None:
        transport = conn.transport
        assert transport is not None
        transport.write(data)
        if conn.write_paused and transport.get_write_buffer_size() > self.max_output_buffer:
            self.log.warning(
                "Disconnecting %s: more than %d bytes queued and not read",
                conn.host,
                self.max_output_buffer,
            )
            conn.closed = True
            transport.abort()

    def _start_commit(self, dirty: list[GeardConnection]) -> bool:
        """Commit the store on its writer thread, holding this turn's replies.

        Group commit: while SQLite writes, the loop keeps reading; the next
        turns' replies wait behind this commit and their jobs form the next,
        larger batch. False if the store only flushes synchronously.
        """
        store = self.queue_store
        if store is None or self._stopping:
            return False
        self._commit_gen += 1
        gen, loop = self._commit_gen, self.loop

        def done(error: BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(self._committed, gen, error)
            except RuntimeError:
                pass  # the loop is closed: the server stopped meanwhile

        if not store.flush_async(done):
            return False
        self._store_dirty = False
        self._committing = True
        held = self._held
        for conn in dirty:
            out = conn.out
            if out and not conn.closed:
                held[conn] = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
        return True

    def _committed(self, gen: int, error: BaseException | None) -> None:
        if gen != self._commit_gen or not self._committing:
            return  # _stop finished this commit synchronously
        self._committing = False
        held, self._held = self._held, {}
        if error is not None:
            self._store_dirty = True  # the store keeps the batch for the next flush
            self.log.error("Queue store write failed: %s; dropping the held replies", error)
            for conn in held:
                conn.closed = True
                if conn.transport is not None:
                    conn.transport.abort()
            self.loop.call_later(0.5, self._store_changed)  # retry, but do not spin
            return
        for conn, data in held.items():
            if not conn.closed:
                self._write(conn, data)
        if self._dirty or self._store_dirty:
            self._flush()

    def _close(self, conn: GeardConnection) -> None:
        """Close after writing what is queued for the peer."""
        if conn.closed or conn.transport is None:
            return
        held = self._held.pop(conn, b"") if self._held else b""
        if conn.out or held:
            if not (self._store_dirty or self._committing) or self._commit_store():
                conn.transport.write(held + b"".join(conn.out))
            conn.out.clear()
        conn.closed = True
        conn.transport.close()

    def _protocol_error(self, conn: GeardConnection, code: bytes, message: str) -> None:
        self._log_limited(
            "protocol", logging.INFO, "Protocol error from %s: %s", conn.host, message
        )
        self._send(conn, _packet(C.ERROR, code + b"\x00" + message.encode()))
        self._close(conn)

    def _data_received(self, conn: GeardConnection, data: bytes) -> None:
        if conn.closed:
            return
        self._trace = self.log.isEnabledFor(logging.DEBUG) or self.statsd is not None
        decoder = conn.decoder
        try:
            decoder.process(data, conn.on_frame, conn.on_line)
        except LineTooLongError as e:
            self._send(conn, b"ERR LINE_TOO_LONG " + _err_text(str(e)) + b"\n")
            self.log.info("Protocol error from %s: %s", conn.host, e)
            self._close(conn)
            return
        except RemoteProtocolError as e:
            self._protocol_error(conn, e.code.encode(), str(e))
            return
        buffered = decoder.buffered
        if buffered:
            if conn.partial_since is None:
                conn.partial_since = time.monotonic()
                self._partial.add(conn)
        elif conn.partial_since is not None:
            conn.partial_since = None
            self._partial.discard(conn)
        if buffered != conn.buffered:
            self._buffered_total += buffered - conn.buffered
            conn.buffered = buffered
            if self._buffered_total > self.max_partial_total:
                self._shed_partial()

    def _shed_partial(self) -> None:
        """Over the total input cap: close the connections holding the most."""
        while self._buffered_total > self.max_partial_total:
            holders = [c for c in self._partial if c.buffered and not c.closed]
            if not holders:
                return
            conn = max(holders, key=lambda c: c.buffered)
            self._buffered_total -= conn.buffered
            self.log.warning(
                "Closing %s: it holds %d bytes of unfinished input and all connections"
                " together hold more than %d",
                conn.host,
                conn.buffered,
                self.max_partial_total,
            )
            conn.buffered = 0
            self._partial.discard(conn)
            conn.decoder = Decoder(0, 1)
            self._protocol_error(conn, b"SERVER_BUSY", "too much unfinished input on the server")

    def _frame(self, conn: GeardConnection, magic: bytes, ptype: int, payload: bytes) -> None:
        if conn.closed:
            return
        handler = self._dispatch.get(ptype)
        if self._trace:
            self._trace_frame(conn, ptype, payload, handler is not None and magic == _REQ)
        if handler is None or magic != _REQ:
            self._unexpected(conn, magic, ptype)
            return
        try:
            handler(conn, payload)
        except RemoteProtocolError as e:
            self.sendError(conn, b"INVALID_ARGUMENTS", str(e).encode())
        except Exception:
            self.log.exception("Error handling %s from %s", C.types.get(ptype), conn.host)
            self._protocol_error(conn, b"SERVER_ERROR", "internal server error")

    def _trace_frame(
        self, conn: GeardConnection, ptype: int, payload: bytes, accepted: bool
    ) -> None:
        """Debug log and statsd count of one packet (off the fast path)."""
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug(
                "%s:%d sent %s (%d bytes)",
                conn.host,
                conn.port,
                C.types.get(ptype, ptype),
                len(payload),
            )
        if self.statsd is not None and accepted:
            counts = self._packet_counts
            counts[ptype] = counts.get(ptype, 0) + 1

    def _line(self, conn: GeardConnection, line: bytes) -> None:
        if conn.closed:
            return
        try:
            self._admin_line(conn, line)
        except Exception:
            self.log.exception("Error handling admin line from %s", conn.host)
            self._send(conn, b"ERR SERVER_ERROR Internal+server+error\n")

    def _unexpected(self, conn: GeardConnection, magic: bytes, ptype: int) -> None:
        name = C.types.get(ptype)
        if name is None:
            text = "unknown packet type %d" % ptype
            code = b"UNKNOWN_PACKET"
        elif magic != _REQ:
            text = "%s with RES magic: clients and workers must send REQ packets" % name
            code = b"UNEXPECTED_PACKET"
        else:
            text = "%s is not a request a server accepts" % name
            code = b"UNEXPECTED_PACKET"
        self._log_limited("unexpected", logging.INFO, "From %s: %s", conn.host, text)
        self.sendError(conn, code, text.encode())

    def sendError(self, connection: GeardConnection, code: bytes, text: bytes) -> None:
        """Send an ERROR packet; the connection stays open."""
        self._send(connection, _packet(C.ERROR, code + b"\x00" + text))

    # ------------------------------------------------------------------
    # queues

    def _function(self, name: bytes) -> FunctionQueue:
        fq = self.function_queues.get(name)
        if fq is None:
            fq = self.function_queues[name] = FunctionQueue(name)
        return fq

    def _new_function(self, name: bytes) -> FunctionQueue:
        """The record of ``name``; a new one only for a name fit for every listing."""
        fq = self.function_queues.get(name)
        if fq is None:
            self._check_field(name, "function name", self.max_function_name)
            fq = self.function_queues[name] = FunctionQueue(name)
        return fq

    def _check_field(self, value: bytes, what: str, limit: int) -> None:
        """Refuse what would not fit or could forge a line of an admin listing."""
        if len(value) > limit:
            raise RemoteProtocolError("%s longer than %d bytes" % (what, limit))
        if _CONTROL.search(value) is not None:
            raise RemoteProtocolError("%s contains a control character" % what)
        if value.startswith(b"ERR ") and what != "client id":
            raise RemoteProtocolError("%s must not start with 'ERR '" % what)

    def _release(self, fq: FunctionQueue) -> None:
        """Forget a function nothing refers to, so distinct names cannot pile up."""
        if (
            fq.workers
            or fq.total
            or fq.max_queue is not None
            or fq.name in self._created
            or self.function_queues.get(fq.name) is not fq
        ):
            return
        del self.function_queues[fq.name]
        self.functions.discard(fq.name)

    def _new_handle(self, conn: GeardConnection | None) -> bytes:
        self.max_handle += 1
        prefix = conn.handle_prefix if conn is not None else b"H:geard:"
        return prefix + str(self.max_handle).encode()

    def _enqueue(self, job: ServerJob, head: bool = False) -> None:
        fq = job.function
        assert fq is not None
        job.state = QUEUED
        if head:
            fq.queues[job.priority].appendleft(job)
        else:
            fq.queues[job.priority].append(job)
        fq.counts[job.priority] += 1
        if fq.sleepers:
            self._wake(next(iter(fq.sleepers)))

    def _wake(self, conn: GeardConnection) -> None:
        for fq in conn.abilities.values():
            fq.sleepers.pop(conn, None)
        conn.state = "AWAKE"
        self._send(conn, _NOOP)

    def _take(self, conn: GeardConnection) -> ServerJob | None:
        if self._graceful:
            return None  # shutting down: running jobs finish, queued ones wait
        abilities = conn.abilities.values()
        for priority in (0, 1, 2):
            for fq in abilities:
                if fq.counts[priority]:
                    queue = fq.queues[priority]
                    while queue:
                        job = queue.popleft()
                        if job.state == QUEUED:
                            fq.counts[priority] -= 1
                            return job
        return None

    def _peek(self, conn: GeardConnection) -> ServerJob | None:
        for priority in (0, 1, 2):
            for fq in conn.abilities.values():
                if fq.counts[priority]:
                    for job in fq.queues[priority]:
                        if job.state == QUEUED:
                            return job
        return None

    def _assign(self, conn: GeardConnection, job: ServerJob) -> None:
        fq = job.function
        assert fq is not None
        job.state = RUNNING
        job.worker_connection = conn
        fq.running += 1
        self.running_jobs += 1
        conn.worker_jobs[job.handle] = job
        timeout = conn.timeouts.get(fq.name)
        if timeout:
            job.timer = self.loop.call_later(timeout, self._expire, job, conn)

    def _expire(self, job: ServerJob, conn: GeardConnection) -> None:
        if job.state != RUNNING or job.worker_connection is not conn:
            return
        job.timer = None
        self.log.info("Job %r timed out on worker %s", job.handle, conn.host)
        self._fail(job)

    def _fail(self, job: ServerJob) -> None:
        packet = _packet(C.WORK_FAIL, job.handle)
        for client in job.clients:
            self._send(client, packet)
        self._finish(job)

    def _finish(self, job: ServerJob) -> None:
        """A running job ended (complete, fail, exception or timeout)."""
        fq = job.function
        assert fq is not None
        if job.state == RUNNING:
            fq.running -= 1
            self.running_jobs -= 1
            worker = job.worker_connection
            if worker is not None:
                worker.worker_jobs.pop(job.handle, None)
        job.state = DONE
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        self._forget(job)

    def _forget(self, job: ServerJob) -> None:
        handle = job.handle
        self.jobs.pop(handle, None)
        for client in job.clients:
            client.client_jobs.pop(handle, None)
        unique = job._unique
        fq = job.function
        if unique and fq is not None and fq.uniques.get(unique) is job:
            del fq.uniques[unique]
        if job.background and self.queue_store is not None:
            self.queue_store.remove(handle)
            self._store_changed()
        if fq is not None and not fq.total:
            self._release(fq)
        if self._graceful:
            self._check_graceful()

    def _remove_waiting(self, job: ServerJob) -> bool:
        """Take a queued or scheduled job out (cancel); False if it is running."""
        fq = job.function
        assert fq is not None
        if job.state == QUEUED:
            fq.counts[job.priority] -= 1
            queue = fq.queues[job.priority]
            if len(queue) > 2 * fq.counts[job.priority] + 64:
                job.state = DONE  # drop it (and the other removed jobs) from the deque now
                live = [j for j in queue if j.state == QUEUED]
                queue.clear()
                queue.extend(live)
        elif job.state == SCHEDULED:
            fq.scheduled -= 1
        else:
            return False
        job.state = DONE
        self._forget(job)
        return True

    def _submit(
        self,
        conn: GeardConnection,
        name: bytes,
        unique: bytes,
        arguments: bytes,
        priority: int,
        background: bool,
        when: float | None = None,
    ) -> None:
        acl = self.acl
        if acl is not None and not acl.canInvoke(conn.ssl_subject, _text(name)):
            self._log_limited(
                "acl", logging.INFO, "ACL denied %s invoking %r", conn.ssl_subject, name[:80]
            )
            self.sendError(conn, b"0", b"Permission denied by ACL: invoke " + name)
            return
        if self._graceful:
            self.sendError(conn, b"SHUTTING_DOWN", b"Server is shutting down")
            return
        if unique:
            self._check_field(unique, "unique id", self.max_unique_id)
            if unique == b".":
                raise RemoteProtocolError("unique id '.' would end the show unique jobs listing")
        fq = self._new_function(name)
        if unique:
            existing = fq.uniques.get(unique)
            if existing is not None:
                if not background and conn not in existing.clients:
                    existing.clients = [*existing.clients, conn]
                    conn.client_jobs[existing.handle] = existing
                self._send(conn, _packet(C.JOB_CREATED, existing.handle))
                return
        limits = fq.max_queue
        if limits is not None and limits[priority] and fq.counts[priority] >= limits[priority]:
            self.sendError(conn, b"QUEUE_FULL", b"Job queue is full for function " + name)
            return
        handle = self._new_handle(conn)
        job = ServerJob(handle, fq.name, arguments, None if background else conn, unique)
        job.priority = priority
        job.function = fq
        self.jobs[handle] = job
        if unique:
            fq.uniques[unique] = job
        if not background:
            conn.client_jobs[handle] = job
        self._send(conn, _packet(C.JOB_CREATED, handle))
        if background and self.queue_store is not None:
            self.queue_store.add(
                StoredJob(handle, name, job._unique, arguments, job.precedence, when)
            )
            self._store_changed()
        self._start_job(job, when)

    def _start_job(self, job: ServerJob, when: float | None) -> None:
        if when is None or when <= time.time():
            self._enqueue(job)
            return
        assert job.function is not None
        job.state = SCHEDULED
        job.when = when
        job.function.scheduled += 1
        heapq.heappush(self._scheduled, (when, self.max_handle, job))
        self._arm_schedule()

    def _arm_schedule(self) -> None:
        if self._schedule_timer is not None:
            self._schedule_timer.cancel()
            self._schedule_timer = None
        while self._scheduled and self._scheduled[0][2].state != SCHEDULED:
            heapq.heappop(self._scheduled)
        if self._scheduled:
            delay = max(0.0, self._scheduled[0][0] - time.time())
            self._schedule_timer = self.loop.call_later(delay, self._run_scheduled)

    def _run_scheduled(self) -> None:
        self._schedule_timer = None
        now = time.time()
        while self._scheduled and self._scheduled[0][0] <= now + 0.001:
            _, _, job = heapq.heappop(self._scheduled)
            if job.state == SCHEDULED:
                assert job.function is not None
                job.function.scheduled -= 1
                self._enqueue(job)
        self._arm_schedule()

    def _restore(self, store: QueueStore) -> None:
        count = 0
        for stored in store.load():
            # New handles must not reuse a restored one's number.
            tail = stored.handle.rpartition(b":")[2]
            if tail.isdigit() and int(tail) > self.max_handle:
                self.max_handle = int(tail)
            if stored.handle in self.jobs:
                continue
            number = stored.handle.rsplit(b":", 1)[-1]
            if number.isdigit():
                self.max_handle = max(self.max_handle, int(number))
            fq = self._function(stored.name)
            job = ServerJob(stored.handle, stored.name, stored.arguments, None, stored.unique)
            job.priority = PRIORITY_INDEX.get(stored.precedence, 1)
            job.retries = stored.attempts
            job.function = fq
            self.jobs[stored.handle] = job
            if job._unique:
                fq.uniques[job._unique] = job
            self._start_job(job, stored.when)
            count += 1
        if count:
            self.log.info("Restored %d background jobs from the queue store", count)

    # ------------------------------------------------------------------
    # packet handlers: (connection, payload)

    def _build_dispatch(self) -> dict[int, Callable[[GeardConnection, bytes], None]]:
        table: dict[int, Callable[[GeardConnection, bytes], None]] = {}
        for ptype, (_, hook) in _HANDLERS.items():
            if hook and getattr(type(self), hook) is not getattr(Server, hook):
                table[ptype] = self._packet_hook(ptype, hook)
            else:
                table[ptype] = self._internal_handler(ptype)
        return table

    def _internal_handler(self, ptype: int) -> Callable[[GeardConnection, bytes], None]:
        if ptype in _SUBMIT_MODES:
            return partial(self._on_submit, ptype)
        return cast(Callable[[GeardConnection, bytes], None], getattr(self, _HANDLERS[ptype][0]))

    def _packet_hook(self, ptype: int, hook: str) -> Callable[[GeardConnection, bytes], None]:
        """Route a packet type to a subclass's gear-0.16-style ``handleX(packet)``."""
        method = getattr(self, hook)

        def call(conn: GeardConnection, data: bytes) -> None:
            method(Packet(_REQ, ptype, data, cast(Any, conn)))

        return call

    def _on_submit(self, ptype: int, conn: GeardConnection, data: bytes) -> None:
        """SUBMIT_JOB and its _HIGH/_LOW/_BG forms: (name, unique, arguments)."""
        parts = data.split(b"\x00", 2)
        if len(parts) != 3:
            raise RemoteProtocolError(
                "%s needs 3 NUL-separated arguments, got %d" % (C.types[ptype], len(parts))
            )
        priority, background = _SUBMIT_MODES[ptype]
        self._submit(conn, parts[0], parts[1], parts[2], priority, background)

    def _on_submit_job_sched(self, conn: GeardConnection, data: bytes) -> None:
        name, unique, minute, hour, day, month, weekday, args = _split(data, 8, C.SUBMIT_JOB_SCHED)
        try:
            fields = [
                schedule.parse_field(kind, raw)
                for kind, raw in (
                    ("minute", minute),
                    ("hour", hour),
                    ("day", day),
                    ("month", month),
                    ("weekday", weekday),
                )
            ]
        except ValueError as e:
            raise RemoteProtocolError("SUBMIT_JOB_SCHED: %s" % (e,)) from None
        when = schedule.next_run(fields[0], fields[1], fields[2], fields[3], fields[4])
        if when is None:
            raise RemoteProtocolError("SUBMIT_JOB_SCHED: no date matches the schedule")
        self._submit(conn, name, unique, args, 1, True, when)

    def _on_submit_job_epoch(self, conn: GeardConnection, data: bytes) -> None:
        name, unique, epoch, args = _split(data, 4, C.SUBMIT_JOB_EPOCH)
        when = float(_bounded_int(epoch, "SUBMIT_JOB_EPOCH: epoch", MAX_EPOCH))
        self._submit(conn, name, unique, args, 1, True, when)

    def _on_submit_reduce_job(self, conn: GeardConnection, data: bytes) -> None:
        self.sendError(
            conn,
            b"NOT_SUPPORTED",
            b"SUBMIT_REDUCE_JOB is not supported by this server; submit a normal job",
        )

    def _grab(self, conn: GeardConnection) -> ServerJob | None:
        if conn.state == "SLEEP":
            for fq in conn.abilities.values():
                fq.sleepers.pop(conn, None)
        conn.state = "AWAKE"
        job = self._take(conn)
        if job is None:
            self._send(conn, _NO_JOB)
            return None
        self._assign(conn, job)
        return job

    def _on_grab_job(self, conn: GeardConnection, data: bytes) -> None:
        job = self._grab(conn)
        if job is not None:
            payload = job.handle + b"\x00" + job._name + b"\x00" + job._arguments
            self._send(conn, _packet(C.JOB_ASSIGN, payload))

    def _on_grab_job_uniq(self, conn: GeardConnection, data: bytes) -> None:
        job = self._grab(conn)
        if job is not None:
            self.sendJobAssignUniq(conn, job)

    def _on_grab_job_all(self, conn: GeardConnection, data: bytes) -> None:
        job = self._grab(conn)
        if job is not None:
            payload = b"\x00".join(
                (job.handle, job._name, job._unique or b"", b"", bytes(job._arguments))
            )
            self._send(conn, _packet(C.JOB_ASSIGN_ALL, payload))

    def _on_pre_sleep(self, conn: GeardConnection, data: bytes) -> None:
        for fq in conn.abilities.values():
            if (fq.counts[0] or fq.counts[1] or fq.counts[2]) and not self._graceful:
                conn.state = "AWAKE"
                self._send(conn, _NOOP)
                return
        conn.state = "SLEEP"
        for fq in conn.abilities.values():
            fq.sleepers[conn] = None

    def _add_ability(self, conn: GeardConnection, name: bytes, timeout: float | None) -> None:
        acl = self.acl
        if acl is not None and not acl.canRegister(conn.ssl_subject, _text(name)):
            self._log_limited(
                "acl", logging.INFO, "ACL denied %s registering %r", conn.ssl_subject, name[:80]
            )
            self.sendError(conn, b"0", b"Permission denied by ACL: register " + name)
            return
        fq = conn.abilities.get(name) or self._new_function(name)
        if timeout:
            conn.timeouts[name] = timeout
        else:
            conn.timeouts.pop(name, None)
        if name in conn.abilities:
            return
        conn.abilities[name] = fq
        conn.functions.add(name)
        self.functions.add(name)
        fq.workers += 1
        if conn.state == "SLEEP":
            if fq.queued:
                self._wake(conn)
            else:
                fq.sleepers[conn] = None

    def _on_can_do(self, conn: GeardConnection, data: bytes) -> None:
        self._add_ability(conn, data, None)

    def _on_can_do_timeout(self, conn: GeardConnection, data: bytes) -> None:
        name, raw = _split(data, 2, C.CAN_DO_TIMEOUT)
        timeout = _bounded_int(raw, "CAN_DO_TIMEOUT: timeout", MAX_TIMEOUT)
        self._add_ability(conn, name, float(timeout))

    def _remove_ability(self, conn: GeardConnection, name: bytes) -> None:
        conn.timeouts.pop(name, None)
        conn.functions.discard(name)
        fq = conn.abilities.pop(name, None)
        if fq is not None:
            fq.workers -= 1
            fq.sleepers.pop(conn, None)
            self._release(fq)

    def _on_cant_do(self, conn: GeardConnection, data: bytes) -> None:
        self._remove_ability(conn, data)

    def _on_reset_abilities(self, conn: GeardConnection, data: bytes) -> None:
        for name in list(conn.abilities):
            self._remove_ability(conn, name)
        conn.functions.clear()
        conn.timeouts.clear()

    def _on_set_client_id(self, conn: GeardConnection, data: bytes) -> None:
        self._check_field(data, "client id", self.max_client_id)
        conn.client_id = data

    def _worker_job(self, conn: GeardConnection, handle: bytes, ptype: int) -> ServerJob | None:
        job = conn.worker_jobs.get(handle)
        if job is None and self.log.isEnabledFor(logging.DEBUG):
            self.log.debug(
                "Ignoring %s for %r: not a job running on this connection", C.types[ptype], handle
            )
        return job

    def _forward(self, job: ServerJob, ptype: int, data: bytes) -> None:
        if job.clients:
            packet = _packet(ptype, data)
            for client in job.clients:
                self._send(client, packet)

    def _on_work_data(self, conn: GeardConnection, data: bytes) -> None:
        self._progress(conn, data, C.WORK_DATA)

    def _on_work_warning(self, conn: GeardConnection, data: bytes) -> None:
        self._progress(conn, data, C.WORK_WARNING)

    def _progress(self, conn: GeardConnection, data: bytes, ptype: int) -> None:
        end = data.find(b"\x00")
        if end < 0:
            raise RemoteProtocolError("%s needs 2 NUL-separated arguments, got 1" % C.types[ptype])
        job = self._worker_job(conn, data[:end], ptype)
        if job is not None:
            self._forward(job, ptype, data)

    def _on_work_status(self, conn: GeardConnection, data: bytes) -> None:
        handle, numerator, denominator = _split(data, 3, C.WORK_STATUS)
        job = self._worker_job(conn, handle, C.WORK_STATUS)
        if job is not None:
            job.numerator = numerator
            job.denominator = denominator
            self._forward(job, C.WORK_STATUS, data)

    def _on_work_complete(self, conn: GeardConnection, data: bytes) -> None:
        end = data.find(b"\x00")
        if end < 0:
            raise RemoteProtocolError("WORK_COMPLETE needs 2 NUL-separated arguments, got 1")
        job = self._worker_job(conn, data[:end], C.WORK_COMPLETE)
        if job is not None:
            self._forward(job, C.WORK_COMPLETE, data)
            self._finish(job)

    def _on_work_fail(self, conn: GeardConnection, data: bytes) -> None:
        job = self._worker_job(conn, data, C.WORK_FAIL)
        if job is not None:
            self._forward(job, C.WORK_FAIL, data)
            self._finish(job)

    def _on_work_exception(self, conn: GeardConnection, data: bytes) -> None:
        handle, _ = _split(data, 2, C.WORK_EXCEPTION)
        job = self._worker_job(conn, handle, C.WORK_EXCEPTION)
        if job is None:
            return
        exception = fail = b""
        for client in job.clients:
            if b"exceptions" in client.options:
                exception = exception or _packet(C.WORK_EXCEPTION, data)
                self._send(client, exception)
            else:
                fail = fail or _packet(C.WORK_FAIL, handle)
                self._send(client, fail)
        self._finish(job)

    def _on_get_status(self, conn: GeardConnection, data: bytes) -> None:
        job = self.jobs.get(data)
        if job is None:
            payload = data + b"\x000\x000\x000\x000"
        else:
            payload = b"\x00".join(
                (
                    data,
                    b"1",
                    b"1" if job.running else b"0",
                    job.numerator or b"0",
                    job.denominator or b"0",
                )
            )
        self._send(conn, _packet(C.STATUS_RES, payload))

    def _find_unique(self, unique: bytes) -> ServerJob | None:
        for fq in self.function_queues.values():
            job = fq.uniques.get(unique)
            if job is not None:
                return job
        return None

    def _on_get_status_unique(self, conn: GeardConnection, data: bytes) -> None:
        job = self._find_unique(data) if data else None
        if job is None:
            fields: tuple[bytes, ...] = (data, b"0", b"0", b"0", b"0", b"0")
        else:
            fields = (
                data,
                b"1",
                b"1" if job.running else b"0",
                job.numerator or b"0",
                job.denominator or b"0",
                str(len(job.clients)).encode(),
            )
        self._send(conn, _packet(C.STATUS_RES_UNIQUE, b"\x00".join(fields)))

    def _on_echo_req(self, conn: GeardConnection, data: bytes) -> None:
        self._send(conn, _packet(C.ECHO_RES, data))

    def _on_option_req(self, conn: GeardConnection, data: bytes) -> None:
        if data == b"exceptions":
            conn.options.add(data)
            self._send(conn, _packet(C.OPTION_RES, data))
        else:
            self.sendError(conn, b"UNKNOWN_OPTION", b"Unknown option: " + data)

    def _on_all_yours(self, conn: GeardConnection, data: bytes) -> None:
        pass

    # ------------------------------------------------------------------
    # gear 0.16 override points and helpers

    handleSubmitJob = _hook(C.SUBMIT_JOB)
    handleSubmitJobBg = _hook(C.SUBMIT_JOB_BG)
    handleSubmitJobHigh = _hook(C.SUBMIT_JOB_HIGH)
    handleSubmitJobHighBg = _hook(C.SUBMIT_JOB_HIGH_BG)
    handleSubmitJobLow = _hook(C.SUBMIT_JOB_LOW)
    handleSubmitJobLowBg = _hook(C.SUBMIT_JOB_LOW_BG)
    handleSubmitJobSched = _hook(C.SUBMIT_JOB_SCHED)
    handleSubmitJobEpoch = _hook(C.SUBMIT_JOB_EPOCH)
    handleGrabJob = _hook(C.GRAB_JOB)
    handleGrabJobUniq = _hook(C.GRAB_JOB_UNIQ)
    handleGrabJobAll = _hook(C.GRAB_JOB_ALL)
    handlePreSleep = _hook(C.PRE_SLEEP)
    handleCanDo = _hook(C.CAN_DO)
    handleCanDoTimeout = _hook(C.CAN_DO_TIMEOUT)
    handleCantDo = _hook(C.CANT_DO)
    handleResetAbilities = _hook(C.RESET_ABILITIES)
    handleSetClientID = _hook(C.SET_CLIENT_ID)
    handleWorkData = _hook(C.WORK_DATA)
    handleWorkWarning = _hook(C.WORK_WARNING)
    handleWorkStatus = _hook(C.WORK_STATUS)
    handleWorkComplete = _hook(C.WORK_COMPLETE)
    handleWorkFail = _hook(C.WORK_FAIL)
    handleWorkException = _hook(C.WORK_EXCEPTION)
    handleGetStatus = _hook(C.GET_STATUS)
    handleGetStatusUnique = _hook(C.GET_STATUS_UNIQUE)
    handleEchoReq = _hook(C.ECHO_REQ)
    handleOptionReq = _hook(C.OPTION_REQ)
    handleAllYours = _hook(C.ALL_YOURS)

    def getJobForConnection(
        self, connection: GeardConnection, peek: bool = False
    ) -> ServerJob | None:
        """Return the next job ``connection`` can run; without peek, assign it."""
        if peek:
            return self._peek(connection)
        job = self._take(connection)
        if job is not None:
            self._assign(connection, job)
        return job

    def sendJobAssignUniq(self, connection: GeardConnection, job: ServerJob) -> None:
        payload = b"\x00".join((job.handle, job._name, job._unique or b"", bytes(job._arguments)))
        self._send(connection, _packet(C.JOB_ASSIGN_UNIQ, payload))

    def sendNoJob(self, connection: GeardConnection) -> None:
        self._send(connection, _NO_JOB)

    def wakeConnection(self, connection: GeardConnection) -> None:
        """Send NOOP if ``connection`` is sleeping."""
        if connection.state == "SLEEP":
            self._wake(connection)

    def wakeConnections(self, job: ServerJob | None = None) -> None:
        """Wake every sleeper that can run ``job`` (every sleeper if None)."""
        if job is not None:
            fq = self.function_queues.get(job._name)
            sleepers = list(fq.sleepers) if fq is not None else []
        else:
            sleepers = [c for c in self._connections if c.state == "SLEEP"]
        for conn in sleepers:
            self._wake(conn)

    def handlePassthrough(self, packet: Packet, finished: bool = False) -> None:
        """Forward a WORK_* packet to the job's clients (RES magic)."""
        conn = cast(GeardConnection, packet.connection)
        data = bytes(packet.data)
        handle = data.split(b"\x00", 1)[0]
        job = conn.worker_jobs.get(handle)
        if job is None:
            return
        self._forward(job, packet.ptype, data)
        if finished:
            self._finish(job)

    # ------------------------------------------------------------------
    # admin protocol

    def _admin_line(self, conn: GeardConnection, line: bytes) -> None:
        command = line.rstrip(b"\r\n")
        if not command.strip():
            return
        request = ServerAdminRequest(cast(Any, conn))
        request.command = command
        self.handleAdminRequest(request)

    def _reply(self, request: ServerAdminRequest, data: bytes) -> None:
        """Write an admin reply now, so a peer that asks and never reads hits
        ``max_output_buffer`` before its replies pile up in memory."""
        conn = cast(GeardConnection, request.connection)
        if conn.closed or conn.transport is None:
            return
        if self._committing or self._store_dirty or conn in self._held:
            self._send(conn, data)  # after this turn's binary replies, which wait for the store
            return
        if conn.out:
            data = b"".join((*conn.out, data))
            conn.out.clear()
        self._write(conn, data)

    def _reply_lines(self, request: ServerAdminRequest, lines: Iterable[bytes]) -> None:
        """Write a listing in chunks and end it with ``.``; never the whole of it at once."""
        conn = cast(GeardConnection, request.connection)
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            chunk.append(line)
            size += len(line)
            if size >= _LISTING_CHUNK:
                self._reply(request, b"".join(chunk))
                chunk.clear()
                size = 0
                if conn.closed:
                    return
        chunk.append(b".\n")
        self._reply(request, b"".join(chunk))

    def _may_admin(self, request: ServerAdminRequest) -> bool:
        """With an ACL, commands that change the server need ``admin`` (or ``grant``)."""
        acl = self.acl
        if acl is None:
            return True
        subject = cast(GeardConnection, request.connection).ssl_subject
        check = getattr(acl, "canAdmin", None) or acl.canGrant
        if check(subject):
            return True
        self._log_limited(
            "acl", logging.INFO, "ACL denied %s the admin command %r", subject, request.command[:80]
        )
        self._reply(request, b"ERR PERMISSION_DENIED\n")
        return False

    def handleAdminRequest(self, request: ServerAdminRequest) -> None:
        """Answer one admin line in gear 0.16's formats (gearmand's where 0.16 had none)."""
        words = request.command.split()
        verb = words[0].lower()
        if verb in _ADMIN_VERBS and not self._may_admin(request):
            return
        if verb == b"cancel" and len(words) > 1 and words[1].lower() == b"job":
            self.handleCancelJob(request)
        elif verb == b"status":
            self.handleStatus(request)
        elif verb == b"workers":
            self.handleWorkers(request)
        elif verb == b"acl" and len(words) > 1:
            sub = words[1].lower()
            if sub == b"list":
                self.handleACLList(request)
            elif sub == b"grant":
                self.handleACLGrant(request)
            elif sub == b"revoke":
                self.handleACLRevoke(request)
            elif sub == b"self-revoke":
                self.handleACLSelfRevoke(request)
            else:
                self._unknown_command(request)
        elif verb == b"version":
            self._reply(request, b"OK " + __version__.encode() + b"\n")
        elif verb == b"getpid":
            self._reply(request, b"OK %d\n" % os.getpid())
        elif verb == b"verbose":
            level = logging.getLevelName(self.log.getEffectiveLevel())
            self._reply(request, b"OK " + str(level).encode() + b"\n")
        elif verb == b"show" and words[1:2] == [b"jobs"]:
            self.handleShowJobs(request)
        elif verb == b"show" and [w.lower() for w in words[1:3]] == [b"unique", b"jobs"]:
            self.handleShowUniqueJobs(request)
        elif verb == b"maxqueue":
            self.handleMaxQueue(request)
        elif verb == b"prioritystatus":
            self.handlePriorityStatus(request)
        elif verb == b"shutdown":
            self.handleShutdown(request)
        elif verb in (b"create", b"drop") and words[1:2] == [b"function"]:
            self.handleFunctionCommand(request)
        else:
            self._unknown_command(request)

    def _unknown_command(self, request: ServerAdminRequest) -> None:
        self._reply(request, b"ERR UNKNOWN_COMMAND Unknown+server+command\n")

    def _incomplete(self, request: ServerAdminRequest, usage: str) -> None:
        self._reply(request, b"ERR INCOMPLETE_ARGS " + _err_text(usage) + b"\n")

    def handleCancelJob(self, request: ServerAdminRequest) -> None:
        words = request.command.split()
        if len(words) < 3:
            self._incomplete(request, "usage: cancel job HANDLE")
            return
        job = self.jobs.get(words[2])
        if job is None or job.state not in (QUEUED, SCHEDULED):
            self._reply(request, b"ERR UNKNOWN_JOB\n")
            return
        conn = cast(GeardConnection, request.connection)
        acl = self.acl
        if (
            acl is not None
            and not acl.canInvoke(conn.ssl_subject, _text(job._name))
            and not (getattr(acl, "canAdmin", None) or acl.canGrant)(conn.ssl_subject)
        ):
            self._reply(request, b"ERR PERMISSION_DENIED\n")
            return
        packet = _packet(C.WORK_FAIL, job.handle)
        clients = list(job.clients)
        self._remove_waiting(job)
        for client in clients:
            self._send(client, packet)
        self._reply(request, b"OK\n")

    def _visible_functions(self) -> list[FunctionQueue]:
        return [
            fq
            for name, fq in self.function_queues.items()
            if fq.workers or fq.total or name in self.functions
        ]

    def handleStatus(self, request: ServerAdminRequest) -> None:
        self._reply_lines(
            request,
            (
                b"%s\t%d\t%d\t%d\n" % (fq.name, fq.total, fq.running, fq.workers)
                for fq in self._visible_functions()
            ),
        )

    def handlePriorityStatus(self, request: ServerAdminRequest) -> None:
        self._reply_lines(
            request,
            (
                b"%s\t%d\t%d\t%d\t%d\n"
                % (fq.name, fq.counts[0], fq.counts[1], fq.counts[2], fq.workers)
                for fq in self._visible_functions()
            ),
        )

    def handleWorkers(self, request: ServerAdminRequest) -> None:
        self._reply_lines(
            request,
            (
                b"%d %s %s : %s\n"
                % (
                    conn.fd,
                    conn.host.encode(),
                    conn.client_id or b"-",
                    b" ".join(conn.abilities),
                )
                for conn in list(self._connections)
            ),
        )

    def handleShowJobs(self, request: ServerAdminRequest) -> None:
        self._reply_lines(
            request,
            (
                b"%s\t%d\t0\t%d\n" % (job.handle, job.retries, 1 if job.state == QUEUED else 0)
                for job in list(self.jobs.values())
            ),
        )

    def handleShowUniqueJobs(self, request: ServerAdminRequest) -> None:
        self._reply_lines(
            request,
            (unique + b"\n" for fq in self.function_queues.values() for unique in fq.uniques),
        )

    def handleMaxQueue(self, request: ServerAdminRequest) -> None:
        words = request.command.split()
        if len(words) < 2:
            self._incomplete(request, "usage: maxqueue FUNCTION [SIZE | HIGH NORMAL LOW]")
            return
        sizes: list[int] | None
        try:
            # A negative size means no limit, as in gearmand (so does 0).
            sizes = [max(int(w), 0) for w in words[2:]]
        except ValueError:
            sizes = None
        if sizes is None or len(sizes) not in (0, 1, 3):
            self._reply(
                request,
                b"ERR INVALID_ARGUMENTS " + _err_text("sizes must be 1 or 3 integers") + b"\n",
            )
            return
        fq = self._admin_function(request, words[1])
        if fq is None:
            return
        if not sizes or not any(sizes):
            fq.max_queue = None
        elif len(sizes) == 1:
            fq.max_queue = (sizes[0], sizes[0], sizes[0])
        else:
            fq.max_queue = (sizes[0], sizes[1], sizes[2])
        self._release(fq)
        self._reply(request, b"OK\n")

    def _admin_function(self, request: ServerAdminRequest, name: bytes) -> FunctionQueue | None:
        try:
            return self._new_function(name)
        except RemoteProtocolError as e:
            self._reply(request, b"ERR INVALID_ARGUMENTS " + _err_text(str(e)) + b"\n")
            return None

    def handleFunctionCommand(self, request: ServerAdminRequest) -> None:
        """gearmand's ``create function NAME`` and ``drop function NAME``."""
        words = request.command.split()
        if len(words) < 3:
            self._incomplete(request, "usage: create|drop function NAME")
            return
        name = words[2]
        if words[0].lower() == b"create":
            if self._admin_function(request, name) is None:
                return
            self._created.add(name)
            self.functions.add(name)
            self._reply(request, b"OK\n")
            return
        fq = self.function_queues.get(name)
        if fq is None:
            self._reply(request, b"ERR UNKNOWN_FUNCTION Function+not+found\n")
        elif fq.workers or fq.total:
            self._reply(request, b"ERR FUNCTION_IN_USE Function+has+jobs+or+workers\n")
        else:
            del self.function_queues[name]
            self.functions.discard(name)
            self._created.discard(name)
            self._reply(request, b"OK\n")

    def handleShutdown(self, request: ServerAdminRequest) -> None:
        words = request.command.split()
        graceful = len(words) > 1 and words[1].lower() == b"graceful"
        self._reply(request, b"OK\n")
        self._flush()
        if graceful:
            self._begin_graceful()
        else:
            self.log.info("Shutdown requested by admin command")
            self._stop()

    # --- ACL commands

    def handleACLList(self, request: ServerAdminRequest) -> None:
        if self.acl is None:
            self._reply(request, b"ERR ACL_DISABLED\n")
            return
        self._reply_lines(request, (_acl_line(entry) for entry in self.acl.getEntries()))

    def _acl_subject(self, request: ServerAdminRequest) -> str | None:
        return cast(GeardConnection, request.connection).ssl_subject

    def handleACLGrant(self, request: ServerAdminRequest) -> None:
        acl = self.acl
        if acl is None:
            self._reply(request, b"ERR ACL_DISABLED\n")
            return
        if not acl.canGrant(self._acl_subject(request)):
            self._reply(request, b"ERR PERMISSION_DENIED\n")
            return
        parts = _text(request.command).split(None, 4)
        if len(parts) < 4:
            self._incomplete(request, "usage: acl grant VERB SUBJECT [PATTERN]")
            return
        verb, subject = parts[2], parts[3]
        pattern = parts[4] if len(parts) > 4 else None
        try:
            if verb == "grant":
                acl.grantGrant(subject)
            elif verb == "admin" and hasattr(acl, "grantAdmin"):
                acl.grantAdmin(subject)
            elif verb in ("invoke", "register"):
                if pattern is None:
                    self._incomplete(request, "usage: acl grant %s SUBJECT PATTERN" % verb)
                    return
                if verb == "invoke":
                    acl.grantInvoke(subject, pattern)
                else:
                    acl.grantRegister(subject, pattern)
            else:
                self._reply(request, b"ERR UNKNOWN_ACL_VERB\n")
                return
        except Exception as e:
            self._reply(request, b"ERR UNABLE " + str(e).encode() + b"\n")
            return
        self._reply(request, b"OK\n")

    def _revoke(self, request: ServerAdminRequest, verb: str, subject: str) -> None:
        acl = self.acl
        assert acl is not None
        try:
            if verb == "invoke":
                acl.revokeInvoke(subject)
            elif verb == "register":
                acl.revokeRegister(subject)
            elif verb == "grant":
                acl.revokeGrant(subject)
            elif verb == "admin" and hasattr(acl, "revokeAdmin"):
                acl.revokeAdmin(subject)
            elif verb == "all":
                try:
                    acl.remove(subject)
                except Exception as e:
                    if type(e).__name__ != "ACLError":
                        raise
            else:
                self._reply(request, b"ERR UNKNOWN_ACL_VERB\n")
                return
        except Exception as e:
            self._reply(request, b"ERR UNABLE " + str(e).encode() + b"\n")
            return
        self._reply(request, b"OK\n")

    def handleACLRevoke(self, request: ServerAdminRequest) -> None:
        acl = self.acl
        if acl is None:
            self._reply(request, b"ERR ACL_DISABLED\n")
            return
        parts = _text(request.command).split()
        if len(parts) < 4:
            self._incomplete(request, "usage: acl revoke VERB SUBJECT")
            return
        verb, subject = parts[2], parts[3]
        caller = self._acl_subject(request)
        if subject != caller and not acl.canGrant(caller):
            self._reply(request, b"ERR PERMISSION_DENIED\n")
            return
        self._revoke(request, verb, subject)

    def handleACLSelfRevoke(self, request: ServerAdminRequest) -> None:
        if self.acl is None:
            self._reply(request, b"ERR ACL_DISABLED\n")
            return
        parts = _text(request.command).split()
        if len(parts) < 3:
            self._incomplete(request, "usage: acl self-revoke VERB")
            return
        subject = self._acl_subject(request)
        if subject is None:
            self._reply(request, b"ERR PERMISSION_DENIED\n")
            return
        self._revoke(request, parts[2], subject)


Server.__module__ = "gear"
