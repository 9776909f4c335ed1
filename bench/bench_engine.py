"""geard's I/O-free layers alone: jobs per CPU-second with no sockets and no loop.

Run on demand with the Python whose gear build you want to measure::

    hatch run python bench/bench_engine.py                       # this env (pure)
    /tmp/geard-compiled-bench-venv/bin/python bench/bench_engine.py   # compiled

(``bench_server.py`` creates that venv.) A client session submits a batch
of foreground jobs in one chunk, a worker grabs and completes them, all fed
through ``Inbox._feed`` as the transport would, with fake sessions and
timers. What it measures is the part of geard that the compiled build
compiles, without the event loop and the system calls around it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import _engine
from _engine import Core

from gear import constants as C
from gear.codec import encode_packet
from gear.server._build import BUILD
from gear.server.model import Session


class Timers(_engine.Timers):
    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Any:
        raise AssertionError("no timers in this benchmark")


class Peer(Session):
    def __init__(self, owner: Any, number: int) -> None:
        super().__init__(owner)
        self.host, self.port, self.fd = "10.0.0.%d" % number, 40000 + number, number
        self.handle_prefix = b"H:bench:"
        self.received = 0

    def write(self, data: bytes) -> None:
        self.received += len(data)

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def buffer_size(self) -> int:
        return 0


def run(batches: int, batch: int) -> float:
    timers = Timers()
    core = Core(timers)
    client, worker = Peer(core, 1), Peer(core, 2)
    core._open_session(client)
    core._open_session(worker)
    core._feed(worker, encode_packet(C.REQ, C.CAN_DO, b"f"))
    submits = encode_packet(C.REQ, C.SUBMIT_JOB, b"f\0\0" + b"x" * 100) * batch
    grabs = encode_packet(C.REQ, C.GRAB_JOB_UNIQ) * batch
    started = time.process_time()
    for n in range(batches):
        core._feed(client, submits)
        timers.turn()
        core._feed(worker, grabs)
        timers.turn()
        first = n * batch + 1
        done = b"".join(
            encode_packet(C.REQ, C.WORK_COMPLETE, b"H:bench:%d\0ok" % h)
            for h in range(first, first + batch)
        )
        core._feed(worker, done)
        timers.turn()
    assert not core.jobs, "every job should be finished"
    return batches * batch / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rates = sorted(run(args.batches, args.batch) for _ in range(args.rounds))
    print(
        "%s build: %.0f jobs per CPU-second (median of %d; best %.0f)"
        % (BUILD, rates[len(rates) // 2], args.rounds, rates[-1])
    )


if __name__ == "__main__":
    main()
