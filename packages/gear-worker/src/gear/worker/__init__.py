"""gear-worker: the threaded :class:`gear.Worker` and its jobs."""

from gear.worker._version import __version__
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
]
