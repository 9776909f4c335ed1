"""geard against an attacker: each test plays one attack of issue 14 on a real
``geard`` process (TLS where the attack is on the TLS port) and checks that
the server refuses it, stays up and stays small.

Memory is read from ``/proc/PID/status`` of the geard process: ``VmRSS``
(resident now) and ``VmHWM`` (peak since start).
"""

from __future__ import annotations

import logging
import resource
import socket
import sqlite3
import ssl
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import gear
from fixtures.certs import Certs
from fixtures.geard import GEARD, LOOPBACK, RawGearman, echo_once
from fixtures.geard_process import GeardProcess, drain_to_echo, running_geard
from fixtures.servers import free_port
from fixtures.tls import client_context, geard_tls_flags
from fixtures.waiting import wait_until
from gear import constants as C
from gear.codec import encode_packet

TENANTS = """\
[client]
invoke = ^(job-a|allowed)$
register = ^a$
[worker]
register = ^allowed$
"""
OPERATORS = """\
[ops]
admin = true
[odd]
register = x\x0by
"""


def _acl_geard(tmp_path: Path, certs: Certs, text: str) -> Iterator[GeardProcess]:
    acl = tmp_path / "acl.ini"
    acl.write_text(text)
    with running_geard(tmp_path, *geard_tls_flags(certs), "--acl", str(acl)) as geard:
        yield geard


@pytest.fixture
def acl_geard(tmp_path: Path, certs: Certs) -> Iterator[GeardProcess]:
    """TLS geard whose ACL knows tenants only (a file gear's old server reads too)."""
    yield from _acl_geard(tmp_path, certs, TENANTS)


@pytest.fixture
def admin_acl_geard(tmp_path: Path, certs: Certs) -> Iterator[GeardProcess]:
    """TLS geard whose ACL also has an operator with the ``admin`` permission."""
    yield from _acl_geard(tmp_path, certs, TENANTS + OPERATORS)


def tls(geard: GeardProcess, certs: Certs, cn: str) -> RawGearman:
    return RawGearman(geard.port, ssl_context=client_context(certs.ca, certs.pair(cn)))


def error_code(conn: RawGearman) -> bytes:
    return conn.expect(C.ERROR).split(b"\0")[0]


# -- 1. state-changing admin commands need the admin permission -------------


CHANGES = [
    "shutdown",
    "shutdown graceful",
    "maxqueue job-a 1",
    "create function made-up",
    "drop function job-a",
]


def test_admin_commands_that_change_state_need_admin(
    admin_acl_geard: GeardProcess, certs: Certs
) -> None:
    with (
        tls(admin_acl_geard, certs, "client") as client,
        tls(admin_acl_geard, certs, "nobody") as nobody,
    ):
        for peer in (client, nobody):
            for command in CHANGES:
                assert peer.admin(command) == b"ERR PERMISSION_DENIED\n", command
        # Read-only commands stay open to every certificate the CA signed.
        assert nobody.admin("status") == b".\n"
        assert nobody.admin("version").startswith(b"OK ")
        assert nobody.admin("workers").endswith(b".\n")
        # The denied maxqueue set nothing: the tenant still submits.
        for _ in range(2):
            client.submit(b"job-a", b"x", ptype=C.SUBMIT_JOB_BG)
        assert client.admin("status") == b"job-a\t2\t0\t0\n.\n"
        # acl list: gear 0.16's lines, admin=True where set, control bytes escaped.
        listing = client.admin("acl list")
        assert b"ops\tregister=None\tinvoke=None\tgrant=None\tadmin=True\n" in listing
        assert b"odd\tregister=x\\x0by\tinvoke=None\tgrant=None\n" in listing
        assert not set(listing) & (set(range(32)) - {9, 10})
    with tls(admin_acl_geard, certs, "ops") as ops:
        assert ops.admin("maxqueue job-a 1") == b"OK\n"
        assert ops.admin("create function made-up") == b"OK\n"
        assert b"made-up\t0\t0\t0\n" in ops.admin("status")
        assert ops.admin("drop function made-up") == b"OK\n"
        assert ops.admin("shutdown") == b"OK\n"
    assert admin_acl_geard.proc.wait(10) == 0


# -- 2. ACL patterns: $ is the end of the name ----------------------------------


