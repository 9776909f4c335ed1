"""``/metrics``: geard's state in the Prometheus text format, via prometheus_client.

A custom collector reads the engine's tables and
:class:`~gear.server.counters.JobCounters` when Prometheus scrapes, so the
gauges cost nothing between scrapes and the counters cost an increment.
Needs the ``metrics`` extra (``pip install 'gear-server[metrics]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gear.server._version import __version__
from gear.server.counters import (
    FINISHED_OUTCOMES,
    OTHER,
    SUBMIT_KINDS,
    FunctionCounts,
    JobCounters,
)
from gear.server.httpd import Request, Response
from gear.server.runtime import engine_compiled, loop_name

if TYPE_CHECKING:
    from gear.server.server import Server

__all__ = ["EngineCollector", "MetricsPage", "label_text"]


def label_text(name: bytes) -> str:
    """A function name as a label value (prometheus_client escapes quotes and newlines)."""
    return name.decode("utf-8", "backslashreplace")


class EngineCollector(Collector):
    """Every geard metric, computed from the server's state at scrape time."""

    def __init__(self, server: Server, counters: JobCounters) -> None:
        self.server = server
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        server, counters = self.server, self.counters
        yield from self._gauges()
        submitted = CounterMetricFamily(
            "geard_jobs_submitted",
            "Jobs created by a SUBMIT_JOB packet (a coalesced submit is not a new job).",
            labels=["function", "kind"],
        )
        finished = CounterMetricFamily(
            "geard_jobs_finished",
            "Jobs that ended after a worker took them, by how they ended.",
            labels=["function", "outcome"],
        )
        duration = HistogramMetricFamily(
            "geard_job_duration_seconds",
            "Seconds from a job's assignment to a worker to its end.",
            labels=["function"],
        )
        rows: list[tuple[str, FunctionCounts]] = [
            (label_text(name), counts) for name, counts in list(counters.functions.items())
        ]
        other = counters.other
        if any(other.submitted) or any(other.finished):
            rows.append((label_text(OTHER), other))
        for label, counts in rows:
            for kind, value in zip(SUBMIT_KINDS, counts.submitted, strict=True):
                submitted.add_metric([label, kind], value)
            for outcome, value in zip(FINISHED_OUTCOMES, counts.finished, strict=True):
                finished.add_metric([label, outcome], value)
            duration.add_metric(
                [label], counts.duration.cumulative(), sum_value=counts.duration.total
            )
        yield submitted
        yield finished
        yield duration
        yield GaugeMetricFamily(
            "geard_connections", "Open Gearman connections.", value=len(server._connections)
        )
        if server.queue_store is not None:
            commits = HistogramMetricFamily(
                "geard_store_commit_seconds", "Seconds each durable store commit took."
            )
            commits.add_metric([], counters.commits.cumulative(), sum_value=counters.commits.total)
            yield commits
        info = GaugeMetricFamily(
            "geard_build_info",
            "Always 1: the version, event loop and whether the engine is compiled.",
            labels=["version", "loop", "compiled"],
        )
        info.add_metric([__version__, loop_name(server.loop), str(engine_compiled()).lower()], 1)
        yield info

    def _gauges(self) -> Iterator[Metric]:
        label_of = self.counters.label
        totals: dict[bytes, list[int]] = {}
        for fq in list(self.server.function_queues.values()):
            label = label_of(fq.name)
            row = totals.get(label)
            if row is None:
                row = totals[label] = [0, 0, 0]
            row[0] += fq.counts[0] + fq.counts[1] + fq.counts[2]
            row[1] += fq.running
            row[2] += fq.workers
        for index, (name, text) in enumerate(
            (
                ("geard_jobs_queued", "Jobs waiting for a worker (scheduled ones not included)."),
                ("geard_jobs_running", "Jobs a worker is running."),
                ("geard_workers", "Worker connections that registered the function."),
            )
        ):
            family = GaugeMetricFamily(name, text, labels=["function"])
            for label, row in totals.items():
                family.add_metric([label_text(label)], row[index])
            yield family


class MetricsPage:
    """The ``/metrics`` route: a private registry holding only geard's collector."""

    def __init__(self, server: Server, counters: JobCounters) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(server, counters))

    def __call__(self, request: Request) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
