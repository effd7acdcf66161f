"""Where a profile's target came from (harness/config.py): the ``sources`` of each value,
the provenance a run prints and reports, which variables count as overrides of a named
profile and the exact refusal, and adapter settings learnt from modules beside the file."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from fixtures.kinds import NOTIFICATIONS, TOKENS, USERS
from harness.config import (
    ALLOW_OVERRIDE_VARIABLE,
    STARTED_SANDBOX_VARIABLE,
    ConfigError,
    Profile,
    describe_target,
    load_profile,
    provenance,
    refuse_env_overrides,
)
from harness.kinds import registry

DECLARED = {s.name: s for s in (USERS, TOKENS, NOTIFICATIONS)}
STAGING = """
[staging]
base_url = "https://api.staging.example.com"
users_table = "stg-users"
tokens_table = "stg-tokens"
notifications_table = "stg-notifications"
"""


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    path = tmp_path / "environments.toml"
    path.write_text(STAGING + "\n[sandbox]\n")
    return path


# -- sources -----------------------------------------------------------------------------------


def test_values_a_started_sandbox_exported_read_sandbox(profiles: Path) -> None:
    environ = {
        "HARNESS_BASE_URL": "http://127.0.0.1:40001",
        "HARNESS_USERS_TABLE": "sbx-users",
        "HARNESS_TOKENS_TABLE": "my-tokens",  # set by the user, not by the sandbox
        STARTED_SANDBOX_VARIABLE: "HARNESS_BASE_URL HARNESS_USERS_TABLE",
    }
    profile = load_profile("staging", profiles, environ=environ, declared=DECLARED)
    assert profile.users_table == "sbx-users" and profile.tokens_table == "my-tokens"
    assert profile.sources == {
        "name": "option",
        "base_url": "sandbox",
        "users_table": "sandbox",
        "tokens_table": "$HARNESS_TOKENS_TABLE",
        "notifications_table": "file",
    }
    assert profile.env_overrides == {}  # what the harness itself started is no stale export


def test_a_variable_equal_to_the_default_or_the_profiles_name_is_no_override(
    profiles: Path,
) -> None:
    same = {
        "HARNESS_ENVIRONMENT": "staging",  # the profile's name: what it expects anyway
        "HARNESS_HEALTH_PATH": "/health",  # the default
        "HARNESS_IDENTITY": "health",
    }
    assert load_profile("staging", profiles, environ=same, declared=DECLARED).env_overrides == {}
    blank = {"HARNESS_ENVIRONMENT": " "}  # set but blank: the name again
    assert load_profile("staging", profiles, environ=blank, declared=DECLARED).env_overrides == {}
    changed = {
        "HARNESS_ENVIRONMENT": "stg-eu",
        "HARNESS_HEALTH_PATH": "/ping",
        "HARNESS_AWS_REGION": "eu-west-1",  # not guarded
    }
    profile = load_profile("staging", profiles, environ=changed, declared=DECLARED)
    assert profile.env_overrides == {
        "environment": "HARNESS_ENVIRONMENT",
        "health_path": "HARNESS_HEALTH_PATH",
    }


def test_several_profiles_without_a_name_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(STAGING + STAGING.replace("[staging]", "[qa]"))
    with pytest.raises(ConfigError) as error:
        load_profile(None, path, environ={}, declared=DECLARED)
    assert str(error.value) == (
        f"{path} defines profiles qa, staging: name one with --env NAME or HARNESS_ENV, or "
        f'write default = "NAME" at the top of {path}'
    )


# -- unknown fields ----------------------------------------------------------------------------


def unknown_field_message(path: Path, declared: dict[str, object]) -> str:
    path.write_text('[staging]\nbase_url = "https://x"\ncolour = 1\n')
    with pytest.raises(ConfigError) as error:
        load_profile("staging", path, environ={}, declared=declared)
    return str(error.value)


def test_an_unknown_field_lists_the_engine_fields_and_the_adapters_settings(
    profiles: Path,
) -> None:
    start = f"{profiles}: profile [staging] has unknown field(s) colour; engine fields: "
    with_settings = unknown_field_message(profiles, dict(DECLARED))
    assert re.fullmatch(
        re.escape(start) + r"[a-z_, ]+"
        r"; settings of its adapters: notifications_table, tokens_table, users_table",
        with_settings,
    ), with_settings
    without = unknown_field_message(profiles, {})
    assert re.fullmatch(
        re.escape(start)
        + r"[a-z_, ]+"
        + re.escape(". Is an adapter missing from adapters = [...]? (now: [])"),
        without,
    ), without


def test_adapter_modules_are_found_beside_the_profiles_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = "adapter_beside_the_profiles_file"
    (tmp_path / f"{module}.py").write_text(
        "from harness.kinds.base import Kind, Setting\n"
        "class Order(Kind):\n"
        '    name = "order"\n'
        '    settings = (Setting("orders_table"),)\n'
    )
    path = tmp_path / "environments.toml"
    path.write_text(
        f'[shop]\nbase_url = "https://x"\nadapters = ["{module}"]\norders_table = "o"\n'
    )
    monkeypatch.setattr(sys, "path", list(sys.path))  # the folder is added to it: undone after
    try:
        profile = registry.load_profile("shop", path, environ={})
    finally:
        sys.modules.pop(module, None)
    assert profile.settings == {"orders_table": "o"}
    assert profile.sources["orders_table"] == "file"


# -- provenance and the target line ------------------------------------------------------------


def test_provenance_of_a_profile_built_in_code_says_defaults() -> None:
    target = provenance(Profile(name="staging", base_url="https://x"))
    assert target == {
        "profile": "staging",
        "profile_source": "flag --env",
        "config_file": "environments.toml",
        "base_url": "https://x",
        "base_url_source": "default",
        "environment": "staging",
        "environment_source": "the profile's name",
        "aws_endpoint_url": "",
        "aws_endpoint_url_source": "",
        "overridden_by_variables": [],
        "protected": True,
        "protected_source": "default: not the sandbox",
        "allow_writes": [],
        "allow_writes_source": "",
    }
    assert describe_target(provenance(Profile(name="sandbox"))) == (
        "target [sandbox] (flag --env): (no base_url) (default), "
        "environment 'sandbox' (the profile's name), unprotected (default: the sandbox profile)"
    )


def test_provenance_names_each_flag_variable_and_file(profiles: Path) -> None:
    profile = load_profile(
        None,
        profiles,
        overrides={"aws_endpoint_url": "http://127.0.0.1:4566"},
        environ={"HARNESS_ENV": "staging", "HARNESS_ENVIRONMENT": "stg-eu"},
        declared=DECLARED,
    )
    target = provenance(profile)
    assert target == {
        "profile": "staging",
        "profile_source": "variable $HARNESS_ENV",
        "config_file": str(profiles),
        "base_url": "https://api.staging.example.com",
        "base_url_source": f"file {profiles}",
        "environment": "stg-eu",
        "environment_source": "variable $HARNESS_ENVIRONMENT",
        "aws_endpoint_url": "http://127.0.0.1:4566",
        "aws_endpoint_url_source": "flag",
        "overridden_by_variables": ["HARNESS_ENVIRONMENT"],
        "protected": True,
        "protected_source": "default: not the sandbox",
        "allow_writes": [],
        "allow_writes_source": "",
    }
    assert describe_target(target) == (
        f"target [staging] (variable $HARNESS_ENV): https://api.staging.example.com "
        f"(file {profiles}), environment 'stg-eu' (variable $HARNESS_ENVIRONMENT), "
        f"AWS endpoint http://127.0.0.1:4566 (flag), protected (default: not the sandbox)"
    )
    unnamed = provenance(load_profile(None, profiles.parent / "none.toml", environ={}, declared={}))
    assert unnamed["profile_source"] == "default"


# -- refusing stale exports on a named profile -------------------------------------------------


def test_the_refusal_names_the_variables_the_fields_the_file_and_both_ways_out(
    profiles: Path,
) -> None:
    environ = {"HARNESS_BASE_URL": "http://127.0.0.1:1", "HARNESS_ENVIRONMENT": "sandbox"}
    profile = load_profile("staging", profiles, environ=environ, declared=DECLARED)
    with pytest.raises(ConfigError) as error:
        refuse_env_overrides(profile, environ={})
    assert str(error.value) == (
        "profile [staging] was named explicitly (--env), but HARNESS_BASE_URL, "
        "HARNESS_ENVIRONMENT change its base_url, environment from what "
        f"{profiles} says: refusing, so a stale export cannot redirect the run. Unset "
        "HARNESS_BASE_URL, HARNESS_ENVIRONMENT (`harness env down` ends a detached sandbox; "
        "`unset HARNESS_BASE_URL HARNESS_ENVIRONMENT`), or confirm the override with "
        "--allow-env-override (or HARNESS_ALLOW_ENV_OVERRIDE=1)"
    )


def test_a_profile_named_by_harness_env_without_a_file_says_the_default_file() -> None:
    profile = Profile(
        name="staging",
        sources={"name": "$HARNESS_ENV"},
        env_overrides={"base_url": "HARNESS_BASE_URL"},
    )
    with pytest.raises(ConfigError) as error:
        refuse_env_overrides(profile, environ={})
    assert str(error.value).startswith(
        "profile [staging] was named explicitly ($HARNESS_ENV), but HARNESS_BASE_URL changes its "
        "base_url from what environments.toml says: refusing"
    )


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("1", True),
        (" YES ", True),
        ("true", True),
        ("on", True),
        ("0", False),
        ("", False),
        ("no", False),
    ],
)
def test_the_override_is_confirmed_by_a_true_variable_only(value: str, allowed: bool) -> None:
    profile = Profile(
        name="staging", sources={"name": "option"}, env_overrides={"base_url": "HARNESS_BASE_URL"}
    )
    if allowed:
        refuse_env_overrides(profile, environ={ALLOW_OVERRIDE_VARIABLE: value})
    else:
        with pytest.raises(ConfigError, match="--allow-env-override"):
            refuse_env_overrides(profile, environ={ALLOW_OVERRIDE_VARIABLE: value})


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost:4000", True),
        ("http://LOCALHOST:4000", True),
        ("http://[::1]:4000", True),
        ("http://127.0.0.2:4000", True),
        ("http://localhost.example.com", False),
        ("http://10.0.0.1:4000", False),
        ("https://api.staging.example.com", False),
    ],
)
def test_the_sandbox_profile_takes_loopback_exports_only(
    profiles: Path, url: str, loopback: bool
) -> None:
    for field_name in ("base_url", "aws_endpoint_url"):
        variable = f"HARNESS_{field_name.upper()}"
        profile = load_profile("sandbox", profiles, environ={variable: url}, declared={})
        assert profile.env_overrides == {field_name: variable}
        if loopback:
            refuse_env_overrides(profile, environ={})
        else:
            with pytest.raises(ConfigError, match=f"but {variable} changes its {field_name} "):
                refuse_env_overrides(profile, environ={})


def test_the_bus_and_its_topic_are_in_the_target_line_and_the_reports_target() -> None:
    """Issue 23: which bus a run heard the service's events on, with the topic."""
    kafka = provenance(
        Profile(name="sandbox", events_bus="kafka", kafka_topic="sandbox-user-events")
    )
    assert (kafka["events_bus"], kafka["events_topic"]) == ("kafka", "sandbox-user-events")
    assert describe_target(kafka).endswith(", events on kafka (topic sandbox-user-events)")
    arn = "arn:aws:sns:us-east-1:123456789012:sandbox-user-events"
    sns = provenance(Profile(name="sandbox", events_topic_arn=arn))
    assert describe_target(sns).endswith(f", events on sns (topic {arn})")
    assert "events_bus" not in provenance(Profile(name="sandbox"))  # no topic: no bus to name
