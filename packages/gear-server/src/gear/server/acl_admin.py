"""Who may do what: the ACL checks and the ``acl`` admin commands.

Subjects are TLS certificate Common Names (None without TLS). Without an
ACL every connection may do everything; with one, invoking and
registering a function are checked per name, and admin commands that
change the server need ``admin`` (or ``grant``). docs/explanation/security.rst
lists the rule for each command.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol, cast

from gear.acl import ACLEntry, ACLError
from gear.admin import ServerAdminRequest
from gear.server._compiled import mypyc_attr
from gear.server.model import Session
from gear.server.outbox import Outbox, err_text, escape_text

__all__ = ["ACLLike", "AclAdmin", "acl_line"]


_DENIED_LOG: Final = {
    "invoke": "ACL denied %s invoking %r",
    "register": "ACL denied %s registering %r",
    "admin": "ACL denied %s the admin command %r",
}


class ACLLike(Protocol):
    """What the server needs from :class:`gear.ACL` (gear-acl)."""

    def canRegister(self, subject: str | None, name: str) -> bool: ...
    def canInvoke(self, subject: str | None, name: str) -> bool: ...
    def canGrant(self, subject: str | None) -> bool: ...
    def canAdmin(self, subject: str | None) -> bool: ...
    def grantInvoke(self, subject: str, invoke: str) -> None: ...
    def grantRegister(self, subject: str, register: str) -> None: ...
    def grantGrant(self, subject: str) -> None: ...
    def revokeInvoke(self, subject: str) -> None: ...
    def revokeRegister(self, subject: str) -> None: ...
    def revokeGrant(self, subject: str) -> None: ...
    def remove(self, subject: str) -> None: ...
    def getEntries(self) -> list[ACLEntry]: ...


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def acl_line(entry: Any) -> bytes:
    """One ``acl list`` line: gear 0.16's, plus ``admin=True`` only where it is set."""
    fields = [
        escape_text(str(entry.subject)),
        "register=%s" % escape_text(str(entry.register)),
        "invoke=%s" % escape_text(str(entry.invoke)),
        "grant=%s" % (entry.grant,),
    ]
    if getattr(entry, "admin", False):
        fields.append("admin=True")
    return ("\t".join(fields) + "\n").encode("utf-8", "backslashreplace")


