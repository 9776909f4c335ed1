"""The README's first command does what the README says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fixtures.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_starts_geard_and_runs_a_job(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/demo" in readme and "./scripts/check" in readme
    port = free_port()
    env = dict(os.environ, GEARD_PORT=str(port), GEAR_DEMO_VENV=str(tmp_path / "venv"))
    result = subprocess.run(
        [str(ROOT / "scripts" / "demo")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the worker answered 'namraeg ,olleh'" in result.stdout
    assert "reverse\t0\t0\t1" in result.stdout
    assert f"Listening on 127.0.0.1 port {port}" in result.stderr
    assert "geard exited" in result.stderr
