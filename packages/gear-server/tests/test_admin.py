"""The admin text protocol: §c formats and gearmand's where gear had none."""

from __future__ import annotations

import os
import time

import gear
from fixtures.geard import Geard, RawGearman
from gear import constants as C
from gear.server import __version__


def bg(conn: RawGearman, name: bytes, unique: bytes = b"", ptype: int = C.SUBMIT_JOB_BG) -> bytes:
    return conn.submit(name, b"data", unique, ptype)


def test_status_and_workers(geard: Geard) -> None:
    with RawGearman(geard.port) as admin:
        assert admin.admin("status") == b".\n"
        with RawGearman(geard.port) as w:
            w.send(C.SET_CLIENT_ID, b"w1")
            w.send(C.CAN_DO, b"fa")
            w.send(C.CAN_DO, b"fb")
            bg(admin, b"fa")
            bg(admin, b"fa")
            bg(admin, b"other")
            w.send(C.GRAB_JOB)
            w.expect(C.JOB_ASSIGN)
            status = admin.admin("status")
            lines = set(status.splitlines(keepends=True))
            assert lines == {b"fa\t2\t1\t1\n", b"fb\t0\t0\t1\n", b"other\t1\t0\t0\n", b".\n"}
            assert status.endswith(b".\n")
            workers = admin.admin("workers")
            assert b" 127.0.0.1 w1 : fa fb\n" in workers
            assert b" 127.0.0.1 - : \n" in workers
            assert workers.endswith(b".\n")
            line = next(x for x in workers.splitlines() if b"w1" in x)
            assert line.split()[0].isdigit()
        # fb had only that worker and no job: its record is freed, its line gone.
        deadline = time.monotonic() + 5
        while b"fb\t" in admin.admin("status"):
            assert time.monotonic() < deadline, "worker disconnect not seen"
        prio = admin.admin("prioritystatus")
        assert b"fa\t0\t2\t0\t0\n" in prio and prio.endswith(b".\n")


def test_version_getpid_verbose(geard: Geard) -> None:
    with RawGearman(geard.port) as admin:
        assert admin.admin("version") == b"OK %s\n" % __version__.encode()
        assert admin.admin("getpid") == b"OK %d\n" % os.getpid()
        assert admin.admin("verbose").startswith(b"OK ")


def test_show_jobs_and_unique_jobs(geard: Geard) -> None:
    with RawGearman(geard.port) as admin:
        h1 = bg(admin, b"f", b"u-1")
        h2 = bg(admin, b"f")
        jobs = admin.admin("show jobs")
        assert set(jobs.splitlines(keepends=True)) == {
            h1 + b"\t0\t0\t1\n",
            h2 + b"\t0\t0\t1\n",
            b".\n",
        }
        assert admin.admin("show unique jobs") == b"u-1\n.\n"


def test_cancel_job(geard: Geard) -> None:
    with RawGearman(geard.port) as admin, RawGearman(geard.port) as client:
        h = bg(admin, b"c")
        fg = bg(client, b"c", b"", C.SUBMIT_JOB)
        assert admin.admin(b"cancel job " + h) == b"OK\n"
        assert admin.admin(b"cancel job " + h) == b"ERR UNKNOWN_JOB\n"
        assert admin.admin(b"cancel job " + fg) == b"OK\n"
        assert client.expect(C.WORK_FAIL) == fg
        assert admin.admin("cancel job").startswith(b"ERR INCOMPLETE_ARGS ")
        with RawGearman(geard.port) as w:
            w.send(C.CAN_DO, b"c")
            running = bg(admin, b"c")
            w.send(C.GRAB_JOB)
            w.expect(C.JOB_ASSIGN)
            assert admin.admin(b"cancel job " + running) == b"ERR UNKNOWN_JOB\n"


def test_unknown_commands_answer_err(geard: Geard) -> None:
    with RawGearman(geard.port) as admin:
        assert admin.admin("frobnicate now") == b"ERR UNKNOWN_COMMAND Unknown+server+command\n"
        assert admin.admin("acl bogus").startswith(b"ERR UNKNOWN_COMMAND")
        assert admin.admin("show").startswith(b"ERR UNKNOWN_COMMAND")
        admin.send_raw(b"\r\n\n")
        assert admin.admin("status") == b".\n"


def test_maxqueue_arguments(geard: Geard) -> None:
    with RawGearman(geard.port) as admin:
        assert admin.admin("maxqueue").startswith(b"ERR INCOMPLETE_ARGS")
        assert admin.admin("maxqueue f x").startswith(b"ERR INVALID_ARGUMENTS")
        assert admin.admin("maxqueue f 1 2").startswith(b"ERR INVALID_ARGUMENTS")
        assert admin.admin("maxqueue f 1 2 3") == b"OK\n"
        assert admin.admin("maxqueue f 1 -2 x").startswith(b"ERR INVALID_ARGUMENTS")


def test_pipelined_admin_and_binary(geard: Geard) -> None:
    with RawGearman(geard.port) as conn:
        conn.send_raw(
            b"version\nstatus\n" + gear.Packet(C.REQ, C.ECHO_REQ, b"e").toBinary() + b"getpid\n"
        )
        assert conn.line().startswith(b"OK ")
        assert conn.line() == b".\n"
        assert conn.expect(C.ECHO_RES) == b"e"
        assert conn.line().startswith(b"OK ")


def test_replies_complete_gear_admin_requests(geard: Geard) -> None:
    with RawGearman(geard.port) as conn:
        bg(conn, b"f", b"u")
        for request in (
            gear.StatusAdminRequest(),
            gear.WorkersAdminRequest(),
            gear.VersionAdminRequest(),
            gear.ShowJobsAdminRequest(),
            gear.ShowUniqueJobsAdminRequest(),
            gear.CancelJobAdminRequest("H:none:1"),
        ):
            reply = conn.admin(request.getCommand().rstrip(b"\n"))
            complete, rest = request.isComplete(reply)
            assert complete and not rest, (request, reply)


def test_shutdown_command(geard_factory) -> None:  # type: ignore[no-untyped-def]
    geard = geard_factory()
    with RawGearman(geard.port) as admin:
        assert admin.admin("shutdown") == b"OK\n"
        assert geard.server.wait(10)
        assert admin.closed_by_server()


def test_shutdown_graceful_waits_for_jobs(geard_factory) -> None:  # type: ignore[no-untyped-def]
    geard = geard_factory()
    with RawGearman(geard.port) as admin, RawGearman(geard.port) as w:
        w.send(C.CAN_DO, b"g")
        h = bg(admin, b"g")
        w.send(C.GRAB_JOB)
        w.expect(C.JOB_ASSIGN)
        assert admin.admin("shutdown graceful") == b"OK\n"
        assert not geard.server.wait(0.2)
        w.send(C.WORK_COMPLETE, h + b"\0")
        assert geard.server.wait(10)
