"""Payload codecs across implementations: the ``gearman`` tool talks JSON to an AsyncWorker.

Runs through our geard and through the C gearmand. The tool sends its
workload as it is typed and prints the result as it comes, so it sees the
JSON text the codec produces.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import gear
import gear.testing
from fixtures.aio import T, run
from fixtures.servers import require_tool

pytestmark = pytest.mark.interop


async def gearman(server: Any, *args: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        require_tool("gearman"),
        "-h",
        server.host,
        "-p",
        str(server.port),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), T)
    assert proc.returncode is not None
    return proc.returncode, out, err


def json_worker(calls: list[Any]) -> gear.AsyncWorker:
    worker = gear.AsyncWorker("json-worker", codec=gear.JSONCodec())

    @worker.function("resize")
    async def resize(size: dict[str, int]) -> dict[str, int]:
        calls.append(size)
        return {"width": size["width"] // 2, "height": size["height"] // 2}

    @worker.function("ping")
    def ping(argument: None) -> str:
        calls.append(argument)
        return "pong"

    return worker


def test_gearman_tool_submits_json_that_the_worker_decodes(server: Any) -> None:
    calls: list[Any] = []

    async def main() -> None:
        async with gear.testing.serving(json_worker(calls), (server.host, server.port)):
            code, out, err = await gearman(server, "-f", "resize", '{"width": 640, "height": 480}')
            assert (code, out) == (0, b'{"width":320,"height":240}'), err
            code, out, err = await gearman(server, "-f", "ping")
            assert (code, out) == (0, b'"pong"'), err

    run(main())
    assert calls == [{"width": 640, "height": 480}, None]


def test_a_workload_that_is_not_json_fails_the_job(gear_server: Any) -> None:
    """geard turns the worker's WORK_EXCEPTION into WORK_FAIL for the tool.

    (Through the C gearmand the tool, which does not ask for exceptions, is
    left waiting forever after a WORK_EXCEPTION, whoever the worker is: that
    is why this runs on geard only.)
    """
    calls: list[Any] = []

    async def main() -> None:
        async with gear.testing.serving(json_worker(calls), gear_server):
            code, out, err = await gearman(gear_server, "-f", "resize", "640x480")
            assert (code, out) == (1, b""), err

    run(main())
    assert calls == []
