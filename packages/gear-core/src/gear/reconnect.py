"""How long to wait between attempts to reach a server, and when to stop.

A :class:`ReconnectPolicy` is a value: it computes delays and holds no clock
or socket, so the threaded and the asyncio faces share it, and a test can
check its delays without waiting them out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from gear.errors import ConfigurationError

__all__ = ["ReconnectPolicy"]


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential back-off with jitter, a cap and an optional attempt limit.

    After the ``n``-th failed attempt in a row (``n`` from 1) the wait is
    ``initial_delay * multiplier ** (n - 1)``, capped at ``max_delay``, then
    spread by up to ``jitter`` (a fraction: 0.2 is ±20 %) so that many
    clients cut off together do not redial together. A server that fails
    ``max_attempts`` times in a row is given up (None: never). A connection
    that was up and drops starts counting again from 1.
    """

    initial_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ConfigurationError("reconnect delays must not be negative")
        if self.multiplier < 1:
            raise ConfigurationError("the reconnect multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError("reconnect jitter must be between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1 (or None)")

    @classmethod
    def fixed(cls, delay: float, max_attempts: int | None = None) -> ReconnectPolicy:
        """The same ``delay`` after every failure, no jitter (gear 0.16 waited 2 s)."""
        return cls(delay, delay, 1.0, 0.0, max_attempts)

    def gives_up(self, failures: int) -> bool:
        """True once ``failures`` attempts in a row have failed and no more are allowed."""
        return self.max_attempts is not None and failures >= self.max_attempts

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after ``failures`` failed attempts in a row (``failures`` >= 1).

        ``rand`` returns a number in [0, 1); pass a fixed one for exact values.
        """
        exponent = max(0, failures - 1)
        try:
            base = self.initial_delay * self.multiplier**exponent
        except OverflowError:
            base = self.max_delay
        base = min(base, self.max_delay)
        spread = base * self.jitter * (2.0 * rand() - 1.0)
        return max(0.0, min(self.max_delay, base + spread))


ReconnectPolicy.__module__ = "gear"
