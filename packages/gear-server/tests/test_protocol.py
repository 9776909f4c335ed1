"""Every binary packet geard handles, over real sockets."""

from __future__ import annotations

import logging
import time

import pytest

import gear
from fixtures.geard import Geard, RawGearman
from gear import constants as C
from gear.server import MemoryQueueStore, Server, ServerJob


def worker(geard: Geard, *names: bytes) -> RawGearman:
    conn = RawGearman(geard.port)
    for name in names:
        conn.send(C.CAN_DO, name)
    return conn


def test_public_names(geard: Geard) -> None:
    assert gear.Server is Server
    assert gear.ServerJob is ServerJob
    assert Server.__module__ == "gear" and ServerJob.__module__ == "gear"
    assert isinstance(geard.server.port, int) and geard.server.port > 0
    for attr in (
        "ssl_key",
        "ssl_cert",
        "ssl_ca",
        "use_ssl",
        "socket",
        "jobs",
        "functions",
        "max_handle",
        "acl",
        "statsd",
        "active_connections",
        "connection_map",
        "total_jobs",
        "running_jobs",
        "waiting_jobs",
        "high_queue",
        "normal_queue",
        "low_queue",
    ):
        assert hasattr(geard.server, attr), attr


def test_foreground_job_end_to_end(geard: Geard) -> None:
    with RawGearman(geard.port) as client, worker(geard, b"rev") as w:
        handle = client.submit(b"rev", b"hello", b"u1")
        assert handle.startswith(b"H:127.0.0.1:")
        assert w.grab() == [handle, b"rev", b"u1", b"hello"]
        w.send(C.WORK_DATA, handle + b"\0chunk")
        w.send(C.WORK_WARNING, handle + b"\0careful")
        w.send(C.WORK_STATUS, handle + b"\x001\x002")
        w.send(C.WORK_COMPLETE, handle + b"\0olleh")
        assert client.expect(C.WORK_DATA) == handle + b"\0chunk"
        assert client.expect(C.WORK_WARNING) == handle + b"\0careful"
        assert client.expect(C.WORK_STATUS) == handle + b"\x001\x002"
        assert client.expect(C.WORK_COMPLETE) == handle + b"\0olleh"
        assert w.grab() == []
    assert geard.server.total_jobs == 0


def test_grab_variants(geard: Geard) -> None:
    with RawGearman(geard.port) as client, worker(geard, b"f") as w:
        h1 = client.submit(b"f", b"a1", b"u", C.SUBMIT_JOB_BG)
        h2 = client.submit(b"f", b"a2", b"", C.SUBMIT_JOB_BG)
        h3 = client.submit(b"f", b"a3\0with nul", b"x", C.SUBMIT_JOB_BG)
        assert w.grab(C.GRAB_JOB) == [h1, b"f", b"a1"]
        assert w.grab(C.GRAB_JOB_UNIQ) == [h2, b"f", b"", b"a2"]
        assert w.grab(C.GRAB_JOB_ALL) == [h3, b"f", b"x", b"", b"a3\0with nul"]


def test_priorities_and_fifo(geard: Geard) -> None:
    with RawGearman(geard.port) as client:
        low = client.submit(b"p", b"low", b"", C.SUBMIT_JOB_LOW_BG)
        n1 = client.submit(b"p", b"n1", b"", C.SUBMIT_JOB_BG)
        high = client.submit(b"p", b"high", b"", C.SUBMIT_JOB_HIGH_BG)
        n2 = client.submit(b"p", b"n2", b"", C.SUBMIT_JOB_BG)
        fg_high = client.submit(b"p", b"fh", b"", C.SUBMIT_JOB_HIGH)
        fg_low = client.submit(b"p", b"fl", b"", C.SUBMIT_JOB_LOW)
        assert [j.handle for j in geard.server.getQueue()] == [high, fg_high, n1, n2, low, fg_low]
        with worker(geard, b"p") as w:
            order = [w.grab()[0] for _ in range(6)]
        assert order == [high, fg_high, n1, n2, low, fg_low]


def test_pre_sleep_noop_only_for_matching_function(geard: Geard) -> None:
    with RawGearman(geard.port) as client, worker(geard, b"a") as wa, worker(geard, b"b") as wb:
        for w in (wa, wb):
            assert w.grab() == []
            w.send(C.PRE_SLEEP)
        wa.send(C.ECHO_REQ, b"sync")
        assert wa.expect(C.ECHO_RES) == b"sync"
        client.submit(b"a", b"x", b"", C.SUBMIT_JOB_BG)
        assert wa.expect(C.NOOP) == b""
        with pytest.raises(TimeoutError):
            wb.recv(timeout=0.3)
        assert wa.grab()[1] == b"a"


