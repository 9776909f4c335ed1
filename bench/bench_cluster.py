"""geard on PostgreSQL (``--queue-url``): enqueue, drain and failover (run on demand).

Starts a throwaway PostgreSQL server (Debian's binaries, as in the tests:
``tests/fixtures/postgres.py``) and, in turn on 127.0.0.1, round-robin
``--repeat`` times, a fresh server each time with a fresh database:

* our ``geard`` in memory,
* our ``geard --queue-file`` (SQLite),
* our ``geard --queue-url postgresql://...``,
* the C ``gearmand -t 0 -q Postgres --libpq-conninfo ...`` (its queue writes
  one row per job and waits for it, so it gets ``--gearmand-jobs`` jobs),

each loaded like ``bench_durable.py`` does (``--clients`` processes
submitting SUBMIT_JOB_BG with distinct unique ids, ``--window`` in
flight), then drained by ``--workers`` raw worker processes. Then
failover: two ``geard --queue-url`` nodes with ``--lease`` seconds, jobs
queued on the first, a worker waiting on the second; the first is killed
with SIGKILL and the time until the worker is handed its first job is
measured. Usage::

    python bench/bench_cluster.py [--jobs 50000] [--gearmand-jobs 5000] [--lease 15]
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

from _support import REPO, cpu_seconds, free_port, wait_port
from bench_durable import drive

sys.path.insert(0, str(REPO / "tests"))
from fixtures.postgres import PostgresServer

HEADER = struct.Struct("!4sII")
CAN_DO, PRE_SLEEP, NOOP, NO_JOB = 1, 4, 6, 10
WORK_COMPLETE, GRAB_JOB_UNIQ, JOB_ASSIGN_UNIQ = 13, 30, 31
SUBMIT_JOB_BG, JOB_CREATED = 18, 8


def packet(ptype: int, data: bytes = b"") -> bytes:
    return HEADER.pack(b"\0REQ", ptype, len(data)) + data


def read_packet(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    while True:
        if len(buf) >= 12:
            _, ptype, size = HEADER.unpack_from(buf)
            if len(buf) >= 12 + size:
                data = bytes(buf[12 : 12 + size])
                del buf[: 12 + size]
                return ptype, data
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise SystemExit("server closed the connection")
        buf += chunk


def worker(port: int, done: mp.sharedctypes.Synchronized[int], total: int) -> None:
    """Take and complete jobs (the result and the next grab in one write) until all are done."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    sock.sendall(packet(CAN_DO, b"bench") + packet(GRAB_JOB_UNIQ))
    while True:
        ptype, data = read_packet(sock, buf)
        if ptype == NO_JOB:
            if done.value >= total:
                return
            time.sleep(0.001)
            sock.sendall(packet(GRAB_JOB_UNIQ))
            continue
        handle = data.split(b"\0", 1)[0]
        with done.get_lock():
            done.value += 1
        sock.sendall(packet(WORK_COMPLETE, handle + b"\0") + packet(GRAB_JOB_UNIQ))


