"""The packet table: what each request a peer sends does.

Payloads are split with gear-core's argument counts; a malformed request
becomes an ``ERROR`` packet in one place (:meth:`Handlers._frame`), and a
stream the decoder cannot frame closes the connection with the decoder's
typed error code (:mod:`gear.server.inbox`). Each packet type also has gear
0.16's ``handleX(packet)`` hook: a subclass that overrides one receives
that type as a :class:`gear.Packet`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, cast

from gear import constants as C
from gear.codec import split_arguments
from gear.errors import RemoteProtocolError
from gear.packet import Packet
from gear.server import schedule
from gear.server._compiled import mypyc_attr
from gear.server.config import MAX_EPOCH, MAX_TIMEOUT
from gear.server.counters import OUTCOME_COMPLETE, OUTCOME_EXCEPTION, OUTCOME_FAIL
from gear.server.hooks import packet_hook
from gear.server.model import QUEUED, SCHEDULED, ServerJob, Session, check_field
from gear.server.outbox import NO_JOB, NOOP, packet
from gear.server.store_events import StoreEvents

__all__ = ["HANDLERS", "Handlers"]

_REQ = C.REQ

#: packet type -> (internal handler, gear 0.16 hook name). Overriding a hook in
#: a subclass routes that packet type through it as a :class:`gear.Packet`.
HANDLERS: dict[int, tuple[str, str]] = {
    C.SUBMIT_JOB: ("_on_submit", "handleSubmitJob"),
    C.SUBMIT_JOB_BG: ("_on_submit", "handleSubmitJobBg"),
    C.SUBMIT_JOB_HIGH: ("_on_submit", "handleSubmitJobHigh"),
    C.SUBMIT_JOB_HIGH_BG: ("_on_submit", "handleSubmitJobHighBg"),
    C.SUBMIT_JOB_LOW: ("_on_submit", "handleSubmitJobLow"),
    C.SUBMIT_JOB_LOW_BG: ("_on_submit", "handleSubmitJobLowBg"),
    C.SUBMIT_JOB_SCHED: ("_on_submit_job_sched", "handleSubmitJobSched"),
    C.SUBMIT_JOB_EPOCH: ("_on_submit_job_epoch", "handleSubmitJobEpoch"),
    C.SUBMIT_REDUCE_JOB: ("_on_submit_reduce_job", ""),
    C.SUBMIT_REDUCE_JOB_BACKGROUND: ("_on_submit_reduce_job", ""),
    C.GRAB_JOB: ("_on_grab_job", "handleGrabJob"),
    C.GRAB_JOB_UNIQ: ("_on_grab_job_uniq", "handleGrabJobUniq"),
    C.GRAB_JOB_ALL: ("_on_grab_job_all", "handleGrabJobAll"),
    C.PRE_SLEEP: ("_on_pre_sleep", "handlePreSleep"),
    C.CAN_DO: ("_on_can_do", "handleCanDo"),
    C.CAN_DO_TIMEOUT: ("_on_can_do_timeout", "handleCanDoTimeout"),
    C.CANT_DO: ("_on_cant_do", "handleCantDo"),
    C.RESET_ABILITIES: ("_on_reset_abilities", "handleResetAbilities"),
    C.SET_CLIENT_ID: ("_on_set_client_id", "handleSetClientID"),
    C.WORK_DATA: ("_on_work_data", "handleWorkData"),
    C.WORK_WARNING: ("_on_work_warning", "handleWorkWarning"),
    C.WORK_STATUS: ("_on_work_status", "handleWorkStatus"),
    C.WORK_COMPLETE: ("_on_work_complete", "handleWorkComplete"),
    C.WORK_FAIL: ("_on_work_fail", "handleWorkFail"),
    C.WORK_EXCEPTION: ("_on_work_exception", "handleWorkException"),
    C.GET_STATUS: ("_on_get_status", "handleGetStatus"),
    C.GET_STATUS_UNIQUE: ("_on_get_status_unique", "handleGetStatusUnique"),
    C.ECHO_REQ: ("_on_echo_req", "handleEchoReq"),
    C.OPTION_REQ: ("_on_option_req", "handleOptionReq"),
    C.ALL_YOURS: ("_on_all_yours", "handleAllYours"),
}

#: submit packet type -> (priority index, background)
_SUBMIT_MODES: dict[int, tuple[int, bool]] = {
    C.SUBMIT_JOB: (1, False),
    C.SUBMIT_JOB_BG: (1, True),
    C.SUBMIT_JOB_HIGH: (0, False),
    C.SUBMIT_JOB_HIGH_BG: (0, True),
    C.SUBMIT_JOB_LOW: (2, False),
    C.SUBMIT_JOB_LOW_BG: (2, True),
}

_Handler = Callable[[Session, bytes], None]
#: A default ``handleX``: a plain function from :mod:`gear.server.hooks`, bound as a method.
_Hook = Callable[[Any, Packet], None]

_OUTCOMES = {C.WORK_FAIL: OUTCOME_FAIL, C.WORK_EXCEPTION: OUTCOME_EXCEPTION}


def _bounded_int(raw: bytes, what: str, high: int) -> int:
    """A decimal in 0..``high``; anything else is the peer's error, not ours."""
    text = raw.strip()
    if not text.isdigit() or len(text) > len(str(high)) or int(text) > high:
        raise RemoteProtocolError(
            "%s %r is not an integer from 0 to %d" % (what, bytes(raw[:40]), high)
        )
    return int(text)


