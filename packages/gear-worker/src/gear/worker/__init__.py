"""gear-worker: the threaded :class:`gear.Worker`, the asyncio :class:`gear.AsyncWorker`."""

from gear.worker._version import __version__
from gear.worker.aio import AsyncWorker, AsyncWorkerJob, Handler, HandlerResult
from gear.worker.functions import current_job
from gear.worker.worker import (
    BinaryWorkerJob,
    FunctionRecord,
    TextWorker,
    TextWorkerJob,
    Worker,
    WorkerJob,
)

__all__ = [
    "__version__",
    "Worker",
    "TextWorker",
    "WorkerJob",
    "TextWorkerJob",
    "BinaryWorkerJob",
    "FunctionRecord",
    "AsyncWorker",
    "AsyncWorkerJob",
    "current_job",
    "Handler",
    "HandlerResult",
]
