"""User programs type-check against the facade with ``mypy --strict``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

GOOD = """
import gear

def submit(client: gear.Client, name: str) -> gear.Job:
    job = gear.Job(name, b"payload")
    client.submitJob(job, background=False, precedence=gear.PRECEDENCE_HIGH)
    return job

def wire(packet: gear.Packet) -> bytes:
    return bytes(packet.toBinary()) + packet.getArgument(0)

client = gear.Client("typed")
client.addServer("127.0.0.1", 4730)
job: gear.Job = submit(client, "reverse")
data: bytes = wire(gear.Packet(gear.constants.REQ, gear.constants.ECHO_REQ, b"x"))
"""

BAD = """
import gear

packet = gear.Packet(gear.constants.REQ, gear.constants.ECHO_REQ, b"x")
wrong: str = packet.toBinary()
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(source))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--config-file=",
            str(program),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def test_a_typed_user_program_passes(tmp_path: Path) -> None:
    result = _mypy(tmp_path, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_type_error_is_caught(tmp_path: Path) -> None:
    result = _mypy(tmp_path, BAD)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Incompatible types in assignment (expression has type "bytearray"' in result.stdout
