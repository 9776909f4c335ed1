"""The sans-IO Gearman codec: bytes in, events out; packets to bytes.

One stream carries binary packets (the first byte is NUL) and text admin
lines (anything else) interleaved. :class:`Decoder` is fed arbitrary chunks
and returns complete :class:`Frame` and :class:`AdminLine` events. Limits are
checked on the header or on the bytes so far, before any payload is
buffered, so a peer declaring a 4 GiB packet is refused at once.

Nothing here touches sockets, threads or event loops: the threaded API, the
asyncio API and the server all share this module unchanged.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn

from gear import constants
from gear.errors import (
    BadMagicError,
    InvalidArgumentsError,
    LineTooLongError,
    LocalProtocolError,
    PacketTooLargeError,
    RemoteProtocolError,
)

__all__ = [
    "HEADER_SIZE",
    "DEFAULT_MAX_PACKET_SIZE",
    "DEFAULT_MAX_ADMIN_LINE",
    "Frame",
    "AdminLine",
    "Event",
    "Decoder",
    "encode_packet",
    "join_arguments",
    "split_arguments",
]

HEADER_SIZE = 12
"""Bytes of a binary packet's header: magic, type and payload length, 4 bytes each."""
DEFAULT_MAX_PACKET_SIZE = 64 * 1024 * 1024
"""Largest payload accepted by default (64 MiB)."""
DEFAULT_MAX_ADMIN_LINE = 64 * 1024
"""Longest admin text line accepted by default, newline included (64 KiB)."""

_HEADER = struct.Struct("!4sII")
_MAX_WIRE_LENGTH = 0xFFFFFFFF
_MAGICS = (constants.REQ, constants.RES)


class Frame(NamedTuple):
    """One binary packet: magic (``REQ``/``RES``), type code and payload."""

    magic: bytes
    ptype: int
    data: bytes


class AdminLine(NamedTuple):
    """One text line of the admin protocol, with its line ending."""

    line: bytes


Event = Frame | AdminLine


