"""Durable background jobs in-process: the SQLite store and its wiring.

The crash tests (``kill -9`` of a geard process) live in
``tests/server/test_durable_restart.py``; these check the store's contract
and the server's ordering guarantees where they can be observed directly.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.geard import Geard, RawGearman
from gear import constants as C
from gear.codec import encode_packet
from gear.server import Server
from gear.server.sqlite_store import SQLiteQueueStore, _Batch, _unpack
from gear.server.store import MemoryQueueStore, QueueStoreError, StoredJob
from gear.server.store_events import listing_form

Factory = Callable[..., Geard]


def job(handle: bytes, **kw: object) -> StoredJob:
    fields: dict[str, object] = dict(
        name=b"f", unique=None, arguments=b"x", precedence=C.PRECEDENCE_NORMAL
    )
    fields.update(kw)
    return StoredJob(handle, **fields)  # type: ignore[arg-type]


# -- the store on its own -------------------------------------------------


def test_store_round_trip_keyed_by_handle(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteQueueStore(path)
    store.add(job(b"H:1", unique=None, arguments=b"a"))
    store.add(job(b"H:2", unique=None, arguments=b"b"))  # same function, empty unique
    store.add(job(b"H:3", unique=b"u", precedence=C.PRECEDENCE_HIGH, when=1e10))
    store.add(job(b"H:4"))
    store.remove(b"H:4")  # added and removed in one batch: gone after the commit
    store.add(job(b"H:5", unique=b"", when=0.0, arguments=b"\0\xff" * 3))
    store.retried(b"H:5", 1)  # retried before its first commit
    store.flush()
    store.retried(b"H:1", 2)
    store.remove(b"H:2")
    store.close()
    again = SQLiteQueueStore(path)
    try:
        assert list(again.load()) == [
            job(b"H:1", arguments=b"a", attempts=2),
            job(b"H:3", unique=b"u", precedence=C.PRECEDENCE_HIGH, when=1e10),
            job(b"H:5", unique=b"", when=0.0, arguments=b"\0\xff" * 3, attempts=1),
        ]
    finally:
        again.close()


def test_store_batches_until_flush(tmp_path: Path) -> None:
    store = SQLiteQueueStore(tmp_path / "q.db")
    try:
        for i in range(100):
            store.add(job(b"H:%d" % i))
        assert store.pending
        changes = store.db.total_changes
        store.flush()
        assert not store.pending and store.db.total_changes == changes + 100
        assert len(store) == 100
    finally:
        store.close()


def test_flush_async_commits_on_the_writer_or_keeps_the_batch(tmp_path: Path) -> None:
    store = SQLiteQueueStore(tmp_path / "q.db")
    try:
        results: list[BaseException | None] = []
        finished = threading.Event()

        def done(error: BaseException | None) -> None:
            results.append(error)
            finished.set()

        store.add(job(b"H:1"))
        assert store.flush_async(done)
        assert finished.wait(10) and results == [None]
        assert not store.flush_async(done)  # nothing pending
        writer = store._executor
        assert writer is not None
        writer.shutdown()  # a writer that takes no more work
        store.add(job(b"H:2"))
        finished.clear()
        assert store.flush_async(done)
        assert finished.is_set() and isinstance(results[-1], RuntimeError)
        assert store.pending  # the batch is kept for the next flush
        store._executor = None
        assert [j.handle for j in store.load()] == [b"H:1", b"H:2"]
    finally:
        store.close()


def test_second_opener_is_refused(tmp_path: Path) -> None:
    first = SQLiteQueueStore(tmp_path / "q.db")
    try:
        with pytest.raises(QueueStoreError, match="locked"):
            SQLiteQueueStore(tmp_path / "q.db", lock_timeout=0.1)
    finally:
        first.close()
    SQLiteQueueStore(tmp_path / "q.db").close()


@pytest.mark.parametrize(
    "kind", ["garbage", "other-sqlite", "directory", "missing-dir", "truncated", "bad-row"]
)
def test_unusable_file_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "q.db"
    if kind == "garbage":
        path.write_bytes(b"this is not a database\n" * 200)
    elif kind == "other-sqlite":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE gearman_queue (unique_key TEXT)")
        db.close()
    elif kind == "directory":
        path.mkdir()
    elif kind == "missing-dir":
        path = tmp_path / "nope" / "q.db"
    elif kind == "bad-row":
        store = SQLiteQueueStore(path)
        store.add(job(b"H:1"))
        store.close()
        with sqlite3.connect(path) as db:
            db.execute("UPDATE jobs SET job = x'0102'")
        db.close()
    else:
        store = SQLiteQueueStore(path)
        for i in range(2000):
            store.add(job(b"H:%d" % i, arguments=b"x" * 200))
        store.close()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(QueueStoreError, match="queue file"):
        SQLiteQueueStore(path).load()


def test_server_refuses_to_start_on_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(QueueStoreError):
        Server(0, host="127.0.0.1", queue_file=str(path))
    with pytest.raises(ValueError):
        Server(
            0, host="127.0.0.1", queue_file=str(path), queue_store=SQLiteQueueStore(tmp_path / "b")
        )


# -- the server with a queue file ------------------------------------------


def test_restart_restores_every_field_and_coalescing(
    geard_factory: Factory, tmp_path: Path
) -> None:
    path = str(tmp_path / "q.db")
    first = geard_factory(queue_file=path)
    later = int(time.time()) + 3600
    with RawGearman(first.port) as c:
        h_plain1 = c.submit(b"f", b"p1", b"", C.SUBMIT_JOB_BG)
        h_plain2 = c.submit(b"f", b"p2", b"", C.SUBMIT_JOB_BG)  # same empty unique: a separate job
        h_high = c.submit(b"f", b"hi", b"", C.SUBMIT_JOB_HIGH_BG)
        h_low = c.submit(b"f", b"lo", b"", C.SUBMIT_JOB_LOW_BG)
        h_uniq = c.submit(b"f", b"u", b"key", C.SUBMIT_JOB_BG)
        assert c.submit(b"f", b"dup", b"key", C.SUBMIT_JOB_BG) == h_uniq
        c.send(C.SUBMIT_JOB_EPOCH, b"g\0ek\0%d\0later" % later)
        h_epoch = c.expect(C.JOB_CREATED)
        c.send(C.SUBMIT_JOB, b"f\0\0foreground")  # never stored
        h_fg = c.expect(C.JOB_CREATED)
    first.stop()
    second = geard_factory(queue_file=path)
    jobs = second.server.jobs
    assert set(jobs) == {h_plain1, h_plain2, h_high, h_low, h_uniq, h_epoch}
    assert h_fg not in jobs
    assert jobs[h_epoch].when == later and jobs[h_epoch]._unique == b"ek"
    with RawGearman(second.port) as c, RawGearman(second.port) as w:
        assert c.submit(b"f", b"again", b"key", C.SUBMIT_JOB_BG) == h_uniq  # coalescing survived
        fresh = c.submit(b"f", b"new", b"", C.SUBMIT_JOB_BG)
        assert fresh not in {h_plain1, h_plain2, h_high, h_low, h_uniq, h_epoch}
        w.send(C.CAN_DO, b"f")
        order = [w.grab() for _ in range(6)]
        assert [j[0] for j in order] == [h_high, h_plain1, h_plain2, h_uniq, fresh, h_low]
        assert order[3][2:] == [b"key", b"u"] and order[1][3] == b"p1"
        for j in order:
            w.send(C.WORK_COMPLETE, j[0] + b"\0")
        w.sync()
    assert set(second.server.jobs) == {h_epoch}
    second.stop()
    store = SQLiteQueueStore(path)
    try:
        assert [j.handle for j in store.load()] == [h_epoch]
    finally:
        store.close()


class RecordingStore(SQLiteQueueStore):
    """Remembers what each transaction committed, to check it precedes JOB_CREATED."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.committed: set[bytes] = set()
        self.transactions = 0

    def _write(self, batches: list[_Batch], *, begin: bool = True, commit: bool = True) -> None:
        super()._write(batches, begin=begin, commit=commit)
        if commit:
            self.transactions += 1
            for rows, _, _ in batches:
                self.committed.update(_unpack(blob, 0).handle for blob in rows[2::3])


