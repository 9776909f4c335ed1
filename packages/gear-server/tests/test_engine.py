"""geard's engine without a network: fake sessions and fake timers, bytes in and bytes out.

Everything below :mod:`gear.server.transport` is driven here: the packet
table, the admin commands, the outbox and the durable commit gate. Time is
a number the test moves; a "loop turn" is :meth:`FakeTimers.run_soon`.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from gear import constants as C
from gear.codec import AdminLine, Decoder, Frame, encode_packet
from gear.packet import Packet
from gear.server.config import ServerOptions
from gear.server.inbox import Inbox
from gear.server.model import QUEUED, RUNNING, SCHEDULED, Session
from gear.server.store import MemoryQueueStore, QueueStore, StoredJob

START = datetime.datetime(2030, 1, 1, 12, 0).timestamp()


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTimers:
    """call_soon / call_later on a clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = START
        self.soon: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self.later: list[tuple[float, int, FakeHandle, Callable[..., object], tuple[Any, ...]]] = []
        self.seq = itertools.count()

    def clock(self) -> float:
        return self.now

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        self.soon.append((callback, args))

    call_soon_threadsafe = call_soon

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> FakeHandle:
        handle = FakeHandle()
        heapq.heappush(self.later, (self.now + delay, next(self.seq), handle, callback, args))
        return handle

    def run_soon(self) -> None:
        """One loop turn: what was queued with call_soon (bounded)."""
        for _ in range(1000):
            if not self.soon:
                return
            callback, args = self.soon.popleft()
            callback(*args)
        raise AssertionError("call_soon keeps rescheduling itself")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self.later and self.later[0][0] <= self.now:
            _, _, handle, callback, args = heapq.heappop(self.later)
            if not handle.cancelled:
                callback(*args)
        self.run_soon()

    def pending(self) -> int:
        return sum(1 for entry in self.later if not entry[2].cancelled)


class FakeSession(Session):
    """A peer whose bytes land in a buffer; counts writes to check batching."""

    def __init__(self, owner: Any, number: int) -> None:
        super().__init__(owner)
        self.host = "10.0.0.%d" % number
        self.port = 40000 + number
        self.fd = number
        self.handle_prefix = b"H:test:"
        self.written = bytearray()
        self.writes = 0
        self.ended: str | None = None

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.written += data

    def close(self) -> None:
        self.ended = "close"

    def abort(self) -> None:
        self.ended = "abort"

    def buffer_size(self) -> int:
        return 0


class Core(Inbox):
    """Every layer of gear.Server below the transport."""

    def __init__(self, timers: FakeTimers, store: QueueStore | None = None, **options: Any):
        super().__init__(ServerOptions(**options), timers, clock=timers.clock, queue_store=store)
        self._init_inbox()
        self._dispatch = self._build_dispatch()
        self.fake_timers = timers
        self.numbers = itertools.count(1)

    def connect(self) -> FakeSession:
        session = FakeSession(self, next(self.numbers))
        self._open_session(session)
        return session

    def disconnect(self, session: FakeSession) -> None:
        session.closed = True
        self._forget_session(session)
        self.fake_timers.run_soon()

    def feed(self, session: FakeSession, data: bytes) -> list[tuple[int, bytes] | bytes]:
        """Bytes in; one loop turn; what the session was sent, decoded."""
        before = len(session.written)
        self._feed(session, data)
        self.fake_timers.run_soon()
        return decode(bytes(session.written[before:]))

    def req(self, session: FakeSession, ptype: int, *args: bytes) -> list[Any]:
        return self.feed(session, encode_packet(C.REQ, ptype, b"\x00".join(args)))

    def admin(self, session: FakeSession, line: str) -> list[Any]:
        return self.feed(session, line.encode() + b"\n")


def decode(data: bytes) -> list[tuple[int, bytes] | bytes]:
    out: list[tuple[int, bytes] | bytes] = []
    decoder = Decoder()
    for event in decoder.receive(data):
        if isinstance(event, Frame):
            assert event.magic == C.RES
            out.append((event.ptype, event.data))
        else:
            assert isinstance(event, AdminLine)
            out.append(event.line.rstrip(b"\n"))
    return out


def res(ptype: int, *args: bytes) -> tuple[int, bytes]:
    return (ptype, b"\x00".join(args))


