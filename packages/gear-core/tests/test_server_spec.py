"""The server options addServer and add_server share."""

from __future__ import annotations

import pytest

import gear
from gear._server_spec import ServerSpec


def test_duplicate_host_and_port() -> None:
    added = [("127.0.0.1", 4730), ("127.0.0.1", "gearman")]
    ServerSpec("127.0.0.1", 4731).check_new(added)
    ServerSpec("localhost", 4730).check_new(added)
    for port in (4730, "4730", "gearman"):
        with pytest.raises(gear.ConfigurationError, match="already specified"):
            ServerSpec("127.0.0.1", port).check_new(added)


def test_tls_only_with_all_three_files() -> None:
    assert ServerSpec("h", 1).ssl_files is None
    assert ServerSpec("h", 1, "k", "c", "ca").ssl_files == ("k", "c", "ca")


def test_a_partial_set_of_tls_files_is_refused() -> None:
    with pytest.raises(gear.ConfigurationError, match=r"together; missing ssl_ca$"):
        ServerSpec("h", 1, "k", "c", None)
    with pytest.raises(gear.ConfigurationError, match=r"missing ssl_key and ssl_cert$"):
        ServerSpec("h", 1, ssl_ca="ca")


def test_keepalive_timings_only_when_on() -> None:
    assert ServerSpec("h", 1, tcp_keepidle=60).keepalive_timings is None
    assert ServerSpec("h", 1, keepalive=True, tcp_keepidle=60).keepalive_timings == (60, 75, 9)
