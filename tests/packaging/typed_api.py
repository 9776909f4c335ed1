"""The types a user program sees through ``import gear``.

Never run, only type-checked: ``test_typing.py`` runs ``mypy --strict
--warn-unused-ignores`` over this file. Each ``assert_type`` states a type
the public API must give; each line ending in ``# type: ignore[code]`` is a
mistake mypy must catch (with warn_unused_ignores, a line that stops being
an error fails the test).
"""

from __future__ import annotations

from collections.abc import Iterator

from typing_extensions import assert_type  # typing has it from 3.11 only

import gear
from gear import constants


def reconnect_policies() -> None:
    policy = gear.ReconnectPolicy(initial_delay=0.5, max_attempts=10)
    assert_type(gear.Client("c", reconnect=policy).reconnect, gear.ReconnectPolicy | None)
    assert_type(gear.Worker("w", reconnect=policy).reconnect, gear.ReconnectPolicy | None)

    gear.Client("c", policy)  # type: ignore[call-arg]
    gear.Worker("w", "w2", policy)  # type: ignore[call-arg]


def client_jobs(client: gear.Client) -> None:
    job = gear.Job("reverse", b"abc", unique="u-1")
    assert_type(job.name, str)
    assert_type(job.arguments, bytes)
    assert_type(job.unique, bytes | None)
    assert_type(job.handle, bytes | None)
    assert_type(job.connection, gear.Connection | None)
    assert_type(job.data, list[bytes])
    assert_type(job.binary_data, Iterator[bytes])
    assert_type(job.exception, bytes | None)
    assert_type(job.numerator, bytes | None)
    assert_type(job.fraction_complete, float | None)
    assert_type(job.known, bool | None)
    assert_type(job.complete, bool)
    assert_type(job.wait(5), bool)
    assert_type(client.submitJob(job, background=True), None)
    assert_type(client.getStatus(job), gear.Job)
    assert_type(client.setOption("exceptions"), bool)
    assert_type(client.options, set[bytes])
    assert_type(client.getConnection(), gear.Connection)

    text = gear.TextJob("reverse", "abc", unique="u-2")
    assert_type(text.arguments, str)
    assert_type(text.unique, str | None)
    assert_type(text.data, gear.TextList)
    assert_type(text.data[0], str)
    assert_type(text.exception, str | None)
    assert_type(client.getStatus(text, unique=True), gear.TextJob)
    client.submitJob(text)

    binary = gear.BinaryJob(b"reverse", bytearray(b"abc"))
    assert_type(binary.name, bytes)
    assert_type(binary.arguments, bytes)

    gear.Job("reverse", "a str")  # type: ignore[arg-type]
    n: int = job.data  # type: ignore[assignment]
    s: str = job.arguments  # type: ignore[assignment]
    b: bytes = text.arguments  # type: ignore[assignment]
    e: bytes = text.exception  # type: ignore[assignment]
    client.submitJob("reverse")  # type: ignore[arg-type]
    client.getStatus(b"H:1")  # type: ignore[type-var]
    gear.TextJob("reverse", 42)  # type: ignore[arg-type]


class RecordingClient(gear.Client):
    """Hooks keep their precise types in a subclass."""

    def handleWorkComplete(self, packet: gear.Packet) -> gear.Job:
        job = super().handleWorkComplete(packet)
        assert_type(job.data, list[bytes])
        return job

    def handleStatusRes(self, packet: gear.Packet) -> gear.Job:
        return super().handleStatusRes(packet)

    def handleDisconnect(self, job: gear.Job) -> gear.Job:
        return super().handleDisconnect(job)

    def handleWorkFail(self, packet: gear.Packet) -> gear.Packet:  # type: ignore[override]
        return packet


def worker_jobs(worker: gear.Worker, text_worker: gear.TextWorker) -> None:
    worker.registerFunction("reverse")
    worker.registerFunction(b"slow", timeout=30)
    worker.setFunctions([gear.FunctionRecord("reverse"), gear.FunctionRecord(b"slow", b"30")])
    assert_type(worker.functions, dict[bytes, gear.FunctionRecord])

    job = worker.getJob(timeout=5)
    assert_type(job, gear.WorkerJob)
    assert_type(job.handle, bytes)
    assert_type(job.name, str)
    assert_type(job.arguments, bytes)
    assert_type(job.unique, bytes | None)
    job.sendWorkData(b"chunk")
    job.sendWorkStatus(1, 4)
    job.sendWorkComplete(job.arguments[::-1])

    text = text_worker.getJob()
    assert_type(text, gear.TextWorkerJob)
    assert_type(text.arguments, str)
    assert_type(text.unique, str | None)
    text.sendWorkComplete(text.arguments.upper())
    text.sendWorkException("failed")

    job.sendWorkComplete("text")  # type: ignore[arg-type]
    job.sendWorkException(None)  # type: ignore[arg-type]
    t: str = job.arguments  # type: ignore[assignment]
    worker.registerFunction("f", timeout=[30])  # type: ignore[arg-type]
    worker.setFunctions(["reverse"])  # type: ignore[list-item]


def core(conn: gear.Connection) -> None:
    packet = gear.Packet(constants.REQ, constants.ECHO_REQ, b"x", conn)
    assert_type(packet.toBinary(), bytearray)
    assert_type(packet.getArgument(0), bytes)
    assert_type(packet.getJob(), gear.BaseJob)
    assert_type(packet.connection, gear.Connection | None)
    assert_type(conn.related_jobs, dict[bytes, gear.BaseJob])
    assert_type(conn.options, set[bytes])

    request = gear.StatusAdminRequest()
    conn.sendAdminRequest(request, timeout=5)
    assert_type(request.response, bytes | None)
    assert_type(request.isComplete(b".\n"), tuple[bool, bytes | None])
    assert_type(gear.CancelJobAdminRequest("H:1").arguments, tuple[bytes, ...])

    gear.Packet(constants.REQ, constants.ECHO_REQ, "text")  # type: ignore[arg-type]
    gear.CancelJobAdminRequest(1)  # type: ignore[arg-type]
    r: str = request.response  # type: ignore[assignment]


def server_state(server: gear.Server, acl: gear.ACL) -> None:
    assert_type(server.port, int)
    assert_type(server.jobs, dict[bytes, gear.ServerJob])
    assert_type(server.functions, set[bytes])
    assert_type(server.getQueue(), list[gear.ServerJob])
    assert_type(server.total_jobs, int)
    assert_type(server.running_jobs, int)
    assert_type(server.use_ssl, bool)
    job = server.jobs[b"H:127.0.0.1:1"]
    assert_type(job.name, bytes)
    assert_type(job.arguments, bytes)
    assert_type(job.numerator, bytes | None)
    server.acl = acl
    server.acl = None
    gear.Server(0, acl=acl, host="127.0.0.1").shutdown()

    server.acl = "admin"  # type: ignore[assignment]
    gear.Server(0, acl={"admin": "*"})  # type: ignore[arg-type]
