"""The shape of every package's source: no module over 500 lines, no import cycle.

packages/gear-server/tests/test_layers.py checks geard's layers in detail;
this checks the rule that holds for every distribution, read from the
source files (so a new module is covered without being listed).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(ROOT.glob("packages/*/src/gear/**/*.py"))
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    names = list(parts[parts.index("src") + 1 :])
    names[-1] = names[-1][: -len(".py")]
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


MODULES = {module_name(path): path for path in SOURCES}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def module_level_imports(path: Path) -> set[str]:
    """gear modules imported when ``path`` is imported (not under TYPE_CHECKING, not
    inside a function: those run later and are how the facade stays lazy)."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    target = node.module + "." + alias.name
                    found.add(target if target in MODULES else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)

    visit(ast.parse(path.read_text()).body)
    return {name for name in found if name in MODULES}


def test_the_sources_are_found() -> None:
    assert {"gear", "gear.codec", "gear.client.aio", "gear.worker.aio", "gear.server.engine"} <= (
        set(MODULES)
    )


def test_no_module_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in SOURCES
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_no_import_cycle_between_modules() -> None:
    # A package's __init__ re-exports its modules; an edge into a package is
    # the language's own parent import, not a design choice, so it is left out.
    graph = {
        name: module_level_imports(path) - PACKAGES - {name}
        for name, path in MODULES.items()
        if name not in PACKAGES
    }
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            assert state.get(target) != 1, "cycle: " + " -> ".join([*trail, node, target])
            if target not in state:
                walk(target, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [])


def test_the_import_reader_sees_module_imports_only() -> None:
    seen = module_level_imports(MODULES["gear.client.aio"])
    assert {"gear.client.async_replies", "gear.client.tracker", "gear.codec"} <= seen
    # gear.client.async_job's TYPE_CHECKING-only import of gear._aio is not an edge
    assert "gear._aio" not in module_level_imports(MODULES["gear.client.async_job"])
