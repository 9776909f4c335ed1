"""Random packets and admin lines at a live TLS + ACL geard with a queue file.

Hypothesis draws batches of well-formed packets (any type, either magic,
payloads built from names, numbers and random bytes), admin lines (every
command geard knows, random arguments) and raw garbage (sent on a throwaway
connection). The fuzzing subject may submit and register ``f*`` functions
only, like any tenant. Afterwards: the server still runs, logged no
traceback and no flood of lines, still holds every background job queued
before the fuzzing, completes a canary job, and its RSS grew less than
``RSS_BOUND_MB``.

Bounded: ``EXAMPLES`` batches of at most ``MAX_ACTIONS`` actions, each
batch answered (ECHO round trip) within the connection timeout.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fixtures.certs import Certs
from fixtures.geard import RawGearman
from fixtures.geard_process import GeardProcess, drain_to_echo, running_geard
from fixtures.tls import client_context, geard_tls_flags
from gear import constants as C

EXAMPLES = 300
MAX_ACTIONS = 12
RSS_BOUND_MB = 30
KEPT = 20

ACL = """\
[fuzz]
invoke = ^f
register = ^f
[keeper]
invoke = ^(keep|canary)$
register = ^(keep|canary)$
"""

NAMES = st.one_of(
    st.sampled_from([b"f", b"fa", b"f b", b"keep", b"canary", b"", b".", b"ERR x", b"f\n.\nx"]),
    st.binary(max_size=24),
    st.integers(-(10**30), 10**30).map(lambda n: str(n).encode()),
    st.just(b"9" * 400),
    st.builds(lambda n: b"f" * n, st.integers(500, 700)),
)
PAYLOADS = st.one_of(
    st.lists(NAMES, max_size=8).map(b"\0".join),
    st.binary(max_size=96),
)
PACKET_TYPES = st.one_of(st.sampled_from(sorted(C.types)), st.integers(0, 2**32 - 1))
PACKETS = st.tuples(st.sampled_from([C.REQ, C.REQ, C.REQ, C.RES]), PACKET_TYPES, PAYLOADS).map(
    lambda t: struct.pack("!4sII", t[0], t[1], len(t[2])) + t[2]
)
VERBS = [
    b"status",
    b"workers",
    b"show jobs",
    b"show unique jobs",
    b"prioritystatus",
    b"version",
    b"getpid",
    b"verbose",
    b"maxqueue",
    b"cancel job",
    b"create function",
    b"drop function",
    b"shutdown",
    b"shutdown graceful",
    b"acl list",
    b"acl grant invoke",
    b"acl grant admin",
    b"acl revoke all",
    b"acl self-revoke",
    b"",
]
WORDS = st.one_of(NAMES, st.just(b"H:127.0.0.1:1")).map(
    lambda w: w.replace(b"\n", b"").replace(b"\r", b"")
)
ADMIN_LINES = st.tuples(st.sampled_from(VERBS), st.lists(WORDS, max_size=4)).map(
    lambda t: b" ".join([t[0], *t[1]]) + b"\n"
)
ACTIONS = st.lists(
    st.one_of(
        PACKETS.map(lambda p: ("send", p)),
        ADMIN_LINES.map(lambda line: ("send", line)),
        st.binary(min_size=1, max_size=64).map(lambda junk: ("junk", junk)),
    ),
    min_size=1,
    max_size=MAX_ACTIONS,
)


class Peers:
    """The fuzzing subject's connection, reopened when the server closes it."""

    def __init__(self, geard: GeardProcess, certs: Certs) -> None:
        self.port = geard.port
        self.context = client_context(certs.ca, certs.pair("fuzz"))
        self.conn: RawGearman | None = None

    def connect(self) -> RawGearman:
        return RawGearman(self.port, ssl_context=self.context, timeout=10)

    def run(self, actions: list[tuple[str, bytes]]) -> None:
        if self.conn is None:
            self.conn = self.connect()
        conn = self.conn
        try:
            for kind, data in actions:
                if kind == "junk":
                    with self.connect() as throwaway:
                        throwaway.send_raw(data)
                else:
                    conn.send_raw(data)
            conn.send_raw(b"\n")  # ends an admin line left open by random bytes
            drain_to_echo(conn, limit=10_000)
        except (EOFError, ConnectionError):
            conn.close()
            self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


@pytest.fixture
def fuzz_geard(tmp_path: Path, certs: Certs) -> Iterator[GeardProcess]:
    acl = tmp_path / "acl.ini"
    acl.write_text(ACL)
    flags = ["--acl", str(acl), "--queue-file", str(tmp_path / "queue.db")]
    with running_geard(tmp_path, *geard_tls_flags(certs), *flags) as geard:
        yield geard


@pytest.mark.timeout(180)
def test_random_input_loses_nothing(fuzz_geard: GeardProcess, certs: Certs) -> None:
    keeper_context = client_context(certs.ca, certs.pair("keeper"))
    with RawGearman(fuzz_geard.port, ssl_context=keeper_context) as keeper:
        kept = [
            keeper.submit(b"keep", b"job %d" % i, unique=b"k%d" % i, ptype=C.SUBMIT_JOB_BG)
            for i in range(KEPT)
        ]
    before = fuzz_geard.rss_mb()
    started = time.monotonic()
    peers = Peers(fuzz_geard, certs)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(actions=ACTIONS)
    def fuzz(actions: list[tuple[str, bytes]]) -> None:
        assert fuzz_geard.proc.poll() is None, "geard exited"
        peers.run(actions)

    try:
        fuzz()
    finally:
        peers.close()
    elapsed = time.monotonic() - started

    assert fuzz_geard.proc.poll() is None, "geard exited"
    grown = fuzz_geard.rss_mb() - before
    print("RSS %.1f MB before the fuzzing, +%.1f MB after" % (before, grown))
    assert grown < RSS_BOUND_MB
    with (
        RawGearman(fuzz_geard.port, ssl_context=keeper_context) as client,
        RawGearman(fuzz_geard.port, ssl_context=keeper_context) as worker,
    ):
        listing = client.admin("show jobs")
        assert all(handle in listing for handle in kept), "a queued background job was lost"
        assert b"keep\t%d\t0\t0\n" % KEPT in client.admin("status")
        worker.send(C.CAN_DO, b"canary")
        handle = client.submit(b"canary", b"tweet")
        assert worker.grab() == [handle, b"canary", b"", b"tweet"]
        worker.send(C.WORK_COMPLETE, handle + b"\0done")
        assert client.expect(C.WORK_COMPLETE) == handle + b"\0done"
    log = fuzz_geard.log_text()
    assert "Traceback" not in log and "Error handling" not in log, log[-3000:]
    # Every kind of complaint is logged at most once a second (then with a count).
    assert len(log.splitlines()) < 20 + 10 * elapsed, "log flooded: %d lines" % len(log)
