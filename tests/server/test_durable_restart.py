"""geard with ``--queue-file`` survives ``kill -9``: every acknowledged job runs once.

Each test runs the real ``geard`` program in a subprocess on 127.0.0.1 and
kills it with SIGKILL, so nothing but what was committed to the SQLite
file can survive. Job payloads are unique ids, so draining checks that no
job is missing and none is duplicated.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.geard import GEARD, RawGearman, spawn_geard
from fixtures.servers import free_port
from gear import constants as C
from gear.codec import encode_packet

FUNC = b"durable"

WORKER_SCRIPT = r"""
import socket, struct, sys, time
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def packet(ptype, data=b""):
    return b"\0REQ" + struct.pack("!II", ptype, len(data)) + data
sock.sendall(packet(1, b"durable") + packet(30))  # CAN_DO, GRAB_JOB_UNIQ
buf = b""
while len(buf) < 12 or len(buf) < 12 + struct.unpack("!I", buf[8:12])[0]:
    chunk = sock.recv(65536)
    if not chunk:
        sys.exit(2)
    buf += chunk
print("GOT", buf[12:].split(b"\0")[0].decode(), flush=True)
time.sleep(60)
"""


class Geard:
    """A geard subprocess on a fixed port and queue file; restartable."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = free_port()
        self.queue = tmp_path / "queue.db"
        self.log = tmp_path / "geard.log"
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc, _ = spawn_geard(
                "--queue-file",
                str(self.queue),
                *self.args,
                port=self.port,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def geard(tmp_path: Path) -> Iterator[Geard]:
    server = Geard(tmp_path)
    yield server
    server.stop()


def submit_all(
    port: int, ids: range, window: int = 100, acked: list[bytes] | None = None
) -> list[bytes]:
    """Submit one background job per id, pipelined; return the ids acknowledged.

    Each id is appended to ``acked`` as its JOB_CREATED arrives, so a caller
    whose server dies mid-burst still knows which jobs were acknowledged.
    """
    acked = [] if acked is None else acked
    with RawGearman(port) as c:
        for start in range(ids.start, ids.stop, window):
            chunk = range(start, min(start + window, ids.stop))
            c.send_raw(
                b"".join(encode_packet(C.REQ, C.SUBMIT_JOB_BG, FUNC + b"\0\0%d" % i) for i in chunk)
            )
            for i in chunk:
                c.expect(C.JOB_CREATED)
                acked.append(b"%d" % i)
    return acked


def drain(port: int, expect: int, timeout: float = 30) -> list[bytes]:
    """Run every queued job once with a raw worker; return their payloads."""
    seen: list[bytes] = []
    deadline = time.monotonic() + timeout
    with RawGearman(port) as w:
        w.send(C.CAN_DO, FUNC)
        idle = 0
        while idle < 3 or len(seen) < expect:
            assert time.monotonic() < deadline, "drained %d of %d" % (len(seen), expect)
            w.send(C.GRAB_JOB_UNIQ)
            ptype, data = w.recv()
            if ptype == C.NO_JOB:
                idle += 1
                time.sleep(0.01 if len(seen) < expect else 0)
                continue
            assert ptype == C.JOB_ASSIGN_UNIQ
            handle, _, _, payload = data.split(b"\0", 3)
            seen.append(payload)
            w.send(C.WORK_COMPLETE, handle + b"\0")
    return seen


def queued(admin: RawGearman) -> int:
    for line in admin.admin("status").splitlines():
        fields = line.split(b"\t")
        if fields[0] == FUNC:
            return int(fields[1])
    return 0


def test_kill9_restart_every_job_exactly_once(geard: Geard) -> None:
    n = 3000
    geard.start()
    acked = submit_all(geard.port, range(n))
    assert len(acked) == n
    geard.kill9()
    geard.start()
    seen = drain(geard.port, n)
    assert sorted(seen) == sorted(acked)
    assert len(set(seen)) == len(seen)
    # Completed jobs are gone for good: another crash and restart finds none.
    geard.kill9()
    geard.start()
    assert drain(geard.port, 0) == []


def test_kill9_during_submit_burst_keeps_every_acknowledged_job(geard: Geard) -> None:
    geard.start()
    acked: list[bytes] = []
    errors: list[BaseException] = []

    def burst() -> None:
        try:
            submit_all(geard.port, range(1_000_000), window=50, acked=acked)
        except (EOFError, OSError, TimeoutError):
            pass  # the server died under us: expected
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    thread = threading.Thread(target=burst)
    thread.start()
    deadline = time.monotonic() + 20
    with RawGearman(geard.port) as admin:
        while queued(admin) < 1500:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    geard.kill9()
    thread.join(30)
    assert not thread.is_alive() and not errors
    geard.start()
    seen = drain(geard.port, len(acked))
    assert len(set(seen)) == len(seen), "a job ran twice"
    assert set(acked) <= set(seen), "acknowledged jobs lost: %d" % len(set(acked) - set(seen))
    # Anything beyond the acknowledged ones was committed but its reply lost.
    assert len(seen) - len(acked) <= 50
    assert len(acked) >= 1000


def test_worker_killed_mid_job_is_retried_on_another_worker(geard: Geard) -> None:
    geard.start()
    acked = submit_all(geard.port, range(1))
    doomed = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, str(geard.port)],
        stdout=subprocess.PIPE,
    )
    try:
        assert doomed.stdout is not None
        line = doomed.stdout.readline()
        assert line.startswith(b"GOT H:"), line
    finally:
        doomed.kill()
        doomed.wait(10)
    assert drain(geard.port, 1) == acked


