"""geard's instructions per job through real sockets: this checkout against another.

Run on demand (never by the test suite)::

    hatch run python bench/bench_server_instr.py --baseline DIR [--rounds 3]

Time through loopback sockets moves by 5-20 % between rounds on a shared
2-core machine, too much to tell a 3 % change. An instruction count does not
depend on what else the machine is doing: ``perf stat -e instructions:u`` is
attached to the geard process for exactly one fixed-size workload (a count of
jobs, not a duration), and the figure is instructions per job. What it still
depends on is batching (how many packets arrive per loop turn), so the
workloads with many peers move by a percent or two; ``serial`` (one job at a
time) does not batch at all.

Both sides run from source on the same Python with the same event loop
(uvloop when installed; ``--loop asyncio`` for the standard one) and the same
``PYTHONHASHSEED``. Needs valgrind; a round takes about a minute per
workload at the default job count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import HOST, REPO, free_port, quiet_log_config, wait_port
from bench_server import (
    Peer,
    baseline_env,
    connect,
    drain,
    enqueue,
    pkt,
    serial_latency,
    start_workers,
)

from gear import constants as C


async def foreground_count(port: int, jobs: int, clients: int = 16, workers: int = 16,
                           inflight: int = 8) -> None:  # fmt: skip
    pool = await start_workers(port, workers, b"fg")
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    submit = pkt(C.SUBMIT_JOB, b"fg\0\0" + b"x" * 100)
    state = {"sent": 0, "done": 0}

    def on_frame(peer: Peer, ptype: int, data: bytes) -> None:
        if ptype == C.WORK_COMPLETE:
            state["done"] += 1
            if state["sent"] < jobs:
                state["sent"] += 1
                peer.write(submit)
            elif state["done"] >= jobs and not finished.done():
                finished.set_result(None)

    peers = [await connect(port, on_frame) for _ in range(clients)]
    for peer in peers:
        n = min(inflight, jobs - state["sent"])
        state["sent"] += n
        peer.write(submit * n)
    await asyncio.wait_for(finished, 300)
    for peer in peers + pool:
        peer.close()


class Counted:
    """Callgrind's instruction count of a process for the length of a ``with`` block."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out
        self.instructions = 0

    def control(self, option: str) -> None:
        subprocess.run(["callgrind_control", option, str(self.pid)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip

    def __enter__(self) -> Counted:
        self.before = set(self.out.parent.glob(self.out.name + ".*"))
        self.control("--zero")
        return self

    def __exit__(self, *exc: object) -> None:
        self.control("--dump")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = set(self.out.parent.glob(self.out.name + ".*")) - self.before
            text = new and next(iter(new)).read_text()
            if text and "\ntotals:" in text:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("callgrind wrote no dump for pid %d" % self.pid)
        match = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        assert match is not None
        self.instructions = int(match.group(1))


WORKLOADS = {
    "serial": lambda port, n: serial_latency(port, n, warmup=0),
    "fg": lambda port, n: foreground_count(port, n),
    "enqueue": lambda port, n: enqueue(port, n),
    "drain": lambda port, n: drain(port, n),
}


def measure(python: str, env: dict[str, str], loop: list[str], jobs: dict[str, int]
            ) -> dict[str, float]:  # fmt: skip
    port = free_port()
    out = Path(tempfile.mkdtemp()) / "callgrind.out"
    quiet = quiet_log_config(out.parent)
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % out,
         python, "-m", "gear.cmd.geard", "-d", "-p", str(port), "--listen-address", HOST,
         "--log-config", str(quiet), *loop],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        wait_port(port, proc, timeout=120)
        asyncio.run(serial_latency(port, 200))  # warm up
        result = {}
        for name, count in jobs.items():
            with Counted(proc.pid, out) as counted:
                asyncio.run(WORKLOADS[name](port, count))
            result[name] = counted.instructions / count
        return result
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another gear checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", choices=["auto", "asyncio"], default="auto")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per workload")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument(
        "--python",
        help="run this side's geard on this Python with the gear it has installed (e.g."
        " .venv-compiled/bin/python for the mypyc build) instead of this checkout's source",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    # Both sides import gear from source through PYTHONPATH: the same shape of sys.path.
    env = dict(os.environ) if args.python else baseline_env(REPO)
    base_env = baseline_env(args.baseline)
    new_loop = ["--loop", "asyncio"] if args.loop == "asyncio" else []
    # The baseline may predate --loop: it gets the standard loop by hiding uvloop.
    base_loop: list[str] = []
    if args.loop == "asyncio":
        hide = Path(tempfile.mkdtemp()) / "uvloop"
        hide.mkdir()
        (hide / "__init__.py").write_text("raise ImportError('hidden by the benchmark')\n")
        base_env["PYTHONPATH"] = str(hide.parent) + os.pathsep + base_env["PYTHONPATH"]
    jobs = {name: args.jobs for name in args.workloads.split(",")}
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in jobs}
    for index in range(args.rounds):
        # The hash seed moves a process's cost steadily by up to a few percent (the same
        # files: 151.9k instructions per serial job with seed 0, 146.5-147.4k with seeds
        # 1-4). Each round gets its own seed, the same on both sides, and the medians
        # average over seeds.
        seed = {"PYTHONHASHSEED": str(index + 1)}
        new = measure(args.python or sys.executable, {**env, **seed}, new_loop, jobs)
        old = measure(sys.executable, {**base_env, **seed}, base_loop, jobs)
        for name in jobs:
            rows[name].append((new[name], old[name]))
        print("round %d: %s" % (index + 1, ", ".join(
            "%s %.0f/%.0f" % (n, new[n], old[n]) for n in jobs)), flush=True)  # fmt: skip
    print()
    print("| workload | this checkout (instr/job) | baseline | this/baseline |")
    print("|---|---|---|---|")
    for name, pairs in rows.items():
        print("| %s | %.0f | %.0f | %.3fx |" % (
            name, statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs),
            statistics.median(p[0] / p[1] for p in pairs)))  # fmt: skip
    print()
    print("%d jobs per workload, %d rounds, loop %s, python %s" % (
        args.jobs, args.rounds, args.loop, sys.version.split()[0]))  # fmt: skip


if __name__ == "__main__":
    main()