@pytest.fixture
def timers() -> FakeTimers:
    return FakeTimers()


@pytest.fixture
def core(timers: FakeTimers) -> Core:
    return Core(timers)


def worker(core: Core, *functions: bytes) -> FakeSession:
    session = core.connect()
    for name in functions:
        assert core.req(session, C.CAN_DO, name) == []
    return session


# ----------------------------------------------------------------------
# clients and workers


def test_echo_and_one_write_per_turn(core: Core) -> None:
    client = core.connect()
    data = b"".join(encode_packet(C.REQ, C.ECHO_REQ, b"ping%d" % i) for i in range(3))
    assert core.feed(client, data) == [res(C.ECHO_RES, b"ping%d" % i) for i in range(3)]
    assert client.writes == 1


def test_foreground_job_round_trip(core: Core) -> None:
    client = core.connect()
    assert core.req(client, C.SUBMIT_JOB, b"fn", b"", b"args") == [res(C.JOB_CREATED, b"H:test:1")]
    w = worker(core, b"fn")
    assert core.req(w, C.GRAB_JOB_UNIQ) == [
        res(C.JOB_ASSIGN_UNIQ, b"H:test:1", b"fn", b"", b"args")
    ]
    assert core.req(client, C.GET_STATUS, b"H:test:1") == [
        res(C.STATUS_RES, b"H:test:1", b"1", b"1", b"0", b"0")
    ]
    core.req(w, C.WORK_STATUS, b"H:test:1", b"1", b"2")
    core.req(w, C.WORK_DATA, b"H:test:1", b"part")
    core.req(w, C.WORK_WARNING, b"H:test:1", b"careful")
    assert core.req(w, C.WORK_COMPLETE, b"H:test:1", b"done") == []
    assert decode(bytes(client.written))[2:] == [
        res(C.WORK_STATUS, b"H:test:1", b"1", b"2"),
        res(C.WORK_DATA, b"H:test:1", b"part"),
        res(C.WORK_WARNING, b"H:test:1", b"careful"),
        res(C.WORK_COMPLETE, b"H:test:1", b"done"),
    ]
    assert core.jobs == {} and core.running_jobs == 0
    assert core.req(client, C.GET_STATUS, b"H:test:1") == [
        res(C.STATUS_RES, b"H:test:1", b"0", b"0", b"0", b"0")
    ]


def test_grab_variants_and_no_job(core: Core) -> None:
    client = core.connect()
    for unique in (b"u1", b"u2"):
        core.req(client, C.SUBMIT_JOB_BG, b"fn", unique, b"x")
    w = worker(core, b"fn")
    assert core.req(w, C.GRAB_JOB) == [res(C.JOB_ASSIGN, b"H:test:1", b"fn", b"x")]
    assert core.req(w, C.GRAB_JOB_ALL) == [
        res(C.JOB_ASSIGN_ALL, b"H:test:2", b"fn", b"u2", b"", b"x")
    ]
    assert core.req(w, C.GRAB_JOB_UNIQ) == [res(C.NO_JOB)]


def test_priorities_high_normal_low(core: Core) -> None:
    client = core.connect()
    core.req(client, C.SUBMIT_JOB_LOW_BG, b"fn", b"", b"low")
    core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"normal")
    core.req(client, C.SUBMIT_JOB_HIGH_BG, b"fn", b"", b"high")
    core.req(client, C.SUBMIT_JOB_HIGH, b"fn", b"", b"high-fg")
    core.req(client, C.SUBMIT_JOB_LOW, b"fn", b"", b"low-fg")
    assert core.admin(client, "prioritystatus") == [b"fn\t2\t1\t2\t0", b"."]
    w = worker(core, b"fn")
    order = [core.req(w, C.GRAB_JOB)[0][1].split(b"\x00")[2] for _ in range(5)]
    assert order == [b"high", b"high-fg", b"normal", b"low", b"low-fg"]


