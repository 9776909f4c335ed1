"""geard's layers below the transport, driven without a loop or sockets.

For the benchmarks that time one layer's CPU per job: a :class:`Core` is the
server's :class:`~gear.server.inbox.Inbox` (decoder, handlers, engine,
outbox) over :class:`Timers` that run ``call_soon`` callbacks when
:meth:`Timers.turn` is called, as a loop turn would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from gear.server.config import ServerOptions
from gear.server.counters import JobCounters
from gear.server.inbox import Inbox


class Handle:
    def cancel(self) -> None:
        pass


class Timers:
    """Enough of an event loop: call_soon runs at the next turn, call_later never."""

    def __init__(self) -> None:
        self.soon: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        self.soon.append((callback, args))

    call_soon_threadsafe = call_soon

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Handle:
        return Handle()

    def turn(self) -> None:
        while self.soon:
            callback, args = self.soon.popleft()
            callback(*args)


class Core(Inbox):
    def __init__(self, timers: Timers, counters: JobCounters | None = None) -> None:
        super().__init__(ServerOptions(), timers)
        self._init_inbox()
        self._dispatch = self._build_dispatch()
        self.job_counters = counters
