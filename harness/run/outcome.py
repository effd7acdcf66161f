"""Exit statuses: one number per outcome of a run, the same for ``harness`` and plain ``pytest``.

Owns the table CI acts on, and turning what pytest says (its own exit codes, whether the
harness saw a real interrupt, collection errors, the residue verdict) into one row of it.
pytest's codes are never passed through with a different meaning: its usage error (4) is
``config`` (8), its "interrupted" (2) is either ``interrupted`` (130) or ``collection_error``
(9). A CI step can tell "staging is down" (7) from "a test file does not import" (9).

======  ==================  ======================================================
status  outcome             meaning
======  ==================  ======================================================
0       passed              every test passed (or was skipped) and nothing leaked
1       failed              a test failed or errored (whatever the residue check said)
3       internal_error      a bug in the harness, a plugin or pytest (as pytest's 3)
5       no_tests            no test was selected (as pytest's 5: a -k/-m that matches nothing)
6       leaked              the tests passed, but something was left behind or a cleanup
                            failed
7       unreachable         the target cannot be reached, or is not the profile's environment
8       config              bad configuration or usage (profile, option, variable)
9       collection_error    a test file does not import / cannot be collected
10      run_in_use          a live process holds this run id (the same HARNESS_RUN_ID and
                            shard twice; recover/residue of a run that is still running)
130     interrupted         Ctrl-C or SIGTERM (cleanup ran)
======  ==================  ======================================================
"""

from __future__ import annotations

from dataclasses import dataclass

PASSED = 0
FAILED = 1
INTERNAL_ERROR = 3
NO_TESTS = 5
LEAKED = 6
UNREACHABLE = 7
CONFIG = 8
COLLECTION_ERROR = 9
RUN_IN_USE = 10
INTERRUPTED = 130

WORDS = {
    PASSED: "passed",
    FAILED: "failed",
    INTERNAL_ERROR: "internal_error",
    NO_TESTS: "no_tests",
    LEAKED: "leaked",
    UNREACHABLE: "unreachable",
    CONFIG: "config",
    COLLECTION_ERROR: "collection_error",
    RUN_IN_USE: "run_in_use",
    INTERRUPTED: "interrupted",
}

# pytest.ExitCode values, without importing pytest (the CLI imports it late).
_PYTEST_OK, _PYTEST_FAILED, _PYTEST_INTERRUPTED = 0, 1, 2
_PYTEST_INTERNAL, _PYTEST_USAGE, _PYTEST_NO_TESTS = 3, 4, 5


def word(status: int) -> str:
    return WORDS.get(status, f"exit_{status}")


@dataclass(frozen=True)
class RunFacts:
    """What the harness saw of a run (the plugin collects these)."""

    pytest_status: int
    #: Ctrl-C / SIGTERM (not pytest's own "Interrupted" after collection errors or -x).
    interrupted: bool = False
    collection_errors: int = 0
    #: Failed tests and test phases, not counting ``cleanup_failures``.
    tests_failed: int = 0
    #: Teardowns that failed only because deleting a test's data failed.
    cleanup_failures: int = 0
    #: The residue check found nothing and every cleanup succeeded (None: not known).
    clean: bool | None = True
    #: Failed test phases of quarantined tests (``quarantine.toml``): reported, not failing.
    quarantined_failures: int = 0


def decide(facts: RunFacts) -> int:
    """The run's exit status, by the table above; the first row that applies wins."""
    if facts.interrupted:
        return INTERRUPTED
    if facts.pytest_status == _PYTEST_USAGE:
        return CONFIG
    if facts.pytest_status == _PYTEST_INTERNAL:
        return INTERNAL_ERROR
    if facts.collection_errors:
        return COLLECTION_ERROR
    excused = facts.cleanup_failures or facts.quarantined_failures
    if facts.tests_failed or (facts.pytest_status == _PYTEST_FAILED and not excused):
        return FAILED
    if facts.pytest_status == _PYTEST_INTERRUPTED:
        # pytest stopped the session itself (xdist's -x, a worker's stop) without a failure
        # it counted: nothing the user asked for finished.
        return INTERRUPTED
    if facts.clean is False or facts.cleanup_failures:
        return LEAKED
    if facts.pytest_status == _PYTEST_NO_TESTS:
        return NO_TESTS
    if facts.pytest_status == _PYTEST_OK or (
        facts.pytest_status == _PYTEST_FAILED and facts.quarantined_failures
    ):
        return PASSED
    return facts.pytest_status


def from_pytest(status: int) -> int:
    """A bare pytest status (the harness plugin was not in charge) on the harness's table."""
    if status == _PYTEST_USAGE:
        return CONFIG
    if status == _PYTEST_INTERRUPTED:
        return INTERRUPTED
    return status
