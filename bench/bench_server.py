"""Benchmark geard against the C gearmand and gear 0.16.0's geard.

Run on demand (never by the test suite)::

    hatch run python bench/bench_server.py [--duration 5] [--servers geard-compiled,...]

The default servers are ``geard-compiled`` (this checkout's wheels built
with mypyc, ``GEAR_MYPYC=1``, installed with their dependencies into
``/tmp/geard-compiled-bench-venv``: what ``pip install gear-server`` gives,
so it runs on uvloop), ``geard-pure`` (this environment's pure-Python
sources on the stock asyncio loop, as geard ran before the compiled build)
and ``gearmand``.

Each server is started in turn on 127.0.0.1 and driven by the same raw-socket
asyncio load generator (gear-core's codec, pipelined writes). gear 0.16.0 is
installed from PyPI into its own venv (``.venv-bench-gear016``) and run with
a WARNING log config (its best case; its default ``-d`` logs every packet at
DEBUG). ``gearmand`` runs with ``-t 0``, its fastest setting on 2 cores.
``--servers floor`` (and ``floor-uvloop``) adds ``floor_server.py``: the
least a Python asyncio server can do per packet, to tell geard's own costs
from the interpreter's and the event loop's. ``--baseline DIR`` adds
``geard-base`` to the servers: the geard of another checkout at DIR (for
example ``git archive main | tar -x -C DIR``), run by the same Python with
DIR's gear-core, gear-acl and gear-server sources first on its path, so one
run compares a change with what it started from.

``geard+metrics`` and ``geard+dashboard`` run geard with ``--metrics-port``
while the load runs: the first is scraped (``/metrics``) once a second, the
second has its dashboard open (``/`` once, then ``/api/status`` once a
second, as the page refreshes); the script then prints the paired ratios of
their foreground rates and jobs per server CPU-second to plain geard's.
``--fg-only`` skips the background and idle scenarios for such runs.

Scenarios: foreground jobs/s (many clients and workers, jobs in flight);
serial round-trip latency (one job in flight); background enqueue jobs/s
with no workers; background drain jobs/s at two queue lengths; RSS bytes per
queued 100-byte background job (100k jobs); foreground jobs/s with 5,000
idle connections open; and the sleeping-worker shape: 16 workers that
GRAB_JOB_UNIQ, PRE_SLEEP on NO_JOB and wait for NOOP, 4 clients with 32
foreground jobs each in flight, and background submits (32 in flight per
client) drained by those workers. Server CPU-seconds are read from /proc, because on a
2-core machine the load generator competes with the server for CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from _support import (
    HOST,
    REPO,
    cpu_seconds,
    free_port,
    gear016_python,
    quiet_log_config,
    wait_port,
)

from gear import constants as C
from gear.codec import Decoder, Frame, encode_packet

UVLOOP_VENV = Path("/tmp/geard-uvloop-bench-venv")
COMPILED_VENV = Path("/tmp/geard-compiled-bench-venv")
PAGE = os.sysconf("SC_PAGE_SIZE")

GRAB = encode_packet(C.REQ, C.GRAB_JOB_UNIQ)
PRE_SLEEP = encode_packet(C.REQ, C.PRE_SLEEP)


def pkt(ptype: int, data: bytes = b"") -> bytes:
    return encode_packet(C.REQ, ptype, data)


# --------------------------------------------------------------------------
# servers


@cache
def ensure_uvloop_geard() -> Path:
    """A venv with uvloop and this checkout's gear-server (reinstalled once per run)."""
    python = UVLOOP_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(UVLOOP_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "uvloop"], check=True)
    packages = [str(REPO / "packages" / name) for name in ("gear-core", "gear-acl", "gear-server")]
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", *packages],
        check=True,
    )
    return python


