"""Client-side jobs: :class:`Job`, :class:`TextJob` and :class:`BinaryJob`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import cast

from gear.errors import DisconnectError, GearmanError
from gear.job import BaseBinaryJob, BaseJob, TextJobArguments, TextJobUnique, TextList
from gear.util import convert_to_bytes

__all__ = ["Job", "TextJob", "BinaryJob"]


class Job(BaseJob):
    """A job submitted by a :class:`gear.Client`.

    ``arguments`` are bytes; results collect in ``data`` as a list of bytes.
    The poll thread updates ``data``, ``complete``, ``failure``,
    ``exception``, ``warning``, the status fields and ``known``/``running``
    as packets arrive; :meth:`wait` blocks until the job ends.
    """

    data_type: type[list[bytes]] = list

    def __init__(
        self, name: str | bytes, arguments: bytes | bytearray, unique: str | bytes | None = None
    ) -> None:
        super().__init__(name, arguments, unique)
        self._data: list[bytes] = self.data_type()
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
    def data(self) -> list[bytes]:
        """The result chunks received so far, in arrival order."""
        return self._data

    @data.setter
    def data(self, value: list[bytes]) -> None:
        if not isinstance(value, self.data_type):
            raise ValueError(f"data attribute must be {self.data_type}")
        self._data = value

    @property
    def binary_data(self) -> Iterator[bytes]:
        """Each chunk of ``data`` as bytes."""
        for item in self._data:
            yield convert_to_bytes(item)

    @property
    def exception(self) -> bytes | None:
        """The WORK_EXCEPTION payload, or None."""
        return self._exception

    @exception.setter
    def exception(self, value: bytes | None) -> None:
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


# TextJob and BinaryJob are Jobs whose attributes read back as another type
# (gear 0.16's design): the Text mixins narrow ``arguments`` and ``unique``
# to str, BaseBinaryJob turns ``name`` into bytes. mypy flags each such
# override; the ignores below are those, and only those.


class TextJob(TextJobArguments, TextJobUnique, Job):  # type: ignore[misc]
    """A job whose arguments, unique, data and exception are ``str``.

    Arguments may be given as ``str`` or bytes; results are decoded as UTF-8.
    """

    data_type: type[TextList] = TextList  # type: ignore[assignment]

    def __init__(
        self,
        name: str | bytes,
        arguments: str | bytes | bytearray,
        unique: str | bytes | None = None,
    ) -> None:
        super().__init__(name, arguments, unique)  # type: ignore[arg-type]

    @property  # type: ignore[override]
    def data(self) -> TextList:
        """The result chunks received so far, decoded, in arrival order."""
        return cast(TextList, self._data)

    @data.setter
    def data(self, value: TextList) -> None:
        if not isinstance(value, self.data_type):
            raise ValueError(f"data attribute must be {self.data_type}")
        self._data = value  # type: ignore[assignment]

    @property  # type: ignore[override]
    def exception(self) -> str | None:
        """The WORK_EXCEPTION payload decoded as UTF-8, or None."""
        value = self._exception
        if value is None:
            return None
        return value.decode("utf8")

    @exception.setter
    def exception(self, value: str | bytes | None) -> None:
        self._exception = convert_to_bytes(value)


class BinaryJob(BaseBinaryJob, Job):  # type: ignore[misc]
    """A job whose ``name`` is returned as bytes."""


for _cls in (Job, TextJob, BinaryJob):
    _cls.__module__ = "gear"
del _cls
