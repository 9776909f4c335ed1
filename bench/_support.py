"""What every benchmark script needs: ports, a server's readiness, CPU time, gear 0.16."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def quiet_log_config(folder: Path) -> Path:
    """A ``geard --log-config`` file that logs warnings and errors only, to stderr."""
    path = folder / "warning.conf"
    path.write_text(
        "[loggers]\nkeys=root\n[handlers]\nkeys=err\n[formatters]\nkeys=\n"
        "[logger_root]\nlevel=WARNING\nhandlers=err\n"
        "[handler_err]\nclass=StreamHandler\nargs=(sys.stderr,)\n"
    )
    return path


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    """Return once ``port`` accepts; fail early if ``proc`` (the server) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listened on %d within %.0f s" % (port, timeout))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gear016_python() -> Path:
    """The python of a private venv with gear==0.16.0 (made once, shared by the benchmarks)."""
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.gear016 import make_venv

    return make_venv(REPO / ".venv-bench-gear016")
