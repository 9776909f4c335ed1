"""Benchmark AsyncClient + AsyncWorker against the threaded API and gear 0.16.0.

The ``async+json+hooks`` row is the same asyncio pair with what part 3
added on both sides: a decorated function with a timeout served by
``run()``, ``call()`` with a JSON codec (a 100-character string in a
dict), and hooks that count every event.

Run on demand (never by the test suite)::

    hatch run python bench/bench_async.py [--duration 5] [--in-flight 100]

One C ``gearmand -t 0`` on 127.0.0.1 serves every run. For each face a
worker process (one connection, ``--workers`` concurrent handlers: tasks for
asyncio, threads otherwise) answers ``echo`` jobs, and a client process (one
connection) keeps ``--in-flight`` foreground jobs outstanding (tasks for
asyncio, threads otherwise) and counts the jobs that finish during
``--duration`` seconds after a one-second warm-up. Client and worker are
separate processes so neither face's GIL slows the other. gear 0.16.0 is
installed from PyPI into its own venv, ``.venv-bench-gear016`` (shared with
the other benchmarks), and runs the same threaded code as ours; its client
has no ``job.wait``, so both threaded runs wake the waiting thread from a
``handleWorkComplete`` override. CPU is the client plus worker processes'
user+system seconds per job.

gear 0.16.0 never sets TCP_NODELAY, so its small packets wait on Nagle's
algorithm and delayed ACKs (about 40 ms per exchange on Linux). The
``gear016+nodelay`` row runs it again with TCP_NODELAY forced on every socket
it connects (a ``sitecustomize`` patch), to show the gap that is left once
that one setting is fixed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _support import HOST, cpu_seconds, free_port, gear016_python, wait_port

PAYLOAD = b"x" * 100


# -- worker and client processes (run with the interpreter of each face) -----


def run_async_worker(port: int, workers: int) -> None:
    import asyncio

    import gear

    async def echo(job: Any) -> bytes:
        return bytes(job.arguments)

    async def main() -> None:
        async with gear.AsyncWorker("bench-worker") as worker:
            worker.add_server(HOST, port)
            await worker.wait_for_server(10)
            print("ready", flush=True)
            await worker.serve({"echo": echo}, concurrency=workers)

    asyncio.run(main())


def run_async_client(port: int, in_flight: int, duration: float) -> None:
    import asyncio

    import gear

    async def main() -> None:
        async with gear.AsyncClient("bench-client") as client:
            client.add_server(HOST, port)
            await client.wait_for_server(10)
            loop = asyncio.get_running_loop()
            start = loop.time() + 1.0
            stop = start + duration
            done = 0

            async def one() -> None:
                nonlocal done
                while True:
                    job = await client.submit("echo", PAYLOAD)
                    if await job != PAYLOAD:
                        raise AssertionError("wrong result")
                    now = loop.time()
                    if now >= stop:
                        return
                    if now >= start:
                        done += 1

            await asyncio.gather(*[one() for _ in range(in_flight)])
            report(done, duration)

    asyncio.run(main())


class _Counting:
    """Hooks that count every event: the cost of hooks that do a little work."""

    def __init__(self) -> None:
        import gear

        class Counting(gear.Hooks):
            events = 0

            def on_job_start(self, job: Any) -> None:
                self.events += 1

            def on_submit(self, job: Any) -> None:
                self.events += 1

            def on_job_end(self, job: Any, outcome: Any, seconds: float) -> None:
                self.events += 1

        self.hooks = Counting()


def run_async_json_worker(port: int, workers: int) -> None:
    """The asyncio worker with part 3's pieces: a decorated function, JSON, hooks."""
    import asyncio

    import gear

    worker = gear.AsyncWorker(
        "bench-worker", [(HOST, port)], codec=gear.JSONCodec(), hooks=_Counting().hooks
    )

    @worker.function("echo", timeout=30)
    async def echo(payload: Any) -> Any:
        return payload

    async def main() -> None:
        async with worker:
            print("ready", flush=True)
            await worker.run(concurrency=workers, signals=())

    asyncio.run(main())


def run_async_json_client(port: int, in_flight: int, duration: float) -> None:
    import asyncio

    import gear

    text = PAYLOAD.decode()

    async def main() -> None:
        client = gear.AsyncClient(
            "bench-client", [(HOST, port)], codec=gear.JSONCodec(), hooks=_Counting().hooks
        )
        async with client:
            loop = asyncio.get_running_loop()
            start = loop.time() + 1.0
            stop = start + duration
            done = 0

            async def one() -> None:
                nonlocal done
                while True:
                    if await client.call("echo", {"data": text}) != {"data": text}:
                        raise AssertionError("wrong result")
                    now = loop.time()
                    if now >= stop:
                        return
                    if now >= start:
                        done += 1

            await asyncio.gather(*[one() for _ in range(in_flight)])
            report(done, duration)

    asyncio.run(main())


