"""The server's record of one job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gear.constants import PRECEDENCE_HIGH, PRECEDENCE_LOW, PRECEDENCE_NORMAL
from gear.job import BaseBinaryJob, BaseJob

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Sequence

    from gear.server.server import FunctionQueue, GeardConnection

__all__ = ["ServerJob", "QUEUED", "RUNNING", "SCHEDULED", "DONE"]

QUEUED = 0
RUNNING = 1
SCHEDULED = 2
DONE = 3

#: precedence constant -> index into a function's (high, normal, low) queues
PRIORITY_INDEX = {PRECEDENCE_HIGH: 0, PRECEDENCE_NORMAL: 1, PRECEDENCE_LOW: 2}
PRECEDENCES = (PRECEDENCE_HIGH, PRECEDENCE_NORMAL, PRECEDENCE_LOW)


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
    worker_connection: GeardConnection | None = None
    numerator: bytes | None = None
    denominator: bytes | None = None
    priority = 1
    state = QUEUED
    retries = 0
    when: float | None = None
    timer: asyncio.TimerHandle | None = None
    function: FunctionQueue | None = None

    def __init__(
        self,
        handle: bytes,
        name: bytes,
        arguments: bytes,
        client_connection: GeardConnection | None = None,
        unique: bytes | None = None,
    ) -> None:
        self.handle = handle
        self._name = name
        self._arguments = arguments
        self._unique = unique or None
        self.clients: Sequence[GeardConnection] = (
            [client_connection] if client_connection is not None else ()
        )
        self.background = client_connection is None

    @property
    def client_connection(self) -> GeardConnection | None:
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
