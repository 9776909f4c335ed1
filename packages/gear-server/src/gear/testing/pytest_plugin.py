"""pytest fixtures for code that uses gear, loaded automatically with gear-server.

* ``gear_server``: a :class:`gear.testing.InProcessServer` running for the
  test on a free port of 127.0.0.1.
* ``gear_client``: a :class:`gear.AsyncClient` with ``gear_server`` added.
* ``gear_worker``: a :class:`gear.AsyncWorker` with ``gear_server`` added.

The fixtures are plain functions, not coroutines, so they work with
pytest-asyncio, anyio's plugin or ``asyncio.run`` alike: the client and
worker connect when the test enters them (``async with gear_client``,
``gear.testing.serving(gear_worker)``) on the test's own event loop. Disable
the plugin with ``-p no:gear``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from gear import testing

if TYPE_CHECKING:
    from gear.client.aio import AsyncClient
    from gear.worker.aio import AsyncWorker


@pytest.fixture
def gear_server() -> Iterator[testing.InProcessServer]:
    """A geard on 127.0.0.1 for this test, stopped at its end."""
    with testing.server() as srv:
        yield srv


@pytest.fixture
def gear_client(gear_server: testing.InProcessServer) -> AsyncClient:
    """An :class:`gear.AsyncClient` for ``gear_server``; enter it with ``async with``."""
    from gear.client.aio import AsyncClient

    client = AsyncClient("gear-test-client")
    client.add_server(gear_server.host, gear_server.port)
    return client


@pytest.fixture
def gear_worker(gear_server: testing.InProcessServer) -> AsyncWorker:
    """An :class:`gear.AsyncWorker` for ``gear_server``; run it with ``gear.testing.serving``."""
    from gear.worker.aio import AsyncWorker

    worker = AsyncWorker("gear-test-worker")
    worker.add_server(gear_server.host, gear_server.port)
    return worker
