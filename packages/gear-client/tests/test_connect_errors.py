"""Clients say why they cannot connect (issue 15, item 2), threaded and asyncio.

Each cause is produced for real: a port nobody listens on, a host name
that does not resolve (``.invalid`` never does), a TLS file that is not
there. The errors name the server and the cause; the log says it once per
server and change, not on every retry.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import gear
from fixtures.aio import RETRY, run, wait_until
from fixtures.servers import closed_port

BAD_HOST = "no-such-host.invalid"


def resolver_says() -> str:
    """What this machine's resolver answers for BAD_HOST, as gear words it."""
    try:
        socket.getaddrinfo(BAD_HOST, 4730)
    except socket.gaierror as e:
        text = str(e.strerror)
        return text[:1].lower() + text[1:]
    raise AssertionError("%s resolved" % BAD_HOST)


@pytest.fixture
def client() -> Any:
    client = gear.Client("why")
    client.reconnect_delay = RETRY
    yield client
    client.shutdown()


def missing_tls(certs: Any, tmp_path: Path) -> tuple[dict[str, str], str]:
    nope = str(tmp_path / "certs" / "nope.pem")
    return {"ssl_key": certs.client.key, "ssl_cert": nope, "ssl_ca": certs.ca}, nope


def accepted(server: Any) -> None:
    """Wait until geard has accepted our connection, not only the kernel.

    Stopped in between, geard would leave that socket open (its own issue),
    and the client would never see the server go.
    """
    deadline = time.monotonic() + 10
    while not server.server.active_connections:
        assert time.monotonic() < deadline
        time.sleep(0.005)


# -- threaded ---------------------------------------------------------------


def test_threaded_wait_names_each_server_and_cause(client: Any, certs: Any, tmp_path: Path) -> None:
    closed, tls_port = closed_port(), closed_port()
    tls, nope = missing_tls(certs, tmp_path)
    client.addServer("127.0.0.1", closed)
    client.addServer(BAD_HOST, 4730)
    client.addServer("127.0.0.1", tls_port, **tls)
    expected = [
        "127.0.0.1:%d: connection refused" % closed,
        "%s:4730: %s" % (BAD_HOST, resolver_says()),
        "127.0.0.1:%d: %s: no such file or directory" % (tls_port, nope),
    ]
    deadline = time.monotonic() + 10
    while not all(text in _joined(client.connectErrors()) for text in expected):
        assert time.monotonic() < deadline, client.connectErrors()
        time.sleep(0.01)
    with pytest.raises(gear.TimeoutError) as info:
        client.waitForServer(0.05)
    assert str(info.value).startswith("No Gearman server was connected within 0.05 seconds: ")
    for text in expected:
        assert text in str(info.value)
    with pytest.raises(gear.GearmanError) as refused:
        client.submitJob(gear.Job("f", b""))
    assert "no server is connected" in str(refused.value)
    assert "127.0.0.1:%d: connection refused" % closed in str(refused.value)


def test_threaded_add_server_refuses_a_port_that_is_not_an_integer(client: Any) -> None:
    with pytest.raises(gear.ConfigurationError, match="must be an integer, not 'gear'"):
        client.addServer("127.0.0.1", "gear")
    with pytest.raises(gear.ConfigurationError, match="between 0 and 65535"):
        client.addServer("127.0.0.1", 99999)
    assert client.inactive_connections == []