class Decoder:
    """Incremental decoder of one Gearman byte stream.

    ``feed()`` bytes as they arrive, then take events with ``events()`` (or do
    both with ``receive()``), or have ``process()`` hand them to callbacks
    without building event objects. A :class:`~gear.errors.RemoteProtocolError`
    leaves the decoder broken: the stream is out of sync and every later call
    raises the same error.
    """

    __slots__ = ("_buffer", "_error", "max_admin_line", "max_packet_size")

    def __init__(
        self,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_admin_line: int = DEFAULT_MAX_ADMIN_LINE,
    ) -> None:
        if max_packet_size < 0 or max_packet_size > _MAX_WIRE_LENGTH:
            raise ValueError("max_packet_size must be between 0 and 4 GiB - 1")
        if max_admin_line < 1:
            raise ValueError("max_admin_line must be at least 1")
        self.max_packet_size = max_packet_size
        self.max_admin_line = max_admin_line
        self._buffer = bytearray()
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned event."""
        return len(self._buffer)

    def pending(self) -> bytes:
        """Return a copy of the received bytes not yet part of an event."""
        return bytes(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes. An empty chunk is allowed and does nothing."""
        if self._error is not None:
            raise self._error
        self._buffer += data

    def receive(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed ``data`` and return every event now complete."""
        self.feed(data)
        return self.events()

    def events(self) -> list[Event]:
        """Return (and consume) every complete event in the buffer."""
        if self._error is not None:
            raise self._error
        out: list[Event] = []
        append = out.append
        self._scan(
            self._buffer,
            lambda magic, ptype, data: append(Frame(magic, ptype, bytes(data))),
            lambda line: append(AdminLine(bytes(line))),
        )
        return out

    def process(
        self,
        data: bytes | bytearray | memoryview,
        on_frame: Callable[[bytes, int, bytes], object],
        on_line: Callable[[bytes], object],
    ) -> None:
        """Feed ``data`` and hand each complete event to a callback, in order.

        ``on_frame(magic, ptype, payload)`` and ``on_line(line)`` get the same
        values as :class:`Frame` and :class:`AdminLine` would hold; this is
        the allocation-free path for servers. An exception from a callback
        propagates with its event consumed and the rest kept for the next
        call.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        if buffer:
            buffer += data
            self._scan(
                buffer,
                lambda magic, ptype, payload: on_frame(magic, ptype, bytes(payload)),
                lambda line: on_line(bytes(line)),
            )
        else:
            self._scan(data if type(data) is bytes else bytes(data), on_frame, on_line)

    def _scan(
        self,
        buf: bytes | bytearray,
        on_frame: Callable[[bytes, int, Any], object],
        on_line: Callable[[Any], object],
    ) -> None:
        """Deliver every complete event of ``buf``; keep the rest buffered.

        ``buf`` is either the decoder's own buffer (consumed bytes are deleted
        from it) or a fresh chunk while the buffer is empty (the unconsumed
        tail is copied into the buffer), so whole packets arriving in one
        chunk are sliced straight out of it.
        """
        end = len(buf)
        pos = 0
        try:
            while pos < end:
                if buf[pos] == 0:
                    avail = end - pos
                    if avail < HEADER_SIZE:
                        self._check_partial_magic(buf, pos, avail)
                        break
                    magic, ptype, size = _HEADER.unpack_from(buf, pos)
                    if magic not in _MAGICS:
                        self._fail(
                            BadMagicError(f"bad packet magic {magic!r}: expected \\0REQ or \\0RES")
                        )
                    if size > self.max_packet_size:
                        self._fail(
                            PacketTooLargeError(
                                f"packet type {ptype} declares a {size}-byte payload, over "
                                f"the limit of {self.max_packet_size} bytes"
                            )
                        )
                    stop = pos + HEADER_SIZE + size
                    if stop > end:
                        break
                    start, pos = pos + HEADER_SIZE, stop
                    on_frame(magic, ptype, buf[start:stop])
                else:
                    newline = buf.find(b"\n", pos, pos + self.max_admin_line)
                    if newline < 0:
                        if end - pos >= self.max_admin_line:
                            self._fail(
                                LineTooLongError(
                                    "admin line longer than the limit of "
                                    f"{self.max_admin_line} bytes"
                                )
                            )
                        break
                    start, pos = pos, newline + 1
                    on_line(buf[start:pos])
        finally:
            if self._error is None:
                if buf is self._buffer:
                    if pos:
                        del self._buffer[:pos]
                elif pos < end:
                    self._buffer += buf[pos:]

    @staticmethod
    def _partial_magic_ok(buf: bytes | bytearray, pos: int, avail: int) -> bool:
        head = bytes(buf[pos : pos + min(avail, 4)])
        return any(magic.startswith(head) for magic in _MAGICS)

    def _check_partial_magic(self, buf: bytes | bytearray, pos: int, avail: int) -> None:
        if not self._partial_magic_ok(buf, pos, avail):
            head = bytes(buf[pos : pos + 4])
            self._fail(BadMagicError(f"bad packet magic {head!r}: expected \\0REQ or \\0RES"))

    def _fail(self, error: RemoteProtocolError) -> NoReturn:
        self._error = error
        self._buffer = bytearray()
        raise self._error


def encode_packet(magic: bytes, ptype: int, data: bytes | bytearray = b"") -> bytes:
    """Return the wire form of one packet."""
    if magic not in _MAGICS:
        raise LocalProtocolError(f"bad packet magic {magic!r}: must be \\0REQ or \\0RES")
    if ptype not in constants.types:
        raise LocalProtocolError(f"unknown packet type {ptype!r}")
    if len(data) > _MAX_WIRE_LENGTH:
        raise LocalProtocolError("packet payload is larger than 4 GiB - 1 bytes")
    return _HEADER.pack(magic, ptype, len(data)) + bytes(data)


def join_arguments(*arguments: bytes | bytearray) -> bytes:
    """Join packet arguments with NUL; only the last may contain NUL."""
    for argument in arguments[:-1]:
        if b"\x00" in argument:
            raise LocalProtocolError(f"argument {bytes(argument)!r} contains a NUL byte")
    return b"\x00".join(arguments)


def split_arguments(ptype: int, data: bytes) -> list[bytes]:
    """Split a payload into exactly the arguments its packet type carries.

    Raises :class:`~gear.errors.InvalidArgumentsError` if there are too few
    (a missing argument), and :class:`~gear.errors.RemoteProtocolError` for
    types whose argument count is unknown.
    """
    count = constants.ARGUMENT_COUNTS.get(ptype)
    if count is None:
        raise RemoteProtocolError(f"unknown packet type {ptype}")
    if count == 0:
        return []
    parts = data.split(b"\x00", count - 1)
    if len(parts) != count:
        name = constants.types[ptype]
        raise InvalidArgumentsError(
            f"{name} needs {count} NUL-separated arguments, got {len(parts)}"
        )
    return parts
