"""The threaded Client honours a ReconnectPolicy as the asyncio classes do.

Without a policy (or with one that has no ``max_attempts``) servers are
retried for ever, as in gear 0.16. With ``max_attempts`` a server that
fails that many times in a row is given up: ``waitForServer`` raises
:class:`gear.NoConnectedServersError`, ``connectErrors()`` keeps its last
error, and the others carry on. The waits come from the policy; the tests
count them on a fake clock (real refused connections, no real sleeping).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import gear
from fixtures.clock import FakeClock, faked
from fixtures.peers import Harness
from fixtures.servers import closed_port

T = 10


@pytest.fixture
def shut() -> Iterator[list[Any]]:
    peers: list[Any] = []
    yield peers
    for peer in peers:
        peer.shutdown()


def until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + T
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def gave_up_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Giving up")]


def test_back_off_from_the_policy_then_give_up(
    shut: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    closed = closed_port()
    clock = FakeClock()
    policy = gear.ReconnectPolicy(
        initial_delay=1, max_delay=8, multiplier=2, jitter=0.5, max_attempts=6
    )
    client = faked(gear.Client("backoff", reconnect=policy), clock)
    shut.append(client)
    assert client.reconnect is policy
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gear"):
        client.addServer("127.0.0.1", closed)
        with pytest.raises(gear.NoConnectedServersError) as info:
            client.waitForServer(T)
    assert time.monotonic() - started < 5
    address = "127.0.0.1:%d" % closed
    assert str(info.value) == "No Gearman server could be reached: %s: connection refused" % (
        address,
    )
    assert info.value.errors == {address: "connection refused"}
    assert client.connectErrors() == {address: "connection refused"}
    # Six attempts, five waits between them: 1, 2, 4, 8, 8 s ± 50 %, capped at
    # 8 (a wait is a difference of clock readings, so allow rounding).
    assert len(clock.waits) == 5
    for wait, base in zip(clock.waits, [1, 2, 4, 8, 8], strict=True):
        assert base * 0.5 - 1e-9 <= wait <= min(base * 1.5, 8) + 1e-9
    assert gave_up_lines(caplog) == [
        "Giving up on %s after 6 failed attempts; last error: connection refused" % (address,)
    ]
    # Given up means not dialled again: the thread is idle, the clock stands.
    time.sleep(0.05)
    assert len(clock.waits) == 5
    with pytest.raises(gear.GearmanError) as submit:
        client.submitJob(gear.Job("reverse", b"x"), timeout=1)
    assert str(submit.value) == (
        "Unable to submit job to any connected servers: no server is connected "
        "(%s: connection refused)" % (address,)
    )


@pytest.mark.parametrize(
    "policy",
    [None, gear.ReconnectPolicy(initial_delay=0.5, jitter=0)],
    ids=["no policy", "policy without max_attempts"],
)
def test_without_max_attempts_the_client_retries_for_ever(
    shut: list[Any], policy: gear.ReconnectPolicy | None
) -> None:
    clock = FakeClock()
    client = faked(gear.Client("forever", reconnect=policy), clock)
    shut.append(client)
    client.addServer("127.0.0.1", closed_port())
    until(lambda: len(clock.waits) >= 40, "40 refused attempts")
    with pytest.raises(gear.TimeoutError):
        client.waitForServer(0.01)
    if policy is None:
        assert set(clock.waits[:40]) == {2.0}  # gear 0.16's fixed wait
    else:
        assert clock.waits[:4] == [0.5, 1.0, 2.0, 4.0]
        assert set(clock.waits[10:40]) == {10.0}  # the policy's cap


def test_a_given_up_server_leaves_the_others_serving(
    shut: list[Any], harness: Harness, geard: Any, caplog: pytest.LogCaptureFixture
) -> None:
    closed = closed_port()
    clock = FakeClock()
    client = faked(
        gear.Client("mixed", reconnect=gear.ReconnectPolicy.fixed(3, max_attempts=2)), clock
    )
    shut.append(client)
    worker = harness.worker(geard, functions=("reverse",))
    harness.serve(worker, lambda job: job.sendWorkComplete(job.arguments[::-1]))
    with caplog.at_level(logging.WARNING, logger="gear"):
        client.addServer("127.0.0.1", closed)
        client.addServer(geard.host, geard.port)
        client.waitForServer(T)
        until(lambda: bool(gave_up_lines(caplog)), "the closed port given up")
    assert clock.waits == [3.0]
    assert client.connectErrors() == {"127.0.0.1:%d" % closed: "connection refused"}
    client.waitForServer(0)  # one server is up: no error
    for payload in (b"abc", b"def", b"ghi"):
        job = gear.Job("reverse", payload)
        client.submitJob(job, timeout=T)
        assert job.wait(T)
        assert job.data == [payload[::-1]]


def test_a_lost_connection_counts_its_attempts_from_one_again(
    shut: list[Any], geard_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    servers: list[Any] = []

    def start_geard_on_second_wait(waits: int) -> None:
        if waits == 2:
            servers.append(geard_factory(port=port))

    clock = FakeClock(start_geard_on_second_wait)
    client = faked(
        gear.Client("again", reconnect=gear.ReconnectPolicy.fixed(1, max_attempts=3)), clock
    )
    shut.append(client)
    with caplog.at_level(logging.WARNING, logger="gear"):
        client.addServer("127.0.0.1", port)
        client.waitForServer(T)  # two refusals, then geard came up
        assert len(clock.waits) == 2
        until(lambda: bool(servers[0].server.active_connections), "geard accepted us")
        servers[0].stop()
        until(lambda: not client.active_connections, "the client saw geard go")
        with pytest.raises(gear.NoConnectedServersError):
            client.waitForServer(T)
    # Three more attempts after the loss (two waits), not one: the two
    # failures before the connection do not count against it.
    assert len(clock.waits) == 4
    assert gave_up_lines(caplog) == [
        "Giving up on 127.0.0.1:%d after 3 failed attempts; last error: connection refused"
        % (port,)
    ]
