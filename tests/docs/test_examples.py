"""Run the examples under docs/examples against real servers.

Every runnable example that the docs include is executed here as a user
would run it (a subprocess with host and port on the command line), so a
change that breaks an example fails the test suite.
"""

from __future__ import annotations

import configparser
import logging.config
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.geard import Geard
from fixtures.servers import LOOPBACK, GearmanD, free_port, wait_for_port

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def run_example(name: str, *args: object, timeout: float = 60) -> str:
    """Run one example to completion and return its standard output."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{name} exited with {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def admin(port: int, line: str) -> str:
    """Send one admin command to a server and return its one-line reply."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
        sock.sendall(line.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode()


@pytest.fixture(params=["geard", "gearmand"])
def server(request: pytest.FixtureRequest) -> Geard | GearmanD:
    """Our geard and the C gearmand, in turn."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_low_level(server: Geard | GearmanD) -> None:
    out = run_example("low_level.py", server.host, server.port)
    assert "ECHO_RES b'ping'" in out
    assert "server version: OK " in out


def test_embedded_server() -> None:
    out = run_example("embedded_server.py")
    assert "listening on port" in out
    assert "version reply: OK " in out
    assert "stopped: True" in out


def geard_command() -> str:
    path = shutil.which("geard", path=str(Path(sys.executable).parent))
    assert path is not None, "geard is not installed next to this Python"
    return path


@pytest.fixture
def geard_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """geard started the way the systemd unit in the docs starts it."""
    unit = configparser.RawConfigParser(strict=False)
    unit.read(EXAMPLES / "geard.service")
    argv = shlex.split(unit.get("Service", "ExecStart"))
    assert argv[0] == "/usr/local/bin/geard"
    port = free_port()
    conf = tmp_path / "logging.conf"
    conf.write_text(
        (EXAMPLES / "logging.conf").read_text().replace("/var/log/geard/", f"{tmp_path}/")
    )
    argv[0] = geard_command()
    argv[argv.index("--listen-address") + 1] = LOOPBACK
    argv[argv.index("-p") + 1] = str(port)
    argv[argv.index("--log-config") + 1] = str(conf)
    proc = subprocess.Popen(argv)
    try:
        wait_for_port(LOOPBACK, port, proc=proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_geard_as_in_the_systemd_unit(
    geard_process: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    proc, port = geard_process
    out = run_example("low_level.py", LOOPBACK, port)
    assert "server version: OK " in out
    assert admin(port, "getpid") == f"OK {proc.pid}\n"
    proc.send_signal(signal.SIGTERM)  # what systemctl stop sends
    assert proc.wait(30) == 0
    assert "Listening on" in (tmp_path / "info.log").read_text()


def test_graceful_shutdown_command(geard_process: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = geard_process
    assert admin(port, "shutdown graceful") == "OK\n"
    assert proc.wait(30) == 0


def test_geard_help_page_is_real() -> None:
    help_text = subprocess.run(
        [geard_command(), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--listen-address", "--log-config", "--pidfile", "--ssl-key", "--acl"):
        assert flag in help_text


def test_logging_conf_loads(tmp_path: Path) -> None:
    text = (EXAMPLES / "logging.conf").read_text()
    assert "/var/log/geard/" in text
    path = tmp_path / "logging.conf"
    path.write_text(text.replace("/var/log/geard/", f"{tmp_path}/"))
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, root.handlers[:]
    try:
        logging.config.fileConfig(path, disable_existing_loggers=False)
        logging.getLogger("gear.Server").info("hello from the docs test")
    finally:
        for logger in (logging.getLogger("gear"), root):
            for handler in logger.handlers[:]:
                if handler not in saved_handlers:
                    logger.removeHandler(handler)
                    handler.close()
        logging.getLogger("gear").setLevel(logging.NOTSET)
        root.setLevel(saved_level)
    assert "hello from the docs test" in (tmp_path / "info.log").read_text()


def test_acl_file_parses() -> None:
    parser = configparser.RawConfigParser()
    assert parser.read(EXAMPLES / "acl.ini")
    assert parser.sections() == ["thumbnailer", "webapp", "deployer"]
    assert parser.getboolean("deployer", "grant") is True
