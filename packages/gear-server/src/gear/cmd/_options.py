"""``geard``'s command line: every option, its default and its check.

Option types come from :mod:`gear.cmd._checks`, so a bad value is refused by
the parser itself, as one line.
"""

from __future__ import annotations

import argparse
from typing import Any

from gear.cmd import _checks
from gear.server.runtime import EVENT_LOOPS

__all__ = ["DEFAULT_LOGFILE", "DEFAULT_PIDFILE", "build_parser"]

DEFAULT_PIDFILE = "/var/run/geard/geard.pid"
DEFAULT_LOGFILE = "/var/log/geard/geard.log"


class _Parser(argparse.ArgumentParser):
    """Report a bad option as one line, without the usage text around it."""

    def error(self, message: str) -> Any:
        self.exit(2, "%s: %s (see %s --help)\n" % (self.prog, message, self.prog))


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``geard``'s options; ``--help`` shows each default."""
    from gear.server import server as limits

    parser = _Parser(
        prog="geard",
        description=(
            "Gearman server. TLS needs --ssl-key, --ssl-cert and --ssl-ca together. "
            "Set the STATSD_HOST, STATSD_PORT and STATSD_PREFIX environment "
            "variables to send statsd metrics (the statsd package is optional; "
            "without it geard sends them itself)."
        ),
    )
    parser.add_argument("-d", dest="nodaemon", action="store_true", help="do not run as a daemon")
    parser.add_argument(
        "-p",
        dest="port",
        default=4730,
        type=_checks.port,
        help="port on which to listen; 0 picks a free one (default: 4730)",
    )
    parser.add_argument(
        "--listen-address",
        dest="listen_address",
        default=None,
        help="IP address or hostname to bind (default: every address, IPv6 and IPv4)",
    )
    parser.add_argument(
        "--log-config",
        dest="log_config",
        metavar="PATH",
        help="logging config file (default: INFO to stderr with -d, else to %s)" % DEFAULT_LOGFILE,
    )
    parser.add_argument(
        "--pidfile",
        dest="pidfile",
        default=DEFAULT_PIDFILE,
        metavar="PATH",
        help="PID file in daemon mode (default: %s)" % DEFAULT_PIDFILE,
    )
    parser.add_argument("--ssl-ca", dest="ssl_ca", metavar="PATH", help="path to CA certificate")
    parser.add_argument(
        "--ssl-cert", dest="ssl_cert", metavar="PATH", help="path to SSL public certificate"
    )
    parser.add_argument("--ssl-key", dest="ssl_key", metavar="PATH", help="path to SSL private key")
    parser.add_argument(
        "--acl",
        dest="acl",
        metavar="PATH",
        help="path to ACL file (needs TLS: its subjects are client certificate names)",
    )
    parser.add_argument(
        "--keepalive",
        dest="keepalive",
        action="store_true",
        help="enable TCP keepalives in socket",
    )
    parser.add_argument(
        "--keepalive-idle",
        dest="tcp_keepidle",
        type=_checks.number(int, 1),
        default=7200,
        help="TCP keepalive idle time in seconds (default: 7200)",
    )
    parser.add_argument(
        "--keepalive-interval",
        dest="tcp_keepintvl",
        type=_checks.number(int, 1),
        default=75,
        help="TCP keepalive probe interval in seconds (default: 75)",
    )
    parser.add_argument(
        "--keepalive-count",
        dest="tcp_keepcnt",
        type=_checks.number(int, 1),
        default=9,
        help="TCP keepalive probes count (default: 9)",
    )
    parser.add_argument(
        "--max-packet-size",
        dest="max_packet_size",
        type=_checks.number(int, 1),
        default=None,
        help="largest packet payload in bytes (default: %d)" % limits.DEFAULT_MAX_PACKET_SIZE,
    )
    parser.add_argument(
        "--max-connections",
        dest="max_connections",
        type=_checks.number(int, 1),
        default=None,
        help="most simultaneous connections (default: the open-file limit less 32)",
    )
    parser.add_argument(
        "--max-output-buffer",
        dest="max_output_buffer",
        type=_checks.number(int, 1),
        default=None,
        help="bytes queued for a peer that does not read before it is disconnected "
        "(default: %d)" % limits.DEFAULT_MAX_OUTPUT_BUFFER,
    )
    parser.add_argument(
        "--job-retries",
        dest="job_retries",
        type=_checks.number(int, 0),
        default=None,
        help="requeues of a job whose worker disconnected before it fails (default: no limit)",
    )
    parser.add_argument(
        "--queue-file",
        dest="queue_file",
        metavar="PATH",
        default=None,
        help="keep background jobs in this SQLite file so they survive a crash or restart "
        "(default: none, jobs live in memory only)",
    )
    parser.add_argument(
        "--queue-url",
        dest="queue_url",
        metavar="URL",
        default=None,
        help="keep background jobs in PostgreSQL (postgresql://USER@HOST:PORT/DB), shared "
        "by every geard given the same URL; needs gear-server[postgres]. Put the password "
        "in ~/.pgpass or PGPASSWORD, not in the URL",
    )
    parser.add_argument(
        "--node-id",
        dest="node_id",
        default=None,
        help="this node's name in a --queue-url cluster (default: HOSTNAME:PORT)",
    )
    parser.add_argument(
        "--node-lease",
        dest="node_lease",
        metavar="SECONDS",
        type=_checks.number(float, 0.1),
        default=None,
        help="seconds this node keeps its jobs without renewing its lease; after that "
        "another node adopts them (default: 15)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        dest="shutdown_timeout",
        type=_checks.number(float, 0),
        default=None,
        help="seconds SIGTERM or 'shutdown graceful' waits for running jobs (default: %g)"
        % limits.DEFAULT_SHUTDOWN_TIMEOUT,
    )
    seconds, size = _checks.number(float, 0.1), _checks.number(int, 1)
    for flag, kind, text in (
        ("--tls-handshake-timeout", seconds, "seconds a TLS handshake may take (default: 10)"),
        ("--max-partial-total", size, "bytes of unfinished input of all connections (256 MiB)"),
        ("--max-function-name", size, "longest function name in bytes (default: 512)"),
        ("--max-unique-id", size, "longest unique id in bytes (default: 64)"),
        ("--max-client-id", size, "longest client id in bytes (default: 128)"),
    ):
        parser.add_argument(flag, type=kind, default=None, help=text)
    parser.add_argument(
        "--loop",
        choices=EVENT_LOOPS,
        default="auto",
        help="event loop: auto (uvloop when installed, the default), asyncio or uvloop",
    )
    parser.add_argument(
        "--metrics-port",
        dest="metrics_port",
        type=_checks.port,
        default=None,
        metavar="PORT",
        help="serve /metrics (Prometheus) and /healthz over HTTP on this port "
        "(needs gear-server[metrics]; default: off)",
    )
    parser.add_argument(
        "--metrics-address",
        dest="metrics_address",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address the --metrics-port listener binds (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--metrics-max-functions",
        dest="metrics_max_functions",
        type=_checks.number(int, 1),
        default=None,
        metavar="N",
        help="functions with metrics labels of their own; the rest are counted as "
        'function="__other__" (default: %d)' % limits.DEFAULT_METRICS_MAX_FUNCTIONS,
    )
    parser.add_argument("--version", dest="version", action="store_true", help="show version")
    return parser
