"""TLS (client certificates required, CN = ACL subject) and ACL enforcement."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

import pytest

import gear
from fixtures.certs import Certs
from fixtures.geard import Geard, RawGearman, echo_once
from fixtures.tls import client_context, geard_tls
from gear import constants as C


def tls_server(geard_factory: Callable[..., Geard], certs: Certs, **kwargs: object) -> Geard:
    return geard_factory(**geard_tls(certs), **kwargs)


def connect(geard: Geard, certs: Certs, cn: str) -> RawGearman:
    return RawGearman(geard.port, ssl_context=client_context(certs.ca, certs.pair(cn)))


def test_tls_job_and_subject(geard_factory: Callable[..., Geard], certs: Certs) -> None:
    geard = tls_server(geard_factory, certs)
    assert geard.server.use_ssl
    with connect(geard, certs, "client") as client, connect(geard, certs, "worker-1") as worker:
        worker.send(C.CAN_DO, b"tls")
        client.send(C.SUBMIT_JOB, b"tls\0\0secret")
        handle = client.expect(C.JOB_CREATED)
        worker.send(C.GRAB_JOB)
        assert worker.expect(C.JOB_ASSIGN) == handle + b"\0tls\0secret"
        worker.send(C.WORK_COMPLETE, handle + b"\0done")
        assert client.expect(C.WORK_COMPLETE) == handle + b"\0done"
        assert geard.ssl_subjects() == {"client", "worker-1"}


def test_tls_requires_client_certificate(
    geard_factory: Callable[..., Geard], certs: Certs, other_ca_certs: Certs
) -> None:
    geard = tls_server(geard_factory, certs)
    no_cert = client_context(certs.ca)
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError, OSError)):
        echo_once(geard.port, no_cert)
    foreign = client_context(certs.ca, other_ca_certs.client)
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError, OSError)):
        echo_once(geard.port, foreign)
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError, OSError, TimeoutError)):
        echo_once(geard.port, timeout=2)
    with connect(geard, certs, "client") as ok:
        ok.send(C.ECHO_REQ, b"still serving")
        assert ok.expect(C.ECHO_RES) == b"still serving"


@pytest.fixture
def acl_server(geard_factory: Callable[..., Geard], certs: Certs) -> Geard:
    from gear.acl import ACL, ACLEntry

    acl = ACL()
    acl.add(ACLEntry("client", invoke="allowed"))
    acl.add(ACLEntry("worker", register="allowed.*"))
    acl.add(ACLEntry("admin", grant=True))
    return tls_server(geard_factory, certs, acl=acl)


def test_acl_submit_needs_invoke(acl_server: Geard, certs: Certs) -> None:
    with connect(acl_server, certs, "client") as client, connect(acl_server, certs, "x") as other:
        client.send(C.SUBMIT_JOB_BG, b"allowed-fn\0\0x")
        client.expect(C.JOB_CREATED)
        client.send(C.SUBMIT_JOB, b"denied\0\0x")
        code, text = client.expect(C.ERROR).split(b"\0")
        assert code == b"0"
        assert text.startswith(b"Permission denied by ACL") and b"invoke denied" in text
        other.send(C.SUBMIT_JOB_BG, b"allowed-fn\0\0x")
        assert other.expect(C.ERROR).startswith(b"0\0Permission denied by ACL")
        client.send(C.ECHO_REQ, b"usable")
        assert client.expect(C.ECHO_RES) == b"usable"
    assert acl_server.server.total_jobs == 1


def test_acl_can_do_needs_register(acl_server: Geard, certs: Certs) -> None:
    with connect(acl_server, certs, "worker") as worker:
        worker.send(C.CAN_DO, b"forbidden")
        code, text = worker.expect(C.ERROR).split(b"\0")
        assert code == b"0" and b"register forbidden" in text
        worker.send(C.CAN_DO, b"allowed-fn")
        worker.send(C.ECHO_REQ, b"")
        worker.expect(C.ECHO_RES)
        assert worker.admin("status") == b"allowed-fn\t0\t0\t1\n.\n"


def test_acl_without_tls_denies_everything(geard_factory: Callable[..., Geard]) -> None:
    from gear.acl import ACL, ACLEntry

    acl = ACL()
    acl.add(ACLEntry("client", invoke=".*", register=".*"))
    geard = geard_factory(acl=acl)
    with RawGearman(geard.port) as conn:
        conn.send(C.SUBMIT_JOB_BG, b"f\0\0x")
        assert conn.expect(C.ERROR).startswith(b"0\0")
        conn.send(C.CAN_DO, b"f")
        assert conn.expect(C.ERROR).startswith(b"0\0")


@pytest.mark.parametrize(
    ("ptype", "data", "reply", "logged"),
    [
        (
            C.SUBMIT_JOB_BG,
            b"f\nforged\0\0x",
            b"0\0Permission denied by ACL: invoke f\nforged",
            "ACL denied None invoking b'f\\nforged'",
        ),
        (
            C.CAN_DO,
            b"g" * 100,
            b"0\0Permission denied by ACL: register " + b"g" * 100,
            "ACL denied None registering %r" % (b"g" * 80,),
        ),
        (
            None,
            b"maxqueue f 1",
            b"ERR PERMISSION_DENIED\n",
            "ACL denied None the admin command b'maxqueue f 1'",
        ),
    ],
    ids=["invoke", "register", "admin"],
)
def test_acl_refusal_reply_and_log_line(
    geard_factory: Callable[..., Geard],
    caplog: pytest.LogCaptureFixture,
    ptype: int | None,
    data: bytes,
    reply: bytes,
    logged: str,
) -> None:
    """Each kind of refusal: its exact reply, and one log line with the name cut to 80 bytes."""
    from gear.acl import ACL, ACLEntry

    acl = ACL()
    acl.add(ACLEntry("client", invoke=".*", register=".*"))
    geard = geard_factory(acl=acl)
    with caplog.at_level(logging.INFO, logger="gear.Server"), RawGearman(geard.port) as conn:
        if ptype is None:
            assert conn.admin(data) == reply
        else:
            conn.send(ptype, data)
            assert conn.expect(C.ERROR) == reply
        conn.sync()
    assert [r.getMessage() for r in caplog.records if "ACL denied" in r.getMessage()] == [logged]


def test_acl_admin_commands(acl_server: Geard, certs: Certs) -> None:
    with connect(acl_server, certs, "admin") as admin, connect(acl_server, certs, "client") as cl:
        assert admin.admin("acl list") == (
            b"admin\tregister=None\tinvoke=None\tgrant=True\n"
            b"client\tregister=None\tinvoke=allowed\tgrant=False\n"
            b"worker\tregister=allowed.*\tinvoke=None\tgrant=False\n"
            b".\n"
        )
        assert cl.admin("acl grant invoke client .*") == b"ERR PERMISSION_DENIED\n"
        assert admin.admin("acl grant invoke client other fn.*") == b"OK\n"
        assert admin.admin("acl grant register newbie .*") == b"OK\n"
        assert admin.admin("acl grant grant newbie") == b"OK\n"
        assert admin.admin("acl grant frob newbie x") == b"ERR UNKNOWN_ACL_VERB\n"
        assert admin.admin("acl grant invoke bad [unclosed").startswith(b"ERR UNABLE ")
        listing = admin.admin("acl list")
        assert b"client\tregister=None\tinvoke=other fn.*\tgrant=False\n" in listing
        assert b"newbie\tregister=.*\tinvoke=None\tgrant=True\n" in listing
        cl.send(C.SUBMIT_JOB_BG, b"other fn-1\0\0x")
        cl.expect(C.JOB_CREATED)
        assert cl.admin("acl revoke invoke worker") == b"ERR PERMISSION_DENIED\n"
        assert cl.admin("acl revoke invoke client") == b"OK\n"
        cl.send(C.SUBMIT_JOB_BG, b"other fn-1\0\0x")
        assert cl.expect(C.ERROR).startswith(b"0\0")
        assert admin.admin("acl revoke register newbie") == b"OK\n"
        assert admin.admin("acl revoke frob newbie") == b"ERR UNKNOWN_ACL_VERB\n"
        assert admin.admin("acl revoke all newbie") == b"OK\n"
        assert admin.admin("acl revoke all nobody") == b"OK\n"
        assert b"newbie" not in admin.admin("acl list")
        assert admin.admin("acl self-revoke grant") == b"OK\n"
        assert admin.admin("acl grant grant x") == b"ERR PERMISSION_DENIED\n"


def test_acl_cancel_needs_invoke(acl_server: Geard, certs: Certs) -> None:
    with connect(acl_server, certs, "client") as cl, connect(acl_server, certs, "worker") as w:
        cl.send(C.SUBMIT_JOB_BG, b"allowed\0\0x")
        handle = cl.expect(C.JOB_CREATED)
        assert w.admin(b"cancel job " + handle) == b"ERR PERMISSION_DENIED\n"
        assert cl.admin(b"cancel job " + handle) == b"OK\n"


def test_acl_disabled_replies(geard: Geard) -> None:
    with RawGearman(geard.port) as conn:
        for command in (
            "acl list",
            "acl grant invoke a b",
            "acl revoke all a",
            "acl self-revoke all",
        ):
            assert conn.admin(command) == b"ERR ACL_DISABLED\n"


def test_server_refuses_a_partial_set_of_tls_files(
    geard_factory: Callable[..., Geard], certs: Certs
) -> None:
    with pytest.raises(ValueError, match=r"; missing ssl_ca$"):
        gear.Server(0, certs.server.key, certs.server.cert, host="127.0.0.1")
    with pytest.raises(ValueError, match=r"; missing ssl_key and ssl_cert$"):
        gear.Server(0, ssl_ca=certs.ca, host="127.0.0.1")
    assert tls_server(geard_factory, certs).server.use_ssl is True
    assert geard_factory().server.use_ssl is False