def test_pre_sleep_with_queued_job_wakes_at_once(geard: Geard) -> None:
    with RawGearman(geard.port) as client, worker(geard, b"q") as w:
        client.submit(b"q", b"x", b"", C.SUBMIT_JOB_BG)
        w.send(C.PRE_SLEEP)
        assert w.expect(C.NOOP) == b""


def test_can_do_while_sleeping_gets_woken(geard: Geard) -> None:
    with RawGearman(geard.port) as client, worker(geard, b"one") as w:
        client.submit(b"two", b"x", b"", C.SUBMIT_JOB_BG)
        w.send(C.PRE_SLEEP)
        w.send(C.CAN_DO, b"two")
        assert w.expect(C.NOOP) == b""
        assert w.grab()[1] == b"two"


def test_cant_do_and_reset_abilities(geard: Geard) -> None:
    with RawGearman(geard.port) as client, worker(geard, b"x", b"y") as w:
        client.submit(b"x", b"1", b"", C.SUBMIT_JOB_BG)
        client.submit(b"y", b"2", b"", C.SUBMIT_JOB_BG)
        w.send(C.CANT_DO, b"x")
        w.send(C.CANT_DO, b"never-registered")
        assert w.grab()[1] == b"y"
        w.send(C.RESET_ABILITIES)
        assert w.grab() == []
        w.send(C.CAN_DO, b"x")
        assert w.grab()[1] == b"x"


def test_unique_coalescing(geard: Geard) -> None:
    with RawGearman(geard.port) as c1, RawGearman(geard.port) as c2, RawGearman(geard.port) as c3:
        h1 = c1.submit(b"u", b"args", b"same")
        h2 = c2.submit(b"u", b"other args", b"same")
        h3 = c3.submit(b"u", b"bg", b"same", C.SUBMIT_JOB_BG)
        assert h1 == h2 == h3
        assert geard.server.total_jobs == 1
        with worker(geard, b"u") as w:
            assert w.grab() == [h1, b"u", b"same", b"args"]
            assert w.grab() == []
            w.send(C.WORK_COMPLETE, h1 + b"\0result")
        assert c1.expect(C.WORK_COMPLETE) == h1 + b"\0result"
        assert c2.expect(C.WORK_COMPLETE) == h1 + b"\0result"
        h4 = c1.submit(b"u", b"again", b"same")
        assert h4 != h1


def test_same_unique_other_function_is_another_job(geard: Geard) -> None:
    with RawGearman(geard.port) as c:
        assert c.submit(b"f1", b"", b"k", C.SUBMIT_JOB_BG) != c.submit(
            b"f2", b"", b"k", C.SUBMIT_JOB_BG
        )


def test_work_fail_and_exception(geard: Geard) -> None:
    with RawGearman(geard.port) as plain, RawGearman(geard.port) as opted, worker(geard, b"e") as w:
        opted.send(C.OPTION_REQ, b"exceptions")
        assert opted.expect(C.OPTION_RES) == b"exceptions"
        h = plain.submit(b"e", b"", b"k")
        assert opted.submit(b"e", b"", b"k") == h
        assert w.grab()[0] == h
        w.send(C.WORK_EXCEPTION, h + b"\0boom")
        assert opted.expect(C.WORK_EXCEPTION) == h + b"\0boom"
        assert plain.expect(C.WORK_FAIL) == h
        h2 = plain.submit(b"e", b"")
        assert w.grab()[0] == h2
        w.send(C.WORK_FAIL, h2)
        assert plain.expect(C.WORK_FAIL) == h2
        assert geard.server.total_jobs == 0


def test_option_req_unknown(geard: Geard) -> None:
    with RawGearman(geard.port) as c:
        c.send(C.OPTION_REQ, b"frobnicate")
        code, text = c.expect(C.ERROR).split(b"\0")
        assert code == b"UNKNOWN_OPTION" and b"frobnicate" in text
        c.send(C.ECHO_REQ, b"still here")
        assert c.expect(C.ECHO_RES) == b"still here"


