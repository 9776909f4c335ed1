"""Client-side jobs: :class:`Job`, :class:`TextJob` and :class:`BinaryJob`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from gear.errors import DisconnectError, GearmanError
from gear.job import BaseBinaryJob, BaseJob, TextJobArguments, TextJobUnique, TextList
from gear.util import convert_to_bytes

__all__ = ["Job", "TextJob", "BinaryJob"]


class Job(BaseJob):
    """A job submitted by a :class:`gear.Client`.

    The poll thread updates ``data``, ``complete``, ``failure``,
    ``exception``, ``warning``, the status fields and ``known``/``running``
    as packets arrive; :meth:`wait` blocks until the job ends.
    """

    data_type: type[list[Any]] = list

    def __init__(
        self, name: str | bytes, arguments: Any, unique: str | bytes | None = None
    ) -> None:
        super().__init__(name, arguments, unique)
        self._data: list[Any] = self.data_type()
        self._exception: bytes | None = None
        self.warning = False
        self.complete = False
        self.failure = False
        self.numerator: bytes | None = None
        self.denominator: bytes | None = None
        self.fraction_complete: float | None = None
        self.known: bool | None = None
        self.running: bool | None = None
        self._done = threading.Event()
        self._lost = False
        self._background = False

    @property
    def data(self) -> Any:
        """The result chunks received so far, in arrival order."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        if not isinstance(value, self.data_type):
            raise ValueError(f"data attribute must be {self.data_type}")
        self._data = value

    @property
    def binary_data(self) -> Iterator[bytes]:
        for item in self._data:
            yield convert_to_bytes(item)

    @property
    def exception(self) -> Any:
        """The WORK_EXCEPTION payload, or None."""
        return self._exception

    @exception.setter
    def exception(self, value: Any) -> None:
        self._exception = value

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION).

        Returns True once ``complete`` is set (check ``failure``), False if
        ``timeout`` seconds pass first. Raises :class:`gear.DisconnectError`
        if the connection to the job's server was lost before the end, since
        the result can then never arrive, and :class:`gear.GearmanError` for a
        background job, whose result the server never sends.
        """
        if self._background:
            raise GearmanError("Background job %r sends no result to wait for" % (self.handle,))
        if not self._done.wait(timeout):
            return False
        if self.complete:
            return True
        if self._lost:
            raise DisconnectError(
                "Lost the connection to the server of job %r before it finished" % (self.handle,)
            )
        return False

    def _reset_wait(self, background: bool) -> None:
        self._done.clear()
        self._lost = False
        self._background = background


class TextJob(TextJobArguments, TextJobUnique, Job):
    """A job whose arguments, unique, data and exception are ``str``."""

    data_type = TextList

    @property
    def exception(self) -> Any:
        value = self._exception
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("utf8")
        return value

    @exception.setter
    def exception(self, value: Any) -> None:
        self._exception = convert_to_bytes(value)


class BinaryJob(BaseBinaryJob, Job):
    """A job whose ``name`` is returned as bytes."""


for _cls in (Job, TextJob, BinaryJob):
    _cls.__module__ = "gear"
del _cls
