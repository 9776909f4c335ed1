"""Hooks: where metrics and tracing plug into the asyncio client and worker.

Subclass :class:`Hooks`, override the methods you need and pass an instance
as ``hooks=`` to :class:`gear.AsyncClient` or :class:`gear.AsyncWorker`.
Without ``hooks=`` nothing is called and nothing is timed, so unused hooks
cost one ``is None`` test per event. Hooks run on the event loop, in the
middle of packet handling: keep them quick (increment a counter, end a span)
and never block. An exception a hook raises is logged and otherwise ignored,
so a broken metric never fails a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from gear.job import BaseJob

__all__ = ["Hooks", "JobOutcome", "call_hook"]

#: How a job ended, as :meth:`gear.Hooks.on_job_end` reports it.
#:
#: * ``"complete"``: WORK_COMPLETE.
#: * ``"fail"``: WORK_FAIL.
#: * ``"exception"``: WORK_EXCEPTION (a handler raised).
#: * ``"timeout"``: (worker) the handler ran past the function's timeout and
#:   was cancelled; the job ended with WORK_EXCEPTION naming the timeout.
#: * ``"requeued"``: (worker) the worker let go of the job unfinished (it was
#:   stopped or its drain deadline passed); the server hands it to another
#:   worker.
#: * ``"lost"``: (client) the connection to the job's server was lost first.
JobOutcome = Literal["complete", "fail", "exception", "timeout", "requeued", "lost"]


class Hooks:
    """Callbacks for connection and job events; every method does nothing here.

    ``job`` is the :class:`gear.worker.AsyncWorkerJob` (worker) or
    :class:`gear.client.AsyncJob` (client); its ``name``, ``handle`` and
    ``unique`` identify it. ``seconds`` is measured with the event loop's
    monotonic clock: from assignment to end on a worker, from submit to end
    on a client.
    """

    def on_connect(self, host: str, port: int) -> None:
        """A connection to a server is up (and, for a worker, its functions are sent)."""

    def on_disconnect(self, host: str, port: int) -> None:
        """A connection that was up is gone (closed by either side or failed)."""

    def on_submit(self, job: BaseJob) -> None:
        """Client: a server accepted ``job`` (it has a handle now)."""

    def on_job_start(self, job: BaseJob) -> None:
        """Worker: ``job`` was assigned and its handler is about to run."""

    def on_job_end(self, job: BaseJob, outcome: JobOutcome, seconds: float) -> None:
        """``job`` ended with ``outcome`` after ``seconds``."""


def call_hook(log: logging.Logger, hook: Callable[..., object], *args: object) -> None:
    """Call ``hook(*args)``; log what it raises instead of letting it out."""
    try:
        hook(*args)
    except Exception:
        log.exception("Hook %s raised", getattr(hook, "__qualname__", hook))
