"""harness/config.py is the bottom of the engine's layers: it imports nothing of the kinds,
the clients or the events (what the adapters declare is handed in), and no import cycle
runs through it — read on the source, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

UPPER_LAYERS = ("harness.kinds", "harness.clients", "harness.events")


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    return name.removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """Every engine module -> the engine modules it imports (anywhere in the file)."""
    modules = {_module_name(p): p for p in (REPO / "harness").rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_config_imports_nothing_of_the_kinds_the_clients_or_the_events() -> None:
    imported = reachable(import_graph(), "harness.config")
    assert sorted(m for m in imported if m.startswith(UPPER_LAYERS)) == []


def test_no_import_cycle_runs_through_config() -> None:
    graph = import_graph()
    assert "harness.config" not in reachable(graph, "harness.config")
    # every module that imports config is above it: none is reached from it
    importers = {m for m, targets in graph.items() if "harness.config" in targets}
    assert importers, "the scanner must see config's importers"
    assert importers.isdisjoint(reachable(graph, "harness.config"))


def test_the_errors_are_still_importable_from_config() -> None:
    from harness import errors
    from harness.config import ConfigError, TargetError

    assert ConfigError is errors.ConfigError and TargetError is errors.TargetError
    assert issubclass(TargetError, ConfigError)