def test_get_status_and_unique(geard: Geard) -> None:
    with RawGearman(geard.port) as c, worker(geard, b"s") as w:
        h = c.submit(b"s", b"", b"uniq-1", C.SUBMIT_JOB_BG)
        c.send(C.GET_STATUS, h)
        assert c.expect(C.STATUS_RES) == h + b"\x001\x000\x000\x000"
        c.send(C.GET_STATUS_UNIQUE, b"uniq-1")
        assert c.expect(C.STATUS_RES_UNIQUE) == b"uniq-1\x001\x000\x000\x000\x000"
        w.grab()
        w.send(C.WORK_STATUS, h + b"\x003\x0010")
        c.send(C.GET_STATUS, h)
        assert c.expect(C.STATUS_RES) == h + b"\x001\x001\x003\x0010"
        c.send(C.GET_STATUS_UNIQUE, b"uniq-1")
        assert c.expect(C.STATUS_RES_UNIQUE) == b"uniq-1\x001\x001\x003\x0010\x000"
        c.send(C.GET_STATUS, b"H:nope:1")
        assert c.expect(C.STATUS_RES) == b"H:nope:1\x000\x000\x000\x000"
        c.send(C.GET_STATUS_UNIQUE, b"nope")
        assert c.expect(C.STATUS_RES_UNIQUE) == b"nope\x000\x000\x000\x000\x000"


def test_echo_set_client_id_all_yours(geard: Geard) -> None:
    with RawGearman(geard.port) as c:
        c.send(C.SET_CLIENT_ID, b"my-client")
        c.send(C.ALL_YOURS)
        c.send(C.ECHO_REQ, b"ping\0with nul")
        assert c.expect(C.ECHO_RES) == b"ping\0with nul"
        assert b" my-client : " in c.admin("workers")


def test_submit_reduce_job_is_refused(geard: Geard) -> None:
    with RawGearman(geard.port) as c:
        for ptype in (C.SUBMIT_REDUCE_JOB, C.SUBMIT_REDUCE_JOB_BACKGROUND):
            c.send(ptype, b"f\0u\0reducer\0args")
            code, text = c.expect(C.ERROR).split(b"\0")
            assert code == b"NOT_SUPPORTED" and b"SUBMIT_REDUCE_JOB" in text
    assert geard.server.total_jobs == 0


def test_submit_job_epoch(geard: Geard) -> None:
    with RawGearman(geard.port) as c, worker(geard, b"ep") as w:
        c.send(C.SUBMIT_JOB_EPOCH, b"ep\0\0%d\0now" % (time.time() - 5))
        h_now = c.expect(C.JOB_CREATED)
        c.send(C.SUBMIT_JOB_EPOCH, b"ep\0\0%d\0later" % (time.time() + 2))
        h_later = c.expect(C.JOB_CREATED)
        assert w.grab()[0] == h_now
        assert w.grab() == []
        c.send(C.GET_STATUS, h_later)
        assert c.expect(C.STATUS_RES) == h_later + b"\x001\x000\x000\x000"
        w.send(C.PRE_SLEEP)
        assert w.expect(C.NOOP, timeout=5) == b""
        assert w.grab()[0] == h_later


def test_submit_job_sched(geard: Geard) -> None:
    with RawGearman(geard.port) as c, worker(geard, b"cron") as w:
        c.send(C.SUBMIT_JOB_SCHED, b"cron\0\0\0\0\0\0\0any-minute")
        h = c.expect(C.JOB_CREATED)
        assert w.grab()[0] == h
        c.send(
            C.SUBMIT_JOB_SCHED,
            b"cron\0\0%d\0\0\0\0\0next-hour" % ((time.localtime().tm_min + 30) % 60),
        )
        later = c.expect(C.JOB_CREATED)
        assert geard.server.jobs[later].state == 2
        assert w.grab() == []
        c.send(C.SUBMIT_JOB_SCHED, b"cron\0\x0099\0\0\0\0\0bad")
        assert c.expect(C.ERROR).startswith(b"INVALID_ARGUMENTS\0")


def test_can_do_timeout_enforced(geard: Geard) -> None:
    with RawGearman(geard.port) as c, RawGearman(geard.port) as w:
        w.send(C.CAN_DO_TIMEOUT, b"slow\x001")
        h = c.submit(b"slow", b"")
        assert w.grab()[0] == h
        assert c.expect(C.WORK_FAIL, timeout=5) == h
        w.send(C.WORK_COMPLETE, h + b"\0too late")
        c.send(C.ECHO_REQ, b"x")
        assert c.expect(C.ECHO_RES) == b"x"
        assert geard.server.total_jobs == 0
        w.send(C.CAN_DO_TIMEOUT, b"slow\0abc")
        assert w.expect(C.ERROR).startswith(b"INVALID_ARGUMENTS\0")


