"""The queue-store seam: where durable job storage will plug in.

The server keeps its live queues in memory (per function, per priority
deques). A :class:`QueueStore` is told about every background job that
enters or leaves the queue and is asked for the jobs to restore at start, so
a persistent implementation (a file, SQLite, a database) can be added without
touching the dispatch code. Foreground jobs are never stored: their clients
are gone after a restart, as with the C gearmand.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

__all__ = [
    "MemoryQueueStore",
    "NodeLease",
    "QueueStore",
    "QueueStoreError",
    "StoreListener",
    "StoredJob",
]


class QueueStoreError(Exception):
    """The store cannot be opened, read or written; geard must not go on as if
    the jobs were safe (it refuses to start rather than start empty)."""


@dataclass(slots=True)
class StoredJob:
    """What a store needs to recreate one background job.

    Treat it as immutable (use :func:`dataclasses.replace`); it is not
    ``frozen`` only because a frozen dataclass costs five times as much to
    build, and the server builds one per background job.
    """

    handle: bytes
    name: bytes
    unique: bytes | None
    arguments: bytes
    precedence: int
    when: float | None = None
    """Unix time at which a scheduled job becomes runnable, or None."""
    attempts: int = 0
    """Times the job was requeued because its worker disconnected."""
    adopted: bool = False
    """Taken over from another node of a cluster whose lease expired."""


@dataclass(frozen=True)
class NodeLease:
    """One node of the cluster as the store last saw it (every second)."""

    node_id: str
    epoch: int
    lease_left: float
    """Seconds until the lease expires (negative: expired, about to be adopted)."""
    jobs: int
    """Background jobs stored for the node (queued, scheduled and running)."""
    is_self: bool


class StoreListener(Protocol):
    """What a shared store tells the server outside of its own calls.

    A store that several nodes share (:mod:`gear.server.postgres_store`)
    learns things on its own schedule: another node died and its jobs are
    now ours, this node lost its lease, a job was coalesced with one queued
    on another node. The engine implements these; every call is made on
    the event loop.
    """

    def store_prefix(self, prefix: bytes) -> None:
        """New job handles start with ``prefix`` (unique across the cluster)."""

    def store_adopted(self, jobs: list[StoredJob]) -> None:
        """Queue ``jobs`` (adopted from a dead node, or reloaded after an outage)."""

    def store_fenced(self) -> None:
        """This node's lease expired: forget every queued background job,
        another node may own them now."""

    def store_coalesced(self, handles: list[bytes]) -> None:
        """These new jobs share a unique id with a job stored by another node:
        drop them here if they have not started."""


class QueueStore(abc.ABC):
    """Durable storage of background jobs; every call runs on the event loop."""

    available: bool = True
    """False while the store cannot take new jobs (its database is
    unreachable): background submits are then answered with ERROR."""
    where: str = "in memory"
    """Where the jobs are kept, for log lines: a file path, a URL without its password."""
    lease_deadline: float = math.inf
    """``time.monotonic()`` after which this node may no longer own its
    stored jobs (a shared store's lease); the server checks it before
    handing out a job and calls :meth:`expire` once it has passed."""

    def expire(self) -> None:  # noqa: B027 - optional hook
        """The lease ran out before the store renewed it: give up the jobs now."""

    async def open(self, listener: StoreListener) -> None:  # noqa: B027 - optional hook
        """Connect, on the server's event loop, before :meth:`load` is called.

        A store that needs asyncio I/O (a network database) does it here and
        keeps ``listener`` for what it learns later; raise
        :class:`QueueStoreError` if the server must not start.
        """

    async def aclose(self) -> None:
        """Write what is pending and disconnect, on the event loop, at the very end."""
        self.close()

    @abc.abstractmethod
    def add(self, job: StoredJob) -> None:
        """A background job was accepted; it must survive a restart from now on."""

    @abc.abstractmethod
    def remove(self, handle: bytes) -> None:
        """The job finished, failed or was cancelled; forget it."""

    @abc.abstractmethod
    def load(self) -> Iterable[StoredJob]:
        """Return the jobs to queue again when the server starts."""

    def retried(self, handle: bytes, attempts: int) -> None:  # noqa: B027 - optional hook
        """The job went back to the queue; ``attempts`` must survive a restart
        so that a job that keeps killing its workers is still failed."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make every change since the last flush durable.

        The server calls this once per event-loop turn, before it writes the
        replies of that turn, so no client hears JOB_CREATED for a job that
        is not on disk yet. Raises :class:`QueueStoreError` on failure.
        """

    def flush_async(self, done: Callable[[BaseException | None], None]) -> bool:
        """Start committing on another thread; False (the default) if not supported.

        When it returns True the server holds the replies of the turn until
        ``done(error)`` is called (from any thread) and sends them only if
        ``error`` is None; it starts at most one such flush at a time.
        """
        return False

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources at server shutdown."""

    def cluster_nodes(self) -> tuple[NodeLease, ...] | None:
        """The nodes sharing this store; None for a store of one node."""
        return None


class MemoryQueueStore(QueueStore):
    """Keeps stored jobs in a dict: the reference implementation of the seam.

    Handing the same instance to a new :class:`gear.Server` restores its
    background jobs, which is how tests exercise the seam; a real deployment
    would use a store that writes to disk.
    """

    def __init__(self) -> None:
        self.jobs: dict[bytes, StoredJob] = {}

    def add(self, job: StoredJob) -> None:
        self.jobs[job.handle] = job

    def remove(self, handle: bytes) -> None:
        self.jobs.pop(handle, None)

    def retried(self, handle: bytes, attempts: int) -> None:
        job = self.jobs.get(handle)
        if job is not None:
            self.jobs[handle] = replace(job, attempts=attempts)

    def load(self) -> Iterable[StoredJob]:
        return list(self.jobs.values())
