"""Packet, admin requests, tasks and job bases: the gear 0.16 surface."""

from __future__ import annotations

import pytest

import gear
from gear import constants


def test_packet_validation_and_binary_form() -> None:
    with pytest.raises(TypeError):
        gear.Packet("\x00REQ", constants.NOOP, b"")  # type: ignore[arg-type]
    with pytest.raises(gear.InvalidDataError):
        gear.Packet(b"XREQ", constants.NOOP, b"")
    with pytest.raises(TypeError):
        gear.Packet(constants.REQ, constants.NOOP, "text")  # type: ignore[arg-type]
    p = gear.Packet(constants.REQ, constants.SUBMIT_JOB, b"fn\x00u\x00args")
    wire = p.toBinary()
    assert isinstance(wire, bytearray)
    assert bytes(wire) == b"\x00REQ\x00\x00\x00\x07\x00\x00\x00\x09fn\x00u\x00args"
    assert p == gear.Packet(constants.REQ, constants.SUBMIT_JOB, bytearray(b"fn\x00u\x00args"))
    assert p != gear.Packet(constants.RES, constants.SUBMIT_JOB, b"fn\x00u\x00args")


def test_packet_arguments_and_repr() -> None:
    p = gear.Packet(constants.RES, constants.WORK_COMPLETE, b"H:1\x00a\x00b")
    assert p.getArgument(0) == b"H:1"
    assert p.getArgument(1) == b"a"
    assert p.getArgument(1, last=True) == b"a\x00b"
    assert repr(p).endswith("type: WORK_COMPLETE handle: H:1>")
    s = gear.Packet(constants.REQ, constants.SUBMIT_JOB_BG, b"fn\x00u1\x00x")
    assert repr(s).endswith("type: SUBMIT_JOB_BG function: fn unique: u1>")
    assert repr(gear.Packet(constants.REQ, 99, b"")).endswith("type: UNKNOWN>")
    assert repr(p).startswith("<gear.Packet 0x")


def test_packet_get_job_uses_the_connection() -> None:
    conn = gear.Connection("localhost", 4730)
    job = object()
    conn.related_jobs[b"H:1"] = job
    assert gear.Packet(constants.RES, constants.WORK_DATA, b"H:1\x00x", conn).getJob() is job
    with pytest.raises(gear.UnknownJobError):
        gear.Packet(constants.RES, constants.WORK_DATA, b"H:2\x00x", conn).getJob()


def test_packet_takes_extra_attributes() -> None:
    """gear 0.16 code tags packets and stubs ``getJob``; slots must not refuse it."""
    p = gear.Packet(constants.RES, constants.WORK_DATA, b"H:1\x00x")
    job = object()
    p.getJob = lambda: job  # type: ignore[method-assign]
    p.note = "seen"  # type: ignore[attr-defined]
    assert p.getJob() is job and p.note == "seen"  # type: ignore[attr-defined]
    assert p == gear.Packet(constants.RES, constants.WORK_DATA, b"H:1\x00x")


def test_admin_request_base_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        gear.AdminRequest()


@pytest.mark.parametrize(
    ("request_", "command"),
    [
        (gear.StatusAdminRequest(), b"status\n"),
        (gear.ShowJobsAdminRequest(), b"show jobs\n"),
        (gear.ShowUniqueJobsAdminRequest(), b"show unique jobs\n"),
        (gear.CancelJobAdminRequest("H:1"), b"cancel job H:1\n"),
        (gear.VersionAdminRequest(), b"version\n"),
        (gear.WorkersAdminRequest(), b"workers\n"),
    ],
)
def test_admin_commands(request_: gear.AdminRequest, command: bytes) -> None:
    assert request_.getCommand() == command
    assert isinstance(request_.arguments, tuple)
    assert repr(request_).endswith("command: %s>" % command.decode().strip().split(" H:")[0])


