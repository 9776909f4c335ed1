"""The server's record of one job (kept for imports; it lives in :mod:`gear.server.model`)."""

from gear.server.model import DONE, PRIORITY_INDEX, QUEUED, RUNNING, SCHEDULED, ServerJob

__all__ = ["ServerJob", "QUEUED", "RUNNING", "SCHEDULED", "DONE", "PRIORITY_INDEX"]
