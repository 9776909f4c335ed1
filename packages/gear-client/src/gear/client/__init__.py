"""gear-client: the threaded :class:`gear.Client`, the asyncio :class:`gear.AsyncClient`."""

from gear.client._version import __version__
from gear.client.aio import AsyncClient, AsyncJob, Priority, WorkUpdate
from gear.client.client import Client
from gear.client.job import BinaryJob, Job, TextJob

__all__ = [
    "__version__",
    "Client",
    "Job",
    "TextJob",
    "BinaryJob",
    "AsyncClient",
    "AsyncJob",
    "WorkUpdate",
    "Priority",
]
