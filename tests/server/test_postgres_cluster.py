"""geard nodes sharing one PostgreSQL database (``--queue-url``): the guarantees.

Every test runs real ``geard`` processes on 127.0.0.1 against a real
PostgreSQL (:mod:`fixtures.postgres`, a fresh database per test) with a
2-second lease, kills them with SIGKILL or freezes them with SIGSTOP, and
counts what the survivors hand to raw workers: job payloads are unique
numbers, so lost and duplicated jobs are counted exactly.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from fixtures.geard import GEARD, RawGearman, spawn_geard
from fixtures.postgres import PostgresServer
from fixtures.servers import free_port
from gear import constants as C
from gear.codec import encode_packet

FUNC = b"clustered"
LEASE = "2"


class Node:
    """One geard process of the cluster; its log in ``tmp_path``."""

    def __init__(self, tmp_path: Path, url: str, name: str, *extra: str) -> None:
        self.name = name
        self.log = tmp_path / ("%s.log" % name)
        with open(self.log, "ab") as log:
            self.proc, self.port = spawn_geard(
                *("--queue-url", url, "--node-id", name, "--node-lease", LEASE, *extra),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def admin(self, command: str) -> bytes:
        with RawGearman(self.port) as admin:
            return admin.admin(command)


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[list[Node]]:
    nodes: list[Node] = []
    yield nodes
    for node in nodes:
        node.stop()


def start(nodes: list[Node], tmp_path: Path, url: str, count: int) -> list[Node]:
    for _ in range(count):
        nodes.append(Node(tmp_path, url, "node%d" % (len(nodes) + 1)))
    return nodes


def submit(port: int, ids: range, unique: bytes = b"", window: int = 200) -> list[bytes]:
    """Submit one background job per id, pipelined; return the ids acknowledged."""
    acked: list[bytes] = []
    with RawGearman(port) as c:
        for first in range(ids.start, ids.stop, window):
            chunk = range(first, min(first + window, ids.stop))
            c.send_raw(
                b"".join(
                    encode_packet(C.REQ, C.SUBMIT_JOB_BG, FUNC + b"\0" + unique + b"\0%d" % i)
                    for i in chunk
                )
            )
            for i in chunk:
                c.expect(C.JOB_CREATED)
                acked.append(b"%d" % i)
    return acked


class Drainer:
    """A raw worker on every given node that completes jobs until told to stop."""

    def __init__(self, ports: list[int], per_node: int = 4) -> None:
        self.ports = ports
        self.seen: list[bytes] = []
        self.first_at: float | None = None
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(p,)) for p in ports for _ in range(per_node)
        ]
        for t in self._threads:
            t.start()

    def _run(self, port: int) -> None:
        with RawGearman(port) as w:
            w.send(C.CAN_DO, FUNC)
            w.send(C.GRAB_JOB_UNIQ)
            while not self._stop.is_set():
                ptype, data = w.recv()
                if ptype == C.NO_JOB:
                    time.sleep(0.02)
                    w.send(C.GRAB_JOB_UNIQ)
                    continue
                assert ptype == C.JOB_ASSIGN_UNIQ, ptype
                handle, _, _, payload = data.split(b"\0", 3)
                if self.first_at is None:
                    self.first_at = time.monotonic()
                self.seen.append(payload)
                w.send_raw(  # the result and the next grab in one write
                    encode_packet(C.REQ, C.WORK_COMPLETE, handle + b"\0")
                    + encode_packet(C.REQ, C.GRAB_JOB_UNIQ)
                )

    def until(self, count: int, timeout: float = 30) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        # Done only when no node holds a job of ours: a duplicate would be there.
        for port in self.ports:
            with RawGearman(port) as admin:
                while any(
                    line.split(b"\t")[0] == FUNC and line.split(b"\t")[1] != b"0"
                    for line in admin.admin("status").splitlines()
                ):
                    assert time.monotonic() < deadline, "jobs left on port %d" % port
                    time.sleep(0.02)
        self.close()
        return self.seen

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def hold_running(port: int, count: int) -> tuple[RawGearman, list[bytes]]:
    """A worker that takes ``count`` jobs and never finishes them."""
    w = RawGearman(port)
    w.send(C.CAN_DO, FUNC)
    taken: list[bytes] = []
    for _ in range(count):
        w.send(C.GRAB_JOB_UNIQ)
        taken.append(w.expect(C.JOB_ASSIGN_UNIQ).split(b"\0", 3)[3])
    return w, taken


def wait_log(node: Node, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while text not in node.log_text():
        assert time.monotonic() < deadline, "no %r in the log of %s:\n%s" % (
            text,
            node.name,
            node.log_text(),
        )
        time.sleep(0.05)


def test_kill9_of_a_node_survivors_drain_everything(
    cluster: list[Node], tmp_path: Path, pg_url: str
) -> None:
    victim, *survivors = start(cluster, tmp_path, pg_url, 3)
    acked = submit(victim.port, range(3000))
    acked += submit(survivors[0].port, range(3000, 3500))
    acked += submit(survivors[1].port, range(3500, 4000))
    worker, running = hold_running(victim.port, 50)
    # Handles are unique across the cluster: each names its node and epoch.
    assert b"node1." in victim.admin("show jobs")
    # The last node to start saw the other two when it registered.
    view = survivors[1].admin("cluster")
    assert view.count(b"\nnode\t") == 3, view
    assert b"node\tnode1\tepoch\t" in view and b"node\tnode2\tepoch\t" in view
    victim.kill9()
    killed = time.monotonic()
    worker.close()
    drainer = Drainer([s.port for s in survivors])
    seen = drainer.until(len(acked))
    counts = Counter(seen)
    lost = set(acked) - set(counts)
    duplicated = {p for p, n in counts.items() if n > 1}
    assert not lost, "%d acknowledged jobs lost" % len(lost)
    assert duplicated <= set(running), "jobs run twice that were not running on the dead node"
    assert all(n <= 2 for n in counts.values())
    assert set(counts) == set(acked)
    # The adoption shows on the survivors and the dead node is gone from the view.
    assert drainer.first_at is not None
    adopted_by = [s for s in survivors if "adopted" in s.log_text()]
    assert len(adopted_by) == 1, "exactly one survivor adopts the dead node's jobs"
    view = adopted_by[0].admin("cluster")
    assert b"node\tnode1\t" not in view
    # Failover is timed by bench/bench_cluster.py; here only a loose bound.
    assert time.monotonic() - killed < 30


def test_job_created_means_committed_for_every_node(
    cluster: list[Node], tmp_path: Path, pg_url: str
) -> None:
    # A burst to one node, killed while it is still submitting: every job it
    # acknowledged is run by the other node, none twice.
    victim, survivor = start(cluster, tmp_path, pg_url, 2)
    acked: list[bytes] = []

    def burst() -> None:
        try:
            with RawGearman(victim.port) as c:
                for first in range(0, 1_000_000, 50):
                    c.send_raw(
                        b"".join(
                            encode_packet(C.REQ, C.SUBMIT_JOB_BG, FUNC + b"\0\0%d" % i)
                            for i in range(first, first + 50)
                        )
                    )
                    for i in range(first, first + 50):
                        c.expect(C.JOB_CREATED)
                        acked.append(b"%d" % i)
        except (EOFError, OSError, TimeoutError):
            pass  # the node died under us

    thread = threading.Thread(target=burst)
    thread.start()
    deadline = time.monotonic() + 20
    while len(acked) < 2000:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    victim.kill9()
    thread.join(30)
    assert not thread.is_alive()
    seen = Drainer([survivor.port]).until(len(acked))
    assert set(acked) <= set(seen), "acknowledged jobs lost: %d" % len(set(acked) - set(seen))
    assert len(seen) == len(set(seen)), "a job ran twice"
    assert len(seen) - len(acked) <= 50  # committed, but the reply died with the node


def test_unique_ids_coalesce_across_nodes_and_empty_ones_never(
    cluster: list[Node], tmp_path: Path, pg_url: str
) -> None:
    a, b = start(cluster, tmp_path, pg_url, 2)
    submit(a.port, range(1), unique=b"report-42")
    submit(b.port, range(1, 2), unique=b"report-42")  # another node: same job
    submit(a.port, range(2, 3), unique=b"report-42")
    submit(a.port, range(10, 13))  # empty unique ids: three jobs per node
    submit(b.port, range(20, 23))
    seen = Drainer([a.port, b.port]).until(7)
    assert sorted(seen) == sorted([b"0", b"10", b"11", b"12", b"20", b"21", b"22"])


def test_node_back_after_its_lease_runs_nothing_adopted(
    cluster: list[Node], tmp_path: Path, pg_url: str
) -> None:
    frozen, other = start(cluster, tmp_path, pg_url, 2)
    acked = submit(frozen.port, range(200))
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        wait_log(other, "adopted 200 jobs")
        # A worker already waiting on the frozen node when it wakes up.
        worker = RawGearman(frozen.port)
        worker.send(C.CAN_DO, FUNC)
        worker.send(C.GRAB_JOB_UNIQ)
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
    with worker:
        assert worker.recv()[0] == C.NO_JOB
        wait_log(frozen, "fenced")
        worker.send(C.GRAB_JOB_UNIQ)
        assert worker.recv()[0] == C.NO_JOB
    seen = Drainer([frozen.port, other.port]).until(len(acked))
    assert sorted(seen) == sorted(acked)
    # The fenced node took a new epoch and goes on taking jobs.
    assert b"\tepoch\t" in frozen.admin("cluster")
    assert submit(frozen.port, range(500, 501)) == [b"500"]


def test_postgres_stopped_and_restarted_under_load(
    cluster: list[Node], tmp_path: Path, pg_url: str, postgres: PostgresServer
) -> None:
    (node,) = start(cluster, tmp_path, pg_url, 1)
    acked: list[bytes] = []
    errors: Counter[bytes] = Counter()
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            try:
                with RawGearman(node.port) as c:
                    while not stop.is_set():
                        c.send(C.SUBMIT_JOB_BG, FUNC + b"\0\0%d" % i)
                        ptype, data = c.recv()
                        if ptype == C.JOB_CREATED:
                            acked.append(b"%d" % i)
                        else:
                            assert ptype == C.ERROR
                            errors[data.split(b"\0")[0]] += 1
                            time.sleep(0.01)
                        i += 1
            except (EOFError, OSError):
                i += 1  # a job in the commit the outage broke: never acknowledged

    thread = threading.Thread(target=load)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(acked) < 300:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        postgres.stop()
        try:
            wait_log(node, "unreachable")
            before = sum(errors.values())
            deadline = time.monotonic() + 10
            while sum(errors.values()) < before + 5:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            # Foreground jobs go on while the database is away.
            with RawGearman(node.port) as client, RawGearman(node.port) as worker:
                worker.send(C.CAN_DO, b"fg")
                client.send(C.SUBMIT_JOB, b"fg\0\0ping")
                handle = client.expect(C.JOB_CREATED)
                worker.send(C.GRAB_JOB)
                assert worker.expect(C.JOB_ASSIGN).split(b"\0")[0] == handle
                worker.send(C.WORK_COMPLETE, handle + b"\0pong")
                assert client.expect(C.WORK_COMPLETE) == handle + b"\0pong"
        finally:
            postgres.start()
        wait_log(node, "reachable again")
        count = len(acked)
        deadline = time.monotonic() + 10
        while len(acked) < count + 100:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(15)
    assert set(errors) == {b"QUEUE_UNAVAILABLE"}
    assert node.log_text().count("unreachable (") == 1, node.log_text()
    seen = Drainer([node.port]).until(len(acked))
    assert set(acked) <= set(seen)
    assert len(seen) == len(set(seen))


def test_password_never_in_logs_or_listings(
    cluster: list[Node], tmp_path: Path, pg_url: str
) -> None:
    secret_url = pg_url.replace("gear@", "gear:Sw0rdfish@")
    node = Node(tmp_path, secret_url, "quiet")
    cluster.append(node)
    assert submit(node.port, range(3)) == [b"0", b"1", b"2"]
    listing = node.admin("cluster") + node.admin("status") + node.admin("show jobs")
    assert b"Sw0rdfish" not in listing
    node.stop()
    assert "Sw0rdfish" not in node.log_text()
    assert "gear@127.0.0.1" in node.log_text()
    # A server that cannot connect says where, without the password.
    dead = "postgresql://gear:Sw0rdfish@127.0.0.1:%d/nothing" % free_port()
    out = subprocess.run(
        [
            *GEARD,
            "-d",
            "-p",
            str(free_port()),
            "--listen-address",
            "127.0.0.1",
            "--queue-url",
            dead,
        ],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert b"--queue-url" in out.stderr and b"gear@127.0.0.1" in out.stderr, out.stderr
    assert b"Sw0rdfish" not in out.stdout + out.stderr


def test_large_jobs_are_split_across_statements(
    cluster: list[Node], tmp_path: Path, pg_url: str
) -> None:
    # 24 jobs of 1 MiB arrive in one burst: more than one statement's worth.
    (node,) = start(cluster, tmp_path, pg_url, 1)
    big = b"x" * (1 << 20)
    with RawGearman(node.port) as c:
        c.send_raw(
            b"".join(
                encode_packet(C.REQ, C.SUBMIT_JOB_BG, FUNC + b"\0\0%d" % i + big) for i in range(24)
            )
        )
        for _ in range(24):
            c.expect(C.JOB_CREATED)
    node.kill9()
    (again,) = start([], tmp_path, pg_url, 1)
    cluster.append(again)
    seen = Drainer([again.port]).until(24)
    assert sorted(seen) == sorted(b"%d" % i + big for i in range(24))


def test_rows_refused_today_are_kept_and_listed_escaped(
    cluster: list[Node], tmp_path: Path, pg_url: str
) -> None:
    """A row an older geard wrote (a control byte in the name, the unique id
    '.'): the node keeps the job, logs it and lists it escaped."""
    (node,) = start(cluster, tmp_path, pg_url, 1)
    assert node.admin("status") == b".\n"  # answered: the store is open, its tables made
    node.kill9()
    forged = FUNC + b"\n.\nERR evil"

    async def write_old_row() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(
                "INSERT INTO gear_jobs (handle, owner, seq, name, uniq, arguments, precedence)"
                " VALUES ($1, $2, 1, $3, $4, $5, $6)",
                *(b"H:old:1", node.name, forged, b".", b"p1", C.PRECEDENCE_NORMAL),
            )
        finally:
            await conn.close()

    asyncio.run(write_old_row())
    (again,) = start([], tmp_path, pg_url, 1)
    cluster.append(again)
    assert again.admin("status") == FUNC + b"\\x0a.\\x0aERR evil\t1\t0\t0\n.\n"
    assert again.admin("show unique jobs") == b"\\x2e\n.\n"
    log = again.log_text()
    kept = "Queue store %s: kept job H:old:1 though a peer could not queue it today: " % pg_url
    assert (
        kept
        + "function name contains a control character; listings print it as "
        + ("clustered\\x0a.\\x0aERR evil\n")
        in log
    ), log
    assert kept + "unique id '.' would end the show unique jobs listing; " in log
    with RawGearman(again.port) as worker:
        worker.send(C.CAN_DO, forged)
        assert worker.grab() == [b"H:old:1", forged, b".", b"p1"]
