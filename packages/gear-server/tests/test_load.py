"""Volume and failure: many clients and workers, and a worker killed mid-job."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from fixtures.geard import Geard, RawGearman
from gear import constants as C
from gear.codec import encode_packet

JOBS = 20_000
CLIENTS = 4
WORKERS = 4
BATCH = 500


def _client(port: int, index: int, handles: list[bytes]) -> None:
    per_client = JOBS // CLIENTS
    with RawGearman(port, timeout=30) as conn:
        for start in range(0, per_client, BATCH):
            payload = b"".join(
                encode_packet(C.REQ, C.SUBMIT_JOB_BG, b"load\0\0%d-%d" % (index, n))
                for n in range(start, min(start + BATCH, per_client))
            )
            conn.send_raw(payload)
            for _ in range(min(BATCH, per_client - start)):
                handles.append(conn.expect(C.JOB_CREATED))


def _worker(port: int, seen: list[bytes], conns: list[RawGearman]) -> None:
    with RawGearman(port, timeout=60) as conn:
        conns.append(conn)
        conn.send(C.CAN_DO, b"load")
        conn.send(C.GRAB_JOB_UNIQ)
        while True:
            try:
                ptype, data = conn.recv()
            except (EOFError, OSError):
                return
            if ptype == C.JOB_ASSIGN_UNIQ:
                handle, _, _, args = data.split(b"\0", 3)
                seen.append(args)
                conn.send_raw(
                    encode_packet(C.REQ, C.WORK_COMPLETE, handle + b"\0")
                    + encode_packet(C.REQ, C.GRAB_JOB_UNIQ)
                )
            elif ptype == C.NO_JOB:
                conn.send(C.PRE_SLEEP)
            elif ptype == C.NOOP:
                conn.send(C.GRAB_JOB_UNIQ)


def test_twenty_thousand_background_jobs(geard: Geard) -> None:
    handles: list[list[bytes]] = [[] for _ in range(CLIENTS)]
    seen: list[list[bytes]] = [[] for _ in range(WORKERS)]
    conns: list[RawGearman] = []
    workers = [
        threading.Thread(target=_worker, args=(geard.port, seen[i], conns)) for i in range(WORKERS)
    ]
    clients = [
        threading.Thread(target=_client, args=(geard.port, i, handles[i])) for i in range(CLIENTS)
    ]
    started = time.monotonic()
    for thread in workers + clients:
        thread.start()
    for thread in clients:
        thread.join(60)
    deadline = time.monotonic() + 60
    while sum(map(len, seen)) < JOBS and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    for conn in conns:
        conn.sock.shutdown(socket.SHUT_RDWR)
    for thread in workers:
        thread.join(30)
    all_handles = [h for hs in handles for h in hs]
    assert len(all_handles) == len(set(all_handles)) == JOBS
    ids = [arg for s in seen for arg in s]
    assert len(ids) == JOBS
    expected = {b"%d-%d" % (c, n) for c in range(CLIENTS) for n in range(JOBS // CLIENTS)}
    assert set(ids) == expected
    assert all(len(s) > 0 for s in seen), "every worker should have taken part"
    print("20k jobs in %.2fs" % elapsed)


WORKER_SCRIPT = r"""
import socket, struct, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
def send(t, d=b""):
    s.sendall(b"\0REQ" + struct.pack("!II", t, len(d)) + d)
send(1, b"slow")
send(30)
buf = b""
while len(buf) < 12 or len(buf) < 12 + struct.unpack("!I", buf[8:12])[0]:
    buf += s.recv(65536)
print("grabbed", flush=True)
sys.stdin.read()
"""


def test_worker_killed_mid_job_is_done_by_another(geard: Geard) -> None:
    doomed = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, str(geard.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        with RawGearman(geard.port) as client:
            client.send(C.SUBMIT_JOB, b"slow\0\0payload")
            handle = client.expect(C.JOB_CREATED)
            assert doomed.stdout is not None
            assert doomed.stdout.readline() == b"grabbed\n"
            assert client.admin("status") == b"slow\t1\t1\t1\n.\n"
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(10)
            with RawGearman(geard.port) as rescuer:
                rescuer.send(C.CAN_DO, b"slow")
                rescuer.send(C.PRE_SLEEP)
                assert rescuer.expect(C.NOOP, timeout=10) == b""
                rescuer.send(C.GRAB_JOB_UNIQ)
                assert rescuer.expect(C.JOB_ASSIGN_UNIQ) == handle + b"\0slow\0\0payload"
                rescuer.send(C.WORK_COMPLETE, handle + b"\0rescued")
                assert client.expect(C.WORK_COMPLETE) == handle + b"\0rescued"
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(10)
