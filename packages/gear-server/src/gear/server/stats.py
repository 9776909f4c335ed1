"""Counters, gauges, statsd and rate-limited logging.

The bottom layer of the server's class stack (see
docs/explanation/architecture.rst): what every layer above may count or
log without flooding the log when many peers misbehave at once.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from gear import constants as C
from gear.server._compiled import mypyc_attr
from gear.server.model import ServerJob, Session

__all__ = ["Stats", "StatsClientLike"]


class StatsClientLike(Protocol):
    """What the server calls on ``Server.statsd``: the built-in client or
    ``statsd.StatsClient`` from the statsd package."""

    def incr(self, stat: str, count: int = 1, rate: float = 1) -> object: ...
    def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> object: ...
    def timing(self, stat: str, delta: float, rate: float = 1) -> object: ...


@mypyc_attr(allow_interpreted_subclasses=True)
class Stats:
    """Packet counts and queue gauges for statsd, and the log limiter."""

    log: logging.Logger
    statsd: StatsClientLike | None
    jobs: dict[bytes, ServerJob]
    running_jobs: int

    def _init_stats(self, log: logging.Logger, statsd: StatsClientLike | None) -> None:
        self.log = log
        self.statsd = statsd
        self._log_state: dict[str, list[Any]] = {}
        self._packet_counts: dict[int, int] = {}
        self._trace = False
        self._last_gauges: tuple[int, int, int] | None = None

    def _log_limited(self, key: str, level: int, message: str, *args: Any) -> None:
        """Log at most once a second per ``key``; :meth:`_report_suppressed` adds the rest.

        A flood of failing peers (handshakes, accepts without descriptors)
        must not turn into a flood of log lines.
        """
        now = time.monotonic()
        state = self._log_state.get(key)
        if state is None:
            state = self._log_state[key] = [now - 2.0, 0, level, message, args]
        if now - state[0] >= 1.0 and not state[1]:
            state[0] = now
            self.log.log(level, message, *args)
            return
        state[1] += 1
        state[2:] = [level, message, args]

    def _report_suppressed(self) -> None:
        now = time.monotonic()
        for state in self._log_state.values():
            if state[1] and now - state[0] >= 1.0:
                count, level, message, args = state[1:]
                self.log.log(
                    level,
                    message + " (%d times in the last %.1fs)",
                    *args,
                    count,
                    now - state[0],
                )
                state[0], state[1] = now, 0

    def _report_stats(self) -> None:
        statsd = self.statsd
        assert statsd is not None
        counts, self._packet_counts = self._packet_counts, {}
        for ptype, count in counts.items():
            statsd.incr("packet.%s" % C.types.get(ptype, ptype), count)
        gauges = (len(self.jobs), self.running_jobs, len(self.jobs) - self.running_jobs)
        if gauges != self._last_gauges:
            self._last_gauges = gauges
            statsd.gauge("queue.total", gauges[0])
            statsd.gauge("queue.running", gauges[1])
            statsd.gauge("queue.waiting", gauges[2])

    def reportTimingStats(self, ptype: int, duration: float) -> None:
        """Send a timer (ms) and a counter for one packet type to statsd."""
        if self.statsd is None:
            return
        name = "packet.%s" % C.types.get(ptype, ptype)
        self.statsd.timing(name, int(duration * 1000))
        self.statsd.incr(name)

    def _trace_frame(self, conn: Session, ptype: int, payload: bytes, accepted: bool) -> None:
        """Debug log and statsd count of one packet (off the fast path)."""
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug(
                "%s:%d sent %s (%d bytes)",
                conn.host,
                conn.port,
                C.types.get(ptype, ptype),
                len(payload),
            )
        if self.statsd is not None and accepted:
            counts = self._packet_counts
            counts[ptype] = counts.get(ptype, 0) + 1
