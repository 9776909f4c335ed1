"""``geard``: run a Gearman job server from the command line.

Flags are gear 0.16's ``geard`` flags plus the server limits. Foreground
mode (``-d``) logs at INFO to stderr unless ``--log-config`` is given; daemon
mode double-forks, writes and locks the pidfile and logs to
``/var/log/geard/geard.log``. SIGTERM and SIGINT shut the server down
gracefully (listener closed, running jobs given ``--shutdown-timeout``
seconds, queue file flushed, pidfile removed); a second signal stops at once.

Every option that can be checked is checked before geard detaches or
serves (see :mod:`gear.cmd._checks`): a mistake is one line on stderr and
exit status 2. In daemon mode the first process waits until the daemon
listens, so a busy port or an unusable queue file is reported the same way
(status 1) instead of only in the log file.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import logging
import logging.config
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from gear.cmd import _checks
from gear.cmd._options import DEFAULT_LOGFILE, build_parser
from gear.errors import ConfigurationError
from gear.server._build import BUILD
from gear.server._version import __version__
from gear.server.runtime import check_event_loop
from gear.tls import check_tls_files

__all__ = ["Server", "main"]


class Server:
    """The ``geard`` program: argument parsing, logging, daemonizing, serving."""

    def __init__(self) -> None:
        self.args: argparse.Namespace = argparse.Namespace()
        self.server: Any = None
        self._pidfile_fd: int | None = None
        self._ready_fd: int | None = None
        self._acl: Any = None
        self._signalled = False
        self._early_signal: int | None = None

    def parse_arguments(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        self.args = build_parser().parse_args(argv)
        return self.args

    def check(self) -> None:
        """Check every option that can be checked before serving or detaching.

        Paths become absolute first: the daemon changes to ``/``.
        """
        args = self.args
        for name in ("ssl_key", "ssl_cert", "ssl_ca", "acl", "queue_file", "log_config"):
            value = getattr(args, name)
            if value:
                setattr(args, name, os.path.abspath(os.path.expanduser(value)))
        try:
            tls = check_tls_files(args.ssl_key, args.ssl_cert, args.ssl_ca, cli=True)
        except ValueError as e:
            raise ConfigurationError(str(e)) from None
        if tls:
            _checks.check_tls(args.ssl_key, args.ssl_cert, args.ssl_ca)
        if args.acl:
            self._acl = _checks.load_acl(args.acl, tls)
        if args.queue_file:
            _checks.check_queue_file(args.queue_file)
        if args.queue_url and args.queue_file:
            raise ConfigurationError("give --queue-file or --queue-url, not both")
        if args.queue_url and not args.queue_url.startswith(("postgresql://", "postgres://")):
            raise ConfigurationError("--queue-url must start with postgresql://")
        if (args.node_id or args.node_lease) and not args.queue_url:
            raise ConfigurationError("--node-id and --node-lease need --queue-url")
        if args.node_id:
            from gear.server.postgres_schema import check_node_id

            try:
                check_node_id(args.node_id)
            except ValueError as e:
                raise ConfigurationError("--node-id: %s" % e) from None
        try:
            check_event_loop(args.loop)
        except ImportError as e:
            raise ConfigurationError("--loop uvloop: %s" % e) from None
        if args.metrics_port is not None:
            _checks.check_metrics()

    def setup_logging(self) -> None:
        """Configure logging: a fileConfig file, else INFO to stderr (or the log file)."""
        if self.args.log_config:
            _checks.apply_log_config(self.args.log_config)
            return
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
        if self.args.nodaemon:
            logging.basicConfig(level=logging.INFO, format=fmt, stream=sys.stderr)
            return
        try:
            os.makedirs(os.path.dirname(DEFAULT_LOGFILE), exist_ok=True)
            logging.basicConfig(level=logging.INFO, format=fmt, filename=DEFAULT_LOGFILE)
        except OSError as e:
            raise ConfigurationError(
                "cannot write the log file %s (give -d or --log-config to log elsewhere): %s"
                % (DEFAULT_LOGFILE, e.strerror or e)
            ) from None

    def _server_options(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        for name in (
            "max_packet_size",
            "max_connections",
            "max_output_buffer",
            "job_retries",
            "queue_file",
            "queue_url",
            "node_id",
            "node_lease",
            "shutdown_timeout",
            "tls_handshake_timeout",
            "max_partial_total",
            "max_function_name",
            "max_unique_id",
            "max_client_id",
            "metrics_port",
            "metrics_max_functions",
        ):
            value = getattr(self.args, name)
            if value is not None:
                extra[name] = value
        return extra

    def start(self) -> None:
        """Build the server from the arguments and the statsd environment.

        Raise :class:`~gear.errors.ConfigurationError` with one line naming
        the option when the server cannot start.
        """
        from gear.server.httpd import HttpListenError
        from gear.server.server import Server as GearServer
        from gear.server.store import QueueStoreError

        statsd_host = os.environ.get("STATSD_HOST")
        statsd_port = int(os.environ.get("STATSD_PORT", 8125))
        statsd_prefix = os.environ.get("STATSD_PREFIX")
        try:
            self.server = GearServer(
                self.args.port,
                self.args.ssl_key,
                self.args.ssl_cert,
                self.args.ssl_ca,
                statsd_host,
                statsd_port,
                statsd_prefix,
                acl=self._acl,
                host=self.args.listen_address,
                keepalive=self.args.keepalive,
                tcp_keepidle=self.args.tcp_keepidle,
                tcp_keepintvl=self.args.tcp_keepintvl,
                tcp_keepcnt=self.args.tcp_keepcnt,
                metrics_address=self.args.metrics_address,
                event_loop=self.args.loop,
                **self._server_options(),
            )
        except QueueStoreError as e:
            flag = "--queue-url" if self.args.queue_url else "--queue-file"
            raise ConfigurationError("%s: %s" % (flag, e)) from None
        except HttpListenError as e:
            raise ConfigurationError(
                "cannot listen on %s port %d (--metrics-address, --metrics-port): %s"
                % (self.args.metrics_address, self.args.metrics_port, e.strerror or e)
            ) from None
        except OSError as e:
            cause = e.__cause__ if isinstance(e.__cause__, OSError) else e
            host = self.args.listen_address
            where = "%s port %d" % (host, self.args.port) if host else "port %d" % self.args.port
            raise ConfigurationError(
                "cannot listen on %s (-p, --listen-address): %s" % (where, cause.strerror or cause)
            ) from None
        except Exception as e:
            raise ConfigurationError("cannot start: %s" % e) from None

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        log = logging.getLogger("gear.geard")
        if self.server is None:
            self._early_signal = signum  # acted on once the server has started
            return
        if self._signalled:
            log.info("Received %s again, stopping now", name)
            self.server.shutdown()
            return
        self._signalled = True
        log.info("Received %s, shutting down gracefully", name)
        self.server.shutdown(graceful=True)

    def serve(self) -> int:
        """Start the server and block until a signal or ``shutdown`` stops it."""
        log = logging.getLogger("gear.geard")
        # SIGTERM's default would kill geard if it came while the server is
        # starting (it already listens then): take it over first.
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self.start()
        except ConfigurationError as e:
            if self.args.log_config or not self.args.nodaemon:
                log.error("Unable to start geard: %s", e)  # else stderr gets it just below
            self._remove_pidfile()  # before the shell hears of the failure
            self._report(str(e))
            return 1
        signal.signal(signal.SIGINT, self._on_signal)
        # What start-up made (modules, classes, the server) lives as long as geard:
        # out of the collector's sight, a full collection costs what the jobs cost.
        # Start-up's garbage is collected first, so none of it is kept for good.
        gc.collect()
        gc.freeze()
        log.info("geard %s running (pid %d, %s build)", __version__, os.getpid(), BUILD)
        if self._early_signal is not None:
            self._on_signal(self._early_signal, None)
        self._report(None)
        while not self.server.wait(1.0):
            pass
        log.info("geard exited")
        return 0

    def _report(self, problem: str | None) -> None:
        """Tell the shell that ran geard whether it started (one line, or none)."""
        if self._ready_fd is None:
            if problem is not None:
                _complain(problem)
            return
        line = "" if problem is None else " ".join(problem.split())
        os.write(self._ready_fd, line.encode(errors="replace") + b"\n")
        os.close(self._ready_fd)
        self._ready_fd = None

    def _lock_pidfile(self) -> int:
        pidfile = self.args.pidfile = os.path.abspath(self.args.pidfile)
        try:
            os.makedirs(os.path.dirname(pidfile), exist_ok=True)
            fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigurationError("--pidfile %s: %s" % (pidfile, e.strerror or e)) from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigurationError(
                "--pidfile %s is locked: is another geard running?" % pidfile
            ) from None
        return fd

    def daemonize(self, fd: int) -> int | None:
        """Detach with a double fork; keep the pidfile ``fd`` locked in the daemon.

        Return None in the daemon. The first process waits for the daemon's
        one-line report and returns the exit status for the shell.
        """
        ready, report = os.pipe()
        first = os.fork()
        if first > 0:
            os.close(report)
            os.close(fd)
            os.waitpid(first, 0)
            return self._await_daemon(ready)
        os.close(ready)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        os.chdir("/")
        os.umask(0o022)
        _relock(fd)
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())
        self._pidfile_fd = fd
        self._ready_fd = report
        devnull = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(devnull, target)
        os.close(devnull)
        return None

    def _await_daemon(self, ready: int) -> int:
        with os.fdopen(ready, "rb") as pipe:
            line = pipe.readline(4096)
        if line == b"\n":
            return 0
        if line:
            _complain(line.decode(errors="replace"))
        else:
            _complain("the daemon exited while starting; see its log")
        return 1

    def _remove_pidfile(self) -> None:
        if self._pidfile_fd is not None:
            try:
                os.unlink(self.args.pidfile)
            except OSError:
                pass
            os.close(self._pidfile_fd)
            self._pidfile_fd = None

    def main(self) -> int:
        """Check, then serve in the foreground (``-d``) or as a daemon; return the status."""
        if self.args.version:
            print("Gear version: %s" % __version__)
            return 0
        try:
            self.check()
            self.setup_logging()
            fd = None if self.args.nodaemon else self._lock_pidfile()
        except ConfigurationError as e:
            _complain(str(e))
            return 2
        if fd is None:
            return self.serve()
        status = self.daemonize(fd)
        if status is not None:
            return status
        try:
            return self.serve()
        finally:
            self._remove_pidfile()


def _relock(fd: int) -> None:
    """Take the pidfile lock in the daemon; the first process may not have let go yet.

    POSIX locks are not inherited across fork: the first process holds the
    lock until it closes its copy of ``fd`` just after forking, so a few
    tries bounded to 5 s cover that window (another geard taking the file
    meanwhile still gets refused).
    """
    deadline = time.monotonic() + 5.0
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _complain(problem: str) -> None:
    """Print one line to stderr, whatever the problem's text holds."""
    print("geard: %s" % " ".join(problem.split()), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geard`` console script."""
    command = Server()
    command.parse_arguments(argv)
    try:
        return command.main()
    except KeyboardInterrupt:  # Ctrl-C while starting, before geard handles SIGINT itself
        return 130


if __name__ == "__main__":
    sys.exit(main())
