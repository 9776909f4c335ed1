"""The client's request tracker (gear.client.tracker), driven with ERROR payloads and
request lists: no sockets, no threads."""

from __future__ import annotations

from typing import Any

from gear.client.tracker import (
    OPTION,
    SUBMIT,
    RequestTracker,
    ServerError,
    SubmitFailover,
    parse_error,
)


def tracker(*requests: tuple[str, str]) -> RequestTracker[tuple[str, str]]:
    return RequestTracker(list(requests), lambda r: r[0])


def test_parse_error_splits_code_and_text() -> None:
    assert parse_error(b"QUEUE_FULL\x00Job queue is full\x00") == ServerError(
        "QUEUE_FULL", "Job queue is full"
    )
    assert str(parse_error(bytearray(b"ERR\x00bad \xff"))) == "ERR bad \ufffd"
    assert parse_error(b"NO_TEXT") == ServerError("NO_TEXT", "")


def test_a_reply_answers_the_oldest_request_of_its_kind() -> None:
    t = tracker((OPTION, "stale"), (SUBMIT, "a"), (SUBMIT, "b"))
    assert t.answer(SUBMIT) == (SUBMIT, "a")  # the unanswered option is skipped
    assert t.answer(SUBMIT) == (SUBMIT, "b")
    assert t.answer(SUBMIT) is None
    assert t.answer(OPTION) == (OPTION, "stale")
    assert len(t) == 0


def test_an_error_answers_the_oldest_request_of_any_kind() -> None:
    t = tracker((SUBMIT, "a"), (OPTION, "o"))
    assert t.error() == (SUBMIT, "a")
    assert t.error() == (OPTION, "o")
    assert t.error() is None


def test_discard_and_drain_keep_the_others_in_order() -> None:
    t = tracker((SUBMIT, "a"), (SUBMIT, "b"), (OPTION, "o"))
    t.discard((SUBMIT, "a"))
    t.discard((SUBMIT, "never-sent"))
    t.sent((SUBMIT, "c"))
    assert t.drain() == [(SUBMIT, "b"), (OPTION, "o"), (SUBMIT, "c")]
    assert len(t) == 0


def test_the_tracker_works_on_the_callers_own_list() -> None:
    pending: list[Any] = []
    RequestTracker(pending, type).sent("x")
    assert pending == ["x"]


def test_failover_tries_each_active_server_once_round_robin() -> None:
    servers = ["s1", "s2", "s3"]
    turn = iter(["s2", "s2", "s3", "s1", "s3", "s2"])
    failover: SubmitFailover[str] = SubmitFailover()
    tried = []
    while (conn := failover.next(lambda: servers, lambda: next(turn))) is not None:
        tried.append(conn)
        assert len(tried) <= 3
    assert tried == ["s2", "s3", "s1"]


def test_failover_stops_when_the_active_servers_shrink() -> None:
    active = ["s1", "s2"]
    failover: SubmitFailover[str] = SubmitFailover()
    assert failover.next(lambda: active, lambda: "s1") == "s1"
    active.remove("s2")
    assert failover.next(lambda: active, lambda: "s1") is None


def test_the_failure_message_names_the_last_server_error() -> None:
    failover: SubmitFailover[str] = SubmitFailover()
    assert failover.next(lambda: ["a", "b"], lambda: "a") == "a"
    failover.refused("127.0.0.1:1", parse_error(b"ERR_ONE\x00first"))
    assert failover.next(lambda: ["a", "b"], lambda: "b") == "b"
    failover.refused("127.0.0.1:2", parse_error(b"ERR_TWO\x00second"))
    assert failover.next(lambda: ["a", "b"], lambda: "a") is None
    assert failover.message(lambda: "unused") == (
        "Unable to submit job to any connected servers"
        " (last error, from 127.0.0.1:2: ERR_TWO second)"
    )


def test_a_dropped_server_keeps_the_earlier_error_and_none_connected_says_why() -> None:
    failover: SubmitFailover[str] = SubmitFailover()
    failover.next(lambda: ["a"], lambda: "a")
    failover.refused("h:1", parse_error(b"E\x00x"))
    failover.refused("h:1", None)
    assert failover.message(lambda: "unused").endswith("(last error, from h:1: E x)")
    lonely: SubmitFailover[str] = SubmitFailover()
    assert lonely.next(lambda: [], lambda: "never") is None
    assert lonely.message(lambda: "127.0.0.1:1: refused") == (
        "Unable to submit job to any connected servers: no server is connected"
        " (127.0.0.1:1: refused)"
    )


def test_a_reply_stream_from_the_wire() -> None:
    """Bytes as a server sends them, decoded by gear-core's codec: the tracker
    gives each reply to the right request even with an unanswered option first."""
    from gear import constants as C
    from gear.codec import Decoder, Frame, encode_packet

    wire = b"".join(
        [
            encode_packet(C.RES, C.JOB_CREATED, b"H:1"),
            encode_packet(C.RES, C.ERROR, b"QUEUE_FULL\x00Job queue is full for function f"),
            encode_packet(C.RES, C.OPTION_RES, b"exceptions"),
        ]
    )
    t = tracker((OPTION, "unanswered"), (SUBMIT, "first"), (SUBMIT, "second"))
    seen: list[tuple[Any, Any]] = []
    decoder = Decoder()
    frames: list[Frame] = []
    for offset in range(0, len(wire), 5):  # in pieces, as a socket may deliver it
        frames.extend(e for e in decoder.receive(wire[offset : offset + 5]) if isinstance(e, Frame))
    for frame in frames:
        if frame.ptype == C.JOB_CREATED:
            seen.append((t.answer(SUBMIT), frame.data))
        elif frame.ptype == C.ERROR:
            seen.append((t.error(), parse_error(frame.data)))
        elif frame.ptype == C.OPTION_RES:
            seen.append((t.answer(OPTION), frame.data))
    assert seen == [
        ((SUBMIT, "first"), b"H:1"),
        # ERROR names no request: it answers the oldest pending one of any kind
        ((OPTION, "unanswered"), ServerError("QUEUE_FULL", "Job queue is full for function f")),
        (None, b"exceptions"),  # an OPTION_RES nobody is waiting for any more
    ]
    assert t.drain() == [(SUBMIT, "second")]
