"""``tests/breaks.py`` (the audit's deliberate breaks, run by hand: ~3 min) stays true to the
code: each break's line still occurs exactly once where it says, and each test it names
exists. A refactor that moves a line fails here, in the fast tier, not silently later."""

from __future__ import annotations

import ast
import os

import pytest

from tests.breaks import BREAKS, ROOT, Break

# Under mutation testing the sources are mutmut's rewritten copies, where a line occurs once
# per mutant: this checks the repository's files, not behaviour, so it has nothing to kill.
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("HARNESS_MUTATION_RUN")), reason="checks the checkout's own files"
)


def _test_names(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


@pytest.mark.parametrize("item", BREAKS, ids=lambda b: b.what[:40])
def test_each_break_still_applies_to_the_code_and_names_real_tests(item: Break) -> None:
    source = (ROOT / item.path).read_text(encoding="utf-8")
    assert source.count(item.old) == 1, f"{item.path}: {item.old!r} moved; update tests/breaks.py"
    assert item.tests
    for test in item.tests:
        path, _, name = test.partition("::")
        assert name in _test_names(path), f"{test} does not exist; update tests/breaks.py"