@cache
def ensure_compiled_geard() -> Path:
    """A venv with this checkout's compiled wheels (mypyc) and their dependencies (uvloop)."""
    python = COMPILED_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(COMPILED_VENV)], check=True)
    with tempfile.TemporaryDirectory() as wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
             "-w", wheels, *(str(REPO / "packages" / n) for n in ("gear-core", "gear-acl",
                                                                  "gear-server"))],
            check=True,
            env={**os.environ, "GEAR_MYPYC": "1"},
        )  # fmt: skip
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--force-reinstall", "--find-links",
             wheels, "gear-core", "gear-acl", "gear-server"],
            check=True,
        )  # fmt: skip
    return python


@dataclass
class ServerProcess:
    name: str
    argv: Callable[[int], list[str]]
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    env: dict[str, str] | None = None
    #: HTTP paths fetched once a second while the load runs (``--metrics-port`` servers).
    poll: tuple[str, ...] = ()
    http_port: int = 0

    def start(self) -> None:
        self.port = free_port()
        argv = self.argv(self.port)
        if self.poll:
            self.http_port = free_port()
            argv += ["--metrics-port", str(self.http_port)]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env
        )
        wait_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def rss(self) -> int:
        assert self.proc is not None
        return int(Path("/proc/%d/statm" % self.proc.pid).read_text().split()[1]) * PAGE


