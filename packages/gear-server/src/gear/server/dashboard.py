"""The live dashboard: ``GET /``, its two assets, and ``GET /api/status`` (JSON).

The page is static (``_dashboard/`` in the package: HTML, one script, one
stylesheet; no build step, no CDN) and fills itself from ``/api/status``
every two seconds, building the DOM with ``textContent``, so a function
named ``<script>`` is shown as text. Charts are SVG drawn by that script.

History for the charts is a fixed-size ring per function, sampled once a
second by a timer (never by the code that moves jobs): 15 minutes of queue
depth and of the cumulative submitted and finished counts, for at most
:data:`MAX_CHARTED_FUNCTIONS` functions. Listings are paginated and every
string is cut to :data:`MAX_TEXT` characters, so 5,000 connections or
1,000 functions make a page of the same size as ten.
"""

from __future__ import annotations

import json
import os
import platform
import time
from array import array
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from gear.server._version import __version__
from gear.server.counters import OTHER, JobCounters
from gear.server.httpd import Request, Response
from gear.server.runtime import engine_compiled, loop_name

if TYPE_CHECKING:
    from gear.server.server import Server

__all__ = [
    "CHART_POINTS",
    "CONNECTIONS_PER_PAGE",
    "FUNCTIONS_PER_PAGE",
    "HISTORY_SECONDS",
    "MAX_CHARTED_FUNCTIONS",
    "MAX_TEXT",
    "Dashboard",
    "History",
    "store_status",
]

HISTORY_SECONDS = 900
"""Samples kept per function (one a second: 15 minutes)."""
CHART_POINTS = 90
"""Points per chart in ``/api/status`` (10 seconds each)."""
MAX_CHARTED_FUNCTIONS = 100
"""Functions with a history; later ones are listed without charts."""
FUNCTIONS_PER_PAGE = 50
CONNECTIONS_PER_PAGE = 100
MAX_FUNCTIONS_PER_CONNECTION = 10
MAX_TEXT = 200
"""Characters of a name, client id or address shown; longer ones end with an ellipsis."""
RATE_WINDOW = 5
"""Seconds the "per second" rates are averaged over."""

_ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
_PAGE_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


