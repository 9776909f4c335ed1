"""A durable queue store in one SQLite file (``geard --queue-file PATH``).

Why it looks the way it does:

* One row per job, identified by its **handle**, not by function + unique
  as gearmand's libsqlite3 queue does: gear's Client submits with an empty
  unique id by default, and keying on it would keep only one such job per
  function across a restart. The row's primary key is a submission
  sequence number (FIFO order on reload; deletes by integer key), mapped
  from the handle in memory, so inserts maintain no second index. The
  job's fields are packed into one blob: SQLite's cost per row grows with
  its columns, and only the retry count is ever updated in place.
* Changes are buffered in memory and committed once per event-loop turn,
  *before* the server writes that turn's replies: every job that arrived
  together costs one transaction, and a client never hears JOB_CREATED for
  a job that is not committed. :meth:`flush_async` writes the rows on the
  loop thread and commits (the disk sync) on a writer thread while the loop
  reads the next jobs, so under load batches grow. Statements are few and
  large: every return from SQLite on the writer thread waits for the GIL,
  which the busy loop thread may hold for milliseconds.
* WAL journal with ``synchronous=FULL`` by default: a commit survives a
  ``kill -9`` and a power cut. ``synchronous="NORMAL"`` survives the
  process dying but may lose the last commits on a power cut.
* ``locking_mode=EXCLUSIVE``: a second geard on the same file fails to start
  instead of silently sharing (and corrupting) the queue.
* A file that is not a readable queue, or an existing file that is empty,
  raises :class:`~gear.server.store.QueueStoreError`, so geard refuses to
  start instead of starting empty and losing jobs. Recent commits live in
  the ``-wal`` file beside it until a checkpoint: a copy or backup needs
  both files.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import sqlite3
import struct
from collections.abc import Callable, Iterable, Sequence

from gear.server.store import QueueStore, QueueStoreError, StoredJob

__all__ = ["SQLiteQueueStore"]

SCHEMA_VERSION = 2
_APPLICATION_ID = 0x67656172  # "gear": marks the file as ours

_SCHEMA = """
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,
    attempts INTEGER NOT NULL,
    job BLOB NOT NULL
)
"""
_HEAD = struct.Struct("<BidIII")
"""A row's ``job`` blob: flags, precedence, run time, lengths of handle, name
and unique id; then handle, name, unique id and arguments. One packed blob
instead of a column per field is half the SQLite work per row."""
_NO_UNIQUE = 1  # flags: unique id None (not b"")
_SCHEDULED = 2  # flags: run time set
_MAX_ROWS = 1024 if sqlite3.sqlite_version_info >= (3, 32) else 256
"""Rows per statement; SQLite before 3.32 allows only 999 parameters."""
_SIZES = tuple(1 << n for n in range(_MAX_ROWS.bit_length()))
_INSERT = {
    n: "INSERT OR REPLACE INTO jobs (seq, attempts, job) SELECT * FROM (VALUES "
    + ",".join(["(?,?,?)"] * n)
    + ") WHERE column1 IS NOT NULL"
    for n in _SIZES
}
_DELETE = {n: "DELETE FROM jobs WHERE seq IN (" + ",".join(["?"] * n) + ")" for n in _SIZES}
"""One statement per (up to) :data:`_MAX_ROWS` rows, padded with NULL rows
that match nothing to one of a few sizes, so all stay cached and a batch
costs one call into SQLite, not one per row (``executemany``) or per
power-of-two chunk."""
_PADDING: list[object] = [None] * (3 * _MAX_ROWS)
_UPDATE = "UPDATE jobs SET attempts = ? WHERE seq = ?"
_SELECT = "SELECT seq, attempts, job FROM jobs ORDER BY seq"
_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


_Batch = tuple[list[object], list[int], dict[int, int]]
"""Buffered inserts (flat ``seq, attempts, job`` triples), deletes (seqs) and
attempt updates (seq -> attempts), applied in that order: a job added and
removed before a commit is inserted and deleted in the same transaction."""


_pack_head = _HEAD.pack


def _unpack(blob: object, attempts: int) -> StoredJob:
    if not isinstance(blob, bytes) or len(blob) < _HEAD.size:
        raise ValueError("malformed job row")
    flags, precedence, when, n_handle, n_name, n_unique = _HEAD.unpack_from(blob)
    a = _HEAD.size
    b = a + n_handle
    c = b + n_name
    d = c + n_unique
    if d > len(blob):
        raise ValueError("malformed job row")
    return StoredJob(
        blob[a:b],
        blob[b:c],
        None if flags & _NO_UNIQUE else blob[c:d],
        blob[d:],
        precedence,
        when if flags & _SCHEDULED else None,
        attempts,
    )


def _chunked(
    db: sqlite3.Connection, sql: dict[int, str], params: Sequence[object], width: int
) -> None:
    """Run ``sql`` (rows -> statement) over ``params`` (``width`` per row)."""
    total = len(params) // width
    for start in range(0, total, _MAX_ROWS):
        rows = min(total - start, _MAX_ROWS)
        size = 1 << (rows - 1).bit_length()
        chunk = params[start * width : (start + rows) * width]
        if size > rows:
            chunk = [*chunk, *_PADDING[: (size - rows) * width]]
        db.execute(sql[size], chunk)


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
        self.path = self.where = os.fspath(path)
        self.lock_timeout = lock_timeout
        if synchronous.upper() not in _SYNC_MODES:
            raise ValueError("synchronous must be one of %s" % ", ".join(_SYNC_MODES))
        self._rows: list[object] = []
        self._removes: list[int] = []
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
        if os.path.exists(self.path) and os.path.getsize(self.path) == 0:
            # SQLite would take it for a new database and geard would start
            # with an empty queue, silently: a truncated file, or a copy made
            # without its -wal file, must not pass for "no jobs".
            raise sqlite3.DatabaseError(
                "the file exists but is empty (0 bytes); if it is a copy, copy its -wal"
                " file with it, or remove it to start a new queue"
            )
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
        for seq, blob in db.execute("SELECT seq, job FROM jobs"):
            try:
                handle = _unpack(blob, 0).handle
            except ValueError as e:
                raise sqlite3.DatabaseError("job %r: %s" % (seq, e)) from e
            if handle in self._seqs:
                raise sqlite3.DatabaseError("duplicate job handle %r" % (handle,))
            self._seqs[handle] = seq
            self._next_seq = max(self._next_seq, seq + 1)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise QueueStoreError("queue file %s is closed" % self.path)
        return self._db

    # -- QueueStore ----------------------------------------------------

    def add(self, job: StoredJob) -> None:
        handle = job.handle
        seq = self._seqs.setdefault(handle, self._next_seq)
        if seq == self._next_seq:
            self._next_seq = seq + 1
        name = job.name
        unique = job.unique
        when = job.when
        head = _pack_head(
            (unique is None) | (when is not None) << 1,  # _NO_UNIQUE, _SCHEDULED
            job.precedence,
            when or 0.0,
            len(handle),
            len(name),
            0 if unique is None else len(unique),
        )
        blob = b"".join((head, handle, name, unique or b"", job.arguments))
        self._rows += (seq, job.attempts, blob)

    def remove(self, handle: bytes) -> None:
        seq = self._seqs.pop(handle, None)
        if seq is not None:
            self._attempts.pop(seq, None)
            self._removes.append(seq)

    def retried(self, handle: bytes, attempts: int) -> None:
        seq = self._seqs.get(handle)
        if seq is not None:
            self._attempts[seq] = attempts

    @property
    def pending(self) -> bool:
        """True if there are changes :meth:`flush` has not written yet."""
        return bool(self._rows or self._removes or self._attempts or self._failed)

    def _take(self) -> list[_Batch]:
        """Hand the buffered changes (after any that failed before) to a writer."""
        batches = self._failed
        if self._rows or self._removes or self._attempts:
            batches.append((self._rows, self._removes, self._attempts))
            self._rows, self._removes, self._attempts = [], [], {}
        self._failed = []
        return batches

    def _write(self, batches: list[_Batch], *, begin: bool = True, commit: bool = True) -> None:
        """Apply ``batches`` in order in one transaction (any thread, one at a time).

        ``begin`` opens the transaction and applies the changes, ``commit``
        commits it: :meth:`flush_async` does the two on different threads.
        On failure the transaction is rolled back and ``batches`` are kept,
        to be written first by the next flush.
        """
        db = self.db
        try:
            try:
                if begin:
                    db.execute("BEGIN")
                    for rows, removes, attempts in batches:
                        if rows:
                            _chunked(db, _INSERT, rows, 3)
                        if removes:
                            _chunked(db, _DELETE, removes, 1)
                        if attempts:
                            db.executemany(_UPDATE, [(n, h) for h, n in attempts.items()])
                if commit:
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

        The rows are written into the transaction here, on the event loop
        (SQLite's in-memory work: handing it to the writer thread would cost
        a wait for the GIL, which the busy loop holds for milliseconds, after
        every statement); the writer thread only commits, which is where the
        disk sync is. While it does, the event loop goes on reading the next
        jobs, which makes the next batch larger: group commit. The server
        starts one at a time and writes the held replies only when ``done``
        reports success (here, at once, if writing the rows failed).
        """
        if self._inflight is not None and not self._inflight.done():
            raise RuntimeError("a flush is already in flight")
        self._inflight = None
        if not self.pending:
            return False
        batches = self._take()
        try:
            self._write(batches, commit=False)
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, "geard-queue-file")
            future = self._executor.submit(self._write, batches, begin=False)
        except Exception as e:
            db = self._db
            if db is not None and db.in_transaction:  # rows in, but no writer took the commit
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                self._failed = batches + self._failed
            done(e)
            return True
        self._inflight = future
        future.add_done_callback(lambda f: done(f.exception()))
        return True

    def load(self) -> Iterable[StoredJob]:
        """Return every stored job in submission order (FIFO survives)."""
        self.flush()
        try:
            return [_unpack(blob, int(attempts)) for _, attempts, blob in self.db.execute(_SELECT)]
        except (sqlite3.Error, TypeError, ValueError) as e:
            raise QueueStoreError("cannot read queue file %s: %s" % (self.path, e)) from e

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
