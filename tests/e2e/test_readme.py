"""The README's first commands do what the README says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fixtures.geard import Geard, RawGearman
from fixtures.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One venv for the demo runs of this module (the first run installs gear)."""
    return tmp_path_factory.mktemp("demo") / "venv"


def run_demo(port: int, venv: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GEARD_PORT=str(port), GEAR_DEMO_VENV=str(venv))
    return subprocess.run(
        [str(ROOT / "scripts" / "demo")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_demo_starts_geard_and_runs_a_job(demo_venv: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/demo" in readme and "./scripts/check" in readme
    port = free_port()
    result = run_demo(port, demo_venv)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the worker answered 'namraeg ,olleh'" in result.stdout
    assert "reverse\t0\t0\t1" in result.stdout
    assert f"Listening on 127.0.0.1 port {port}" in result.stderr
    assert "geard exited" in result.stderr


def test_demo_refuses_a_port_another_server_holds(demo_venv: Path, geard: Geard) -> None:
    """With another Gearman server on its port, the demo fails instead of using it."""
    result = run_demo(geard.port, demo_venv)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"demo: port {geard.port} is taken by another server" in result.stderr
    assert "Traceback" not in result.stderr
    assert "worker answered" not in result.stdout
    with RawGearman(geard.port) as admin:
        assert admin.admin("status") == b".\n"  # nothing ran on the other server
