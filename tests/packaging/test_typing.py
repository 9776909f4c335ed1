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


TYPED_API = Path(__file__).with_name("typed_api.py")


def _mypy(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
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
            "--cache-dir=" + str(tmp_path / "mypy-cache"),
            *options,
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


def test_public_api_types_are_precise(tmp_path: Path) -> None:
    """typed_api.py: every assert_type holds, every ``# type: ignore`` is needed."""
    result = _mypy(tmp_path, TYPED_API.read_text(), "--warn-unused-ignores")
    assert result.returncode == 0, result.stdout + result.stderr
    assert TYPED_API.read_text().count("# type: ignore[") >= 20


def test_a_line_that_stops_being_an_error_fails(tmp_path: Path) -> None:
    """The check above has teeth: a needless ignore is reported."""
    result = _mypy(
        tmp_path,
        """
        import gear
        job = gear.Job("reverse", b"bytes are fine")  # type: ignore[arg-type]
        """,
        "--warn-unused-ignores",
    )
    assert result.returncode == 1
    assert 'Unused "type: ignore" comment' in result.stdout
