"""AsyncWorker.function, timeouts, payload codecs, RemoteError and hooks, against geard.

Each test runs a real geard in-process (the ``gear_server`` fixture of
gear.testing's pytest plugin) with an AsyncWorker served by
``gear.testing.serving`` and an AsyncClient over real sockets.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import gear
import gear.testing
from fixtures.aio import T, run, wait_until
from fixtures.geard import RawGearman
from gear.hooks import JobOutcome
from gear.testing import InProcessServer
from gear.worker import current_job


def client_for(srv: InProcessServer, **options: Any) -> Any:
    return gear.AsyncClient("test-client", [srv.address], **options)


def admin_status(srv: InProcessServer) -> dict[str, list[str]]:
    """The server's ``status`` table: function -> [total, running, workers]."""
    with RawGearman(srv.port) as conn:
        reply = conn.admin("status").decode()
    rows = [line.split("\t") for line in reply.splitlines() if "\t" in line]
    return {row[0]: row[1:] for row in rows}


# -- decorator registration ---------------------------------------------------


def test_function_registers_named_unnamed_async_and_sync(gear_server: InProcessServer) -> None:
    worker = gear.AsyncWorker("decorated")
    loop_threads: list[int] = []

    @worker.function("shout")
    async def upper(job: Any) -> bytes:
        loop_threads.append(threading.get_ident())
        return bytes(job.arguments).upper()

    @worker.function
    def lower(job: Any) -> bytes:
        return bytes(job.arguments).lower() + b" in %d" % threading.get_ident()

    @worker.function()
    async def title(job: Any) -> str:
        return job.arguments.decode().title()

    assert sorted(worker.functions) == [b"lower", b"shout", b"title"]
    assert upper.__name__ == "upper" and lower.__name__ == "lower"  # returned unchanged

    async def main() -> None:
        async with gear.testing.serving(worker, gear_server):
            status = admin_status(gear_server)
            assert {name: row[2] for name, row in status.items()} == {
                "shout": "1",
                "lower": "1",
                "title": "1",
            }
            async with client_for(gear_server) as client:
                assert await client.call("shout", b"hey", timeout=T) == b"HEY"
                assert await client.call("title", b"big job", timeout=T) == b"Big Job"
                reply = await client.call("lower", b"QUIET", timeout=T)
        text, _, thread = reply.partition(b" in ")
        assert text == b"quiet"
        assert int(thread) != loop_threads[0], "a plain def must run in an executor thread"

    run(main())


def test_a_blocking_plain_def_does_not_stall_the_loop(gear_server: InProcessServer) -> None:
    worker = gear.AsyncWorker("blocking")
    release = threading.Event()

    @worker.function("block")
    def block(job: Any) -> bytes:
        assert release.wait(T), "never released"
        return b"unblocked"

    @worker.function("quick")
    async def quick(job: Any) -> bytes:
        return b"quick"

    async def main() -> None:
        async with gear.testing.serving(worker, gear_server), client_for(gear_server) as client:
            blocked = asyncio.create_task(client.call("block", timeout=T))
            assert await client.call("quick", timeout=T) == b"quick"
            assert not blocked.done()
            release.set()
            assert await blocked == b"unblocked"

    run(main())


def test_function_names_must_be_known(gear_server: InProcessServer) -> None:
    worker = gear.AsyncWorker("w")
    nameless = type("Callable", (), {"__call__": lambda self, job: b""})()
    with pytest.raises(gear.ConfigurationError, match="give the function a name"):
        worker.function(nameless)
    with pytest.raises(ValueError, match="positive"):
        worker.function("x", timeout=0)(lambda job: b"")


# -- timeouts -------------------------------------------------------------------


