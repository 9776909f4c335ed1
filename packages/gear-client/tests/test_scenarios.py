"""Client + Worker scenarios over real sockets, on the C gearmand and on geard.

Written against public names of ``gear`` only, with the root fixtures
``server`` and ``harness`` (tests/fixtures), so the same scenarios can be
re-run for the asyncio API.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest

import gear
from fixtures.peers import reverse

T = 10  # seconds: upper bound of every wait in these tests


def test_submit_and_complete(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("reverse",))
    harness.serve(worker, reverse)
    client = harness.client(server)
    job = gear.Job("reverse", b"abc")
    client.submitJob(job)
    assert isinstance(job.handle, bytes)
    assert job.connection in client.active_connections
    assert job.wait(T) is True
    assert job.complete and not job.failure
    assert job.data == [b"cba"]
    assert list(job.binary_data) == [b"cba"]
    assert job.handle not in job.connection.related_jobs


def test_data_warning_status(server: Any, harness: Any) -> None:
    def handler(job: Any) -> None:
        job.sendWorkData(b"one")
        job.sendWorkWarning(b"careful")
        job.sendWorkStatus(1, 4)
        job.sendWorkData(b"")
        job.sendWorkComplete(b"done")

    worker = harness.worker(server, functions=("chunks",))
    harness.serve(worker, handler)
    client = harness.client(server)
    job = gear.Job("chunks", b"")
    client.submitJob(job)
    assert job.wait(T)
    assert job.data == [b"one", b"careful", b"done"]
    assert job.warning is True
    assert (job.numerator, job.denominator) == (b"1", b"4")
    assert job.fraction_complete == 0.25


def test_fail(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("fails",))
    harness.serve(worker, lambda job: job.sendWorkFail())
    client = harness.client(server)
    job = gear.Job("fails", b"x")
    client.submitJob(job)
    assert job.wait(T)
    assert job.complete and job.failure and job.exception is None


def test_exception_with_option(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("raises",))
    harness.serve(worker, lambda job: job.sendWorkException(b"boom"))
    client = harness.client(server)
    assert client.setOption("exceptions", timeout=T) is True
    assert b"exceptions" in client.options
    assert b"exceptions" in client.active_connections[0].options
    job = gear.Job("raises", b"x")
    client.submitJob(job)
    assert job.wait(T)
    assert job.failure and job.exception == b"boom"
    assert job.data == []


def test_exception_reaches_a_client_that_set_no_option(server: Any, harness: Any) -> None:
    """The client asks for ``exceptions`` on every connect (gearmand and geard
    send WORK_FAIL instead to clients that did not), so gear 0.16 code that
    never called ``setOption`` still sees ``job.exception``."""
    worker = harness.worker(server, functions=("raises",), cls=gear.TextWorker)
    harness.serve(worker, lambda job: job.sendWorkException("work failed: " + job.arguments))
    client = harness.client(server)
    assert client.options == set()
    conn = client.active_connections[0]
    assert conn.options == {b"exceptions"}
    job = gear.TextJob("raises", "first")
    client.submitJob(job)
    assert job.wait(T)
    assert job.complete and job.failure and job.exception == "work failed: first"
    assert job.data == []
    # Asked again after a reconnect: the option belongs to the connection.
    server.stop()
    with client.connections_condition:
        assert client.connections_condition.wait_for(
            lambda: conn not in client.active_connections, T
        )
    server.restart()
    client.waitForServer(T)
    worker.waitForServer(T)
    assert conn.options == {b"exceptions"}
    binary = gear.Job("raises", b"again")
    client.submitJob(binary)
    assert binary.wait(T)
    assert binary.failure and binary.exception == b"work failed: again"


def test_unknown_option_is_refused_without_breaking_submits(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("reverse",))
    harness.serve(worker, reverse)
    client = harness.client(server)
    assert client.setOption("no-such-option", timeout=T) is False
    job = gear.Job("reverse", b"ab")
    client.submitJob(job, timeout=T)
    assert job.wait(T) and job.data == [b"ba"]


def test_background_job(server: Any, harness: Any) -> None:
    client = harness.client(server)
    job = gear.Job("later", b"payload", unique="bg-1")
    client.submitJob(job, background=True)
    assert job.handle and job.connection.related_jobs[job.handle] is job
    with pytest.raises(gear.GearmanError):
        job.wait(0)
    worker = harness.worker(server, functions=("later",))
    got = worker.getJob(timeout=T)
    assert (got.name, got.arguments, got.unique) == ("later", b"payload", b"bg-1")
    assert got.handle == job.handle
    got.sendWorkComplete(b"ignored")


def test_precedence(server: Any, harness: Any) -> None:
    client = harness.client(server)
    for name, precedence in (
        ("low", gear.PRECEDENCE_LOW),
        ("normal", gear.PRECEDENCE_NORMAL),
        ("high", gear.PRECEDENCE_HIGH),
    ):
        client.submitJob(gear.Job("prec", name.encode()), True, precedence)
    with pytest.raises(gear.ConfigurationError):
        client.submitJob(gear.Job("prec", b""), precedence=7)
    worker = harness.worker(server, functions=("prec",))
    order = []
    for _ in range(3):
        job = worker.getJob(timeout=T)
        order.append(job.arguments)
        job.sendWorkComplete()
    assert order == [b"high", b"normal", b"low"]


def test_foreground_precedence_and_unique(server: Any, harness: Any) -> None:
    seen: queue.Queue[Any] = queue.Queue()

    def handler(job: Any) -> None:
        seen.put((job.unique, job.arguments))
        job.sendWorkComplete(b"ok")

    worker = harness.worker(server, functions=("u",))
    harness.serve(worker, handler)
    client = harness.client(server)
    jobs = [
        gear.Job("u", b"a", unique="id-a"),
        gear.Job("u", b"b"),
    ]
    client.submitJob(jobs[0], precedence=gear.PRECEDENCE_HIGH)
    client.submitJob(jobs[1], precedence=gear.PRECEDENCE_LOW)
    for job in jobs:
        assert job.wait(T) and job.data == [b"ok"]
    assert jobs[0].unique == b"id-a"
    assert sorted([seen.get(timeout=T), seen.get(timeout=T)], key=repr) == sorted(
        [(b"id-a", b"a"), (None, b"b")], key=repr
    )


def test_text_jobs(server: Any, harness: Any) -> None:
    got: queue.Queue[Any] = queue.Queue()

    def handler(job: Any) -> None:
        got.put(job)
        job.sendWorkData("dätä")
        job.sendWorkComplete(job.arguments.upper())

    worker = harness.worker(server, functions=("upper",), cls=gear.TextWorker)
    harness.serve(worker, handler)
    client = harness.client(server)
    job = gear.TextJob("upper", "grüß", unique="ü-1")
    client.submitJob(job)
    assert job.wait(T)
    assert job.data == ["dätä", "GRÜSS"]
    assert job.arguments == "grüß" and job.unique == "ü-1"
    wjob = got.get(timeout=T)
    assert isinstance(wjob, gear.TextWorkerJob)
    assert (wjob.name, wjob.arguments, wjob.unique) == ("upper", "grüß", "ü-1")


def test_text_job_exception(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("texc",), cls=gear.TextWorker)
    harness.serve(worker, lambda job: job.sendWorkException("kaputt"))
    client = harness.client(server)
    client.setOption("exceptions", timeout=T)
    job = gear.TextJob("texc", "x")
    client.submitJob(job)
    assert job.wait(T)
    assert job.failure and job.exception == "kaputt"


def test_binary_jobs(server: Any, harness: Any) -> None:
    def handler(job: Any) -> None:
        assert isinstance(job, gear.BinaryWorkerJob)
        job.sendWorkComplete(job.name + b":" + job.arguments)

    worker = harness.worker(server, functions=("bin",))
    worker.job_class = gear.BinaryWorkerJob
    harness.serve(worker, handler)
    client = harness.client(server)
    job = gear.BinaryJob("bin", b"\x00\xff")
    assert job.name == b"bin"
    client.submitJob(job)
    assert job.wait(T)
    assert job.data == [b"bin:\x00\xff"]


def test_large_payload(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("echo",))
    harness.serve(worker, lambda job: job.sendWorkComplete(job.arguments))
    client = harness.client(server)
    payload = bytes(range(256)) * 8192
    job = gear.Job("echo", payload)
    client.submitJob(job)
    assert job.wait(T)
    assert b"".join(job.data) == payload


def test_many_threads_submitting(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("reverse",))
    for _ in range(2):
        harness.serve(worker, reverse)
    client = harness.client(server)
    errors: list[BaseException] = []

    def submitter(n: int) -> None:
        try:
            for i in range(40):
                arg = ("%d-%d" % (n, i)).encode()
                job = gear.Job("reverse", arg)
                client.submitJob(job)
                assert job.wait(T)
                assert job.data == [arg[::-1]]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors


def test_get_status(server: Any, harness: Any) -> None:
    started = threading.Event()
    release = threading.Event()

    def handler(job: Any) -> None:
        job.sendWorkStatus(3, 10)
        started.set()
        release.wait(T)
        job.sendWorkComplete(b"")

    worker = harness.worker(server, functions=("slow",))
    harness.serve(worker, handler)
    client = harness.client(server)
    job = gear.Job("slow", b"", unique="status-u")
    client.submitJob(job)
    assert started.wait(T)
    assert job.wait(0.05) is False
    assert client.getStatus(job, timeout=T) is job
    assert job.known is True and job.running is True
    assert (job.numerator, job.denominator) == (b"3", b"10")
    assert job.fraction_complete == 0.3
    client.getStatus(job, timeout=T, unique=True)
    assert job.known is True and job.running is True
    release.set()
    assert job.wait(T)
    client.getStatus(job, timeout=T)
    assert job.known is False and job.running is False


def test_get_status_of_background_job(server: Any, harness: Any) -> None:
    client = harness.client(server)
    job = gear.Job("nobody-does-this", b"", unique="bg-status")
    client.submitJob(job, background=True)
    client.getStatus(job, timeout=T)
    assert job.known is True and job.running is False
    other = gear.Job("nobody-does-this", b"", unique="never-submitted")
    client.getStatus(other, timeout=T, unique=True)
    assert other.known is False


def test_get_status_requires_submitted_job(harness: Any, server: Any) -> None:
    client = harness.client(server)
    with pytest.raises(gear.GearmanError, match="not been submitted"):
        client.getStatus(gear.Job("f", b""))
    with pytest.raises(gear.GearmanError, match="no unique id"):
        client.getStatus(gear.Job("f", b""), unique=True)


def test_admin_requests(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("admin-fn",), client_id="admin-worker")
    client = harness.client(server, client_id="admin-client")
    conn = client.getConnection()
    status = gear.StatusAdminRequest()
    conn.sendAdminRequest(status, timeout=T)
    assert b"admin-fn\t0\t0\t1" in status.response
    assert status.response.endswith(b".\n")
    workers = gear.WorkersAdminRequest()
    conn.sendAdminRequest(workers, timeout=T)
    assert b"admin-worker : admin-fn" in workers.response
    assert b"admin-client :" in workers.response
    assert worker.active_connections


def test_admin_interleaved_with_jobs(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("reverse",))
    harness.serve(worker, reverse)
    client = harness.client(server)
    conn = client.getConnection()
    jobs = []
    for i in range(20):
        job = gear.Job("reverse", b"%d" % i)
        client.submitJob(job)
        jobs.append(job)
        request = gear.StatusAdminRequest()
        conn.sendAdminRequest(request, timeout=T)
        assert request.response.endswith(b".\n")
    for job in jobs:
        assert job.wait(T)


def test_get_job_timeout_and_stop_waiting(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("never",))
    started = time.monotonic()
    with pytest.raises(gear.TimeoutError):
        worker.getJob(timeout=0.3)
    assert time.monotonic() - started < 5
    errors: queue.Queue[Any] = queue.Queue()

    def waiter() -> None:
        try:
            worker.getJob()
        except BaseException as e:
            errors.put(e)

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + T
    while worker.waiting_for_jobs < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stopWaitingForJobs()
    for thread in threads:
        thread.join(T)
    assert [type(errors.get_nowait()) for _ in range(3)] == [gear.InterruptedError] * 3
    # The worker keeps working after an interruption.
    client = harness.client(server)
    client.submitJob(gear.Job("never", b"later"))
    job = worker.getJob(timeout=T)
    assert job.arguments == b"later"
    job.sendWorkComplete()


def test_shutdown_interrupts_get_job(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("never",))
    result: queue.Queue[Any] = queue.Queue()

    def waiter() -> None:
        try:
            worker.getJob()
        except BaseException as e:
            result.put(e)

    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + T
    while worker.waiting_for_jobs < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.shutdown()
    thread.join(T)
    assert isinstance(result.get_nowait(), gear.InterruptedError)
    with pytest.raises(gear.InterruptedError):
        worker.getJob()
    worker.shutdown()


def test_register_function_wakes_waiting_get_job(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("first",))
    client = harness.client(server)
    client.submitJob(gear.Job("second", b"2"), background=True)
    result: queue.Queue[Any] = queue.Queue()
    thread = threading.Thread(target=lambda: result.put(worker.getJob(timeout=T)))
    thread.start()
    deadline = time.monotonic() + T
    while worker.active_connections[0].state != "SLEEP" and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.registerFunction("second")
    job = result.get(timeout=T)
    thread.join(T)
    assert job.name == "second" and job.arguments == b"2"
    job.sendWorkComplete()


def test_unregister_and_set_functions(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("a", "b"))
    assert set(worker.functions) == {b"a", b"b"}
    worker.unRegisterFunction("a")
    assert set(worker.functions) == {b"b"}
    with pytest.raises(KeyError):
        worker.unRegisterFunction("a")
    with pytest.raises(gear.InvalidDataError):
        worker.setFunctions(["c"])
    worker.setFunctions([gear.FunctionRecord(b"c"), gear.FunctionRecord(b"d", 30)])
    assert set(worker.functions) == {b"c", b"d"}
    client = harness.client(server)
    conn = client.getConnection()

    def functions_listed() -> bytes:
        request = gear.WorkersAdminRequest()
        conn.sendAdminRequest(request, timeout=T)
        return request.response

    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        line = next(x for x in functions_listed().split(b"\n") if b"test-worker" in x)
        if sorted(line.split(b":")[-1].split()) == [b"c", b"d"]:
            break
        time.sleep(0.02)
    assert sorted(line.split(b":")[-1].split()) == [b"c", b"d"]
    client.submitJob(gear.Job("d", b"x"))
    job = worker.getJob(timeout=T)
    assert job.name == "d"
    job.sendWorkComplete()


def test_register_with_timeout(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=())
    worker.registerFunction("timed", timeout=30)
    assert worker.functions[b"timed"].timeout == 30
    harness.serve(worker, reverse)
    client = harness.client(server)
    job = gear.Job("timed", b"xy")
    client.submitJob(job)
    assert job.wait(T) and job.data == [b"yx"]


def test_worker_id_alias_and_client_id_required() -> None:
    worker = gear.Worker(worker_id="legacy")
    try:
        assert worker.client_id == b"legacy" and worker.worker_id == "legacy"
    finally:
        worker.shutdown()
    with pytest.raises(Exception, match="client_id"):
        gear.Worker()


def test_several_get_job_threads_each_get_one(server: Any, harness: Any) -> None:
    worker = harness.worker(server, functions=("par",))
    results: queue.Queue[Any] = queue.Queue()

    def take() -> None:
        job = worker.getJob(timeout=T)
        results.put(job.arguments)
        job.sendWorkComplete(job.arguments)

    threads = [threading.Thread(target=take) for _ in range(3)]
    for thread in threads:
        thread.start()
    client = harness.client(server)
    jobs = [gear.Job("par", b"%d" % i) for i in range(3)]
    for job in jobs:
        client.submitJob(job)
    for thread in threads:
        thread.join(T)
    assert sorted(results.get_nowait() for _ in range(3)) == [b"0", b"1", b"2"]
    for job in jobs:
        assert job.wait(T)


def test_no_server_errors(harness: Any) -> None:
    client = harness.client()
    with pytest.raises(gear.GearmanError, match="Unable to submit job"):
        client.submitJob(gear.Job("f", b""))
    with pytest.raises(gear.NoConnectedServersError):
        client.getConnection()
    with pytest.raises(gear.TimeoutError):
        client.waitForServer(0.1)
    client.addServer("127.0.0.1", 1)
    with pytest.raises(gear.ConfigurationError, match="already specified"):
        client.addServer("127.0.0.1", 1)
    with pytest.raises(gear.ConfigurationError, match="already specified"):
        client.addServer("127.0.0.1", "1")


def test_job_argument_types() -> None:
    with pytest.raises(TypeError):
        gear.Job("f", "text")
    job = gear.Job(b"f", bytearray(b"x"), "u")
    assert job.name == "f" and job.binary_name == b"f" and job.unique == b"u"
    with pytest.raises(ValueError):
        job.data = "nope"
    assert repr(job).endswith("handle: None name: f unique: b'u'>")
    text = gear.TextJob("f", b"bytes-ok")
    assert text.arguments == "bytes-ok"
    text.data.extend([b"a", "b"])
    assert text.data == ["a", "b"]


def test_reprs(server: Any, harness: Any) -> None:
    client = harness.client(server)
    worker = harness.worker(server)
    assert repr(client).startswith("<gear.Client 0x")
    assert repr(worker).startswith("<gear.Worker 0x")
    assert repr(gear.FunctionRecord(b"f", 3)).endswith("name: b'f' timeout: 3>")
    assert repr(client.getConnection()).endswith("host: %s port: %s>" % (server.host, server.port))
    for cls in (gear.Client, gear.Worker, gear.Job, gear.TextJob, gear.WorkerJob):
        assert cls.__module__ == "gear"


def test_hooks_run_on_poll_thread(server: Any, harness: Any) -> None:
    threads: list[str] = []

    class Recording(gear.Client):
        def handleJobCreated(self, packet: Any) -> Any:
            threads.append(threading.current_thread().name)
            return super().handleJobCreated(packet)

        def handleWorkComplete(self, packet: Any) -> Any:
            threads.append(threading.current_thread().name)
            return super().handleWorkComplete(packet)

    worker = harness.worker(server, functions=("reverse",))
    harness.serve(worker, reverse)
    client = harness.connect(Recording, server, client_id="rec", timeout=T)
    job = gear.Job("reverse", b"ab")
    client.submitJob(job)
    assert job.wait(T)
    assert threads == ["Gearman client poll", "Gearman client poll"]


def test_hook_exception_does_not_drop_connection(server: Any, harness: Any) -> None:
    class Broken(gear.Client):
        def handleWorkData(self, packet: Any) -> Any:
            raise RuntimeError("user hook failed")

    def handler(job: Any) -> None:
        job.sendWorkData(b"x")
        job.sendWorkComplete(b"y")

    worker = harness.worker(server, functions=("hook",))
    harness.serve(worker, handler)
    client = harness.connect(Broken, server, client_id="broken", timeout=T)
    job = gear.Job("hook", b"")
    client.submitJob(job)
    assert job.wait(T)
    assert job.data == [b"y"]
    assert len(client.active_connections) == 1


def test_disconnect_ends_waits(server: Any, harness: Any) -> None:
    disconnected: list[Any] = []

    class Watching(gear.Client):
        def handleDisconnect(self, job: Any) -> Any:
            disconnected.append(job)
            return super().handleDisconnect(job)

    client = harness.connect(Watching, server, client_id="watch", timeout=T)
    assert client.reconnect_delay == 0.05
    job = gear.Job("nobody", b"")
    client.submitJob(job)
    server.stop()
    with pytest.raises(gear.DisconnectError):
        job.wait(T)
    assert disconnected == [job]
    assert not job.complete


def test_report_timing_stats_hook(server: Any, harness: Any) -> None:
    timings: list[tuple[int, float]] = []

    class Timed(gear.Client):
        def reportTimingStats(self, ptype: int, duration: float) -> None:
            timings.append((ptype, duration))

    worker = harness.worker(server, functions=("reverse",))
    harness.serve(worker, reverse)
    client = harness.connect(Timed, server, client_id="timed", timeout=T)
    job = gear.Job("reverse", b"ab")
    client.submitJob(job)
    assert job.wait(T)
    types = [ptype for ptype, _ in timings]
    assert gear.constants.JOB_CREATED in types and gear.constants.WORK_COMPLETE in types
    assert all(isinstance(d, float) and d >= 0 for _, d in timings)


def test_shutdown_releases_waiting_jobs(server: Any, harness: Any) -> None:
    client = harness.client(server)
    job = gear.Job("nobody-serves-this", b"")
    client.submitJob(job)
    result: queue.Queue[Any] = queue.Queue()

    def waiter() -> None:
        try:
            result.put(job.wait(T))
        except BaseException as e:
            result.put(e)

    thread = threading.Thread(target=waiter)
    thread.start()
    client.shutdown()
    thread.join(T)
    assert isinstance(result.get_nowait(), gear.DisconnectError)
    with pytest.raises(gear.GearmanError):
        client.submitJob(gear.Job("f", b""))