def baseline_env(checkout: Path) -> dict[str, str]:
    """An environment whose Python imports gear from ``checkout`` before this one."""
    src = [
        checkout / "packages" / name / "src" for name in ("gear-core", "gear-acl", "gear-server")
    ]
    for path in src:
        if not path.is_dir():
            raise SystemExit("--baseline: %s is not a gear checkout (no %s)" % (checkout, path))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, src), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    probe = subprocess.run(
        [sys.executable, "-c", "import gear.server.server as s; print(s.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    if not probe.stdout.strip().startswith(str(checkout.resolve())):
        raise SystemExit("--baseline: gear.server still comes from %s" % probe.stdout.strip())
    return env


#: geard with its HTTP listener, and what an observer fetches from it every second:
#: Prometheus scraping (15 times as often as its default), or the dashboard page
#: open in a browser (the page itself once, then its JSON as the page refreshes).
POLLERS = {
    "geard+metrics": ("/metrics",),
    "geard+dashboard": ("/api/status",),
}


def make_servers(names: list[str], tmp: Path, baseline: Path | None = None) -> list[ServerProcess]:
    quiet = quiet_log_config(tmp)
    servers = []
    for name in names:
        if name in POLLERS:
            servers.append(
                ServerProcess(
                    name,
                    lambda p: [sys.executable, "-m", "gear.cmd.geard", "-d", "-p", str(p),
                               "--listen-address", HOST, "--log-config", str(quiet)],
                    poll=POLLERS[name],
                )
            )  # fmt: skip
        elif name == "geard":
            servers.append(
                ServerProcess(
                    "geard",
                    lambda p: [sys.executable, "-m", "gear.cmd.geard", "-d", "-p", str(p),
                               "--listen-address", HOST, "--log-config", str(quiet)],
                )
            )  # fmt: skip
        elif name in ("geard-compiled", "geard-pure"):
            compiled = name == "geard-compiled"
            python = str(ensure_compiled_geard()) if compiled else sys.executable
            loop = [] if compiled else ["--loop", "asyncio"]
            servers.append(
                ServerProcess(
                    "geard compiled+uvloop" if compiled else "geard pure+asyncio",
                    lambda p, py=python, loop=loop: [
                        py, "-m", "gear.cmd.geard", "-d", "-p", str(p), "--listen-address", HOST,
                        "--log-config", str(quiet), *loop],
                )
            )  # fmt: skip
        elif name == "geard-base":
            if baseline is None:
                raise SystemExit("geard-base needs --baseline DIR")
            servers.append(
                ServerProcess(
                    "base geard",
                    lambda p: [sys.executable, "-m", "gear.cmd.geard", "-d", "-p", str(p),
                               "--listen-address", HOST, "--log-config", str(quiet)],
                    env=baseline_env(baseline),
                )
            )  # fmt: skip
        elif name == "geard-uvloop":
            python = str(ensure_uvloop_geard())
            servers.append(
                ServerProcess(
                    "geard+uvloop",
                    lambda p, py=python: [py, "-m", "gear.cmd.geard", "-d", "-p", str(p),
                                          "--listen-address", HOST, "--log-config", str(quiet)],
                )
            )  # fmt: skip
        elif name in ("floor", "floor-uvloop"):
            python = str(ensure_uvloop_geard()) if name == "floor-uvloop" else sys.executable
            extra = ["--uvloop"] if name == "floor-uvloop" else []
            servers.append(
                ServerProcess(
                    "py floor" + ("+uvloop" if extra else ""),
                    lambda p, py=python, extra=extra: [py, str(REPO / "bench" / "floor_server.py"),
                                                       "--port", str(p), "--host", HOST, *extra],
                )
            )  # fmt: skip
        elif name == "gearmand":
            exe = shutil.which("gearmand") or "/usr/sbin/gearmand"
            servers.append(
                ServerProcess(
                    "gearmand -t 0",
                    lambda p, exe=exe: [exe, "-t", "0", "-p", str(p), "-L", HOST,
                                        "--log-file", str(tmp / "gearmand.log"),
                                        "--verbose", "ERROR"],
                )
            )  # fmt: skip
        elif name == "gear016":
            exe016 = str(gear016_python().parent / "geard")
            servers.append(
                ServerProcess(
                    "gear 0.16.0",
                    lambda p, exe=exe016: [exe, "-d", "-p", str(p), "--listen-address", HOST,
                                           "--log-config", str(quiet)],
                )
            )  # fmt: skip
    return servers


# --------------------------------------------------------------------------
# load generator


class Peer(asyncio.Protocol):
    """A raw Gearman connection; ``on_frame(peer, ptype, data)`` per packet."""

    def __init__(self, on_frame: Callable[[Peer, int, bytes], None] | None = None) -> None:
        self.decoder = Decoder(max_packet_size=1 << 30)
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None
        self.connected = asyncio.get_running_loop().create_future()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connected.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def data_received(self, data: bytes) -> None:
        for event in self.decoder.receive(data):
            if isinstance(event, Frame) and self.on_frame is not None:
                self.on_frame(self, event.ptype, event.data)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int, on_frame: Callable[[Peer, int, bytes], None] | None = None) -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_connection(lambda: Peer(on_frame), HOST, port)
    await peer.connected
    return peer


def worker_handler(result: bytes) -> Callable[[Peer, int, bytes], None]:
    def on_frame(peer: Peer, ptype: int, data: bytes) -> None:
        if ptype == C.JOB_ASSIGN_UNIQ:
            handle = data[: data.index(b"\0")]
            peer.write(pkt(C.WORK_COMPLETE, handle + b"\0" + result) + GRAB)
        elif ptype == C.NO_JOB:
            peer.write(PRE_SLEEP)
        elif ptype == C.NOOP:
            peer.write(GRAB)

    return on_frame


async def start_workers(port: int, count: int, function: bytes) -> list[Peer]:
    workers = []
    for _ in range(count):
        peer = await connect(port, worker_handler(b"ok"))
        peer.write(pkt(C.CAN_DO, function) + GRAB)
        workers.append(peer)
    return workers


@dataclass
class Counter:
    done: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)