def test_coalescing_by_unique(core: Core) -> None:
    first, second = core.connect(), core.connect()
    assert core.req(first, C.SUBMIT_JOB, b"fn", b"same", b"a") == [res(C.JOB_CREATED, b"H:test:1")]
    assert core.req(second, C.SUBMIT_JOB, b"fn", b"same", b"b") == [res(C.JOB_CREATED, b"H:test:1")]
    background = core.connect()
    assert core.req(background, C.SUBMIT_JOB_BG, b"fn", b"same", b"c") == [
        res(C.JOB_CREATED, b"H:test:1")
    ]
    assert len(core.jobs) == 1
    assert core.req(first, C.GET_STATUS_UNIQUE, b"same") == [
        res(C.STATUS_RES_UNIQUE, b"same", b"1", b"0", b"0", b"0", b"2")
    ]
    w = worker(core, b"fn")
    core.req(w, C.GRAB_JOB)
    core.req(w, C.WORK_COMPLETE, b"H:test:1", b"r")
    for client in (first, second):
        assert decode(bytes(client.written))[-1] == res(C.WORK_COMPLETE, b"H:test:1", b"r")
    assert decode(bytes(background.written)) == [res(C.JOB_CREATED, b"H:test:1")]
    assert core.req(first, C.GET_STATUS_UNIQUE, b"same") == [
        res(C.STATUS_RES_UNIQUE, b"same", b"0", b"0", b"0", b"0", b"0")
    ]


def test_sleeping_worker_is_woken_once(core: Core) -> None:
    sleepers = [worker(core, b"fn") for _ in range(3)]
    for w in sleepers:
        assert core.req(w, C.PRE_SLEEP) == []
    client = core.connect()
    core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"")
    woken = [w for w in sleepers if decode(bytes(w.written)) == [res(C.NOOP)]]
    assert len(woken) == 1
    other = worker(core, b"other")
    core.req(other, C.PRE_SLEEP)
    core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"")
    assert other.written == b""


def test_pre_sleep_with_queued_work_answers_noop(core: Core) -> None:
    client = core.connect()
    core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"")
    w = worker(core, b"fn")
    assert core.req(w, C.PRE_SLEEP) == [res(C.NOOP)]


def test_exceptions_option_and_failures(core: Core) -> None:
    plain, wants = core.connect(), core.connect()
    assert core.req(wants, C.OPTION_REQ, b"exceptions") == [res(C.OPTION_RES, b"exceptions")]
    assert core.req(wants, C.OPTION_REQ, b"bogus") == [
        res(C.ERROR, b"UNKNOWN_OPTION", b"Unknown option: bogus")
    ]
    core.req(plain, C.SUBMIT_JOB, b"fn", b"u", b"")
    core.req(wants, C.SUBMIT_JOB, b"fn", b"u", b"")
    w = worker(core, b"fn")
    core.req(w, C.GRAB_JOB)
    core.req(w, C.WORK_EXCEPTION, b"H:test:1", b"boom")
    assert decode(bytes(plain.written))[-1] == res(C.WORK_FAIL, b"H:test:1")
    assert decode(bytes(wants.written))[-1] == res(C.WORK_EXCEPTION, b"H:test:1", b"boom")
    core.req(plain, C.SUBMIT_JOB, b"fn", b"", b"")
    core.req(w, C.GRAB_JOB)
    core.req(w, C.WORK_FAIL, b"H:test:2")
    assert decode(bytes(plain.written))[-1] == res(C.WORK_FAIL, b"H:test:2")
    assert core.jobs == {}


def test_work_for_a_job_not_held_is_ignored(core: Core) -> None:
    w = worker(core, b"fn")
    assert core.req(w, C.WORK_COMPLETE, b"H:test:99", b"x") == []
    assert core.req(w, C.WORK_FAIL, b"H:test:99") == []


def test_cant_do_and_reset_abilities(core: Core) -> None:
    client = core.connect()
    core.req(client, C.SUBMIT_JOB_BG, b"a", b"", b"")
    core.req(client, C.SUBMIT_JOB_BG, b"b", b"", b"")
    w = worker(core, b"a", b"b")
    core.req(w, C.CANT_DO, b"a")
    assert core.req(w, C.GRAB_JOB)[0][1].startswith(b"H:test:2\x00b")
    core.req(w, C.RESET_ABILITIES)
    assert core.req(w, C.GRAB_JOB) == [res(C.NO_JOB)]
    assert w.functions == set() and w.abilities == {}