def text(value: bytes | str | None) -> str:
    """A peer-supplied name for display: decoded, and cut to :data:`MAX_TEXT` characters."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "\u2026"


def _page(query: dict[str, str], name: str) -> int:
    raw = query.get(name, "1")
    return int(raw) if raw.isdigit() and len(raw) < 7 else 1


def _constant(response: Response) -> Callable[[Request], Response]:
    def route(request: Request) -> Response:
        return response

    return route


class History:
    """Fixed-size rings of per-function samples: queue depth, submitted and finished so far."""

    def __init__(
        self, size: int = HISTORY_SECONDS, max_functions: int = MAX_CHARTED_FUNCTIONS
    ) -> None:
        self.size = size
        self.max_functions = max_functions
        self.taken = 0
        self.times = array("d", [0.0] * size)
        self.series: dict[bytes, tuple[array[int], array[int], array[int]]] = {}

    def sample(self, now: float, rows: dict[bytes, tuple[int, int, int]]) -> None:
        """Record ``name -> (queued, submitted, finished)``; a function missing now keeps
        its counts and shows an empty queue."""
        slot = self.taken % self.size
        self.times[slot] = now
        for name in rows:
            # Zeros before: the counters started with the history, so a function
            # seen now for the first time had counted nothing until the last sample.
            if name not in self.series and len(self.series) < self.max_functions:
                self.series[name] = (
                    array("q", [0] * self.size),
                    array("q", [0] * self.size),
                    array("q", [0] * self.size),
                )
        last = (slot - 1) % self.size
        for name, (queued, submitted, finished) in self.series.items():
            found = rows.get(name)
            if found is None:
                queued[slot], submitted[slot], finished[slot] = 0, submitted[last], finished[last]
            else:
                queued[slot], submitted[slot], finished[slot] = found
        self.taken += 1

    def _order(self) -> list[int]:
        """Ring slots from the oldest sample kept to the newest."""
        count = min(self.taken, self.size)
        start = self.taken - count
        return [(start + i) % self.size for i in range(count)]

    def rates(self, name: bytes, window: int = RATE_WINDOW) -> tuple[float, float]:
        """Submitted and finished per second over the last ``window`` seconds."""
        series = self.series.get(name)
        order = self._order()
        if series is None or len(order) < 2:
            return 0.0, 0.0
        first, last = order[max(0, len(order) - 1 - window)], order[-1]
        span = self.times[last] - self.times[first]
        if span <= 0:
            return 0.0, 0.0
        return (
            (series[1][last] - series[1][first]) / span,
            (series[2][last] - series[2][first]) / span,
        )

    def chart(self, name: bytes, points: int = CHART_POINTS) -> dict[str, Any] | None:
        """Queue depth (the most in each step) and finished jobs per second, oldest first."""
        series = self.series.get(name)
        if series is None:
            return None
        order = self._order()
        step = max(1, self.size // points)
        queued: list[int] = []
        finished: list[float] = []
        for end in range(len(order), 0, -step):
            begin = max(0, end - step)
            chunk = order[begin:end]
            queued.append(max(series[0][i] for i in chunk))
            before = order[begin - 1] if begin > 0 else chunk[0]
            span = self.times[chunk[-1]] - self.times[before]
            done = series[2][chunk[-1]] - series[2][before]
            finished.append(round(done / span, 2) if span > 0 else 0.0)
        queued.reverse()
        finished.reverse()
        return {
            "queued": queued,
            "finished_per_s": finished,
            "step_seconds": step,
            "points": -(-self.size // step),
        }


def store_status(server: Server) -> dict[str, Any]:
    """What the page says about the queue store.

    A store shared by a cluster lists its nodes (``cluster_nodes()``, the
    PostgreSQL store's leases). The hook for other stores: a store with a
    ``describe()`` method returns
    a JSON-able dict, shown as it is (``kind`` names the store; a clustered
    store adds ``cluster: {"nodes": [{...}, ...]}``, one dict per node,
    for example its name, address, role and lease expiry).
    """
    store = server.queue_store
    status: dict[str, Any]
    if store is None:
        status = {"kind": "memory", "durable": False}
    else:
        name = type(store).__name__
        kind = (
            "sqlite"
            if name == "SQLiteQueueStore"
            else "postgresql"
            if "postgres" in name.lower()
            else "memory"
            if name == "MemoryQueueStore"
            else name
        )
        status = {"kind": kind, "durable": kind != "memory"}
        path = getattr(store, "path", None)
        if isinstance(path, str):
            status["path"] = text(path)
        nodes = store.cluster_nodes()
        if nodes is not None:
            status["cluster"] = {
                "nodes": [
                    {
                        "node": text(node.node_id),
                        "epoch": node.epoch,
                        "lease left (s)": round(node.lease_left, 1),
                        "jobs": node.jobs,
                        "this node": node.is_self,
                    }
                    for node in nodes[:_MAX_NODES]
                ]
            }
        describe: Callable[[], dict[str, Any]] | None = getattr(store, "describe", None)
        if callable(describe):
            status.update(describe())
    status["failing"] = server.store_failing
    return status


_MAX_NODES = 50
"""Cluster nodes listed at most (the page shows 50)."""


class Dashboard:
    """The routes of the page and of ``/api/status``, and the once-a-second sampler."""

    def __init__(self, server: Server, counters: JobCounters, started: Callable[[], float]) -> None:
        self.server = server
        self.counters = counters
        self.started = started
        self.history = History()
        folder = resources.files("gear.server") / "_dashboard"
        self.assets = {
            path: Response(200, (folder / name).read_bytes(), kind, _PAGE_HEADERS)
            for path, (name, kind) in _ASSETS.items()
        }
        self.health: Callable[[], tuple[bool, str]] = lambda: (True, "ok")

    def routes(self) -> dict[str, Callable[[Request], Response]]:
        table: dict[str, Callable[[Request], Response]] = {"/api/status": self.api_status}
        for path, response in self.assets.items():
            table[path] = _constant(response)
        return table

    def sample(self) -> None:
        """Once a second, from a loop timer: the queues and the counters, into the rings."""
        counters = self.counters
        rows: dict[bytes, tuple[int, int, int]] = {}
        for fq in list(self.server.function_queues.values()):
            counters.counts(fq.name)
        queues = self.server.function_queues
        for name, counts in counters.functions.items():
            found = queues.get(name)
            rows[name] = (
                found.counts[0] + found.counts[1] + found.counts[2] if found is not None else 0,
                sum(counts.submitted),
                sum(counts.finished),
            )
        self.history.sample(time.time(), rows)

    def api_status(self, request: Request) -> Response:
        body = json.dumps(self.status(request.query), separators=(",", ":"))
        # Never HTML, even if a browser were told to sniff: no "<" reaches it raw.
        body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return Response(200, body.encode(), "application/json")

    def status(self, query: dict[str, str]) -> dict[str, Any]:
        server = self.server
        ok, why = self.health()
        functions, function_total = self._functions(_page(query, "fpage"))
        connections, connection_total, workers = self._connections(_page(query, "cpage"))
        store = store_status(server)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "python": platform.python_version(),
            "loop": loop_name(server.loop),
            "compiled": engine_compiled(),
            "started": self.started(),
            "uptime": round(time.time() - self.started(), 1),
            "healthy": ok,
            "health": why,
            "store": store,
            "cluster": store.get("cluster"),
            "totals": {
                "jobs": len(server.jobs),
                "running": server.running_jobs,
                "connections": connection_total,
                "workers": workers,
                "functions": function_total,
            },
            "functions": functions,
            "functions_page": _page(query, "fpage"),
            "functions_per_page": FUNCTIONS_PER_PAGE,
            "connections": connections,
            "connections_page": _page(query, "cpage"),
            "connections_per_page": CONNECTIONS_PER_PAGE,
        }

    def _functions(self, page: int) -> tuple[list[dict[str, Any]], int]:
        queues = self.server.function_queues
        names = sorted(queues)
        start = (page - 1) * FUNCTIONS_PER_PAGE
        rows = []
        for name in names[start : start + FUNCTIONS_PER_PAGE]:
            fq = queues[name]
            submitted, finished = self.history.rates(name)
            rows.append(
                {
                    "name": text(name),
                    "queued": {"high": fq.counts[0], "normal": fq.counts[1], "low": fq.counts[2]},
                    "scheduled": fq.scheduled,
                    "running": fq.running,
                    "workers": fq.workers,
                    "submitted_per_s": round(submitted, 2),
                    "finished_per_s": round(finished, 2),
                    "history": self.history.chart(name),
                    "other": self.counters.label(name) == OTHER,
                }
            )
        return rows, len(names)

    def _connections(self, page: int) -> tuple[list[dict[str, Any]], int, int]:
        sessions = list(self.server._connections)
        workers = sum(1 for conn in sessions if conn.abilities)
        sessions.sort(key=lambda c: (not c.abilities, c.client_id or b"", c.host, c.port))
        start = (page - 1) * CONNECTIONS_PER_PAGE
        rows = []
        for conn in sessions[start : start + CONNECTIONS_PER_PAGE]:
            functions = sorted(conn.abilities)
            rows.append(
                {
                    "client_id": text(conn.client_id),
                    "address": text("%s:%d" % (conn.host, conn.port)),
                    "role": "worker" if functions else "client",
                    "state": conn.state,
                    "functions": [text(n) for n in functions[:MAX_FUNCTIONS_PER_CONNECTION]],
                    "functions_total": len(functions),
                    "running": len(conn.worker_jobs),
                    "waiting_for": len(conn.client_jobs),
                    "tls_subject": text(conn.ssl_subject),
                }
            )
        return rows, len(sessions), workers
