"""The SQL of the PostgreSQL queue store, and the pure helpers around it.

Kept apart from :mod:`gear.server.postgres_store` (the asyncio side) so the
statements can be read in one place: two tables, ``gear_nodes`` (one row per
node: its epoch and lease) and ``gear_jobs`` (one row per background job,
owned by one node), and the few statements that change them.

Why the store works as it does:

* **One statement per commit.** The changes of one event-loop turn (new
  rows, deleted rows, retry counts) go to the database as arrays in one
  statement whose data-modifying CTEs run in one implicit transaction: one
  round trip, however many jobs. While it runs the loop keeps reading, so
  the next batch grows under load (group commit); the server holds the
  turn's replies until it returns, so JOB_CREATED means committed. A batch
  with no new job (completions, retry counts) holds no reply: losing it
  means a job runs again, never a lost job.
* **Leases, not heartbeats of jobs.** Each node has a row in ``gear_nodes``
  with a lease it renews every second (by the database's clock, so the
  nodes' clocks do not matter). A node that finds another's lease expired
  deletes that row and takes its jobs in the same transaction: two
  survivors cannot both adopt them.
* **Fencing.** Every write first locks the node's own row ``FOR SHARE`` with
  its epoch; a node whose row was deleted (adopted) or re-registered writes
  nothing and drops its queued background jobs. A node that cannot renew
  drops them on its own when its lease runs out by its monotonic clock,
  which is never later than the database's view of the same lease.
* **Coalescing across nodes.** A unique index on (function, unique id) for
  non-empty unique ids; a new job that collides is not inserted, and the
  node drops its copy, so the job runs once in the cluster. Empty unique ids
  are stored as NULL and never collide.
* **Outages.** When the database is unreachable the store's ``available``
  is False (background submits get ERROR), deletes and retry counts wait in memory,
  the outage is logged once with its cause, and a task reconnects with
  back-off. Anything a peer makes this node write is bounded by the
  server's packet and field limits; large batches are split into
  statements of at most :data:`MAX_BATCH_BYTES`.

Credentials: the URL is never logged or listed (see :func:`redact`); prefer
a ``.pgpass`` file or ``PGPASSWORD`` to a password in the URL, which other
local users can read in the process list.
"""

from __future__ import annotations

import re
import socket
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gear.server.store import StoredJob

__all__ = [
    "ADOPT",
    "CLUSTER",
    "CLUSTER_VIEW_EVERY",
    "DEFAULT_NODE_LEASE",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ROWS",
    "MISSING",
    "OWN",
    "REGISTER",
    "RENEW",
    "SCHEMA",
    "SCHEMA_LOCK",
    "WRITE",
    "CommitTimes",
    "check_node_id",
    "chunks",
    "describe",
    "secrets_of",
    "write_arguments",
    "default_node_id",
    "redact",
    "stored_job",
]

DEFAULT_NODE_LEASE = 15.0
"""Seconds a node's lease lasts without renewal (``--node-lease``)."""
MAX_BATCH_BYTES = 8 * 1024 * 1024
"""Job bytes per statement; a larger batch is split (one transaction still)."""
MAX_BATCH_ROWS = 10_000
CLUSTER_VIEW_EVERY = 5.0
"""Seconds between refreshes of the cluster view
(:meth:`~gear.server.postgres_store.PostgresQueueStore.cluster_nodes`)."""
_NODE_ID = re.compile(r"[A-Za-z0-9._:@\[\]-]{1,32}")
"""A node id goes into every handle: 32 characters keep a handle within the
64 bytes libgearman reserves for one (``H:<node>.<epoch>:<n>``)."""
SCHEMA = (
    "CREATE SEQUENCE IF NOT EXISTS gear_epoch",
    """CREATE TABLE IF NOT EXISTS gear_nodes (
        node_id text PRIMARY KEY,
        epoch bigint NOT NULL,
        lease_until timestamptz NOT NULL,
        started timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS gear_jobs (
        handle bytea PRIMARY KEY,
        owner text NOT NULL,
        seq bigint NOT NULL,
        name bytea NOT NULL,
        uniq bytea,
        arguments bytea NOT NULL,
        precedence smallint NOT NULL,
        run_at double precision,
        attempts integer NOT NULL DEFAULT 0,
        adopted boolean NOT NULL DEFAULT false
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS gear_jobs_unique ON gear_jobs (name, uniq)"
    " WHERE uniq IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS gear_jobs_owner ON gear_jobs (owner, seq)",
)
SCHEMA_LOCK = 0x67656172  # advisory lock: nodes starting together create it once

WRITE = """
WITH fence AS (
    SELECT 1 FROM gear_nodes WHERE node_id = $1 AND epoch = $2 FOR SHARE
), ins AS (
    INSERT INTO gear_jobs (handle, owner, name, uniq, arguments, precedence, run_at, attempts, seq)
    SELECT h, $1, n, u, a, p, w, t, q
    FROM unnest($3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::int2[],
                $8::float8[], $9::int4[], $13::int8[]) AS j(h, n, u, a, p, w, t, q)
    WHERE EXISTS (SELECT 1 FROM fence)
    ON CONFLICT DO NOTHING
    RETURNING handle
), del AS (
    DELETE FROM gear_jobs
    WHERE handle = ANY($10::bytea[]) AND owner = $1 AND EXISTS (SELECT 1 FROM fence)
), upd AS (
    UPDATE gear_jobs SET attempts = v.t
    FROM unnest($11::bytea[], $12::int4[]) AS v(h, t)
    WHERE gear_jobs.handle = v.h AND gear_jobs.owner = $1 AND EXISTS (SELECT 1 FROM fence)
)
SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM ins)
"""
"""Fence check, inserts, deletes and retry counts in one statement; the
number of rows inserted comes back. ``seq`` (FIFO order on reload) is the
epoch and a counter, so no sequence is called per row."""
MISSING = """
SELECT h FROM unnest($1::bytea[]) AS h
WHERE NOT EXISTS (SELECT 1 FROM gear_jobs WHERE handle = h)
"""
"""When fewer rows were inserted than sent: the handles with no row
collided on their unique id with another node's job (the others are ours,
from an earlier attempt whose answer was lost)."""

REGISTER = """
INSERT INTO gear_nodes (node_id, epoch, lease_until)
VALUES ($1, nextval('gear_epoch'), now() + make_interval(secs => $2))
ON CONFLICT (node_id) DO UPDATE
SET epoch = EXCLUDED.epoch, lease_until = EXCLUDED.lease_until, started = now()
RETURNING epoch
"""
RENEW = """
UPDATE gear_nodes SET lease_until = now() + make_interval(secs => $3)
WHERE node_id = $1 AND epoch = $2 RETURNING epoch
"""
ADOPT = """
WITH dead AS (
    DELETE FROM gear_nodes WHERE lease_until < now() AND node_id <> $1 RETURNING node_id
)
UPDATE gear_jobs SET owner = $1, adopted = true
WHERE owner IN (SELECT node_id FROM dead)
RETURNING handle, name, uniq, arguments, precedence, run_at, attempts, seq
"""
OWN = """
SELECT handle, name, uniq, arguments, precedence, run_at, attempts, seq, adopted
FROM gear_jobs WHERE owner = $1 ORDER BY seq
"""
CLUSTER = """
SELECT n.node_id, n.epoch, extract(epoch FROM n.lease_until - now())::float8,
       coalesce(c.jobs, 0)