def test_multi_line_reply_completion() -> None:
    r = gear.StatusAdminRequest()
    reply = b"fn\t1\t0\t1\n.\nrest"
    for i in range(len(b"fn\t1\t0\t1\n.")):
        assert r.isComplete(reply[:i]) == (False, None)
    assert r.isComplete(reply) == (True, b"rest")
    assert r.response == b"fn\t1\t0\t1\n.\n"
    empty = gear.StatusAdminRequest()
    assert empty.isComplete(b".\n") == (True, b"")
    crlf = gear.WorkersAdminRequest()
    assert crlf.isComplete(b"1 ::1 - : \r\n.\r\n") == (True, b"")


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_empty_listing_completes_after_partial_reads(newline: bytes) -> None:
    r = gear.StatusAdminRequest()
    assert r.isComplete(b"") == (False, None)
    assert r.isComplete(b".") == (False, None)
    if newline == b"\r\n":
        assert r.isComplete(b".\r") == (False, None)
    assert r.isComplete(b"." + newline + b"next") == (True, b"next")
    assert r.response == b"." + newline


def test_err_line_completes_after_partial_reads() -> None:
    r = gear.WorkersAdminRequest()
    for part in (b"", b"E", b"ERR", b"ERR UNKNOWN_COMMAND"):
        assert r.isComplete(part) == (False, None)
    assert r.isComplete(b"ERR UNKNOWN_COMMAND x\n") == (True, b"")


def test_err_line_completes_a_multi_line_request() -> None:
    r = gear.ShowJobsAdminRequest()
    assert r.isComplete(b"ERR UNKNOWN_COMMAND show\n") == (True, b"")
    assert r.response == b"ERR UNKNOWN_COMMAND show\n"


def test_single_line_reply() -> None:
    r = gear.VersionAdminRequest()
    assert r.isComplete(b"OK 1.1") == (False, None)
    assert r.isComplete(b"OK 1.1\nmore") == (True, b"more")
    assert r.response == b"OK 1.1\n"


def test_server_admin_request_takes_one_line() -> None:
    conn = gear.Connection("localhost", 4730)
    r = gear.ServerAdminRequest(conn)  # type: ignore[arg-type]
    assert r.isComplete(b"cancel job H:1\r\nstatus\n") == (True, b"status\n")
    assert r.command == b"cancel job H:1"


def test_tasks_wait() -> None:
    t = gear.SubmitJobTask(job=None)
    assert t.wait(0.01) is False
    t.setComplete()
    assert t.wait(0) is True
    assert isinstance(gear.OptionReqTask(), gear.Task)


def test_text_list_decodes_every_way_in() -> None:
    tl = gear.TextList()
    tl.append(b"a")
    tl.insert(0, b"b")
    tl.extend([b"c", "d"])
    assert tl == ["b", "a", "c", "d"]


def test_convert_to_bytes() -> None:
    assert gear.convert_to_bytes("é") == "é".encode()
    assert gear.convert_to_bytes(b"x") == b"x"
    assert gear.convert_to_bytes(None) is None


def test_base_job_types() -> None:
    job = gear.BaseJob("fn", b"args", "u1")
    assert job.name == "fn" and job.binary_name == b"fn"
    assert job.unique == b"u1" and job.binary_unique == b"u1"
    assert job.arguments == b"args"
    with pytest.raises(TypeError, match="bytes or bytearray"):
        gear.BaseJob("fn", "text")  # type: ignore[arg-type]
    assert repr(job).endswith("handle: None name: fn unique: b'u1'>")


def test_exception_hierarchy() -> None:
    for name in (
        "ConnectionError",
        "InvalidDataError",
        "ConfigurationError",
        "NoConnectedServersError",
        "UnknownJobError",
        "InterruptedError",
        "TimeoutError",
        "GearmanError",
        "DisconnectError",
        "RetryIOError",
    ):
        cls = getattr(gear, name)
        assert issubclass(cls, Exception)
        assert cls.__module__ == "gear"
    assert issubclass(gear.TimeoutError, TimeoutError)
    assert issubclass(gear.InterruptedError, InterruptedError)
    from gear.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert not issubclass(RemoteProtocolError, LocalProtocolError)


def test_tls_helpers() -> None:
    import ssl

    assert gear.best_tls_version() == ssl.PROTOCOL_TLS
    ctx = gear.create_ssl_context()
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version in (ssl.TLSVersion.MAXIMUM_SUPPORTED, ssl.TLSVersion.TLSv1_3)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert gear.create_ssl_context(server_side=True).verify_mode == ssl.CERT_REQUIRED
