"""What the queue store hands back to the engine: restored, adopted and lost jobs.

At start the server queues the jobs a store kept (:meth:`_restore`). A
store shared by a cluster (:mod:`gear.server.postgres_store`) also speaks up
on its own through :class:`~gear.server.store.StoreListener`: jobs adopted
from a dead node, its own lease lost (forget the queued background jobs),
a new job coalesced with another node's. No I/O here either.

A stored job may break rules that came after it was queued (an older
geard wrote it, or the operator lowered a limit): a control byte in its
function name, a unique id of ``.``. Such a job is queued all the same,
never dropped; listings print those fields escaped (:func:`listing_form`),
and the log names each one once. docs/explanation/security.rst says why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gear.errors import RemoteProtocolError
from gear.server._compiled import mypyc_attr
from gear.server.engine import Engine
from gear.server.model import PRIORITY_INDEX, QUEUED, SCHEDULED, ServerJob, check_field
from gear.server.store import QueueStore, StoredJob

__all__ = ["StoreEvents", "listing_form"]

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_NAMED_ONE_BY_ONE = 10
"""Stored fields that break today's rules logged one line each; then a count."""


def listing_form(value: bytes) -> bytes:
    """``value`` as a listing line may hold it: control bytes as ``\\xNN``, and
    the first byte so if it would make the line ``ERR ...`` or a lone ``.``."""
    text = _CONTROL.sub(lambda m: b"\\x%02x" % m.group()[0], value)
    if text.startswith(b"ERR ") or text == b".":
        text = b"\\x%02x" % text[0] + text[1:]
    return text


def _rule_broken(value: bytes, what: str, limit: int) -> str | None:
    """Why a peer sending ``value`` today would be refused; None if it would not."""
    try:
        check_field(value, what, limit)
    except RemoteProtocolError as e:
        return str(e)
    if what == "unique id" and value == b".":
        return "unique id '.' would end the show unique jobs listing"
    return None


@mypyc_attr(allow_interpreted_subclasses=True)
class StoreEvents(Engine):
    """The engine's side of :class:`~gear.server.store.StoreListener`."""

    listed_as: dict[bytes, bytes] | None = None
    """Stored function names and unique ids that today's rules refuse, each
    with the form listings print (None while there is none: listings then
    pay nothing). At most one entry per distinct stored value."""

    def _restore(self, store: QueueStore) -> None:
        count = self._restore_jobs(store.load())
        if count:
            self.log.info("Restored %d background jobs from the queue store", count)

    def _restore_jobs(self, jobs: Iterable[StoredJob]) -> int:
        count = 0
        broken = 0
        for stored in jobs:
            # New handles must not reuse a restored one's number.
            tail = stored.handle.rpartition(b":")[2]
            if tail.isdigit() and int(tail) > self.max_handle:
                self.max_handle = int(tail)
            if stored.handle in self.jobs:
                continue
            fq = self.function_queues.get(stored.name)
            if fq is None:  # a name already known passed this check (or was listed)
                broken += self._check_stored(
                    stored, stored.name, "function name", self.max_function_name, broken
                )
                fq = self._function(stored.name)
            if stored.unique:
                broken += self._check_stored(
                    stored, stored.unique, "unique id", self.max_unique_id, broken
                )
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
        if broken > _NAMED_ONE_BY_ONE:
            self.log.warning(
                "Queue store %s: %d more stored names or unique ids break today's rules "
                "(kept, listed escaped)",
                self._store_where(),
                broken - _NAMED_ONE_BY_ONE,
            )
        return count

    def _store_where(self) -> str:
        return self.queue_store.where if self.queue_store is not None else "in memory"

    def _check_stored(
        self, stored: StoredJob, value: bytes, what: str, limit: int, logged: int
    ) -> int:
        """1 if ``value`` (a field of ``stored``) breaks a rule that came after it
        was queued: the job is kept, the log says so (the first few times) and
        listings print the value escaped. 0 for a value that is fine, or one
        already reported."""
        listed = self.listed_as
        if listed is not None and value in listed:
            return 0
        why = _rule_broken(value, what, limit)
        if why is None:
            return 0
        shown = listing_form(value)
        if shown != value:
            if listed is None:
                listed = self.listed_as = {}
            listed[value] = shown
        if logged < _NAMED_ONE_BY_ONE:
            self.log.warning(
                "Queue store %s: kept job %s though a peer could not queue it today: %s; %s",
                self._store_where(),
                listing_form(stored.handle).decode("utf-8", "backslashreplace"),
                why,
                "listings print it as %s" % shown.decode("utf-8", "backslashreplace")
                if shown != value
                else "it is listed as it is",
            )
        return 1

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
