"""When the installed plugin takes charge of a run, in a project that has no profiles file
(a newcomer's first directory, with a sandbox exported in the shell): plain ``pytest`` leaves
it off and a test asking for a harness fixture gets one line naming the ways to turn it on;
``pytest --harness`` and ``harness run`` turn it on with the bare ``sandbox`` profile. Real
pytest processes against a real sandbox."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

TEST = """
def test_health(api, namespace):
    assert api.get("/health").status_code == 200
    assert str(namespace).startswith("itest-")
"""


@pytest.fixture
def newcomer(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, sandbox_environ: dict[str, str]
) -> pytest.Pytester:
    """A project with one test and no environments.toml; the sandbox's exports set, and
    nothing that names a profiles file or a profile."""
    for key, value in sandbox_environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HARNESS_CONFIG", raising=False)
    monkeypatch.delenv("HARNESS_ENV", raising=False)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(pytester.path / ".harness"))
    pytester.makepyfile(test_it=TEST)
    assert not (pytester.path / "environments.toml").exists()
    return pytester


def test_plain_pytest_leaves_the_harness_off_and_says_how_to_turn_it_on(
    newcomer: pytest.Pytester,
) -> None:
    result = newcomer.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*this pytest run names no target, so the harness is off*"])
    assert "--collect-only" not in result.stdout.str()


def test_pytest_with_the_harness_option_runs_against_the_sandbox(
    newcomer: pytest.Pytester,
) -> None:
    result = newcomer.runpytest_subprocess("-p", "no:cacheprovider", "--harness")
    result.assert_outcomes(passed=1)
    assert "residue check: clean" in result.stdout.str() + result.stderr.str()


def test_harness_run_takes_charge_without_a_profiles_file(newcomer: pytest.Pytester) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--", "-p", "no:cacheprovider", "test_it.py"],
        cwd=newcomer.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout


def test_plain_pytest_starting_its_own_sandbox_says_each_step_as_it_happens(
    newcomer: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No running sandbox named: the run starts one itself, and relays its start-up steps
    (a cold Kafka start is a minute: never a silent one)."""
    for key in [k for k in os.environ if k.startswith("HARNESS_") and k != "HARNESS_STATE_DIR"]:
        monkeypatch.delenv(key)
    result = newcomer.runpytest_subprocess("-p", "no:cacheprovider", "--harness")
    result.assert_outcomes(passed=1)
    err = result.stderr.str()
    assert "harness: starting the local sandbox…" in err
    assert "harness:   [" in err and " ready in " in err, err