@mypyc_attr(allow_interpreted_subclasses=True)
class AclAdmin(Outbox):
    """ACL checks for the engine and the ``acl list|grant|revoke|self-revoke`` commands."""

    acl: ACLLike | None

    def _may(
        self,
        conn: Session,
        permission: str,
        name: bytes,
        request: ServerAdminRequest | None = None,
    ) -> bool:
        """May ``conn`` ``invoke`` or ``register`` function ``name``, or run the
        ``admin`` command ``name`` (then ``request`` is that command's)?

        Only called with an ACL, so servers without one pay nothing. A
        refusal is logged at most once a second (a refused peer may retry in a
        loop) and answered: an ERROR packet, or ``ERR PERMISSION_DENIED`` to
        the admin request.
        """
        acl = self.acl
        assert acl is not None
        subject = conn.ssl_subject
        if permission == "invoke":
            allowed = acl.canInvoke(subject, _text(name))
        elif permission == "register":
            allowed = acl.canRegister(subject, _text(name))
        else:
            allowed = self._is_admin(subject)
        if allowed:
            return True
        self._log_limited("acl", logging.INFO, _DENIED_LOG[permission], subject, name[:80])
        if request is None:
            self.sendError(
                conn, b"0", b"Permission denied by ACL: %s %s" % (permission.encode(), name)
            )
        else:
            self._reply(request, b"ERR PERMISSION_DENIED\n")
        return False

    def _is_admin(self, subject: str | None) -> bool:
        acl = self.acl
        assert acl is not None
        return bool((getattr(acl, "canAdmin", None) or acl.canGrant)(subject))

    def _may_cancel(self, conn: Session, name: bytes) -> bool:
        """``cancel job`` needs invoke on the job's function, or admin."""
        acl = self.acl
        return (
            acl is None
            or acl.canInvoke(conn.ssl_subject, _text(name))
            or self._is_admin(conn.ssl_subject)
        )

    def _incomplete(self, request: ServerAdminRequest, usage: str) -> None:
        self._reply(request, b"ERR INCOMPLETE_ARGS " + err_text(usage) + b"\n")

    def handleACLList(self, request: ServerAdminRequest) -> None:
        if self.acl is None:
            self._reply(request, b"ERR ACL_DISABLED\n")
            return
        self._reply_lines(request, (acl_line(entry) for entry in self.acl.getEntries()))

    def _acl_subject(self, request: ServerAdminRequest) -> str | None:
        return cast(Session, request.connection).ssl_subject

    def handleACLGrant(self, request: ServerAdminRequest) -> None:
        acl = self.acl
        if acl is None:
            self._reply(request, b"ERR ACL_DISABLED\n")
            return
        if not acl.canGrant(self._acl_subject(request)):
            self._reply(request, b"ERR PERMISSION_DENIED\n")
            return
        parts = _text(request.command).split(None, 4)
        if len(parts) < 4:
            self._incomplete(request, "usage: acl grant VERB SUBJECT [PATTERN]")
            return
        verb, subject = parts[2], parts[3]
        pattern = parts[4] if len(parts) > 4 else None
        try:
            if verb == "grant":
                acl.grantGrant(subject)
            elif verb == "admin" and hasattr(acl, "grantAdmin"):
                acl.grantAdmin(subject)
            elif verb in ("invoke", "register"):
                if pattern is None:
                    self._incomplete(request, "usage: acl grant %s SUBJECT PATTERN" % verb)
                    return
                if verb == "invoke":
                    acl.grantInvoke(subject, pattern)
                else:
                    acl.grantRegister(subject, pattern)
            else:
                self._reply(request, b"ERR UNKNOWN_ACL_VERB\n")
                return
        except Exception as e:
            self._reply(request, b"ERR UNABLE " + str(e).encode() + b"\n")
            return
        self._reply(request, b"OK\n")

    def _revoke(self, request: ServerAdminRequest, verb: str, subject: str) -> None:
        acl = self.acl
        assert acl is not None
        try:
            if verb == "invoke":
                acl.revokeInvoke(subject)
            elif verb == "register":
                acl.revokeRegister(subject)
            elif verb == "grant":
                acl.revokeGrant(subject)
            elif verb == "admin" and hasattr(acl, "revokeAdmin"):
                acl.revokeAdmin(subject)
            elif verb == "all":
                try:
                    acl.remove(subject)
                except ACLError:
                    pass  # no entry for that subject: nothing to revoke
            else:
                self._reply(request, b"ERR UNKNOWN_ACL_VERB\n")
                return
        except Exception as e:
            self._reply(request, b"ERR UNABLE " + str(e).encode() + b"\n")
            return
        self._reply(request, b"OK\n")

    def handleACLRevoke(self, request: ServerAdminRequest) -> None:
        acl = self.acl
        if acl is None:
            self._reply(request, b"ERR ACL_DISABLED\n")
            return
        parts = _text(request.command).split()
        if len(parts) < 4:
            self._incomplete(request, "usage: acl revoke VERB SUBJECT")
            return
        verb, subject = parts[2], parts[3]
        caller = self._acl_subject(request)
        if subject != caller and not acl.canGrant(caller):
            self._reply(request, b"ERR PERMISSION_DENIED\n")
            return
        self._revoke(request, verb, subject)

    def handleACLSelfRevoke(self, request: ServerAdminRequest) -> None:
        if self.acl is None:
            self._reply(request, b"ERR ACL_DISABLED\n")
            return
        parts = _text(request.command).split()
        if len(parts) < 3:
            self._incomplete(request, "usage: acl self-revoke VERB")
            return
        subject = self._acl_subject(request)
        if subject is None:
            self._reply(request, b"ERR PERMISSION_DENIED\n")
            return
        self._revoke(request, parts[2], subject)
