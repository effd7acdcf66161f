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
