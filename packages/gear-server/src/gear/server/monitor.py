"""geard's HTTP side: the listener of ``--metrics-port`` and the routes on it.

``/metrics`` and ``/healthz`` live here; :mod:`~gear.server.dashboard`
adds the page and ``/api/status`` to the same table. Everything runs on
the server's loop and reads the server's state only there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from gear.server.counters import JobCounters
from gear.server.dashboard import Dashboard
from gear.server.httpd import HttpListener, Request, Response

if TYPE_CHECKING:
    from gear.server.server import Server

__all__ = ["METRICS_EXTRA_MISSING", "Monitor", "health"]

METRICS_EXTRA_MISSING = "needs the prometheus_client package: pip install 'gear-server[metrics]'"


def health(server: Server) -> tuple[bool, str]:
    """Whether ``server`` should get traffic, and why not."""
    if server._graceful or server._stopping or not server.running:
        return False, "shutting down"
    if server.store_failing:
        return False, "queue store failing"
    return True, "ok"


class Monitor:
    """The HTTP listener of one server, with its counters and routes.

    Built (and its port bound) with the server, so a busy port or a missing
    prometheus_client is an error before serving; started on the server's
    loop by :meth:`start`.
    """

    def __init__(self, server: Server, host: str, port: int, max_functions: int) -> None:
        try:
            from gear.server.metrics import MetricsPage
        except ImportError:
            raise ImportError("--metrics-port " + METRICS_EXTRA_MISSING) from None
        self.server = server
        self.started = time.time()
        self.counters = JobCounters(max_functions)
        self.log = logging.getLogger("gear.geard.http")
        self.listener = HttpListener(host, port, self.log.error)
        self.listener.routes["/metrics"] = MetricsPage(server, self.counters)
        self.listener.routes["/healthz"] = self.healthz
        self.dashboard = Dashboard(server, self.counters, lambda: self.started)
        self.dashboard.health = lambda: health(server)
        self.listener.routes.update(self.dashboard.routes())
        self._sampler: asyncio.TimerHandle | None = None
        server.job_counters = self.counters

    @property
    def port(self) -> int:
        return self.listener.port

    def healthz(self, request: Request) -> Response:
        ok, why = health(self.server)
        return Response(200 if ok else 503, why.encode() + b"\n")

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.started = time.time()
        await self.listener.start(loop)
        self._sample()
        host, port = self.listener.address
        self.log.info("Serving the dashboard, /metrics and /healthz on http://%s:%d/", host, port)

    def _sample(self) -> None:
        self.dashboard.sample()
        self._sampler = self.listener.loop.call_later(1.0, self._sample)

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
        self.listener.close()