def run_threaded_worker(port: int, workers: int) -> None:
    import threading

    import gear

    worker = gear.Worker("bench-worker")
    worker.registerFunction("echo")
    worker.addServer(HOST, port)
    worker.waitForServer()

    def loop() -> None:
        while True:
            job = worker.getJob()
            job.sendWorkComplete(job.arguments)

    for _ in range(workers):
        threading.Thread(target=loop, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def run_threaded_client(port: int, in_flight: int, duration: float) -> None:
    import threading

    import gear

    class Client(gear.Client):  # type: ignore[misc]
        def handleWorkComplete(self, packet: Any) -> Any:
            job = super().handleWorkComplete(packet)
            job.finished.set()
            return job

    client = Client("bench-client")
    client.addServer(HOST, port)
    client.waitForServer()
    start = time.monotonic() + 1.0
    stop = start + duration
    counts = [0] * in_flight

    def loop(index: int) -> None:
        while True:
            job = gear.Job("echo", PAYLOAD)
            job.finished = threading.Event()
            client.submitJob(job)
            job.finished.wait()
            if b"".join(job.data) != PAYLOAD:
                raise AssertionError("wrong result")
            now = time.monotonic()
            if now >= stop:
                return
            if now >= start:
                counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(in_flight)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report(sum(counts), duration)
    os._exit(0)


def report(done: int, duration: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("result %d %.6f %.4f" % (done, duration, usage.ru_utime + usage.ru_stime), flush=True)


# -- driver -------------------------------------------------------------------


NODELAY_PATCH = """
import socket
_connect = socket.socket.connect
def connect(self, address):
    result = _connect(self, address)
    if self.family in (socket.AF_INET, socket.AF_INET6):
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return result
socket.socket.connect = connect
"""


def measure(
    face: str, python: str, port: int, args: argparse.Namespace, pythonpath: str | None = None
) -> tuple[float, float]:
    script = str(Path(__file__).resolve())
    common = ["--port", str(port), "--face", face]
    env = dict(os.environ, PYTHONPATH=pythonpath or "") if face == "gear016" else None
    worker = subprocess.Popen(
        [python, script, "--role", "worker", "--workers", str(args.workers), *common],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    try:
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError("%s worker did not start" % face)
        worker_cpu0 = cpu_seconds(worker.pid)
        client = subprocess.run(
            [python, script, "--role", "client", "--in-flight", str(args.in_flight),
             "--duration", str(args.duration), *common],
            capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), timeout=120,
        )  # fmt: skip
        worker_cpu = cpu_seconds(worker.pid) - worker_cpu0
    finally:
        worker.kill()
        worker.wait()
    lines = [line for line in client.stdout.splitlines() if line.startswith("result ")]
    if client.returncode != 0 or not lines:
        raise RuntimeError("%s client failed:\n%s" % (face, client.stderr[-2000:]))
    _, done, duration, client_cpu = lines[-1].split()
    jobs = int(done)
    rate = jobs / float(duration)
    # Client CPU includes its one-second warm-up; scale it to the measured window.
    total = float(duration) + 1.0
    cpu = float(client_cpu) * float(duration) / total + worker_cpu * float(duration) / total
    return rate, cpu / max(jobs, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--workers", type=int, default=10, help="concurrent worker handlers")
    parser.add_argument("--role", choices=["worker", "client"])
    parser.add_argument("--face", choices=["async", "async-json", "threaded", "gear016"])
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.role == "worker":
        if args.face == "async":
            run_async_worker(args.port, args.workers)
        elif args.face == "async-json":
            run_async_json_worker(args.port, args.workers)
        else:
            run_threaded_worker(args.port, args.workers)
        return
    if args.role == "client":
        if args.face == "async":
            run_async_client(args.port, args.in_flight, args.duration)
        elif args.face == "async-json":
            run_async_json_client(args.port, args.in_flight, args.duration)
        else:
            run_threaded_client(args.port, args.in_flight, args.duration)
        return

    gearmand = shutil.which("gearmand") or "/usr/sbin/gearmand"
    port = free_port()
    server = subprocess.Popen(
        [gearmand, "-L", HOST, "-p", str(port), "-t", "0", "--log-file=none", "--verbose=ERROR"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        gear016 = str(gear016_python())
        patch_dir = tempfile.mkdtemp(prefix="gear016-nodelay-")
        Path(patch_dir, "sitecustomize.py").write_text(NODELAY_PATCH)
        faces = [
            ("async", "async", sys.executable, None),
            ("async+json+hooks", "async-json", sys.executable, None),
            ("threaded", "threaded", sys.executable, None),
            ("gear016", "gear016", gear016, None),
            ("gear016+nodelay", "gear016", gear016, patch_dir),
        ]
        print(
            "foreground echo jobs through gearmand -t 0, %d in flight, %d worker handlers, "
            "%.0f s each" % (args.in_flight, args.workers, args.duration)
        )
        results: dict[str, float] = {}
        for label, face, python, pythonpath in faces:
            rate, cpu = measure(face, python, port, args, pythonpath)
            results[label] = rate
            print("%-16s %9.0f jobs/s  %7.1f us CPU/job" % (label, rate, cpu * 1e6), flush=True)
        ratios = [
            ("async", "gear016"),
            ("async", "gear016+nodelay"),
            ("async", "threaded"),
            ("async+json+hooks", "async"),
            ("threaded", "gear016"),
        ]
        for top, bottom in ratios:
            print("%s / %s: %.2fx" % (top, bottom, results[top] / results[bottom]))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