async def foreground(port: int, seconds: float, clients: int = 16, workers: int = 16,
                     inflight: int = 8) -> float:  # fmt: skip
    function = b"fg"
    pool = await start_workers(port, workers, function)
    counter = Counter()
    stop = False
    submit = pkt(C.SUBMIT_JOB, function + b"\0\0" + b"x" * 100)

    def on_frame(peer: Peer, ptype: int, data: bytes) -> None:
        if ptype in (C.WORK_COMPLETE, C.WORK_FAIL):
            counter.done += 1
            if not stop:
                peer.write(submit)

    peers = [await connect(port, on_frame) for _ in range(clients)]
    for peer in peers:
        peer.write(submit * inflight)
    await asyncio.sleep(min(1.0, seconds / 5))
    start_count, started = counter.done, time.monotonic()
    await asyncio.sleep(seconds)
    rate = (counter.done - start_count) / (time.monotonic() - started)
    stop = True
    for peer in peers + pool:
        peer.close()
    return rate


async def sleepers_background(port: int, seconds: float, clients: int = 4, workers: int = 16,
                             inflight: int = 32) -> float:  # fmt: skip
    """Background submits, ``inflight`` per client, while ``workers`` sleep and wake to drain."""
    function = b"sbg"
    pool = await start_workers(port, workers, function)
    created = 0
    stop = False
    submit = pkt(C.SUBMIT_JOB_BG, function + b"\0\0" + b"x" * 100)

    def on_frame(peer: Peer, ptype: int, data: bytes) -> None:
        nonlocal created
        if ptype == C.JOB_CREATED:
            created += 1
            if not stop:
                peer.write(submit)

    peers = [await connect(port, on_frame) for _ in range(clients)]
    for peer in peers:
        peer.write(submit * inflight)
    await asyncio.sleep(min(1.0, seconds / 5))
    start_count, started = created, time.monotonic()
    await asyncio.sleep(seconds)
    rate = (created - start_count) / (time.monotonic() - started)
    stop = True
    for peer in peers + pool:
        peer.close()
    return rate


async def serial_latency(port: int, jobs: int = 2000, warmup: int = 100) -> tuple[float, float]:
    """Median and 99th percentile of one job at a time, after ``warmup`` unmeasured jobs."""
    pool = await start_workers(port, 1, b"lat")
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def on_frame(peer: Peer, ptype: int, data: bytes) -> None:
        if ptype == C.WORK_COMPLETE and not waiter.done():
            waiter.set_result(None)

    client = await connect(port, on_frame)
    submit = pkt(C.SUBMIT_JOB, b"lat\0\0ping")
    samples = []
    for i in range(jobs + warmup):
        waiter = loop.create_future()
        started = time.perf_counter()
        client.write(submit)
        await asyncio.wait_for(waiter, 30)
        if i >= warmup:
            samples.append(time.perf_counter() - started)
    client.close()
    for peer in pool:
        peer.close()
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99)] * 1e6


async def enqueue(port: int, jobs: int, clients: int = 2, batch: int = 1000,
                  payload: bytes = b"x" * 100, function: bytes = b"bg") -> float:  # fmt: skip
    loop = asyncio.get_running_loop()
    per_client = jobs // clients

    async def one(index: int) -> None:
        state = {"pending": 0}
        batch_done: asyncio.Future[None] = loop.create_future()

        def on_frame(peer: Peer, ptype: int, data: bytes) -> None:
            if ptype == C.JOB_CREATED:
                state["pending"] -= 1
                if state["pending"] == 0 and not batch_done.done():
                    batch_done.set_result(None)

        peer = await connect(port, on_frame)
        submit = pkt(C.SUBMIT_JOB_BG, function + b"\0\0" + payload)
        sent = 0
        while sent < per_client:
            n = min(batch, per_client - sent)
            batch_done = loop.create_future()
            state["pending"] = n
            peer.write(submit * n)
            await asyncio.wait_for(batch_done, 120)
            sent += n
        peer.close()

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    return per_client * clients / (time.monotonic() - started)


