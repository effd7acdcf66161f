"""Pure logic: the exit-status table (harness/run/outcome.py), where a profile's target came
from, and the refusal of stale HARNESS_* variables on a profile the user named."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import (
    STARTED_SANDBOX_VARIABLE,
    ConfigError,
    describe_target,
    load_profile,
    provenance,
    refuse_env_overrides,
)
from harness.run import outcome
from harness.run.outcome import RunFacts, decide

PROFILES = """
[staging]
base_url = "https://api.staging.example.com"
environment = "staging"

[sandbox]
environment = "sandbox"
"""
#: What `harness env up` prints (the parts a profile's target depends on).
SANDBOX_EXPORTS = {
    "HARNESS_BASE_URL": "http://127.0.0.1:40001",
    "HARNESS_AWS_ENDPOINT_URL": "http://127.0.0.1:40002",
    "HARNESS_ENVIRONMENT": "sandbox",
    "HARNESS_AWS_REGION": "us-east-1",
}


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    path = tmp_path / "environments.toml"
    path.write_text(PROFILES)
    return path


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        (RunFacts(pytest_status=0), outcome.PASSED),
        (RunFacts(pytest_status=1, tests_failed=2), outcome.FAILED),
        (RunFacts(pytest_status=1, tests_failed=1, clean=False), outcome.FAILED),
        (RunFacts(pytest_status=0, clean=False), outcome.LEAKED),
        # the only failures are teardowns whose cleanup failed: a cleanup failure, not a test's
        (RunFacts(pytest_status=1, cleanup_failures=1, clean=False), outcome.LEAKED),
        (RunFacts(pytest_status=1, tests_failed=1, cleanup_failures=1), outcome.FAILED),
        (RunFacts(pytest_status=2, collection_errors=1, tests_failed=1), outcome.COLLECTION_ERROR),
        (RunFacts(pytest_status=2, interrupted=True, tests_failed=1), outcome.INTERRUPTED),
        (RunFacts(pytest_status=4), outcome.CONFIG),
        (RunFacts(pytest_status=3), outcome.INTERNAL_ERROR),
        (RunFacts(pytest_status=5), outcome.NO_TESTS),
        (RunFacts(pytest_status=5, clean=False), outcome.LEAKED),
        # xdist's -x ends the session as "interrupted": a failure was counted
        (RunFacts(pytest_status=2, tests_failed=1), outcome.FAILED),
    ],
)
def test_each_run_gets_one_status(facts: RunFacts, status: int) -> None:
    assert decide(facts) == status


def test_statuses_never_reuse_pytests_codes_with_another_meaning() -> None:
    assert outcome.from_pytest(4) == outcome.CONFIG
    assert outcome.from_pytest(2) == outcome.INTERRUPTED
    for status in (0, 1, 3, 5, 6, 7, 8, 9, 130):  # already on the table: unchanged
        assert outcome.from_pytest(status) == status
    assert len(set(outcome.WORDS.values())) == len(outcome.WORDS)
    assert outcome.word(outcome.UNREACHABLE) == "unreachable"


def test_stale_exports_cannot_redirect_a_named_profile(profiles: Path) -> None:
    profile = load_profile("staging", profiles, environ=SANDBOX_EXPORTS, declared={})
    with pytest.raises(ConfigError) as refused:
        refuse_env_overrides(profile, environ={})
    message = str(refused.value)
    for variable in ("HARNESS_BASE_URL", "HARNESS_AWS_ENDPOINT_URL", "HARNESS_ENVIRONMENT"):
        assert variable in message
    assert "HARNESS_AWS_REGION" not in message  # not a guarded field
    assert "--allow-env-override" in message
    # confirmed by flag or variable: allowed
    refuse_env_overrides(profile, allow=True, environ={})
    refuse_env_overrides(profile, environ={"HARNESS_ALLOW_ENV_OVERRIDE": "1"})


def test_named_by_harness_env_is_named_too(profiles: Path) -> None:
    environ = {**SANDBOX_EXPORTS, "HARNESS_ENV": "staging"}
    profile = load_profile(None, profiles, environ=environ, declared={})
    with pytest.raises(ConfigError, match=r"\(\$HARNESS_ENV\)"):
        refuse_env_overrides(profile, environ={})


def test_a_variable_equal_to_the_file_is_no_override(profiles: Path) -> None:
    environ = {"HARNESS_BASE_URL": "https://api.staging.example.com"}
    profile = load_profile("staging", profiles, environ=environ, declared={})
    refuse_env_overrides(profile, environ={})


def test_the_sandbox_profile_takes_a_sandboxs_own_exports(profiles: Path) -> None:
    profile = load_profile("sandbox", profiles, environ=SANDBOX_EXPORTS, declared={})
    refuse_env_overrides(profile, environ={})
    elsewhere = {**SANDBOX_EXPORTS, "HARNESS_BASE_URL": "https://api.staging.example.com"}
    profile = load_profile("sandbox", profiles, environ=elsewhere, declared={})
    with pytest.raises(ConfigError, match="HARNESS_BASE_URL"):
        refuse_env_overrides(profile, environ={})


def test_an_unnamed_profile_is_not_checked(profiles: Path) -> None:
    profile = load_profile(None, profiles, environ=SANDBOX_EXPORTS, declared={})
    refuse_env_overrides(profile, environ={})  # the default profile: no name given


def test_provenance_says_where_each_part_came_from(profiles: Path) -> None:
    environ = {"HARNESS_BASE_URL": "https://other.example.com"}
    target = provenance(load_profile("staging", profiles, environ=environ, declared={}))
    assert target["profile_source"] == "flag --env"
    assert target["base_url_source"] == "variable $HARNESS_BASE_URL"
    assert target["environment_source"] == f"file {profiles}"
    assert target["overridden_by_variables"] == ["HARNESS_BASE_URL"]
    line = describe_target(target)
    assert line.startswith("target [staging] (flag --env): https://other.example.com")


def test_a_sandbox_the_harness_started_reads_sandbox(profiles: Path) -> None:
    environ = {**SANDBOX_EXPORTS, STARTED_SANDBOX_VARIABLE: " ".join(SANDBOX_EXPORTS)}
    profile = load_profile(None, profiles, environ=environ, declared={})
    target = provenance(profile)
    assert target["base_url_source"] == "sandbox"
    assert target["aws_endpoint_url_source"] == "sandbox"
    assert target["profile_source"] == "default"
    assert profile.env_overrides == {}
