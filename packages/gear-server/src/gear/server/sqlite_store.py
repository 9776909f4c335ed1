"""A durable queue store in one SQLite file (``geard --queue-file PATH``).

Why it looks the way it does:

* One row per job, identified by its **handle**, not by function + unique
  as gearmand's libsqlite3 queue does: gear's Client submits with an empty
  unique id by default, and keying on it would keep only one such job per
  function across a restart. The row's primary key is a submission
  sequence number (FIFO order on reload; deletes by integer key), mapped
  from the handle in memory, so inserts maintain no second index.
* Changes are buffered in memory and committed once per event-loop turn,
  *before* the server writes that turn's replies: every job that arrived
  together costs one transaction, and a client never hears JOB_CREATED for
  a job that is not committed. The commit runs on a writer thread
  (:meth:`flush_async`) while the loop reads the next jobs, so under load
  batches grow and the loop thread pays little for durability.
* WAL journal with ``synchronous=FULL`` by default: a commit survives a
  ``kill -9`` and a power cut. ``synchronous="NORMAL"`` survives the
  process dying but may lose the last commits on a power cut.
* ``locking_mode=EXCLUSIVE``: a second geard on the same file fails to start
  instead of silently sharing (and corrupting) the queue.
* A file that is not a readable queue raises
  :class:`~gear.server.store.QueueStoreError`, so geard refuses to start
  instead of starting empty and losing jobs.
"""

from __future__ import annotations

import concurrent.futures
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import replace

from gear.server.store import QueueStore, QueueStoreError, StoredJob

__all__ = ["SQLiteQueueStore"]

SCHEMA_VERSION = 1
_APPLICATION_ID = 0x67656172  # "gear": marks the file as ours

_SCHEMA = """
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,
    handle BLOB NOT NULL,
    function BLOB NOT NULL,
    uniq BLOB,
    priority INTEGER NOT NULL,
    payload BLOB NOT NULL,
    run_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0
)
"""
_INSERT = (
    "INSERT OR REPLACE INTO jobs"
    " (seq, handle, function, uniq, priority, payload, run_at, attempts) VALUES "
)
_DELETE = "DELETE FROM jobs WHERE seq IN "
_CHUNKS = (256, 64, 16, 4, 1)
"""Rows per multi-row statement: few distinct statements, so all stay cached;
one statement per chunk means SQLite releases the GIL once per chunk, not
once per row, which matters while the event loop thread wants it."""
_UPDATE = "UPDATE jobs SET attempts = ? WHERE seq = ?"
_SELECT = (
    "SELECT handle, function, uniq, priority, payload, run_at, attempts FROM jobs ORDER BY seq"
)
_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


_Batch = tuple[dict[bytes, tuple[int, StoredJob]], set[int], dict[int, int]]
"""Buffered adds (handle -> (seq, job)), removes (seqs) and attempt updates
(seq -> attempts), applied in that order."""


def _chunked(
    db: sqlite3.Connection, head: str, row: str, tail: str, width: int, params: list[object]
) -> None:
    """Run ``head`` + ``row``,``row``... + ``tail`` over ``params`` (``width`` per row)."""
    total = len(params) // width
    done = 0
    for size in _CHUNKS:
        sql = head + ",".join([row] * size) + tail
        while total - done >= size:
            db.execute(sql, params[done * width : (done + size) * width])
            done += size


def _insert(db: sqlite3.Connection, jobs: Iterable[tuple[int, StoredJob]]) -> None:
    params: list[object] = []
    for seq, j in jobs:
        params += (seq, j.handle, j.name, j.unique, j.precedence, j.arguments, j.when, j.attempts)
    _chunked(db, _INSERT, "(?,?,?,?,?,?,?,?)", "", 8, params)


