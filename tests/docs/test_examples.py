"""Run the examples under docs/examples against real servers.

Every runnable example that the docs include is executed here as a reader
would run it: a subprocess with host and port on the command line, against
our geard and the C gearmand. Config files shown in the docs (logging, ACL,
systemd unit) are loaded by the programs that use them.
"""

from __future__ import annotations

import configparser
import logging.config
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import gear
from fixtures.geard import Geard, RawGearman, spawn_geard
from fixtures.servers import LOOPBACK, GearmanD, free_port, wait_for_port

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A console script installed next to this Python (geard, geard-certs)."""
    path = shutil.which(name, path=str(BIN))
    assert path is not None, f"{name} is not installed next to {sys.executable}"
    return path


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


Spawn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start long-running examples (workers); they are killed at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(name: str, *args: object, ready: str = "worker ready") -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert ready in line, f"{name} did not start: {line}{proc.stdout.read()}"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


def admin(port: int, line: str, context: ssl.SSLContext | None = None) -> str:
    """Send one admin command to a server and return its reply."""
    with RawGearman(port, ssl_context=context) as conn:
        return conn.admin(line).decode()


# -- Ctrl-C ------------------------------------------------------------------------

#: example -> what shows it is waiting: a line it prints, or (None) a job queued.
BLOCKING = {
    "worker.py": "worker ready",
    "tls_worker.py": "worker ready",
    "async_worker.py": "worker ready",
    "client.py": "submitted",  # no worker: it waits for the result
    "async_client.py": None,
}


@pytest.mark.parametrize("name", sorted(BLOCKING))
def test_example_ends_cleanly_on_ctrl_c(
    name: str, geard_factory: Callable[..., Geard], certs: Any
) -> None:
    """SIGINT (what Ctrl-C sends) to a waiting example: no traceback, a plain exit."""
    args: list[str] = []
    context = None
    if name.startswith("tls_"):  # the test CA's "client" certificate, in its folder
        tls = {"ssl_key": certs.server.key, "ssl_cert": certs.server.cert, "ssl_ca": certs.ca}
        geard = geard_factory(**tls)
        args = [str(certs.folder), "client"]
        context = _context(certs.folder, "client")
    else:
        geard = geard_factory()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), geard.host, str(geard.port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = BLOCKING[name]
        if ready is not None:
            line = proc.stdout.readline()
            assert ready in line, line
        deadline = time.monotonic() + 30
        while "reverse" not in admin(geard.port, "status", context):  # registered, or queued
            assert time.monotonic() < deadline, f"{name} did not reach the server"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    if "worker" in name:  # Ctrl-C is how a worker is meant to stop
        assert (proc.returncode, out.splitlines()[-1:], err) == (0, ["worker stopped"], "")
    else:  # a client that was stopped before its result says so
        assert (proc.returncode, err) == (1, "interrupted\n")
    deadline = time.monotonic() + 30
    while "reverse\t" in admin(geard.port, "workers", context):  # the worker disconnected
        assert time.monotonic() < deadline, admin(geard.port, "workers", context)
        time.sleep(0.05)


# -- gear-core and the server in Python -------------------------------------


def test_low_level(server: Geard | GearmanD) -> None:
    out = run_example("low_level.py", server.host, server.port)
    assert "ECHO_RES b'ping'" in out
    assert "server version: OK " in out


def test_geard_in_asyncio_app() -> None:
    out = run_example("geard_in_asyncio_app.py")
    assert "listening on port" in out
    assert "echo reply: b'ping'" in out
    assert "stopped: True" in out


def test_embedded_server() -> None:
    out = run_example("embedded_server.py")
    assert "listening on port" in out
    assert "version reply: OK " in out
    assert "stopped: True" in out


# -- the tutorial --------------------------------------------------------------


def test_tutorial_worker_and_client(server: Geard | GearmanD, spawn: Spawn) -> None:
    spawn("worker.py", server.host, server.port)
    out = run_example("client.py", server.host, server.port)
    assert "submitted b'H:" in out
    assert "result: !namraeG ,olleH" in out


def test_asyncio_worker_and_client(server: Geard | GearmanD, spawn: Spawn) -> None:
    spawn("async_worker.py", server.host, server.port)
    out = run_example("async_client.py", server.host, server.port)
    assert out.splitlines() == [
        "result: !oicnysa ,olleH",
        "results: ['0 boj', '1 boj', '2 boj', '3 boj', '4 boj']",
        "update: status 1 2",
        'final: "setadpu htiw"',
    ]


def test_metrics_from_hooks(server: Geard | GearmanD) -> None:
    lines = run_example("metrics_hooks.py", server.host, server.port).splitlines()
    assert "remote error: TypeError: can't multiply sequence by non-int of type 'str'" in lines
    for role in ("worker", "client"):
        assert 'gear_%s_jobs_total{function="square",outcome="complete"} 5.0' % role in lines
        assert 'gear_%s_jobs_total{function="square",outcome="exception"} 1.0' % role in lines
        assert 'gear_%s_job_seconds_count{function="square"} 6.0' % role in lines
    assert "gear_worker_connected_servers 1.0" in lines  # still serving
    assert "gear_client_connected_servers 0.0" in lines  # closed


def test_asyncio_client_with_threaded_worker(server: Geard | GearmanD, spawn: Spawn) -> None:
    spawn("worker.py", server.host, server.port)
    out = run_example("async_client.py", server.host, server.port)
    assert 'final: "setadpu htiw"' in out


def test_background_jobs(server: Geard | GearmanD, spawn: Spawn) -> None:
    out = run_example("background.py", server.host, server.port)
    assert "queued 3 jobs" in out
    assert "known: True running: False" in out
    assert admin(server.port, "status").startswith("reverse\t3\t0\t0\n")
    spawn("worker.py", server.host, server.port)
    deadline = time.monotonic() + 30
    while admin(server.port, "status") != "reverse\t0\t0\t1\n.\n":
        assert time.monotonic() < deadline, "the worker did not drain the queue"
        time.sleep(0.05)


def test_queue_status(server: Geard | GearmanD, spawn: Spawn) -> None:
    spawn("worker.py", server.host, server.port)
    out = run_example("queue_status.py", server.host, server.port)
    lines = out.splitlines()
    assert lines[0].split() == ["function", "total", "running", "workers"]
    assert lines[1].split() == ["reverse", "0", "0", "1"]


def test_failover(geard_factory: Callable[..., Geard], spawn: Spawn) -> None:
    first, second = geard_factory(), geard_factory()
    for each in (first, second):
        spawn("worker.py", each.host, each.port)
    out = run_example("failover.py", first.address, second.address)
    # waitForServer returns once one server is connected, so under load every job
    # may go to the first that answered: each job done by one of the two is the claim.
    lines = out.splitlines()
    assert len(lines) == 4, out
    for n, line in enumerate(lines):
        address, number, result = line.split()
        assert address in (first.address, second.address) and (number, result) == (
            str(n),
            "boj",
        ), line
    second.stop()
    out = run_example("failover.py", first.address, second.address)
    assert out.splitlines() == [f"{first.address} {n} boj" for n in range(4)]


# -- geard as the how-to guides run it ------------------------------------------


def start_geard(*args: str, port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """The installed ``geard`` console script, as the how-to guides run it."""
    return spawn_geard(*args, port=port, command=[tool("geard")])


@pytest.fixture
def geard_procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def logging_conf(tmp_path: Path) -> Path:
    text = (EXAMPLES / "logging.conf").read_text()
    assert "/var/log/geard/" in text
    path = tmp_path / "logging.conf"
    path.write_text(text.replace("/var/log/geard/", f"{tmp_path}/"))
    return path


def test_logging_conf_loads(tmp_path: Path) -> None:
    path = logging_conf(tmp_path)
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


def unit_command(tmp_path: Path, port: int) -> list[str]:
    """ExecStart of the systemd unit in the docs, pointed at a test port and files."""
    unit = configparser.RawConfigParser(strict=False)
    unit.read(EXAMPLES / "geard.service")
    assert unit.get("Service", "KillSignal") == "SIGTERM"
    # systemd joins a line that ends in a backslash to the next one.
    argv = shlex.split(unit.get("Service", "ExecStart").replace("\\\n", " "))
    assert argv[0] == "/usr/local/bin/geard"
    argv[0] = tool("geard")
    argv[argv.index("--listen-address") + 1] = LOOPBACK
    argv[argv.index("-p") + 1] = str(port)
    argv[argv.index("--log-config") + 1] = str(logging_conf(tmp_path))
    argv[argv.index("--queue-file") + 1] = str(tmp_path / "queue.db")
    return argv


def test_geard_as_in_the_systemd_unit(
    tmp_path: Path, geard_procs: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    proc = subprocess.Popen(unit_command(tmp_path, port))
    geard_procs.append(proc)
    wait_for_port(LOOPBACK, port, proc=proc)
    out = run_example("low_level.py", LOOPBACK, port)
    assert "server version: OK " in out
    assert admin(port, "getpid") == f"OK {proc.pid}\n"
    run_example("background.py", LOOPBACK, port)  # three jobs, no worker
    proc.send_signal(signal.SIGTERM)  # what systemctl stop sends
    assert proc.wait(30) == 0
    assert "Listening on" in (tmp_path / "info.log").read_text()

    proc = subprocess.Popen(unit_command(tmp_path, port))  # systemctl start
    geard_procs.append(proc)
    wait_for_port(LOOPBACK, port, proc=proc)
    assert admin(port, "status") == "reverse\t3\t0\t0\n.\n"


def test_graceful_shutdown_command(geard_procs: list[subprocess.Popen[bytes]]) -> None:
    proc, port = start_geard()
    geard_procs.append(proc)
    assert admin(port, "shutdown graceful") == "OK\n"
    assert proc.wait(30) == 0


def test_geard_help_page_is_real() -> None:
    help_text = subprocess.run(
        [tool("geard"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--listen-address", "--log-config", "--pidfile", "--ssl-key", "--acl"):
        assert flag in help_text


def test_durable_queue_survives_kill(
    tmp_path: Path, geard_procs: list[subprocess.Popen[bytes]], spawn: Spawn
) -> None:
    queue = tmp_path / "queue.db"
    proc, port = start_geard("--queue-file", str(queue))
    geard_procs.append(proc)
    run_example("background.py", LOOPBACK, port)
    proc.kill()  # no chance to flush anything more
    proc.wait(10)
    proc, port = start_geard("--queue-file", str(queue), port=port)
    geard_procs.append(proc)
    assert admin(port, "status") == "reverse\t3\t0\t0\n.\n"
    spawn("worker.py", LOOPBACK, port)
    deadline = time.monotonic() + 30
    while admin(port, "status") != "reverse\t0\t0\t1\n.\n":
        assert time.monotonic() < deadline, "the worker did not drain the restored jobs"
        time.sleep(0.05)


# -- TLS and ACLs -----------------------------------------------------------------


def make_certs(folder: Path, *names: str) -> None:
    args = [a for name in names for a in ("--client-cn", name)]
    subprocess.run([tool("geard-certs"), str(folder), *args], check=True, capture_output=True)


def tls_flags(certs: Path) -> list[str]:
    return [
        "--ssl-ca",
        str(certs / "ca.pem"),
        "--ssl-cert",
        str(certs / "server.pem"),
        "--ssl-key",
        str(certs / "server.key"),
    ]


def test_tls_in_five_minutes(
    tmp_path: Path, geard_procs: list[subprocess.Popen[bytes]], spawn: Spawn
) -> None:
    certs = tmp_path / "certs"
    make_certs(certs, "worker", "webapp")
    for name in ("ca", "server", "worker", "webapp"):
        assert (certs / f"{name}.pem").exists()
    proc, port = start_geard(*tls_flags(certs))
    geard_procs.append(proc)
    spawn("tls_worker.py", LOOPBACK, port, certs)
    out = run_example("tls_client.py", LOOPBACK, port, certs)
    assert "result: SLT revo" in out
    with pytest.raises((ConnectionError, OSError)):  # no client certificate
        with socket.create_connection((LOOPBACK, port), timeout=10) as raw:
            context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
            context.check_hostname = False
            with context.wrap_socket(raw) as sock:
                sock.sendall(b"version\n")
                if not sock.recv(100):
                    raise ConnectionError("closed")


def _context(certs: Path, name: str) -> ssl.SSLContext:
    return gear.tls.load_context(
        str(certs / f"{name}.key"), str(certs / f"{name}.pem"), str(certs / "ca.pem")
    )


def _tls_peer(kind: type[gear.BaseClient], certs: Path, name: str, port: int) -> gear.BaseClient:
    peer = kind(name)
    peer.addServer(
        LOOPBACK,
        port,
        ssl_key=str(certs / f"{name}.key"),
        ssl_cert=str(certs / f"{name}.pem"),
        ssl_ca=str(certs / "ca.pem"),
    )
    peer.waitForServer(timeout=10)
    return peer


def test_acl_file_from_the_docs(tmp_path: Path, geard_procs: list[subprocess.Popen[bytes]]) -> None:
    certs = tmp_path / "certs"
    make_certs(certs, "thumbnailer", "webapp", "deployer", "reports")
    proc, port = start_geard(*tls_flags(certs), "--acl", str(EXAMPLES / "acl.ini"))
    geard_procs.append(proc)

    listing = admin(port, "acl list", _context(certs, "webapp"))
    assert listing == (
        "deployer\tregister=None\tinvoke=None\tgrant=True\n"
        "thumbnailer\tregister=^image-\tinvoke=None\tgrant=None\n"
        "webapp\tregister=None\tinvoke=^image-\tgrant=None\n"
        ".\n"
    )

    worker = _tls_peer(gear.Worker, certs, "thumbnailer", port)
    client = _tls_peer(gear.Client, certs, "webapp", port)
    try:
        worker.registerFunction("image-resize")
        job = gear.Job("image-resize", b"cat.png")
        client.submitJob(job)
        assigned = worker.getJob(timeout=10)
        assigned.sendWorkComplete(b"small cat")
        assert job.wait(timeout=10) and job.data == [b"small cat"]
        with pytest.raises(gear.GearmanError):  # webapp may not invoke report-*
            client.submitJob(gear.Job("report-daily", b""), timeout=10)
    finally:
        worker.shutdown()
        client.shutdown()

    deployer = _context(certs, "deployer")
    assert admin(port, "acl grant invoke reports ^report-", _context(certs, "webapp")) == (
        "ERR PERMISSION_DENIED\n"
    )
    assert admin(port, "acl grant invoke reports ^report-", deployer) == "OK\n"
    assert admin(port, "acl revoke invoke reports", deployer) == "OK\n"
    assert admin(port, "acl self-revoke register", _context(certs, "thumbnailer")) == "OK\n"
    assert "thumbnailer\tregister=None\tinvoke=None" in admin(port, "acl list", deployer)


def test_acl_file_parses_as_documented() -> None:
    acl = gear.acl.load_acl_file(EXAMPLES / "acl.ini")
    assert [e.subject for e in acl.getEntries()] == ["deployer", "thumbnailer", "webapp"]
    assert acl.canRegister("thumbnailer", "image-resize")
    assert not acl.canRegister("thumbnailer", "resize")
    assert acl.canInvoke("webapp", "image-resize")
    assert acl.canGrant("deployer")


# -- the distribution split -------------------------------------------------------


def test_missing_distribution_message_as_documented() -> None:
    """The ImportError shown in the docs is the one gear raises."""
    docs = EXAMPLES.parent
    shown = "ImportError: gear.Server is provided by gear-server: pip install gear-server"
    for page in ("howto/choosing-distributions.rst", "explanation/architecture.rst"):
        assert shown in (docs / page).read_text()
    code = (
        "import sys\n"
        "sys.modules['gear.server'] = None  # as if gear-server were not installed\n"
        "import gear\n"
        "try:\n"
        "    gear.Server\n"
        "except ImportError as e:\n"
        "    print('ImportError: %s' % e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == shown


# -- monitoring -------------------------------------------------------------------


def test_statsd_metrics_as_documented(geard_procs: list[subprocess.Popen[bytes]]) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((LOOPBACK, 0))
    udp.settimeout(10)
    port = free_port()
    env = {
        **os.environ,
        "STATSD_HOST": LOOPBACK,
        "STATSD_PORT": str(udp.getsockname()[1]),
        "STATSD_PREFIX": "gearman",
    }
    proc = subprocess.Popen(
        [tool("geard"), "-d", "--listen-address", LOOPBACK, "-p", str(port)], env=env
    )
    geard_procs.append(proc)
    wait_for_port(LOOPBACK, port, proc=proc)
    run_example("background.py", LOOPBACK, port)
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while not {"gearman.packet.SUBMIT_JOB_BG", "gearman.queue.total"} <= seen:
        assert time.monotonic() < deadline, f"metrics seen: {sorted(seen)}"
        line = udp.recv(4096).decode()
        for metric in line.splitlines():
            seen.add(metric.split(":")[0])
    udp.close()


def test_every_public_name_is_in_the_reference() -> None:
    """Each name of the gear facade has an entry in docs/reference."""
    text = "\n".join(p.read_text() for p in (EXAMPLES.parent / "reference").glob("*.rst"))
    targets = set(re.findall(r"^\.\. (?:auto\w+|py:\w+):: (gear\.[\w.]+)", text, re.MULTILINE))
    missing = sorted(name for name in gear.PUBLIC_NAMES if f"gear.{name}" not in targets)
    assert not missing, f"not documented in docs/reference: {missing}"
