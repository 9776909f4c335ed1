"""Which request a reply answers, and where a submit goes next: no sockets, no threads.

A Gearman server answers a connection's requests in the order they were
sent, but a client keeps several kinds in flight at once (SUBMITs waiting
for JOB_CREATED, OPTION_REQs waiting for OPTION_RES) and some servers never
answer a kind at all (gear 0.16's server ignores OPTION_REQ). So a reply is
matched to the oldest pending request *of its kind*, while an ERROR, which
names no request, answers the oldest pending request of any kind. Both
:class:`gear.Client` and :class:`gear.AsyncClient` keep their requests
through a :class:`RequestTracker` and fail over submits through a
:class:`SubmitFailover`, so the two faces cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, MutableSequence
from typing import Generic, NamedTuple, TypeVar

__all__ = ["SUBMIT", "OPTION", "ServerError", "parse_error", "RequestTracker", "SubmitFailover"]

#: The kind of a SUBMIT_JOB* request, answered by JOB_CREATED.
SUBMIT = "submit"
#: The kind of an OPTION_REQ request, answered by OPTION_RES.
OPTION = "option"

_T = TypeVar("_T")
_C = TypeVar("_C", bound=Hashable)


class ServerError(NamedTuple):
    """An ERROR packet's code and text, decoded for messages."""

    code: str
    text: str

    def __str__(self) -> str:
        return "%s %s" % (self.code, self.text)


def parse_error(data: bytes | bytearray) -> ServerError:
    """Split an ERROR payload (``code \\0 text``); a trailing NUL in the text is dropped."""
    code, _, text = bytes(data).partition(b"\x00")
    return ServerError(
        code.decode("utf8", "replace"), text.rstrip(b"\x00").decode("utf8", "replace")
    )


class RequestTracker(Generic[_T]):
    """The requests sent on one connection and not answered yet, oldest first.

    ``pending`` is the connection's own list (the threaded client keeps gear
    0.16's ``Connection.pending_tasks``), so the tracker holds no state of
    its own and is cheap to make per packet; ``kind`` tells what a request
    is waiting for (:data:`SUBMIT`, :data:`OPTION` or anything else).
    """

    __slots__ = ("kind", "pending")

    def __init__(self, pending: MutableSequence[_T], kind: Callable[[_T], object]) -> None:
        self.pending = pending
        self.kind = kind

    def __len__(self) -> int:
        return len(self.pending)

    def sent(self, request: _T) -> None:
        self.pending.append(request)

    def answer(self, kind: object) -> _T | None:
        """Remove and return the oldest request of ``kind`` (None: a reply nobody asked for).

        Skipping older requests of other kinds keeps one a server never
        answered (an OPTION_REQ to gear 0.16's server) from taking the
        reply meant for a later submit.
        """
        pending = self.pending
        for index, request in enumerate(pending):
            if self.kind(request) == kind:
                del pending[index]
                return request
        return None

    def error(self) -> _T | None:
        """Remove and return the request an ERROR answers: the oldest of any kind."""
        if not self.pending:
            return None
        request = self.pending[0]
        del self.pending[0]
        return request

    def discard(self, request: _T) -> None:
        """Forget ``request`` (its caller gave up); later replies keep their places."""
        try:
            self.pending.remove(request)
        except ValueError:
            pass

    def drain(self) -> list[_T]:
        """Remove and return every request (the connection is gone)."""
        requests = list(self.pending)
        self.pending.clear()
        return requests


class SubmitFailover(Generic[_C]):
    """The servers one submit tries, round-robin, each at most once.

    The face asks :meth:`next` for a connection, sends, and on a refusal
    calls :meth:`refused` with the server's ERROR (None when the server
    dropped or did not answer), then asks again. When :meth:`next` returns
    None every active server has been tried, and :meth:`message` says why
    the submit failed, naming the last server ERROR if there was one.
    """

    __slots__ = ("attempted", "last_error")

    def __init__(self) -> None:
        self.attempted: set[_C] = set()
        self.last_error: tuple[str, ServerError] | None = None

    def next(self, active: Callable[[], Collection[_C]], pick: Callable[[], _C]) -> _C | None:
        """Return the next untried connection from ``pick()``, or None when all were tried.

        ``active()`` is the current set of connected servers (it may shrink
        while a submit runs); ``pick()`` is the face's round-robin choice.
        """
        while True:
            current = active()
            if not current or self.attempted.issuperset(current):
                return None
            conn = pick()
            if conn in self.attempted:
                continue
            self.attempted.add(conn)
            return conn

    def refused(self, server: str, error: ServerError | None) -> None:
        if error is not None:
            self.last_error = (server, error)

    def message(self, summary: Callable[[], str]) -> str:
        """The failure message; ``summary()`` says why no server is connected."""
        text = "Unable to submit job to any connected servers"
        if not self.attempted:
            return "%s: no server is connected (%s)" % (text, summary())
        if self.last_error is not None:
            return "%s (last error, from %s: %s)" % (text, *self.last_error)
        return text
