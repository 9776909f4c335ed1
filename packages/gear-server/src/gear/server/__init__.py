"""gear-server: geard, an asyncio Gearman job server.

``gear.Server`` and ``gear.ServerJob`` are the public names (also reachable
through the ``gear`` facade); :func:`serve` runs a server inside a running
asyncio loop. The loop-bound classes are imported on first use, so the
engine's modules (:mod:`gear.server.engine` and friends) import without
asyncio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gear.server._version import __version__
from gear.server.model import ServerJob
from gear.server.store import MemoryQueueStore, QueueStore, StoredJob

if TYPE_CHECKING:
    from gear.server.server import GeardConnection, Server, serve

__all__ = [
    "__version__",
    "Server",
    "ServerJob",
    "GeardConnection",
    "QueueStore",
    "MemoryQueueStore",
    "StoredJob",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name in ("Server", "GeardConnection", "serve"):
        from gear.server import server

        return getattr(server, name)
    raise AttributeError("module 'gear.server' has no attribute %r" % name)
