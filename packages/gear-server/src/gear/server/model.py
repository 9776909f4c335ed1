"""What geard holds: jobs, per-function queues and per-peer sessions.

Plain data with no I/O: the engine changes it, the transport feeds it, and
tests build it without a network. Imports nothing else from gear.server.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from gear.codec import Decoder
from gear.constants import PRECEDENCE_HIGH, PRECEDENCE_LOW, PRECEDENCE_NORMAL
from gear.errors import RemoteProtocolError
from gear.job import BaseBinaryJob, BaseJob

if TYPE_CHECKING:
    from gear.server.counters import FunctionCounts

__all__ = [
    "DONE",
    "PRECEDENCES",
    "PRIORITY_INDEX",
    "QUEUED",
    "RUNNING",
    "SCHEDULED",
    "FunctionQueue",
    "ServerJob",
    "Session",
    "TimerHandle",
    "Timers",
    "check_field",
]

QUEUED = 0
RUNNING = 1
SCHEDULED = 2
DONE = 3

#: precedence constant -> index into a function's (high, normal, low) queues
PRIORITY_INDEX = {PRECEDENCE_HIGH: 0, PRECEDENCE_NORMAL: 1, PRECEDENCE_LOW: 2}
PRECEDENCES = (PRECEDENCE_HIGH, PRECEDENCE_NORMAL, PRECEDENCE_LOW)
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def check_field(value: bytes, what: str, limit: int) -> None:
    """Refuse a name or id that would not fit, or could forge a line of an admin listing."""
    if len(value) > limit:
        raise RemoteProtocolError("%s longer than %d bytes" % (what, limit))
    if _CONTROL.search(value) is not None:
        raise RemoteProtocolError("%s contains a control character" % what)
    if value.startswith(b"ERR ") and what != "client id":
        raise RemoteProtocolError("%s must not start with 'ERR '" % what)


class TimerHandle(Protocol):
    """A pending callback that can be cancelled (``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None: ...


class Timers(Protocol):
    """How the I/O-free layers ask for later work: an asyncio loop, or a fake in tests."""

    def call_soon(self, callback: Callable[..., object], *args: Any) -> object: ...
    def call_later(
        self, delay: float, callback: Callable[..., object], *args: Any
    ) -> TimerHandle: ...
    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> object: ...


class ServerJob(BaseBinaryJob, BaseJob):  # type: ignore[misc]  # name is bytes
    """A job held by :class:`gear.Server`: queued, scheduled or running.

    ``name``, ``arguments``, ``unique`` and ``handle`` are bytes. ``clients``
    holds every connection waiting for the result (several when submits of
    the same unique were coalesced); it is an empty tuple for background
    jobs, which saves a list per queued job.
    The constructor skips BaseJob's validation because the server only builds
    jobs from packets it has already split.
    """

    handle: bytes
    # Class-level defaults: a queued job stores only what differs, which
    # keeps the per-job dict small when 100k jobs wait.
    worker_connection: Session | None = None
    numerator: bytes | None = None
    denominator: bytes | None = None
    priority = 1
    state = QUEUED
    retries = 0
    when: float | None = None
    timer: TimerHandle | None = None
    function: FunctionQueue | None = None
    #: clock() at assignment, kept only while metrics are on (a class default costs a
    #: queued job nothing)
    assigned = 0.0

    def __init__(
        self,
        handle: bytes,
        name: bytes,
        arguments: bytes,
        client_connection: Session | None = None,
        unique: bytes | None = None,
    ) -> None:
        self.handle = handle
        self._name = name
        self._arguments = arguments
        self._unique = unique or None
        self.clients: Sequence[Session] = (
            [client_connection] if client_connection is not None else ()
        )
        self.background = client_connection is None

    @property
    def client_connection(self) -> Session | None:
        """The first client waiting for this job (gear 0.16's single client)."""
        return self.clients[0] if self.clients else None

    @property
    def running(self) -> bool:
        """True while a worker holds the job."""
        return self.state == RUNNING

    @property
    def precedence(self) -> int:
        """``gear.PRECEDENCE_HIGH``, ``_NORMAL`` or ``_LOW``."""
        return PRECEDENCES[self.priority]

    def __repr__(self) -> str:
        return "<gear.ServerJob 0x%x handle: %r name: %r unique: %r>" % (
            id(self),
            self.handle,
            self._name,
            self._unique,
        )


ServerJob.__module__ = "gear"


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
        "stats",
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
        self.sleepers: dict[Session, None] = {}
        self.uniques: dict[bytes, ServerJob] = {}
        self.max_queue: tuple[int, int, int] | None = None
        #: Where jobs of this function are counted while metrics are on (else None).
        self.stats: FunctionCounts | None = None

    @property
    def queued(self) -> int:
        return self.counts[0] + self.counts[1] + self.counts[2]

    @property
    def total(self) -> int:
        return self.counts[0] + self.counts[1] + self.counts[2] + self.running + self.scheduled


class SessionOwner(Protocol):
    """What a session needs from the server that dispatches its input."""

    max_packet_size: int
    max_admin_line: int

    def _frame(self, conn: Any, magic: bytes, ptype: int, payload: bytes) -> None: ...
    def _line(self, conn: Any, line: bytes) -> None: ...


class Session:
    """One peer: client, worker or admin session (or all three).

    Holds the per-peer state; a subclass says how bytes reach the peer
    (:meth:`write`, :meth:`close`, :meth:`abort`, :meth:`buffer_size`).
    Attribute names follow gear 0.16's ``ServerConnection`` where they exist
    (``client_id``, ``functions``, ``ssl_subject``, ``state``, ``host``,
    ``port``, ``related_jobs``).
    """

    def __init__(self, owner: SessionOwner) -> None:
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
        self.decoder = Decoder(owner.max_packet_size, owner.max_admin_line)
        self.on_frame = partial(owner._frame, self)
        self.on_line = partial(owner._line, self)
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

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the peer (buffered by the transport)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close once what was written has gone out."""
        raise NotImplementedError

    def abort(self) -> None:
        """Close now, dropping what was not sent."""
        raise NotImplementedError

    def buffer_size(self) -> int:
        """Bytes written but not yet taken by the peer."""
        raise NotImplementedError
