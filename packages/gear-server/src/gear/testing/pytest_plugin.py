"""pytest fixtures for code that uses gear, loaded automatically with gear-server.

* ``gear_server``: a :class:`gear.testing.InProcessServer` running for the
  test on a free port of 127.0.0.1.
* ``gear_client``: a :class:`gear.AsyncClient` for ``gear_server``.
* ``gear_worker``: a :class:`gear.AsyncWorker` for ``gear_server``.
* ``gear_codec``: the ``codec=`` of both; ``None`` (bytes) unless a
  ``conftest.py`` overrides it, e.g. to return :class:`gear.JSONCodec`.

The fixtures are plain functions, not coroutines, so they work with
pytest-asyncio, anyio's plugin or ``asyncio.run`` alike: the client and
worker connect when the test enters them (``async with gear_client``,
``gear.testing.serving(gear_worker)``) on the test's own event loop. Disable
the plugin with ``-p no:gear``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from gear import testing
from gear.payload import Codec

if TYPE_CHECKING:
    from gear.client.aio import AsyncClient
    from gear.worker.aio import AsyncWorker


@pytest.fixture
def gear_server() -> Iterator[testing.InProcessServer]:
    """A geard on 127.0.0.1 for this test, stopped at its end."""
    with testing.server() as srv:
        yield srv


@pytest.fixture
def gear_codec() -> Codec | None:
    """The payload codec of ``gear_client`` and ``gear_worker``: override to pick one."""
    return None


@pytest.fixture
def gear_client(gear_server: testing.InProcessServer, gear_codec: Codec | None) -> AsyncClient[Any]:
    """A :class:`gear.AsyncClient` for ``gear_server``; ``async with`` connects it."""
    from gear.client.aio import AsyncClient

    return AsyncClient("gear-test-client", [gear_server.address], codec=gear_codec)


@pytest.fixture
def gear_worker(gear_server: testing.InProcessServer, gear_codec: Codec | None) -> AsyncWorker:
    """A :class:`gear.AsyncWorker` for ``gear_server``; serve it with ``gear.testing.serving``."""
    from gear.worker.aio import AsyncWorker

    return AsyncWorker("gear-test-worker", [gear_server.address], codec=gear_codec)
