"""Replies: one write per connection per loop turn, and none before the store commits.

Handlers call :meth:`Outbox._send`; the bytes wait in the session's
``out`` list until :meth:`Outbox._flush`, which runs once per loop turn
(``timers.call_soon``). If the queue store has changes, they are committed
first (on the store's writer thread when it has one, holding that turn's
replies until it is done), so no client hears JOB_CREATED for a job that is
not on disk.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable, Iterable
from typing import cast

from gear import constants as C
from gear.admin import ServerAdminRequest
from gear.server._compiled import mypyc_attr
from gear.server.counters import JobCounters
from gear.server.model import Session, Timers
from gear.server.stats import Stats
from gear.server.store import QueueStore

__all__ = ["LISTING_CHUNK", "NOOP", "NO_JOB", "Outbox", "err_text", "escape_text", "packet"]

# gear.codec's header layout, packed without encode_packet's checks: the
# server only builds packets of known types, and this is its hottest line.
_HEADER = struct.Struct("!4sII")
_RES = C.RES
LISTING_CHUNK = 64 * 1024
"""Bytes of an admin listing written at a time."""


def packet(ptype: int, data: bytes = b"") -> bytes:
    """A RES packet's wire form."""
    return _HEADER.pack(_RES, ptype, len(data)) + data


NOOP = packet(C.NOOP)
NO_JOB = packet(C.NO_JOB)
_CONTROL_TEXT = re.compile(r"[\x00-\x1f\x7f]")


def err_text(text: str) -> bytes:
    """gearmand's admin error style: ``ERR CODE words+joined+by+plus``."""
    return text.replace(" ", "+").encode()


def escape_text(text: str) -> str:
    """Control characters as ``\\xNN``: a listing line stays one line."""
    return _CONTROL_TEXT.sub(lambda m: "\\x%02x" % ord(m.group()), text)


def _commit_callback(
    timers: Timers, committed: Callable[[int, BaseException | None], None], gen: int
) -> Callable[[BaseException | None], None]:
    """What the store's writer thread calls when commit ``gen`` is done (or failed)."""

    # Module level: mypyc cannot compile a closure inside a method of a python_class.
    def done(error: BaseException | None) -> None:
        try:
            timers.call_soon_threadsafe(committed, gen, error)
        except RuntimeError:
            pass  # the loop is closed: the server stopped meanwhile

    return done