def test_client_id_and_workers_listing(core: Core) -> None:
    w = worker(core, b"fn")
    core.req(w, C.SET_CLIENT_ID, b"worker-1")
    assert core.admin(w, "workers") == [b"1 10.0.0.1 worker-1 : fn", b"."]
    assert core.req(w, C.SET_CLIENT_ID, b"bad\nid") == [
        res(C.ERROR, b"INVALID_ARGUMENTS", b"client id contains a control character")
    ]


def test_all_yours_and_reduce(core: Core) -> None:
    client = core.connect()
    assert core.req(client, C.ALL_YOURS) == []
    for ptype in (C.SUBMIT_REDUCE_JOB, C.SUBMIT_REDUCE_JOB_BACKGROUND):
        assert core.req(client, ptype, b"fn", b"", b"r", b"") == [
            res(
                C.ERROR,
                b"NOT_SUPPORTED",
                b"SUBMIT_REDUCE_JOB is not supported by this server; submit a normal job",
            )
        ]


# ----------------------------------------------------------------------
# time: timeouts and schedules


def test_can_do_timeout_fails_the_job(core: Core, timers: FakeTimers) -> None:
    client = core.connect()
    core.req(client, C.SUBMIT_JOB, b"fn", b"", b"")
    w = core.connect()
    core.req(w, C.CAN_DO_TIMEOUT, b"fn", b"5")
    core.req(w, C.GRAB_JOB)
    timers.advance(4.9)
    assert decode(bytes(client.written)) == [res(C.JOB_CREATED, b"H:test:1")]
    timers.advance(0.2)
    assert decode(bytes(client.written))[-1] == res(C.WORK_FAIL, b"H:test:1")
    assert core.jobs == {} and core.running_jobs == 0
    assert core.req(w, C.CAN_DO_TIMEOUT, b"fn", b"-1") == [
        res(
            C.ERROR,
            b"INVALID_ARGUMENTS",
            b"CAN_DO_TIMEOUT: timeout b'-1' is not an integer from 0 to 2147483647",
        )
    ]


def test_completed_job_cancels_its_timer(core: Core, timers: FakeTimers) -> None:
    client = core.connect()
    core.req(client, C.SUBMIT_JOB, b"fn", b"", b"")
    w = core.connect()
    core.req(w, C.CAN_DO_TIMEOUT, b"fn", b"5")
    core.req(w, C.GRAB_JOB)
    core.req(w, C.WORK_COMPLETE, b"H:test:1", b"ok")
    assert timers.pending() == 0


def test_epoch_job_waits_for_its_time(core: Core, timers: FakeTimers) -> None:
    client = core.connect()
    when = b"%d" % (START + 60)
    assert core.req(client, C.SUBMIT_JOB_EPOCH, b"fn", b"", when, b"later") == [
        res(C.JOB_CREATED, b"H:test:1")
    ]
    assert core.jobs[b"H:test:1"].state == SCHEDULED
    w = worker(core, b"fn")
    core.req(w, C.PRE_SLEEP)
    assert core.admin(client, "status") == [b"fn\t1\t0\t1", b"."]
    timers.advance(59)
    assert w.written == b""
    timers.advance(2)
    assert decode(bytes(w.written)) == [res(C.NOOP)]
    assert core.req(w, C.GRAB_JOB) == [res(C.JOB_ASSIGN, b"H:test:1", b"fn", b"later")]


def test_epoch_in_the_past_runs_now(core: Core) -> None:
    client = core.connect()
    core.req(client, C.SUBMIT_JOB_EPOCH, b"fn", b"", b"1", b"")
    assert core.jobs[b"H:test:1"].state == QUEUED


def test_sched_job(core: Core, timers: FakeTimers) -> None:
    client = core.connect()
    now = datetime.datetime.now()
    timers.now = now.timestamp()  # schedules are read in local wall-clock time
    hour = (now.hour + 2) % 24
    reply = core.req(client, C.SUBMIT_JOB_SCHED, b"fn", b"", b"0", b"%d" % hour, b"", b"", b"", b"")
    assert reply == [res(C.JOB_CREATED, b"H:test:1")]
    job = core.jobs[b"H:test:1"]
    assert job.state == SCHEDULED and job.when is not None
    timers.now = job.when + 1
    timers.advance(0)
    assert job.state == QUEUED
    assert core.req(client, C.SUBMIT_JOB_SCHED, b"fn", b"", b"61", b"", b"", b"", b"", b"")[0][
        1
    ].startswith(b"INVALID_ARGUMENTS\x00SUBMIT_JOB_SCHED: minute 61 is out of range")
    assert core.req(client, C.SUBMIT_JOB_SCHED, b"fn", b"", b"", b"", b"31", b"2", b"", b"") == [
        res(C.ERROR, b"INVALID_ARGUMENTS", b"SUBMIT_JOB_SCHED: no date matches the schedule")
    ]


