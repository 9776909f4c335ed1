"""The threaded :class:`Worker` and its jobs, compatible with gear 0.16."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import cast

from gear import constants
from gear.admin import AdminRequest
from gear.base import BaseClient
from gear.codec import encode_packet
from gear.connection import Connection
from gear.errors import (
    ConfigurationError,
    InterruptedError,
    InvalidDataError,
    TimeoutError,
)
from gear.job import BaseBinaryJob, BaseJob, TextJobArguments, TextJobUnique
from gear.packet import Packet
from gear.reconnect import ReconnectPolicy
from gear.tasks import Task
from gear.util import convert_to_bytes
from gear.worker import protocol

__all__ = [
    "FunctionRecord",
    "WorkerJob",
    "TextWorkerJob",
    "BinaryWorkerJob",
    "Worker",
    "TextWorker",
]

_REQ = constants.REQ
_REGISTER_DENIED = b"Permission denied by ACL: register "


class FunctionRecord:
    """A function a worker can run; ``name`` and ``timeout`` are kept as given.

    ``timeout`` (seconds) makes the worker register with CAN_DO_TIMEOUT; it
    may be an int or its decimal text (str or bytes), as gear 0.16 accepted.
    """

    def __init__(self, name: str | bytes, timeout: int | str | bytes | None = None) -> None:
        self.name = name
        self.timeout = timeout

    def __repr__(self) -> str:
        return "<gear.FunctionRecord 0x%x name: %s timeout: %s>" % (
            id(self),
            str(self.name),
            str(self.timeout),
        )


def _require_bytes(data: object) -> bytes | bytearray:
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(
            "work data must be bytes or bytearray, not %s (TextWorkerJob accepts str)"
            % (type(data).__name__,)
        )
    return data


class WorkerJob(BaseJob):
    """A job assigned to a :class:`gear.Worker`; report on it with ``send*``.

    ``arguments`` are bytes, and so is every payload the ``send*`` methods
    take. Each method writes one packet on ``connection`` (the server the
    job came from) and does not wait for anything else.
    """

    handle: bytes

    def __init__(
        self,
        handle: bytes,
        name: str | bytes,
        arguments: bytes | bytearray,
        unique: str | bytes | None = None,
    ) -> None:
        super().__init__(name, arguments, unique, handle)

    def _send(self, ptype: int, data: bytes | bytearray | None) -> None:
        assert self.connection is not None
        self.connection.sendRaw(
            encode_packet(_REQ, ptype, protocol.work_payload(self.handle, data))
        )

    def _payload(self, data: object) -> bytes | bytearray:
        return _require_bytes(data)

    def sendWorkData(self, data: bytes | bytearray = b"") -> None:
        self._send(constants.WORK_DATA, self._payload(data))

    def sendWorkWarning(self, data: bytes | bytearray = b"") -> None:
        self._send(constants.WORK_WARNING, self._payload(data))

    def sendWorkStatus(self, numerator: object, denominator: object) -> None:
        """Report progress. Any values are accepted, as in gear 0.16: bytes
        go out as they are, anything else as its ``str()``."""
        self._send(constants.WORK_STATUS, protocol.status_data(numerator, denominator))

    def sendWorkComplete(self, data: bytes | bytearray = b"") -> None:
        self._send(constants.WORK_COMPLETE, self._payload(data))

    def sendWorkFail(self) -> None:
        self._send(constants.WORK_FAIL, None)

    def sendWorkException(self, data: bytes | bytearray = b"") -> None:
        self._send(constants.WORK_EXCEPTION, self._payload(data))


# The Text and Binary variants read some attributes back as another type
# (gear 0.16's design); mypy flags those overrides, and only those are ignored.


class TextWorkerJob(TextJobArguments, TextJobUnique, WorkerJob):  # type: ignore[misc]
    """A worker job whose arguments and unique are ``str``; ``send*`` take str too."""

    def __init__(
        self,
        handle: bytes,
        name: str | bytes,
        arguments: str | bytes | bytearray,
        unique: str | bytes | None = None,
    ) -> None:
        super().__init__(handle, name, arguments, unique)  # type: ignore[arg-type]

    def _payload(self, data: object) -> bytes | bytearray:
        if isinstance(data, str):
            return data.encode("utf8")
        return _require_bytes(data)

    def sendWorkData(self, data: str | bytes | bytearray = "") -> None:
        self._send(constants.WORK_DATA, self._payload(data))

    def sendWorkWarning(self, data: str | bytes | bytearray = "") -> None:
        self._send(constants.WORK_WARNING, self._payload(data))

    def sendWorkComplete(self, data: str | bytes | bytearray = "") -> None:
        self._send(constants.WORK_COMPLETE, self._payload(data))

    def sendWorkException(self, data: str | bytes | bytearray = "") -> None:
        self._send(constants.WORK_EXCEPTION, self._payload(data))


class BinaryWorkerJob(BaseBinaryJob, WorkerJob):  # type: ignore[misc]
    """A worker job whose ``name`` is returned as bytes."""


class Worker(BaseClient):
    """A Gearman worker: registers functions and takes jobs with :meth:`getJob`.

    ``worker_id`` is accepted as an alias of ``client_id`` (gear 0.16
    refused it). Hooks run on the poll thread.
    """

    job_class: type[WorkerJob] = WorkerJob
    #: Seconds a connection may wait for a GRAB_JOB_UNIQ reply before
    #: :meth:`stopWaitingForJobs` gives up on it and drops it.
    grab_wait_timeout: float = 5.0

    def __init__(
        self,
        client_id: str | bytes | None = None,
        worker_id: str | bytes | None = None,
        *,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        if not client_id:
            client_id = worker_id
        if not client_id:
            raise ConfigurationError("A client_id must be provided")
        self.worker_id = client_id
        self.functions: dict[bytes, FunctionRecord] = {}
        self.job_lock = threading.RLock()
        self._job_cond = threading.Condition(self.job_lock)
        self._grab_cond = threading.Condition(self.job_lock)
        self.waiting_for_jobs = 0
        self.job_queue: queue.Queue[WorkerJob] = queue.Queue()
        self._interrupts = 0
        self._refusals: dict[Connection, set[bytes]] = {}
        super().__init__(client_id, reconnect=reconnect)
        self.log = logging.getLogger("gear.Worker.%s" % (_text(client_id),))

    def __repr__(self) -> str:
        return "<gear.Worker 0x%x>" % (id(self),)

    # -- connections ------------------------------------------------------

    def _connectOne(self, conn: Connection) -> None:
        conn.connect()
        with self.job_lock:
            try:
                for ptype, data in protocol.greeting(self.client_id, self.functions.values()):
                    conn.sendPacket(Packet(_REQ, ptype, data))
            except Exception:
                conn.disconnect()
                raise
            conn.changeState(protocol.IDLE)
            self._activate(conn)
            self._updateStateMachines()

    def _onConnectionLost(
        self, conn: Connection, jobs: list[BaseJob], tasks: list[Task], admin: list[AdminRequest]
    ) -> None:
        super()._onConnectionLost(conn, jobs, tasks, admin)
        self._refusals.pop(conn, None)
        with self.job_lock:
            self._job_cond.notify_all()
            self._grab_cond.notify_all()

    def _sendType(self, conn: Connection, ptype: int) -> None:
        try:
            conn.sendRaw(encode_packet(_REQ, ptype))
        except Exception:
            self.log.info("Unable to send to %s; marking it lost", conn)
            self._lostConnection(conn)

    def _transition(self, conn: Connection, transition: protocol.Transition) -> None:
        state, ptype = transition
        old = conn.state
        if state != old:
            conn.changeState(state)
            if old == protocol.GRAB_WAIT:
                self._grab_cond.notify_all()
        if ptype is not None:
            self._sendType(conn, ptype)

    def _wanted(self) -> int:
        return self.waiting_for_jobs - len(self.job_queue.queue)

    def _updateStateMachines(self) -> None:
        """Ask IDLE servers for work while someone waits (job_lock held)."""
        wanted = self._wanted()
        for conn in list(self.active_connections):
            self._transition(conn, protocol.on_demand(conn.state, wanted))

    # -- functions --------------------------------------------------------

    def registerFunction(self, name: str | bytes, timeout: int | str | bytes | None = None) -> None:
        """Register ``name`` (CAN_DO, or CAN_DO_TIMEOUT with ``timeout`` seconds).

        Works without a connected server: functions are sent on every
        (re)connect. ``timeout`` may be an int or bytes.
        """
        bname = convert_to_bytes(name)
        with self.job_lock:
            self.functions[bname] = FunctionRecord(bname, timeout)
            ptype, data = protocol.can_do_packet(bname, timeout)
            self.broadcast(Packet(_REQ, ptype, data))
            self._wakeSleepers()

    def unRegisterFunction(self, name: str | bytes) -> None:
        bname = convert_to_bytes(name)
        with self.job_lock:
            del self.functions[bname]
            self.broadcast(Packet(_REQ, constants.CANT_DO, bname))

    def setFunctions(self, functions: list[FunctionRecord]) -> None:
        """Replace every registered function (RESET_ABILITIES, then CAN_DOs)."""
        for record in functions:
            if not isinstance(record, FunctionRecord):
                raise InvalidDataError("An iterable of FunctionRecords is required.")
        with self.job_lock:
            self.broadcast(Packet(_REQ, constants.RESET_ABILITIES, b""))
            self.functions = {}
            for record in functions:
                name = convert_to_bytes(record.name)
                self.functions[name] = record
                ptype, data = protocol.can_do_packet(name, record.timeout)
                self.broadcast(Packet(_REQ, ptype, data))
            self._wakeSleepers()

    def _wakeSleepers(self) -> None:
        for conn in list(self.active_connections):
            if conn.state == protocol.SLEEP:
                conn.changeState(protocol.IDLE)
        self._updateStateMachines()

    # -- jobs -------------------------------------------------------------

    def getJob(self, timeout: float | None = None) -> WorkerJob:
        """Block until a job is assigned and return it (a ``job_class``).

        Raises :class:`gear.InterruptedError` after :meth:`shutdown` or when
        :meth:`stopWaitingForJobs` is called while waiting, and
        :class:`gear.TimeoutError` if ``timeout`` seconds pass first.
        """
        with self.job_lock:
            if not self.running:
                raise InterruptedError("The worker is shut down")
            try:
                return self.job_queue.get_nowait()
            except queue.Empty:
                pass
            generation = self._interrupts
            deadline = None if timeout is None else time.monotonic() + timeout
            self.waiting_for_jobs += 1
            try:
                self._updateStateMachines()
                while True:
                    try:
                        return self.job_queue.get_nowait()
                    except queue.Empty:
                        pass
                    if generation != self._interrupts or not self.running:
                        raise InterruptedError("Interrupted while waiting for a job")
                    if deadline is None:
                        self._job_cond.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError("No job was assigned within %s seconds" % (timeout,))
                    self._job_cond.wait(remaining)
            finally:
                self.waiting_for_jobs -= 1
                if self.running and self._wanted() <= 0:
                    self._updateStateMachines()

    def stopWaitingForJobs(self) -> None:
        """Wake every thread blocked in :meth:`getJob` with InterruptedError.

        First lets outstanding GRAB_JOB_UNIQ requests settle (dropping a
        server that takes over ``grab_wait_timeout`` seconds to answer), so
        a job assigned meanwhile stays queued for the next :meth:`getJob`.
        """
        with self.job_lock:
            while self.running:
                stuck = [c for c in self.active_connections if c.state == protocol.GRAB_WAIT]
                if not stuck:
                    break
                now = time.time()
                for conn in stuck:
                    if now - conn.state_time > self.grab_wait_timeout:
                        self.log.warning("No reply to GRAB_JOB_UNIQ from %s; dropping it", conn)
                        self._lostConnection(conn)
                self._grab_cond.wait(0.1)
            self._interruptWaiters()

    def _interruptWaiters(self) -> None:
        with self.job_lock:
            self._interrupts += 1
            self._job_cond.notify_all()
            for conn in list(self.active_connections):
                if conn.state in (protocol.GRAB_WAIT, protocol.SLEEP):
                    conn.changeState(protocol.IDLE)

    def shutdown(self) -> None:
        """Interrupt :meth:`getJob` waiters, stop the threads, close connections."""
        if self._shut_down:
            self.log.warning("Shutdown called when not currently running. Ignoring.")
            return
        self.running = False
        self._interruptWaiters()
        super().shutdown()

    # -- hooks (poll thread) ---------------------------------------------

    def handleNoop(self, packet: Packet) -> Packet:
        conn = packet.connection
        assert conn is not None
        with self.job_lock:
            if conn.state != protocol.SLEEP:
                self.log.debug("Received NOOP in state %s on %s; ignoring", conn.state, conn)
            self._transition(conn, protocol.on_noop(conn.state, self._wanted()))
        return packet

    def handleNoJob(self, packet: Packet) -> Packet:
        conn = packet.connection
        assert conn is not None
        with self.job_lock:
            if conn.state != protocol.GRAB_WAIT:
                self.log.debug("Received NO_JOB in state %s on %s; ignoring", conn.state, conn)
            self._transition(conn, protocol.on_no_job(conn.state))
        return packet

    def _handleAssignment(self, packet: Packet) -> WorkerJob:
        conn = packet.connection
        assert conn is not None
        handle, name, unique, arguments = protocol.parse_assignment(
            packet.ptype, bytes(packet.data)
        )
        job = self.job_class(handle, name, arguments, unique)
        job.connection = conn
        with self.job_lock:
            self._transition(conn, protocol.on_assign(conn.state))
            self.job_queue.put(job)
            self._job_cond.notify_all()
            self._updateStateMachines()
        return job

    def handleError(self, packet: Packet) -> Packet:
        """Log a refused registration once and keep the connection.

        A server answers a CAN_DO it will not honour (ACL, bad name) with
        ERROR, and nothing else waits for that answer. Treating it as a lost
        connection would reconnect, re-register and be refused again, in a
        loop, and the allowed functions would never be served.
        """
        conn = packet.connection
        assert conn is not None
        text = packet.getArgument(1, True)
        if conn.pending_tasks and not text.startswith(_REGISTER_DENIED):
            return super().handleError(packet)
        seen = self._refusals.setdefault(conn, set())
        if text not in seen and len(seen) < 1000:
            seen.add(text)
            self.log.error(
                "%s refused a request: %s: %s",
                conn,
                packet.getArgument(0).decode("utf8", "replace"),
                text.decode("utf8", "replace"),
            )
        return packet

    def handleJobAssign(self, packet: Packet) -> WorkerJob:
        return self._handleAssignment(packet)

    def handleJobAssignUnique(self, packet: Packet) -> WorkerJob:
        return self._handleAssignment(packet)


class TextWorker(Worker):
    """A worker whose jobs are :class:`gear.TextWorkerJob`."""

    job_class: type[TextWorkerJob] = TextWorkerJob

    def getJob(self, timeout: float | None = None) -> TextWorkerJob:
        """:meth:`gear.Worker.getJob`, typed for the text jobs this worker makes."""
        return cast(TextWorkerJob, super().getJob(timeout))


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return value.decode("utf8", "replace")
    return value


for _cls in (FunctionRecord, WorkerJob, TextWorkerJob, BinaryWorkerJob, Worker, TextWorker):
    _cls.__module__ = "gear"
del _cls