def test_attempts_limit_fails_and_logs(tmp_path: Path) -> None:
    geard = Geard(tmp_path, "--job-retries", "1")
    try:
        geard.start()
        submit_all(geard.port, range(1))
        for attempt in range(2):
            doomed = subprocess.Popen(
                [sys.executable, "-c", WORKER_SCRIPT, str(geard.port)],
                stdout=subprocess.PIPE,
            )
            assert doomed.stdout is not None
            assert doomed.stdout.readline().startswith(b"GOT H:")
            doomed.kill()
            doomed.wait(10)
            if attempt == 0:  # the retry count is durable: crash between attempts
                with RawGearman(geard.port) as admin:
                    deadline = time.monotonic() + 5
                    while b"\t1\t0\t1\n" not in admin.admin("show jobs"):
                        assert time.monotonic() < deadline
                        time.sleep(0.01)
                geard.kill9()
                geard.start()
        # An admin reply is written only after the store commit of its turn,
        # so once "show jobs" no longer lists the job its removal is on disk.
        with RawGearman(geard.port) as admin:
            deadline = time.monotonic() + 10
            while admin.admin("show jobs") != b".\n":
                assert time.monotonic() < deadline
                time.sleep(0.01)
        deadline = time.monotonic() + 10
        while b"worker disconnected 2 times" not in geard.log.read_bytes():
            assert time.monotonic() < deadline, geard.log.read_text()
            time.sleep(0.02)
        geard.kill9()
        geard.start()
        assert drain(geard.port, 0) == []
    finally:
        geard.stop()


