"""The threaded :class:`Client`, compatible with gear 0.16."""

from __future__ import annotations

import logging
import threading
import time
from typing import TypeVar, cast

from gear import constants
from gear.admin import AdminRequest
from gear.base import BaseClient
from gear.client import protocol, tracker
from gear.client.job import Job
from gear.connection import Connection
from gear.errors import (
    DisconnectError,
    GearmanError,
    TimeoutError,
    UnknownJobError,
)
from gear.job import BaseJob
from gear.packet import Packet
from gear.reconnect import ReconnectPolicy
from gear.tasks import OptionReqTask, SubmitJobTask, Task
from gear.util import convert_to_bytes

__all__ = ["Client"]

JobT = TypeVar("JobT", bound=Job)
"""The job type :meth:`Client.getStatus` takes and returns: a :class:`gear.Job`
or any subclass of it."""


class _OptionTask(OptionReqTask):
    def __init__(self, option: bytes) -> None:
        super().__init__()
        self.option = option
        self.accepted: bool | None = None


class _SubmitTask(SubmitJobTask):
    job: Job

    def __init__(self, job: Job) -> None:
        super().__init__(job)
        self.error: tracker.ServerError | None = None


class _StatusTask(Task):
    def __init__(self, job: Job, conn: Connection) -> None:
        super().__init__()
        self.job = job
        self.conn = conn
        self.answered = False


def _kind(task: Task) -> object:
    if isinstance(task, SubmitJobTask):
        return tracker.SUBMIT
    if isinstance(task, OptionReqTask):
        return tracker.OPTION
    return type(task)


def _tracker(conn: Connection) -> tracker.RequestTracker[Task]:
    return tracker.RequestTracker(conn.pending_tasks, _kind)


