"""Tasks pair a request sent on a connection with the reply that ends it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gear.job import BaseJob

__all__ = ["Task", "SubmitJobTask", "OptionReqTask"]


class Task:
    """A request waiting for its reply; ``wait()`` blocks until it completes."""

    def __init__(self) -> None:
        self._wait_event = threading.Event()

    def setComplete(self) -> None:
        self._wait_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until complete; return False if ``timeout`` ran out first."""
        return self._wait_event.wait(timeout)


class SubmitJobTask(Task):
    """A SUBMIT_JOB* waiting for JOB_CREATED (or ERROR)."""

    def __init__(self, job: BaseJob) -> None:
        super().__init__()
        self.job = job


class OptionReqTask(Task):
    """An OPTION_REQ waiting for OPTION_RES (or ERROR)."""
