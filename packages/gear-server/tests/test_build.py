"""Which build is imported (compiled or pure), and that it runs as gear 0.16 code expects.

scripts/check runs the whole suite twice, with ``GEAR_EXPECT_BUILD`` set to
``compiled`` (mypyc wheels) and to ``pure`` (the sdists installed with no C
compiler); the editable development install is pure.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os

import pytest

import gear
from fixtures.geard import RawGearman, run_job
from fixtures.servers import LOOPBACK
from gear.server import _build
from gear.server.engine import Engine
from gear.server.handlers import Handlers
from gear.server.model import Session

EXPECTED = os.environ.get("GEAR_EXPECT_BUILD", "pure")


def test_the_expected_build_is_imported() -> None:
    assert EXPECTED in ("compiled", "pure")
    assert _build.BUILD == EXPECTED
    extension = gear.server.engine.__file__.endswith(".so")
    assert extension is (EXPECTED == "compiled"), gear.server.engine.__file__
    expected = list(_build.COMPILED_MODULES) if EXPECTED == "compiled" else []
    assert _build.compiled_modules() == expected


@pytest.mark.parametrize(
    "name",
    ["gear.server.server", "gear.server.transport", "gear.server.model", "gear.packet",
     "gear.connection", "gear.client.client", "gear.worker.worker", "gear.client.job"],
)  # fmt: skip
def test_the_classes_gear_016_code_subclasses_stay_python(name: str) -> None:
    assert importlib.import_module(name).__file__.endswith(".py")  # type: ignore[union-attr]


def test_a_subclass_overrides_a_compiled_layer_and_patches_an_instance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A gear 0.16-style handleX override and a patched method both take effect."""
    seen: list[bytes] = []
    sent: list[bytes] = []

    class Tracing(gear.Server):
        def handleEchoReq(self, packet: gear.Packet) -> None:
            seen.append(packet.data)
            super().handleEchoReq(packet)

    assert issubclass(Tracing, Handlers) and issubclass(Tracing, Engine)
    with caplog.at_level(logging.INFO, logger="gear.Server"):
        server = Tracing(0, host=LOOPBACK, event_loop="asyncio")
    try:
        original = server._send

        def send(conn: Session, data: bytes) -> None:
            sent.append(data)
            original(conn, data)

        server._send = send  # type: ignore[method-assign]
        with RawGearman(server.port) as client, RawGearman(server.port) as worker:
            client.send(gear.constants.ECHO_REQ, b"ping")
            assert client.expect(gear.constants.ECHO_RES) == b"ping"
            run_job(client, worker, b"f", b"in", b"out")
        assert seen == [b"ping"]
        assert any(b"ping" in data for data in sent)
        assert isinstance(server.loop, asyncio.BaseEventLoop)
    finally:
        server.shutdown()
    assert "(asyncio event loop, %s build)" % EXPECTED in caplog.text


def test_the_default_loop_is_uvloop_and_asyncio_opts_out() -> None:
    server = gear.Server(0, host=LOOPBACK)
    try:
        assert type(server.loop).__module__.split(".")[0] == "uvloop"
    finally:
        server.shutdown()
    with pytest.raises(ValueError, match="event_loop must be one of auto, asyncio, uvloop"):
        gear.Server(0, host=LOOPBACK, event_loop="trio")