def test_threaded_logs_a_cause_once_per_change(
    client: Any, geard_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    caplog.set_level(logging.DEBUG, logger="gear")

    def attempts() -> int:
        return sum("Unable to connect" in r.getMessage() for r in caplog.records)

    def warnings() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and r.getMessage().startswith("Unable to connect")
        ]

    client.addServer("127.0.0.1", port)
    deadline = time.monotonic() + 10
    while attempts() < 8:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert warnings() == [
        "Unable to connect to 127.0.0.1:%d: connection refused (will retry)" % port
    ]
    server = geard_factory(port=port)
    client.waitForServer(10)
    assert client.connectErrors() == {}
    accepted(server)
    server.stop()
    deadline = time.monotonic() + 10
    while len(warnings()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(set(warnings())) == 1
    assert any(r.getMessage() == "Connected to 127.0.0.1:%d" % port for r in caplog.records)


def test_threaded_reconnect_policy_replaces_the_fixed_delay(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gear")
    client.reconnect_delay = 600  # one attempt only, were it still used
    client.reconnect = gear.ReconnectPolicy(initial_delay=0.01, max_delay=0.02, jitter=0)
    client.addServer("127.0.0.1", closed_port())
    deadline = time.monotonic() + 10
    while sum("Unable to connect" in r.getMessage() for r in caplog.records) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def silent_server() -> socket.socket:
    """A listening socket that accepts (the kernel does) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def test_a_server_that_never_answers_the_greeting_is_a_connect_error_on_both_faces(
    client: Any,
) -> None:
    """Neither face goes active on a server that answers neither OPTION_REQ nor GET_STATUS."""
    with silent_server() as listener:
        port = listener.getsockname()[1]
        expected = {"127.0.0.1:%d" % port: "no answer within 0.3 seconds"}
        client.connect_timeout = 0.3
        client.addServer("127.0.0.1", port)
        deadline = time.monotonic() + 10
        while client.connectErrors() != expected:
            assert time.monotonic() < deadline, client.connectErrors()
            time.sleep(0.01)
        assert client.active_connections == []

        async def main() -> None:
            aio = gear.AsyncClient("silent", [("127.0.0.1", port)], connect_timeout=0.3)
            with pytest.raises(gear.NoConnectedServersError) as info:
                async with aio:
                    raise AssertionError("went active on a silent server")
            assert info.value.errors == expected

        run(main())


# -- asyncio ----------------------------------------------------------------


def test_asyncio_wait_and_submit_name_each_server_and_cause(certs: Any, tmp_path: Path) -> None:
    closed, tls_port = closed_port(), closed_port()
    tls, nope = missing_tls(certs, tmp_path)
    expected = {
        "127.0.0.1:%d" % closed: "connection refused",
        "%s:4730" % BAD_HOST: resolver_says(),
        "127.0.0.1:%d" % tls_port: "%s: no such file or directory" % nope,
    }

    async def main() -> None:
        async with gear.AsyncClient("why") as client:
            client.reconnect_delay = RETRY
            client.add_server("127.0.0.1", closed)
            client.add_server(BAD_HOST, 4730)
            client.add_server("127.0.0.1", tls_port, **tls)
            await wait_until(lambda: client.connect_errors() == expected)
            with pytest.raises(gear.TimeoutError) as info:
                await client.wait_for_server(0.05)
            for address, cause in expected.items():
                assert "%s: %s" % (address, cause) in str(info.value)
            with pytest.raises(gear.GearmanError) as refused:
                await client.submit("f", b"")
            assert "no server is connected" in str(refused.value)
            assert "127.0.0.1:%d: connection refused" % closed in str(refused.value)
            with pytest.raises(gear.NoConnectedServersError) as none:
                await client.status(gear.client.AsyncJob("f", b"", unique="u"), unique=True)
            assert none.value.errors == expected

    run(main())


def test_asyncio_add_server_refuses_a_port_that_is_not_an_integer() -> None:
    client = gear.AsyncClient("why")
    with pytest.raises(gear.ConfigurationError, match="must be an integer"):
        client.add_server("127.0.0.1", "4730.0")
    with pytest.raises(gear.ConfigurationError, match="must be an integer"):
        gear.AsyncClient("why", ["127.0.0.1:gear"])
    with pytest.raises(gear.ConfigurationError, match="must be an integer"):
        gear.AsyncWorker("why", [("127.0.0.1", "x")])
    assert client.servers == []


def test_asyncio_logs_a_cause_once_per_change(
    geard_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    caplog.set_level(logging.DEBUG, logger="gear")

    def attempts() -> int:
        return sum("Unable to connect" in r.getMessage() for r in caplog.records)

    def warnings() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and r.getMessage().startswith("Unable to connect")
        ]

    async def main() -> None:
        policy = gear.ReconnectPolicy.fixed(RETRY)
        async with gear.AsyncWorker("w", reconnect=policy) as worker:
            worker.add_server("127.0.0.1", port)
            await wait_until(lambda: attempts() >= 8)
            assert warnings() == [
                "Unable to connect to 127.0.0.1:%d: connection refused (will retry)" % port
            ]
            server = geard_factory(port=port)
            await worker.wait_for_server(10)
            await wait_until(lambda: bool(server.server.active_connections))
            server.stop()
            await wait_until(lambda: len(warnings()) == 2)
            assert len(set(warnings())) == 1

    run(main())


# -- a TLS server whose certificate the client's CA did not sign -------------


def test_tls_handshake_failure_is_named_threaded_and_asyncio(
    geard_factory: Any, certs: Any, other_ca_certs: Any, client: Any
) -> None:
    srv = geard_factory(ssl_key=certs.server.key, ssl_cert=certs.server.cert, ssl_ca=certs.ca)
    wrong = {
        "ssl_key": other_ca_certs.client.key,
        "ssl_cert": other_ca_certs.client.cert,
        "ssl_ca": other_ca_certs.ca,
    }
    expected = "%s: TLS handshake failed: " % (srv.address,)
    client.addServer(srv.host, srv.port, **wrong)
    with pytest.raises(gear.TimeoutError) as info:
        client.waitForServer(1)
    assert expected in str(info.value)
    assert "certificate" in str(info.value)

    async def main() -> None:
        aclient = gear.AsyncClient("why", [dict(host=srv.host, port=srv.port, **wrong)])
        aclient.connect_timeout = 1
        with pytest.raises(gear.NoConnectedServersError) as info:
            async with aclient:
                raise AssertionError("connected with the wrong CA")
        assert info.value.errors[srv.address].startswith("TLS handshake failed: ")
        assert "certificate" in info.value.errors[srv.address]

    run(main())


def _joined(causes: dict[str, str]) -> str:
    return "; ".join("%s: %s" % item for item in causes.items())