async def drain(port: int, jobs: int, workers: int = 8, function: bytes = b"bg") -> float:
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    counter = Counter()

    def on_frame(peer: Peer, ptype: int, data: bytes) -> None:
        if ptype == C.JOB_ASSIGN_UNIQ:
            handle = data[: data.index(b"\0")]
            peer.write(pkt(C.WORK_COMPLETE, handle + b"\0") + GRAB)
            counter.done += 1
            if counter.done >= jobs and not finished.done():
                finished.set_result(None)
        elif ptype == C.NO_JOB:
            peer.write(PRE_SLEEP)
        elif ptype == C.NOOP:
            peer.write(GRAB)

    started = time.monotonic()
    peers = []
    for _ in range(workers):
        peer = await connect(port, on_frame)
        peer.write(pkt(C.CAN_DO, function) + GRAB)
        peers.append(peer)
    await asyncio.wait_for(finished, 600)
    rate = jobs / (time.monotonic() - started)
    for peer in peers:
        peer.close()
    return rate


async def idle_connections(port: int, count: int) -> tuple[list[Peer], float, int]:
    started = time.monotonic()
    peers: list[Peer] = []
    sem = asyncio.Semaphore(256)

    async def one() -> None:
        async with sem:
            try:
                peers.append(await asyncio.wait_for(connect(port), 10))
            except (OSError, asyncio.TimeoutError):
                pass

    try:
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), 120)
    except asyncio.TimeoutError:
        pass
    connect_time = time.monotonic() - started
    answered = 0
    loop = asyncio.get_running_loop()
    all_done: asyncio.Future[None] = loop.create_future()

    def on_frame(peer: Peer, ptype: int, data: bytes) -> None:
        nonlocal answered
        if ptype == C.STATUS_RES:
            answered += 1
            if answered == len(peers) and not all_done.done():
                all_done.set_result(None)

    probe = pkt(C.GET_STATUS, b"H:none:1")
    for peer in peers:
        peer.on_frame = on_frame
        peer.write(probe)
    try:
        await asyncio.wait_for(all_done, 60)
    except asyncio.TimeoutError:
        pass
    return peers, connect_time, answered


# --------------------------------------------------------------------------
# driver


@dataclass
class Result:
    values: dict[str, float | str] = field(default_factory=dict)


async def http_get(port: int, path: str) -> int:
    """One GET over a fresh connection, as a scraper or a browser's fetch does; bytes read."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path, HOST, port)).encode())
    body = await reader.read()
    writer.close()
    if not body.startswith(b"HTTP/1.1 200 "):
        raise SystemExit("GET %s: %r" % (path, body[:80]))
    return len(body)


async def observe(server: ServerProcess) -> None:
    """Fetch the server's HTTP paths once a second until cancelled."""
    if server.poll == ("/api/status",):
        await http_get(server.http_port, "/")
    while True:
        for path in server.poll:
            await http_get(server.http_port, path)
        await asyncio.sleep(1.0)


async def foreground_observed(server: ServerProcess, seconds: float) -> float:
    observer = asyncio.ensure_future(observe(server)) if server.poll else None
    try:
        return await foreground(server.port, seconds)
    finally:
        if observer is not None:
            observer.cancel()
            try:
                await observer
            except asyncio.CancelledError:
                pass


async def guard(coro: Any, timeout: float) -> Any:
    """A scenario that stalls (gear 0.16 can) is reported, not fatal."""
    try:
        return await asyncio.wait_for(coro, timeout)
    except (asyncio.TimeoutError, OSError) as e:
        print("  scenario failed: %r" % (e,), file=sys.stderr, flush=True)
        return "stalled"


def per_cpu(rate: Any, wall: float, cpu: float) -> Any:
    return rate * wall / max(cpu, 1e-6) if isinstance(rate, float) else "-"


