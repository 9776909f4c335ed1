"""The poll and connect threads of the threaded Client and Worker, and hook dispatch.

Every :class:`BaseClientServer` owns a poll thread, which reads every active
connection and runs the ``handle*`` hooks, and a connect thread, which dials
inactive connections with a back-off. Both start in the constructor, as in
gear 0.16. Nothing here knows a role: the client and worker packages override
the hooks and the private ``_on*`` steps.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from gear import constants
from gear._connect_errors import (
    ConnectFailures,
    check_tls_files_readable,
    describe,
    server_address,
)
from gear.admin import AdminRequest
from gear.connection import Connection
from gear.job import BaseJob
from gear.packet import Packet
from gear.reconnect import ReconnectPolicy
from gear.tasks import Task
from gear.util import convert_to_bytes

__all__ = ["BaseClientServer", "HANDLERS"]

_POLL_IN = select.POLLIN | select.POLLPRI
_POLL_BAD = select.POLLERR | select.POLLHUP | select.POLLNVAL

#: Packet type -> name of the hook :meth:`BaseClientServer.handlePacket` calls.
HANDLERS: dict[int, str] = {
    constants.JOB_CREATED: "handleJobCreated",
    constants.WORK_COMPLETE: "handleWorkComplete",
    constants.WORK_FAIL: "handleWorkFail",
    constants.WORK_EXCEPTION: "handleWorkException",
    constants.WORK_DATA: "handleWorkData",
    constants.WORK_WARNING: "handleWorkWarning",
    constants.WORK_STATUS: "handleWorkStatus",
    constants.STATUS_RES: "handleStatusRes",
    constants.STATUS_RES_UNIQUE: "handleStatusResUnique",
    constants.GET_STATUS: "handleGetStatus",
    constants.JOB_ASSIGN_UNIQ: "handleJobAssignUnique",
    constants.JOB_ASSIGN: "handleJobAssign",
    constants.NO_JOB: "handleNoJob",
    constants.NOOP: "handleNoop",
    constants.SUBMIT_JOB: "handleSubmitJob",
    constants.SUBMIT_JOB_BG: "handleSubmitJobBg",
    constants.SUBMIT_JOB_HIGH: "handleSubmitJobHigh",
    constants.SUBMIT_JOB_HIGH_BG: "handleSubmitJobHighBg",
    constants.SUBMIT_JOB_LOW: "handleSubmitJobLow",
    constants.SUBMIT_JOB_LOW_BG: "handleSubmitJobLowBg",
    constants.SUBMIT_JOB_SCHED: "handleSubmitJobSched",
    constants.SUBMIT_JOB_EPOCH: "handleSubmitJobEpoch",
    constants.GRAB_JOB_UNIQ: "handleGrabJobUniq",
    constants.GRAB_JOB: "handleGrabJob",
    constants.PRE_SLEEP: "handlePreSleep",
    constants.SET_CLIENT_ID: "handleSetClientID",
    constants.CAN_DO: "handleCanDo",
    constants.CAN_DO_TIMEOUT: "handleCanDoTimeout",
    constants.CANT_DO: "handleCantDo",
    constants.RESET_ABILITIES: "handleResetAbilities",
    constants.ECHO_REQ: "handleEchoReq",
    constants.ECHO_RES: "handleEchoRes",
    constants.ERROR: "handleError",
    constants.ALL_YOURS: "handleAllYours",
    constants.OPTION_REQ: "handleOptionReq",
    constants.OPTION_RES: "handleOptionRes",
}


class BaseClientServer:
    """Owner of the poll and connect threads and of the connection lists.

    ``reconnect_delay`` is how long the connect thread waits before dialling
    a server again after a failed attempt (2 s as in gear 0.16; tests lower
    it). It is read after every failure, so it can be changed at any time.
    ``connect_timeout`` bounds each attempt (10 s), so an unreachable host
    does not hold up the others; it applies to servers added afterwards.

    ``reconnect`` (a :class:`gear.ReconnectPolicy`, given to the constructor
    or set before servers are added) replaces the fixed wait by the policy's:
    after a server's ``n``-th failed attempt in a row the thread waits
    ``reconnect.delay(n)`` before dialling that server again, and once
    ``reconnect.max_attempts`` attempts in a row have failed the server is
    given up, as the asyncio classes do: it is not dialled again, stays in
    ``inactive_connections`` and in ``connectErrors()`` with its last
    error, and once every server is given up ``waitForServer`` raises
    :class:`gear.NoConnectedServersError`. Without a policy, or with one
    whose ``max_attempts`` is None, servers are retried for ever (gear 0.16).
    """

    reconnect_delay: float = 2.0
    reconnect: ReconnectPolicy | None = None
    #: Seconds one connection attempt (TCP connect and TLS handshake) may take.
    connect_timeout: float | None = 10.0

    def __init__(
        self, client_id: str | bytes | None = None, *, reconnect: ReconnectPolicy | None = None
    ) -> None:
        self.client_id: bytes | None = convert_to_bytes(client_id)
        if reconnect is not None:
            self.reconnect = reconnect
        if client_id:
            self.log = logging.getLogger("gear.BaseClientServer.%s" % (_text(client_id),))
        else:
            self.log = logging.getLogger("gear.BaseClientServer")
        self.running = True
        self._shut_down = False
        self.active_connections: list[Connection] = []
        self.inactive_connections: list[Connection] = []
        self.connection_index = -1
        self.connections_condition = threading.Condition()
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        self._poll_dirty = True
        self._handler_cache: dict[int, Callable[[Packet], object]] = {}
        self._timed = type(self).reportTimingStats is not BaseClientServer.reportTimingStats
        self._failures = ConnectFailures(self.log)
        #: Servers the reconnect policy's ``max_attempts`` ran out for.
        self._given_up: set[Connection] = set()
        # How the connect thread tells time and waits for it (tests fake both).
        self._clock: Callable[[], float] = time.monotonic
        self._pause: Callable[[float], object] = self.connections_condition.wait
        self.poll_thread = threading.Thread(
            name="Gearman client poll", target=self._doPollLoop, daemon=True
        )
        self.connect_thread = threading.Thread(
            name="Gearman client connect", target=self._doConnectLoop, daemon=True
        )
        self.poll_thread.start()
        self.connect_thread.start()

    # -- connect thread -------------------------------------------------

    def _doConnectLoop(self) -> None:
        # Per server: failed attempts in a row, and when to dial it next.
        failures: dict[Connection, int] = {}
        due: dict[Connection, float] = {}
        while self.running:
            with self.connections_condition:
                ready = self._dueConnections(due)
                while self.running and not ready:
                    waiting = [c for c in self.inactive_connections if c not in self._given_up]
                    if waiting:
                        self._pause(max(0.0, min(due[c] for c in waiting) - self._clock()))
                    else:
                        self.connections_condition.wait()
                    ready = self._dueConnections(due)
            for conn in ready:
                if not self.running:
                    return
                address = server_address(conn.host, conn.port)
                try:
                    self._connectOne(conn)
                except Exception as e:
                    count = failures[conn] = failures.get(conn, 0) + 1
                    self.log.debug("Unable to connect to %s: %s", conn, e)
                    self._failures.failed(address, describe(e, conn.connect_timeout))
                    policy = self.reconnect
                    if policy is not None and policy.gives_up(count):
                        self._giveUp(conn, address, count)
                        continue
                    delay = self.reconnect_delay if policy is None else policy.delay(count)
                    due[conn] = self._clock() + delay
                else:
                    failures.pop(conn, None)
                    due.pop(conn, None)
                    self._failures.connected(address)

    def _dueConnections(self, due: dict[Connection, float]) -> list[Connection]:
        """The inactive servers whose wait is over (call with the condition held)."""
        now = self._clock()
        return [
            c
            for c in self.inactive_connections
            if c not in self._given_up and due.get(c, now) <= now
        ]

    def _giveUp(self, conn: Connection, address: str, attempts: int) -> None:
        self._failures.gave_up(address, attempts)
        with self.connections_condition:
            self._given_up.add(conn)
            self.connections_condition.notify_all()

    def _connectOne(self, conn: Connection) -> None:
        if conn.use_ssl:
            check_tls_files_readable(str(conn.ssl_key), str(conn.ssl_cert), str(conn.ssl_ca))
        conn.connect()
        try:
            self._onConnect(conn)
        except Exception:
            conn.disconnect()
            raise
        self._onActiveConnection(conn)

    def _activate(self, conn: Connection) -> None:
        """Move a connected ``conn`` to the active list and wake the waiters."""
        with self.connections_condition:
            if conn in self.inactive_connections:
                self.inactive_connections.remove(conn)
            if conn not in self.active_connections:
                self.active_connections.append(conn)
            self._poll_dirty = True
            self.connections_condition.notify_all()
        self._wake()
        self.log.debug("Connected to %s", conn)

    def _onConnect(self, conn: Connection) -> None:
        """Run the role's greeting on a new connection before it is active."""

    def _onActiveConnection(self, conn: Connection) -> None:
        """Activate ``conn``; roles extend this to act once it is readable."""
        self._activate(conn)

    # -- poll thread ----------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self.wake_write, b"1")
        except OSError:
            pass

    def _doPollLoop(self) -> None:
        poll = select.poll()
        fdmap: dict[int, tuple[Connection, Any]] = {}
        while self.running:
            if self._poll_dirty:
                with self.connections_condition:
                    self._poll_dirty = False
                    poll = select.poll()
                    poll.register(self.wake_read, _POLL_IN)
                    fdmap = {}
                    for conn in self.active_connections:
                        sock = conn.conn
                        if sock is None:
                            continue
                        try:
                            fd = sock.fileno()
                        except OSError:
                            continue
                        poll.register(fd, _POLL_IN)
                        fdmap[fd] = (conn, sock)
            try:
                events = poll.poll()
            except InterruptedError:
                continue
            for fd, event in events:
                if fd == self.wake_read:
                    try:
                        os.read(self.wake_read, 4096)
                    except OSError:
                        pass
                    continue
                entry = fdmap.get(fd)
                if entry is None:
                    continue
                conn, sock = entry
                if conn.conn is not sock or conn not in self.active_connections:
                    self._poll_dirty = True
                    continue
                if event & _POLL_IN:
                    self._readFromConnection(conn)
                elif event & _POLL_BAD:
                    self.log.debug("Poll error on %s", conn)
                    self._lostConnection(conn)

    def _readFromConnection(self, conn: Connection) -> None:
        try:
            items = conn.readAvailable()
        except Exception as e:
            if self.running:
                self.log.debug("Error reading from %s: %s", conn, e)
            self._lostConnection(conn)
            return
        if items is None:
            self.log.debug("Server %s closed the connection", conn)
            self._lostConnection(conn)
            return
        for item in items:
            if not conn.connected:
                return
            try:
                if isinstance(item, Packet):
                    self.handlePacket(item)
                else:
                    self.handleAdminRequest(item)
            except Exception:
                self.log.exception("Exception while handling %s from %s", item, conn)

    # -- connection loss ------------------------------------------------

    def _lostConnection(self, conn: Connection) -> None:
        """Mark ``conn`` lost: inactive, disconnected, its jobs told, as gear 0.16 does."""
        with self.connections_condition:
            if conn not in self.active_connections:
                return
            self.active_connections.remove(conn)
            if self.running and conn not in self.inactive_connections:
                self.inactive_connections.append(conn)
            jobs = list(conn.related_jobs.values())
            tasks = list(conn.pending_tasks)
            admin = list(conn.admin_requests)
            conn.disconnect()
            self._poll_dirty = True
            self.connections_condition.notify_all()
        self._wake()
        self.log.debug("Lost connection to %s", conn)
        for job in jobs:
            try:
                self.handleDisconnect(job)
            except Exception:
                self.log.exception("Exception in handleDisconnect for %s", job)
        self._onConnectionLost(conn, jobs, tasks, admin)

    def _onConnectionLost(
        self, conn: Connection, jobs: list[BaseJob], tasks: list[Task], admin: list[AdminRequest]
    ) -> None:
        """Release whoever waits on requests the lost connection will never answer.

        gear 0.16 left submits waiting out their timeout; completing the
        tasks makes failover to the next server immediate.
        """
        for task in tasks:
            task.setComplete()

    def handleDisconnect(self, job: Any) -> object:
        """Called for each job of a lost connection; override to react.

        ``job`` is typed Any because the role decides what it is (a
        :class:`gear.Job` on a Client), so subclasses can name that type.
        """
        return job

    # -- dispatch -------------------------------------------------------

    def handlePacket(self, packet: Packet) -> None:
        """Run the ``handle*`` hook for ``packet.ptype`` and report its timing."""
        ptype = packet.ptype
        handler = self._handler_cache.get(ptype)
        if handler is None:
            name = HANDLERS.get(ptype)
            if name is None:
                self.log.error("Received unknown packet: %s", packet)
                return
            handler = getattr(self, name)
            self._handler_cache[ptype] = handler
        if self._timed:
            start = time.monotonic()
            handler(packet)
            self.reportTimingStats(ptype, time.monotonic() - start)
        else:
            handler(packet)

    def reportTimingStats(self, ptype: int, duration: float) -> None:
        """Override to record how long a packet's hook took (seconds)."""

    def handleAdminRequest(self, request: AdminRequest) -> None:
        request.setComplete()

    def _unhandled(self, packet: Packet) -> object:
        self.log.error("Received unhandled packet: %s", packet)
        return packet

    handleJobCreated = _unhandled
    handleWorkComplete = _unhandled
    handleWorkFail = _unhandled
    handleWorkException = _unhandled
    handleWorkData = _unhandled
    handleWorkWarning = _unhandled
    handleWorkStatus = _unhandled
    handleStatusRes = _unhandled
    handleStatusResUnique = _unhandled
    handleGetStatus = _unhandled
    handleJobAssignUnique = _unhandled
    handleJobAssign = _unhandled
    handleNoJob = _unhandled
    handleNoop = _unhandled
    handleSubmitJob = _unhandled
    handleSubmitJobBg = _unhandled
    handleSubmitJobHigh = _unhandled
    handleSubmitJobHighBg = _unhandled
    handleSubmitJobLow = _unhandled
    handleSubmitJobLowBg = _unhandled
    handleSubmitJobSched = _unhandled
    handleSubmitJobEpoch = _unhandled
    handleGrabJobUniq = _unhandled
    handleGrabJob = _unhandled
    handlePreSleep = _unhandled
    handleSetClientID = _unhandled
    handleCanDo = _unhandled
    handleCanDoTimeout = _unhandled
    handleCantDo = _unhandled
    handleResetAbilities = _unhandled
    handleEchoReq = _unhandled
    handleEchoRes = _unhandled
    handleError = _unhandled
    handleAllYours = _unhandled
    handleOptionReq = _unhandled
    handleOptionRes = _unhandled

    # -- shutdown -------------------------------------------------------

    def shutdown(self) -> None:
        """Stop both threads, then close every connection; a second call is harmless."""
        if self._shut_down:
            self.log.warning("Shutdown called when not currently running. Ignoring.")
            return
        self._shut_down = True
        self.running = False
        with self.connections_condition:
            self.connections_condition.notify_all()
        self._wake()
        current = threading.current_thread()
        for thread in (self.connect_thread, self.poll_thread):
            if thread is not current:
                thread.join()
        with self.connections_condition:
            closing = []
            for conn in self.active_connections + self.inactive_connections:
                closing.append(
                    (
                        conn,
                        list(conn.related_jobs.values()),
                        list(conn.pending_tasks),
                        list(conn.admin_requests),
                    )
                )
                conn.disconnect()
            self.active_connections = []
            self.inactive_connections = []
            self.connections_condition.notify_all()
        for conn, jobs, tasks, admin in closing:
            self._onConnectionLost(conn, jobs, tasks, admin)
        for fd in (self.wake_read, self.wake_write):
            try:
                os.close(fd)
            except OSError:
                pass


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return value.decode("utf8", "replace")
    return value


BaseClientServer.__module__ = "gear"
