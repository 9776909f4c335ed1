"""geard's module layout: what each module may import, no cycles, no I/O below the transport.

The table is the one drawn in docs/explanation/architecture.rst; change
both together.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import gear.server

PACKAGE = Path(gear.server.__file__).parent

#: module -> the gear.server modules it may import
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "model": set(),
    "schedule": set(),
    "store": set(),
    "_version": set(),
    "certs": set(),
    "_compiled": set(),
    "_build": set(),
    "counters": set(),
    "stats": {"_compiled", "model"},
    "outbox": {"_compiled", "counters", "model", "stats", "store"},
    "acl_admin": {"_compiled", "model", "outbox"},
    "engine": {"_compiled", "acl_admin", "config", "counters", "model", "outbox", "stats", "store"},
    "hooks": {"model"},
    "store_events": {"_compiled", "engine", "model", "store"},
    "handlers": {
        "_compiled",
        "config",
        "counters",
        "hooks",
        "model",
        "outbox",
        "schedule",
        "store_events",
    },
    "admin": {"_version", "handlers", "model", "outbox"},
    "inbox": {"admin", "model", "outbox"},
    "transport": {"inbox", "model"},
    "runtime": {"_build", "transport"},
    "server": {
        "_statsd",
        "acl_admin",
        "config",
        "model",
        "postgres_schema",
        "postgres_store",
        "runtime",
        "monitor",
        "sqlite_store",
        "store",
        "transport",
    },
    "_statsd": {"stats"},
    "httpd": set(),
    "metrics": {"_version", "counters", "httpd", "runtime"},
    "dashboard": {"_version", "counters", "httpd", "runtime"},
    "monitor": {"counters", "dashboard", "httpd", "metrics"},
    "sqlite_store": {"store"},
    "postgres_schema": {"store"},
    "postgres_store": {"postgres_schema", "store"},
    "job": {"model"},
    "__init__": {"_version", "model", "server", "store"},
}

#: Everything the engine needs; none of it may touch the network or an event loop.
IO_FREE = [
    "_compiled",
    "config",
    "counters",
    "model",
    "schedule",
    "store",
    "stats",
    "outbox",
    "acl_admin",
    "engine",
    "store_events",
    "hooks",
    "handlers",
    "admin",
    "inbox",
]


def imports_of(path: Path) -> set[str]:
    """gear.server modules imported anywhere in ``path`` except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "gear.server":
                found.update(alias.name for alias in node.names if alias.name != "__version__")
            elif node.module.startswith("gear.server."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("gear.server."):
                    found.add(alias.name.split(".")[2])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_every_module_is_in_the_table() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(ALLOWED)


def test_modules_import_only_what_the_layering_allows() -> None:
    for name in ALLOWED:
        extra = imports_of(PACKAGE / (name + ".py")) - ALLOWED[name]
        assert not extra, "%s imports %s" % (name, sorted(extra))


def test_no_import_cycle() -> None:
    graph = {name: imports_of(PACKAGE / (name + ".py")) - {"__init__"} for name in ALLOWED}
    graph.pop("__init__")  # the package's lazy names point at server on first use only
    state: dict[str, int] = {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in graph.get(node, ()):
            assert state.get(target) != 1, "cycle: " + " -> ".join([*path, node, target])
            if target not in state:
                walk(target, [*path, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            walk(node, [])


def test_no_module_over_500_lines() -> None:
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 500, path.name


def test_engine_layers_import_without_asyncio_or_socket() -> None:
    """Run in a fresh interpreter: the gear facade may have imported socket or
    asyncio already; once they are blocked, the engine's modules must still import."""
    modules = ", ".join("gear.server." + name for name in IO_FREE)
    code = f"""
import sys
import gear, gear.acl, gear.admin, gear.codec, gear.job, gear.packet
for name in ("asyncio", "socket", "ssl", "selectors", "sqlite3"):
    sys.modules[name] = None  # importing it now raises ImportError
import {modules}
from gear.server import ServerJob, MemoryQueueStore
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("blocked", ["socket", "asyncio"])
def test_the_check_would_catch_the_transport(blocked: str) -> None:
    code = f"""
import sys
import gear
sys.modules["{blocked}"] = None
import gear.server.transport
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and f"import of {blocked} halted" in result.stderr
