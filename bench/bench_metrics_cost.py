"""What ``--metrics-port`` adds to each job, measured without a network.

Run on demand (never by the test suite)::

    hatch run python bench/bench_metrics_cost.py [--jobs 20000] [--rounds 15]

On a shared 2-core machine the wall-clock rates of ``bench_server.py``
swing by 20% between rounds, far more than the cost in question. This
script measures the per-job CPU of geard's layers below the transport
(packet decoding, handlers, engine, outbox: the code a job runs through)
with and without the job counters, in one process, alternating the two in
each round, and prints the median of the paired ratios. Sockets and the
event loop add the same absolute time either way, so the ratio of a real
server is closer to 1 than this one.

It also times the work ``--metrics-port`` does once a second or per
request: the history sample, ``/metrics`` and ``/api/status``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _engine import Core, Timers

from gear import constants as C
from gear.codec import Decoder, Frame, encode_packet
from gear.server.counters import JobCounters
from gear.server.model import Session


class Peer(Session):
    def __init__(self, owner: Any) -> None:
        super().__init__(owner)
        self.inbox: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.inbox.append(data)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def buffer_size(self) -> int:
        return 0


def run(jobs: int, metrics: bool, batch: int = 64) -> float:
    """CPU seconds per job for ``jobs`` foreground jobs, ``batch`` in flight."""
    timers = Timers()
    core = Core(timers, JobCounters(1000) if metrics else None)
    client, worker = Peer(core), Peer(core)
    core._open_session(client)
    core._open_session(worker)
    core._feed(worker, encode_packet(C.REQ, C.CAN_DO, b"fg"))
    submit = encode_packet(C.REQ, C.SUBMIT_JOB, b"fg\0\0" + b"x" * 100)
    grab = encode_packet(C.REQ, C.GRAB_JOB_UNIQ)
    decoder = Decoder()
    started = time.process_time()
    for _ in range(jobs // batch):
        core._feed(client, submit * batch)
        timers.turn()
        core._feed(worker, grab * batch)
        timers.turn()
        replies = b"".join(worker.inbox)
        worker.inbox.clear()
        done = []
        for event in decoder.receive(replies):
            if isinstance(event, Frame) and event.ptype == C.JOB_ASSIGN_UNIQ:
                handle = event.data[: event.data.index(b"\0")]
                done.append(encode_packet(C.REQ, C.WORK_COMPLETE, handle + b"\0ok"))
        core._feed(worker, b"".join(done))
        timers.turn()
        client.inbox.clear()
    return (time.process_time() - started) / jobs


def side_costs() -> None:
    """The once-a-second and per-request work, with 32 connections and 10 functions."""
    from gear.server.dashboard import Dashboard
    from gear.server.httpd import Request
    from gear.server.metrics import MetricsPage

    timers = Timers()
    counters = JobCounters(1000)
    core: Any = Core(timers, counters)
    core.loop = timers
    core.store_failing = False
    for n in range(32):
        peer = Peer(core)
        core._open_session(peer)
        core._feed(peer, encode_packet(C.REQ, C.CAN_DO, b"f%d" % (n % 10)))
    timers.turn()
    board = Dashboard(core, counters, lambda: 0.0)
    page = MetricsPage(core, counters)
    for name, fn in (
        ("history sample", board.sample),
        ("/api/status", lambda: board.api_status(Request("GET", "/api/status"))),
        ("/metrics", lambda: page(Request("GET", "/metrics"))),
    ):
        started = time.process_time()
        for _ in range(200):
            fn()
        print("%-16s %6.0f us" % (name, (time.process_time() - started) / 200 * 1e6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    run(2000, True)
    run(2000, False)
    off: list[float] = []
    on: list[float] = []
    for number in range(args.rounds):
        first, second = (True, False) if number % 2 else (False, True)
        results = {first: run(args.jobs, first), second: run(args.jobs, second)}
        on.append(results[True])
        off.append(results[False])
    ratios = [a / b for a, b in zip(off, on, strict=True)]
    print(
        "CPU per fg job below the transport: %.2f us without metrics, %.2f us with"
        % (statistics.median(off) * 1e6, statistics.median(on) * 1e6)
    )
    print(
        "jobs per CPU-second, metrics on / off: %.3fx (median of %d paired rounds; %s)"
        % (statistics.median(ratios), args.rounds, ", ".join("%.3f" % r for r in ratios))
    )
    side_costs()


if __name__ == "__main__":
    main()
