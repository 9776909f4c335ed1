"""gear.Server(metrics_port=...): the HTTP listener's limits and /healthz, in process.

The server is real (its own loop thread, real sockets on 127.0.0.1); the
tests reach into ``server.monitor`` only to shorten its timeouts.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.geard import RawGearman
from fixtures.http_get import get
from fixtures.waiting import wait_until
from gear import constants as C
from gear.server import Server
from gear.server.counters import DURATION_BUCKETS, Histogram, JobCounters
from gear.server.store import MemoryQueueStore, QueueStoreError

HOST = "127.0.0.1"


class BreakableStore(MemoryQueueStore):
    """A memory store whose commits fail while ``broken`` (a full disk, a lost database)."""

    broken = False

    def flush(self) -> None:
        if self.broken:
            raise QueueStoreError("disk full")


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server(0, host=HOST, metrics_port=0, queue_store=BreakableStore())
    yield srv
    srv.shutdown()


def healthz(port: int) -> tuple[int, bytes]:
    status, _, body = get(port, "/healthz")
    return status, body


def test_healthz_is_503_while_the_store_fails_and_200_once_it_commits(server: Server) -> None:
    assert server.monitor is not None
    port = server.monitor.port
    assert healthz(port) == (200, b"ok\n")
    store = server.queue_store
    assert isinstance(store, BreakableStore)
    store.broken = True
    with RawGearman(server.port) as raw:
        raw.send(C.SUBMIT_JOB_BG, b"f\0\0x")
        assert raw.closed_by_server()  # no JOB_CREATED for a job that is not stored
    assert healthz(port) == (503, b"queue store failing\n")
    store.broken = False
    with RawGearman(server.port) as raw:  # the next commit succeeds
        raw.send(C.SUBMIT_JOB_BG, b"f\0\0y")
        raw.expect(C.JOB_CREATED)
    assert healthz(port) == (200, b"ok\n")


def test_a_slow_request_is_answered_408_and_closed(server: Server) -> None:
    assert server.monitor is not None
    server.monitor.listener.request_timeout = 0.2
    with socket.create_connection((HOST, server.monitor.port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        reply = b""
        for _ in range(100):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_a_client_that_never_reads_is_cut_off(server: Server) -> None:
    assert server.monitor is not None
    server.monitor.listener.connection_timeout = 0.3
    with socket.create_connection((HOST, server.monitor.port), timeout=10) as sock:
        sock.settimeout(10)
        # Holds the connection open without sending a request.
        assert sock.recv(1) == b""  # closed by the server at the deadline


def test_connections_past_the_cap_are_closed_at_once(server: Server) -> None:
    assert server.monitor is not None
    server.monitor.listener.max_connections = 3
    held = [socket.create_connection((HOST, server.monitor.port), timeout=10) for _ in range(3)]
    try:
        wait_until(
            lambda: len(server.monitor.listener.connections) == 3,  # type: ignore[union-attr]
            interval=0.02,
        )
        with socket.create_connection((HOST, server.monitor.port), timeout=10) as extra:
            try:
                assert extra.recv(1) == b""
            except ConnectionResetError:
                pass  # aborted: as closed as it gets
        assert healthz_after_release(held, server.monitor.port) == (200, b"ok\n")
    finally:
        for sock in held:
            sock.close()


def healthz_after_release(held: list[socket.socket], port: int) -> tuple[int, bytes]:
    for sock in held:
        sock.close()
    held.clear()
    deadline = time.monotonic() + 10
    while True:
        try:
            return healthz(port)
        except (ConnectionResetError, http.client.RemoteDisconnected):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_histogram_buckets_are_cumulative_and_end_with_inf() -> None:
    histogram = Histogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 7.0):
        histogram.observe(seconds)
    assert histogram.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert histogram.total == pytest.approx(7.65)


def test_counters_fold_names_past_the_limit_into_other() -> None:
    counters = JobCounters(2)
    for name in (b"a", b"b", b"c", b"d"):
        counters.counts(name).submitted[0] += 1
    counters.counts(b"d").ended(0, 0.5)
    counters.counts(b"d").ended(1, -1.0)  # never ran: counted, without a duration
    assert sorted(counters.functions) == [b"a", b"b"]
    assert counters.other.submitted == [2, 0, 0] and counters.other.finished == [1, 1, 0]
    assert counters.label(b"c") == b"__other__" and counters.label(b"a") == b"a"
    assert counters.other.duration.counts[DURATION_BUCKETS.index(0.5)] == 1
    assert sum(counters.other.duration.counts) == 1


def test_a_failed_start_leaves_the_metrics_port_free(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    with pytest.raises(QueueStoreError):
        Server(0, host=HOST, metrics_port=port, queue_file=tmp_path / "no" / "such" / "q.db")
    with socket.socket() as again:
        again.bind((HOST, port))  # nothing holds it


def test_a_host_header_for_another_name_is_refused_on_loopback(server: Server) -> None:
    assert server.monitor is not None
    with socket.create_connection((HOST, server.monitor.port), timeout=10) as sock:
        sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: attacker.example\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 403 ")
