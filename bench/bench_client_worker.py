"""Foreground round-trips per second: our Client+Worker vs gear 0.16.0's.

Starts one C ``gearmand -t 0`` on a free loopback port, then runs the same
workload twice in separate processes, so neither library's threads disturb
the other: a worker process serving ``echo`` and a client process that
submits ``--jobs`` foreground jobs one after another (``--clients`` threads)
and waits for each result. Prints jobs/s, CPU seconds per job (client plus
worker process, user+sys) and the ratio.

    python bench/bench_client_worker.py [--jobs 5000] [--clients 1]

gear 0.16.0 runs from a venv made by tests/fixtures/gear016.py (created in
``.venv-bench-gear016`` on first use). gear 0.16 does not set TCP_NODELAY,
so Nagle's algorithm and delayed ACKs cap its round-trips; a third run
patches TCP_NODELAY into 0.16's ``Connection.connect`` to compare the rest
of the machinery. Run it on demand; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _support import REPO as ROOT, free_port, gear016_python

WORKER = r"""
import os, sys, gear
if os.environ.get('BENCH_NODELAY'):
    import socket
    _connect = gear.Connection.connect
    def connect(self):
        _connect(self)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    gear.Connection.connect = connect
port, count = int(sys.argv[1]), int(sys.argv[2])
w = gear.Worker('bench-worker')
w.addServer('127.0.0.1', port)
w.registerFunction('echo')
w.waitForServer()
print('ready', flush=True)
for _ in range(count):
    job = w.getJob()
    job.sendWorkComplete(job.arguments)
t = os.times()
print(t.user + t.system, flush=True)
os._exit(0)
"""

CLIENT = r"""
import os, sys, gear
if os.environ.get('BENCH_NODELAY'):
    import socket
    _connect = gear.Connection.connect
    def connect(self):
        _connect(self)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    gear.Connection.connect = connect
import threading, time
port, count, nclients = (int(a) for a in sys.argv[1:4])
ours = sys.argv[4] == '1'

if ours:
    Client = gear.Client
else:
    class Client(gear.Client):
        # gear 0.16 has no job.wait(): the documented way is a completion hook.
        def handleWorkComplete(self, packet):
            job = super().handleWorkComplete(packet)
            job.done.set()
            return job
        handleWorkFail = handleWorkComplete

c = Client('bench-client')
c.addServer('127.0.0.1', port)
c.waitForServer()
payload = b'x' * 100

def run(n):
    for _ in range(n):
        job = gear.Job('echo', payload)
        if ours:
            c.submitJob(job)
            job.wait()
        else:
            job.done = threading.Event()
            c.submitJob(job)
            job.done.wait()

run(50)
t0 = os.times()
start = time.perf_counter()
per = count // nclients
threads = [threading.Thread(target=run, args=(per,)) for _ in range(nclients)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.perf_counter() - start
t1 = os.times()
print(elapsed, (t1.user + t1.system) - (t0.user + t0.system), per * nclients, flush=True)
os._exit(0)
"""


def run_side(
    python: str, env: dict[str, str], port: int, jobs: int, clients: int, ours: bool
) -> dict[str, float]:
    warm = 50
    worker = subprocess.Popen(
        [python, "-c", WORKER, str(port), str(jobs + warm)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "ready"
    out = subprocess.run(
        [python, "-c", CLIENT, str(port), str(jobs), str(clients), "1" if ours else "0"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    elapsed, client_cpu, done = (float(x) for x in out.stdout.split())
    worker_cpu = float(worker.stdout.readline())
    worker.wait()
    return {
        "jobs": done,
        "seconds": elapsed,
        "jobs_per_s": done / elapsed,
        "cpu_ms_per_job_client": client_cpu / done * 1000,
        "cpu_ms_per_job_total": (client_cpu + worker_cpu) / done * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=1, help="submitting threads")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs; medians shown")
    parser.add_argument(
        "--stock-jobs",
        type=int,
        default=200,
        help="jobs for stock 0.16 (about 23/s: Nagle and delayed ACKs bound it)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    ours_env = dict(os.environ)
    ours_env["PYTHONPATH"] = os.pathsep.join(
        str(ROOT / "packages" / p / "src") for p in ("gear-core", "gear-client", "gear-worker")
    )
    theirs_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    old_python = str(gear016_python())

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        gearmand = subprocess.Popen(
            [
                "gearmand",
                "-L",
                "127.0.0.1",
                "-p",
                str(port),
                "-t",
                "0",
                f"--log-file={tmp}/gearmand.log",
                "--verbose",
                "ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            import socket

            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            nodelay_env = dict(theirs_env, BENCH_NODELAY="1")
            sides = [
                ("gear (this repo)", sys.executable, ours_env, args.jobs, True),
                ("gear 0.16.0", old_python, theirs_env, min(args.jobs, args.stock_jobs), False),
                ("gear 0.16.0+NODELAY", old_python, nodelay_env, args.jobs, False),
            ]
            runs: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in sides}
            for _ in range(args.repeat):
                for name, python, env, jobs, ours in sides:
                    runs[name].append(run_side(python, env, port, jobs, args.clients, ours))
        finally:
            gearmand.terminate()
            gearmand.wait()
    results = {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for name, rs in runs.items()
    }
    ours = results["gear (this repo)"]
    if args.json:
        print(json.dumps({"median": results, "runs": runs}, indent=2))
    print(
        "foreground jobs through gearmand -t 0, %d client thread(s), median of %d interleaved runs"
        % (args.clients, args.repeat)
    )
    for name, r in results.items():
        print(
            "  %-20s %6d jobs %8.0f jobs/s  %.3f ms CPU/job (client %.3f)"
            % (
                name,
                r["jobs"],
                r["jobs_per_s"],
                r["cpu_ms_per_job_total"],
                r["cpu_ms_per_job_client"],
            )
        )
    for name in ("gear 0.16.0", "gear 0.16.0+NODELAY"):
        theirs = results[name]
        print(
            "  ratio ours / %s: %.2fx jobs/s, %.2fx CPU per job"
            % (
                name,
                ours["jobs_per_s"] / theirs["jobs_per_s"],
                ours["cpu_ms_per_job_total"] / theirs["cpu_ms_per_job_total"],
            )
        )


if __name__ == "__main__":
    main()
