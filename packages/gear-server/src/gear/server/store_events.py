"""What the queue store hands back to the engine: restored, adopted and lost jobs.

At start the server queues the jobs a store kept (:meth:`_restore`). A
store shared by a cluster (:mod:`gear.server.postgres_store`) also speaks up
on its own through :class:`~gear.server.store.StoreListener`: jobs adopted
from a dead node, its own lease lost (forget the queued background jobs),
a new job coalesced with another node's. No I/O here either.
"""

from __future__ import annotations

from collections.abc import Iterable

from gear.server._compiled import mypyc_attr
from gear.server.engine import Engine
from gear.server.model import PRIORITY_INDEX, QUEUED, SCHEDULED, ServerJob
from gear.server.store import QueueStore, StoredJob

__all__ = ["StoreEvents"]


@mypyc_attr(allow_interpreted_subclasses=True)
class StoreEvents(Engine):
    """The engine's side of :class:`~gear.server.store.StoreListener`."""

    def _restore(self, store: QueueStore) -> None:
        count = self._restore_jobs(store.load())
        if count:
            self.log.info("Restored %d background jobs from the queue store", count)

    def _restore_jobs(self, jobs: Iterable[StoredJob]) -> int:
        count = 0
        for stored in jobs:
            # New handles must not reuse a restored one's number.
            tail = stored.handle.rpartition(b":")[2]
            if tail.isdigit() and int(tail) > self.max_handle:
                self.max_handle = int(tail)
            if stored.handle in self.jobs:
                continue
            fq = self._function(stored.name)
            job = ServerJob(stored.handle, stored.name, stored.arguments, None, stored.unique)
            job.priority = PRIORITY_INDEX.get(stored.precedence, 1)
            job.retries = stored.attempts
            job.function = fq
            self.jobs[stored.handle] = job
            if job._unique:
                fq.uniques[job._unique] = job
            if stored.adopted:
                self.adopted.add(stored.handle)
            self._start_job(job, stored.when)
            count += 1
        return count

    # ------------------------------------------------------------------
    # what a shared store reports (gear.server.store.StoreListener)

    def store_prefix(self, prefix: bytes) -> None:
        self.handle_prefix = prefix

    def store_adopted(self, jobs: list[StoredJob]) -> None:
        count = self._restore_jobs(jobs)
        if count:
            self.log.info("Queued %d background jobs taken over from the queue store", count)

    def store_fenced(self) -> None:
        dropped = 0
        for job in list(self.jobs.values()):
            if job.background and job.state in (QUEUED, SCHEDULED):
                self._remove_waiting(job, store=False)
                dropped += 1
        self.adopted.clear()
        if dropped:
            self.log.warning(
                "Lease lost: dropped %d queued background jobs (another node may own them)",
                dropped,
            )

    def store_coalesced(self, handles: list[bytes]) -> None:
        for handle in handles:
            job = self.jobs.get(handle)
            if job is not None and job.background and job.state in (QUEUED, SCHEDULED):
                self._remove_waiting(job, store=False)
