"""geard's own CPU per job, without the network: this checkout against another.

Run on demand (never by the test suite)::

    hatch run python bench/bench_server_cpu.py --baseline DIR [--jobs 20000] [--rounds 9]

``bench_server.py`` measures geard through real sockets, which on a shared
2-core machine moves by 10-20 % between rounds. This script measures only
what a change to geard's Python code can move: a ``gear.Server`` is started
in a child process, fake transports are attached to ``GeardConnection``
objects on the server's loop, and scripted packets are fed to them while
the loop thread's CPU time (``time.thread_time``) is read. Nothing is sent
or received, so the kernel and the other processes' scheduling stay out of
the figures. Each round runs this checkout and DIR (for example
``git archive main | tar -x -C DIR``) in turn; the table shows medians and
the median of the per-round ratios.

Workloads: ``fg`` one foreground job at a time (SUBMIT_JOB, the worker's
NOOP, GRAB_JOB_UNIQ, WORK_COMPLETE, PRE_SLEEP, a loop turn after each
step); ``enqueue`` background submits, 100 per loop turn; ``drain`` the
queued jobs grabbed and completed by one worker, one job per loop turn.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import asyncio, json, sys, time
from gear import constants as C
from gear.codec import encode_packet
from gear.server import Server

JOBS = int(sys.argv[1])


class FakeTransport:
    def __init__(self):
        self.size = 0
    def get_extra_info(self, name, default=None):
        return default
    def set_write_buffer_limits(self, high=None, low=None):
        pass
    def write(self, data):
        self.size += len(data)
    def get_write_buffer_size(self):
        return 0
    def is_closing(self):
        return False
    def abort(self):
        pass
    def close(self):
        pass
    def pause_reading(self):
        pass
    def resume_reading(self):
        pass


def req(ptype, *args):
    return encode_packet(C.REQ, ptype, b"\x00".join(args))


async def run(server):
    from gear.server import GeardConnection
    client, worker = GeardConnection(server), GeardConnection(server)
    client.connection_made(FakeTransport())
    worker.connection_made(FakeTransport())
    turn = asyncio.sleep
    worker.data_received(req(C.CAN_DO, b"fn") + req(C.PRE_SLEEP))
    await turn(0)
    submit = req(C.SUBMIT_JOB, b"fn", b"", b"x" * 100)
    grab, sleep = req(C.GRAB_JOB_UNIQ), req(C.PRE_SLEEP)
    result = {}
    start = time.thread_time()
    for i in range(1, JOBS + 1):
        client.data_received(submit)
        await turn(0)
        worker.data_received(grab)
        await turn(0)
        worker.data_received(req(C.WORK_COMPLETE, b"H::%d" % i, b"done") + sleep)
        await turn(0)
    result["fg CPU-us/job"] = (time.thread_time() - start) * 1e6 / JOBS
    bg = req(C.SUBMIT_JOB_BG, b"bg", b"", b"x" * 100)
    start = time.thread_time()
    for _ in range(JOBS // 100):
        client.data_received(bg * 100)
        await turn(0)
    result["enqueue CPU-us/job"] = (time.thread_time() - start) * 1e6 / JOBS
    worker.data_received(req(C.CAN_DO, b"bg"))
    start = time.thread_time()
    for i in range(JOBS + 1, 2 * JOBS + 1):
        worker.data_received(grab)
        await turn(0)
        worker.data_received(req(C.WORK_COMPLETE, b"H::%d" % i, b""))
        await turn(0)
    result["drain CPU-us/job"] = (time.thread_time() - start) * 1e6 / JOBS
    assert server.total_jobs == 0, server.total_jobs
    return result


server = Server(0, host="127.0.0.1")
try:
    print(json.dumps(asyncio.run_coroutine_threadsafe(run(server), server.loop).result(600)))
finally:
    server.shutdown()
"""


def source_env(checkout: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if checkout is not None:
        src = [checkout / "packages" / n / "src" for n in ("gear-core", "gear-acl", "gear-server")]
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in src)
    return env


def measure(checkout: Path | None, jobs: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(jobs)],
        env=source_env(checkout),
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    mine: list[dict[str, float]] = []
    base: list[dict[str, float]] = []
    for number in range(1, args.rounds + 1):
        print("round %d/%d" % (number, args.rounds), file=sys.stderr, flush=True)
        mine.append(measure(None, args.jobs))
        base.append(measure(args.baseline, args.jobs))
    print("| metric | this checkout | baseline | this/baseline |")
    print("|---|---|---|---|")
    for key in mine[0]:
        a = statistics.median(r[key] for r in mine)
        b = statistics.median(r[key] for r in base)
        ratio = statistics.median(x[key] / y[key] for x, y in zip(mine, base, strict=True))
        print("| %s | %.2f | %.2f | %.3fx |" % (key, a, b, ratio))
    print(
        "\n%d jobs per workload, %d rounds, python %s; lower is better"
        % (args.jobs, args.rounds, sys.version.split()[0])
    )


if __name__ == "__main__":
    main()