def test_a_handler_past_its_timeout_is_cancelled_and_the_worker_goes_on(
    gear_server: InProcessServer,
) -> None:
    worker = gear.AsyncWorker("timed", codec=gear.JSONCodec())
    cancelled = asyncio.Event()

    @worker.function("slow", timeout=0.3)
    async def slow(seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "slept"

    async def main() -> None:
        async with gear.testing.serving(worker, gear_server) as running:
            # The server got a backstop a little after the worker's own deadline.
            (conn,) = [c for c in gear_server.server.active_connections if c.timeouts]
            assert conn.timeouts == {b"slow": 2}
            async with client_for(gear_server, codec=gear.JSONCodec()) as client:
                started = asyncio.get_running_loop().time()
                with pytest.raises(gear.RemoteError) as caught:
                    await client.call("slow", 30, timeout=T)
                elapsed = asyncio.get_running_loop().time() - started
                assert caught.value.type_name == "TimeoutError"
                assert caught.value.message == "function 'slow' ran past its timeout of 0.3 s"
                assert 0.3 <= elapsed < 1.5, elapsed
                assert cancelled.is_set()
                # The same worker keeps serving, the same function too.
                assert await client.call("slow", 0.01, timeout=T) == "slept"
            assert running.active_connections

    run(main())


def test_a_timeout_without_a_codec_is_a_text_exception(gear_server: InProcessServer) -> None:
    worker = gear.AsyncWorker("timed")

    @worker.function("stuck", timeout=0.2)
    def stuck(job: Any) -> bytes:
        threading.Event().wait(1)  # a thread cannot be cancelled; its job ends anyway
        return b"late"

    async def main() -> None:
        async with gear.testing.serving(worker, gear_server), client_for(gear_server) as client:
            with pytest.raises(gear.JobExceptionError) as caught:
                await client.call("stuck", timeout=T)
            assert not isinstance(caught.value, gear.RemoteError)
            assert caught.value.exception == (
                b"TimeoutError: function 'stuck' ran past its timeout of 0.2 s"
            )

    run(main())


# -- codecs -------------------------------------------------------------------


@pytest.mark.parametrize("codec", [gear.JSONCodec(), gear.MsgpackCodec()], ids=repr)
def test_call_round_trips_objects(gear_server: InProcessServer, codec: gear.Codec) -> None:
    worker = gear.AsyncWorker("resizer", codec=codec)

    @worker.function("resize")
    async def resize(size: dict[str, Any]) -> dict[str, Any]:
        return {"width": size["width"] // 2, "height": size["height"] // 2, "tags": ["half"]}

    @worker.function("nothing")
    def nothing(argument: Any) -> None:
        assert argument is None

    async def main() -> None:
        async with gear.testing.serving(worker, gear_server):
            async with client_for(gear_server, codec=codec) as client:
                result = await client.call("resize", {"width": 640, "height": 480}, timeout=T)
                assert result == {"width": 320, "height": 240, "tags": ["half"]}
                assert await client.call("nothing", None, timeout=T) is None

    run(main())


def test_msgpack_keeps_bytes(gear_server: InProcessServer) -> None:
    worker = gear.AsyncWorker("bytes", codec=gear.MsgpackCodec())

    @worker.function("swap")
    async def swap(pair: list[Any]) -> list[Any]:
        return [pair[1], pair[0]]

    async def main() -> None:
        async with gear.testing.serving(worker, gear_server):
            async with client_for(gear_server, codec=gear.MsgpackCodec()) as client:
                assert await client.call("swap", [b"\x00\xff", "text"], timeout=T) == [
                    "text",
                    b"\x00\xff",
                ]

    run(main())


def test_dict_handlers_get_decoded_arguments_too(gear_server: InProcessServer) -> None:
    async def add(numbers: list[int]) -> int:
        return sum(numbers)

    async def main() -> None:
        worker = gear.AsyncWorker("dict", codec=gear.JSONCodec())
        async with gear.testing.serving(worker, gear_server, handlers={"add": add}):
            async with client_for(gear_server, codec=gear.JSONCodec()) as client:
                assert await client.call("add", [1, 2, 3], timeout=T) == 6

    run(main())


class QuotaExceeded(Exception):
    pass


def test_handler_exceptions_arrive_as_remote_errors(gear_server: InProcessServer) -> None:
    worker = gear.AsyncWorker("failing", codec=gear.JSONCodec())
    calls: list[Any] = []

    @worker.function("check")
    async def check(size: Any) -> Any:
        calls.append(size)
        if size == "huge":
            raise QuotaExceeded("disk full")
        if size == "odd":
            return object()  # the codec cannot encode it
        raise ValueError("width must be positive")

    async def main() -> None:
        async with gear.testing.serving(worker, gear_server):
            async with client_for(gear_server, codec=gear.JSONCodec()) as client:
                with pytest.raises(gear.RemoteError) as caught:
                    await client.call("check", -1, timeout=T)
                assert (caught.value.type_name, caught.value.message) == (
                    "ValueError",
                    "width must be positive",
                )
                assert isinstance(caught.value, gear.JobExceptionError)
                assert str(caught.value) == "ValueError: width must be positive"
                with pytest.raises(gear.RemoteError) as caught:
                    await client.call("check", "huge", timeout=T)
                assert caught.value.type_name == "%s.QuotaExceeded" % __name__
                with pytest.raises(gear.RemoteError) as caught:
                    await client.call("check", "odd", timeout=T)
                assert caught.value.type_name == "TypeError"
            # A client without the codec sends bytes the worker's codec cannot read:
            # the handler never runs and the client learns why.
            async with client_for(gear_server) as raw:
                with pytest.raises(gear.RemoteError) as caught:
                    await raw.call("check", b"{not json", timeout=T)
                assert caught.value.type_name == "gear.InvalidDataError"
                assert "not valid JSON" in caught.value.message
        assert calls == [-1, "huge", "odd"]

    run(main())


def test_current_job_reports_progress_from_a_task_and_a_thread(
    gear_server: InProcessServer,
) -> None:
    worker = gear.AsyncWorker("progress", codec=gear.JSONCodec())

    @worker.function("count")
    async def count(n: int) -> int:
        for i in range(1, n + 1):
            current_job().send_status(i, n)
        return n

    @worker.function("chunks")
    def chunks(parts: list[str]) -> int:
        for part in parts:
            current_job().send_data(part)
        return len(parts)

    async def main() -> None:
        async with gear.testing.serving(worker, gear_server), client_for(gear_server) as client:
            job = await client.submit("count", b"3")
            updates = [(u.kind, u.numerator, u.denominator) async for u in job]
            assert updates == [("status", i, 3) for i in (1, 2, 3)]
            assert await job == b"3"
            job = await client.submit("chunks", b'["a", "b"]')
            assert [u.data async for u in job] == [b"a", b"b"]
            assert await job == b"2"
        with pytest.raises(LookupError):
            current_job()

    run(main())


# -- hooks ------------------------------------------------------------------------


class Recorder(gear.Hooks):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.seconds: dict[str, float] = {}

    def on_connect(self, host: str, port: int) -> None:
        self.events.append(("connect", host, port))

    def on_disconnect(self, host: str, port: int) -> None:
        self.events.append(("disconnect", host, port))

    def on_submit(self, job: gear.BaseJob) -> None:
        self.events.append(("submit", job.name))

    def on_job_start(self, job: gear.BaseJob) -> None:
        self.events.append(("start", job.name))

    def on_job_end(self, job: gear.BaseJob, outcome: JobOutcome, seconds: float) -> None:
        self.events.append(("end", job.name, outcome))
        self.seconds[job.name] = seconds

    def named(self, kind: str) -> list[tuple[Any, ...]]:
        return [event[1:] for event in self.events if event[0] == kind]


def test_hooks_fire_with_the_right_outcomes(gear_server: InProcessServer) -> None:
    worker_hooks, client_hooks = Recorder(), Recorder()
    worker = gear.AsyncWorker("hooked", codec=gear.JSONCodec(), hooks=worker_hooks)
    release = asyncio.Event()

    @worker.function("ok")
    async def ok(argument: Any) -> str:
        return "ok"

    @worker.function("slowly")
    async def slowly(argument: Any) -> str:
        await asyncio.sleep(0.25)
        return "ok"

    @worker.function("boom")
    async def boom(argument: Any) -> None:
        raise RuntimeError("boom")

    @worker.function("late", timeout=0.2)
    async def late(argument: Any) -> None:
        await asyncio.sleep(T)

    @worker.function("refuse")
    async def refuse(argument: Any) -> None:
        current_job().fail()

    @worker.function("hang")
    async def hang(argument: Any) -> str:
        await release.wait()
        return "too late: the server is gone"

    async def main() -> None:
        async with gear.testing.serving(worker, gear_server):
            client = gear.AsyncClient(
                "hooked", [gear_server.address], codec=gear.JSONCodec(), hooks=client_hooks
            )
            async with client:
                assert await client.call("ok", timeout=T) == "ok"
                assert await client.call("slowly", timeout=T) == "ok"
                for name in ("boom", "late"):
                    with pytest.raises(gear.RemoteError):
                        await client.call(name, timeout=T)
                with pytest.raises(gear.JobFailedError):
                    await client.call("refuse", timeout=T)
                await client.submit("ok", b"", background=True)
                await wait_until(lambda: len(worker_hooks.named("end")) == 6)
                lost = await client.submit("hang", b"null")
                await wait_until(lambda: len(worker_hooks.named("start")) == 7)
                gear_server.stop()
                with pytest.raises(gear.DisconnectError):
                    await lost.result(T)
                await wait_until(lambda: len(client_hooks.named("disconnect")) == 1)
                release.set()
                await wait_until(lambda: len(worker_hooks.named("end")) == 7)

    run(main())
    address = ("127.0.0.1", gear_server.port)
    assert worker_hooks.named("connect")[0] == address
    assert address in worker_hooks.named("disconnect")
    assert client_hooks.named("connect") == [address]
    assert client_hooks.named("disconnect") == [address]
    names = ["ok", "slowly", "boom", "late", "refuse", "ok", "hang"]
    assert worker_hooks.named("start") == [(name,) for name in names]
    assert client_hooks.named("submit") == [(name,) for name in names]
    assert worker_hooks.named("end") == [
        ("ok", "complete"),
        ("slowly", "complete"),
        ("boom", "exception"),
        ("late", "timeout"),
        ("refuse", "fail"),
        ("ok", "complete"),
        ("hang", "requeued"),
    ]
    assert client_hooks.named("end") == [
        ("ok", "complete"),
        ("slowly", "complete"),
        ("boom", "exception"),
        ("late", "exception"),
        ("refuse", "fail"),
        ("hang", "lost"),
    ]
    for hooks in (worker_hooks, client_hooks):
        assert hooks.seconds["slowly"] >= 0.25 and hooks.seconds["late"] >= 0.2
        assert min(hooks.seconds.values()) >= 0


def test_a_failing_hook_is_logged_and_the_job_goes_on(
    gear_server: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(gear.Hooks):
        def on_job_start(self, job: gear.BaseJob) -> None:
            raise RuntimeError("metrics backend down")

        def on_submit(self, job: gear.BaseJob) -> None:
            raise RuntimeError("tracer down")

    worker = gear.AsyncWorker("w", hooks=Broken())

    @worker.function("echo")
    async def echo(job: Any) -> bytes:
        return job.arguments

    async def main() -> None:
        async with gear.testing.serving(worker, gear_server):
            async with client_for(gear_server, hooks=Broken()) as client:
                assert await client.call("echo", b"still works", timeout=T) == b"still works"

    run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any("Broken.on_job_start raised" in m for m in messages), messages
    assert any("Broken.on_submit raised" in m for m in messages), messages
