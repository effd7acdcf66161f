"""The layout's import rules, checked on the source: the engine knows no particular service,
the sandbox is somebody else's service, and the reference adapter uses only the public API."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO


def imports(folder: str) -> list[tuple[str, str]]:
    """(file, imported module) for every absolute import under ``folder``."""
    found = []
    for path in sorted((REPO / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(REPO)), a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((str(path.relative_to(REPO)), node.module))
    return found


def roots(folder: str) -> set[str]:
    return {module.split(".")[0] for _, module in imports(folder)}


def test_the_engine_never_imports_an_adapter_or_a_suite() -> None:
    assert not roots("harness") & {"fixtures", "suites", "sandbox", "tests"}


def test_the_engine_never_imports_the_sandbox_except_to_start_it() -> None:
    # the engine runs `python -m harness.sandbox` as a child; it never imports its code
    offenders = [(f, m) for f, m in imports("harness") if m.startswith("harness.sandbox")]
    assert offenders == []


@pytest.mark.parametrize("folder", ["sandbox"])
def test_the_sandbox_never_imports_the_engine(folder: str) -> None:
    assert "harness" not in roots(folder)


def test_the_reference_adapter_uses_only_the_public_api() -> None:
    public = {"harness.adapter", "harness.pytest_plugin.fixtures", "harness.run.session"}
    private = [
        (f, m) for f, m in imports("fixtures") if m.startswith("harness") and m not in public
    ]
    assert private == []


def test_the_rules_see_imports_at_all() -> None:
    """The checks above would pass on an empty list: prove the scanner reads real imports."""
    assert ("fixtures/kinds.py", "harness.adapter") in imports("fixtures")
    assert any(m == "harness.kinds.base" for _, m in imports("harness"))


def module_graph() -> dict[str, set[str]]:
    """The engine's modules and the engine modules each imports — at the top, inside a
    function or under ``TYPE_CHECKING`` alike (a cycle there still ties the files together).
    ``from harness.x import y`` counts as importing ``harness.x.y`` when that is a module;
    a package's ``__init__`` (its face, re-exporting its modules) is left out."""
    modules = {
        ".".join(path.relative_to(REPO).with_suffix("").parts): path
        for path in (REPO / "harness").rglob("*.py")
        if path.name != "__init__.py"
    }
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t if t in modules else node.module for t in targets]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_two_engine_modules_import_each_other() -> None:
    """No import cycle among the engine's modules: each concept sits above what it uses
    (the config and the kinds' registry once tied nine files into one; the lease and the
    recovery, the ledger and the kinds' base, the commands and the history did so too)."""
    assert cycles(module_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert len(module_graph()) > 50 and module_graph()["harness.cleanup.recovery"]