FROM gear_nodes n LEFT JOIN (
    SELECT owner, count(*) AS jobs FROM gear_jobs GROUP BY owner
) c ON c.owner = n.node_id
ORDER BY n.node_id
"""


def redact(url: str) -> str:
    """``url`` without its password (or any query parameters): safe to log."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = "[%s]" % host
        netloc = host + (":%d" % parts.port if parts.port else "")
        if parts.username:
            netloc = urllib.parse.quote(urllib.parse.unquote(parts.username)) + "@" + netloc
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparsable PostgreSQL URL>"


def default_node_id(host: str | None, port: int) -> str:
    """``HOSTNAME:PORT`` (the listen address when one is given): stable across restarts."""
    name = host if host and host not in ("0.0.0.0", "::") else socket.gethostname()
    for candidate in (name, name.split(".")[0]):
        node = "%s:%d" % (candidate, port)
        if _NODE_ID.fullmatch(node):
            return node
    raise ValueError("cannot make a node id of %r: give one (--node-id)" % name)


def check_node_id(node_id: str) -> str:
    """Refuse a node id that could not be printed on one listing line."""
    if not _NODE_ID.fullmatch(node_id):
        raise ValueError("node id must be 1 to 32 characters of letters, digits and . _ : @ - [ ]")
    return node_id


@dataclass
class CommitTimes:
    """A histogram of commit durations (``geard_store_commit_seconds``)."""

    bounds: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
    counts: list[int] = field(default_factory=lambda: [0] * 10)
    """Commits per bucket: ``counts[i]`` took at most ``bounds[i]``; the last, longer."""
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.total += seconds
        self.count += 1
        for i, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1


def chunks(rows: list[tuple[Any, ...]]) -> Iterable[list[tuple[Any, ...]]]:
    """Split rows into statements of bounded size; always at least one."""
    chunk: list[tuple[Any, ...]] = []
    size = 0
    for row in rows:
        weight = len(row[0]) + len(row[1]) + len(row[2] or b"") + len(row[3]) + 64
        if chunk and (size + weight > MAX_BATCH_BYTES or len(chunk) >= MAX_BATCH_ROWS):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += weight
    yield chunk


def stored_job(row: Any, adopted: bool) -> StoredJob:
    return StoredJob(
        bytes(row["handle"]),
        bytes(row["name"]),
        None if row["uniq"] is None else bytes(row["uniq"]),
        bytes(row["arguments"]),
        int(row["precedence"]),
        row["run_at"],
        int(row["attempts"]),
        bool(adopted),
    )


def write_arguments(
    node_id: str,
    epoch: int,
    rows: list[tuple[Any, ...]],
    removes: Iterable[bytes],
    attempts: dict[bytes, int],
) -> tuple[object, ...]:
    """The parameters of :data:`WRITE`: one array per column."""
    return (
        node_id,
        epoch,
        *([r[k] for r in rows] for k in range(7)),
        list(removes),
        list(attempts),
        list(attempts.values()),
        [r[7] for r in rows],
    )


def secrets_of(url: str) -> list[str]:
    """The password(s) in ``url``: never to be printed."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return []
    found = [parts.password] if parts.password else []
    return found + urllib.parse.parse_qs(parts.query).get("password", [])


def describe(error: BaseException, secrets: list[str]) -> str:
    """One line about ``error``, with ``secrets`` blanked out."""
    text = str(error).splitlines()[0] if str(error) else ""
    for secret in secrets:
        text = text.replace(secret, "***")
    return "%s: %s" % (type(error).__name__, text) if text else type(error).__name__
