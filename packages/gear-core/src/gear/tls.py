"""TLS contexts for clients, workers and servers (TLS 1.2 and 1.3)."""

from __future__ import annotations

import os
import ssl

from gear.errors import ConnectionError

__all__ = ["best_tls_version", "check_tls_files", "create_ssl_context"]

_ARG_NAMES = ("ssl_key", "ssl_cert", "ssl_ca")
_CLI_NAMES = ("--ssl-key", "--ssl-cert", "--ssl-ca")

TLSPath = str | os.PathLike[str] | None


def check_tls_files(key: TLSPath, cert: TLSPath, ca: TLSPath, *, cli: bool = False) -> bool:
    """Return whether TLS is on: True for all three files, False for none.

    Raise :class:`ValueError` naming the missing ones when only some are
    given (an empty string counts as missing): gear 0.16 fell back to plain
    TCP without a word. ``cli`` spells them as ``geard`` options.
    """
    given = [bool(value) for value in (key, cert, ca)]
    if all(given):
        return True
    if not any(given):
        return False
    names = _CLI_NAMES if cli else _ARG_NAMES
    missing = [name for name, present in zip(names, given, strict=True) if not present]
    raise ValueError(
        "TLS needs %s, %s and %s together; missing %s" % (*names, " and ".join(missing))
    )


def best_tls_version() -> int:
    """Return the most capable TLS protocol constant this Python offers."""
    for name in ("PROTOCOL_TLS", "PROTOCOL_TLSv1_2"):
        value = getattr(ssl, name, None)
        if value is not None:
            return int(value)
    raise ConnectionError("No supported TLS version is available")


def create_ssl_context(server_side: bool = False) -> ssl.SSLContext:
    """Return a context that negotiates TLS 1.2 or 1.3 and verifies the peer.

    gear 0.16 disabled TLS 1.3; gear allows it and still accepts 1.2 peers.
    Client contexts verify the server against the CA but not its host name
    (Gearman deployments name servers by address); server contexts require a
    client certificate, whose common name is the peer's ACL subject.
    """
    protocol = ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def load_context(
    ssl_key: str, ssl_cert: str, ssl_ca: str, server_side: bool = False
) -> ssl.SSLContext:
    """Return :func:`create_ssl_context` loaded with a key, certificate and CA."""
    context = create_ssl_context(server_side=server_side)
    context.load_cert_chain(ssl_cert, ssl_key)
    context.load_verify_locations(ssl_ca)
    return context


def peer_common_name(sslobj: ssl.SSLSocket | ssl.SSLObject) -> str | None:
    """Return the commonName of the peer's verified certificate, if any."""
    cert = sslobj.getpeercert()
    if not cert:
        return None
    subject: tuple[tuple[tuple[str, str], ...], ...] = cert.get("subject", ())  # type: ignore[assignment]
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