def _packet_caller(method: Callable[[Packet], object], ptype: int) -> _Handler:
    # A module-level closure: mypyc cannot compile one inside a method of a python_class.
    def call(conn: Session, data: bytes) -> None:
        method(Packet(_REQ, ptype, data, cast(Any, conn)))

    return call


@mypyc_attr(allow_interpreted_subclasses=True)
class Handlers(StoreEvents):
    """Peers' events (connect, bytes, disconnect) and one method per packet type."""

    _dispatch: dict[int, _Handler]

    def _line(self, conn: Session, line: bytes) -> None:
        raise NotImplementedError  # the admin layer answers lines

    # ------------------------------------------------------------------
    # peers coming and going

    def _open_session(self, conn: Session) -> None:
        self._connections[conn] = None
        self.connection_map[conn.fd] = conn
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("Accepted connection %r", conn)

    def _forget_session(self, conn: Session) -> None:
        """A peer went away: requeue its running jobs, drop what only it waited for."""
        if conn not in self._connections:
            return
        del self._connections[conn]
        if self.connection_map.get(conn.fd) is conn:
            del self.connection_map[conn.fd]
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("Lost connection %r", conn)
        if self._stopping:
            return
        self._drop_worker(conn)
        for job in list(conn.client_jobs.values()):
            if conn in job.clients:
                job.clients = [c for c in job.clients if c is not conn]
            if not job.clients and not job.background and job.state in (QUEUED, SCHEDULED):
                self._remove_waiting(job)
        conn.client_jobs.clear()

    # ------------------------------------------------------------------
    # input

    def _protocol_error(self, conn: Session, code: bytes, message: str) -> None:
        self._log_limited(
            "protocol", logging.INFO, "Protocol error from %s: %s", conn.host, message
        )
        self._send(conn, packet(C.ERROR, code + b"\x00" + message.encode()))
        self._close(conn)

    def _build_dispatch(self) -> dict[int, _Handler]:
        table: dict[int, _Handler] = {}
        for ptype, (_, hook) in HANDLERS.items():
            if hook and getattr(type(self), hook) is not getattr(Handlers, hook):
                table[ptype] = self._packet_hook(ptype, hook)
            else:
                table[ptype] = self._internal_handler(ptype)
        return table

    def _internal_handler(self, ptype: int) -> _Handler:
        if ptype in _SUBMIT_MODES:
            return partial(self._on_submit, ptype)
        return cast(_Handler, getattr(self, HANDLERS[ptype][0]))

    def _packet_hook(self, ptype: int, hook: str) -> _Handler:
        """Route a packet type to a subclass's gear-0.16-style ``handleX(packet)``."""
        return _packet_caller(getattr(self, hook), ptype)

    def _frame(self, conn: Session, magic: bytes, ptype: int, payload: bytes) -> None:
        if conn.closed:
            return
        handler = self._dispatch.get(ptype)
        if self._trace:
            self._trace_frame(conn, ptype, payload, handler is not None and magic == _REQ)
        if handler is None or magic != _REQ:
            self._unexpected(conn, magic, ptype)
            return
        try:
            handler(conn, payload)
        except RemoteProtocolError as e:
            self.sendError(conn, b"INVALID_ARGUMENTS", str(e).encode())
        except Exception:
            self.log.exception("Error handling %s from %s", C.types.get(ptype), conn.host)
            self._protocol_error(conn, b"SERVER_ERROR", "internal server error")

    def _unexpected(self, conn: Session, magic: bytes, ptype: int) -> None:
        name = C.types.get(ptype)
        if name is None:
            text = "unknown packet type %d" % ptype
            code = b"UNKNOWN_PACKET"
        elif magic != _REQ:
            text = "%s with RES magic: clients and workers must send REQ packets" % name
            code = b"UNEXPECTED_PACKET"
        else:
            text = "%s is not a request a server accepts" % name
            code = b"UNEXPECTED_PACKET"
        self._log_limited("unexpected", logging.INFO, "From %s: %s", conn.host, text)
        self.sendError(conn, code, text.encode())

    # ------------------------------------------------------------------
    # clients

    def _on_submit(self, ptype: int, conn: Session, data: bytes) -> None:
        """SUBMIT_JOB and its _HIGH/_LOW/_BG forms: (name, unique, arguments)."""
        parts = data.split(b"\x00", 2)
        if len(parts) != 3:
            raise RemoteProtocolError(
                "%s needs 3 NUL-separated arguments, got %d" % (C.types[ptype], len(parts))
            )
        priority, background = _SUBMIT_MODES[ptype]
        self._submit(conn, parts[0], parts[1], parts[2], priority, background)

    def _on_submit_job_sched(self, conn: Session, data: bytes) -> None:
        name, unique, minute, hour, day, month, weekday, args = split_arguments(
            C.SUBMIT_JOB_SCHED, data
        )
        try:
            fields = [
                schedule.parse_field(kind, raw)
                for kind, raw in (
                    ("minute", minute),
                    ("hour", hour),
                    ("day", day),
                    ("month", month),
                    ("weekday", weekday),
                )
            ]
        except ValueError as e:
            raise RemoteProtocolError("SUBMIT_JOB_SCHED: %s" % (e,)) from None
        when = schedule.next_run(fields[0], fields[1], fields[2], fields[3], fields[4])
        if when is None:
            raise RemoteProtocolError("SUBMIT_JOB_SCHED: no date matches the schedule")
        self._submit(conn, name, unique, args, 1, True, when)

    def _on_submit_job_epoch(self, conn: Session, data: bytes) -> None:
        name, unique, epoch, args = split_arguments(C.SUBMIT_JOB_EPOCH, data)
        when = float(_bounded_int(epoch, "SUBMIT_JOB_EPOCH: epoch", MAX_EPOCH))
        self._submit(conn, name, unique, args, 1, True, when)

    def _on_submit_reduce_job(self, conn: Session, data: bytes) -> None:
        self.sendError(
            conn,
            b"NOT_SUPPORTED",
            b"SUBMIT_REDUCE_JOB is not supported by this server; submit a normal job",
        )

    def _on_get_status(self, conn: Session, data: bytes) -> None:
        job = self.jobs.get(data)
        if job is None:
            payload = data + b"\x000\x000\x000\x000"
        else:
            payload = b"\x00".join(
                (
                    data,
                    b"1",
                    b"1" if job.running else b"0",
                    job.numerator or b"0",
                    job.denominator or b"0",
                )
            )
        self._send(conn, packet(C.STATUS_RES, payload))

    def _on_get_status_unique(self, conn: Session, data: bytes) -> None:
        job = self._find_unique(data) if data else None
        if job is None:
            fields: tuple[bytes, ...] = (data, b"0", b"0", b"0", b"0", b"0")
        else:
            fields = (
                data,
                b"1",
                b"1" if job.running else b"0",
                job.numerator or b"0",
                job.denominator or b"0",
                str(len(job.clients)).encode(),
            )
        self._send(conn, packet(C.STATUS_RES_UNIQUE, b"\x00".join(fields)))

    def _find_unique(self, unique: bytes) -> ServerJob | None:
        for fq in self.function_queues.values():
            job = fq.uniques.get(unique)
            if job is not None:
                return job
        return None

    def _on_echo_req(self, conn: Session, data: bytes) -> None:
        self._send(conn, packet(C.ECHO_RES, data))

    def _on_option_req(self, conn: Session, data: bytes) -> None:
        if data == b"exceptions":
            conn.options.add(data)
            self._send(conn, packet(C.OPTION_RES, data))
        else:
            self.sendError(conn, b"UNKNOWN_OPTION", b"Unknown option: " + data)

    def _on_all_yours(self, conn: Session, data: bytes) -> None:
        pass

    def _on_set_client_id(self, conn: Session, data: bytes) -> None:
        check_field(data, "client id", self.max_client_id)
        conn.client_id = data

    # ------------------------------------------------------------------
    # workers

    def _on_grab_job(self, conn: Session, data: bytes) -> None:
        job = self._grab(conn)
        if job is not None:
            payload = job.handle + b"\x00" + job._name + b"\x00" + job._arguments
            self._send(conn, packet(C.JOB_ASSIGN, payload))

    def _on_grab_job_uniq(self, conn: Session, data: bytes) -> None:
        job = self._grab(conn)
        if job is not None:
            self.sendJobAssignUniq(conn, job)

    def _on_grab_job_all(self, conn: Session, data: bytes) -> None:
        job = self._grab(conn)
        if job is not None:
            payload = b"\x00".join(
                (job.handle, job._name, job._unique or b"", b"", bytes(job._arguments))
            )
            self._send(conn, packet(C.JOB_ASSIGN_ALL, payload))

    def _on_pre_sleep(self, conn: Session, data: bytes) -> None:
        for fq in conn.abilities.values():
            if (fq.counts[0] or fq.counts[1] or fq.counts[2]) and not self._graceful:
                conn.state = "AWAKE"
                self._send(conn, NOOP)
                return
        conn.state = "SLEEP"
        for fq in conn.abilities.values():
            fq.sleepers[conn] = None

    def _on_can_do(self, conn: Session, data: bytes) -> None:
        self._add_ability(conn, data, None)

    def _on_can_do_timeout(self, conn: Session, data: bytes) -> None:
        name, raw = split_arguments(C.CAN_DO_TIMEOUT, data)
        timeout = _bounded_int(raw, "CAN_DO_TIMEOUT: timeout", MAX_TIMEOUT)
        self._add_ability(conn, name, float(timeout))

    def _on_cant_do(self, conn: Session, data: bytes) -> None:
        self._remove_ability(conn, data)

    def _on_reset_abilities(self, conn: Session, data: bytes) -> None:
        for name in list(conn.abilities):
            self._remove_ability(conn, name)
        conn.functions.clear()
        conn.timeouts.clear()

    def _worker_job(self, conn: Session, handle: bytes, ptype: int) -> ServerJob | None:
        job = conn.worker_jobs.get(handle)
        if job is None and self.log.isEnabledFor(logging.DEBUG):
            self.log.debug(
                "Ignoring %s for %r: not a job running on this connection", C.types[ptype], handle
            )
        return job

    def _on_work_data(self, conn: Session, data: bytes) -> None:
        self._progress(conn, data, C.WORK_DATA)

    def _on_work_warning(self, conn: Session, data: bytes) -> None:
        self._progress(conn, data, C.WORK_WARNING)

    def _progress(self, conn: Session, data: bytes, ptype: int) -> None:
        end = data.find(b"\x00")
        if end < 0:
            raise RemoteProtocolError("%s needs 2 NUL-separated arguments, got 1" % C.types[ptype])
        job = self._worker_job(conn, data[:end], ptype)
        if job is not None:
            self._forward(job, ptype, data)

    def _on_work_status(self, conn: Session, data: bytes) -> None:
        handle, numerator, denominator = split_arguments(C.WORK_STATUS, data)
        job = self._worker_job(conn, handle, C.WORK_STATUS)
        if job is not None:
            job.numerator = numerator
            job.denominator = denominator
            self._forward(job, C.WORK_STATUS, data)

    def _on_work_complete(self, conn: Session, data: bytes) -> None:
        end = data.find(b"\x00")
        if end < 0:
            raise RemoteProtocolError("WORK_COMPLETE needs 2 NUL-separated arguments, got 1")
        job = self._worker_job(conn, data[:end], C.WORK_COMPLETE)
        if job is not None:
            self._forward(job, C.WORK_COMPLETE, data)
            self._finish(job)

    def _on_work_fail(self, conn: Session, data: bytes) -> None:
        job = self._worker_job(conn, data, C.WORK_FAIL)
        if job is not None:
            self._forward(job, C.WORK_FAIL, data)
            self._finish(job, OUTCOME_FAIL)

    def _on_work_exception(self, conn: Session, data: bytes) -> None:
        handle, _ = split_arguments(C.WORK_EXCEPTION, data)
        job = self._worker_job(conn, handle, C.WORK_EXCEPTION)
        if job is None:
            return
        exception = fail = b""
        for client in job.clients:
            if b"exceptions" in client.options:
                exception = exception or packet(C.WORK_EXCEPTION, data)
                self._send(client, exception)
            else:
                fail = fail or packet(C.WORK_FAIL, handle)
                self._send(client, fail)
        self._finish(job, OUTCOME_EXCEPTION)

    # ------------------------------------------------------------------
    # gear 0.16 override points and helpers

    handleSubmitJob: ClassVar[_Hook] = packet_hook(C.SUBMIT_JOB)
    handleSubmitJobBg: ClassVar[_Hook] = packet_hook(C.SUBMIT_JOB_BG)
    handleSubmitJobHigh: ClassVar[_Hook] = packet_hook(C.SUBMIT_JOB_HIGH)
    handleSubmitJobHighBg: ClassVar[_Hook] = packet_hook(C.SUBMIT_JOB_HIGH_BG)
    handleSubmitJobLow: ClassVar[_Hook] = packet_hook(C.SUBMIT_JOB_LOW)
    handleSubmitJobLowBg: ClassVar[_Hook] = packet_hook(C.SUBMIT_JOB_LOW_BG)
    handleSubmitJobSched: ClassVar[_Hook] = packet_hook(C.SUBMIT_JOB_SCHED)
    handleSubmitJobEpoch: ClassVar[_Hook] = packet_hook(C.SUBMIT_JOB_EPOCH)
    handleGrabJob: ClassVar[_Hook] = packet_hook(C.GRAB_JOB)
    handleGrabJobUniq: ClassVar[_Hook] = packet_hook(C.GRAB_JOB_UNIQ)
    handleGrabJobAll: ClassVar[_Hook] = packet_hook(C.GRAB_JOB_ALL)
    handlePreSleep: ClassVar[_Hook] = packet_hook(C.PRE_SLEEP)
    handleCanDo: ClassVar[_Hook] = packet_hook(C.CAN_DO)
    handleCanDoTimeout: ClassVar[_Hook] = packet_hook(C.CAN_DO_TIMEOUT)
    handleCantDo: ClassVar[_Hook] = packet_hook(C.CANT_DO)
    handleResetAbilities: ClassVar[_Hook] = packet_hook(C.RESET_ABILITIES)
    handleSetClientID: ClassVar[_Hook] = packet_hook(C.SET_CLIENT_ID)
    handleWorkData: ClassVar[_Hook] = packet_hook(C.WORK_DATA)
    handleWorkWarning: ClassVar[_Hook] = packet_hook(C.WORK_WARNING)
    handleWorkStatus: ClassVar[_Hook] = packet_hook(C.WORK_STATUS)
    handleWorkComplete: ClassVar[_Hook] = packet_hook(C.WORK_COMPLETE)
    handleWorkFail: ClassVar[_Hook] = packet_hook(C.WORK_FAIL)
    handleWorkException: ClassVar[_Hook] = packet_hook(C.WORK_EXCEPTION)
    handleGetStatus: ClassVar[_Hook] = packet_hook(C.GET_STATUS)
    handleGetStatusUnique: ClassVar[_Hook] = packet_hook(C.GET_STATUS_UNIQUE)
    handleEchoReq: ClassVar[_Hook] = packet_hook(C.ECHO_REQ)
    handleOptionReq: ClassVar[_Hook] = packet_hook(C.OPTION_REQ)
    handleAllYours: ClassVar[_Hook] = packet_hook(C.ALL_YOURS)

    def sendJobAssignUniq(self, connection: Session, job: ServerJob) -> None:
        payload = b"\x00".join((job.handle, job._name, job._unique or b"", bytes(job._arguments)))
        self._send(connection, packet(C.JOB_ASSIGN_UNIQ, payload))

    def sendNoJob(self, connection: Session) -> None:
        self._send(connection, NO_JOB)

    def handlePassthrough(self, packet: Packet, finished: bool = False) -> None:
        """Forward a WORK_* packet to the job's clients (RES magic)."""
        conn = cast(Session, packet.connection)
        data = bytes(packet.data)
        handle = data.split(b"\x00", 1)[0]
        job = conn.worker_jobs.get(handle)
        if job is None:
            return
        self._forward(job, packet.ptype, data)
        if finished:
            self._finish(job, _OUTCOMES.get(packet.ptype, OUTCOME_COMPLETE))
