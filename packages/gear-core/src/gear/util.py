"""Small helpers shared by every package."""

from __future__ import annotations

from typing import overload

__all__ = ["convert_to_bytes"]


@overload
def convert_to_bytes(data: str) -> bytes: ...
@overload
def convert_to_bytes(data: bytes) -> bytes: ...
@overload
def convert_to_bytes(data: bytearray) -> bytearray: ...
@overload
def convert_to_bytes(data: None) -> None: ...
@overload
def convert_to_bytes(data: str | bytes | None) -> bytes | None: ...
def convert_to_bytes(data: str | bytes | bytearray | None) -> bytes | bytearray | None:
    """Encode ``str`` as UTF-8; pass bytes, bytearray and None through."""
    if isinstance(data, str):
        return data.encode("utf8")
    return data
