"""What the threaded Client and Worker share beyond their threads: servers and sending.

:class:`BaseClient` adds the server list (``addServer``, ``waitForServer``),
round-robin over connected servers, sending and broadcasting, and the
ECHO_RES and ERROR replies to :class:`BaseClientServer`, whose poll and
connect threads live in :mod:`gear.connection_threads` (importable from
here too, as ``gear.base.BaseClientServer``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict

from gear._connect_errors import server_address
from gear._server_spec import ServerSpec
from gear.connection import Connection
from gear.connection_threads import HANDLERS, BaseClientServer
from gear.errors import NoConnectedServersError, TimeoutError
from gear.packet import Packet
from gear.reconnect import ReconnectPolicy

__all__ = ["BaseClientServer", "BaseClient", "HANDLERS"]


class BaseClient(BaseClientServer):
    """Server list, round-robin and sending shared by Client and Worker."""

    def __init__(
        self, client_id: str | bytes | None = "unknown", *, reconnect: ReconnectPolicy | None = None
    ) -> None:
        super().__init__(client_id, reconnect=reconnect)
        self.broadcast_lock = threading.RLock()

    def addServer(
        self,
        host: str,
        port: int | str = 4730,
        ssl_key: str | None = None,
        ssl_cert: str | None = None,
        ssl_ca: str | None = None,
        keepalive: bool = False,
        tcp_keepidle: int = 7200,
        tcp_keepintvl: int = 75,
        tcp_keepcnt: int = 9,
    ) -> None:
        """Register a server; the connect thread dials it (does not block)."""
        spec = ServerSpec(
            host,
            port,
            ssl_key,
            ssl_cert,
            ssl_ca,
            keepalive,
            tcp_keepidle,
            tcp_keepintvl,
            tcp_keepcnt,
        )
        with self.connections_condition:
            spec.check_new(
                (c.host, c.port) for c in self.active_connections + self.inactive_connections
            )
            conn = Connection(client_id=self.client_id, **asdict(spec))
            conn.connect_timeout = self.connect_timeout
            conn.tcp_nodelay = True
            self.inactive_connections.append(conn)
            self.connections_condition.notify_all()

    def waitForServer(self, timeout: float | None = None) -> None:
        """Block until some server is connected; TimeoutError after ``timeout`` s.

        The error names each server with the reason of its last failed
        attempt (``127.0.0.1:4730: connection refused``). Once every server
        has been given up (the ``max_attempts`` of ``reconnect``) it
        raises :class:`gear.NoConnectedServersError`, whose ``errors`` hold
        the same reasons, as ``wait_for_server`` of the asyncio classes does.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.connections_condition:
            while self.running and not self.active_connections:
                if self.inactive_connections and self._given_up.issuperset(
                    self.inactive_connections
                ):
                    raise NoConnectedServersError(
                        "No Gearman server could be reached: %s" % (self._connectSummary(),),
                        self.connectErrors(),
                    )
                if deadline is None:
                    self.connections_condition.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        "No Gearman server was connected within %s seconds: %s"
                        % (timeout, self._connectSummary())
                    )
                self.connections_condition.wait(remaining)

    def connectErrors(self) -> dict[str, str]:
        """Each server not connected now (``"host:port"``) with its last connect error.

        The same as ``connect_errors()`` of the asyncio classes; empty when
        every server is up.
        """
        return self._failures.causes(self._downServers())

    def _connectSummary(self) -> str:
        """``connectErrors()`` as one line for an exception message."""
        return self._failures.summary(self._downServers())

    def _downServers(self) -> list[str]:
        with self.connections_condition:
            return [server_address(c.host, c.port) for c in self.inactive_connections]

    def getConnection(self) -> Connection:
        """Return the next active connection, round-robin."""
        with self.connections_condition:
            if not self.active_connections:
                raise NoConnectedServersError("No connected Gearman servers")
            self.connection_index += 1
            if self.connection_index >= len(self.active_connections):
                self.connection_index = 0
            return self.active_connections[self.connection_index]

    def broadcast(self, packet: Packet) -> None:
        """Send to every active connection; a failing one is marked lost."""
        with self.broadcast_lock:
            for conn in list(self.active_connections):
                try:
                    self.sendPacket(packet, conn)
                except Exception:
                    pass

    def sendPacket(self, packet: Packet, connection: Connection) -> None:
        """Send on ``connection``; on failure mark it lost and re-raise."""
        try:
            connection.sendPacket(packet)
        except Exception:
            self.log.info("Unable to send packet to %s; marking it lost", connection)
            self._lostConnection(connection)
            raise

    def handleEchoRes(self, packet: Packet) -> Packet:
        assert packet.connection is not None
        packet.connection.handleEchoRes(bytes(packet.data))
        return packet

    def handleError(self, packet: Packet) -> Packet:
        """Complete the oldest pending request with the error, as gear 0.16 does."""
        conn = packet.connection
        assert conn is not None
        self.log.error(
            "Received ERROR packet: %s: %s",
            packet.getArgument(0).decode("utf8", "replace"),
            packet.getArgument(1, True).decode("utf8", "replace"),
        )
        if not conn.pending_tasks:
            self.log.error("ERROR with no request pending on %s; dropping it", conn)
            self._lostConnection(conn)
            return packet
        task = conn.pending_tasks.pop(0)
        task.setComplete()
        return packet


BaseClient.__module__ = "gear"
