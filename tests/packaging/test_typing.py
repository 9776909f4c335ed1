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


EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

ASYNC_TYPES = """
import asyncio
from typing import Literal, assert_type

import gear
from gear.client import AsyncJob, WorkUpdate
from gear.worker import AsyncWorkerJob, Handler


async def client_side() -> None:
    async with gear.AsyncClient("typed", servers=["127.0.0.1:4730"]) as client:
        assert_type(client, gear.AsyncClient[bytes])
        assert_type(await client.call("reverse", b"abc", priority="high"), bytes)
        job = await client.submit("reverse", "abc", keep_updates=False)
        assert_type(job, AsyncJob)
        assert_type(job.name, str)
        assert_type(job.arguments, bytes)
        assert_type(job.unique, bytes | None)
        assert_type(await job, bytes)
        async for update in job:
            assert_type(update, WorkUpdate)
            assert_type(update.kind, Literal["data", "warning", "status"])
            assert_type(update.numerator, int | None)
    async with gear.AsyncClient(servers=["h"], codec=gear.JSONCodec()) as objects:
        assert_type(objects, gear.AsyncClient[object])
        assert_type(await objects.call("resize", {"width": 640}), object)
        assert_type(await objects.call("reverse", "abc", returns=str), str)
    policy = gear.ReconnectPolicy(max_attempts=3)
    gear.AsyncClient(servers=[("h", 4730), {"host": "h", "ssl_ca": "ca.pem"}], reconnect=policy)


async def annotated(client: gear.AsyncClient) -> None:
    # A bare gear.AsyncClient annotation is AsyncClient[bytes] under --strict.
    assert_type(client, gear.AsyncClient[bytes])
    assert_type(await client.call("reverse", b"abc"), bytes)


async def reverse(job: AsyncWorkerJob) -> bytes:
    assert_type(job.arguments, bytes)
    assert_type(job.name, str)
    return job.arguments[::-1]


async def worker_side() -> None:
    handlers: dict[str, Handler] = {"reverse": reverse}
    async with gear.AsyncWorker("typed", [("127.0.0.1", 4730)]) as worker:
        assert_type(worker, gear.AsyncWorker)
        await worker.serve(handlers, 4, on_cancel="fail")
        await worker.serve({b"reverse": reverse})

    decorated = gear.AsyncWorker("typed", codec=gear.MsgpackCodec())

    @decorated.function("upper", timeout=30)
    async def upper(text: str) -> str:
        return text.upper()

    @decorated.function
    def count(items: list[int]) -> int:
        return len(items)

    assert_type(await upper("a"), str)
    assert_type(count([1]), int)
    async with decorated:
        await decorated.run(8, drain_timeout=5)
"""

ASYNC_ERRORS = """
import gear
from gear.worker import AsyncWorkerJob


async def returns_an_int(job: AsyncWorkerJob) -> int:
    return 42


async def main(client: gear.AsyncClient[bytes], worker: gear.AsyncWorker) -> None:
    await client.call("f", b"", priority="urgent")  # type: ignore[call-overload]
    await worker.serve({"f": returns_an_int})  # type: ignore[arg-type]
    await worker.serve({}, on_cancel="drop")  # type: ignore[arg-type]
    n: int = (await client.call("f")).numerator  # type: ignore[attr-defined]
    worker.function("f", timeout="5")  # type: ignore[call-overload]
    s: str = await client.call("f", returns=int)  # type: ignore[arg-type]
"""


def _mypy_files(tmp_path: Path, *files: Path, extra: tuple[str, ...] = ()) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file=", *extra]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_asyncio_examples_have_no_any(tmp_path: Path) -> None:
    """mypy --strict with --disallow-any-expr: every expression has a concrete type."""
    examples = [EXAMPLES / "async_client.py", EXAMPLES / "async_worker.py"]
    _mypy_files(tmp_path, *examples, extra=("--disallow-any-expr",))


def test_the_asyncio_api_types(tmp_path: Path) -> None:
    program = tmp_path / "async_types.py"
    program.write_text(textwrap.dedent(ASYNC_TYPES))
    _mypy_files(tmp_path, program, extra=("--disallow-any-expr",))
    errors = tmp_path / "async_errors.py"
    errors.write_text(textwrap.dedent(ASYNC_ERRORS))
    _mypy_files(tmp_path, errors, extra=("--warn-unused-ignores",))