async def run_server(server: ServerProcess, args: argparse.Namespace) -> Result:
    result = Result()
    r = result.values
    limit = args.duration * 4 + 60
    queued = args.queued

    server.start()
    try:
        cpu0, started = server.cpu(), time.monotonic()
        r["fg jobs/s"] = await guard(foreground_observed(server, args.duration), limit)
        cpu, wall = server.cpu() - cpu0, time.monotonic() - started
        r["fg jobs/server-CPU-s"] = per_cpu(r["fg jobs/s"], wall, cpu)
        # The sleeping-worker shape: 16 workers that GRAB_JOB_UNIQ, PRE_SLEEP on
        # NO_JOB and wait for NOOP; 4 clients with 32 jobs each in flight.
        cpu0, started = server.cpu(), time.monotonic()
        r["sleep fg jobs/s"] = await guard(
            foreground(server.port, args.duration, clients=4, workers=16, inflight=32), limit
        )
        cpu, wall = server.cpu() - cpu0, time.monotonic() - started
        r["sleep fg jobs/server-CPU-s"] = per_cpu(r["sleep fg jobs/s"], wall, cpu)
        cpu0, started = server.cpu(), time.monotonic()
        r["sleep bg submit jobs/s"] = await guard(
            sleepers_background(server.port, args.duration), limit
        )
        cpu, wall = server.cpu() - cpu0, time.monotonic() - started
        r["sleep bg submit jobs/server-CPU-s"] = per_cpu(r["sleep bg submit jobs/s"], wall, cpu)
        cpu0 = server.cpu()
        latency = await guard(serial_latency(server.port, args.latency_jobs), 300)
        p50, p99 = latency if isinstance(latency, tuple) else ("stalled", "stalled")
        r["serial p50 us"], r["serial p99 us"] = p50, p99
        if isinstance(latency, tuple):
            jobs = args.latency_jobs + 100  # serial_latency warms up with 100 more
            r["serial server CPU-us/job"] = (server.cpu() - cpu0) * 1e6 / jobs
    finally:
        server.stop()
    if args.fg_only:
        return result

    server.start()
    try:
        rss0, cpu0 = server.rss(), server.cpu()
        r["bg enqueue jobs/s"] = await guard(enqueue(server.port, queued), 300)
        r["bg enqueue server CPU-s"] = server.cpu() - cpu0
        r["bytes/queued job"] = (server.rss() - rss0) / queued
        if isinstance(r["bg enqueue jobs/s"], float):
            key = "bg drain jobs/s (%dk queued)" % (queued // 1000)
            cpu0, started = server.cpu(), time.monotonic()
            r[key] = await guard(drain(server.port, queued), 600)
            cpu, wall = server.cpu() - cpu0, time.monotonic() - started
            r["bg drain jobs/server-CPU-s (%dk)" % (queued // 1000)] = per_cpu(r[key], wall, cpu)
            small = queued // 10
            if isinstance(await guard(enqueue(server.port, small), 300), float):
                key = "bg drain jobs/s (%dk queued)" % (small // 1000)
                r[key] = await guard(drain(server.port, small), 300)
    finally:
        server.stop()

    if args.idle:
        server.start()
        try:
            peers, connect_time, answered = await idle_connections(server.port, args.idle)
            r["idle: connect s"] = connect_time
            r["idle: answered"] = "%d/%d" % (answered, args.idle)
            cpu0, started = server.cpu(), time.monotonic()
            r["fg jobs/s with idle"] = await guard(foreground(server.port, args.duration), limit)
            cpu, wall = server.cpu() - cpu0, time.monotonic() - started
            r["fg jobs/server-CPU-s with idle"] = per_cpu(r["fg jobs/s with idle"], wall, cpu)
            plain, idle = r["fg jobs/s"], r["fg jobs/s with idle"]
            if isinstance(plain, float) and isinstance(idle, float) and plain:
                r["fg with idle / without"] = idle / plain
            for peer in peers:
                peer.close()
        finally:
            server.stop()
    return result


def median_of(values: list[float | str | None]) -> float | str:
    """Median of the rounds' numbers; for a text cell, the worst round's."""
    numbers = [v for v in values if isinstance(v, float)]
    if numbers:
        return statistics.median(numbers)
    texts = [v for v in values if isinstance(v, str)]
    return (
        min(texts, key=lambda t: float(t.split("/")[0]) if t[0].isdigit() else 0.0)
        if texts
        else "-"
    )


def fmt(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        value = float(value)
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--servers",
        default="geard-compiled,geard-pure,gearmand",
        help="comma-separated: geard-compiled (mypyc wheels, default loop: uvloop), geard-pure"
        " (pure Python, --loop asyncio), geard (this environment, default loop), geard-uvloop,"
        " gearmand, gear016, floor, floor-uvloop, geard-base, geard+metrics, geard+dashboard",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout whose geard runs as geard-base (added to --servers)",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput run")
    parser.add_argument("--latency-jobs", type=int, default=1000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--idle", type=int, default=5000, help="idle connections (0 to skip)")
    parser.add_argument(
        "--fg-only",
        action="store_true",
        help="only the foreground and latency runs (for geard+metrics, geard+dashboard)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every server in turn; medians are shown"
    )
    args = parser.parse_args()
    gc.set_threshold(100_000, 50, 1000)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    names = args.servers.split(",")
    if args.baseline is not None and "geard-base" not in names:
        names.append("geard-base")
    load_before = os.getloadavg()
    rounds: dict[str, list[Result]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = make_servers(names, Path(tmp), args.baseline)
        # Every server once per round, in turn: a slow spell of a shared
        # machine then hits all of them, and medians of paired ratios hold.
        for number in range(1, args.rounds + 1):
            for server in servers:
                print(
                    "round %d/%d: %s ..." % (number, args.rounds, server.name),
                    file=sys.stderr,
                    flush=True,
                )
                rounds.setdefault(server.name, []).append(asyncio.run(run_server(server, args)))

    columns = list(rounds)
    rows = list(rounds[columns[0]][0].values)
    mine = [c for c in columns if c.startswith(("geard", "py floor"))]
    others = [c for c in columns if c not in mine]
    header = ["metric", *columns] + ["%s/%s" % (m, o.split()[0]) for m in mine for o in others]
    lines = [header]
    for row in rows:
        line = [row] + [fmt(median_of([r.values.get(row) for r in rounds[c]])) for c in columns]
        for m in mine:
            for other in others:
                paired = [
                    a / b
                    for a, b in zip(
                        [r.values.get(row) for r in rounds[m]],
                        [r.values.get(row) for r in rounds[other]],
                        strict=True,
                    )
                    if isinstance(a, float) and isinstance(b, float) and b
                ]
                line.append("%.2fx" % statistics.median(paired) if paired else "-")
        lines.append(line)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append(
            "| " + " | ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=False)) + " |"
        )
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("\n".join(out))
    for name in [c for c in columns if c in POLLERS and "geard" in rounds]:
        for row in ("fg jobs/s", "fg jobs/server-CPU-s"):
            paired = [
                a.values[row] / b.values[row]
                for a, b in zip(rounds[name], rounds["geard"], strict=True)
                if isinstance(a.values[row], float) and isinstance(b.values[row], float)
            ]
            print(
                "\n%s, %s / geard: %.3fx (median of the rounds' ratios: %s)"
                % (row, name, statistics.median(paired), ", ".join("%.3f" % r for r in paired))
            )
    print(
        "\n%s, %d CPUs, python %s; fg: 16 clients x 8 in flight, 16 workers; sleep fg: "
        "4 clients x 32 in flight, 16 sleeping workers; %.0fs each; %d rounds: medians, and "
        "ratios are medians of the ratios within each round "
        "(ours / peer; for latency, bytes and CPU-s lower is better); "
        "load average %.2f before, %.2f after"
        % (
            os.uname().sysname,
            os.cpu_count() or 0,
            sys.version.split()[0],
            args.duration,
            args.rounds,
            load_before[0],
            os.getloadavg()[0],
        )
    )


if __name__ == "__main__":
    main()