def test_acl_dollar_does_not_admit_a_trailing_newline(
    acl_geard: GeardProcess, certs: Certs
) -> None:
    with tls(acl_geard, certs, "client") as worker:
        worker.send(C.CAN_DO, b"a\n")
        worker.expect(C.ERROR)
        worker.send(C.CAN_DO, b"a")
        worker.sync()
        assert worker.admin("status") == b"a\t0\t0\t1\n.\n"


# -- 3. the TLS port: handshakes count, time out; accept backs off --------------


def test_tls_handshakes_count_toward_the_limit_and_time_out(tmp_path: Path, certs: Certs) -> None:
    flags = ("--max-connections", "8", "--tls-handshake-timeout", "1")
    with running_geard(tmp_path, *geard_tls_flags(certs), *flags) as geard:
        context = client_context(certs.ca, certs.client)
        # spawn_geard's readiness probe connected and left: wait until it is gone
        # (how a peer leaving mid-handshake is reported depends on the loop and
        # on timing, so take either line).
        wait_until(lambda: "TLS handshake" in geard.log_text(), what="probe not seen")
        silent = [socket.create_connection((LOOPBACK, geard.port)) for _ in range(8)]
        try:
            # Eight connections that never send a ClientHello fill the limit
            # (the accept queue is FIFO, so they are taken before this one) ...
            with pytest.raises((OSError, EOFError, TimeoutError)):
                echo_once(geard.port, context, timeout=5)
            # ... until their handshake timeout closes them.
            for sock in silent:
                sock.settimeout(10)
                assert sock.recv(1) == b"", "a silent connection was not closed"
        finally:
            for sock in silent:
                sock.close()
        # A closed socket's EOF can reach us just before geard's loop has counted
        # the connection out: the limit frees up within moments, not at once.
        wait_until(
            lambda: _echo_ok(geard.port, context),
            timeout=10,
            interval=0.1,
            what="no TLS client served once the silent connections were closed",
        )
        wait_until(lambda: "TLS handshake timed out" in geard.log_text(), what="no timeout logged")


def _low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))


def test_accept_backs_off_when_descriptors_run_out(tmp_path: Path) -> None:
    with running_geard(
        tmp_path, "--max-connections", "1000", preexec_fn=_low_descriptor_limit
    ) as geard:
        flood = [socket.create_connection((LOOPBACK, geard.port)) for _ in range(80)]
        try:
            wait_until(lambda: "Cannot accept" in geard.log_text(), what="no EMFILE log line")
            wait_until(
                lambda: "times in the last" in geard.log_text(),
                what="no summary line with a count of the accept failures",
            )
            lines = [x for x in geard.log_text().splitlines() if "Cannot accept" in x]
            assert len(lines) <= 3, lines
        finally:
            for sock in flood:
                sock.close()
        # Descriptors are free again: geard accepts and serves.
        wait_until(lambda: _echo_ok(geard.port), timeout=10, interval=0.2)
        assert geard.proc.poll() is None


def _echo_ok(port: int, context: ssl.SSLContext | None = None) -> bool:
    try:
        return echo_once(port, context, timeout=2) == b"x"
    except (OSError, EOFError, TimeoutError):
        return False


# -- 4. listings cannot be forged ------------------------------------------------


def test_listed_fields_cannot_forge_listing_lines(tmp_path: Path) -> None:
    with (
        running_geard(tmp_path) as geard,
        RawGearman(geard.port) as attacker,
        RawGearman(geard.port) as worker,
    ):
        for ptype, payload in [
            (C.CAN_DO, b"x\n.\ny"),
            (C.CAN_DO, b"ERR forged"),
            (C.CAN_DO_TIMEOUT, b"tab\there\x0010"),
            (C.SET_CLIENT_ID, b"me\n.\n99 1.2.3.4 forged : zzz"),
            (C.SUBMIT_JOB_BG, b"f\0u\n.\nv\0x"),
            (C.SUBMIT_JOB_BG, b"f\0.\0x"),
            (C.SUBMIT_JOB_BG, b"f\0ERR x\0x"),
            (C.SUBMIT_JOB_BG, b"bad\rname\0\0x"),
        ]:
            attacker.send(ptype, payload)
            assert error_code(attacker) == b"INVALID_ARGUMENTS", payload
        # What stays allowed (spaces, dots) is read back whole by gear's classes.
        worker.send(C.SET_CLIENT_ID, b"Zuul Merger")
        worker.send(C.CAN_DO, b"build:my job")
        worker.sync()
        attacker.submit(b"build:my job", b"x", unique=b"a b", ptype=C.SUBMIT_JOB_BG)
        attacker.submit(b".", b"x", unique=b"..", ptype=C.SUBMIT_JOB_BG)
        client = gear.Client("reader")
        try:
            client.addServer(LOOPBACK, geard.port)
            client.waitForServer(10)
            replies = {}
            for request in (
                gear.StatusAdminRequest(),
                gear.WorkersAdminRequest(),
                gear.ShowUniqueJobsAdminRequest(),
            ):
                client.getConnection().sendAdminRequest(request, timeout=10)
                assert request.response is not None
                replies[request.command] = request.response
        finally:
            client.shutdown()
    assert set(replies[b"status"].splitlines()) == {
        b"build:my job\t1\t0\t1",
        b".\t1\t0\t0",
        b".",
    }
    assert b" Zuul Merger : build:my job\n" in replies[b"workers"]
    assert b"forged" not in replies[b"workers"]
    assert set(replies[b"show unique jobs"].splitlines()) == {b"a b", b"..", b"."}


