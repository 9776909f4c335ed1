"""Job base classes shared by the client, worker and server packages.

``BaseJob`` holds name, arguments and unique as bytes; the ``Text*`` mixins
present them as ``str`` and ``BaseBinaryJob`` keeps the name as bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, SupportsIndex

from gear.util import convert_to_bytes

if TYPE_CHECKING:
    from gear.connection import Connection

__all__ = ["BaseJob", "BaseBinaryJob", "TextJobArguments", "TextJobUnique", "TextList"]


class BaseJob:
    """A job's identity: function name, arguments, unique id and handle.

    ``name`` and ``unique`` may be given as ``str`` or bytes and are kept
    as bytes; ``arguments`` must be bytes (or a bytearray, kept as bytes).
    """

    def __init__(
        self,
        name: str | bytes,
        arguments: bytes | bytearray,
        unique: str | bytes | None = None,
        handle: bytes | None = None,
    ) -> None:
        self._name: bytes = convert_to_bytes(name)
        self._validate_arguments(arguments)
        # The Text variants pass str here (their check lets it through).
        self._arguments: bytes = _bytes(convert_to_bytes(arguments))
        self._unique: bytes | None = convert_to_bytes(unique)
        self.handle: bytes | None = handle
        self.connection: Connection | None = None

    def _validate_arguments(self, arguments: object) -> None:
        if not isinstance(arguments, (bytes, bytearray)):
            raise TypeError("arguments must be of type bytes or bytearray")

    @property
    def arguments(self) -> bytes:
        """The job's arguments (``str`` on the Text variants)."""
        return self._arguments

    @arguments.setter
    def arguments(self, value: bytes | bytearray) -> None:
        self._validate_arguments(value)
        self._arguments = _bytes(value)

    @property
    def unique(self) -> bytes | None:
        """The unique id, or None (``str`` on the Text variants)."""
        return self._unique

    @unique.setter
    def unique(self, value: str | bytes | None) -> None:
        self._unique = convert_to_bytes(value)

    @property
    def name(self) -> str:
        """The function name as ``str`` (``bytes`` on Binary jobs)."""
        return self._name.decode("utf8")

    @name.setter
    def name(self, value: str | bytes) -> None:
        self._name = convert_to_bytes(value)

    @property
    def binary_name(self) -> bytes:
        return self._name

    @property
    def binary_arguments(self) -> bytes:
        return self._arguments

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
    def name(self) -> bytes:
        return self._name

    @name.setter
    def name(self, value: str | bytes) -> None:
        self._name = convert_to_bytes(value)


class TextJobArguments:
    """Mixin: ``arguments`` is ``str``; str, bytes and bytearray are accepted."""

    _arguments: bytes

    def _validate_arguments(self, arguments: object) -> None:
        if not isinstance(arguments, (bytes, bytearray, str)):
            raise TypeError("arguments must be of type str, bytes or bytearray")

    @property
    def arguments(self) -> str:
        return self._arguments.decode("utf8")

    @arguments.setter
    def arguments(self, value: str | bytes | bytearray) -> None:
        self._validate_arguments(value)
        self._arguments = _bytes(convert_to_bytes(value))


class TextJobUnique:
    """Mixin: ``unique`` is ``str`` (or None)."""

    _unique: bytes | None

    @property
    def unique(self) -> str | None:
        if self._unique is None:
            return None
        return self._unique.decode("utf8")

    @unique.setter
    def unique(self, value: str | bytes | None) -> None:
        self._unique = convert_to_bytes(value)


def _bytes(data: bytes | bytearray) -> bytes:
    return data if type(data) is bytes else bytes(data)


def _text(item: str | bytes | bytearray) -> str:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item).decode("utf8")
    return item


class TextList(list[str]):
    """A list of ``str`` that decodes bytes items (UTF-8) as they are added."""

    def append(self, item: str | bytes | bytearray) -> None:
        super().append(_text(item))

    def extend(self, items: Iterable[str | bytes | bytearray]) -> None:
        super().extend(_text(item) for item in items)

    def insert(self, index: SupportsIndex, item: str | bytes | bytearray) -> None:
        super().insert(index, _text(item))
