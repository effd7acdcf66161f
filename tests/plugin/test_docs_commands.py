"""The pytest command lines of README.md and docs/adapters.md — given directly (``pytest -n
2 --env local``) or made by ``harness run`` from its own options and what it passes on
(``--junitxml``, ``--alert``, ``-- -x -k me``) — are taken by pytest's real parser, with the
installed plugins (the harness, xdist, pytest-html) loaded as a user's pytest loads them.
Parsing only: nothing is collected or run. The commands themselves are found by
tests/unit/test_docs_commands.py."""

from __future__ import annotations

import pytest

from tests.unit.test_docs_commands import Command, pytest_command_lines

LINES = pytest_command_lines()


@pytest.mark.parametrize(("command", "args"), LINES, ids=[str(c) for c, _ in LINES])
def test_pytest_takes_each_documented_command_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, command: Command, args: list[str]
) -> None:
    for variable in ("HARNESS_ENV", "HARNESS_CONFIG", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(variable, raising=False)
    config = pytester.parseconfig(*args)  # pytest.UsageError on a line it does not take
    assert config.pluginmanager.has_plugin("env_harness"), "the installed plugin was not loaded"


def test_a_command_line_pytest_does_not_take_is_refused(pytester: pytest.Pytester) -> None:
    """The check can fail: an option no plugin defines, and a value the harness's parser
    refuses (values checked only when the run configures, ``--alert``'s, are not seen)."""
    with pytest.raises(pytest.UsageError, match="unrecognized arguments: --report"):
        pytester.parseconfig("--report", "out.json")  # harness run's, not pytest's
    with pytest.raises(pytest.UsageError, match="--residue-settle"):
        pytester.parseconfig("--residue-settle", "-1")