# ----------------------------------------------------------------------
# workers that go away


def test_requeue_at_head_then_fail_after_retries(timers: FakeTimers) -> None:
    core = Core(timers, job_retries=1)
    client = core.connect()
    core.req(client, C.SUBMIT_JOB, b"fn", b"", b"first")
    core.req(client, C.SUBMIT_JOB, b"fn", b"", b"second")
    w1 = worker(core, b"fn")
    core.req(w1, C.GRAB_JOB)
    core.disconnect(w1)
    job = core.jobs[b"H:test:1"]
    assert (job.state, job.retries) == (QUEUED, 1)
    w2 = worker(core, b"fn")
    assert core.req(w2, C.GRAB_JOB)[0][1].endswith(b"first")  # back at the head
    assert core.admin(client, "show jobs") == [b"H:test:1\t1\t0\t0", b"H:test:2\t0\t0\t1", b"."]
    core.disconnect(w2)
    assert decode(bytes(client.written))[-1] == res(C.WORK_FAIL, b"H:test:1")
    assert list(core.jobs) == [b"H:test:2"]


def test_client_gone_drops_its_waiting_foreground_jobs(core: Core) -> None:
    client = core.connect()
    core.req(client, C.SUBMIT_JOB, b"fn", b"", b"")
    core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"")
    core.disconnect(client)
    assert list(core.jobs) == [b"H:test:2"]
    assert core.function_queues[b"fn"].counts == [0, 1, 0]


def test_running_job_of_a_gone_client_is_forgotten_when_requeued(core: Core) -> None:
    client = core.connect()
    core.req(client, C.SUBMIT_JOB, b"fn", b"", b"")
    w = worker(core, b"fn")
    core.req(w, C.GRAB_JOB)
    core.disconnect(client)
    assert core.jobs[b"H:test:1"].state == RUNNING
    core.disconnect(w)
    assert core.jobs == {} and b"fn" not in core.function_queues


# ----------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (encode_packet(C.REQ, C.SUBMIT_JOB, b"fn"), b"SUBMIT_JOB needs 3 NUL-separated"),
        (encode_packet(C.REQ, C.WORK_STATUS, b"H:1"), b"WORK_STATUS needs 3 NUL-separated"),
        (encode_packet(C.REQ, C.SUBMIT_JOB, b"fn\x00" + b"u" * 65 + b"\x00"), b"unique id longer"),
        (encode_packet(C.REQ, C.SUBMIT_JOB, b"f\x01n\x00\x00"), b"function name contains"),
        (encode_packet(C.REQ, C.SUBMIT_JOB, b"fn\x00.\x00"), b"unique id '.' would end"),
    ],
)
def test_bad_arguments_are_an_error_and_the_connection_stays(
    core: Core, data: bytes, reply: bytes
) -> None:
    client = core.connect()
    [(ptype, payload)] = core.feed(client, data)  # type: ignore[misc]
    assert ptype == C.ERROR and payload.startswith(b"INVALID_ARGUMENTS\x00" + reply)
    assert not client.closed
    assert core.req(client, C.ECHO_REQ, b"still") == [res(C.ECHO_RES, b"still")]


def test_unexpected_and_unknown_packets(core: Core) -> None:
    client = core.connect()
    assert core.feed(client, encode_packet(C.RES, C.ECHO_REQ, b"")) == [
        res(
            C.ERROR,
            b"UNEXPECTED_PACKET",
            b"ECHO_REQ with RES magic: clients and workers must send REQ packets",
        )
    ]
    assert core.req(client, C.JOB_CREATED, b"") == [
        res(C.ERROR, b"UNEXPECTED_PACKET", b"JOB_CREATED is not a request a server accepts")
    ]
    assert core.feed(client, b"\x00REQ" + (200).to_bytes(4, "big") + bytes(4)) == [
        res(C.ERROR, b"UNKNOWN_PACKET", b"unknown packet type 200")
    ]
    assert not client.closed


