"""geard's engine: jobs, queues, workers and the schedule, with no I/O.

Every function has three deques (high, normal, low), a unique-id index and
a set of sleeping workers, so submit, grab and wake-up cost O(1) in the
queue length and in the number of idle connections. The engine reads the
time from ``clock`` and asks ``timers`` for later work (job timeouts, the
schedule), so tests drive it with fakes; it never imports asyncio or
socket. What it says to peers goes through :class:`~gear.server.outbox.Outbox`.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable

from gear import constants as C
from gear.errors import RemoteProtocolError
from gear.server._compiled import mypyc_attr
from gear.server.acl_admin import AclAdmin, ACLLike
from gear.server.config import ServerOptions, default_max_connections
from gear.server.counters import OUTCOME_COMPLETE, OUTCOME_FAIL
from gear.server.model import (
    DONE,
    QUEUED,
    RUNNING,
    SCHEDULED,
    FunctionQueue,
    ServerJob,
    Session,
    TimerHandle,
    Timers,
    check_field,
)
from gear.server.outbox import NO_JOB, NOOP, packet
from gear.server.stats import StatsClientLike
from gear.server.store import QueueStore, StoredJob

__all__ = ["Engine"]


@mypyc_attr(allow_interpreted_subclasses=True)
class Engine(AclAdmin):
    """The job table and everything that changes it.

    Built alone (``Engine(options, timers)``) it is the whole protocol state
    machine minus packet parsing; :class:`gear.Server` stacks the packet
    handlers, admin commands, transport and event loop on top.
    """

    def __init__(
        self,
        options: ServerOptions,
        timers: Timers,
        *,
        clock: Callable[[], float] = time.time,
        queue_store: QueueStore | None = None,
        acl: ACLLike | None = None,
        log: logging.Logger | None = None,
        statsd: StatsClientLike | None = None,
    ) -> None:
        self._init_engine(options, log or logging.getLogger("gear.Server"), statsd, acl)
        self.timers = timers
        self.clock = clock
        self.queue_store = queue_store

    def _init_engine(
        self,
        options: ServerOptions,
        log: logging.Logger,
        statsd: StatsClientLike | None,
        acl: ACLLike | None,
    ) -> None:
        self._init_stats(log, statsd)
        self._init_outbox()
        self.options = options
        self.acl = acl
        self.clock = time.time
        self.max_packet_size = options.max_packet_size
        self.max_admin_line = options.max_admin_line
        self.max_output_buffer = options.max_output_buffer
        self.max_connections = (
            options.max_connections
            if options.max_connections is not None
            else default_max_connections()
        )
        self.partial_timeout = options.partial_timeout
        self.backlog = options.backlog
        self.job_retries = options.job_retries
        self.shutdown_timeout = options.shutdown_timeout
        self.tls_handshake_timeout = options.tls_handshake_timeout
        self.max_partial_total = options.max_partial_total
        self.max_function_name = options.max_function_name
        self.max_unique_id = options.max_unique_id
        self.max_client_id = options.max_client_id
        self.jobs: dict[bytes, ServerJob] = {}
        self.functions: set[bytes] = set()
        self.function_queues: dict[bytes, FunctionQueue] = {}
        self.running_jobs = 0
        self.max_handle = 0
        self.connection_map: dict[int, Session] = {}
        self.running = True
        self._connections: dict[Session, None] = {}
        self._created: set[bytes] = set()
        self._scheduled: list[tuple[float, int, ServerJob]] = []
        self._schedule_timer: TimerHandle | None = None
        self._graceful = False
        self._stopping = False
        self.handle_prefix: bytes | None = None
        self.adopted: set[bytes] = set()

    # ------------------------------------------------------------------
    # workers going away

    def _drop_worker(self, conn: Session) -> None:
        woken = conn.state == "AWAKE"
        for fq in conn.abilities.values():
            fq.workers -= 1
            fq.sleepers.pop(conn, None)
        for job in list(conn.worker_jobs.values()):
            self._requeue(job)
        conn.worker_jobs.clear()
        if woken:
            for fq in conn.abilities.values():
                if fq.queued and fq.sleepers:
                    self._wake(next(iter(fq.sleepers)))
        abilities = list(conn.abilities.values())
        conn.abilities.clear()
        conn.functions.clear()
        for fq in abilities:
            self._release(fq)

    # ------------------------------------------------------------------
    # stopping (the runtime adds the loop and the listener)

    def _begin_graceful(self) -> None:
        if self._graceful or self._stopping:
            return
        self._graceful = True
        self._check_graceful()

    def _check_graceful(self) -> None:
        if self._graceful and not self.running_jobs and not self._stopping:
            self.log.info("Graceful shutdown: no job is running")
            self._stop()

    def _stop(self) -> None:
        self._stopping = True
        self.running = False

    # ------------------------------------------------------------------
    # functions and handles

    def _function(self, name: bytes) -> FunctionQueue:
        fq = self.function_queues.get(name)
        if fq is None:
            fq = self.function_queues[name] = FunctionQueue(name)
            if self.job_counters is not None:
                fq.stats = self.job_counters.counts(name)
        return fq

    def _new_function(self, name: bytes) -> FunctionQueue:
        """The record of ``name``; a new one only for a name fit for every listing."""
        fq = self.function_queues.get(name)
        if fq is None:
            check_field(name, "function name", self.max_function_name)
            fq = self._function(name)
        return fq

    def _release(self, fq: FunctionQueue) -> None:
        """Forget a function nothing refers to, so distinct names cannot pile up."""
        if (
            fq.workers
            or fq.total
            or fq.max_queue is not None
            or fq.name in self._created
            or self.function_queues.get(fq.name) is not fq
        ):
            return
        del self.function_queues[fq.name]
        self.functions.discard(fq.name)

    def _new_handle(self, conn: Session | None) -> bytes:
        self.max_handle += 1
        prefix = self.handle_prefix
        if prefix is None:
            prefix = conn.handle_prefix if conn is not None else b"H:geard:"
        return prefix + str(self.max_handle).encode()

    # ------------------------------------------------------------------
    # submitting

    def _submit(
        self,
        conn: Session,
        name: bytes,
        unique: bytes,
        arguments: bytes,
        priority: int,
        background: bool,
        when: float | None = None,
    ) -> None:
        if self.acl is not None and not self._may(conn, "invoke", name):
            return
        if self._graceful:
            self.sendError(conn, b"SHUTTING_DOWN", b"Server is shutting down")
            return
        if unique:
            check_field(unique, "unique id", self.max_unique_id)
            if unique == b".":
                raise RemoteProtocolError("unique id '.' would end the show unique jobs listing")
        if background and self.queue_store is not None and not self.queue_store.available:
            self.sendError(
                conn, b"QUEUE_UNAVAILABLE", b"The queue store is unreachable: no background jobs"
            )
            return
        fq = self._new_function(name)
        if unique:
            existing = fq.uniques.get(unique)
            if existing is not None:
                if not background and conn not in existing.clients:
                    existing.clients = [*existing.clients, conn]
                    conn.client_jobs[existing.handle] = existing
                self._send(conn, packet(C.JOB_CREATED, existing.handle))
                return
        limits = fq.max_queue
        if limits is not None and limits[priority] and fq.counts[priority] >= limits[priority]:
            self.sendError(conn, b"QUEUE_FULL", b"Job queue is full for function " + name)
            return
        handle = self._new_handle(conn)
        job = ServerJob(handle, fq.name, arguments, None if background else conn, unique)
        job.priority = priority
        job.function = fq
        self.jobs[handle] = job
        if unique:
            fq.uniques[unique] = job
        if not background:
            conn.client_jobs[handle] = job
        self._send(conn, packet(C.JOB_CREATED, handle))
        if fq.stats is not None:  # counters.KIND_*: foreground 0, background 1, scheduled 2
            fq.stats.submitted[2 if when is not None else background] += 1
        if background and self.queue_store is not None:
            self.queue_store.add(
                StoredJob(handle, name, job._unique, arguments, job.precedence, when)
            )
            self._store_changed()
        self._start_job(job, when)

    def _start_job(self, job: ServerJob, when: float | None) -> None:
        if when is None or when <= self.clock():
            self._enqueue(job)
            return
        assert job.function is not None
        job.state = SCHEDULED
        job.when = when
        job.function.scheduled += 1
        heapq.heappush(self._scheduled, (when, self.max_handle, job))
        self._arm_schedule()

    def _arm_schedule(self) -> None:
        if self._schedule_timer is not None:
            self._schedule_timer.cancel()
            self._schedule_timer = None
        while self._scheduled and self._scheduled[0][2].state != SCHEDULED:
            heapq.heappop(self._scheduled)
        if self._scheduled:
            delay = max(0.0, self._scheduled[0][0] - self.clock())
            self._schedule_timer = self.timers.call_later(delay, self._run_scheduled)

    def _run_scheduled(self) -> None:
        self._schedule_timer = None
        now = self.clock()
        while self._scheduled and self._scheduled[0][0] <= now + 0.001:
            _, _, job = heapq.heappop(self._scheduled)
            if job.state == SCHEDULED:
                assert job.function is not None
                job.function.scheduled -= 1
                self._enqueue(job)
        self._arm_schedule()

    # ------------------------------------------------------------------
    # queues and workers

    def _enqueue(self, job: ServerJob, head: bool = False) -> None:
        fq = job.function
        assert fq is not None
        job.state = QUEUED
        if head:
            fq.queues[job.priority].appendleft(job)
        else:
            fq.queues[job.priority].append(job)
        fq.counts[job.priority] += 1
        if fq.sleepers:
            self._wake(next(iter(fq.sleepers)))

    def _wake(self, conn: Session) -> None:
        for fq in conn.abilities.values():
            fq.sleepers.pop(conn, None)
        conn.state = "AWAKE"
        self._send(conn, NOOP)

    def _take(self, conn: Session) -> ServerJob | None:
        if self._graceful:
            return None  # shutting down: running jobs finish, queued ones wait
        store = self.queue_store
        if store is not None and store.lease_deadline < time.monotonic():
            store.expire()  # another node may own our stored jobs by now
        abilities = conn.abilities.values()
        for priority in (0, 1, 2):
            for fq in abilities:
                if fq.counts[priority]:
                    queue = fq.queues[priority]
                    while queue:
                        job = queue.popleft()
                        if job.state == QUEUED:
                            fq.counts[priority] -= 1
                            return job
        return None

    def _peek(self, conn: Session) -> ServerJob | None:
        for priority in (0, 1, 2):
            for fq in conn.abilities.values():
                if fq.counts[priority]:
                    for job in fq.queues[priority]:
                        if job.state == QUEUED:
                            return job
        return None

    def _assign(self, conn: Session, job: ServerJob) -> None:
        fq = job.function
        assert fq is not None
        job.state = RUNNING
        job.worker_connection = conn
        fq.running += 1
        self.running_jobs += 1
        conn.worker_jobs[job.handle] = job
        if fq.stats is not None:
            job.assigned = self.clock()
        timeout = conn.timeouts.get(fq.name)
        if timeout:
            job.timer = self.timers.call_later(timeout, self._expire, job, conn)

    def _expire(self, job: ServerJob, conn: Session) -> None:
        if job.state != RUNNING or job.worker_connection is not conn:
            return
        job.timer = None
        self.log.info("Job %r timed out on worker %s", job.handle, conn.host)
        self._fail(job)

    def _grab(self, conn: Session) -> ServerJob | None:
        if conn.state == "SLEEP":
            for fq in conn.abilities.values():
                fq.sleepers.pop(conn, None)
        conn.state = "AWAKE"
        job = self._take(conn)
        if job is None:
            self._send(conn, NO_JOB)
            return None
        self._assign(conn, job)
        return job

    def _add_ability(self, conn: Session, name: bytes, timeout: float | None) -> None:
        if self.acl is not None and not self._may(conn, "register", name):
            return
        fq = conn.abilities.get(name) or self._new_function(name)
        if timeout:
            conn.timeouts[name] = timeout
        else:
            conn.timeouts.pop(name, None)
        if name in conn.abilities:
            return
        conn.abilities[name] = fq
        conn.functions.add(name)
        self.functions.add(name)
        fq.workers += 1
        if conn.state == "SLEEP":
            if fq.queued:
                self._wake(conn)
            else:
                fq.sleepers[conn] = None

    def _remove_ability(self, conn: Session, name: bytes) -> None:
        conn.timeouts.pop(name, None)
        conn.functions.discard(name)
        fq = conn.abilities.pop(name, None)
        if fq is not None:
            fq.workers -= 1
            fq.sleepers.pop(conn, None)
            self._release(fq)

    # ------------------------------------------------------------------
    # ending jobs

    def _forward(self, job: ServerJob, ptype: int, data: bytes) -> None:
        if job.clients:
            data = packet(ptype, data)
            for client in job.clients:
                self._send(client, data)

    def _fail(self, job: ServerJob) -> None:
        data = packet(C.WORK_FAIL, job.handle)
        for client in job.clients:
            self._send(client, data)
        self._finish(job, OUTCOME_FAIL)

    def _finish(self, job: ServerJob, outcome: int = OUTCOME_COMPLETE) -> None:
        """A running job ended (complete, fail, exception or timeout: ``counters.OUTCOME_*``)."""
        fq = job.function
        assert fq is not None
        if fq.stats is not None:
            fq.stats.ended(outcome, self.clock() - job.assigned if job.assigned else -1.0)
        if job.state == RUNNING:
            fq.running -= 1
            self.running_jobs -= 1
            worker = job.worker_connection
            if worker is not None:
                worker.worker_jobs.pop(job.handle, None)
        job.state = DONE
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        self._forget(job)

    def _requeue(self, job: ServerJob) -> None:
        """A worker holding ``job`` went away: put it back at the head."""
        fq = job.function
        assert fq is not None
        fq.running -= 1
        self.running_jobs -= 1
        job.worker_connection = None
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        job.state = DONE
        if not job.background and not job.clients:
            self._forget(job)
            return
        if self.job_retries is not None and job.retries >= self.job_retries:
            self.log.warning(
                "Job %r (%r) failed: its worker disconnected %d times",
                job.handle,
                job._name,
                job.retries + 1,
            )
            self._fail(job)
            self._check_graceful()
            return
        job.retries += 1
        if job.background and self.queue_store is not None:
            self.queue_store.retried(job.handle, job.retries)
            self._store_changed()
        self._enqueue(job, head=True)
        self._check_graceful()

    def _forget(self, job: ServerJob, store: bool = True) -> None:
        handle = job.handle
        self.jobs.pop(handle, None)
        for client in job.clients:
            client.client_jobs.pop(handle, None)
        unique = job._unique
        fq = job.function
        if unique and fq is not None and fq.uniques.get(unique) is job:
            del fq.uniques[unique]
        if job.background and self.queue_store is not None:
            self.adopted.discard(handle)
            if store:
                self.queue_store.remove(handle)
                self._store_changed()
        if fq is not None and not fq.total:
            self._release(fq)
        if self._graceful:
            self._check_graceful()

    def _remove_waiting(self, job: ServerJob, store: bool = True) -> bool:
        """Take a queued or scheduled job out (cancel); False if it is running.

        ``store`` False leaves the stored row alone (another node owns it)."""
        fq = job.function
        assert fq is not None
        if job.state == QUEUED:
            fq.counts[job.priority] -= 1
            queue = fq.queues[job.priority]
            if len(queue) > 2 * fq.counts[job.priority] + 64:
                job.state = DONE  # drop it (and the other removed jobs) from the deque now
                live = [j for j in queue if j.state == QUEUED]
                queue.clear()
                queue.extend(live)
        elif job.state == SCHEDULED:
            fq.scheduled -= 1
        else:
            return False
        job.state = DONE
        self._forget(job, store)
        return True
