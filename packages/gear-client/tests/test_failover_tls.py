"""Failover across two servers (one killed mid-run) and TLS to geard."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import gear
from fixtures.peers import reverse
from fixtures.tls import geard_tls
from fixtures.waiting import wait_until

T = 10


@pytest.fixture(params=["gearmand", "geard"])
def two_servers(request: pytest.FixtureRequest) -> tuple[Any, Any, Callable[[Any], None]]:
    """Two servers of one kind and how to kill one abruptly."""
    if request.param == "gearmand":
        factory = request.getfixturevalue("gearmand_factory")
        return factory(), factory(), lambda s: s.kill()
    factory = request.getfixturevalue("geard_factory")
    return factory(), factory(), lambda s: s.stop()


def test_failover_and_reconnect(two_servers: Any, harness: Any) -> None:
    a, b, kill = two_servers
    worker = harness.worker(a, b, functions=("reverse",))
    wait_until(lambda: len(worker.active_connections) == 2)
    for _ in range(2):
        harness.serve(worker, reverse)
    client = harness.client(a, b)
    wait_until(lambda: len(client.active_connections) == 2)

    ports = []
    for i in range(6):
        job = gear.Job("reverse", b"%d" % i)
        client.submitJob(job, timeout=T)
        ports.append(job.connection.port)
        assert job.wait(T)
    assert ports[0::2] == [ports[0]] * 3 and ports[1::2] == [ports[1]] * 3
    assert ports[0] != ports[1]

    done = 0
    lost = 0
    stop = threading.Event()
    errors: list[BaseException] = []

    def submitter() -> None:
        nonlocal done, lost
        i = 0
        while not stop.is_set():
            arg = b"run-%d" % i
            i += 1
            job = gear.Job("reverse", arg)
            try:
                client.submitJob(job, timeout=T)
                if job.wait(T):
                    assert job.data == [arg[::-1]]
                    done += 1
            except gear.DisconnectError:
                lost += 1
            except BaseException as e:
                errors.append(e)
                return

    thread = threading.Thread(target=submitter)
    thread.start()
    wait_until(lambda: done >= 20)
    kill(a)
    wait_until(lambda: len(client.active_connections) == 1)
    before = done
    wait_until(lambda: done >= before + 50)
    assert [c.port for c in client.active_connections] == [b.port]
    assert [c.port for c in worker.active_connections] == [b.port]

    stop.set()
    thread.join(T)
    assert not errors
    assert lost <= 2

    a.restart()
    wait_until(lambda: len(client.active_connections) == 2)
    wait_until(lambda: len(worker.active_connections) == 2)
    # Jobs reach the restarted server again, and the worker re-registered there.
    on_a = 0
    for i in range(6):
        job = gear.Job("reverse", b"again-%d" % i)
        client.submitJob(job, timeout=T)
        on_a += job.connection.port == a.port
        assert job.wait(T) and job.data == [(b"again-%d" % i)[::-1]]
    assert on_a == 3


def test_submit_moves_on_when_first_server_is_gone(gearmand_factory: Any, harness: Any) -> None:
    a, b = gearmand_factory(), gearmand_factory()
    worker = harness.worker(b, functions=("reverse",))
    harness.serve(worker, reverse)
    client = harness.client(a, b)
    wait_until(lambda: len(client.active_connections) == 2)
    a.kill()
    for i in range(4):
        job = gear.Job("reverse", b"%d" % i)
        client.submitJob(job, timeout=T)
        assert job.connection.port == b.port
        assert job.wait(T)


def test_tls_client_and_worker(geard_factory: Any, certs: Any, harness: Any) -> None:
    server = geard_factory(**geard_tls(certs))
    tls = (certs.client.key, certs.client.cert, certs.ca)
    worker = gear.Worker("tls-worker")
    harness.objects.append(worker)
    worker.registerFunction("reverse")
    worker.addServer(server.host, server.port, *tls)
    worker.waitForServer(T)
    assert worker.active_connections[0].use_ssl
    harness.serve(worker, reverse)
    client = gear.Client("tls-client")
    harness.objects.append(client)
    client.addServer(server.host, server.port, *tls)
    client.waitForServer(T)
    for arg in (b"secure", b"y" * 300000):
        job = gear.Job("reverse", arg)
        client.submitJob(job, timeout=T)
        assert job.wait(T)
        assert b"".join(job.data) == arg[::-1]
    request = gear.StatusAdminRequest()
    client.getConnection().sendAdminRequest(request, timeout=T)
    assert b"reverse" in request.response
    client.getStatus(job, timeout=T)
    assert job.known is False


def test_tls_refusals(geard_factory: Any, certs: Any, other_ca_certs: Any, harness: Any) -> None:
    server = geard_factory(**geard_tls(certs))
    distrusting = gear.Client("distrusting")
    distrusting.reconnect_delay = 0.05
    harness.objects.append(distrusting)
    distrusting.addServer(
        server.host, server.port, certs.client.key, certs.client.cert, other_ca_certs.ca
    )
    with pytest.raises(gear.TimeoutError):
        distrusting.waitForServer(0.5)

    untrusted = gear.Client("untrusted")
    untrusted.reconnect_delay = 0.05
    harness.objects.append(untrusted)
    untrusted.addServer(
        server.host, server.port, other_ca_certs.client.key, other_ca_certs.client.cert, certs.ca
    )
    with pytest.raises(gear.GearmanError):
        untrusted.submitJob(gear.Job("reverse", b"x"), timeout=T)


def test_refused_submit_names_the_server_error(geard_factory: Any, harness: Any) -> None:
    from gear.acl import ACL

    server = geard_factory(acl=ACL())
    client = harness.client(server)
    with pytest.raises(gear.GearmanError, match=r"Unable to submit job.*Permission denied"):
        client.submitJob(gear.Job("anything", b""), timeout=T)
    assert len(client.active_connections) == 1


def test_unreachable_server_does_not_hold_up_others(gearmand: Any, harness: Any) -> None:
    import socket

    # A listener that never accepts, its backlog full: further SYNs go unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        client = gear.Client("blackhole")
        client.connect_timeout = 0.3
        client.reconnect_delay = 0.05
        harness.objects.append(client)
        client.addServer("127.0.0.1", listener.getsockname()[1])
        client.addServer(gearmand.host, gearmand.port)
        started = time.monotonic()
        client.waitForServer(T)
        assert time.monotonic() - started < 3
        assert [c.port for c in client.active_connections] == [gearmand.port]
    finally:
        for sock in [listener, *fillers]:
            sock.close()
