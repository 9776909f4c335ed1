"""The I/O-free grab state machine and packet helpers of gear.worker.protocol."""

from __future__ import annotations

import pytest

from gear import constants
from gear.errors import RemoteProtocolError
from gear.worker import protocol as p
from gear.worker.worker import FunctionRecord


def test_grab_cycle() -> None:
    state, send = p.on_demand(p.IDLE, 1)
    assert (state, send) == (p.GRAB_WAIT, constants.GRAB_JOB_UNIQ)
    assert p.on_no_job(state) == (p.SLEEP, constants.PRE_SLEEP)
    assert p.on_noop(p.SLEEP, 1) == (p.GRAB_WAIT, constants.GRAB_JOB_UNIQ)
    assert p.on_assign(p.GRAB_WAIT) == (p.IDLE, None)


def test_nobody_waiting_settles_to_idle() -> None:
    assert p.on_demand(p.GRAB_WAIT, 0) == (p.IDLE, None)
    assert p.on_demand(p.SLEEP, 0) == (p.IDLE, None)
    assert p.on_demand(p.IDLE, 0) == (p.IDLE, None)
    assert p.on_demand(p.INIT, 0) == (p.INIT, None)
    assert p.on_noop(p.SLEEP, 0) == (p.IDLE, None)


def test_unexpected_packets_are_ignored() -> None:
    assert p.on_no_job(p.IDLE) == (p.IDLE, None)
    assert p.on_no_job(p.SLEEP) == (p.SLEEP, None)
    assert p.on_noop(p.IDLE, 1) == (p.IDLE, None)
    assert p.on_noop(p.GRAB_WAIT, 1) == (p.GRAB_WAIT, None)
    assert p.on_demand(p.GRAB_WAIT, 2) == (p.GRAB_WAIT, None)
    assert p.on_demand(p.SLEEP, 2) == (p.SLEEP, None)


def test_parse_assignment() -> None:
    assert p.parse_assignment(constants.JOB_ASSIGN_UNIQ, b"H:1\x00fn\x00u\x00a\x00b") == (
        b"H:1",
        b"fn",
        b"u",
        b"a\x00b",
    )
    assert p.parse_assignment(constants.JOB_ASSIGN_UNIQ, b"H:1\x00fn\x00\x00") == (
        b"H:1",
        b"fn",
        None,
        b"",
    )
    assert p.parse_assignment(constants.JOB_ASSIGN, b"H:2\x00fn\x00x\x00y") == (
        b"H:2",
        b"fn",
        None,
        b"x\x00y",
    )
    with pytest.raises(RemoteProtocolError):
        p.parse_assignment(constants.JOB_ASSIGN_UNIQ, b"H:1\x00fn")


def test_can_do_packet() -> None:
    assert p.can_do_packet(b"f", None) == (constants.CAN_DO, b"f")
    assert p.can_do_packet(b"f", 0) == (constants.CAN_DO, b"f")
    assert p.can_do_packet(b"f", 30) == (constants.CAN_DO_TIMEOUT, b"f\x0030")
    assert p.can_do_packet(b"f", b"5") == (constants.CAN_DO_TIMEOUT, b"f\x005")
    assert p.work_payload(b"H:1", b"data") == b"H:1\x00data"
    assert p.work_payload(b"H:1", None) == b"H:1"
    assert p.status_data(1, b"4") == b"1\x004"


def test_greeting() -> None:
    functions = [FunctionRecord(b"f"), FunctionRecord(b"g", 5)]
    assert p.greeting(b"w1", functions) == [
        (constants.SET_CLIENT_ID, b"w1"),
        (constants.CAN_DO, b"f"),
        (constants.CAN_DO_TIMEOUT, b"g\x005"),
    ]
    assert p.greeting(None, []) == [(constants.SET_CLIENT_ID, b"")]