def drain(port: int, jobs: int, workers: int) -> float:
    done = mp.Value("q", 0)
    began = time.perf_counter()
    procs = [mp.Process(target=worker, args=(port, done, jobs)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    if done.value < jobs:
        raise RuntimeError("drained %d of %d" % (done.value, jobs))
    return time.perf_counter() - began


@dataclass
class Result:
    name: str
    jobs: int
    enqueue: float
    drain: float
    cpu: float


def run_once(name: str, argv: list[str], jobs: int, args: argparse.Namespace) -> Result:
    port = free_port()
    proc = subprocess.Popen(
        [*argv, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port, proc)
        cpu0 = cpu_seconds(proc.pid)
        enqueue = drive(port, jobs, args.clients, args.window)
        cpu = cpu_seconds(proc.pid) - cpu0
        emptied = drain(port, jobs // args.clients * args.clients, args.workers)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    total = jobs // args.clients * args.clients
    return Result(name, total, total / enqueue, total / emptied, cpu)


def failover(pg: PostgresServer, geard: list[str], lease: float, jobs: int) -> float:
    """Seconds from SIGKILL of the node holding the jobs to the first job handed out."""
    url = pg.create_database()
    nodes = []
    try:
        for name in ("a", "b"):
            port = free_port()
            argv = [*geard, "-p", str(port), "--queue-url", url]
            argv += ["--node-id", name, "--node-lease", str(lease)]
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(port, proc)
            nodes.append((proc, port))
        (victim, victim_port), (_, survivor_port) = nodes
        drive(victim_port, jobs, 1, 500)
        sock = socket.create_connection(("127.0.0.1", survivor_port))
        buf = bytearray()
        sock.sendall(packet(CAN_DO, b"bench") + packet(GRAB_JOB_UNIQ))
        assert read_packet(sock, buf)[0] == NO_JOB
        sock.sendall(packet(PRE_SLEEP))
        time.sleep(0.5)
        victim.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        victim.wait(30)
        sock.settimeout(lease * 3 + 30)
        assert read_packet(sock, buf)[0] == NOOP
        sock.sendall(packet(GRAB_JOB_UNIQ))
        assert read_packet(sock, buf)[0] == JOB_ASSIGN_UNIQ
        handed = time.perf_counter() - killed
        sock.close()
        return handed
    finally:
        for proc, _ in nodes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--gearmand-jobs", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--lease", type=float, default=15.0)
    parser.add_argument("--gearmand", default=shutil.which("gearmand", path="/usr/sbin:/usr/bin"))
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench-cluster-")
    geard = [sys.executable, "-m", "gear.cmd.geard", "-d", "--listen-address", "127.0.0.1"]
    pg = PostgresServer()
    pg.start()
    results: dict[str, Result] = {}
    try:
        for round_ in range(args.repeat):
            queue = os.path.join(tmp, "geard-%d.db" % round_)
            runs = [
                ("geard (memory)", geard, args.jobs),
                ("geard --queue-file", [*geard, "--queue-file", queue], args.jobs),
                ("geard --queue-url", [*geard, "--queue-url", pg.create_database()], args.jobs),
            ]
            if args.gearmand:
                url = pg.create_database()
                dbname = url.rsplit("/", 1)[1]
                conninfo = "host=127.0.0.1 port=%d user=gear dbname=%s" % (pg.port, dbname)
                runs.append(
                    (
                        "gearmand -q Postgres",
                        [
                            *(args.gearmand, "-t", "0", "-L", "127.0.0.1", "--log-file", "none"),
                            *("-q", "Postgres", "--libpq-conninfo", conninfo),
                        ],
                        args.gearmand_jobs,
                    )
                )
            for name, command, jobs in runs:
                result = run_once(name, command, jobs, args)
                best = results.get(name)
                if best is None or result.enqueue > best.enqueue:
                    results[name] = result
        handed = failover(pg, geard, args.lease, 2000)
    finally:
        pg.remove()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        "background enqueue and drain: %d clients, window %d, %d workers, best of %d, %d CPUs"
        % (args.clients, args.window, args.workers, args.repeat, os.cpu_count() or 0)
    )
    print("%-24s %8s %12s %12s %14s" % ("server", "jobs", "enqueue/s", "drain/s", "enq. CPU s"))
    for r in results.values():
        print("%-24s %8d %12.0f %12.0f %14.2f" % (r.name, r.jobs, r.enqueue, r.drain, r.cpu))
    url, mem = results["geard --queue-url"], results["geard (memory)"]
    print("queue-url / memory enqueue: %.2fx (target >= 0.3x)" % (url.enqueue / mem.enqueue))
    if "gearmand -q Postgres" in results:
        print(
            "queue-url / gearmand Postgres enqueue: %.1fx (target >= 20x)"
            % (url.enqueue / results["gearmand -q Postgres"].enqueue)
        )
    print(
        "failover, kill -9 to first adopted job handed out: %.2fs with a %gs lease"
        " (target <= %gs)" % (handed, args.lease, args.lease + 2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
