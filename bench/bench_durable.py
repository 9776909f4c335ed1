"""Background enqueue throughput with and without a queue file (run on demand).

Starts in turn on 127.0.0.1, round-robin ``--repeat`` times (so a change in
the machine's load affects all alike), a fresh server each time:

* our ``geard`` in memory,
* our ``geard --queue-file`` (SQLite, WAL, synchronous=FULL),
* the C ``gearmand -t 0 -q libsqlite3`` if it is installed (``--gearmand ''``
  skips both gearmand runs; its SQLite queue takes minutes for 100,000 jobs),
* the C ``gearmand -t 0`` in memory, for reference,

and drives each with the same load: ``--clients`` processes, each submitting
its share of ``--jobs`` SUBMIT_JOB_BG packets with distinct unique ids,
``--window`` packets in flight per connection, counting JOB_CREATED replies.
Prints jobs/s, server CPU-seconds and jobs per server CPU-second, best of
``--repeat`` runs, and the ratios the issue asks for. Usage::

    python bench/bench_durable.py [--jobs 100000] [--clients 2] [--window 1000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from _support import cpu_seconds, free_port, wait_port

HEADER = struct.Struct("!4sII")
SUBMIT_JOB_BG = 18
JOB_CREATED = 8
PAYLOAD = b"x" * 100


def client(port: int, tag: int, count: int, window: int, start: mp.synchronize.Event) -> None:
    """Submit ``count`` background jobs with ``window`` in flight; exit when all acked."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    packets = []
    for i in range(count):
        data = b"bench\0%d-%d\0" % (tag, i) + PAYLOAD
        packets.append(HEADER.pack(b"\0REQ", SUBMIT_JOB_BG, len(data)) + data)
    start.wait()
    sent = acked = 0
    buf = b""
    while acked < count:
        if sent - acked < window // 2 and sent < count:
            batch = packets[sent : min(count, acked + window)]
            sock.sendall(b"".join(batch))
            sent += len(batch)
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise SystemExit("server closed the connection")
        buf += chunk
        pos = 0
        while len(buf) - pos >= 12:
            _, ptype, size = HEADER.unpack_from(buf, pos)
            if len(buf) - pos < 12 + size:
                break
            if ptype != JOB_CREATED:
                raise SystemExit("unexpected reply type %d" % ptype)
            pos += 12 + size
            acked += 1
        buf = buf[pos:]
    sock.close()


def drive(port: int, jobs: int, clients: int, window: int) -> float:
    """Run the load once; return elapsed seconds."""
    start = mp.Event()
    share = jobs // clients
    procs = [
        mp.Process(target=client, args=(port, n, share, window, start)) for n in range(clients)
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)  # let every client build its packets and connect
    began = time.perf_counter()
    start.set()
    for p in procs:
        p.join(600)
        if p.exitcode != 0:
            raise RuntimeError("client failed with %s" % p.exitcode)
    return time.perf_counter() - began


@dataclass
class Result:
    name: str
    jobs_per_s: float
    cpu_s: float
    jobs: int

    @property
    def per_cpu(self) -> float:
        return self.jobs / self.cpu_s if self.cpu_s else float("nan")


def run_once(name: str, argv: list[str], port: int, args: argparse.Namespace) -> Result:
    """Start a fresh server, drive it once, kill it."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        cpu0 = cpu_seconds(proc.pid)
        elapsed = drive(port, args.jobs, args.clients, args.window)
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    total = args.jobs // args.clients * args.clients
    return Result(name, total / elapsed, cpu, total)


def remove_db(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gearmand", default=shutil.which("gearmand", path="/usr/sbin:/usr/bin"))
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench-durable-")
    geard = [sys.executable, "-m", "gear.cmd.geard", "-d", "--listen-address", "127.0.0.1"]
    queue = os.path.join(tmp, "geard.db")
    db = os.path.join(tmp, "gearmand.db")
    base = [args.gearmand or "", "-t", "0", "-L", "127.0.0.1", "--log-file", "none"]
    servers: dict[str, tuple[str, list[str], list[str]]] = {
        "mem": ("geard (memory)", geard, []),
        "file": ("geard --queue-file", [*geard, "--queue-file", queue], [queue]),
    }
    if args.gearmand:
        servers["gsql"] = (
            "gearmand -t 0 -q libsqlite3",
            [*base, "-q", "libsqlite3", "--libsqlite3-db", db],
            [db],
        )
        servers["gmem"] = ("gearmand -t 0 (memory)", base, [])
    results: dict[str, Result] = {}
    try:
        # Round-robin over the servers, so that a change in the machine's load
        # during the run affects each of them alike; keep each one's best run.
        for _ in range(args.repeat):
            for key, (name, argv, files) in servers.items():
                for path in files:
                    remove_db(path)
                port = free_port()
                result = run_once(name, [*argv, "-p", str(port)], port, args)
                if key not in results or result.jobs_per_s > results[key].jobs_per_s:
                    results[key] = result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        "background enqueue: %d jobs, %d clients, window %d, best of %d, %d CPUs"
        % (args.jobs, args.clients, args.window, args.repeat, os.cpu_count() or 0)
    )
    print("%-30s %12s %12s %16s" % ("server", "jobs/s", "server CPU s", "jobs/server CPU s"))
    for r in results.values():
        print("%-30s %12.0f %12.2f %16.0f" % (r.name, r.jobs_per_s, r.cpu_s, r.per_cpu))
    file, mem = results["file"], results["mem"]
    print("queue-file / memory: %.2fx (target >= 0.5x)" % (file.jobs_per_s / mem.jobs_per_s))
    if "gsql" in results:
        print(
            "queue-file / gearmand libsqlite3: %.2fx (target > 1x)"
            % (file.jobs_per_s / results["gsql"].jobs_per_s)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
