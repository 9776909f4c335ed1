"""What ``geard`` checks before it detaches or serves.

A mistake in the options must reach the shell that ran ``geard``, not only a
log file after the fork. Each check raises
:class:`~gear.errors.ConfigurationError` with one line that names the option
and the file; ``geard`` prints it and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging.config
import os
import ssl
from collections.abc import Callable

from gear.acl import ACL, ACLError, load_acl_file
from gear.errors import ConfigurationError

__all__ = [
    "apply_log_config",
    "check_metrics",
    "check_queue_file",
    "check_tls",
    "load_acl",
    "number",
    "port",
]


def port(text: str) -> int:
    """argparse type of ``-p``: a TCP port (0 lets the system pick one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a port number: %r" % text) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("port %d is out of range (0 to 65535)" % value)
    return value


def number(kind: type[int] | type[float], least: float) -> Callable[[str], float]:
    """argparse type of a limit: an int or float no smaller than ``least``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "not %s number: %r" % ("a whole" if kind is int else "a", text)
            ) from None
        if value < least:
            raise argparse.ArgumentTypeError("%s is below the least value, %s" % (text, least))
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def check_metrics() -> None:
    """``--metrics-port`` needs prometheus_client, the ``metrics`` extra."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "--metrics-port needs the prometheus_client package: pip install 'gear-server[metrics]'"
        ) from None


#: More than any key, certificate bundle or logging config needs.
_MAX_READ = 4 * 1024 * 1024


def _read(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(_MAX_READ)
    except OSError as e:
        raise ConfigurationError("%s %s: %s" % (option, path, e.strerror or e)) from None


class _Encrypted(Exception):
    pass


def _no_password() -> str:
    raise _Encrypted


def check_tls(key: str, cert: str, ca: str) -> None:
    """Check that each TLS file is readable PEM and that the key fits the cert.

    OpenSSL's own errors name neither the option nor the file (a swapped
    key and certificate give "PEM lib").
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for option, path in (("--ssl-cert", cert), ("--ssl-ca", ca)):
        _read(option, path)
        try:
            context.load_verify_locations(cafile=path)
        except (ssl.SSLError, ValueError):
            raise ConfigurationError(
                "%s %s: no PEM certificate in this file" % (option, path)
            ) from None
    if b"PRIVATE KEY-----" not in _read("--ssl-key", key):
        raise ConfigurationError("--ssl-key %s: no PEM private key in this file" % key)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except _Encrypted:
        raise ConfigurationError(
            "--ssl-key %s: the key is encrypted; geard needs it unencrypted" % key
        ) from None
    except ssl.SSLError as e:
        raise ConfigurationError(
            "--ssl-key %s does not match --ssl-cert %s (%s)" % (key, cert, e.reason or e)
        ) from None


def check_queue_file(path: str) -> None:
    """Check that the queue file can be created or opened where it is named.

    Whether an existing file is a usable queue is checked when it is opened.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigurationError("--queue-file %s: directory %s does not exist" % (path, folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigurationError("--queue-file %s: directory %s is not writable" % (path, folder))
    if os.path.isdir(path):
        raise ConfigurationError("--queue-file %s: is a directory, not a queue file" % path)
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigurationError("--queue-file %s: not readable and writable" % path)


def apply_log_config(path: str) -> None:
    """Configure logging from a :func:`logging.config.fileConfig` file."""
    _read("--log-config", path)
    try:
        logging.config.fileConfig(path, disable_existing_loggers=False)
    except KeyError as e:  # a section or key the format requires is missing
        raise ConfigurationError(
            "--log-config %s: not a usable logging config: missing %s" % (path, e)
        ) from None
    except Exception as e:
        reason = str(e).split("\n")[0].replace("%s is invalid: " % path, "")
        raise ConfigurationError(
            "--log-config %s: not a usable logging config: %s" % (path, reason)
        ) from None


def load_acl(path: str, tls: bool) -> ACL:
    """Read the ACL file; refuse it without TLS, where every peer is anonymous.

    ACL subjects are the Common Names of client certificates: on plain TCP
    no peer has one, so the ACL would deny every request.
    """
    if not tls:
        raise ConfigurationError(
            "--acl %s needs TLS (--ssl-key, --ssl-cert and --ssl-ca): ACL subjects "
            "are the names on client certificates" % path
        )
    try:
        return load_acl_file(path)
    except ACLError as e:
        raise ConfigurationError("--acl: %s" % e) from None
