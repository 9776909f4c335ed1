"""``geard`` refuses a bad setup out loud, before it detaches or serves.

Each case runs the real ``geard`` twice, in the foreground (``-d``) and as a
daemon, and expects the same: a non-zero status, exactly one line on stderr
that names the option and the file (or address), no traceback, nothing
listening and no pidfile left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from fixtures.geard import GEARD, RawGearman
from fixtures.servers import LOOPBACK, free_port

LOG_CONFIG = (
    "[loggers]\nkeys=root\n[handlers]\nkeys=file\n[formatters]\nkeys=plain\n"
    "[logger_root]\nlevel=INFO\nhandlers=file\n"
    "[handler_file]\nclass=FileHandler\nformatter=plain\nargs=(%r,)\n"
    "[formatter_plain]\nformat=%%(levelname)s %%(name)s: %%(message)s\n"
)


@dataclass
class Setup:
    """What one case may point geard at: a folder, the test certs, a busy port."""

    folder: Path
    certs: Any
    busy_port: int

    def tls(
        self, key: str | None = None, cert: str | None = None, ca: str | None = None
    ) -> list[str]:
        return [
            "--ssl-key", key or self.certs.server.key,
            "--ssl-cert", cert or self.certs.server.cert,
            "--ssl-ca", ca or self.certs.ca,
        ]  # fmt: skip

    def write(self, name: str, text: str) -> str:
        path = self.folder / name
        path.write_text(text)
        return str(path)


@dataclass
class Case:
    args: Callable[[Setup], list[str]]
    status: int
    #: Texts the one line must hold; "{x}" is formatted with the Setup.
    says: tuple[str, ...]


def _encrypted_key(s: Setup) -> str:
    key = serialization.load_pem_private_key(Path(s.certs.server.key).read_bytes(), None)
    path = s.folder / "encrypted.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return str(path)


CASES: dict[str, Case] = {
    "port-too-big": Case(lambda s: ["-p", "99999"], 2, ("argument -p", "99999", "0 to 65535")),
    "port-negative": Case(lambda s: ["-p", "-5"], 2, ("argument -p", "-5", "0 to 65535")),
    "port-not-a-number": Case(lambda s: ["-p", "http"], 2, ("argument -p", "'http'")),
    "port-busy": Case(
        lambda s: ["-p", str(s.busy_port)],
        1,
        ("-p, --listen-address", "127.0.0.1 port {busy_port}", "Address already in use"),
    ),
    "address-unknown": Case(
        lambda s: ["--listen-address", "no-such-host.invalid"],
        1,
        ("--listen-address", "no-such-host.invalid"),
    ),
    "metrics-port-busy": Case(
        lambda s: ["--metrics-port", str(s.busy_port)],
        1,
        ("--metrics-address, --metrics-port", "127.0.0.1 port {busy_port}", "already in use"),
    ),
    "metrics-address-unknown": Case(
        lambda s: ["--metrics-port", "0", "--metrics-address", "no-such-host.invalid"],
        1,
        ("--metrics-address, --metrics-port", "no-such-host.invalid"),
    ),
    "metrics-max-functions-zero": Case(
        lambda s: ["--metrics-max-functions", "0"], 2, ("--metrics-max-functions", "0")
    ),
    "limit-zero": Case(lambda s: ["--max-connections", "0"], 2, ("--max-connections", "0")),
    "field-limit-zero": Case(lambda s: ["--max-unique-id", "0"], 2, ("--max-unique-id", "0")),
    "handshake-timeout-negative": Case(
        lambda s: ["--tls-handshake-timeout", "-1"], 2, ("--tls-handshake-timeout", "-1")
    ),
    "ssl-cert-missing": Case(
        lambda s: s.tls(cert=str(s.folder / "nope.pem")),
        2,
        ("--ssl-cert {folder}/nope.pem", "No such file"),
    ),
    "ssl-key-unreadable": Case(
        lambda s: s.tls(key=str(s.folder)), 2, ("--ssl-key {folder}:", "Is a directory")
    ),
    "ssl-key-and-cert-swapped": Case(
        lambda s: s.tls(key=s.certs.server.cert, cert=s.certs.server.key),
        2,
        ("--ssl-cert {certs.server.key}", "no PEM certificate"),
    ),
    "ssl-key-is-a-cert": Case(
        lambda s: s.tls(key=s.certs.server.cert),
        2,
        ("--ssl-key {certs.server.cert}", "no PEM private key"),
    ),
    "ssl-key-of-another-cert": Case(
        lambda s: s.tls(key=s.certs.client.key),
        2,
        ("--ssl-key {certs.client.key} does not match --ssl-cert {certs.server.cert}",),
    ),
    "ssl-key-encrypted": Case(
        lambda s: s.tls(key=_encrypted_key(s)), 2, ("--ssl-key {folder}/encrypted.key", "encrypted")
    ),
    "ssl-ca-not-a-cert": Case(
        lambda s: s.tls(ca=s.certs.server.key),
        2,
        ("--ssl-ca {certs.server.key}", "no PEM certificate"),
    ),
    "ssl-partial": Case(
        lambda s: ["--ssl-key", s.certs.server.key], 2, ("--ssl-cert and --ssl-ca",)
    ),
    "log-config-missing": Case(
        lambda s: ["--log-config", str(s.folder / "nope.conf")],
        2,
        ("--log-config {folder}/nope.conf", "No such file"),
    ),
    "log-config-not-ini": Case(
        lambda s: ["--log-config", s.write("bad.conf", "level = debug\n")],
        2,
        ("--log-config {folder}/bad.conf", "not a usable logging config"),
    ),
    "log-config-incomplete": Case(
        lambda s: ["--log-config", s.write("partial.conf", "[loggers]\nkeys=root\n")],
        2,
        ("--log-config {folder}/partial.conf", "missing 'formatters'"),
    ),
    "acl-without-tls": Case(
        lambda s: ["--acl", s.write("acl.ini", "[client]\ninvoke=.*\n")],
        2,
        ("--acl {folder}/acl.ini needs TLS",),
    ),
    "acl-missing": Case(
        lambda s: [*s.tls(), "--acl", str(s.folder / "nope.ini")],
        2,
        ("--acl", "{folder}/nope.ini", "No such file"),
    ),
    "acl-malformed": Case(
        lambda s: [*s.tls(), "--acl", s.write("acl.ini", "[client]\ninvoke=(unclosed\n")],
        2,
        ("--acl", "{folder}/acl.ini", "client"),
    ),
    "queue-file-folder-missing": Case(
        lambda s: ["--queue-file", str(s.folder / "nope" / "queue.db")],
        2,
        ("--queue-file {folder}/nope/queue.db", "directory {folder}/nope does not exist"),
    ),
    "queue-file-is-a-folder": Case(
        lambda s: ["--queue-file", str(s.folder)], 2, ("--queue-file {folder}", "directory")
    ),
    "queue-file-not-a-queue": Case(
        lambda s: ["--queue-file", s.write("queue.db", "not sqlite " * 100)],
        1,
        ("--queue-file", "{folder}/queue.db", "not a usable gear queue"),
    ),
}


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port where another program already listens."""
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def assert_not_listening(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, port), timeout=5).close()


