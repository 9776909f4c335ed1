"""gear 0.16's ``handleX(packet)`` override points, as plain Python functions.

:class:`~gear.server.handlers.Handlers` lists them as methods. They are
made here, in a module the compiled build leaves as Python, because a
function made inside a compiled module is a C callable that does not bind
to ``self``: ``super().handleEchoReq(packet)`` in a subclass would fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from gear import constants as C
from gear.packet import Packet
from gear.server.model import Session

__all__ = ["packet_hook"]


class _Dispatcher(Protocol):
    def _internal_handler(self, ptype: int) -> Callable[[Session, bytes], None]: ...


def packet_hook(ptype: int) -> Callable[[Any, Packet], None]:
    """The default ``handleX`` for packet type ``ptype``: run the built-in handler."""

    def method(self: _Dispatcher, packet: Packet) -> None:
        self._internal_handler(ptype)(cast(Session, packet.connection), bytes(packet.data))

    method.__doc__ = (
        "Handle one %s packet (override point; call the base to keep it)." % (C.types[ptype])
    )
    return method