class Client(BaseClient):
    """A Gearman client: submits jobs and receives their results.

    Hooks (``handleWorkComplete`` and the rest) run on the poll thread; an
    override must call the base method and must not call blocking client
    methods.
    """

    def __init__(
        self, client_id: str | bytes | None = "unknown", *, reconnect: ReconnectPolicy | None = None
    ) -> None:
        super().__init__(client_id, reconnect=reconnect)
        self.log = logging.getLogger("gear.Client.%s" % (_text(self.client_id),))
        self.options: set[bytes] = set()
        self._status_lock = threading.Lock()
        self._status_waiters: dict[tuple[int, bytes], list[_StatusTask]] = {}

    def __repr__(self) -> str:
        return "<gear.Client 0x%x>" % (id(self),)

    # -- connection steps -------------------------------------------------

    def _onConnect(self, conn: Connection) -> None:
        if self.client_id:
            conn.sendPacket(Packet(constants.REQ, constants.SET_CLIENT_ID, self.client_id))
        self._requestExceptions(conn)
        for option in list(self.options):
            conn.sendPacketWithTask(
                Packet(constants.REQ, constants.OPTION_REQ, option), _OptionTask(option)
            )

    def _requestExceptions(self, conn: Connection) -> None:
        """Ask for ``WORK_EXCEPTION`` and wait for the answer, before going active.

        Waiting here (at most ``connect_timeout`` seconds, 30 without one)
        keeps the answer out of ``pending_tasks``, where a server that
        never answers options (gear 0.16's) would leave it in front of
        every later request.
        """
        request = protocol.ExceptionsRequest()
        for ptype, data in request.packets:
            conn.sendPacket(Packet(constants.REQ, ptype, data))
        sock = conn.conn
        sock.settimeout(30 if conn.connect_timeout is None else conn.connect_timeout)
        try:
            while True:
                item = conn.readPacket()
                if item is None:
                    raise DisconnectError("%s closed the connection while greeting" % (conn,))
                if isinstance(item, Packet) and request.feed(item.ptype, bytes(item.data)):
                    break
        finally:
            sock.settimeout(None)
        if request.accepted:
            conn.handleOptionRes(b"exceptions")
        else:
            self.log.debug("%s did not accept the exceptions option (%s)", conn, request.accepted)

    def _onConnectionLost(
        self, conn: Connection, jobs: list[BaseJob], tasks: list[Task], admin: list[AdminRequest]
    ) -> None:
        super()._onConnectionLost(conn, jobs, tasks, admin)
        for job in jobs:
            if isinstance(job, Job) and not job.complete:
                job._lost = True
                job._done.set()
        with self._status_lock:
            lost = [
                waiter
                for waiters in self._status_waiters.values()
                for waiter in waiters
                if waiter.conn is conn
            ]
        for waiter in lost:
            waiter.setComplete()

    # -- requests ---------------------------------------------------------

    def submitJob(
        self,
        job: Job,
        background: bool = False,
        precedence: int = constants.PRECEDENCE_NORMAL,
        timeout: float | None = 30,
    ) -> None:
        """Submit ``job`` and block until a server has given it a handle.

        Tries the active servers round-robin and moves on to the next one
        when a server refuses, does not answer within ``timeout`` seconds or
        drops the connection. Raises :class:`gear.GearmanError` when no
        connected server accepted the job (also when none is connected).
        """
        ptype = protocol.submit_type(background, precedence)
        packet = Packet(constants.REQ, ptype, protocol.submit_payload(job))
        if isinstance(job, Job):  # gear 0.16 code may pass any job-like object
            job._reset_wait(bool(background))
        failover: tracker.SubmitFailover[Connection] = tracker.SubmitFailover()
        while True:
            conn = failover.next(self._activeSnapshot, self.getConnection)
            if conn is None:
                break
            task = _SubmitTask(job)
            job.handle = None
            try:
                conn.sendPacketWithTask(packet, task)
            except Exception:
                self.log.info("Unable to submit job to %s; marking it lost", conn)
                self._lostConnection(conn)
                continue
            if not task.wait(timeout):
                self.log.warning(
                    "No JOB_CREATED from %s in %s seconds; marking it lost", conn, timeout
                )
                self._lostConnection(conn)
                continue
            if job.handle is None:
                failover.refused("%s:%s" % (conn.host, conn.port), task.error)
                continue
            job.connection = conn
            return
        raise GearmanError(failover.message(self._connectSummary))

    def _activeSnapshot(self) -> list[Connection]:
        with self.connections_condition:
            return list(self.active_connections)

    def setOption(self, name: str | bytes, timeout: float | None = 30) -> bool:
        """Ask every connected server to enable option ``name``.

        The option is remembered and requested again on every reconnect.
        Returns False if some server refused it. A server that does not
        answer within ``timeout`` seconds is logged and left connected (gear
        0.16 dropped it and broke later submits on it).
        """
        option = convert_to_bytes(name)
        self.options.add(option)
        packet = Packet(constants.REQ, constants.OPTION_REQ, option)
        sent: list[tuple[Connection, _OptionTask]] = []
        for conn in list(self.active_connections):
            task = _OptionTask(option)
            try:
                conn.sendPacketWithTask(packet, task)
            except Exception:
                self._lostConnection(conn)
                continue
            sent.append((conn, task))
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for conn, task in sent:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not task.wait(remaining):
                self.log.warning("No reply to OPTION_REQ %r from %s", option, conn)
                continue
            if task.accepted is False:
                ok = False
        return ok

    def getStatus(self, job: JobT, timeout: float | None = 30, unique: bool = False) -> JobT:
        """Ask the job's server for its status; update and return ``job``.

        Sends GET_STATUS for the job's handle, or with ``unique=True``
        GET_STATUS_UNIQUE for its unique id (servers that support it: the C
        gearmand and gear's geard). Sets ``known``, ``running``,
        ``numerator``, ``denominator`` and ``fraction_complete``. Raises
        :class:`gear.TimeoutError` without a reply in ``timeout`` seconds and
        :class:`gear.DisconnectError` if the connection is lost meanwhile.
        """
        ptype, reply, key_value = protocol.status_request(job, unique, job.connection)
        conn = job.connection or self.getConnection()
        key = (reply, key_value)
        task = _StatusTask(job, conn)
        with self._status_lock:
            self._status_waiters.setdefault(key, []).append(task)
        try:
            self.sendPacket(Packet(constants.REQ, ptype, key_value), conn)
            if not task.wait(timeout):
                raise TimeoutError("No status reply from %s in %s seconds" % (conn, timeout))
        finally:
            with self._status_lock:
                waiters = self._status_waiters.get(key)
                if waiters is not None and task in waiters:
                    waiters.remove(task)
                    if not waiters:
                        del self._status_waiters[key]
        if not task.answered:
            raise DisconnectError("Lost the connection to %s before the status reply" % (conn,))
        return job

    def _takeStatusWaiters(self, key: tuple[int, bytes]) -> list[_StatusTask]:
        with self._status_lock:
            return self._status_waiters.pop(key, [])

    # -- hooks (poll thread) ---------------------------------------------

    def handleJobCreated(self, packet: Packet) -> Job:
        conn = packet.connection
        assert conn is not None
        task = _tracker(conn).answer(tracker.SUBMIT)
        if not isinstance(task, SubmitJobTask):
            self.log.error("JOB_CREATED from %s with no submit pending", conn)
            self._lostConnection(conn)
            raise GearmanError("Received JOB_CREATED from %s with no submit pending" % (conn,))
        job = cast(Job, task.job)
        job.handle = bytes(packet.data)
        job.connection = conn
        conn.related_jobs[job.handle] = job
        task.setComplete()
        return job

    def _finish(self, packet: Packet, job: Job) -> None:
        if packet.connection is not None and job.handle is not None:
            packet.connection.related_jobs.pop(job.handle, None)
        if isinstance(job, Job):
            job._done.set()

    def handleDisconnect(self, job: Job) -> Job:
        """Called for each job of a lost connection; override to react.

        On a client the jobs are always :class:`gear.Job` (and subclasses).
        """
        return job

    def handleWorkComplete(self, packet: Packet) -> Job:
        job = _job(packet)
        protocol.apply_work_complete(job, protocol.split_handle(packet.data)[1])
        self._finish(packet, job)
        return job

    def handleWorkFail(self, packet: Packet) -> Job:
        job = _job(packet)
        protocol.apply_work_fail(job)
        self._finish(packet, job)
        return job

    def handleWorkException(self, packet: Packet) -> Job:
        job = _job(packet)
        protocol.apply_work_exception(job, protocol.split_handle(packet.data)[1])
        self._finish(packet, job)
        return job

    def handleWorkData(self, packet: Packet) -> Job:
        job = _job(packet)
        protocol.apply_work_data(job, protocol.split_handle(packet.data)[1])
        return job

    def handleWorkWarning(self, packet: Packet) -> Job:
        job = _job(packet)
        protocol.apply_work_warning(job, protocol.split_handle(packet.data)[1])
        return job

    def handleWorkStatus(self, packet: Packet) -> Job:
        job = _job(packet)
        protocol.apply_work_status(job, packet.getArgument(1), packet.getArgument(2))
        return job

    def handleStatusRes(self, packet: Packet) -> Job:
        waiters = self._takeStatusWaiters((constants.STATUS_RES, packet.getArgument(0)))
        try:
            job = _job(packet)
        except UnknownJobError:
            if not waiters:
                raise
            job = waiters[0].job
        fields = [packet.getArgument(i) for i in range(1, 5)]
        protocol.apply_status(job, *fields)
        for waiter in waiters:
            if waiter.job is not job:
                protocol.apply_status(waiter.job, *fields)
            waiter.answered = True
            waiter.setComplete()
        return job

    def handleStatusResUnique(self, packet: Packet) -> Job | None:
        waiters = self._takeStatusWaiters((constants.STATUS_RES_UNIQUE, packet.getArgument(0)))
        fields = [packet.getArgument(i) for i in range(1, 5)]
        for waiter in waiters:
            protocol.apply_status(waiter.job, *fields)
            waiter.answered = True
            waiter.setComplete()
        return waiters[0].job if waiters else None

    def handleOptionRes(self, packet: Packet) -> Packet:
        conn = packet.connection
        assert conn is not None
        option = bytes(packet.data)
        conn.handleOptionRes(option)
        task = _tracker(conn).answer(tracker.OPTION)
        if task is None:
            self.log.warning("OPTION_RES %r from %s with no request pending", option, conn)
            return packet
        if isinstance(task, _OptionTask):
            task.accepted = task.option == option
        task.setComplete()
        return packet

    def handleError(self, packet: Packet) -> Packet:
        """Complete the oldest pending request with the error, as gear 0.16 does.

        A refused submit keeps the error for :meth:`submitJob`'s message; a
        refused option makes :meth:`setOption` return False.
        """
        conn = packet.connection
        assert conn is not None
        error = tracker.parse_error(packet.data)
        self.log.error("Received ERROR packet: %s: %s", error.code, error.text)
        task = _tracker(conn).error()
        if task is None:
            self.log.error("ERROR with no request pending on %s; dropping it", conn)
            self._lostConnection(conn)
            return packet
        if isinstance(task, _OptionTask):
            task.accepted = False
        elif isinstance(task, _SubmitTask):
            task.error = error
        task.setComplete()
        return packet


def _job(packet: Packet) -> Job:
    # Only Jobs enter a client connection's related_jobs (handleJobCreated).
    return cast(Job, packet.getJob())


def _text(value: bytes | None) -> str:
    if value is None:
        return "None"
    return value.decode("utf8", "replace")


Client.__module__ = "gear"
