"""The server options addServer and add_server share."""

from __future__ import annotations

from typing import Any

import pytest

import gear
from gear._server_spec import ServerEntry, ServerOptions, ServerSpec, server_options


def test_duplicate_host_and_port() -> None:
    added = [("127.0.0.1", 4730)]
    ServerSpec("127.0.0.1", 4731).check_new(added)
    ServerSpec("localhost", 4730).check_new(added)
    for port in (4730, "4730", " 4730"):
        with pytest.raises(gear.ConfigurationError, match="already specified"):
            ServerSpec("127.0.0.1", port).check_new(added)


@pytest.mark.parametrize("port", ["gearman", "47 30", "", 4730.0, True, None, "4730x"])
def test_a_port_that_is_not_an_integer_is_refused(port: object) -> None:
    with pytest.raises(gear.ConfigurationError, match="must be an integer"):
        ServerSpec("127.0.0.1", port)  # type: ignore[arg-type]


@pytest.mark.parametrize("port", [-1, 65536, "70000"])
def test_a_port_out_of_range_is_refused(port: int | str) -> None:
    with pytest.raises(gear.ConfigurationError, match="between 0 and 65535"):
        ServerSpec("127.0.0.1", port)


def test_a_server_needs_a_host() -> None:
    with pytest.raises(gear.ConfigurationError, match="host name"):
        ServerSpec("", 4730)


def test_address_names_the_server() -> None:
    assert ServerSpec("127.0.0.1", 4730).address == "127.0.0.1:4730"
    assert ServerSpec("::1", "4731").address == "[::1]:4731"


@pytest.mark.parametrize(
    ("entry", "options"),
    [
        ("gear.example", {"host": "gear.example"}),
        ("gear.example:4731", {"host": "gear.example", "port": "4731"}),
        ("[::1]:4731", {"host": "::1", "port": "4731"}),
        ("[::1]", {"host": "::1"}),
        ("::1", {"host": "::1"}),
        (("127.0.0.1", 4731), {"host": "127.0.0.1", "port": 4731}),
        ({"host": "h", "ssl_ca": "ca.pem"}, {"host": "h", "ssl_ca": "ca.pem"}),
    ],
)
def test_server_entries(entry: ServerEntry, options: ServerOptions) -> None:
    assert server_options(entry) == options


@pytest.mark.parametrize(
    "entry", ["[::1", "[::1]x", ("h",), {"port": 1}, {"host": "h", "sslkey": "k"}, 4730]
)
def test_bad_server_entries(entry: Any) -> None:
    with pytest.raises(gear.ConfigurationError):
        server_options(entry)


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


def test_port_zero_is_accepted_as_gear_016_did() -> None:
    """gear 0.16's own suite adds port 0 for a server that never answers."""
    assert ServerSpec("127.0.0.1", 0).port == 0
