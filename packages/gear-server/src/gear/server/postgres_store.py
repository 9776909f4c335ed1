"""A queue store shared by a cluster of geard nodes, in PostgreSQL.

``geard --queue-url postgresql://USER@HOST:PORT/DB`` (the ``postgres``
extra installs asyncpg). This module is the asyncio side: connecting,
the lease loop (renew, adopt, fence), group commits and outages. The
statements, and why they look the way they do, are in
:mod:`gear.server.postgres_schema`.

Credentials: the URL is never logged or listed (see
:func:`~gear.server.postgres_schema.redact`); prefer a ``.pgpass`` file or
``PGPASSWORD`` to a password in the URL, which other local users can read
in the process list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from gear.server.postgres_schema import (
    ADOPT,
    CLUSTER,
    CLUSTER_VIEW_EVERY,
    DEFAULT_NODE_LEASE,
    MISSING,
    OWN,
    REGISTER,
    RENEW,
    SCHEMA,
    SCHEMA_LOCK,
    WRITE,
    CommitTimes,
    check_node_id,
    chunks,
    describe,
    redact,
    secrets_of,
    stored_job,
    write_arguments,
)
from gear.server.store import NodeLease, QueueStore, QueueStoreError, StoredJob, StoreListener

__all__ = ["PostgresQueueStore"]

_log = logging.getLogger("gear.server.postgres_store")


class _Fenced(Exception):
    """Our node row is gone or has another epoch: another node took over."""


class PostgresQueueStore(QueueStore):
    """Background jobs of several geard nodes in one PostgreSQL database.

    ``url`` is a libpq-style ``postgresql://`` URL (never logged);
    ``node_id`` names this node in the cluster (and in job handles),
    ``lease`` is how long it stays the owner of its jobs without renewing.
    Every method runs on the server's event loop;
    :meth:`~gear.server.store.QueueStore.open` connects.
    """

    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        lease: float = DEFAULT_NODE_LEASE,
        connect_timeout: float = 10.0,
    ) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise QueueStoreError("the queue URL must start with postgresql://")
        if not lease > 0:
            raise ValueError("the node lease must be positive")
        self.url = url
        self.where = redact(url)
        self.node_id = check_node_id(node_id)
        self.lease = float(lease)
        self.interval = min(1.0, self.lease / 3)
        """Seconds between renewals (and looks for expired peers)."""
        self.connect_timeout = connect_timeout
        self.available = False
        self.commit_times = CommitTimes()
        self.epoch = 0
        self._listener: StoreListener | None = None
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._adds: dict[bytes, tuple[Any, ...]] = {}
        self._deferred: dict[bytes, tuple[Any, ...]] = {}
        """Rows whose submitters already got an error: written when we can."""
        self._removes: set[bytes] = set()
        self._attempts: dict[bytes, int] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._inflight_adds: set[asyncio.Task[None]] = set()
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._initial: list[StoredJob] = []
        self._nodes: tuple[NodeLease, ...] = ()
        self._view_due = 0.0
        self._unloaded = False
        self._outage_since: float | None = None
        self._reconnecting = False
        self._poisoned: set[bytes] = set()
        """New jobs not yet committed when the node gave up its jobs: the
        next flush fails them (their submitters must not hear JOB_CREATED)."""
        self._closing = False
        self._secrets = secrets_of(url)

    # -- connecting -----------------------------------------------------

    async def open(self, listener: StoreListener) -> None:
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise QueueStoreError(
                "PostgreSQL needs asyncpg: pip install 'gear-server[postgres]'"
            ) from None
        self._listener = listener
        try:
            conn = await self._connect()
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                for statement in SCHEMA:
                    await conn.execute(statement)
            await self._register(conn)
            await self._refresh_view(conn)
            self._initial = [
                stored_job(row, row["adopted"]) for row in await conn.fetch(OWN, self.node_id)
            ]
        except QueueStoreError:
            raise
        except Exception as e:
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None
            raise QueueStoreError(
                "cannot use the queue database %s: %s" % (self.where, self._cause(e))
            )
        self.available = True
        info = (self.where, self.node_id, self.epoch, self.lease, len(self._initial))
        _log.info("Queue store %s: node %s, epoch %d, lease %gs, %d jobs of ours", *info)
        self._spawn(self._lease_loop())

    async def _connect(self) -> Any:
        import asyncpg

        conn = await asyncpg.connect(
            self.url, timeout=self.connect_timeout, command_timeout=max(5.0, self.lease)
        )
        self._conn = conn
        return conn

    async def _register(self, conn: Any) -> None:
        """Take a fresh epoch: handles of this incarnation cannot collide."""
        started = time.monotonic()
        self.epoch = int(await conn.fetchval(REGISTER, self.node_id, self.lease))
        self.lease_deadline = started + self.lease
        listener = self._listener
        if listener is not None:
            listener.store_prefix(b"H:%s.%d:" % (self.node_id.encode(), self.epoch))

    def load(self) -> Iterable[StoredJob]:
        """This node's jobs left from its last run (before adoption by others)."""
        jobs, self._initial = self._initial, []
        return jobs

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the lease --------------------------------------------------------

    async def _lease_loop(self) -> None:
        first = True
        while not self._closing:
            if not first:
                await asyncio.sleep(self.interval)
            first = False
            if self._conn is None:
                self._check_local_lease()
                continue
            try:
                async with self._lock:
                    await self._renew_and_adopt()
            except _Fenced:
                await self._fenced()
            except Exception as e:
                self._lost(e)

    def _check_local_lease(self) -> None:
        if not self._unloaded and time.monotonic() > self.lease_deadline:
            self._unload("its lease expired before it could renew it")

    def expire(self) -> None:
        self._check_local_lease()

    def _unload(self, why: str) -> None:
        self.lease_deadline = math.inf  # until renewed: nothing of ours is queued
        _log.warning(
            "Node %s: %s; its queued jobs may be adopted by another node", self.node_id, why
        )
        self._unloaded = True
        self._poisoned = set(self._adds)
        self._deferred.clear()
        if self._listener is not None:
            self._listener.store_fenced()

    async def _renew_and_adopt(self) -> None:
        conn = self._conn
        started = time.monotonic()
        async with conn.transaction():
            if await conn.fetchval(RENEW, self.node_id, self.epoch, self.lease) is None:
                raise _Fenced()
            rows = await conn.fetch(ADOPT, self.node_id)
        self.lease_deadline = started + self.lease
        if self._unloaded:
            self._unloaded = False
            own = await conn.fetch(OWN, self.node_id)
            self._deliver([stored_job(r, r["adopted"]) for r in own])
        if rows:
            rows = sorted(rows, key=lambda r: r["seq"])
            _log.warning("Node %s adopted %d jobs of expired nodes", self.node_id, len(rows))
            self._deliver([stored_job(r, True) for r in rows])
        if time.monotonic() >= self._view_due or rows:
            await self._refresh_view(conn)

    async def _refresh_view(self, conn: Any) -> None:
        # Counting every node's rows reads the whole table: not every second.
        self._view_due = time.monotonic() + CLUSTER_VIEW_EVERY
        self._nodes = tuple(
            NodeLease(r[0], int(r[1]), float(r[2]), int(r[3]), r[0] == self.node_id)
            for r in await conn.fetch(CLUSTER)
        )

    def _deliver(self, jobs: list[StoredJob]) -> None:
        if jobs and self._listener is not None:
            self._listener.store_adopted(jobs)

    async def _fenced(self) -> None:
        """Another node took our jobs: forget ours, start a new epoch."""
        if not self._unloaded:
            self._unload("it was fenced (its lease expired and its jobs were adopted)")
        try:
            async with self._lock:
                await self._register(self._conn)
                self._unloaded = False
                own = await self._conn.fetch(OWN, self.node_id)
            _log.warning(
                "Node %s was fenced (another node adopted its jobs); it goes on as epoch %d",
                self.node_id,
                self.epoch,
            )
            self._deliver([stored_job(r, r["adopted"]) for r in own])
        except Exception as e:
            self._lost(e)

    # -- outages ------------------------------------------------------------

    def _lost(self, error: BaseException) -> None:
        """The database went away: say so once, refuse new jobs, reconnect."""
        if self._conn is None or self._closing or self._reconnecting:
            return
        with contextlib.suppress(Exception):
            self._conn.terminate()
        self._conn = None
        self._reconnecting = True
        self.available = False
        self._outage_since = time.monotonic()
        _log.error(
            "Queue database %s unreachable (%s): background submits get ERROR until it is back",
            self.where,
            self._cause(error),
        )
        self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.1
        while not self._closing:
            await asyncio.sleep(delay)
            delay = min(delay * 2, max(0.5, self.interval * 2))
            self._check_local_lease()
            try:
                conn = await self._connect()
            except Exception:
                self._conn = None
                continue
            try:
                async with self._lock:
                    await self._renew_and_adopt()
            except _Fenced:
                await self._fenced()
            except Exception:
                with contextlib.suppress(Exception):
                    conn.terminate()
                self._conn = None
                continue
            if self._conn is None:
                continue
            since = self._outage_since or time.monotonic()
            _log.warning(
                "Queue database %s reachable again after %.1fs",
                self.where,
                time.monotonic() - since,
            )
            self._outage_since = None
            self._reconnecting = False
            self.available = True
            return

    # -- QueueStore -----------------------------------------------------------

    def add(self, job: StoredJob) -> None:
        self._adds[job.handle] = (
            job.handle,
            job.name,
            job.unique or None,
            job.arguments,
            job.precedence,
            job.when,
            job.attempts,
            (self.epoch << 32) + self._seq,
        )
        self._seq += 1

    def remove(self, handle: bytes) -> None:
        self._attempts.pop(handle, None)
        if self._adds.pop(handle, None) is None and self._deferred.pop(handle, None) is None:
            self._removes.add(handle)

    def retried(self, handle: bytes, attempts: int) -> None:
        row = self._adds.get(handle) or self._deferred.get(handle)
        if row is not None:
            row = (*row[:6], attempts, row[7])
            if handle in self._adds:
                self._adds[handle] = row
            else:
                self._deferred[handle] = row
        else:
            self._attempts[handle] = attempts

    @property
    def pending(self) -> bool:
        return bool(self._adds or self._removes or self._attempts)

    def flush(self) -> None:
        """Only asynchronous commits exist: fail if a new job waits for one
        (deletes and retry counts are written by :meth:`aclose`)."""
        if self._adds or self._inflight_adds:
            raise QueueStoreError("the PostgreSQL store commits only on the event loop")

    def flush_async(self, done: Callable[[BaseException | None], None]) -> bool:
        if not self.pending:
            return False
        adds, removes, attempts = self._adds, self._removes, self._attempts
        self._adds, self._removes, self._attempts = {}, set(), {}
        poisoned, self._poisoned = self._poisoned, set()
        if self._unloaded or not poisoned.isdisjoint(adds):
            self._removes |= removes
            self._attempts.update(attempts)
            done(QueueStoreError("this node gave up its lease") if adds else None)
            return True
        if self._conn is None:
            # New jobs fail (no JOB_CREATED); the rest waits for the database.
            self._deferred.update(adds)
            self._removes |= removes
            self._attempts.update(attempts)
            done(QueueStoreError("queue database unreachable") if adds else None)
            return True
        deferred, self._deferred = self._deferred, {}
        if not adds:
            # Nothing to acknowledge: replies go now (see postgres_schema).
            done(None)
            done = _ignore
        task = asyncio.get_running_loop().create_task(
            self._commit(adds, deferred, removes, attempts, done)
        )
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        if adds:
            self._inflight_adds.add(task)
            task.add_done_callback(self._inflight_adds.discard)
        return True

    async def _commit(
        self,
        adds: dict[bytes, tuple[Any, ...]],
        deferred: dict[bytes, tuple[Any, ...]],
        removes: set[bytes],
        attempts: dict[bytes, int],
        done: Callable[[BaseException | None], None],
    ) -> None:
        started = time.perf_counter()
        try:
            async with self._lock:
                if self._conn is None:
                    raise ConnectionError("queue database unreachable")
                coalesced = await self._write(
                    [*deferred.values(), *adds.values()], removes, attempts
                )
        except asyncio.CancelledError:
            self._deferred.update(deferred)
            self._deferred.update(adds)
            done(QueueStoreError("the server is stopping"))
            raise
        except _Fenced:
            done(QueueStoreError("this node was fenced: its lease expired"))
            await self._fenced()
            return
        except Exception as e:
            self._deferred.update(deferred)
            self._deferred.update(adds)
            self._removes |= removes
            for handle, n in attempts.items():
                self._attempts.setdefault(handle, n)
            self._lost(e)
            done(QueueStoreError("cannot write to the queue database: %s" % self._cause(e)))
            return
        self.commit_times.observe(time.perf_counter() - started)
        if coalesced and self._listener is not None:
            self._listener.store_coalesced(coalesced)
        done(None)

    async def _write(
        self, rows: list[tuple[Any, ...]], removes: set[bytes], attempts: dict[bytes, int]
    ) -> list[bytes]:
        """Write one batch (in one transaction); return the coalesced handles."""
        conn = self._conn
        parts = list(chunks(rows))
        coalesced: list[bytes] = []
        tx = conn.transaction() if len(parts) > 1 else contextlib.nullcontext()
        async with tx:
            for i, chunk in enumerate(parts):
                last = i == len(parts) - 1
                ok, inserted = await conn.fetchrow(
                    WRITE,
                    *write_arguments(
                        self.node_id,
                        self.epoch,
                        chunk,
                        removes if last else (),
                        attempts if last else {},
                    ),
                )
                if not ok:
                    raise _Fenced()
                if inserted < len(chunk):
                    handles = [r[0] for r in chunk]
                    coalesced += [bytes(r[0]) for r in await conn.fetch(MISSING, handles)]
        return coalesced

    def _cause(self, error: BaseException) -> str:
        return describe(error, self._secrets)

    # -- what operators and dashboards read --------------------------------------

    def cluster_nodes(self) -> tuple[NodeLease, ...]:
        """The nodes sharing the database, their leases and stored jobs; refreshed
        every :data:`~gear.server.postgres_schema.CLUSTER_VIEW_EVERY` seconds and
        after an adoption, empty while the database is unreachable."""
        return self._nodes if self.available else ()

    # -- stopping -------------------------------------------------------------

    def close(self) -> None:
        self._closing = True
        self.available = False

    async def aclose(self) -> None:
        """Write the last deletes and retry counts, then disconnect."""
        self._closing = True
        self.available = False
        if self._inflight:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.gather(*self._inflight), 5)
        for task in list(self._tasks):
            task.cancel()
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            rows = [*self._deferred.values(), *self._adds.values()]
            if rows or self._removes or self._attempts:
                async with self._lock:
                    self._conn = conn
                    await asyncio.wait_for(self._write(rows, self._removes, self._attempts), 5)
            await asyncio.wait_for(conn.close(), 5)
        except BaseException:
            conn.terminate()
        finally:
            self._conn = None


def _ignore(error: BaseException | None) -> None:
    """The ``done`` of a commit whose replies went out already."""