# -- 5. bounded memory ------------------------------------------------------------


def _rounds_of_distinct_names(geard: GeardProcess, round_no: int, count: int) -> None:
    """One client submits ``count`` jobs and one worker registers ``count``
    functions, all with distinct 400-byte names; then both disconnect."""
    pad = b"n" * 380
    with RawGearman(geard.port) as client, RawGearman(geard.port) as worker:
        names = [b"%s-%d-%06d" % (pad, round_no, i) for i in range(count)]
        client.send_raw(b"".join(encode_packet(C.REQ, C.SUBMIT_JOB, n + b"\0\0x") for n in names))
        worker.send_raw(b"".join(encode_packet(C.REQ, C.CAN_DO, n + b"-w") for n in names))
        assert len(drain_to_echo(client)) == count
        assert drain_to_echo(worker) == []


def test_function_records_are_freed(tmp_path: Path) -> None:
    """5,000 distinct submitted and 5,000 registered names per round, then gone.

    gear's old server kept every record: +35 MB of RSS per round. Two rounds
    warm the allocator up; three more must not grow RSS by much (it plateaus).
    """
    with running_geard(tmp_path) as geard, RawGearman(geard.port) as admin:
        for round_no in range(5):
            if round_no == 2:
                baseline = geard.rss_mb()
            _rounds_of_distinct_names(geard, round_no, 5000)
            wait_until(lambda: admin.admin("status") == b".\n", what="functions not freed")
        grown = geard.rss_mb() - baseline
        print("RSS after 2 rounds: %.1f MB, grown over 3 more: %.1f MB" % (baseline, grown))
        assert grown < 25, "RSS grew %.1f MB for functions nobody uses" % grown
        # An explicit maxqueue and a created function are kept without jobs or workers.
        assert admin.admin("maxqueue kept 2") == b"OK\n"
        assert admin.admin("create function made") == b"OK\n"
        assert admin.admin("status") == b"made\t0\t0\t0\n.\n"
        for _ in range(2):
            admin.submit(b"kept", b"x", ptype=C.SUBMIT_JOB_BG)
        admin.send(C.SUBMIT_JOB_BG, b"kept\0\0over")
        assert error_code(admin) == b"QUEUE_FULL"


def test_name_size_limits(tmp_path: Path) -> None:
    with running_geard(tmp_path) as geard, RawGearman(geard.port) as peer:
        for ptype, payload in [
            (C.CAN_DO, b"f" * 513),
            (C.SUBMIT_JOB_BG, b"f" * 513 + b"\0\0x"),
            (C.SUBMIT_JOB_BG, b"f\0" + b"u" * 65 + b"\0x"),
            (C.SET_CLIENT_ID, b"c" * 129),
        ]:
            peer.send(ptype, payload)
            assert error_code(peer) == b"INVALID_ARGUMENTS"
        assert peer.admin(b"maxqueue " + b"f" * 513 + b" 1").startswith(b"ERR INVALID_ARGUMENTS")
        peer.send(C.CAN_DO, b"f" * 512)
        peer.submit(b"g", b"x", unique=b"u" * 64, ptype=C.SUBMIT_JOB_BG)
        peer.send(C.SET_CLIENT_ID, b"c" * 128)
        peer.sync()
    with running_geard(tmp_path, "--max-function-name", "8") as geard:
        with RawGearman(geard.port) as peer:
            peer.send(C.CAN_DO, b"123456789")
            assert error_code(peer) == b"INVALID_ARGUMENTS"