def test_bad_stream_closes_with_the_decoders_code(timers: FakeTimers) -> None:
    core = Core(timers, max_packet_size=100, max_admin_line=50)
    bad_magic = core.connect()
    [(ptype, payload)] = core.feed(bad_magic, b"\x00XYZ" + bytes(8))  # type: ignore[misc]
    assert ptype == C.ERROR and payload.startswith(b"BAD_MAGIC\x00")
    assert bad_magic.closed and bad_magic.ended == "close"
    big = core.connect()
    [(ptype, payload)] = core.feed(big, b"\x00REQ" + bytes(3) + b"\x10" + bytes([0, 0, 1, 0]))  # type: ignore[misc]
    assert ptype == C.ERROR and payload.startswith(b"PACKET_TOO_LARGE\x00")
    long_line = core.connect()
    [line] = core.feed(long_line, b"x" * 60)
    assert isinstance(line, bytes) and line.startswith(b"ERR LINE_TOO_LONG ")
    assert long_line.closed


def test_unfinished_input_over_the_total_cap_closes_the_biggest(timers: FakeTimers) -> None:
    core = Core(timers, max_partial_total=100)
    small, big = core.connect(), core.connect()
    assert (
        core.feed(small, b"\x00REQ" + bytes(3) + b"\x10" + bytes([0, 0, 0, 200]) + bytes(30)) == []
    )
    assert core.feed(big, b"status" + b" " * 46) == []
    assert core._buffered_total == 94 and not small.closed and not big.closed
    [(ptype, payload)] = core.feed(small, bytes(20))  # type: ignore[misc]
    assert (ptype, payload) == res(
        C.ERROR, b"SERVER_BUSY", b"too much unfinished input on the server"
    )
    assert small.closed and not big.closed
    assert core._buffered_total == 52
    assert core.feed(big, b"\n") == [b"."]
    assert core._buffered_total == 0


def test_exception_in_a_hook_drops_only_that_connection(timers: FakeTimers) -> None:
    seen: list[Packet] = []

    class Hooked(Core):
        def handleEchoReq(self, packet: Packet) -> None:
            seen.append(packet)
            if packet.data == b"boom":
                raise RuntimeError("hook failed")
            super().handleEchoReq(packet)

    core = Hooked(timers)
    good, bad = core.connect(), core.connect()
    assert core.req(good, C.ECHO_REQ, b"hi") == [res(C.ECHO_RES, b"hi")]
    assert core.req(bad, C.ECHO_REQ, b"boom") == [
        res(C.ERROR, b"SERVER_ERROR", b"internal server error")
    ]
    assert bad.closed and not good.closed
    assert core.req(good, C.ECHO_REQ, b"again") == [res(C.ECHO_RES, b"again")]
    assert [(p.ptype, p.data, p.connection) for p in seen] == [
        (C.ECHO_REQ, b"hi", good),
        (C.ECHO_REQ, b"boom", bad),
        (C.ECHO_REQ, b"again", good),
    ]


def test_submit_hook_receives_its_packet(timers: FakeTimers) -> None:
    seen: list[tuple[int, bytes]] = []

    class Hooked(Core):
        def handleSubmitJobBg(self, packet: Packet) -> None:
            seen.append((packet.ptype, bytes(packet.data)))
            super().handleSubmitJobBg(packet)

    core = Hooked(timers)
    client = core.connect()
    assert core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"x") == [res(C.JOB_CREATED, b"H:test:1")]
    assert core.req(client, C.SUBMIT_JOB, b"fn", b"", b"y") == [res(C.JOB_CREATED, b"H:test:2")]
    assert seen == [(C.SUBMIT_JOB_BG, b"fn\x00\x00x")]


# ----------------------------------------------------------------------
# admin commands


