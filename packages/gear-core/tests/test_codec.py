"""The sans-IO codec, driven with bytes only."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from gear import constants
from gear.codec import (
    AdminLine,
    Decoder,
    Frame,
    encode_packet,
    join_arguments,
    split_arguments,
)
from gear.errors import (
    BadMagicError,
    InvalidArgumentsError,
    LineTooLongError,
    LocalProtocolError,
    PacketTooLargeError,
    ProtocolError,
    RemoteProtocolError,
)

ALL_TYPES = sorted(constants.types)


def sample_payload(ptype: int) -> bytes:
    count = constants.ARGUMENT_COUNTS[ptype]
    return join_arguments(*[b"arg%d" % i for i in range(count)]) if count else b""


def test_every_packet_type_is_named_and_counted() -> None:
    assert set(constants.types) == set(constants.ARGUMENT_COUNTS)
    assert set(constants.types) == set(range(1, 43)) - {5}
    for code, name in constants.types.items():
        assert getattr(constants, name) == code
    for newer in (
        "GRAB_JOB_ALL",
        "JOB_ASSIGN_ALL",
        "GET_STATUS_UNIQUE",
        "STATUS_RES_UNIQUE",
        "SUBMIT_REDUCE_JOB",
        "SUBMIT_REDUCE_JOB_BACKGROUND",
    ):
        assert newer in constants.types.values()


@pytest.mark.parametrize("ptype", ALL_TYPES, ids=[constants.types[t] for t in ALL_TYPES])
@pytest.mark.parametrize("magic", [constants.REQ, constants.RES])
def test_every_packet_type_round_trips(ptype: int, magic: bytes) -> None:
    payload = sample_payload(ptype)
    wire = encode_packet(magic, ptype, payload)
    assert wire[:4] == magic
    assert struct.unpack("!II", wire[4:12]) == (ptype, len(payload))
    assert Decoder().receive(wire) == [Frame(magic, ptype, payload)]
    count = constants.ARGUMENT_COUNTS[ptype]
    assert len(split_arguments(ptype, payload)) == count


def _stream() -> tuple[bytes, list[object]]:
    events: list[object] = []
    wire = b""
    for ptype in ALL_TYPES:
        payload = sample_payload(ptype)
        wire += encode_packet(constants.RES, ptype, payload)
        events.append(Frame(constants.RES, ptype, payload))
        if ptype % 5 == 0:
            line = b"func%d\t1\t0\t2\n" % ptype
            wire += line
            events.append(AdminLine(line))
    wire += b".\n"
    events.append(AdminLine(b".\n"))
    return wire, events


def test_stream_split_at_every_offset_decodes_the_same() -> None:
    wire, expected = _stream()
    for cut in range(len(wire) + 1):
        decoder = Decoder()
        got = decoder.receive(wire[:cut]) + decoder.receive(wire[cut:])
        assert got == expected, cut
        assert decoder.buffered == 0


def test_byte_at_a_time() -> None:
    wire, expected = _stream()
    decoder = Decoder()
    got: list[object] = []
    for i in range(len(wire)):
        got += decoder.receive(wire[i : i + 1])
    assert got == expected


def test_admin_replies_interleaved_with_packets() -> None:
    wire = (
        b"OK 1.0\n"
        + encode_packet(constants.RES, constants.NOOP)
        + b"fn\t0\t0\t1\r\n.\n"
        + encode_packet(constants.RES, constants.JOB_CREATED, b"H:1")
    )
    assert Decoder().receive(wire) == [
        AdminLine(b"OK 1.0\n"),
        Frame(constants.RES, constants.NOOP, b""),
        AdminLine(b"fn\t0\t0\t1\r\n"),
        AdminLine(b".\n"),
        Frame(constants.RES, constants.JOB_CREATED, b"H:1"),
    ]


def test_huge_declared_length_is_refused_from_the_header() -> None:
    decoder = Decoder()
    header = constants.REQ + struct.pack("!II", constants.SUBMIT_JOB, 0xFFFFFFFF)
    with pytest.raises(RemoteProtocolError, match="4294967295-byte payload"):
        decoder.receive(header)
    assert decoder.buffered == 0
    with pytest.raises(RemoteProtocolError):
        decoder.receive(b"more")


def test_configurable_packet_limit() -> None:
    decoder = Decoder(max_packet_size=10)
    assert decoder.receive(encode_packet(constants.REQ, constants.ECHO_REQ, b"x" * 10))
    with pytest.raises(RemoteProtocolError, match="limit of 10 bytes"):
        decoder.receive(encode_packet(constants.REQ, constants.ECHO_REQ, b"x" * 11))


def test_admin_line_limit_applies_before_the_newline_arrives() -> None:
    decoder = Decoder(max_admin_line=16)
    decoder.receive(b"status" + b" " * 9)
    with pytest.raises(RemoteProtocolError, match="admin line longer"):
        decoder.receive(b"x")


def test_bad_magic_is_refused_as_soon_as_it_is_visible() -> None:
    assert Decoder().receive(b"\x00RE") == []
    with pytest.raises(RemoteProtocolError, match="bad packet magic"):
        Decoder().receive(b"\x00RQ")
    with pytest.raises(RemoteProtocolError, match="bad packet magic"):
        Decoder().receive(b"\x00XYZ" + b"\x00" * 8)


def test_missing_arguments_are_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError, match="SUBMIT_JOB needs 3"):
        split_arguments(constants.SUBMIT_JOB, b"fn\x00unique")
    with pytest.raises(RemoteProtocolError, match="unknown packet type"):
        split_arguments(99, b"")
    assert split_arguments(constants.WORK_COMPLETE, b"H:1\x00a\x00b") == [b"H:1", b"a\x00b"]


def test_local_misuse_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        encode_packet(b"\x00XXX", constants.NOOP)
    with pytest.raises(LocalProtocolError):
        encode_packet(constants.REQ, 5)
    with pytest.raises(LocalProtocolError):
        join_arguments(b"a\x00b", b"c")
    assert join_arguments(b"a", b"b\x00c") == b"a\x00b\x00c"


def test_decoder_rejects_bad_limits() -> None:
    with pytest.raises(ValueError):
        Decoder(max_packet_size=-1)
    with pytest.raises(ValueError):
        Decoder(max_admin_line=0)


frames = st.builds(
    lambda magic, ptype, data: (magic, ptype, data),
    st.sampled_from([constants.REQ, constants.RES]),
    st.sampled_from(ALL_TYPES),
    st.binary(max_size=64),
)
lines = st.binary(max_size=40).map(
    lambda b: (b.replace(b"\n", b"").lstrip(b"\x00") or b"x") + b"\n"
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(frames, lines), max_size=20), st.lists(st.integers(0, 2000), max_size=8))
def test_any_stream_any_chunking(items: list[object], cuts: list[int]) -> None:
    wire = b""
    expected: list[object] = []
    for item in items:
        if isinstance(item, tuple):
            magic, ptype, data = item
            wire += encode_packet(magic, ptype, data)
            expected.append(Frame(magic, ptype, data))
        else:
            assert isinstance(item, bytes)
            wire += item
            expected.append(AdminLine(item))
    decoder = Decoder()
    by_callback = Decoder()
    got: list[object] = []
    called: list[object] = []
    start = 0
    for cut in [*sorted(c % (len(wire) + 1) for c in cuts), len(wire)]:
        got += decoder.receive(wire[start:cut])
        by_callback.process(
            bytearray(wire[start:cut]),
            lambda magic, ptype, data: called.append(Frame(magic, ptype, data)),
            lambda line: called.append(AdminLine(line)),
        )
        start = max(start, cut)
    assert got == expected
    assert called == expected
    assert all(type(event[-1]) is bytes for event in called)
    assert decoder.buffered == by_callback.buffered == 0


def test_process_keeps_the_rest_when_a_callback_raises() -> None:
    wire = b"".join(encode_packet(constants.REQ, constants.ECHO_REQ, b"%d" % i) for i in range(3))
    decoder = Decoder()
    seen: list[bytes] = []

    def on_frame(magic: bytes, ptype: int, data: bytes) -> None:
        seen.append(data)
        if data == b"1":
            raise KeyError("handler bug")

    with pytest.raises(KeyError):
        decoder.process(wire + b"sta", on_frame, seen.append)
    assert seen == [b"0", b"1"]
    assert decoder.pending() == encode_packet(constants.REQ, constants.ECHO_REQ, b"2") + b"sta"
    decoder.process(b"tus\n", on_frame, seen.append)
    assert seen == [b"0", b"1", b"2", b"status\n"]
    assert decoder.buffered == 0


def test_process_large_packet_in_many_chunks() -> None:
    payload = bytes(range(256)) * 4096
    wire = encode_packet(constants.RES, constants.WORK_DATA, payload)
    decoder = Decoder()
    frames: list[Frame] = []
    for offset in range(0, len(wire), 1000):
        decoder.process(wire[offset : offset + 1000], lambda *f: frames.append(Frame(*f)), print)
    assert frames == [Frame(constants.RES, constants.WORK_DATA, payload)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 64))
def test_random_bytes_only_raise_protocol_errors_and_stay_bounded(data: bytes, chunk: int) -> None:
    decoder = Decoder(max_packet_size=128, max_admin_line=64)
    try:
        for i in range(0, len(data), chunk):
            decoder.receive(data[i : i + chunk])
            assert decoder.buffered <= 128 + 12
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_streams_only_raise_protocol_errors(data: st.DataObject) -> None:
    wire, _ = _stream()
    mutated = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    decoder = Decoder(max_packet_size=256, max_admin_line=128)
    try:
        decoder.receive(bytes(mutated))
        assert decoder.buffered <= 256 + 12
    except ProtocolError:
        pass


@pytest.mark.parametrize(
    ("chunks", "error", "code"),
    [
        ([b"\x00XYZ" + b"\x00" * 8], BadMagicError, "BAD_MAGIC"),
        ([b"\x00RQ"], BadMagicError, "BAD_MAGIC"),
        (
            [constants.REQ + struct.pack("!II", constants.SUBMIT_JOB, 0xFFFFFFFF)],
            PacketTooLargeError,
            "PACKET_TOO_LARGE",
        ),
        ([b"status" + b" " * 20000, b" " * 60000], LineTooLongError, "LINE_TOO_LONG"),
    ],
)
def test_decoder_errors_are_typed_with_a_code(
    chunks: list[bytes], error: type[RemoteProtocolError], code: str
) -> None:
    decoder = Decoder()
    with pytest.raises(error) as caught:
        for chunk in chunks:
            decoder.receive(chunk)
    assert caught.value.code == code
    with pytest.raises(error):
        decoder.receive(b"")


def test_missing_arguments_have_the_invalid_arguments_code() -> None:
    with pytest.raises(InvalidArgumentsError) as caught:
        split_arguments(constants.SUBMIT_JOB, b"fn")
    assert caught.value.code == "INVALID_ARGUMENTS"
