"""The threaded Worker honours a ReconnectPolicy's ``max_attempts``.

A server that refuses ``max_attempts`` times in a row is given up; the
worker keeps serving from the others, and with none left ``waitForServer``
raises :class:`gear.NoConnectedServersError` naming each server's error.
Connections are real; the waits between attempts run on a fake clock.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

import gear
from fixtures.clock import FakeClock, faked
from fixtures.peers import Harness
from fixtures.servers import closed_port

T = 10


def test_worker_gives_up_a_refusing_server_and_serves_from_the_other(
    harness: Harness, geard: Any, caplog: pytest.LogCaptureFixture
) -> None:
    closed = closed_port()
    clock = FakeClock()
    policy = gear.ReconnectPolicy(initial_delay=0.5, jitter=0, max_attempts=4)
    worker = faked(gear.Worker("gives-up", reconnect=policy), clock)
    try:
        worker.registerFunction("reverse")
        with caplog.at_level(logging.WARNING, logger="gear"):
            worker.addServer("127.0.0.1", closed)
            worker.addServer(geard.host, geard.port)
            worker.waitForServer(T)
            served = threading.Thread(
                target=lambda: (job := worker.getJob(timeout=T)).sendWorkComplete(
                    job.arguments[::-1]
                ),
                daemon=True,
            )
            served.start()
            client = harness.client(geard)
            job = gear.Job("reverse", b"abc")
            client.submitJob(job, timeout=T)
            assert job.wait(T) and job.data == [b"cba"]
            served.join(T)
        address = "127.0.0.1:%d" % closed
        assert clock.waits == [0.5, 1.0, 2.0]
        assert worker.connectErrors() == {address: "connection refused"}
        assert [r.getMessage() for r in caplog.records if "Giving up" in r.getMessage()] == [
            "Giving up on %s after 4 failed attempts; last error: connection refused" % address
        ]
    finally:
        worker.shutdown()


def test_worker_with_every_server_given_up_says_why() -> None:
    closed = closed_port()
    worker = faked(
        gear.Worker("none-left", reconnect=gear.ReconnectPolicy.fixed(1, max_attempts=2)),
        FakeClock(),
    )
    try:
        worker.registerFunction("reverse")
        worker.addServer("127.0.0.1", closed)
        with pytest.raises(gear.NoConnectedServersError) as info:
            worker.waitForServer(T)
        assert info.value.errors == {"127.0.0.1:%d" % closed: "connection refused"}
    finally:
        worker.shutdown()
