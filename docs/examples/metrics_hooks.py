"""Prometheus metrics from hooks: python metrics_hooks.py [HOST [PORT]].

Needs ``pip install prometheus-client``. A real service would serve the
registry with ``prometheus_client.start_http_server(9100)``; this script
runs a few jobs and prints what a scrape would see.
"""

import asyncio
import sys

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

import gear
from gear import BaseJob
from gear.hooks import JobOutcome

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730


class PrometheusHooks(gear.Hooks):
    """Counts jobs by function and outcome, times them, counts connections."""

    def __init__(self, role: str, registry: CollectorRegistry) -> None:
        name = "gear_" + role
        labels = ["function", "outcome"]
        self.jobs = Counter(name + "_jobs", "Jobs ended", labels, registry=registry)
        self.seconds = Histogram(
            name + "_job_seconds", "Job duration", ["function"], registry=registry
        )
        self.connected = Gauge(
            name + "_connected_servers",
            "Servers connected",
            registry=registry,
        )

    def on_connect(self, host: str, port: int) -> None:
        self.connected.inc()

    def on_disconnect(self, host: str, port: int) -> None:
        self.connected.dec()

    def on_job_end(self, job: BaseJob, outcome: JobOutcome, took: float) -> None:
        self.jobs.labels(job.name, outcome).inc()
        self.seconds.labels(job.name).observe(took)


registry = CollectorRegistry()
codec = gear.JSONCodec()
hooks = PrometheusHooks("worker", registry)
worker = gear.AsyncWorker("metered", [(host, port)], codec=codec, hooks=hooks)


@worker.function("square")
async def square(n: int) -> int:
    return n * n


async def main() -> None:
    client_hooks = PrometheusHooks("client", registry)
    async with worker, worker.serving(concurrency=4):
        async with gear.AsyncClient(
            "metered", [(host, port)], codec=codec, hooks=client_hooks
        ) as c:
            await asyncio.gather(*(c.call("square", n) for n in range(5)))
            try:
                await c.call("square", "seven", timeout=30)
            except gear.RemoteError as e:
                print("remote error:", e)
        print(generate_latest(registry).decode(), end="")


asyncio.run(main())
