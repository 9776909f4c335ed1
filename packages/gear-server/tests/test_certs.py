"""geard-certs: generated files form a chain that real TLS 1.2/1.3 sockets accept."""

from __future__ import annotations

import datetime
import shlex
import socket
import ssl
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fixtures.geard import Geard
from gear import constants
from gear.connection import Connection
from gear.packet import Packet
from gear.server.certs import CertsError, Issued, generate, main
from gear.tls import load_context, peer_common_name

LOOPBACK = "127.0.0.1"


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Issued, Issued, list[Issued]]:
    return generate(tmp_path_factory.mktemp("dev"), client_cns=["client", "worker 2"])


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Issued, Issued, list[Issued]]:
    return generate(tmp_path_factory.mktemp("foreign"), ca_cn="someone else's CA")


def test_files_and_chain(made: tuple[Issued, Issued, list[Issued]]) -> None:
    ca, server, clients = made
    folder = ca.cert.parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "ca.key",
        "ca.pem",
        "client.key",
        "client.pem",
        "server.key",
        "server.pem",
        "worker_2.key",
        "worker_2.pem",
    ]
    for issued in (ca, server, *clients):
        assert stat.S_IMODE(issued.key.stat().st_mode) == 0o600
    ca_cert = load(ca.cert)
    assert cn(ca_cert) == ca.common_name == "gear development CA"
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca_cert.verify_directly_issued_by(ca_cert)
    expected = {server.cert: ("server", ExtendedKeyUsageOID.SERVER_AUTH)}
    expected.update({c.cert: (c.common_name, ExtendedKeyUsageOID.CLIENT_AUTH) for c in clients})
    assert [c.common_name for c in clients] == ["client", "worker 2"]
    for path, (common_name, usage) in expected.items():
        cert = load(path)
        cert.verify_directly_issued_by(ca_cert)
        assert cn(cert) == common_name
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
        lifetime = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
        assert datetime.timedelta(days=364) < lifetime <= datetime.timedelta(days=365)
    names = load(server.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "localhost" in names.value.get_values_for_type(x509.DNSName)


@dataclass
class Outcome:
    version: str | None = None
    peer: str | None = None
    error: BaseException | None = None


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[Outcome, Outcome]:
    """Connect a TLS client and server over loopback; echo one message."""
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(10)
    served = Outcome()

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            raw.settimeout(10)
            with server_ctx.wrap_socket(raw, server_side=True) as conn:
                served.version = conn.version()
                served.peer = peer_common_name(conn)
                conn.sendall(conn.recv(64))
        except BaseException as e:
            served.error = e

    thread = threading.Thread(target=serve)
    thread.start()
    client = Outcome()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with client_ctx.wrap_socket(raw) as conn:
                client.version = conn.version()
                client.peer = peer_common_name(conn)
                conn.sendall(b"ping")
                if conn.recv(64) != b"ping":
                    raise EOFError("no echo")
    except (OSError, EOFError) as e:
        client.error = e
    thread.join(10)
    listener.close()
    assert not thread.is_alive()
    return served, client


def contexts(
    made: tuple[Issued, Issued, list[Issued]], version: ssl.TLSVersion
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca, server, clients = made
    server_ctx = load_context(str(server.key), str(server.cert), str(ca.cert), server_side=True)
    client_ctx = load_context(str(clients[0].key), str(clients[0].cert), str(ca.cert))
    client_ctx.minimum_version = client_ctx.maximum_version = version
    return server_ctx, client_ctx


@pytest.mark.parametrize(
    ("version", "name"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
    ids=["tls1.2", "tls1.3"],
)
def test_tls_handshake(
    made: tuple[Issued, Issued, list[Issued]], version: ssl.TLSVersion, name: str
) -> None:
    served, client = handshake(*contexts(made, version))
    assert served.error is None and client.error is None
    assert served.version == client.version == name
    assert served.peer == "client" and client.peer == "server"


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)
def test_client_from_another_ca_is_refused(
    made: tuple[Issued, Issued, list[Issued]],
    foreign: tuple[Issued, Issued, list[Issued]],
    version: ssl.TLSVersion,
) -> None:
    server_ctx, _ = contexts(made, version)
    _, _, strangers = foreign
    stranger = load_context(str(strangers[0].key), str(strangers[0].cert), str(made[0].cert))
    stranger.maximum_version = version
    served, client = handshake(server_ctx, stranger)
    assert isinstance(served.error, ssl.SSLError)
    assert "certificate verify failed" in str(served.error)
    assert served.peer is None and client.error is not None


def test_server_from_another_ca_is_refused(
    made: tuple[Issued, Issued, list[Issued]], foreign: tuple[Issued, Issued, list[Issued]]
) -> None:
    fca, fserver, _ = foreign
    server_ctx = load_context(str(fserver.key), str(fserver.cert), str(fca.cert), server_side=True)
    _, client_ctx = contexts(made, ssl.TLSVersion.TLSv1_3)
    served, client = handshake(server_ctx, client_ctx)
    assert isinstance(client.error, ssl.SSLCertVerificationError)
    assert served.error is not None


def test_generated_files_work_with_geard(
    made: tuple[Issued, Issued, list[Issued]], geard_factory: Callable[..., Geard]
) -> None:
    ca, server, clients = made
    geard = geard_factory(ssl_key=str(server.key), ssl_cert=str(server.cert), ssl_ca=str(ca.cert))
    worker = clients[1]
    conn = Connection(LOOPBACK, geard.port, str(worker.key), str(worker.cert), str(ca.cert))
    conn.connect()
    try:
        conn.sendPacket(Packet(constants.REQ, constants.ECHO_REQ, b"hello"))
        reply = conn.readPacket()
        assert isinstance(reply, Packet)
        assert (reply.ptype, reply.data) == (constants.ECHO_RES, b"hello")
        subjects = [c.ssl_subject for c in geard.server.active_connections]
        assert subjects == ["worker 2"]
    finally:
        conn.disconnect()


def test_main_prints_how_to_use_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "new" / "tls"
    assert (
        main([str(folder), "--client-cn", "ci", "--server-cn", "gearman.example", "-p", "4731"])
        == 0
    )
    out = capsys.readouterr().out
    geard_line = next(line for line in out.splitlines() if line.strip().startswith("geard "))
    from gear.cmd.geard import Server as GeardCommand

    args = GeardCommand().parse_arguments(shlex.split(geard_line)[1:])
    assert (args.ssl_ca, args.ssl_cert, args.ssl_key) == (
        str(folder / "ca.pem"),
        str(folder / "server.pem"),
        str(folder / "server.key"),
    )
    assert int(args.port) == 4731
    assert (
        "client.addServer('127.0.0.1', 4731, ssl_key=%r, ssl_cert=%r, ssl_ca=%r)"
        % (str(folder / "ci.key"), str(folder / "ci.pem"), str(folder / "ca.pem"))
    ) in out
    assert "[ci]" in out
    assert cn(load(folder / "ci.pem")) == "ci"
    assert cn(load(folder / "server.pem")) == "gearman.example"


def test_relative_folder_prints_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["rel", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert "--ssl-ca %s " % (tmp_path / "rel" / "ca.pem") in out
    assert "ssl_key=%r" % str(tmp_path / "rel" / "client.key") in out
    lifetime = load(tmp_path / "rel" / "client.pem").not_valid_after_utc - datetime.datetime.now(
        datetime.timezone.utc
    )
    assert datetime.timedelta(days=1) < lifetime <= datetime.timedelta(days=2)


def test_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("geard-certs: refusing to overwrite %s" % (tmp_path / "ca.key"))
    assert "use --force" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    (tmp_path / "server.pem").unlink()
    assert main([str(tmp_path)]) == 1, "one existing file is enough to refuse"
    assert not (tmp_path / "server.pem").exists()
    assert main([str(tmp_path), "--force"]) == 0
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after.keys() == before.keys()
    assert all(after[name] != before[name] for name in before if name != "server.pem")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--client-cn", "ca"], "would use the same files as the CA"),
        (["--client-cn", "a b", "--client-cn", "a_b"], "same files as 'a b'"),
        (["--client-cn", "server"], "same files as the server"),
        (["--client-cn", ""], "must not be empty"),
        (["--client-cn", "..."], "no usable file name"),
        (["--days", "0"], "--days must be at least 1"),
        (["--ca-cn", ""], "CA's Common Name must not be empty"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    folder = tmp_path / "out"
    assert main([str(folder), *argv]) == 1
    assert message in capsys.readouterr().err
    assert not folder.exists()


def test_folder_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main([str(target)]) == 1
    assert "is not a directory" in capsys.readouterr().err
    with pytest.raises(CertsError):
        generate(target)


def test_without_cryptography(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)
    assert main([str(tmp_path / "out")]) == 1
    assert "pip install 'gear-server[certs]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_console_script_is_declared() -> None:
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "geard-certs"]
    assert script.load() is main