@mypyc_attr(allow_interpreted_subclasses=True)
class Outbox(Stats):
    """Per-connection output batching and the durable commit gate."""

    timers: Timers
    queue_store: QueueStore | None
    max_output_buffer: int
    _stopping: bool

    def _init_outbox(self) -> None:
        #: Set by the metrics endpoint; None keeps every count off the fast path.
        self.job_counters: JobCounters | None = None
        #: True from a failed store commit until one succeeds (``/healthz`` says 503).
        self.store_failing = False
        self._commit_started = 0.0
        self._store_dirty = False
        self._committing = False
        self._commit_gen = 0
        self._held: dict[Session, bytes] = {}
        self._dirty: list[Session] = []
        self._flush_scheduled = False

    def _send(self, conn: Session, data: bytes) -> None:
        if conn.closed:
            return
        if not conn.out:
            self._dirty.append(conn)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.timers.call_soon(self._flush)
        conn.out.append(data)

    def sendError(self, connection: Session, code: bytes, text: bytes) -> None:
        """Send an ERROR packet; the connection stays open."""
        self._send(connection, packet(C.ERROR, code + b"\x00" + text))

    def _store_changed(self) -> None:
        """Make sure the store is committed this loop turn, reply or not."""
        self._store_dirty = True
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.timers.call_soon(self._flush)

    def _commit_store(self) -> bool:
        """Commit the store's batch before any reply of this turn is written.

        False if it failed: the caller must then not send those replies, so
        no client is told JOB_CREATED for a job that is not durable.
        """
        self._store_dirty = False
        if self.queue_store is None:
            return True
        started = time.perf_counter()
        try:
            self.queue_store.flush()
        except Exception:
            self._store_dirty = True
            self.store_failing = True
            self.log.exception("Queue store write failed: dropping this turn's replies")
            return False
        self._store_committed(started)
        return True

    def _store_committed(self, started: float) -> None:
        self.store_failing = False
        counters = self.job_counters
        if counters is not None:
            counters.committed(time.perf_counter() - started)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._committing:
            return  # replies wait for the commit in flight; _committed flushes again
        dirty, self._dirty = self._dirty, []
        if self._store_dirty:
            if self._start_commit(dirty):
                return
            if not self._commit_store():
                for conn in dirty:
                    conn.out.clear()
                    conn.closed = True
                    conn.abort()
                return
        for conn in dirty:
            out = conn.out
            if conn.closed or not out:
                out.clear()
                continue
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._write(conn, data)

    def _write(self, conn: Session, data: bytes) -> None:
        conn.write(data)
        if conn.write_paused and conn.buffer_size() > self.max_output_buffer:
            self.log.warning(
                "Disconnecting %s: more than %d bytes queued and not read",
                conn.host,
                self.max_output_buffer,
            )
            conn.closed = True
            conn.abort()

    def _start_commit(self, dirty: list[Session]) -> bool:
        """Commit the store on its writer thread, holding this turn's replies.

        Group commit: while SQLite writes, the loop keeps reading; the next
        turns' replies wait behind this commit and their jobs form the next,
        larger batch. False if the store only flushes synchronously.
        """
        store = self.queue_store
        if store is None or self._stopping:
            return False
        self._commit_gen += 1
        done = _commit_callback(self.timers, self._committed, self._commit_gen)
        self._commit_started = time.perf_counter()
        if not store.flush_async(done):
            return False
        self._store_dirty = False
        self._committing = True
        held = self._held
        for conn in dirty:
            out = conn.out
            if out and not conn.closed:
                held[conn] = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
        return True

    def _committed(self, gen: int, error: BaseException | None) -> None:
        if gen != self._commit_gen or not self._committing:
            return  # _stop finished this commit synchronously
        self._committing = False
        held, self._held = self._held, {}
        if error is not None:
            self._store_dirty = True  # the store keeps the batch for the next flush
            self.store_failing = True
            self.log.error("Queue store write failed: %s; dropping the held replies", error)
            for conn in held:
                conn.closed = True
                conn.abort()
            self.timers.call_later(0.5, self._store_changed)  # retry, but do not spin
            return
        self._store_committed(self._commit_started)
        for conn, data in held.items():
            if not conn.closed:
                self._write(conn, data)
        if self._dirty or self._store_dirty:
            self._flush()

    def _finish_commit_now(self) -> None:
        """On stop: complete the commit in flight synchronously and send what it held."""
        if self._committing:
            self._committing = False
            held, self._held = self._held, {}
            if self._commit_store():
                for conn, data in held.items():
                    if not conn.closed:
                        self._write(conn, data)

    def _close(self, conn: Session) -> None:
        """Close after writing what is queued for the peer."""
        if conn.closed:
            return
        held = self._held.pop(conn, b"") if self._held else b""
        if conn.out or held:
            if not (self._store_dirty or self._committing) or self._commit_store():
                conn.write(held + b"".join(conn.out))
            conn.out.clear()
        conn.closed = True
        conn.close()

    def _reply(self, request: ServerAdminRequest, data: bytes) -> None:
        """Write an admin reply now, so a peer that asks and never reads hits
        ``max_output_buffer`` before its replies pile up in memory."""
        conn = cast(Session, request.connection)
        if conn.closed:
            return
        if self._committing or self._store_dirty or conn in self._held:
            self._send(conn, data)  # after this turn's binary replies, which wait for the store
            return
        if conn.out:
            data = b"".join((*conn.out, data))
            conn.out.clear()
        self._write(conn, data)

    def _reply_lines(self, request: ServerAdminRequest, lines: Iterable[bytes]) -> None:
        """Write a listing in chunks and end it with ``.``; never the whole of it at once."""
        conn = cast(Session, request.connection)
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            chunk.append(line)
            size += len(line)
            if size >= LISTING_CHUNK:
                self._reply(request, b"".join(chunk))
                chunk.clear()
                size = 0
                if conn.closed:
                    return
        chunk.append(b".\n")
        self._reply(request, b"".join(chunk))
