"""The ``geard`` program: flags, TLS option checks, logging, signals, daemon mode, statsd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import gear.cmd.geard
from fixtures.geard import GEARD, Geard, RawGearman, run_job, spawn_geard
from fixtures.peers import reaped
from fixtures.servers import free_port, wait_for_port
from fixtures.tls import client_context, geard_tls_flags
from gear import constants as C
from gear.codec import encode_packet
from gear.server import __version__
from gear.tls import check_tls_files

#: The build under test: scripts/check runs the suite with GEAR_EXPECT_BUILD
#: compiled and pure; the editable dev install is pure.
EXPECTED_BUILD = os.environ.get("GEAR_EXPECT_BUILD", "pure")


def run_cli_job(port: int) -> None:
    with RawGearman(port) as client, RawGearman(port) as worker:
        run_job(client, worker, b"cli", b"x", b"y")


def foreground(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    return spawn_geard(*args, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def test_module_is_importable() -> None:
    assert callable(gear.cmd.geard.main)
    command = gear.cmd.geard.Server()
    args = command.parse_arguments(["-d", "-p", "5000", "--keepalive", "--keepalive-idle", "10"])
    assert (args.nodaemon, args.port, args.keepalive, args.tcp_keepidle) == (True, 5000, True, 10)
    assert args.pidfile == "/var/run/geard/geard.pid"
    assert (args.tcp_keepintvl, args.tcp_keepcnt) == (75, 9)


def test_version_and_help() -> None:
    out = subprocess.run([*GEARD, "--version"], capture_output=True, timeout=30, check=True)
    assert out.stdout == b"Gear version: %s\n" % __version__.encode()
    helptext = subprocess.run([*GEARD, "--help"], capture_output=True, timeout=30, check=True)
    for flag in (
        "-d", "-p", "--listen-address", "--log-config", "--pidfile", "--ssl-ca", "--ssl-cert",
        "--ssl-key", "--acl", "--keepalive", "--keepalive-idle", "--keepalive-interval",
        "--keepalive-count", "--version", "--max-packet-size", "--max-connections",
        "--max-output-buffer", "STATSD_HOST",
    ):  # fmt: skip
        assert flag.encode() in helptext.stdout, flag
    description = b" ".join(helptext.stdout.split())
    assert b"the statsd package is optional; without it geard sends them itself" in description
    assert b"TLS needs --ssl-key, --ssl-cert and --ssl-ca together" in description


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_foreground_serves_logs_and_stops_on_signal(signum: int) -> None:
    proc, port = foreground("--max-packet-size", "1000")
    with reaped(proc):
        run_cli_job(port)
        with RawGearman(port) as conn:
            conn.send(C.ECHO_REQ, b"x" * 2000)
            assert conn.expect(C.ERROR).startswith(b"PACKET_TOO_LARGE")
        proc.send_signal(signum)
        assert proc.wait(15) == 0
    assert proc.stderr is not None
    log = proc.stderr.read().decode()
    line = "INFO gear.Server: Listening on 127.0.0.1 port %d (uvloop event loop, %s build)"
    assert line % (port, EXPECTED_BUILD) in log
    assert "running (pid %d, %s build)" % (proc.pid, EXPECTED_BUILD) in log
    assert "Shutting down" in log and "geard exited" in log
    assert "SUBMIT_JOB" not in log


def test_admin_shutdown_stops_process() -> None:
    proc, port = foreground()
    with reaped(proc):
        with RawGearman(port) as admin:
            assert admin.admin("shutdown") == b"OK\n"
        assert proc.wait(15) == 0


def test_daemon_mode_pidfile_and_log_config(tmp_path: Path) -> None:
    logfile = tmp_path / "geard.log"
    config = tmp_path / "logging.conf"
    config.write_text(
        "[loggers]\nkeys=root\n[handlers]\nkeys=file\n[formatters]\nkeys=simple\n"
        "[logger_root]\nlevel=INFO\nhandlers=file\n"
        "[handler_file]\nclass=FileHandler\nformatter=simple\nargs=(%r,)\n"
        "[formatter_simple]\nformat=%%(levelname)s %%(name)s: %%(message)s\n" % str(logfile)
    )
    pidfile = tmp_path / "run" / "geard.pid"
    port = free_port()
    args = [*GEARD, "-p", str(port), "--listen-address", "127.0.0.1", "--pidfile", str(pidfile)]
    launched = subprocess.run([*args, "--log-config", str(config)], timeout=30)
    assert launched.returncode == 0
    wait_for_port("127.0.0.1", port)
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    try:
        run_cli_job(port)
        second = subprocess.run(args, capture_output=True, timeout=30)
        assert second.returncode == 2 and second.stderr == (
            b"geard: --pidfile %s is locked: is another geard running?\n" % bytes(pidfile)
        )
        os.kill(pid, signal.SIGTERM)
        while pidfile.exists():
            assert time.monotonic() < deadline + 10, "daemon did not remove its pidfile"
            time.sleep(0.05)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert "Listening on 127.0.0.1 port %d" % port in logfile.read_text()


def test_statsd_from_environment() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(10)
        env = {"STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(udp.getsockname()[1])}
        env["STATSD_PREFIX"] = "geard"
        proc, port = foreground(env=env)
        try:
            with RawGearman(port) as conn:
                # Refused packets (RES magic, unknown type) are not counted.
                conn.send_raw(encode_packet(C.RES, C.WORK_COMPLETE, b"H:x\0r"))
                conn.expect(C.ERROR)
                conn.send(C.SUBMIT_JOB_BG, b"f\0\0x")
                conn.expect(C.JOB_CREATED)
            lines: set[bytes] = set()
            deadline = time.monotonic() + 10
            while b"geard.queue.total:1|g" not in lines or not any(
                line.startswith(b"geard.packet.SUBMIT_JOB_BG:1|c") for line in lines
            ):
                assert time.monotonic() < deadline, lines
                lines.update(udp.recv(4096).splitlines())
            assert not [line for line in lines if b"WORK_COMPLETE" in line]
        finally:
            proc.terminate()
            proc.wait(15)


def test_keepalive_on_accepted_sockets(geard_factory: Callable[..., Geard]) -> None:
    geard = geard_factory(keepalive=True, tcp_keepidle=30, tcp_keepintvl=5, tcp_keepcnt=3)
    with RawGearman(geard.port) as conn:
        conn.send(C.ECHO_REQ, b"")
        conn.expect(C.ECHO_RES)
        (server_side,) = geard.server.active_connections
        sock = server_side.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_tls_and_acl_file(tmp_path: Path, certs: Any) -> None:
    acl_file = tmp_path / "acl.ini"
    acl_file.write_text("[client]\ninvoke=allowed.*\n\n[admin]\ngrant=true\n")
    proc, port = foreground(*geard_tls_flags(certs), "--acl", str(acl_file), "--loop", "asyncio")
    try:
        context = client_context(certs.ca, certs.client)
        with RawGearman(port, ssl_context=context) as client:
            client.send(C.SUBMIT_JOB_BG, b"allowed-1\0\0x")
            client.expect(C.JOB_CREATED)
            client.send(C.SUBMIT_JOB_BG, b"other\0\0x")
            assert client.expect(C.ERROR).startswith(b"0\0Permission denied by ACL")
            assert client.admin("acl list") == (
                b"admin\tregister=None\tinvoke=None\tgrant=True\n"
                b"client\tregister=None\tinvoke=allowed.*\tgrant=None\n.\n"
            )
    finally:
        proc.terminate()
        proc.wait(15)
    assert proc.stderr is not None
    log = proc.stderr.read().decode()
    line = "Listening on 127.0.0.1 port %d (TLS, asyncio event loop, %s build)"
    assert line % (port, EXPECTED_BUILD) in log


TLS_FLAGS = ("--ssl-key", "--ssl-cert", "--ssl-ca")
PARTIAL_TLS = [
    frozenset(given)
    for given in (
        {"--ssl-key"}, {"--ssl-cert"}, {"--ssl-ca"},
        {"--ssl-key", "--ssl-cert"}, {"--ssl-key", "--ssl-ca"}, {"--ssl-cert", "--ssl-ca"},
    )
]  # fmt: skip


def assert_not_listening(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


@pytest.mark.parametrize("daemon", [False, True], ids=["foreground", "daemon"])
@pytest.mark.parametrize("given", PARTIAL_TLS, ids=lambda g: "+".join(sorted(g)))
def test_partial_tls_options_fail_before_binding(
    given: frozenset[str], daemon: bool, tmp_path: Path, certs: Any
) -> None:
    files = {"--ssl-key": certs.server.key, "--ssl-cert": certs.server.cert, "--ssl-ca": certs.ca}
    port = free_port()
    pidfile = tmp_path / "geard.pid"
    args = [*GEARD, "-p", str(port), "--listen-address", "127.0.0.1", "--pidfile", str(pidfile)]
    if not daemon:
        args.append("-d")
    for flag in sorted(given):
        args += [flag, files[flag]]
    out = subprocess.run(args, capture_output=True, timeout=30)
    assert out.returncode == 2, out.stderr
    missing = [flag for flag in TLS_FLAGS if flag not in given]
    message = "; missing %s\n" % " and ".join(missing)
    assert out.stderr.decode().endswith(message), out.stderr
    assert b"TLS needs --ssl-key, --ssl-cert and --ssl-ca together" in out.stderr
    assert b"Listening" not in out.stderr
    assert not pidfile.exists()
    assert_not_listening(port)


@pytest.mark.parametrize("given", PARTIAL_TLS, ids=lambda g: "+".join(sorted(g)))
def test_partial_tls_arguments_raise(given: frozenset[str]) -> None:
    files = {flag: "/path/%s" % flag.lstrip("-") for flag in given}
    key, cert, ca = (files.get(flag) for flag in TLS_FLAGS)
    missing = [flag[2:].replace("-", "_") for flag in TLS_FLAGS if flag not in given]
    with pytest.raises(ValueError) as raised:
        check_tls_files(key, cert, ca)
    assert str(raised.value) == (
        "TLS needs ssl_key, ssl_cert and ssl_ca together; missing %s" % " and ".join(missing)
    )


def test_tls_arguments_all_or_none() -> None:
    assert check_tls_files("k", "c", "a") is True
    assert check_tls_files(Path("k"), Path("c"), Path("a"), cli=True) is True
    assert check_tls_files(None, None, None) is False
    assert check_tls_files("", "", "", cli=True) is False
    with pytest.raises(ValueError, match=r"; missing --ssl-cert$"):
        check_tls_files("k", "", "a", cli=True)