def test_maxqueue_and_queue_full(core: Core) -> None:
    admin, client = core.connect(), core.connect()
    assert core.admin(admin, "maxqueue fn 1") == [b"OK"]
    core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"")
    assert core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"") == [
        res(C.ERROR, b"QUEUE_FULL", b"Job queue is full for function fn")
    ]
    assert core.admin(admin, "maxqueue fn x") == [
        b"ERR INVALID_ARGUMENTS sizes+must+be+1+or+3+integers"
    ]


def test_cancel_job(core: Core) -> None:
    admin, client = core.connect(), core.connect()
    core.req(client, C.SUBMIT_JOB, b"fn", b"", b"")
    assert core.admin(admin, "cancel job H:test:1") == [b"OK"]
    assert decode(bytes(client.written))[-1] == res(C.WORK_FAIL, b"H:test:1")
    assert core.admin(admin, "cancel job H:test:1") == [b"ERR UNKNOWN_JOB"]
    assert core.admin(admin, "cancel job") == [b"ERR INCOMPLETE_ARGS usage:+cancel+job+HANDLE"]


def test_functions_and_listings(core: Core) -> None:
    admin = core.connect()
    assert core.admin(admin, "create function made") == [b"OK"]
    assert core.admin(admin, "status") == [b"made\t0\t0\t0", b"."]
    assert core.admin(admin, "drop function made") == [b"OK"]
    assert core.admin(admin, "drop function made") == [b"ERR UNKNOWN_FUNCTION Function+not+found"]
    client = core.connect()
    core.req(client, C.SUBMIT_JOB_BG, b"fn", b"uniq", b"")
    assert core.admin(admin, "show unique jobs") == [b"uniq", b"."]
    assert core.admin(admin, "drop function fn") == [
        b"ERR FUNCTION_IN_USE Function+has+jobs+or+workers"
    ]
    assert core.admin(admin, "bogus") == [b"ERR UNKNOWN_COMMAND Unknown+server+command"]
    assert core.admin(admin, "acl list") == [b"ERR ACL_DISABLED"]


def test_shutdown_graceful_stops_when_running_jobs_end(core: Core) -> None:
    client = core.connect()
    core.req(client, C.SUBMIT_JOB, b"fn", b"", b"")
    core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"")
    w = worker(core, b"fn")
    core.req(w, C.GRAB_JOB)
    admin = core.connect()
    assert core.admin(admin, "shutdown graceful") == [b"OK"]
    assert core.req(client, C.SUBMIT_JOB, b"fn", b"", b"") == [
        res(C.ERROR, b"SHUTTING_DOWN", b"Server is shutting down")
    ]
    assert core.req(w, C.GRAB_JOB) == [res(C.NO_JOB)]
    assert not core._stopping
    core.req(w, C.WORK_COMPLETE, b"H:test:1", b"")
    assert core._stopping
    assert b"H:test:2" in core.jobs


# ----------------------------------------------------------------------
# the durable commit gate


class RecordingStore(MemoryQueueStore):
    """Notes how many bytes each session had been sent when a flush began."""

    def __init__(self, sessions: Iterable[FakeSession] = ()) -> None:
        super().__init__()
        self.sessions = list(sessions)
        self.flushes: list[list[int]] = []
        self.pending: list[Callable[[BaseException | None], None]] = []
        self.asynchronous = False

    def flush(self) -> None:
        self.flushes.append([len(s.written) for s in self.sessions])

    def flush_async(self, done: Callable[[BaseException | None], None]) -> bool:
        if not self.asynchronous:
            return False
        self.flushes.append([len(s.written) for s in self.sessions])
        self.pending.append(done)
        return True


def test_no_reply_before_the_commit(timers: FakeTimers) -> None:
    store = RecordingStore()
    core = Core(timers, store)
    client = core.connect()
    store.sessions.append(client)
    assert core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"x") == [res(C.JOB_CREATED, b"H:test:1")]
    assert store.flushes == [[0]]
    assert [job.handle for job in store.load()] == [b"H:test:1"]


def test_group_commit_holds_replies_until_done(timers: FakeTimers) -> None:
    store = RecordingStore()
    store.asynchronous = True
    core = Core(timers, store)
    client = core.connect()
    store.sessions.append(client)
    assert core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"1") == []
    assert core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"2") == []  # waits behind the first
    assert len(store.pending) == 1
    store.pending.pop()(None)
    timers.run_soon()
    assert decode(bytes(client.written)) == [res(C.JOB_CREATED, b"H:test:1")]
    assert len(store.pending) == 1  # the second job's own commit
    store.pending.pop()(None)
    timers.run_soon()
    assert decode(bytes(client.written))[-1] == res(C.JOB_CREATED, b"H:test:2")


