"""Check that the TLS files come as a full set: key, certificate and CA.

TLS needs all three; with only some given, the server used to fall back to
plain TCP without a word. Both ``geard`` and ``gear.Server`` refuse that.
"""

from __future__ import annotations

import os

__all__ = ["check_tls_files"]

_ARG_NAMES = ("ssl_key", "ssl_cert", "ssl_ca")
_CLI_NAMES = ("--ssl-key", "--ssl-cert", "--ssl-ca")

TLSPath = str | os.PathLike[str] | None


def check_tls_files(key: TLSPath, cert: TLSPath, ca: TLSPath, *, cli: bool = False) -> bool:
    """Return whether TLS is on: True for all three files, False for none.

    Raise :class:`ValueError` naming the missing ones when only some are
    given (an empty string counts as missing). ``cli`` spells them as the
    ``geard`` options instead of the ``Server`` arguments.
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
