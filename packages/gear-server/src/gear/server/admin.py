"""The text admin protocol: ``status``, ``workers``, ``show jobs``, ``maxqueue``, ...

Replies use gear 0.16's formats (gearmand's where 0.16 had none). Every
listing is written in chunks as it is produced, so a peer that asks for a
large one and never reads is cut off at ``max_output_buffer``. Commands that
change the server need ``admin`` when an ACL is set (see
:mod:`gear.server.acl_admin`).
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast

from gear import constants as C
from gear.admin import ServerAdminRequest
from gear.errors import RemoteProtocolError
from gear.server._version import __version__
from gear.server.handlers import Handlers
from gear.server.model import QUEUED, SCHEDULED, FunctionQueue, Session
from gear.server.outbox import err_text, packet

__all__ = ["ADMIN_VERBS", "Admin"]

#: Admin commands that change the server: with an ACL they need ``admin``.
ADMIN_VERBS = frozenset((b"shutdown", b"maxqueue", b"create", b"drop"))


class Admin(Handlers):
    """One method per admin command; :meth:`handleAdminRequest` picks it."""

    def _line(self, conn: Session, line: bytes) -> None:
        if conn.closed:
            return
        try:
            self._admin_line(conn, line)
        except Exception:
            self.log.exception("Error handling admin line from %s", conn.host)
            self._send(conn, b"ERR SERVER_ERROR Internal+server+error\n")

    def _admin_line(self, conn: Session, line: bytes) -> None:
        command = line.rstrip(b"\r\n")
        if not command.strip():
            return
        request = ServerAdminRequest(cast(Any, conn))
        request.command = command
        self.handleAdminRequest(request)

    def handleAdminRequest(self, request: ServerAdminRequest) -> None:
        """Answer one admin line in gear 0.16's formats (gearmand's where 0.16 had none)."""
        words = request.command.split()
        verb = words[0].lower()
        if (
            verb in ADMIN_VERBS
            and self.acl is not None
            and not self._may(cast(Session, request.connection), "admin", request.command, request)
        ):
            return
        if verb == b"cancel" and len(words) > 1 and words[1].lower() == b"job":
            self.handleCancelJob(request)
        elif verb == b"status":
            self.handleStatus(request)
        elif verb == b"cluster":
            self.handleCluster(request)
        elif verb == b"workers":
            self.handleWorkers(request)
        elif verb == b"acl" and len(words) > 1:
            sub = words[1].lower()
            if sub == b"list":
                self.handleACLList(request)
            elif sub == b"grant":
                self.handleACLGrant(request)
            elif sub == b"revoke":
                self.handleACLRevoke(request)
            elif sub == b"self-revoke":
                self.handleACLSelfRevoke(request)
            else:
                self._unknown_command(request)
        elif verb == b"version":
            self._reply(request, b"OK " + __version__.encode() + b"\n")
        elif verb == b"getpid":
            self._reply(request, b"OK %d\n" % os.getpid())
        elif verb == b"verbose":
            level = logging.getLevelName(self.log.getEffectiveLevel())
            self._reply(request, b"OK " + str(level).encode() + b"\n")
        elif verb == b"show" and words[1:2] == [b"jobs"]:
            self.handleShowJobs(request)
        elif verb == b"show" and [w.lower() for w in words[1:3]] == [b"unique", b"jobs"]:
            self.handleShowUniqueJobs(request)
        elif verb == b"maxqueue":
            self.handleMaxQueue(request)
        elif verb == b"prioritystatus":
            self.handlePriorityStatus(request)
        elif verb == b"shutdown":
            self.handleShutdown(request)
        elif verb in (b"create", b"drop") and words[1:2] == [b"function"]:
            self.handleFunctionCommand(request)
        else:
            self._unknown_command(request)

    def _unknown_command(self, request: ServerAdminRequest) -> None:
        self._reply(request, b"ERR UNKNOWN_COMMAND Unknown+server+command\n")

    def handleCancelJob(self, request: ServerAdminRequest) -> None:
        words = request.command.split()
        if len(words) < 3:
            self._incomplete(request, "usage: cancel job HANDLE")
            return
        job = self.jobs.get(words[2])
        if job is None or job.state not in (QUEUED, SCHEDULED):
            self._reply(request, b"ERR UNKNOWN_JOB\n")
            return
        if not self._may_cancel(cast(Session, request.connection), job._name):
            self._reply(request, b"ERR PERMISSION_DENIED\n")
            return
        data = packet(C.WORK_FAIL, job.handle)
        clients = list(job.clients)
        self._remove_waiting(job)
        for client in clients:
            self._send(client, data)
        self._reply(request, b"OK\n")

    def _visible_functions(self) -> list[FunctionQueue]:
        return [
            fq
            for name, fq in self.function_queues.items()
            if fq.workers or fq.total or name in self.functions
        ]

    def _shown(self, value: bytes) -> bytes:
        """A function name or unique id as listings print it: escaped only if
        it came from a queue store and breaks today's rules (see store_events)."""
        listed = self.listed_as
        return value if listed is None else listed.get(value, value)

    def handleStatus(self, request: ServerAdminRequest) -> None:
        self._reply_lines(
            request,
            (
                b"%s\t%d\t%d\t%d\n" % (self._shown(fq.name), fq.total, fq.running, fq.workers)
                for fq in self._visible_functions()
            ),
        )

    def handleCluster(self, request: ServerAdminRequest) -> None:
        """This node's own and adopted background jobs, then every node of the
        cluster (a shared queue store only): id, epoch, lease left, stored jobs."""
        nodes = self.queue_store.cluster_nodes() if self.queue_store is not None else None
        if nodes is None:
            self._reply(request, b"ERR NO_CLUSTER The+queue+store+is+not+shared\n")
            return
        own = sum(1 for job in self.jobs.values() if job.background) - len(self.adopted)
        lines = [b"jobs\town\t%d\tadopted\t%d\n" % (own, len(self.adopted))]
        lines += [
            b"node\t%s\tepoch\t%d\tlease\t%.1f\tjobs\t%d%s\n"
            % (n.node_id.encode(), n.epoch, n.lease_left, n.jobs, b"\tself" if n.is_self else b"")
            for n in nodes
        ]
        self._reply_lines(request, lines)

    def handlePriorityStatus(self, request: ServerAdminRequest) -> None:
        self._reply_lines(
            request,
            (
                b"%s\t%d\t%d\t%d\t%d\n"
                % (self._shown(fq.name), fq.counts[0], fq.counts[1], fq.counts[2], fq.workers)
                for fq in self._visible_functions()
            ),
        )

    def handleWorkers(self, request: ServerAdminRequest) -> None:
        plain = self.listed_as is None
        self._reply_lines(
            request,
            (
                b"%d %s %s : %s\n"
                % (
                    conn.fd,
                    conn.host.encode(),
                    conn.client_id or b"-",
                    b" ".join(conn.abilities if plain else map(self._shown, conn.abilities)),
                )
                for conn in list(self._connections)
            ),
        )

    def handleShowJobs(self, request: ServerAdminRequest) -> None:
        self._reply_lines(
            request,
            (
                b"%s\t%d\t0\t%d\n" % (job.handle, job.retries, 1 if job.state == QUEUED else 0)
                for job in list(self.jobs.values())
            ),
        )

    def handleShowUniqueJobs(self, request: ServerAdminRequest) -> None:
        self._reply_lines(
            request,
            (
                self._shown(unique) + b"\n"
                for fq in self.function_queues.values()
                for unique in fq.uniques
            ),
        )

    def handleMaxQueue(self, request: ServerAdminRequest) -> None:
        words = request.command.split()
        if len(words) < 2:
            self._incomplete(request, "usage: maxqueue FUNCTION [SIZE | HIGH NORMAL LOW]")
            return
        sizes: list[int] | None
        try:
            # A negative size means no limit, as in gearmand (so does 0).
            sizes = [max(int(w), 0) for w in words[2:]]
        except ValueError:
            sizes = None
        if sizes is None or len(sizes) not in (0, 1, 3):
            self._reply(
                request,
                b"ERR INVALID_ARGUMENTS " + err_text("sizes must be 1 or 3 integers") + b"\n",
            )
            return
        fq = self._admin_function(request, words[1])
        if fq is None:
            return
        if not sizes or not any(sizes):
            fq.max_queue = None
        elif len(sizes) == 1:
            fq.max_queue = (sizes[0], sizes[0], sizes[0])
        else:
            fq.max_queue = (sizes[0], sizes[1], sizes[2])
        self._release(fq)
        self._reply(request, b"OK\n")

    def _admin_function(self, request: ServerAdminRequest, name: bytes) -> FunctionQueue | None:
        try:
            return self._new_function(name)
        except RemoteProtocolError as e:
            self._reply(request, b"ERR INVALID_ARGUMENTS " + err_text(str(e)) + b"\n")
            return None

    def handleFunctionCommand(self, request: ServerAdminRequest) -> None:
        """gearmand's ``create function NAME`` and ``drop function NAME``."""
        words = request.command.split()
        if len(words) < 3:
            self._incomplete(request, "usage: create|drop function NAME")
            return
        name = words[2]
        if words[0].lower() == b"create":
            if self._admin_function(request, name) is None:
                return
            self._created.add(name)
            self.functions.add(name)
            self._reply(request, b"OK\n")
            return
        fq = self.function_queues.get(name)
        if fq is None:
            self._reply(request, b"ERR UNKNOWN_FUNCTION Function+not+found\n")
        elif fq.workers or fq.total:
            self._reply(request, b"ERR FUNCTION_IN_USE Function+has+jobs+or+workers\n")
        else:
            del self.function_queues[name]
            self.functions.discard(name)
            self._created.discard(name)
            self._reply(request, b"OK\n")

    def handleShutdown(self, request: ServerAdminRequest) -> None:
        words = request.command.split()
        graceful = len(words) > 1 and words[1].lower() == b"graceful"
        self._reply(request, b"OK\n")
        self._flush()
        if graceful:
            self._begin_graceful()
        else:
            self.log.info("Shutdown requested by admin command")
            self._stop()
