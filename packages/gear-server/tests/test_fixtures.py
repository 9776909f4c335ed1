"""The shared ``geard`` fixtures other packages' tests rely on."""

from __future__ import annotations

from collections.abc import Callable

from fixtures.geard import Geard, RawGearman
from gear import constants as C


def test_geard_restart_keeps_port_and_empties_queues(geard: Geard) -> None:
    port = geard.port
    with RawGearman(port) as conn:
        conn.send(C.SUBMIT_JOB_BG, b"f\0\0x")
        conn.expect(C.JOB_CREATED)
    geard.restart()
    assert geard.port == port and geard.address == "127.0.0.1:%d" % port
    with RawGearman(port) as conn:
        assert conn.admin("status") == b".\n"
    geard.stop()
    geard.stop()


def test_factory_passes_server_options(geard_factory: Callable[..., Geard]) -> None:
    small = geard_factory(max_packet_size=16, server_id="small")
    assert small.server.max_packet_size == 16 and small.server.server_id == "small"
    with RawGearman(small.port) as conn:
        conn.send(C.ECHO_REQ, b"x" * 17)
        assert conn.expect(C.ERROR).startswith(b"PACKET_TOO_LARGE")