@pytest.mark.parametrize("content", [b"not a database" * 100, b""])
def test_corrupt_queue_file_geard_refuses_to_start(tmp_path: Path, content: bytes) -> None:
    queue = tmp_path / "queue.db"
    if content:
        queue.write_bytes(content)
    else:
        queue.mkdir()
    out = subprocess.run(
        [
            *GEARD,
            "-d",
            "-p",
            str(free_port()),
            "--listen-address",
            "127.0.0.1",
            *("--queue-file", str(queue)),
        ],
        capture_output=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert b"queue file" in out.stderr and str(queue).encode() in out.stderr, out.stderr


def test_sigterm_lets_running_job_finish_and_keeps_queue(geard: Geard) -> None:
    geard.start()
    acked = submit_all(geard.port, range(3))
    with RawGearman(geard.port) as w:
        w.send(C.CAN_DO, FUNC)
        w.send(C.GRAB_JOB_UNIQ)
        handle, _, _, payload = w.expect(C.JOB_ASSIGN_UNIQ).split(b"\0", 3)
        assert geard.proc is not None
        geard.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert geard.proc.poll() is None, "exited with a job still running"
        w.send(C.WORK_COMPLETE, handle + b"\0")
        assert geard.proc.wait(10) == 0
    assert b"gracefully" in geard.log.read_bytes()
    geard.start()
    assert sorted(drain(geard.port, 2)) == sorted(set(acked) - {payload})


def test_queue_file_is_not_shared(geard: Geard) -> None:
    geard.start()
    out = subprocess.run(
        [
            *GEARD,
            "-d",
            "-p",
            str(free_port()),
            "--listen-address",
            "127.0.0.1",
            *("--queue-file", str(geard.queue)),
        ],
        capture_output=True,
        timeout=30,
        env={**os.environ},
    )
    assert out.returncode != 0 and b"locked" in out.stderr


def old_geard_row(handle: bytes, name: bytes, unique: bytes | None, arguments: bytes) -> bytes:
    """A ``jobs.job`` blob as geard writes it (schema 2), made here by hand the way
    an older geard with laxer rules on names and unique ids would have written it."""
    fields = struct.pack(
        "<BidIII",
        1 if unique is None else 0,  # flags: no unique id; not scheduled
        C.PRECEDENCE_NORMAL,
        0.0,
        len(handle),
        len(name),
        len(unique or b""),
    )
    return fields + handle + name + (unique or b"") + arguments


def test_queue_file_rows_refused_today_are_kept_run_and_listed_escaped(geard: Geard) -> None:
    """Rows an older geard let in (control bytes, 'ERR ', a unique id '.'): geard
    starts, keeps them, says so once each, and no listing prints a forged line."""
    geard.start()
    (good,) = submit_all(geard.port, range(1))
    geard.stop()
    forged = b"durable\n.\nERR evil"
    rows = [
        (b"H:old:1", forged, None, b"p1"),
        (b"H:old:2", FUNC, b".", b"p2"),
        (b"H:old:3", FUNC, b"ERR \x1b[2J", b"p3"),
    ]
    db = sqlite3.connect(geard.queue)
    with db:
        (last,) = db.execute("SELECT max(seq) FROM jobs").fetchone()
        db.executemany(
            "INSERT INTO jobs (seq, attempts, job) VALUES (?, 0, ?)",
            [(last + i, old_geard_row(*row)) for i, row in enumerate(rows, 1)],
        )
    db.close()
    geard.start()
    with RawGearman(geard.port) as admin, RawGearman(geard.port) as worker:
        # The first reply comes after the restore: its log lines are written by then.
        assert admin.admin("status") == (
            b"durable\t3\t0\t0\ndurable\\x0a.\\x0aERR evil\t1\t0\t0\n.\n"
        )
        log = geard.log.read_text()
        for handle, why, shown in (
            ("H:old:1", "function name contains a control character", r"durable\x0a.\x0aERR evil"),
            ("H:old:2", "unique id '.' would end the show unique jobs listing", r"\x2e"),
            ("H:old:3", "unique id contains a control character", r"\x45RR \x1b[2J"),
        ):
            line = "Queue store %s: kept job %s though a peer could not queue it today: %s; " % (
                geard.queue,
                handle,
                why,
            )
            assert line + "listings print it as " + shown + "\n" in log, log
        assert "Restored 4 background jobs" in log
        assert admin.admin("show unique jobs") == b"\\x2e\n\\x45RR \\x1b[2J\n.\n"
        assert len(admin.admin("show jobs").splitlines()) == 5  # four jobs and the end
        worker.send(C.CAN_DO, forged)
        worker.sync()
        assert admin.admin("workers").endswith(b" : durable\\x0a.\\x0aERR evil\n.\n")
        assert worker.grab() == [b"H:old:1", forged, b"", b"p1"]
        worker.send(C.WORK_COMPLETE, b"H:old:1\0")
        worker.sync()
    assert sorted(drain(geard.port, 3)) == sorted([good, b"p2", b"p3"])
