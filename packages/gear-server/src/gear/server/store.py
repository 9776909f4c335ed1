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
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["StoredJob", "QueueStore", "MemoryQueueStore"]


@dataclass(frozen=True)
class StoredJob:
    """What a store needs to recreate one background job."""

    handle: bytes
    name: bytes
    unique: bytes | None
    arguments: bytes
    precedence: int
    when: float | None = None
    """Unix time at which a scheduled job becomes runnable, or None."""


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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources at server shutdown."""


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

    def load(self) -> Iterable[StoredJob]:
        return list(self.jobs.values())