class SQLiteQueueStore(QueueStore):
    """Background jobs in a SQLite file; see the module docstring for why.

    ``lock_timeout`` is how long to wait for another process holding the
    file (e.g. a geard that is still exiting) before giving up.
    Every method runs on the server's event-loop thread; the connection is
    opened by the thread that builds the server, hence
    ``check_same_thread=False``.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: str = "FULL", lock_timeout: float = 2.0
    ) -> None:
        self.path = os.fspath(path)
        self.lock_timeout = lock_timeout
        if synchronous.upper() not in _SYNC_MODES:
            raise ValueError("synchronous must be one of %s" % ", ".join(_SYNC_MODES))
        self._adds: dict[bytes, tuple[int, StoredJob]] = {}
        self._removes: set[int] = set()
        self._attempts: dict[int, int] = {}
        self._seqs: dict[bytes, int] = {}
        self._next_seq = 1
        self._failed: list[_Batch] = []
        self._inflight: concurrent.futures.Future[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        try:
            self._db = self._open(synchronous.upper())
        except sqlite3.Error as e:
            if self._db is not None:
                self._db.close()
                self._db = None
            raise QueueStoreError(
                "queue file %s is not a usable gear queue: %s" % (self.path, e)
            ) from e

    def _open(self, synchronous: str) -> sqlite3.Connection:
        if os.path.isdir(self.path):
            raise sqlite3.OperationalError("is a directory")
        db = sqlite3.connect(
            self.path, timeout=self.lock_timeout, isolation_level=None, check_same_thread=False
        )
        self._db = db
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()
        if not mode or str(mode[0]).lower() != "wal":
            raise sqlite3.OperationalError("cannot switch to WAL journal mode (got %r)" % (mode,))
        db.execute("PRAGMA synchronous=%s" % synchronous)
        db.execute("BEGIN IMMEDIATE")  # takes the exclusive lock now, not at first write
        try:
            self._check_or_create(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return db

    def _check_or_create(self, db: sqlite3.Connection) -> None:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        if app_id == 0 and version == 0 and not tables:
            db.execute(_SCHEMA)
            db.execute("PRAGMA application_id=%d" % _APPLICATION_ID)
            db.execute("PRAGMA user_version=%d" % SCHEMA_VERSION)
            return
        if app_id != _APPLICATION_ID or "jobs" not in tables:
            raise sqlite3.DatabaseError("an SQLite file that is not a gear queue file")
        if version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                "queue file schema version %d, this geard reads %d" % (version, SCHEMA_VERSION)
            )
        problems = [r[0] for r in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("integrity check failed: %s" % "; ".join(problems[:3]))
        for seq, handle in db.execute("SELECT seq, handle FROM jobs"):
            if not isinstance(handle, bytes) or handle in self._seqs:
                raise sqlite3.DatabaseError("malformed or duplicate job handle %r" % (handle,))
            self._seqs[handle] = seq
            self._next_seq = max(self._next_seq, seq + 1)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise QueueStoreError("queue file %s is closed" % self.path)
        return self._db

    # -- QueueStore ----------------------------------------------------

    def add(self, job: StoredJob) -> None:
        seq = self._seqs.get(job.handle)
        if seq is None:
            seq = self._seqs[job.handle] = self._next_seq
            self._next_seq += 1
        self._adds[job.handle] = (seq, job)

    def remove(self, handle: bytes) -> None:
        seq = self._seqs.pop(handle, None)
        if seq is None:
            return
        self._attempts.pop(seq, None)
        if self._adds.pop(handle, None) is None:
            self._removes.add(seq)

    def retried(self, handle: bytes, attempts: int) -> None:
        pending = self._adds.get(handle)
        if pending is not None:
            self._adds[handle] = (pending[0], replace(pending[1], attempts=attempts))
        elif handle in self._seqs:
            self._attempts[self._seqs[handle]] = attempts

    @property
    def pending(self) -> bool:
        """True if there are changes :meth:`flush` has not written yet."""
        return bool(self._adds or self._removes or self._attempts or self._failed)

    def _take(self) -> list[_Batch]:
        """Hand the buffered changes (after any that failed before) to a writer."""
        batches = self._failed
        if self._adds or self._removes or self._attempts:
            batches.append((self._adds, self._removes, self._attempts))
            self._adds, self._removes, self._attempts = {}, set(), {}
        self._failed = []
        return batches

    def _write(self, batches: list[_Batch]) -> None:
        """Apply ``batches`` in order in one transaction (any thread, one at a time).

        On failure they are kept, to be written first by the next flush.
        """
        db = self.db
        try:
            db.execute("BEGIN")
            try:
                for adds, removes, attempts in batches:
                    if adds:
                        _insert(db, adds.values())
                    if removes:
                        _chunked(db, _DELETE + "(", "?", ")", 1, list(removes))
                    if attempts:
                        db.executemany(_UPDATE, [(n, h) for h, n in attempts.items()])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            self._failed = batches + self._failed
            raise QueueStoreError("cannot write queue file %s: %s" % (self.path, e)) from e
        except BaseException:
            self._failed = batches + self._failed
            raise

    def _wait(self) -> None:
        """Let the commit in flight on the writer thread end (its error is kept)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            concurrent.futures.wait([inflight])

    def flush(self) -> None:
        """Write every buffered change in one transaction, now.

        On failure nothing is forgotten: the changes stay buffered for the
        next flush and :class:`~gear.server.store.QueueStoreError` tells the
        server not to acknowledge the jobs.
        """
        self._wait()
        if self.pending:
            self._write(self._take())

    def flush_async(self, done: Callable[[BaseException | None], None]) -> bool:
        """Commit the buffered changes on a writer thread; ``done(error)`` runs there.

        While SQLite commits (it releases the GIL), the event loop goes on
        reading the next jobs, which makes the next batch larger: group
        commit. The server starts one at a time and writes the held replies
        only when ``done`` reports success.
        """
        if self._inflight is not None and not self._inflight.done():
            raise RuntimeError("a flush is already in flight")
        self._inflight = None
        if not self.pending:
            return False
        batches = self._take()
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, "geard-queue-file")
        future = self._executor.submit(self._write, batches)
        self._inflight = future
        future.add_done_callback(lambda f: done(f.exception()))
        return True

    def load(self) -> Iterable[StoredJob]:
        """Return every stored job in submission order (FIFO survives)."""
        self.flush()
        jobs: list[StoredJob] = []
        try:
            for handle, name, unique, precedence, payload, run_at, attempts in self.db.execute(
                _SELECT
            ):
                if not isinstance(handle, bytes) or not isinstance(name, bytes):
                    raise QueueStoreError("queue file %s: malformed row %r" % (self.path, handle))
                jobs.append(
                    StoredJob(
                        handle,
                        name,
                        bytes(unique) if unique is not None else None,
                        bytes(payload),
                        int(precedence),
                        float(run_at) if run_at is not None else None,
                        int(attempts),
                    )
                )
        except (sqlite3.Error, TypeError, ValueError) as e:
            raise QueueStoreError("cannot read queue file %s: %s" % (self.path, e)) from e
        return jobs

    def close(self) -> None:
        """Flush what is buffered, checkpoint the WAL and close the file."""
        db = self._db
        if db is None:
            return
        try:
            self.flush()
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.Error, QueueStoreError):
            pass  # whatever was acknowledged is already committed
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            self._db = None
            db.close()

    def __len__(self) -> int:
        """Jobs in the file once buffered changes are written (for tests)."""
        self.flush()
        return int(self.db.execute("SELECT count(*) FROM jobs").fetchone()[0])
