"""``--queue-url`` and its options, checked before any database is reached.

The cluster itself (real PostgreSQL, several geard processes) is tested in
``tests/server/test_postgres_cluster.py``.
"""

from __future__ import annotations

import subprocess

import pytest

from fixtures.geard import GEARD, RawGearman
from fixtures.servers import free_port
from gear.server import Server
from gear.server.postgres_schema import check_node_id, default_node_id, redact
from gear.server.store import QueueStoreError


def test_redact_drops_password_and_query() -> None:
    assert (
        redact("postgresql://geard:s3cret@db.example.net:5433/gear?password=x&sslmode=require")
        == "postgresql://geard@db.example.net:5433/gear"
    )
    assert redact("postgresql://[::1]/gear") == "postgresql://[::1]/gear"


def test_node_ids_fit_in_a_handle_and_a_listing_line() -> None:
    assert default_node_id("10.0.0.5", 4730) == "10.0.0.5:4730"
    assert check_node_id("node-a:4730") == "node-a:4730"
    for bad in ("", "a b", "x" * 33, "tab\there", "new\nline"):
        with pytest.raises(ValueError):
            check_node_id(bad)
    long_host = "a" * 20 + ".example.net"
    assert default_node_id(long_host, 4730) == "a" * 20 + ":4730"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue-url", "mysql://x@h/db"], b"--queue-url must start with postgresql://"),
        (["--node-id", "n1"], b"--node-id and --node-lease need --queue-url"),
        (["--queue-url", "postgresql://h/db", "--node-id", "bad id"], b"--node-id: node id must"),
        (["--queue-url", "postgresql://h/db", "--queue-file", "/tmp/q.db"], b"not both"),
        (["--queue-url", "postgresql://h/db", "--node-lease", "0"], b"--node-lease"),
    ],
)
def test_bad_cluster_options_fail_before_binding(args: list[str], message: bytes) -> None:
    argv = [*GEARD, "-d", "-p", str(free_port()), "--listen-address", "127.0.0.1", *args]
    out = subprocess.run(argv, capture_output=True, timeout=30)
    assert out.returncode == 2
    assert message in out.stderr, out.stderr


def test_server_refuses_two_stores_and_other_urls() -> None:
    with pytest.raises(ValueError):
        Server(0, host="127.0.0.1", queue_url="postgresql://h/db", queue_file="/tmp/q.db")
    with pytest.raises(QueueStoreError):
        Server(0, host="127.0.0.1", queue_url="sqlite:///tmp/q.db")


def test_cluster_command_without_a_shared_store() -> None:
    server = Server(0, host="127.0.0.1")
    try:
        with RawGearman(server.port) as admin:
            assert admin.admin("cluster").startswith(b"ERR NO_CLUSTER ")
    finally:
        server.shutdown()
