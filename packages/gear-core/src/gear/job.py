"""Job base classes shared by the client, worker and server packages.

``BaseJob`` holds name, arguments and unique as bytes; the ``Text*`` mixins
present them as ``str`` and ``BaseBinaryJob`` keeps the name as bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, SupportsIndex

from gear.util import convert_to_bytes

if TYPE_CHECKING:
    from gear.connection import Connection

__all__ = ["BaseJob", "BaseBinaryJob", "TextJobArguments", "TextJobUnique", "TextList"]


class BaseJob:
    """A job's identity: function name, arguments, unique id and handle."""

    def __init__(
        self,
        name: str | bytes,
        arguments: bytes | bytearray,
        unique: str | bytes | None = None,
        handle: bytes | None = None,
    ) -> None:
        self._name = convert_to_bytes(name)
        self._validate_arguments(arguments)
        self._arguments: bytes | bytearray = convert_to_bytes(arguments)
        self._unique = convert_to_bytes(unique)
        self.handle = handle
        self.connection: Connection | None = None

    def _validate_arguments(self, arguments: Any) -> None:
        if not isinstance(arguments, (bytes, bytearray)):
            raise TypeError("arguments must be of type bytes or bytearray")

    @property
    def arguments(self) -> Any:
        return self._arguments

    @arguments.setter
    def arguments(self, value: Any) -> None:
        self._validate_arguments(value)
        self._arguments = value

    @property
    def unique(self) -> Any:
        return self._unique

    @unique.setter
    def unique(self, value: Any) -> None:
        self._unique = value

    @property
    def name(self) -> Any:
        """The function name as ``str`` (``bytes`` on Binary jobs)."""
        if isinstance(self._name, bytes):
            return self._name.decode("utf8")
        return self._name

    @name.setter
    def name(self, value: str | bytes) -> None:
        self._name = convert_to_bytes(value)

    @property
    def binary_name(self) -> bytes:
        return self._name

    @property
    def binary_arguments(self) -> bytes:
        return bytes(self._arguments)

    @property
    def binary_unique(self) -> bytes | None:
        return self._unique

    def __repr__(self) -> str:
        return "<gear.Job 0x%x handle: %s name: %s unique: %s>" % (
            id(self),
            str(self.handle),
            self.name,
            str(self.unique),
        )


class BaseBinaryJob:
    """Mixin: ``name`` is the raw bytes."""

    _name: bytes

    @property
    def name(self) -> Any:
        return self._name

    @name.setter
    def name(self, value: str | bytes) -> None:
        self._name = convert_to_bytes(value)


class TextJobArguments:
    """Mixin: ``arguments`` is ``str``; bytes and str are accepted."""

    _arguments: bytes | bytearray

    def _validate_arguments(self, arguments: Any) -> None:
        if not isinstance(arguments, (bytes, bytearray, str)):
            raise TypeError("arguments must be of type str, bytes or bytearray")

    @property
    def arguments(self) -> Any:
        args = self._arguments
        if isinstance(args, (bytes, bytearray)):
            return bytes(args).decode("utf8")
        return args

    @arguments.setter
    def arguments(self, value: Any) -> None:
        self._validate_arguments(value)
        self._arguments = convert_to_bytes(value)


class TextJobUnique:
    """Mixin: ``unique`` is ``str`` (or None)."""

    _unique: bytes | None

    @property
    def unique(self) -> Any:
        if isinstance(self._unique, bytes):
            return self._unique.decode("utf8")
        return self._unique

    @unique.setter
    def unique(self, value: Any) -> None:
        self._unique = convert_to_bytes(value)


def _text(item: Any) -> Any:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item).decode("utf8")
    return item


class TextList(list[Any]):
    """A list that stores bytes items decoded to ``str``."""

    def append(self, item: Any) -> None:
        super().append(_text(item))

    def extend(self, items: Iterable[Any]) -> None:
        super().extend(_text(item) for item in items)

    def insert(self, index: SupportsIndex, item: Any) -> None:
        super().insert(index, _text(item))
