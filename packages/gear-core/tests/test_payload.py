"""Payload codecs and the structured WORK_EXCEPTION payload (gear.payload)."""

from __future__ import annotations

import pickle
import sys
from typing import Any

import pytest
from hypothesis import given, strategies as st

import gear
from gear.payload import exception_payload, parse_exception_payload

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
msgpack_ints = st.integers(-(2**63), 2**64 - 1)
msgpack_values = st.recursive(
    st.none() | st.booleans() | msgpack_ints | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children) | st.dictionaries(st.text() | msgpack_ints, children),
    max_leaves=20,
)


@given(json_values)
def test_json_round_trips_every_json_value(value: Any) -> None:
    codec = gear.JSONCodec()
    assert codec.decode(codec.encode(value)) == value


@given(msgpack_values)
def test_msgpack_round_trips_bytes_str_and_non_string_keys(value: Any) -> None:
    codec = gear.MsgpackCodec()
    assert codec.decode(codec.encode(value)) == value


def test_json_is_compact_utf8() -> None:
    assert (
        gear.JSONCodec().encode({"name": "Zoë", "n": [1, 2]}) == '{"name":"Zoë","n":[1,2]}'.encode()
    )
    assert gear.JSONCodec(ensure_ascii=True).encode("Zoë") == b'"Zo\\u00eb"'


def test_json_default_serialises_what_json_lacks() -> None:
    import datetime

    day = datetime.date(2026, 12, 1)
    with pytest.raises(TypeError):
        gear.JSONCodec().encode(day)
    assert gear.JSONCodec(default=str).encode({"day": day}) == b'{"day":"2026-12-01"}'


@pytest.mark.parametrize("codec", [gear.JSONCodec(), gear.MsgpackCodec()], ids=repr)
def test_empty_payload_decodes_to_none(codec: gear.Codec) -> None:
    assert codec.decode(b"") is None


def test_bytes_do_not_survive_json_but_do_survive_msgpack() -> None:
    with pytest.raises(TypeError):
        gear.JSONCodec().encode(b"\x00\xff")
    assert gear.MsgpackCodec().decode(gear.MsgpackCodec().encode(b"\x00\xff")) == b"\x00\xff"


@pytest.mark.parametrize(
    "data", [b"{", b"\xff\xfe", b'{"a": 1} trailing', b"NaN-ish", b"\x00"], ids=repr
)
def test_bad_json_is_invalid_data(data: bytes) -> None:
    with pytest.raises(gear.InvalidDataError, match="not valid JSON"):
        gear.JSONCodec().decode(data)


@given(st.binary(min_size=1, max_size=64))
def test_any_bytes_decode_or_raise_invalid_data(data: bytes) -> None:
    """Whatever a peer sends, decoding gives a value or InvalidDataError, never another error."""
    for codec in (gear.JSONCodec(), gear.MsgpackCodec()):
        try:
            codec.decode(data)
        except gear.InvalidDataError:
            pass


def test_msgpack_truncated_and_trailing_data_are_invalid() -> None:
    good = gear.MsgpackCodec().encode({"a": [1, 2, 3]})
    for data in (good[:-1], good + b"\x01", b"\xc1"):
        with pytest.raises(gear.InvalidDataError, match="not valid MessagePack"):
            gear.MsgpackCodec().decode(data)


def test_msgpack_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(ImportError, match=r"pip install gear-core\[msgpack\]"):
        gear.MsgpackCodec()


def test_codecs_satisfy_the_protocol() -> None:
    class Upper:
        def encode(self, obj: Any) -> bytes:
            return str(obj).upper().encode()

        def decode(self, data: bytes) -> Any:
            return data.decode()

    for codec in (gear.JSONCodec(), gear.MsgpackCodec(), Upper()):
        assert isinstance(codec, gear.Codec)
    assert not isinstance(object(), gear.Codec)


class QuotaExceeded(Exception):
    pass


def test_exception_payload_names_builtin_and_qualified_types() -> None:
    assert exception_payload(ValueError("width must be positive")) == (
        b'{"type":"ValueError","message":"width must be positive"}'
    )
    payload = exception_payload(QuotaExceeded("disk full: ünïcode"))
    assert parse_exception_payload(payload) == (
        "%s.QuotaExceeded" % __name__,
        "disk full: ünïcode",
    )
    assert parse_exception_payload(exception_payload(gear.TimeoutError("late"))) == (
        "gear.TimeoutError",
        "late",
    )


def test_exception_payload_survives_an_unprintable_exception() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    type_name, message = parse_exception_payload(exception_payload(Broken())) or ("", "")
    assert type_name.endswith("Broken") and "Broken" in message


@pytest.mark.parametrize(
    "payload",
    [
        b"ValueError: bad",  # gear's text form, and what most workers send
        b"",
        b"{not json",
        b"[1, 2]",
        b'{"type": "X"}',
        b'{"type": 1, "message": "m"}',
        b'{"type": "X", "message": null}',
        b"\xff{",
    ],
)
def test_other_exception_payloads_are_not_structured(payload: bytes) -> None:
    assert parse_exception_payload(payload) is None


def test_structured_payload_may_carry_more_keys() -> None:
    data = b'{"type": "KeyError", "message": "\'k\'", "traceback": "..."}'
    assert parse_exception_payload(data) == ("KeyError", "'k'")


def test_remote_error_carries_type_message_and_payload() -> None:
    payload = exception_payload(KeyError("k"))
    err = gear.RemoteError("KeyError", "'k'", payload)
    assert isinstance(err, gear.errors.JobFailedError)
    assert (err.type_name, err.message, err.exception) == ("KeyError", "'k'", payload)
    assert str(err) == "KeyError: 'k'"
    assert str(gear.RemoteError("StopIteration", "")) == "StopIteration"
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.type_name, copy.message, copy.exception) == (
        gear.RemoteError,
        "KeyError",
        "'k'",
        payload,
    )