@pytest.mark.parametrize("windows", [1, 20])
def test_job_created_only_after_commit_and_batched(
    geard_factory: Factory, tmp_path: Path, windows: int
) -> None:
    store = RecordingStore(tmp_path / "q.db")
    geard = geard_factory(queue_store=store)
    n = 500
    with RawGearman(geard.port) as c, RawGearman(geard.port) as other:
        for w in range(windows):
            ids = range(w * n // windows, (w + 1) * n // windows)
            burst = b"".join(encode_packet(C.REQ, C.SUBMIT_JOB_BG, b"b\0\0%d" % i) for i in ids)
            c.send_raw(burst)
            other.send(C.ECHO_REQ, b"meanwhile")  # replies without jobs still flow
            assert other.expect(C.ECHO_RES) == b"meanwhile"
            for _ in ids:
                handle = c.expect(C.JOB_CREATED)
                assert handle in store.committed
    assert store.transactions <= n / 5, "writes were not batched per loop turn"
    assert len(store) == n


class FailingStore(SQLiteQueueStore):
    """Fails writing the rows (on the event loop) or committing (on the writer thread)."""

    fail: str | None = None

    def _write(self, batches: list[_Batch], *, begin: bool = True, commit: bool = True) -> None:
        if self.fail and any(rows for rows, _, _ in batches):
            if (self.fail == "rows" and begin) or (self.fail == "commit" and commit):
                if self.fail == "commit":
                    super()._write(batches, begin=begin, commit=False)
                    self.db.execute("ROLLBACK")
                self._failed = batches + self._failed
                raise QueueStoreError("disk full")
        super()._write(batches, begin=begin, commit=commit)


@pytest.mark.parametrize("stage", ["rows", "commit"])
def test_failed_commit_sends_no_job_created(
    geard_factory: Factory, tmp_path: Path, stage: str
) -> None:
    store = FailingStore(tmp_path / "q.db")
    geard = geard_factory(queue_store=store)
    with RawGearman(geard.port) as c:
        c.submit(b"f", b"ok", b"", C.SUBMIT_JOB_BG)
        store.fail = stage
        c.send(C.SUBMIT_JOB_BG, b"f\0\0lost")
        assert c.closed_by_server()
    store.fail = None
    with RawGearman(geard.port) as c:
        c.submit(b"f", b"ok again", b"", C.SUBMIT_JOB_BG)
    geard.stop()
    # The failed batch was kept and written later: nothing is forgotten.
    again = SQLiteQueueStore(tmp_path / "q.db")
    try:
        assert sorted(j.arguments for j in again.load()) == [b"lost", b"ok", b"ok again"]
    finally:
        again.close()


def test_attempts_survive_restart_and_limit_fails_the_job(
    geard_factory: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "q.db")
    first = geard_factory(queue_file=path, job_retries=1)
    with RawGearman(first.port) as c:
        h = c.submit(b"p", b"poison", b"", C.SUBMIT_JOB_BG)
        keep = c.submit(b"k", b"keep", b"", C.SUBMIT_JOB_BG)
    w = RawGearman(first.port)
    w.send(C.CAN_DO, b"p")
    assert w.grab()[0] == h
    w.close()  # first attempt lost: requeued, attempts=1 stored
    with RawGearman(first.port) as probe:
        deadline = time.monotonic() + 5
        while first.server.jobs[h].retries != 1:
            assert time.monotonic() < deadline
            probe.sync()
    first.stop()
    second = geard_factory(queue_file=path, job_retries=1)
    assert second.server.jobs[h].retries == 1
    caplog.set_level(logging.WARNING, logger="gear.Server")
    w = RawGearman(second.port)
    w.send(C.CAN_DO, b"p")
    assert w.grab()[0] == h
    w.close()  # second attempt lost: over the limit, failed
    with RawGearman(second.port) as probe:
        deadline = time.monotonic() + 5
        while h in second.server.jobs:
            assert time.monotonic() < deadline
            probe.sync()
    assert any(h.decode() in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
    second.stop()
    store = SQLiteQueueStore(path)
    try:
        assert [j.handle for j in store.load()] == [keep]
    finally:
        store.close()


def test_graceful_shutdown_finishes_running_keeps_queued(
    geard_factory: Factory, tmp_path: Path
) -> None:
    path = str(tmp_path / "q.db")
    geard = geard_factory(queue_file=path)
    with RawGearman(geard.port) as c, RawGearman(geard.port) as w:
        running = c.submit(b"s", b"1", b"", C.SUBMIT_JOB_BG)
        queued = c.submit(b"s", b"2", b"", C.SUBMIT_JOB_BG)
        w.send(C.CAN_DO, b"s")
        assert w.grab()[0] == running
        assert c.admin("shutdown graceful") == b"OK\n"
        c.send(C.SUBMIT_JOB_BG, b"s\0\0late")
        assert c.expect(C.ERROR).startswith(b"SHUTTING_DOWN\0")
        assert w.grab() == []  # no new work while draining
        assert not geard.server.wait(0.2)
        w.send(C.WORK_COMPLETE, running + b"\0")
        assert geard.server.wait(10)
    store = SQLiteQueueStore(path)
    try:
        assert [j.handle for j in store.load()] == [queued]
    finally:
        store.close()


def test_graceful_shutdown_deadline_keeps_running_job(
    geard_factory: Factory, tmp_path: Path
) -> None:
    path = str(tmp_path / "q.db")
    geard = geard_factory(queue_file=path, shutdown_timeout=0.3)
    with RawGearman(geard.port) as c, RawGearman(geard.port) as w:
        stuck = c.submit(b"s", b"1", b"", C.SUBMIT_JOB_BG)
        w.send(C.CAN_DO, b"s")
        assert w.grab()[0] == stuck
        started = time.monotonic()
        geard.server.shutdown(graceful=True)
        assert geard.server.wait(10)
        assert 0.2 < time.monotonic() - started < 5
    store = SQLiteQueueStore(path)
    try:
        assert [j.handle for j in store.load()] == [stuck]
    finally:
        store.close()


# -- stored jobs that today's rules refuse ---------------------------------


def test_stored_fields_refused_today_are_kept_and_listed_escaped(
    geard_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """Names and unique ids an older geard let in: queued, runnable, never a forged line."""
    store = MemoryQueueStore()
    forged = b"f\n.\nERR x"
    for stored in (
        job(b"H:old:1", name=forged, arguments=b"a1"),
        job(b"H:old:2", name=b"ERR BUSY", arguments=b"a2"),
        job(b"H:old:3", name=b"g", unique=b".", arguments=b"a3"),
        job(b"H:old:4", name=b"g", unique=b"ERR u\r", arguments=b"a4"),
        job(b"H:old:5", name=b"n" * 20, arguments=b"a5"),  # over max_function_name=10
        job(b"H:old:6", name=forged, arguments=b"a6"),  # the same name: reported once
        job(b"H:old:7", name=b"g", unique=b"fine", arguments=b"a7"),
    ):
        store.add(stored)
    with caplog.at_level(logging.WARNING, logger="gear.Server"):
        geard = geard_factory(queue_store=store, max_function_name=10)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Queue store in memory: kept job H:old:1 though a peer could not queue it today: "
        "function name contains a control character; listings print it as f\\x0a.\\x0aERR x",
        "Queue store in memory: kept job H:old:2 though a peer could not queue it today: "
        "function name must not start with 'ERR '; listings print it as \\x45RR BUSY",
        "Queue store in memory: kept job H:old:3 though a peer could not queue it today: "
        "unique id '.' would end the show unique jobs listing; listings print it as \\x2e",
        "Queue store in memory: kept job H:old:4 though a peer could not queue it today: "
        "unique id contains a control character; listings print it as \\x45RR u\\x0d",
        "Queue store in memory: kept job H:old:5 though a peer could not queue it today: "
        "function name longer than 10 bytes; it is listed as it is",
    ]
    assert len(geard.server.jobs) == 7
    with RawGearman(geard.port) as admin, RawGearman(geard.port) as worker:
        assert admin.admin("status") == (
            b"f\\x0a.\\x0aERR x\t2\t0\t0\n"
            b"\\x45RR BUSY\t1\t0\t0\n"
            b"g\t3\t0\t0\n" + b"n" * 20 + b"\t1\t0\t0\n"
            b".\n"
        )
        assert admin.admin("prioritystatus").startswith(b"f\\x0a.\\x0aERR x\t0\t2\t0\t0\n")
        assert admin.admin("show unique jobs") == b"\\x2e\n\\x45RR u\\x0d\nfine\n.\n"
        # The stored name is known, so a worker of the old kind can still drain it.
        worker.send(C.CAN_DO, forged)
        worker.sync()
        assert admin.admin("workers").endswith(b" : f\\x0a.\\x0aERR x\n.\n")
        for handle, arguments in ((b"H:old:1", b"a1"), (b"H:old:6", b"a6")):
            assert worker.grab() == [handle, forged, b"", arguments]
            worker.send(C.WORK_COMPLETE, handle + b"\0")
        worker.send(C.RESET_ABILITIES)
        worker.sync()
        assert b"f\\x0a" not in admin.admin("status")  # drained and forgotten
        worker.send(C.CAN_DO, forged)  # and refused again
        assert worker.expect(C.ERROR).startswith(b"INVALID_ARGUMENTS\0")
    assert set(store.jobs) == {b"H:old:%d" % i for i in (2, 3, 4, 5, 7)}


def test_many_stored_fields_refused_today_log_ten_lines_and_a_count(
    geard_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryQueueStore()
    for i in range(25):
        store.add(job(b"H:old:%d" % i, name=b"f\t%d" % i))
    with caplog.at_level(logging.WARNING, logger="gear.Server"):
        geard = geard_factory(queue_store=store)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 11
    assert warnings[-1] == (
        "Queue store in memory: 15 more stored names or unique ids break today's rules "
        "(kept, listed escaped)"
    )
    assert len(geard.server.jobs) == 25


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (b"plain", b"plain"),
        (b"a\x00b\x1f\x7f", b"a\\x00b\\x1f\\x7f"),
        (b"ERR x", b"\\x45RR x"),
        (b"ERRx", b"ERRx"),
        (b".", b"\\x2e"),
        (b"..", b".."),
        (b"\xff\xfe", b"\xff\xfe"),
    ],
)
def test_listing_form(value: bytes, shown: bytes) -> None:
    assert listing_form(value) == shown
