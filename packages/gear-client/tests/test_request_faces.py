"""One behaviour on both faces for what the request tracker decides: a refused
submit names the server's ERROR, and an unanswered OPTION_REQ is logged, not
raised, and does not cost the connection. Against a real geard."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import gear
from fixtures.aio import T, client_for, run
from fixtures.geard import LOOPBACK, Geard


class OptionDeafServer(gear.Server):  # type: ignore[misc]
    """geard that ignores OPTION_REQ, as gear 0.16's server does."""

    def handleOptionReq(self, packet: Any) -> None:
        return None


@pytest.fixture
def deaf() -> Any:
    instance = Geard(OptionDeafServer(0, host=LOOPBACK))
    yield instance
    instance.stop()


REFUSED = (
    r"Unable to submit job.*\(last error, from 127\.0\.0\.1:\d+:"
    r" 0 Permission denied by ACL: invoke anything\)"
)


def test_threaded_refused_submit_names_the_server_error(geard_factory: Any, harness: Any) -> None:
    from gear.acl import ACL

    client = harness.client(geard_factory(acl=ACL()))
    with pytest.raises(gear.GearmanError, match=REFUSED):
        client.submitJob(gear.Job("anything", b""), timeout=T)
    assert len(client.active_connections) == 1


def test_async_refused_submit_names_the_server_error(geard_factory: Any) -> None:
    from gear.acl import ACL

    server = geard_factory(acl=ACL())

    async def main() -> None:
        async with client_for(server) as client:
            with pytest.raises(gear.GearmanError, match=REFUSED):
                await client.submit("anything", b"", timeout=T)
            assert len(client.active_connections) == 1

    run(main())


def test_threaded_unanswered_option_is_logged(
    deaf: Any, harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = harness.client(deaf)
    conn = client.getConnection()
    with caplog.at_level(logging.WARNING):
        assert client.setOption("some-option", timeout=0.2) is True
    assert "No reply to OPTION_REQ b'some-option'" in caplog.text
    assert client.active_connections == [conn]
    client.submitJob(gear.Job("nobody", b""), background=True, timeout=T)


def test_async_unanswered_option_is_logged(deaf: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with client_for(deaf) as client:
            with caplog.at_level(logging.WARNING):
                assert await client.set_option("some-option", timeout=0.2) is True
            assert "No reply to OPTION_REQ b'some-option'" in caplog.text
            assert len(client.active_connections) == 1
            job = await client.submit("nobody", b"", background=True, timeout=T)
            assert job.handle

    run(main())
