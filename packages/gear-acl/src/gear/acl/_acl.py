"""Access control lists: which certificate subject may register, invoke or grant."""

from __future__ import annotations

import re
import threading

__all__ = ["ACL", "ACLEntry", "ACLError"]

_Rule = tuple[str | None, "re.Pattern[str] | None"]


class ACLError(Exception):
    """An ACL could not be changed or loaded (bad regex, duplicate or unknown subject)."""


def _text(value: str | bytes) -> str:
    """Function names arrive from the wire as bytes; patterns are str (gear 0.16 mixed them)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return value


def _compile(pattern: str | bytes | None) -> _Rule:
    if pattern is None:
        return None, None
    source = _text(pattern)
    if not source:
        # An empty pattern would match every name; it grants nothing instead.
        return source, None
    try:
        return source, re.compile(_strict_end(source))
    except re.error as e:
        raise ACLError("Invalid regular expression %r: %s" % (source, e)) from None


def _strict_end(source: str) -> str:
    """Rewrite each ``$`` anchor as ``\\Z``.

    Python's ``$`` also matches before a trailing newline, so ``^a$`` would
    admit the function ``a\\n``. Escapes and character classes are copied as
    they are; only a bare ``$`` is an anchor.
    """
    out: list[str] = []
    i, n = 0, len(source)
    in_class = False
    while i < n:
        c = source[i]
        if c == "\\":
            out.append(source[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            if source[i : i + 1] == "^":
                out.append("^")
                i += 1
            if source[i : i + 1] == "]":  # a leading ] is a literal
                out.append("]")
                i += 1
            continue
        elif c == "$":
            c = "\\Z"
        out.append(c)
        i += 1
    return "".join(out)


def _matches(rule: _Rule, name: str | bytes) -> bool:
    compiled = rule[1]
    return compiled is not None and compiled.match(_text(name)) is not None


class ACLEntry:
    """The permissions of one subject (a TLS client certificate's Common Name).

    ``register`` and ``invoke`` are regular expression sources (or None for
    no permission) matched with :func:`re.match`, so they are anchored at the
    start only: ``foo`` allows ``foobar``; add ``$`` to match exactly
    (``$`` matches only at the very end of the name, never before a final
    newline). ``grant`` allows changing other subjects' entries through the
    admin protocol; ``admin`` allows the admin commands that change the
    server (``shutdown``, ``maxqueue``, ``create function``, ``drop
    function``, ``cancel job`` on any function), which ``grant`` also
    allows. Assigning to ``register`` or ``invoke`` compiles the pattern, and
    an invalid pattern raises :class:`gear.ACLError` and changes nothing.
    """

    def __init__(
        self,
        subject: str,
        register: str | None = None,
        invoke: str | None = None,
        grant: bool | None = False,
        admin: bool = False,
    ) -> None:
        self.subject = subject
        self._register: _Rule = _compile(register)
        self._invoke: _Rule = _compile(invoke)
        self.grant = grant
        self.admin = admin

    def __repr__(self) -> str:
        return "<ACLEntry for %s register=%s invoke=%s grant=%s>" % (
            self.subject,
            self.register,
            self.invoke,
            self.grant,
        )

    @property
    def register(self) -> str | None:
        """The source of the register pattern, or None."""
        return self._register[0]

    @register.setter
    def register(self, register: str | None) -> None:
        self._register = _compile(register)

    @property
    def invoke(self) -> str | None:
        """The source of the invoke pattern, or None."""
        return self._invoke[0]

    @invoke.setter
    def invoke(self, invoke: str | None) -> None:
        self._invoke = _compile(invoke)

    def isEmpty(self) -> bool:
        """True if the entry grants nothing and may be dropped (``grant=None`` is kept)."""
        return (
            self.register is None and self.invoke is None and self.grant is False and not self.admin
        )

    def canRegister(self, name: str) -> bool:
        """May this subject register (CAN_DO) the function ``name``?"""
        return _matches(self._register, name)

    def canInvoke(self, name: str) -> bool:
        """May this subject submit (or cancel) jobs for the function ``name``?"""
        return _matches(self._invoke, name)

    def setRegister(self, register: str | None) -> None:
        self.register = register

    def setInvoke(self, invoke: str | None) -> None:
        self.invoke = invoke

    def setGrant(self, grant: bool | None) -> None:
        self.grant = grant


ACLEntry.__module__ = "gear"
ACLError.__module__ = "gear"


class ACL:
    """A deny-by-default access control list, keyed by subject.

    A subject without an entry (and the subject None of a connection without
    TLS) may do nothing. Every method takes one lock, so the server's loop
    and user threads can check and change the list at the same time; the
    ``subjects`` dict is the live mapping and should only be read.
    """

    def __init__(self) -> None:
        self.subjects: dict[str, ACLEntry] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return "<ACL with %d entries>" % len(self.subjects)

    def add(self, entry: ACLEntry) -> None:
        """Add an entry; :class:`gear.ACLError` if its subject already has one."""
        with self._lock:
            if entry.subject in self.subjects:
                raise ACLError("An ACL entry for %s already exists" % (entry.subject,))
            self.subjects[entry.subject] = entry

    def remove(self, subject: str) -> None:
        """Remove a subject's entry; :class:`gear.ACLError` if there is none."""
        with self._lock:
            if subject not in self.subjects:
                raise ACLError("There is no ACL entry for %s" % (subject,))
            del self.subjects[subject]

    def getEntries(self) -> list[ACLEntry]:
        """Return the entries sorted by subject, in a new list."""
        with self._lock:
            return [self.subjects[subject] for subject in sorted(self.subjects)]

    def _get(self, subject: str | None) -> ACLEntry | None:
        if subject is None:
            return None
        return self.subjects.get(subject)

    def canRegister(self, subject: str | None, name: str) -> bool:
        """May ``subject`` register the function ``name``?"""
        with self._lock:
            entry = self._get(subject)
            return entry is not None and entry.canRegister(name)

    def canInvoke(self, subject: str | None, name: str) -> bool:
        """May ``subject`` submit jobs for the function ``name``?"""
        with self._lock:
            entry = self._get(subject)
            return entry is not None and entry.canInvoke(name)

    def canGrant(self, subject: str | None) -> bool:
        """May ``subject`` change ACL entries of other subjects?"""
        with self._lock:
            entry = self._get(subject)
            return entry is not None and bool(entry.grant)

    def canAdmin(self, subject: str | None) -> bool:
        """May ``subject`` run admin commands that change the server?

        ``grant`` implies it: a subject that may grant could grant itself this.
        """
        with self._lock:
            entry = self._get(subject)
            return entry is not None and bool(entry.admin or entry.grant)

    def _entry(self, subject: str) -> ACLEntry:
        entry = self.subjects.get(subject)
        if entry is None:
            entry = self.subjects[subject] = ACLEntry(subject)
        return entry

    def grantInvoke(self, subject: str, invoke: str) -> None:
        """Set the invoke pattern of ``subject``, creating its entry if needed."""
        rule = _compile(invoke)
        with self._lock:
            self._entry(subject)._invoke = rule

    def grantRegister(self, subject: str, register: str) -> None:
        """Set the register pattern of ``subject``, creating its entry if needed."""
        rule = _compile(register)
        with self._lock:
            self._entry(subject)._register = rule

    def grantGrant(self, subject: str) -> None:
        """Allow ``subject`` to change ACLs, creating its entry if needed."""
        with self._lock:
            self._entry(subject).grant = True

    def grantAdmin(self, subject: str) -> None:
        """Allow ``subject`` the admin commands that change the server."""
        with self._lock:
            self._entry(subject).admin = True

    def _revoke(self, subject: str, field: str, value: object) -> None:
        with self._lock:
            entry = self.subjects.get(subject)
            if entry is None:
                return
            setattr(entry, field, value)
            if entry.isEmpty():
                del self.subjects[subject]

    def revokeInvoke(self, subject: str) -> None:
        """Clear the invoke pattern; an entry left empty is deleted."""
        self._revoke(subject, "invoke", None)

    def revokeRegister(self, subject: str) -> None:
        """Clear the register pattern; an entry left empty is deleted."""
        self._revoke(subject, "register", None)

    def revokeGrant(self, subject: str) -> None:
        """Clear the grant permission; an entry left empty is deleted."""
        self._revoke(subject, "grant", False)

    def revokeAdmin(self, subject: str) -> None:
        """Clear the admin permission; an entry left empty is deleted."""
        self._revoke(subject, "admin", False)


ACL.__module__ = "gear"
