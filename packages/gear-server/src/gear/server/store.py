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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

__all__ = ["StoredJob", "QueueStore", "QueueStoreError", "MemoryQueueStore"]


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


class QueueStore(abc.ABC):
    """Durable storage of background jobs; every call runs on the event loop."""

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
