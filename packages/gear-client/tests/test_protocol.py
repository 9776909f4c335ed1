"""The client's I/O-free protocol pieces, fed the replies real servers send."""

from __future__ import annotations

import pytest

from gear import constants as C
from gear.client import protocol
from gear.errors import RemoteProtocolError

PROBE_ANSWER = protocol.EXCEPTIONS_PROBE + b"\x000\x000\x000\x000"


def test_exceptions_request_sends_the_option_then_the_probe() -> None:
    assert protocol.ExceptionsRequest.packets == (
        (C.OPTION_REQ, b"exceptions"),
        (C.GET_STATUS, protocol.EXCEPTIONS_PROBE),
    )


def test_exceptions_accepted_as_gearmand_and_geard_answer() -> None:
    request = protocol.ExceptionsRequest()
    assert request.feed(C.OPTION_RES, b"exceptions") is False
    assert request.feed(C.STATUS_RES, PROBE_ANSWER) is True
    assert request.accepted is True


def test_exceptions_ignored_as_gear016_server_does() -> None:
    request = protocol.ExceptionsRequest()
    assert request.feed(C.STATUS_RES, protocol.EXCEPTIONS_PROBE + b"\x000\x000\x00\x00") is True
    assert request.accepted is None


def test_exceptions_refused_then_probe_answered_or_refused() -> None:
    request = protocol.ExceptionsRequest()
    assert request.feed(C.ERROR, b"UNKNOWN_OPTION\x00no") is False
    assert request.feed(C.STATUS_RES, PROBE_ANSWER) is True
    assert request.accepted is False
    both = protocol.ExceptionsRequest()
    assert both.feed(C.ERROR, b"UNKNOWN_OPTION\x00no") is False
    assert both.feed(C.ERROR, b"UNKNOWN_COMMAND\x00no") is True
    assert both.accepted is False


def test_other_packets_are_skipped_but_bounded() -> None:
    request = protocol.ExceptionsRequest()
    assert request.feed(C.STATUS_RES, b"H:other\x000\x000\x000\x000") is False
    for _ in range(request.MAX_REPLIES - 2):
        assert request.feed(C.NOOP, b"") is False
    with pytest.raises(RemoteProtocolError):
        request.feed(C.NOOP, b"")