def test_failed_commit_drops_the_held_replies(timers: FakeTimers) -> None:
    store = RecordingStore()
    store.asynchronous = True
    core = Core(timers, store)
    client = core.connect()
    core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"1")
    store.pending.pop()(OSError("disk full"))
    timers.run_soon()
    assert client.written == b"" and client.ended == "abort"


def test_restore_keeps_handles_unique(timers: FakeTimers) -> None:
    store = MemoryQueueStore()
    store.add(StoredJob(b"H:old:41", b"fn", b"u", b"a", C.PRECEDENCE_HIGH))
    store.add(StoredJob(b"H:old:7", b"fn", None, b"b", C.PRECEDENCE_LOW, when=START + 10))
    core = Core(timers, store)
    core._restore(store)
    assert core.jobs[b"H:old:7"].state == SCHEDULED
    client = core.connect()
    assert core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"") == [res(C.JOB_CREATED, b"H:test:42")]
    w = worker(core, b"fn")
    assert core.req(w, C.GRAB_JOB)[0][1].startswith(b"H:old:41")


# -- what a shared store reports (StoreListener) -------------------------------


class LeasedStore(MemoryQueueStore):
    """A store with a lease the test can let run out, as a cluster store has."""

    def __init__(self) -> None:
        super().__init__()
        self.lease_deadline = float("inf")
        self.expired = 0
        self.listener: Any = None

    def expire(self) -> None:
        self.expired += 1
        self.lease_deadline = float("inf")
        self.listener.store_fenced()


def test_lease_run_out_hands_out_no_stored_job(timers: FakeTimers) -> None:
    store = LeasedStore()
    core = Core(timers, store)
    store.listener = core
    client = core.connect()
    core.req(client, C.SUBMIT_JOB_BG, b"fn", b"", b"bg")
    core.req(client, C.SUBMIT_JOB, b"fn", b"", b"fg")
    store.lease_deadline = 0.0  # long past on the monotonic clock
    w = worker(core, b"fn")
    assigned = core.req(w, C.GRAB_JOB)
    assert store.expired == 1
    assert assigned[0][0] == C.JOB_ASSIGN and assigned[0][1].endswith(b"\0fg")
    assert core.req(w, C.GRAB_JOB) == [res(C.NO_JOB)]
    assert len(store.jobs) == 1, "the stored row stays: another node may own it now"


def test_adopted_jobs_are_queued_and_counted_apart(timers: FakeTimers) -> None:
    core = Core(timers, MemoryQueueStore())
    w = worker(core, b"fn")
    core.req(w, C.PRE_SLEEP)
    core.store_adopted(
        [StoredJob(b"H:dead.3:9", b"fn", b"u", b"x", C.PRECEDENCE_NORMAL, adopted=True)]
    )
    assert core.adopted == {b"H:dead.3:9"}
    assert core.jobs[b"H:dead.3:9"].state == QUEUED
    assigned = core.req(w, C.GRAB_JOB)
    assert assigned[0] == res(C.NOOP), "the sleeping worker is woken"
    assert assigned[1][1].startswith(b"H:dead.3:9\0")
    core.req(w, C.WORK_COMPLETE, b"H:dead.3:9", b"")
    assert core.adopted == set()


def test_coalesced_job_dropped_only_while_waiting(timers: FakeTimers) -> None:
    store = MemoryQueueStore()
    core = Core(timers, store)
    core.store_prefix(b"H:n1.5:")
    client = core.connect()
    first = core.req(client, C.SUBMIT_JOB_BG, b"fn", b"u1", b"a")[0][1]
    second = core.req(client, C.SUBMIT_JOB_BG, b"fn", b"u2", b"b")[0][1]
    assert first == b"H:n1.5:1"
    w = worker(core, b"fn")
    core.req(w, C.GRAB_JOB)  # the first is running
    core.store_coalesced([first, second])
    assert first in core.jobs and second not in core.jobs
    assert second in store.jobs, "the row is not this node's to delete"
