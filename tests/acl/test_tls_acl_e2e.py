"""ACLs end to end: geard with TLS and an ACL, peers as gear.Connection over loopback.

Every peer presents a certificate from the ``certs`` CA; its Common Name is
the ACL subject. Denials must answer an ERROR packet (or ``ERR`` line) and
leave the connection usable, so most checks end with an ECHO round trip.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures.certs import Certs
from fixtures.geard import Geard, echo_once
from fixtures.tls import client_context, geard_tls, geard_tls_flags
from gear import constants as C
from gear.acl import ACL, ACLEntry
from gear.admin import AdminRequest
from gear.connection import Connection
from gear.packet import Packet

LOOPBACK = "127.0.0.1"


class Admin(AdminRequest):
    """Any admin line; ``OK``/``ERR`` replies are one line, ``acl list`` ends in ``.``."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.command = line.encode()
        self.multiline = line in ("acl list", "workers", "status")

    def isComplete(self, data: bytes) -> tuple[bool, bytes | None]:
        if self.multiline:
            return super().isComplete(data)
        end = data.find(b"\n")
        if end < 0:
            return False, None
        self.response = data[: end + 1]
        return True, data[end + 1 :]


class Peer:
    """A blocking TLS gear.Connection speaking raw packets and admin lines."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def send(self, ptype: int, data: bytes = b"") -> None:
        self.conn.sendPacket(Packet(C.REQ, ptype, data))

    def recv(self) -> Packet:
        packet = self.conn.readPacket()
        assert isinstance(packet, Packet), "expected a packet, got %r" % (packet,)
        return packet

    def expect(self, ptype: int) -> bytes:
        packet = self.recv()
        assert packet.ptype == ptype, "expected %s, got %s %r" % (
            C.types[ptype],
            C.types.get(packet.ptype),
            packet.data,
        )
        return bytes(packet.data)

    def denied(self, ptype: int, data: bytes) -> bytes:
        """Send a request that must be refused; return the ERROR text."""
        self.send(ptype, data)
        _code, _, text = self.expect(C.ERROR).partition(b"\0")
        self.alive()
        return text

    def alive(self) -> None:
        self.send(C.ECHO_REQ, b"still here")
        assert self.expect(C.ECHO_RES) == b"still here"

    def admin(self, line: str) -> bytes:
        request = Admin(line)
        self.conn.admin_requests.append(request)
        self.conn.sendRaw(request.getCommand())
        assert self.conn.readPacket() is request
        assert request.response is not None
        return request.response


@pytest.fixture
def peers(certs: Certs) -> Iterator[Callable[[Geard, str], Peer]]:
    opened: list[Connection] = []

    def connect(geard: Geard, cn: str) -> Peer:
        files = certs.pair(cn)
        conn = Connection(LOOPBACK, geard.port, files.key, files.cert, certs.ca)
        conn.connect()
        conn.conn.settimeout(10)
        opened.append(conn)
        return Peer(conn)

    yield connect
    for conn in opened:
        conn.disconnect()


def make_acl() -> ACL:
    acl = ACL()
    acl.add(ACLEntry("worker", register="image-"))
    acl.add(ACLEntry("webapp", invoke="image-resize$"))
    acl.add(ACLEntry("ops", grant=True))
    acl.add(ACLEntry("reporter", register="report-.*", invoke="report-.*", grant=None))
    return acl


@pytest.fixture
def geard(geard_factory: Callable[..., Geard], certs: Certs) -> Geard:
    return geard_factory(**geard_tls(certs), acl=make_acl())


def registered(peer: Peer) -> list[bytes]:
    """Functions of every connection, from the ``workers`` admin reply."""
    lines = peer.admin("workers").splitlines()
    return sorted(f for line in lines[:-1] for f in line.split(b" : ")[1].split())


def test_register_allowed_and_denied(geard: Geard, peers: Callable[[Geard, str], Peer]) -> None:
    worker, webapp, stranger = (peers(geard, cn) for cn in ("worker", "webapp", "stranger"))
    worker.send(C.CAN_DO, b"image-resize")
    worker.send(C.CAN_DO, b"image-")
    worker.alive()
    for name in (b"video-encode", b"thumb-image-resize", b"imag"):
        assert worker.denied(C.CAN_DO, name) == b"Permission denied by ACL: register " + name
    for peer in (webapp, stranger):
        assert b"register image-resize" in peer.denied(C.CAN_DO, b"image-resize")
    assert registered(stranger) == [b"image-", b"image-resize"]


@pytest.mark.parametrize(
    "ptype", [C.SUBMIT_JOB, C.SUBMIT_JOB_BG, C.SUBMIT_JOB_HIGH, C.SUBMIT_JOB_LOW_BG]
)
def test_invoke_denied(geard: Geard, peers: Callable[[Geard, str], Peer], ptype: int) -> None:
    webapp, worker, stranger = (peers(geard, cn) for cn in ("webapp", "worker", "stranger"))
    text = webapp.denied(ptype, b"image-resize-big\0\0x")
    assert text == b"Permission denied by ACL: invoke image-resize-big"
    for peer in (worker, stranger):
        assert b"invoke image-resize" in peer.denied(ptype, b"image-resize\0\0x")
    assert webapp.admin("status") == b".\n", "denied submissions queue nothing"


def test_invoke_allowed_round_trip(geard: Geard, peers: Callable[[Geard, str], Peer]) -> None:
    worker, webapp = peers(geard, "worker"), peers(geard, "webapp")
    worker.send(C.CAN_DO, b"image-resize")
    webapp.send(C.SUBMIT_JOB, b"image-resize\0u1\0cat.png")
    handle = webapp.expect(C.JOB_CREATED)
    worker.send(C.GRAB_JOB_UNIQ)
    assert worker.expect(C.JOB_ASSIGN_UNIQ) == handle + b"\0image-resize\0u1\0cat.png"
    worker.send(C.WORK_COMPLETE, handle + b"\0small cat")
    assert webapp.expect(C.WORK_COMPLETE) == handle + b"\0small cat"


def test_cancel_needs_invoke(geard: Geard, peers: Callable[[Geard, str], Peer]) -> None:
    webapp, worker = peers(geard, "webapp"), peers(geard, "worker")
    webapp.send(C.SUBMIT_JOB_BG, b"image-resize\0\0x")
    handle = webapp.expect(C.JOB_CREATED).decode()
    assert worker.admin("cancel job " + handle) == b"ERR PERMISSION_DENIED\n"
    assert webapp.admin("cancel job " + handle) == b"OK\n"


def test_acl_list_is_open_to_everyone(geard: Geard, peers: Callable[[Geard, str], Peer]) -> None:
    expected = (
        b"ops\tregister=None\tinvoke=None\tgrant=True\n"
        b"reporter\tregister=report-.*\tinvoke=report-.*\tgrant=None\n"
        b"webapp\tregister=None\tinvoke=image-resize$\tgrant=False\n"
        b"worker\tregister=image-\tinvoke=None\tgrant=False\n"
        b".\n"
    )
    for cn in ("stranger", "worker"):
        assert peers(geard, cn).admin("acl list") == expected


def test_grant_needs_grant_permission(geard: Geard, peers: Callable[[Geard, str], Peer]) -> None:
    for cn in ("webapp", "reporter", "stranger"):
        peer = peers(geard, cn)
        for line in ("acl grant invoke %s .*" % cn, "acl grant grant %s" % cn):
            assert peer.admin(line) == b"ERR PERMISSION_DENIED\n"
        assert peer.admin("acl revoke register worker") == b"ERR PERMISSION_DENIED\n"
    assert geard.server.acl.subjects["worker"].register == "image-"
    assert not geard.server.acl.canGrant("reporter")


def test_grant_and_revoke_take_effect_on_the_next_action(
    geard: Geard, peers: Callable[[Geard, str], Peer]
) -> None:
    ops, newcomer = peers(geard, "ops"), peers(geard, "newcomer")
    assert b"invoke report-daily" in newcomer.denied(C.SUBMIT_JOB_BG, b"report-daily\0\0")
    assert ops.admin("acl grant invoke newcomer report- daily") == b"OK\n"
    assert ops.admin("acl grant register newcomer report-") == b"OK\n"
    newcomer.send(C.SUBMIT_JOB_BG, b"report- daily\0\0")
    newcomer.expect(C.JOB_CREATED)
    newcomer.send(C.CAN_DO, b"report-weekly")
    newcomer.alive()
    assert ops.admin("acl grant grant newcomer") == b"OK\n"
    assert newcomer.admin("acl grant invoke webapp image-") == b"OK\n"
    assert ops.admin("acl list").splitlines()[0] == (
        b"newcomer\tregister=report-\tinvoke=report- daily\tgrant=True"
    )

    assert ops.admin("acl revoke invoke newcomer") == b"OK\n"
    assert b"invoke report- daily" in newcomer.denied(C.SUBMIT_JOB_BG, b"report- daily\0\0")
    assert ops.admin("acl revoke grant newcomer") == b"OK\n"
    assert newcomer.admin("acl grant invoke newcomer .*") == b"ERR PERMISSION_DENIED\n"
    assert ops.admin("acl revoke register newcomer") == b"OK\n"
    assert b"register report-x" in newcomer.denied(C.CAN_DO, b"report-x")
    assert "newcomer" not in geard.server.acl.subjects, "an emptied entry is deleted"
    assert ops.admin("acl revoke all newcomer") == b"OK\n", "a missing entry is not an error"

    webapp = peers(geard, "webapp")
    webapp.send(C.SUBMIT_JOB_BG, b"image-crop\0\0")
    webapp.expect(C.JOB_CREATED)


def test_revoking_ones_own_permissions_is_always_allowed(
    geard: Geard, peers: Callable[[Geard, str], Peer]
) -> None:
    worker, webapp, reporter = (peers(geard, cn) for cn in ("worker", "webapp", "reporter"))
    worker.send(C.CAN_DO, b"image-a")
    assert worker.admin("acl revoke register worker") == b"OK\n"
    assert b"register image-b" in worker.denied(C.CAN_DO, b"image-b")
    assert worker.admin("acl revoke register webapp") == b"ERR PERMISSION_DENIED\n"
    assert registered(worker) == [b"image-a"], "earlier registrations stay"

    assert webapp.admin("acl self-revoke invoke") == b"OK\n"
    assert b"invoke image-resize" in webapp.denied(C.SUBMIT_JOB, b"image-resize\0\0")
    assert "webapp" not in geard.server.acl.subjects

    assert reporter.admin("acl self-revoke register") == b"OK\n"
    assert b"register report-a" in reporter.denied(C.CAN_DO, b"report-a")
    reporter.send(C.SUBMIT_JOB_BG, b"report-a\0\0")
    reporter.expect(C.JOB_CREATED)
    assert reporter.admin("acl self-revoke all") == b"OK\n"
    assert b"invoke report-a" in reporter.denied(C.SUBMIT_JOB_BG, b"report-a\0\0")
    assert reporter.admin("acl self-revoke all") == b"OK\n"

    ops = peers(geard, "ops")
    assert ops.admin("acl self-revoke grant") == b"OK\n"
    assert ops.admin("acl grant grant ops") == b"ERR PERMISSION_DENIED\n"
    assert geard.server.acl.getEntries() == [], "every emptied entry is gone"


def test_acl_command_errors(geard: Geard, peers: Callable[[Geard, str], Peer]) -> None:
    ops = peers(geard, "ops")
    assert ops.admin("acl grant all worker x") == b"ERR UNKNOWN_ACL_VERB\n"
    assert ops.admin("acl revoke everything worker") == b"ERR UNKNOWN_ACL_VERB\n"
    assert ops.admin("acl self-revoke nothing") == b"ERR UNKNOWN_ACL_VERB\n"
    reply = ops.admin("acl grant invoke worker image-(")
    assert reply.startswith(b"ERR UNABLE ") and b"image-(" in reply
    assert geard.server.acl.subjects["worker"].invoke is None
    assert "image-(" not in ops.admin("acl list").decode()
    ops.alive()


def test_connections_without_a_trusted_client_certificate_are_refused(
    geard: Geard,
    certs: Certs,
    other_ca_certs: Certs,
    peers: Callable[[Geard, str], Peer],
) -> None:
    with pytest.raises((ssl.SSLError, OSError, EOFError)):
        echo_once(geard.port, client_context(certs.ca))

    stranger = other_ca_certs.issue("ops")
    conn = Connection(LOOPBACK, geard.port, stranger.key, stranger.cert, certs.ca)
    with pytest.raises((ssl.SSLError, OSError, EOFError)):
        conn.connect()
        conn.conn.settimeout(10)
        conn.sendPacket(Packet(C.REQ, C.ECHO_REQ, b"x"))
        if conn.readPacket() is None:
            raise EOFError("closed by the server")
    conn.disconnect()

    assert peers(geard, "ops").admin("acl list").startswith(b"ops\t")
    assert geard.ssl_subjects() == {"ops"}


BAD_FILES = {
    "bad-regex": ("[worker]\nregister=image-(\n", "section [worker], key 'register': Invalid"),
    "unknown-key": ("[worker]\nregistr=.*\n", "section [worker], key 'registr': unknown key"),
    "not-boolean": ("[ops]\ngrant=sometimes\n", "section [ops], key 'grant': 'sometimes'"),
    "ini-syntax": ("register=.*\n", "is not a valid ini file"),
    "missing": (None, "Unable to read ACL file"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_geard_refuses_to_start_with_a_malformed_acl_file(
    tmp_path: Path, certs: Certs, kind: str
) -> None:
    text, detail = BAD_FILES[kind]
    path = tmp_path / "acl.ini"
    if text is not None:
        path.write_text(text)
    command = "from gear.cmd.geard import main; raise SystemExit(main())"
    tls = geard_tls_flags(certs)
    argv = ["-d", "-p", "0", "--listen-address", LOOPBACK, *tls, "--acl", str(path)]
    result = subprocess.run(
        [sys.executable, "-c", command, *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "ACL file %s" % path in lines[0] and detail in lines[0]
    assert result.stdout == ""
