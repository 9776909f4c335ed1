"""Worker and connection details against the C gearmand."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

import gear
from fixtures.peers import Harness

T = 10


@pytest.fixture
def worker(gearmand: Any, harness: Harness) -> Any:
    return harness.worker(
        gearmand, client_id="detail-worker", timeout=T, keepalive=True, tcp_keepidle=60
    )


def test_keepalive_options(worker: Any) -> None:
    sock = worker.active_connections[0].conn
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_echo_over_worker_connection(worker: Any) -> None:
    conn = worker.getConnection()
    assert conn.echo(b"ping", timeout=T) == b"ping"
    assert len(conn.echo(timeout=T)) == 32


def test_states_follow_the_grab_cycle(worker: Any, gearmand: Any) -> None:
    worker.registerFunction("cycle")
    conn = worker.active_connections[0]
    assert conn.state == "IDLE"
    with pytest.raises(gear.TimeoutError):
        worker.getJob(timeout=0.2)
    assert conn.state == "IDLE"
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(worker.getJob(timeout=T)))
    thread.start()
    client = gear.Client("cycle-client")
    try:
        client.addServer(gearmand.host, gearmand.port)
        client.waitForServer(T)
        client.submitJob(gear.Job("cycle", b"x"), background=True)
        thread.join(T)
    finally:
        client.shutdown()
    assert got[0].arguments == b"x" and got[0].connection is conn
    assert conn.state == "IDLE"
    got[0].sendWorkComplete()


def test_functions_resent_after_reconnect(worker: Any, gearmand: Any) -> None:
    worker.registerFunction("again")
    conn = worker.active_connections[0]
    gearmand.kill()
    gearmand.restart()
    client = gear.Client("again-client")
    try:
        client.addServer(gearmand.host, gearmand.port)
        client.waitForServer(T)
        job = gear.Job("again", b"1")
        client.submitJob(job)
        wjob = worker.getJob(timeout=T)
        assert wjob.connection is conn
        wjob.sendWorkComplete(b"ok")
        assert job.wait(T) and job.data == [b"ok"]
    finally:
        client.shutdown()


def test_str_function_records_resent_after_reconnect(worker: Any, gearmand: Any) -> None:
    """FunctionRecord keeps a str name as given; the reconnect greeting encodes it."""
    worker.setFunctions([gear.FunctionRecord("text-name"), gear.FunctionRecord(b"bin", 30)])
    assert [r.name for r in worker.functions.values()] == ["text-name", b"bin"]
    conn = worker.active_connections[0]
    gearmand.kill()
    gearmand.restart()
    client = gear.Client("records-client")
    try:
        client.addServer(gearmand.host, gearmand.port)
        client.waitForServer(T)
        job = gear.Job("text-name", b"1")
        client.submitJob(job)
        wjob = worker.getJob(timeout=T)
        assert wjob.connection is conn and wjob.name == "text-name"
        wjob.sendWorkComplete(b"ok")
        assert job.wait(T) and job.data == [b"ok"]
    finally:
        client.shutdown()


def test_send_on_lost_connection_raises(worker: Any, gearmand: Any) -> None:
    worker.registerFunction("lost")
    client = gear.Client("lost-client")
    try:
        client.addServer(gearmand.host, gearmand.port)
        client.waitForServer(T)
        client.submitJob(gear.Job("lost", b""), background=True)
        job = worker.getJob(timeout=T)
    finally:
        client.shutdown()
    gearmand.kill()
    with pytest.raises(OSError):
        for _ in range(100):
            job.sendWorkData(b"x" * 65536)
