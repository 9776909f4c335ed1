"""``gear.Server``: gear 0.16's job server class over geard's layers.

The constructor, public attributes and ``handleX`` hooks are gear 0.16's.
The work is done by the layers it stacks (docs/explanation/architecture.rst
draws them): :mod:`~gear.server.engine` holds the jobs and queues,
:mod:`~gear.server.handlers` and :mod:`~gear.server.admin` answer packets
and admin lines, :mod:`~gear.server.outbox` batches replies,
:mod:`~gear.server.transport` and :mod:`~gear.server.runtime` bring the
sockets and the event loop. :func:`serve` runs a server inside an asyncio
loop the application already has.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Callable
from typing import Any

from gear.codec import DEFAULT_MAX_ADMIN_LINE
from gear.server._statsd import make_statsd
from gear.server.acl_admin import ACLLike
from gear.server.config import (
    DEFAULT_BACKLOG,
    DEFAULT_MAX_CLIENT_ID,
    DEFAULT_MAX_FUNCTION_NAME,
    DEFAULT_MAX_OUTPUT_BUFFER,
    DEFAULT_MAX_PACKET_SIZE,
    DEFAULT_MAX_PARTIAL_TOTAL,
    DEFAULT_MAX_UNIQUE_ID,
    DEFAULT_METRICS_MAX_FUNCTIONS,
    DEFAULT_PARTIAL_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    MAX_EPOCH,
    MAX_TIMEOUT,
    ServerOptions,
)
from gear.server.model import QUEUED, FunctionQueue, ServerJob, Session
from gear.server.runtime import Runtime, check_event_loop
from gear.server.store import QueueStore
from gear.server.transport import GeardConnection
from gear.tls import check_tls_files, load_context

__all__ = [
    "ACLLike",
    "DEFAULT_BACKLOG",
    "DEFAULT_MAX_CLIENT_ID",
    "DEFAULT_MAX_FUNCTION_NAME",
    "DEFAULT_MAX_OUTPUT_BUFFER",
    "DEFAULT_MAX_PACKET_SIZE",
    "DEFAULT_MAX_PARTIAL_TOTAL",
    "DEFAULT_MAX_UNIQUE_ID",
    "DEFAULT_METRICS_MAX_FUNCTIONS",
    "DEFAULT_PARTIAL_TIMEOUT",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_TLS_HANDSHAKE_TIMEOUT",
    "FunctionQueue",
    "GeardConnection",
    "MAX_EPOCH",
    "MAX_TIMEOUT",
    "Server",
    "serve",
]

#: Set by :func:`serve`: construct without the server's own loop thread.
_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("gear_server_inline", default=False)


class Server(Runtime):
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
    :class:`~gear.server.store.QueueStoreError`). ``queue_url``
    (``postgresql://...``) keeps them in PostgreSQL instead, shared by every
    node given the same URL: ``node_id`` (default ``HOST:PORT``) and
    ``node_lease`` (seconds, default 15) are this node's name and lease, see
    :mod:`gear.server.postgres_store`. ``shutdown_timeout`` is how
    long a graceful shutdown waits for running jobs.
    ``tls_handshake_timeout`` bounds a TLS handshake (connections in their
    handshake count toward ``max_connections``), ``max_partial_total`` the
    unfinished input of all connections together, and ``max_function_name``,
    ``max_unique_id`` and ``max_client_id`` the sizes of those fields.
    ``event_loop`` picks the loop of the server's own thread: ``auto``
    (uvloop when it is installed, which it is by default on CPython on
    Linux and macOS), ``asyncio`` or ``uvloop``.
    ``metrics_port`` serves ``/metrics`` and ``/healthz`` over HTTP on
    ``metrics_address`` (needs ``gear-server[metrics]``), with per-function
    labels for at most ``metrics_max_functions`` functions.
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
        queue_url: str | None = None,
        node_id: str | None = None,
        node_lease: float | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        max_partial_total: int = DEFAULT_MAX_PARTIAL_TOTAL,
        max_function_name: int = DEFAULT_MAX_FUNCTION_NAME,
        max_unique_id: int = DEFAULT_MAX_UNIQUE_ID,
        max_client_id: int = DEFAULT_MAX_CLIENT_ID,
        event_loop: str = "auto",
        metrics_port: int | None = None,
        metrics_address: str = "127.0.0.1",
        metrics_max_functions: int = DEFAULT_METRICS_MAX_FUNCTIONS,
    ) -> None:
        check_event_loop(event_loop)
        #: ``auto`` (uvloop when installed), ``asyncio`` or ``uvloop``.
        self.event_loop = event_loop
        self.server_id = server_id
        log = logging.getLogger("gear.Server" + (".%s" % server_id if server_id else ""))
        self.log = log
        self.host = host
        self.ssl_key = ssl_key
        self.ssl_cert = ssl_cert
        self.ssl_ca = ssl_ca
        self.use_ssl = check_tls_files(ssl_key, ssl_cert, ssl_ca)
        self.keepalive = keepalive
        self.tcp_keepidle = tcp_keepidle
        self.tcp_keepintvl = tcp_keepintvl
        self.tcp_keepcnt = tcp_keepcnt
        options = ServerOptions(
            max_packet_size=max_packet_size,
            max_admin_line=max_admin_line,
            max_output_buffer=max_output_buffer,
            max_connections=max_connections,
            partial_timeout=partial_timeout,
            backlog=backlog,
            job_retries=job_retries,
            shutdown_timeout=shutdown_timeout,
            tls_handshake_timeout=tls_handshake_timeout,
            max_partial_total=max_partial_total,
            max_function_name=max_function_name,
            max_unique_id=max_unique_id,
            max_client_id=max_client_id,
        )
        statsd = make_statsd(statsd_host, statsd_port, statsd_prefix) if statsd_host else None
        self._init_engine(options, log, statsd, acl)
        self.queue_store = queue_store
        self._init_transport()
        self._init_runtime()
        self.poll = None

        self._ssl_context = (
            load_context(ssl_key, ssl_cert, ssl_ca, server_side=True)
            if ssl_key and ssl_cert and ssl_ca
            else None
        )
        if metrics_port is not None:
            # Bound first: once the Gearman port answers, so does this one.
            from gear.server.monitor import Monitor

            self.monitor = Monitor(self, metrics_address, metrics_port, metrics_max_functions)
        try:
            self.socket = self._bind(port)
        except BaseException:
            if self.monitor is not None:
                self.monitor.close()
            raise
        #: The port listened on (the real one when ``0`` was given).
        self.port: int = self.socket.getsockname()[1]
        self._dispatch = self._build_dispatch()

        if sum(x is not None for x in (queue_file, queue_store, queue_url)) > 1:
            self._close_listeners()
            raise ValueError("give one of queue_file, queue_url and queue_store")
        if queue_url is not None:
            from gear.server.postgres_schema import DEFAULT_NODE_LEASE, default_node_id
            from gear.server.postgres_store import PostgresQueueStore

            try:
                self.queue_store = PostgresQueueStore(
                    queue_url,
                    node_id or default_node_id(host, self.port),
                    lease=DEFAULT_NODE_LEASE if node_lease is None else node_lease,
                )
            except BaseException:
                self._close_listeners()
                raise
        if queue_file is not None:
            from gear.server.sqlite_store import SQLiteQueueStore

            try:
                self.queue_store = SQLiteQueueStore(queue_file)
            except BaseException:
                self._close_listeners()
                raise

        if not _INLINE.get():
            self._start_thread()

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
        return list(self._connections)  # type: ignore[arg-type]

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
    # gear 0.16 helpers

    def getJobForConnection(self, connection: Session, peek: bool = False) -> ServerJob | None:
        """Return the next job ``connection`` can run; without peek, assign it."""
        if peek:
            return self._peek(connection)
        job = self._take(connection)
        if job is not None:
            self._assign(connection, job)
        return job

    def wakeConnection(self, connection: Session) -> None:
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


Server.__module__ = "gear"


async def serve(
    *args: Any,
    server_class: type[Server] = Server,
    started: Callable[[Server], object] | None = None,
    **options: Any,
) -> None:
    """Run a job server on the running asyncio loop until it is shut down or cancelled.

    Takes :class:`gear.Server`'s arguments (or builds ``server_class``, a
    subclass). ``started`` is called with the server once it listens, for
    example to read its :attr:`~gear.Server.port` or keep it for a later
    :meth:`~gear.Server.shutdown`. Cancelling the task stops the server as
    ``shutdown()`` does: the queue store is committed and closed.
    """
    token = _INLINE.set(True)
    try:
        server = server_class(*args, **options)
    finally:
        _INLINE.reset(token)
    await server._serve_here(started)
