"""Payload codecs: job arguments and results as Python objects instead of bytes.

Gearman carries opaque bytes. A :class:`Codec` given to ``gear.AsyncClient``
or ``gear.AsyncWorker`` (``codec=``) turns objects into those bytes and back,
so neither side writes ``json.dumps`` by hand. :class:`JSONCodec` is the one
most peers can read (the ``gearman`` command line tool, other languages);
:class:`MsgpackCodec` is smaller and carries bytes natively, and needs the
``msgpack`` extra.

The same module defines the *structured exception payload*: what a gear
worker with a codec sends in WORK_EXCEPTION, so the client can raise
:class:`gear.RemoteError` with the remote exception's type and message. It is
UTF-8 JSON whatever the job's codec, so any client can read it::

    {"type": "ValueError", "message": "width must be positive"}

``type`` is the exception class's name, qualified by its module unless it
is a builtin (``"myapp.errors.QuotaExceeded"``); ``message`` is ``str()`` of
the exception. Readers ignore other keys, so fields can be added later. A
WORK_EXCEPTION payload that is not such an object (from a worker that does
not use this format) is passed on as it is.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from gear.errors import InvalidDataError

__all__ = [
    "Codec",
    "JSONCodec",
    "MsgpackCodec",
    "exception_payload",
    "parse_exception_payload",
]


@runtime_checkable
class Codec(Protocol):
    """Turns job payloads into objects and back.

    ``encode`` may raise :class:`TypeError` or :class:`ValueError` for an
    object it cannot represent; ``decode`` raises
    :class:`gear.InvalidDataError` for bytes it cannot read. Both are called
    on the event loop, so they should be quick.
    """

    def encode(self, obj: Any) -> bytes:
        """Return the bytes that stand for ``obj``."""
        ...

    def decode(self, data: bytes) -> Any:
        """Return the object that ``data`` stands for."""
        ...


class JSONCodec:
    """UTF-8 JSON, compact; an empty payload decodes to ``None``.

    Empty payloads are what the ``gearman`` tool and most clients send for
    "no arguments", so they are read as JSON ``null`` rather than refused.
    ``default`` is passed to :func:`json.dumps` for types JSON lacks
    (``default=str`` turns dates and decimals into strings);
    ``ensure_ascii`` as in :func:`json.dumps`.
    """

    def __init__(
        self, *, default: Callable[[Any], Any] | None = None, ensure_ascii: bool = False
    ) -> None:
        self._encoder = json.JSONEncoder(
            separators=(",", ":"), default=default, ensure_ascii=ensure_ascii
        )

    def __repr__(self) -> str:
        return "gear.JSONCodec()"

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj).encode("utf8")

    def decode(self, data: bytes) -> Any:
        if not data:
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidDataError("payload is not valid JSON: %s" % (e,)) from e


class MsgpackCodec:
    """MessagePack through the ``msgpack`` package; an empty payload decodes to ``None``.

    Bytes stay bytes and str stays str (``use_bin_type``), and maps may have
    non-string keys. Install with ``pip install gear-core[msgpack]`` (or the
    same extra of gear-client or gear-worker); without it, creating the codec
    raises :class:`ImportError` saying so.
    """

    def __init__(self) -> None:
        try:
            msgpack = importlib.import_module("msgpack")
        except ModuleNotFoundError as e:
            if e.name != "msgpack":
                raise
            raise ImportError(
                "gear.MsgpackCodec needs msgpack: pip install gear-core[msgpack]", name="msgpack"
            ) from None
        self._packb: Callable[..., bytes] = msgpack.packb
        self._unpackb: Callable[..., Any] = msgpack.unpackb
        self._errors: tuple[type[BaseException], ...] = (
            ValueError,
            TypeError,
            msgpack.UnpackException,
        )

    def __repr__(self) -> str:
        return "gear.MsgpackCodec()"

    def encode(self, obj: Any) -> bytes:
        return self._packb(obj, use_bin_type=True)

    def decode(self, data: bytes) -> Any:
        if not data:
            return None
        try:
            return self._unpackb(data, raw=False, strict_map_key=False)
        except self._errors as e:
            raise InvalidDataError("payload is not valid MessagePack: %s" % (e,)) from e


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return "%s.%s" % (module, cls.__qualname__)


def exception_payload(exc: BaseException) -> bytes:
    """The structured WORK_EXCEPTION payload for ``exc`` (see the module docstring)."""
    try:
        message = str(exc)
    except Exception:
        message = repr(exc)
    return json.dumps(
        {"type": _type_name(exc), "message": message},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf8")


def parse_exception_payload(data: bytes) -> tuple[str, str] | None:
    """``(type, message)`` from a structured WORK_EXCEPTION payload, else ``None``."""
    if not data.startswith(b"{"):
        return None
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    type_name, message = obj.get("type"), obj.get("message")
    if not isinstance(type_name, str) or not isinstance(message, str):
        return None
    return type_name, message