@pytest.mark.parametrize("daemon", [False, True], ids=["foreground", "daemon"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_refuses_bad_setup_with_one_line(
    name: str, daemon: bool, tmp_path: Path, certs: Any, busy_port: int
) -> None:
    case = CASES[name]
    setup = Setup(tmp_path, certs, busy_port)
    port = free_port()
    pidfile = tmp_path / "run" / "geard.pid"
    log = tmp_path / "geard.log"
    argv = [*GEARD, "-p", str(port), "--listen-address", LOOPBACK, "--pidfile", str(pidfile)]
    argv += ["--log-config", setup.write("logging.conf", LOG_CONFIG % str(log))]
    if not daemon:
        argv.append("-d")
    out = subprocess.run(
        [*argv, *case.args(setup)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("geard: "), out.stderr
    for text in case.says:
        assert text.format(**vars(setup)) in lines[0], lines[0]
    assert out.returncode == case.status, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not pidfile.exists()
    assert_not_listening(port)


def test_daemon_returns_once_it_listens_and_resolves_relative_paths(tmp_path: Path) -> None:
    """The first process exits 0 only when the daemon serves: no polling needed.

    The daemon changes to ``/``; paths given relative to where geard was
    started still name the files there.
    """
    port = free_port()
    (tmp_path / "logging.conf").write_text(LOG_CONFIG % "geard.log")
    argv = [*GEARD, "-p", str(port), "--listen-address", LOOPBACK, "--pidfile", "geard.pid"]
    argv += ["--log-config", "logging.conf", "--queue-file", "queue.db"]
    started = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert started.returncode == 0 and started.stderr == "", started.stderr
    pid = int((tmp_path / "geard.pid").read_text())
    try:
        with RawGearman(port) as conn:  # at once: geard returned after it listened
            assert conn.admin("getpid") == b"OK %d\n" % pid
        assert (tmp_path / "queue.db").is_file()
        assert "Listening on 127.0.0.1 port %d" % port in (tmp_path / "geard.log").read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while (tmp_path / "geard.pid").exists():
        assert time.monotonic() < deadline, "the daemon did not stop on SIGTERM"
        time.sleep(0.05)


def test_help_shows_each_default() -> None:
    helptext = subprocess.run(
        [*GEARD, "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    flat = " ".join(helptext.split())
    for shown in (
        "(default: 4730)",
        "(default: every address, IPv6 and IPv4)",
        "(default: /var/run/geard/geard.pid)",
        "(default: INFO to stderr with -d, else to /var/log/geard/geard.log)",
        "(default: 7200)",
        "(default: 75)",
        "(default: 9)",
        "largest packet payload in bytes (default: 33554432)",
        "(default: the open-file limit less 32)",
        "disconnected (default: 67108864)",
        "(default: no limit)",
        "(default: none, jobs live in memory only)",
        "(default: 30)",
    ):
        assert shown in flat, shown