def test_worker_disconnect_requeues_at_head(geard: Geard) -> None:
    with RawGearman(geard.port) as c:
        h1 = c.submit(b"r", b"first")
        h2 = c.submit(b"r", b"second")
        w1 = worker(geard, b"r")
        assert w1.grab()[0] == h1
        w1.close()
        with worker(geard, b"r") as w2:
            deadline = time.monotonic() + 5
            job = w2.grab()
            while not job and time.monotonic() < deadline:
                job = w2.grab()
            assert job[0] == h1
            assert h1 + b"\t1\t0\t0\n" in c.admin("show jobs")
            w2.send(C.WORK_COMPLETE, h1 + b"\0ok")
            assert c.expect(C.WORK_COMPLETE) == h1 + b"\0ok"
            assert w2.grab()[0] == h2


def test_job_retries_limit(geard_factory) -> None:  # type: ignore[no-untyped-def]
    geard = geard_factory(job_retries=0)
    with RawGearman(geard.port) as c:
        h = c.submit(b"r", b"x")
        w = worker(geard, b"r")
        assert w.grab()[0] == h
        w.close()
        assert c.expect(C.WORK_FAIL) == h
        c.send(C.ECHO_REQ, b"")
        c.expect(C.ECHO_RES)
        assert (geard.server.running_jobs, geard.server.total_jobs) == (0, 0)


def test_sleeping_worker_woken_when_job_requeued(geard: Geard) -> None:
    with RawGearman(geard.port) as c, worker(geard, b"rq") as sleeper:
        assert sleeper.grab() == []
        sleeper.send(C.PRE_SLEEP)
        sleeper.send(C.ECHO_REQ, b"")
        sleeper.expect(C.ECHO_RES)
        busy = worker(geard, b"rq")
        h = c.submit(b"rq", b"x")
        assert sleeper.expect(C.NOOP) == b""
        assert busy.grab()[0] == h
        assert sleeper.grab() == []
        sleeper.send(C.PRE_SLEEP)
        sleeper.send(C.ECHO_REQ, b"")
        sleeper.expect(C.ECHO_RES)
        busy.close()
        assert sleeper.expect(C.NOOP) == b""
        assert sleeper.grab()[0] == h


def test_client_disconnect_drops_its_queued_foreground_jobs(geard: Geard) -> None:
    c = RawGearman(geard.port)
    c.submit(b"gone", b"fg")
    keep = c.submit(b"gone", b"bg", b"", C.SUBMIT_JOB_BG)
    c.close()
    with RawGearman(geard.port) as probe:
        deadline = time.monotonic() + 5
        while geard.server.total_jobs != 1 and time.monotonic() < deadline:
            probe.send(C.ECHO_REQ, b"")
            probe.expect(C.ECHO_RES)
        assert list(geard.server.jobs) == [keep]


def test_work_packets_from_other_connection_ignored(geard: Geard) -> None:
    with RawGearman(geard.port) as c, worker(geard, b"own") as w, worker(geard, b"own") as intruder:
        h = c.submit(b"own", b"")
        assert w.grab()[0] == h
        intruder.send(C.WORK_COMPLETE, h + b"\0forged")
        intruder.send(C.WORK_FAIL, b"H:unknown:99")
        w.send(C.WORK_COMPLETE, h + b"\0real")
        assert c.expect(C.WORK_COMPLETE) == h + b"\0real"


def test_maxqueue_enforced(geard: Geard) -> None:
    with RawGearman(geard.port) as c:
        assert c.admin("maxqueue mq 2") == b"OK\n"
        c.submit(b"mq", b"1", b"", C.SUBMIT_JOB_BG)
        c.submit(b"mq", b"2", b"", C.SUBMIT_JOB_BG)
        c.send(C.SUBMIT_JOB_BG, b"mq\0\x003")
        code, text = c.expect(C.ERROR).split(b"\0")
        assert code == b"QUEUE_FULL" and b"mq" in text
        assert c.admin("maxqueue mq 0 5 0") == b"OK\n"
        c.submit(b"mq", b"3", b"", C.SUBMIT_JOB_BG)
        assert c.admin("maxqueue mq") == b"OK\n"
        assert geard.server.total_jobs == 3


