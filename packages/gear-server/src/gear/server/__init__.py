"""gear-server: geard, an asyncio Gearman job server.

``gear.Server`` and ``gear.ServerJob`` are the public names (also reachable
through the ``gear`` facade).
"""

from gear.server._version import __version__
from gear.server.job import ServerJob
from gear.server.server import GeardConnection, Server
from gear.server.store import MemoryQueueStore, QueueStore, StoredJob

__all__ = [
    "__version__",
    "Server",
    "ServerJob",
    "GeardConnection",
    "QueueStore",
    "MemoryQueueStore",
    "StoredJob",
]
