"""The engine stays out of pytest's assertion rewriting (``harness.pytest_plugin.rewriting``:
where bytecode is not written, rewriting re-parses and re-compiles every engine module in
every process), while a user's tests and the helpers they register are rewritten as ever,
and pytest has nothing to warn about. A real pytest process, with the installed plugin."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

HELPER = """
def check_total(items, expected):
    assert sum(items) == expected
"""

CONFTEST = """
import pytest

pytest.register_assert_rewrite("helper")
"""

TEST = """
import importlib.metadata
import sys

import harness.cleanup.ledger
import harness.safety.guards
import helper


def loader_of(name):
    return type(sys.modules[name].__spec__.loader).__name__


def test_pytest_marked_the_engine_for_rewriting():
    # pytest marks every module its plugin's distribution lists: the engine among them
    files = importlib.metadata.distribution("env-harness").files or []
    assert any(str(f).replace(chr(92), "/") == "harness/__init__.py" for f in files)


def test_the_engine_is_imported_plainly():
    for name in ("harness.cleanup.ledger", "harness.safety.guards", "harness.pytest_plugin.plugin",
                 "harness.pytest_plugin.fixtures"):
        assert loader_of(name) != "AssertionRewritingHook", name


def test_user_code_is_still_rewritten():
    assert loader_of("helper") == "AssertionRewritingHook"
    assert loader_of(__name__) == "AssertionRewritingHook"


def test_a_registered_helper_explains_its_failure():
    helper.check_total([1, 2], 4)
"""


def test_engine_plain_user_code_rewritten(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checkout's own metadata (as a wheel's RECORD would) lists every engine module.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(helper=HELPER, test_rewriting=TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error::pytest.PytestAssertRewriteWarning", "-rA"
    )
    result.assert_outcomes(passed=3, failed=1)
    # the helper's assert was rewritten: pytest shows the values it compared
    result.stdout.fnmatch_lines(["*assert 3 == 4*"])
    assert "PytestAssertRewriteWarning" not in result.stdout.str() + result.stderr.str()