def test_maxqueue_negative_size_is_unlimited(geard: Geard) -> None:
    with RawGearman(geard.port) as c:
        assert c.admin("maxqueue mq 1") == b"OK\n"
        c.submit(b"mq", b"1", b"", C.SUBMIT_JOB_BG)
        c.send(C.SUBMIT_JOB_BG, b"mq\0\x002")
        assert c.expect(C.ERROR).startswith(b"QUEUE_FULL\0")
        assert c.admin("maxqueue mq -1") == b"OK\n"
        for n in range(2, 5):
            c.submit(b"mq", b"%d" % n, b"", C.SUBMIT_JOB_BG)
        # Three sizes: high unlimited (negative), normal full at 4, low 1.
        assert c.admin("maxqueue mq -5 4 1") == b"OK\n"
        c.submit(b"mq", b"high", b"", C.SUBMIT_JOB_HIGH_BG)
        c.send(C.SUBMIT_JOB_BG, b"mq\0\x005")
        assert c.expect(C.ERROR).startswith(b"QUEUE_FULL\0")
        c.submit(b"mq", b"low", b"", C.SUBMIT_JOB_LOW_BG)
        c.send(C.SUBMIT_JOB_LOW_BG, b"mq\0\x00low2")
        assert c.expect(C.ERROR).startswith(b"QUEUE_FULL\0")
    assert geard.server.total_jobs == 6


def test_queue_store_seam(geard_factory) -> None:  # type: ignore[no-untyped-def]
    store = MemoryQueueStore()
    first = geard_factory(queue_store=store)
    with RawGearman(first.port) as c:
        h_bg = c.submit(b"st", b"keep", b"u1", C.SUBMIT_JOB_HIGH_BG)
        c.submit(b"st", b"foreground is not stored")
        h_done = c.submit(b"st", b"done", b"", C.SUBMIT_JOB_BG)
        with worker(first, b"st") as w:
            assert w.grab()[0] == h_bg
            w.close()
        c.send(C.ECHO_REQ, b"")
        c.expect(C.ECHO_RES)
    assert set(store.jobs) == {h_bg, h_done}
    first.stop()
    second = geard_factory(queue_store=store)
    assert set(second.server.jobs) == {h_bg, h_done}
    with RawGearman(second.port) as c:
        fresh = c.submit(b"st", b"new", b"", C.SUBMIT_JOB_BG)
        assert fresh not in (h_bg, h_done)
        c.admin(b"cancel job " + fresh)
    with worker(second, b"st") as w:
        job = w.grab()
        assert job == [h_bg, b"st", b"u1", b"keep"]
        w.send(C.WORK_COMPLETE, h_bg + b"\0")
        w.send(C.ECHO_REQ, b"")
        w.expect(C.ECHO_RES)
    assert set(store.jobs) == {h_done}


class CountingServer(Server):
    """A gear 0.16-style subclass overriding a packet hook."""

    seen: list[bytes]

    def handleSubmitJobBg(self, packet):  # type: ignore[no-untyped-def]
        self.seen.append(bytes(packet.data))
        super().handleSubmitJobBg(packet)


def test_subclass_hooks_are_called() -> None:
    CountingServer.seen = []
    server = CountingServer(0, host="127.0.0.1")
    try:
        with RawGearman(server.port) as c:
            h = c.submit(b"hook", b"x", b"", C.SUBMIT_JOB_BG)
        assert CountingServer.seen == [b"hook\0\0x"]
        assert list(server.jobs) == [h]
    finally:
        server.shutdown()
    server.shutdown()


def test_per_packet_logging_only_at_debug(geard: Geard, caplog: pytest.LogCaptureFixture) -> None:
    with RawGearman(geard.port) as c:
        caplog.set_level(logging.INFO, logger="gear.Server")
        c.send(C.ECHO_REQ, b"quiet")
        c.expect(C.ECHO_RES)
        assert not [r for r in caplog.records if "ECHO_REQ" in r.getMessage()]
        caplog.set_level(logging.DEBUG, logger="gear.Server")
        c.send(C.ECHO_REQ, b"loud")
        c.expect(C.ECHO_RES)
        assert [r for r in caplog.records if "sent ECHO_REQ (4 bytes)" in r.getMessage()]
