"""geard's options: each default is defined here, once.

:class:`ServerOptions` is what the I/O-free layers read; ``gear.Server``'s
keyword arguments default to the same constants, and its attributes of the
same names (``max_packet_size``, ...) keep gear 0.16's style of access.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

from gear.codec import DEFAULT_MAX_ADMIN_LINE

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_MAX_ADMIN_LINE",
    "DEFAULT_MAX_CLIENT_ID",
    "DEFAULT_MAX_FUNCTION_NAME",
    "DEFAULT_MAX_OUTPUT_BUFFER",
    "DEFAULT_MAX_PACKET_SIZE",
    "DEFAULT_MAX_PARTIAL_TOTAL",
    "DEFAULT_MAX_UNIQUE_ID",
    "DEFAULT_METRICS_MAX_FUNCTIONS",
    "DEFAULT_PARTIAL_TIMEOUT",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_TLS_HANDSHAKE_TIMEOUT",
    "MAX_EPOCH",
    "MAX_TIMEOUT",
    "ServerOptions",
    "default_max_connections",
]

DEFAULT_MAX_PACKET_SIZE = 32 * 1024 * 1024
"""Largest packet payload accepted by default (32 MiB; the codec allows up to
64 MiB, a server accepting other people's jobs takes less)."""
DEFAULT_MAX_OUTPUT_BUFFER = 64 * 1024 * 1024
"""Bytes queued for a peer that does not read before it is disconnected."""
DEFAULT_PARTIAL_TIMEOUT = 120.0
"""Seconds a connection may hold an unfinished packet or line (slowloris)."""
DEFAULT_BACKLOG = 8192
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
"""Seconds a graceful shutdown waits for running jobs before stopping anyway."""
DEFAULT_TLS_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a new TLS connection has to finish its handshake."""
DEFAULT_MAX_PARTIAL_TOTAL = 256 * 1024 * 1024
"""Bytes of unfinished packets and lines held for all connections together."""
DEFAULT_MAX_FUNCTION_NAME = 512
"""Longest function name (gearmand's limit)."""
DEFAULT_MAX_UNIQUE_ID = 64
"""Longest unique id (gearmand's limit)."""
DEFAULT_MAX_CLIENT_ID = 128
"""Longest client id (SET_CLIENT_ID)."""
DEFAULT_METRICS_MAX_FUNCTIONS = 1000
"""Functions with ``/metrics`` labels of their own; later ones count as ``__other__``."""
MAX_TIMEOUT = 2**31 - 1
"""Largest CAN_DO_TIMEOUT, in seconds."""
MAX_EPOCH = 2**40
"""Largest SUBMIT_JOB_EPOCH run time (Unix seconds, about year 36800)."""


def default_max_connections() -> int:
    """The descriptor limit less a few for the listener, logs and the store."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(16, soft - 32)


@dataclass(frozen=True)
class ServerOptions:
    """The limits and policies of one server (see :class:`gear.Server`).

    ``max_connections`` None means :func:`default_max_connections`.
    """

    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    max_admin_line: int = DEFAULT_MAX_ADMIN_LINE
    max_output_buffer: int = DEFAULT_MAX_OUTPUT_BUFFER
    max_connections: int | None = None
    partial_timeout: float = DEFAULT_PARTIAL_TIMEOUT
    backlog: int = DEFAULT_BACKLOG
    job_retries: int | None = None
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT
    max_partial_total: int = DEFAULT_MAX_PARTIAL_TOTAL
    max_function_name: int = DEFAULT_MAX_FUNCTION_NAME
    max_unique_id: int = DEFAULT_MAX_UNIQUE_ID
    max_client_id: int = DEFAULT_MAX_CLIENT_ID