def test_admin_listing_flood_is_bounded(tmp_path: Path) -> None:
    """300 ``status`` requests of 200 KB replies from a peer that never reads."""
    with running_geard(tmp_path, "--max-output-buffer", str(4 * 1024 * 1024)) as geard:
        with RawGearman(geard.port) as worker:
            worker.send_raw(
                b"".join(
                    encode_packet(C.REQ, C.CAN_DO, b"%s-%03d" % (b"s" * 490, i)) for i in range(400)
                )
            )
            worker.sync()
            before = geard.peak_mb()
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((LOOPBACK, geard.port))
            with sock:
                sock.sendall(b"status\n" * 300)
                sock.settimeout(10)
                sock.shutdown(socket.SHUT_WR)
                wait_until(lambda: "more than" in geard.log_text(), what="reader not cut off")
            grown = geard.peak_mb() - before
            print("peak RSS %.1f MB before, +%.1f MB after the flood" % (before, grown))
            assert grown < 30, "peak RSS grew %.1f MB" % grown
            worker.sync()


def test_total_unfinished_input_is_capped(tmp_path: Path) -> None:
    mib = 1024 * 1024
    with running_geard(tmp_path, "--max-partial-total", str(8 * mib)) as geard:
        before = geard.rss_mb()
        holders = [RawGearman(geard.port) for _ in range(4)]
        try:
            for conn in holders:
                try:
                    conn.send_raw(struct.pack("!4sII", C.REQ, C.ECHO_REQ, 16 * mib))
                    conn.send_raw(b"\0" * (3 * mib))
                except OSError:
                    pass  # already cut off
            closed = [conn for conn in holders if conn.closed_by_server(timeout=5)]
            assert closed, "12 MiB of unfinished packets held under an 8 MiB total cap"
            assert geard.rss_mb() - before < 20
            assert "unfinished input" in geard.log_text()
        finally:
            for conn in holders:
                conn.close()
        assert echo_once(geard.port) == b"x"


# -- 6. overflowing numbers ---------------------------------------------------------


def test_overflowing_numbers_are_invalid_arguments(tmp_path: Path) -> None:
    huge = b"9" * 400
    with running_geard(tmp_path) as geard, RawGearman(geard.port) as peer:
        peer.send(C.CAN_DO_TIMEOUT, b"f\0" + huge)
        assert error_code(peer) == b"INVALID_ARGUMENTS"
        peer.send(C.SUBMIT_JOB_EPOCH, b"f\0\0" + huge + b"\0x")
        assert error_code(peer) == b"INVALID_ARGUMENTS"
        peer.sync()
        assert peer.admin("status") == b".\n"
    assert "Traceback" not in geard.log_text()


# -- 7. a queue file that would start empty is refused ------------------------------


@pytest.mark.parametrize("kind", ["empty", "foreign"])
def test_queue_file_that_is_not_ours_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "queue.db"
    if kind == "empty":
        path.write_bytes(b"")
        expected = "is empty"
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE jobs (x)")
        expected = "not a gear queue file"
    argv = [*GEARD, "-d", "-p", str(free_port()), "--listen-address", LOOPBACK]
    try:
        done = subprocess.run(
            [*argv, "--queue-file", str(path)], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("geard started on a %s queue file" % kind) from None
    assert done.returncode != 0
    assert expected in done.stderr and str(path) in done.stderr


# -- 8. a threaded Worker with one forbidden function serves the others ------------


def test_threaded_worker_keeps_serving_after_a_refused_can_do(
    acl_geard: GeardProcess, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    pair = certs.pair("worker")
    worker = gear.Worker("w")
    try:
        worker.addServer(LOOPBACK, acl_geard.port, pair.key, pair.cert, certs.ca)
        worker.registerFunction("allowed")
        worker.registerFunction("forbidden")
        worker.waitForServer()
        with caplog.at_level(logging.ERROR, logger="gear.Worker.w"):
            with tls(acl_geard, certs, "client") as client:
                handle = client.submit(b"allowed", b"ping")
                got: list[gear.WorkerJob] = []
                thread = threading.Thread(target=lambda: got.append(worker.getJob()))
                thread.start()
                thread.join(15)
                assert got, "the worker never got the allowed job"
                got[0].sendWorkComplete(b"pong")
                assert client.expect(C.WORK_COMPLETE) == handle + b"\0pong"
    finally:
        worker.shutdown()
    denials = [x for x in acl_geard.log_text().splitlines() if "ACL denied" in x]
    assert len(denials) == 1, denials
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and "forbidden" in refused[0].getMessage()
