"""``geard``: run a Gearman job server from the command line.

Flags are gear 0.16's ``geard`` flags plus the server limits. Foreground
mode (``-d``) logs at INFO to stderr unless ``--log-config`` is given; daemon
mode double-forks, writes and locks the pidfile and logs to
``/var/log/geard/geard.log``. SIGTERM and SIGINT shut the server down
gracefully (listener closed, running jobs given ``--shutdown-timeout``
seconds, queue file flushed, pidfile removed); a second signal stops at once.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import logging
import logging.config
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from gear.server._version import __version__
from gear.tls import check_tls_files

__all__ = ["Server", "main"]

DEFAULT_PIDFILE = "/var/run/geard/geard.pid"
DEFAULT_LOGFILE = "/var/log/geard/geard.log"


class Server:
    """The ``geard`` program: argument parsing, logging, daemonizing, serving."""

    def __init__(self) -> None:
        self.args: argparse.Namespace = argparse.Namespace()
        self.server: Any = None
        self._pidfile_fd: int | None = None
        self._signalled = False

    def parse_arguments(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        parser = argparse.ArgumentParser(
            prog="geard",
            description=(
                "Gearman server. TLS needs --ssl-key, --ssl-cert and --ssl-ca together. "
                "Set the STATSD_HOST, STATSD_PORT and STATSD_PREFIX environment "
                "variables to send statsd metrics (the statsd package is optional; "
                "without it geard sends them itself)."
            ),
        )
        parser.add_argument(
            "-d", dest="nodaemon", action="store_true", help="do not run as a daemon"
        )
        parser.add_argument(
            "-p", dest="port", default=4730, type=int, help="port on which to listen"
        )
        parser.add_argument(
            "--listen-address",
            dest="listen_address",
            default=None,
            help="IP address or hostname to bind",
        )
        parser.add_argument("--log-config", dest="log_config", help="logging config file")
        parser.add_argument("--pidfile", dest="pidfile", default=DEFAULT_PIDFILE, help="PID file")
        parser.add_argument(
            "--ssl-ca", dest="ssl_ca", metavar="PATH", help="path to CA certificate"
        )
        parser.add_argument(
            "--ssl-cert", dest="ssl_cert", metavar="PATH", help="path to SSL public certificate"
        )
        parser.add_argument(
            "--ssl-key", dest="ssl_key", metavar="PATH", help="path to SSL private key"
        )
        parser.add_argument("--acl", dest="acl", metavar="PATH", help="path to ACL file")
        parser.add_argument(
            "--keepalive",
            dest="keepalive",
            action="store_true",
            help="enable TCP keepalives in socket",
        )
        parser.add_argument(
            "--keepalive-idle",
            dest="tcp_keepidle",
            type=int,
            default=7200,
            help="TCP keepalive idle time",
        )
        parser.add_argument(
            "--keepalive-interval",
            dest="tcp_keepintvl",
            type=int,
            default=75,
            help="TCP keepalive probe interval",
        )
        parser.add_argument(
            "--keepalive-count",
            dest="tcp_keepcnt",
            type=int,
            default=9,
            help="TCP keepalive probes count",
        )
        parser.add_argument(
            "--max-packet-size",
            dest="max_packet_size",
            type=int,
            default=None,
            help="largest packet payload in bytes",
        )
        parser.add_argument(
            "--max-connections",
            dest="max_connections",
            type=int,
            default=None,
            help="most simultaneous connections",
        )
        parser.add_argument(
            "--max-output-buffer",
            dest="max_output_buffer",
            type=int,
            default=None,
            help="bytes queued for a peer that does not read before it is disconnected",
        )
        parser.add_argument(
            "--job-retries",
            dest="job_retries",
            type=int,
            default=None,
            help="requeues of a job whose worker disconnected before it fails (default: no limit)",
        )
        parser.add_argument(
            "--queue-file",
            dest="queue_file",
            metavar="PATH",
            default=None,
            help="keep background jobs in this SQLite file so they survive a crash or restart",
        )
        parser.add_argument(
            "--shutdown-timeout",
            dest="shutdown_timeout",
            type=float,
            default=None,
            help="seconds SIGTERM or 'shutdown graceful' waits for running jobs (default: 30)",
        )
        for flag, kind, text in (
            ("--tls-handshake-timeout", float, "seconds a TLS handshake may take (default: 10)"),
            ("--max-partial-total", int, "bytes of unfinished input of all connections (256 MiB)"),
            ("--max-function-name", int, "longest function name in bytes (default: 512)"),
            ("--max-unique-id", int, "longest unique id in bytes (default: 64)"),
            ("--max-client-id", int, "longest client id in bytes (default: 128)"),
        ):
            parser.add_argument(flag, type=kind, default=None, help=text)
        parser.add_argument("--version", dest="version", action="store_true", help="show version")
        self.args = parser.parse_args(argv)
        try:
            check_tls_files(self.args.ssl_key, self.args.ssl_cert, self.args.ssl_ca, cli=True)
        except ValueError as e:
            parser.error(str(e))
        return self.args

    def setup_logging(self) -> None:
        """Configure logging: a fileConfig file, else INFO to stderr (or the log file)."""
        if self.args.log_config:
            path = os.path.expanduser(self.args.log_config)
            if not os.path.exists(path):
                raise Exception("Unable to read logging config file at %s" % path)
            logging.config.fileConfig(path, disable_existing_loggers=False)
            return
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
        if self.args.nodaemon:
            logging.basicConfig(level=logging.INFO, format=fmt, stream=sys.stderr)
            return
        os.makedirs(os.path.dirname(DEFAULT_LOGFILE), exist_ok=True)
        logging.basicConfig(level=logging.INFO, format=fmt, filename=DEFAULT_LOGFILE)

    def _server_options(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        for name in (
            "max_packet_size",
            "max_connections",
            "max_output_buffer",
            "job_retries",
            "queue_file",
            "shutdown_timeout",
            "tls_handshake_timeout",
            "max_partial_total",
            "max_function_name",
            "max_unique_id",
            "max_client_id",
        ):
            value = getattr(self.args, name)
            if value is not None:
                extra[name] = value
        return extra

    def start(self) -> None:
        """Build the server from the arguments and the statsd environment."""
        from gear.server.server import Server as GearServer

        acl = None
        if self.args.acl:
            acl = importlib.import_module("gear.acl").load_acl_file(self.args.acl)
        statsd_host = os.environ.get("STATSD_HOST")
        statsd_port = int(os.environ.get("STATSD_PORT", 8125))
        statsd_prefix = os.environ.get("STATSD_PREFIX")
        self.server = GearServer(
            self.args.port,
            self.args.ssl_key,
            self.args.ssl_cert,
            self.args.ssl_ca,
            statsd_host,
            statsd_port,
            statsd_prefix,
            acl=acl,
            host=self.args.listen_address,
            keepalive=self.args.keepalive,
            tcp_keepidle=self.args.tcp_keepidle,
            tcp_keepintvl=self.args.tcp_keepintvl,
            tcp_keepcnt=self.args.tcp_keepcnt,
            **self._server_options(),
        )

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        log = logging.getLogger("gear.geard")
        if self.server is None:
            return
        if self._signalled:
            log.info("Received %s again, stopping now", name)
            self.server.shutdown()
            return
        self._signalled = True
        log.info("Received %s, shutting down gracefully", name)
        self.server.shutdown(graceful=True)

    def serve(self) -> None:
        """Start the server and block until a signal or ``shutdown`` stops it."""
        self.setup_logging()
        log = logging.getLogger("gear.geard")
        try:
            self.start()
        except Exception as e:
            log.error("Unable to start geard: %s", e)
            raise SystemExit(1) from None
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info("geard %s running (pid %d)", __version__, os.getpid())
        while not self.server.wait(1.0):
            pass
        log.info("geard exited")

    def daemonize(self) -> None:
        """Detach with a plain double fork and take the pidfile lock."""
        pidfile = self.args.pidfile
        os.makedirs(os.path.dirname(os.path.abspath(pidfile)), exist_ok=True)
        fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SystemExit("geard: %s is locked: is another geard running?" % pidfile) from None
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        os.chdir("/")
        os.umask(0o022)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())
        self._pidfile_fd = fd
        devnull = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(devnull, target)
        os.close(devnull)

    def _remove_pidfile(self) -> None:
        if self._pidfile_fd is not None:
            try:
                os.unlink(self.args.pidfile)
            except OSError:
                pass
            os.close(self._pidfile_fd)
            self._pidfile_fd = None

    def main(self) -> None:
        if self.args.version:
            print("Gear version: %s" % __version__)
            return
        if self.args.nodaemon:
            self.serve()
            return
        self.daemonize()
        try:
            self.serve()
        finally:
            self._remove_pidfile()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geard`` console script."""
    command = Server()
    command.parse_arguments(argv)
    command.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
