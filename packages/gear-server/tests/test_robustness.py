"""Malformed input and limits: the peer gets an ERROR or is closed, nobody else notices.

Every test ends with :func:`assert_healthy`: the background jobs queued
before the abuse are still there and a normal job runs end to end.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

import pytest

from fixtures.geard import Geard, RawGearman, run_job
from gear import constants as C
from gear.server import Server


@pytest.fixture
def server(geard_factory: Callable[..., Geard]) -> Geard:
    return geard_factory(max_packet_size=64 * 1024, max_admin_line=1024, partial_timeout=0.5)


@pytest.fixture
def queued(server: Geard) -> list[bytes]:
    handles = []
    with RawGearman(server.port) as c:
        for i in range(3):
            c.send(C.SUBMIT_JOB_BG, b"kept\0\0job-%d" % i)
            handles.append(c.expect(C.JOB_CREATED))
    return handles


def assert_healthy(geard: Geard, queued: list[bytes]) -> None:
    with RawGearman(geard.port) as client, RawGearman(geard.port) as worker:
        jobs = client.admin("show jobs")
        for handle in queued:
            assert handle + b"\t0\t0\t1\n" in jobs
        run_job(client, worker, b"healthy", b"ping", b"pong")


def error(conn: RawGearman) -> tuple[bytes, bytes]:
    code, text = conn.expect(C.ERROR).split(b"\0", 1)
    return code, text


def test_bad_magic_closes_only_that_peer(server: Geard, queued: list[bytes]) -> None:
    with RawGearman(server.port) as bystander, RawGearman(server.port) as bad:
        bad.send_raw(b"\0XYZ" + struct.pack("!II", 1, 0))
        code, text = error(bad)
        assert code == b"BAD_MAGIC" and b"magic" in text
        assert bad.closed_by_server()
        bystander.send(C.ECHO_REQ, b"alive")
        assert bystander.expect(C.ECHO_RES) == b"alive"
    assert_healthy(server, queued)


def test_unknown_packet_type_keeps_connection(server: Geard, queued: list[bytes]) -> None:
    with RawGearman(server.port) as conn:
        conn.send_raw(C.REQ + struct.pack("!II", 999, 3) + b"abc")
        assert error(conn)[0] == b"UNKNOWN_PACKET"
        conn.send(C.ECHO_REQ, b"ok")
        assert conn.expect(C.ECHO_RES) == b"ok"
    assert_healthy(server, queued)


def test_wrong_argument_count(server: Geard, queued: list[bytes]) -> None:
    with RawGearman(server.port) as conn:
        conn.send(C.SUBMIT_JOB, b"only-name")
        code, text = error(conn)
        assert code == b"INVALID_ARGUMENTS" and b"SUBMIT_JOB needs 3" in text
        conn.send(C.WORK_COMPLETE, b"no-nul")
        assert error(conn)[0] == b"INVALID_ARGUMENTS"
        conn.send(C.WORK_STATUS, b"h\0only")
        assert error(conn)[0] == b"INVALID_ARGUMENTS"
        conn.send(C.SUBMIT_JOB_EPOCH, b"f\0u\0not-a-number\0x")
        assert error(conn)[0] == b"INVALID_ARGUMENTS"
        conn.send(C.ECHO_REQ, b"ok")
        assert conn.expect(C.ECHO_RES) == b"ok"
    assert_healthy(server, queued)


def test_res_and_server_only_packets_from_client(server: Geard, queued: list[bytes]) -> None:
    with RawGearman(server.port) as conn:
        conn.send_raw(C.RES + struct.pack("!II", C.SUBMIT_JOB, 5) + b"f\0\0xy")
        code, text = error(conn)
        assert code == b"UNEXPECTED_PACKET" and b"RES magic" in text
        for ptype in (C.JOB_CREATED, C.NOOP, C.NO_JOB, C.JOB_ASSIGN, C.STATUS_RES, C.ERROR):
            conn.send(ptype, b"x\0y\0z\0a\0b")
            assert error(conn)[0] == b"UNEXPECTED_PACKET"
        conn.send(C.ECHO_REQ, b"ok")
        assert conn.expect(C.ECHO_RES) == b"ok"
    assert_healthy(server, queued)


def test_four_gib_declared_length(server: Geard, queued: list[bytes]) -> None:
    with RawGearman(server.port) as conn:
        started = time.monotonic()
        conn.send_raw(C.REQ + struct.pack("!II", C.SUBMIT_JOB, 0xFFFFFFFF) + b"partial")
        code, text = error(conn)
        assert code == b"PACKET_TOO_LARGE" and b"4294967295" in text
        assert conn.closed_by_server()
        assert time.monotonic() - started < 5
    assert_healthy(server, queued)


def test_packet_over_configured_limit(server: Geard, queued: list[bytes]) -> None:
    with RawGearman(server.port) as conn:
        conn.send(C.SUBMIT_JOB_BG, b"big\0\0" + b"x" * (65 * 1024))
        assert error(conn)[0] == b"PACKET_TOO_LARGE"
        assert conn.closed_by_server()
    with RawGearman(server.port) as conn:
        conn.send(C.SUBMIT_JOB_BG, b"big\0\0" + b"x" * (60 * 1024))
        conn.expect(C.JOB_CREATED)
    assert_healthy(server, queued)


def test_garbage_admin_lines(server: Geard, queued: list[bytes]) -> None:
    with RawGearman(server.port) as conn:
        assert conn.admin(b"\xff\xfe garbage \x01\x02").startswith(b"ERR UNKNOWN_COMMAND")
        assert conn.admin(b"status extra words").endswith(b".\n")
        conn.send_raw(b"A" * 2048)
        assert conn.line().startswith(b"ERR LINE_TOO_LONG")
        assert conn.closed_by_server()
    assert_healthy(server, queued)


def test_slowloris_partial_packet_times_out(server: Geard, queued: list[bytes]) -> None:
    with RawGearman(server.port) as slow, RawGearman(server.port) as slow_line:
        slow.send_raw(C.REQ + struct.pack("!II", C.ECHO_REQ, 100) + b"only part")
        slow_line.send_raw(b"stat")
        assert_healthy(server, queued)
        assert error(slow)[0] == b"TIMEOUT"
        assert slow.closed_by_server(timeout=5)
        assert slow_line.closed_by_server(timeout=5)
    assert_healthy(server, queued)


def test_half_open_connection(server: Geard, queued: list[bytes]) -> None:
    with RawGearman(server.port) as conn:
        conn.send(C.SUBMIT_JOB_BG, b"half\0\0open")
        conn.expect(C.JOB_CREATED)
        conn.sock.shutdown(socket.SHUT_WR)
        assert conn.closed_by_server()
    assert_healthy(server, queued)
    with RawGearman(server.port) as c:
        assert b"half\t1\t0\t0\n" in c.admin("status")


def test_reader_that_stops_reading_is_disconnected(geard_factory: Callable[..., Geard]) -> None:
    geard = geard_factory(max_output_buffer=256 * 1024)
    with RawGearman(geard.port) as setup:
        setup.send(C.SUBMIT_JOB_BG, b"kept\0\0x")
        queued = [setup.expect(C.JOB_CREATED)]
    lazy = socket.socket()
    lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lazy.connect(("127.0.0.1", geard.port))
    lazy.sendall(C.REQ + struct.pack("!II", C.SUBMIT_JOB, 9) + b"flood\0\0go")
    with RawGearman(geard.port) as worker:
        worker.send(C.CAN_DO, b"flood")
        worker.send(C.GRAB_JOB)
        handle = worker.expect(C.JOB_ASSIGN).split(b"\0")[0]
        chunk = C.REQ + struct.pack("!II", C.WORK_DATA, len(handle) + 1 + 65536)
        chunk += handle + b"\0" + b"d" * 65536
        for _ in range(200):
            worker.send_raw(chunk)
            if handle not in geard.server.jobs or not geard.server.jobs[handle].clients:
                break
        deadline = time.monotonic() + 10
        while geard.server.jobs.get(handle) and geard.server.jobs[handle].clients:
            assert time.monotonic() < deadline, "the non-reading client was not dropped"
            worker.send(C.ECHO_REQ, b"")
            worker.expect(C.ECHO_RES)
        worker.send(C.WORK_COMPLETE, handle + b"\0done")
        worker.send(C.ECHO_REQ, b"ok")
        assert worker.expect(C.ECHO_RES) == b"ok"
    lazy.close()
    assert_healthy(geard, queued)


def test_max_connections(geard_factory: Callable[..., Geard]) -> None:
    geard = geard_factory(max_connections=3)
    conns = [RawGearman(geard.port) for _ in range(3)]
    for conn in conns:
        conn.send(C.ECHO_REQ, b"x")
        conn.expect(C.ECHO_RES)
    extra = RawGearman(geard.port)
    assert extra.closed_by_server()
    extra.close()
    conns.pop().close()
    deadline = time.monotonic() + 5
    while True:
        with RawGearman(geard.port) as retry:
            try:
                retry.send(C.ECHO_REQ, b"y")
                assert retry.expect(C.ECHO_RES) == b"y"
                break
            except (EOFError, ConnectionResetError, BrokenPipeError):
                assert time.monotonic() < deadline
    for conn in conns:
        conn.close()


def test_handler_exception_drops_only_that_connection() -> None:
    class Broken(Server):
        def handleEchoReq(self, packet):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug in a hook")

    server = Broken(0, host="127.0.0.1")
    try:
        with RawGearman(server.port) as victim, RawGearman(server.port) as other:
            other.send(C.SUBMIT_JOB_BG, b"f\0\0x")
            other.expect(C.JOB_CREATED)
            victim.send(C.ECHO_REQ, b"boom")
            assert error(victim)[0] == b"SERVER_ERROR"
            assert victim.closed_by_server()
            assert b"f\t1\t0\t0\n" in other.admin("status")
    finally:
        server.shutdown()


def test_bind_failure_raises() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(Exception, match="Could not open socket"):
            Server(taken.getsockname()[1], host="127.0.0.1")
