"""Input: bytes to packets and admin lines, bad streams, unfinished input.

:meth:`Inbox._feed` is what a transport calls with each chunk a peer
sends. A stream the decoder cannot frame is answered with the decoder's
typed error code (``BAD_MAGIC``, ``PACKET_TOO_LARGE``, ``LINE_TOO_LONG``,
...) and closed. Unfinished packets and lines are bounded twice: in time
(``partial_timeout``, checked by :meth:`Inbox._expire_partial` every tick)
and in total over all connections (``max_partial_total``: the connections
holding the most are closed first).
"""

from __future__ import annotations

import logging
import time

from gear.codec import Decoder
from gear.errors import LineTooLongError, RemoteProtocolError
from gear.server.admin import Admin
from gear.server.model import Session
from gear.server.outbox import err_text

__all__ = ["Inbox"]


class Inbox(Admin):
    """Feeds the decoder and keeps the books of unfinished input."""

    def _init_inbox(self) -> None:
        self._partial: set[Session] = set()
        self._buffered_total = 0

    def _feed(self, conn: Session, data: bytes) -> None:
        """Decode and dispatch ``data``; account for what stays unfinished."""
        if conn.closed:
            return
        self._trace = self.log.isEnabledFor(logging.DEBUG) or self.statsd is not None
        decoder = conn.decoder
        try:
            decoder.process(data, conn.on_frame, conn.on_line)
        except LineTooLongError as e:
            self._send(conn, b"ERR LINE_TOO_LONG " + err_text(str(e)) + b"\n")
            self.log.info("Protocol error from %s: %s", conn.host, e)
            self._close(conn)
            return
        except RemoteProtocolError as e:
            self._protocol_error(conn, e.code.encode(), str(e))
            return
        buffered = decoder.buffered
        if buffered:
            if conn.partial_since is None:
                conn.partial_since = time.monotonic()
                self._partial.add(conn)
        elif conn.partial_since is not None:
            conn.partial_since = None
            self._partial.discard(conn)
        if buffered != conn.buffered:
            self._buffered_total += buffered - conn.buffered
            conn.buffered = buffered
            if self._buffered_total > self.max_partial_total:
                self._shed_partial()

    def _shed_partial(self) -> None:
        """Over the total input cap: close the connections holding the most."""
        while self._buffered_total > self.max_partial_total:
            holders = [c for c in self._partial if c.buffered and not c.closed]
            if not holders:
                return
            conn = max(holders, key=lambda c: c.buffered)
            self._buffered_total -= conn.buffered
            self.log.warning(
                "Closing %s: it holds %d bytes of unfinished input and all connections"
                " together hold more than %d",
                conn.host,
                conn.buffered,
                self.max_partial_total,
            )
            conn.buffered = 0
            self._partial.discard(conn)
            conn.decoder = Decoder(0, 1)
            self._protocol_error(conn, b"SERVER_BUSY", "too much unfinished input on the server")

    def _expire_partial(self) -> None:
        """Close connections that have held an unfinished packet or line too long."""
        if self._partial:
            limit = time.monotonic() - self.partial_timeout
            for conn in [c for c in self._partial if (c.partial_since or 0) < limit]:
                self.log.info("Closing %s: unfinished input for too long", conn.host)
                self._protocol_error(conn, b"TIMEOUT", "unfinished packet or line for too long")

    def _forget_input(self, conn: Session) -> None:
        """The peer went away: its unfinished input no longer counts."""
        self._partial.discard(conn)
        self._buffered_total -= conn.buffered
        conn.buffered = 0
