from pathlib import Path
from typing import Any

import pytest

from fixtures.kinds import NOTIFICATIONS, TOKENS, USERS
from harness.config import ConfigError, Profile, load_profile, parse_duration

#: The reference adapter's settings, as its kinds declare them.
DECLARED = {s.name: s for s in (USERS, TOKENS, NOTIFICATIONS)}


def load(*args: Any, **kwargs: Any) -> Profile:
    kwargs.setdefault("declared", DECLARED)
    return load_profile(*args, **kwargs)


STAGING = """
[staging]
base_url = "https://api.staging.example.com"
users_table = "stg-users"
tokens_table = "stg-tokens"
notifications_table = "stg-notifications"
test_data_ttl = "30m"
"""


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    path = tmp_path / "environments.toml"
    path.write_text(STAGING)
    return path


def test_file_values(profiles: Path) -> None:
    profile = load("staging", profiles, environ={})
    assert profile.base_url == "https://api.staging.example.com"
    assert profile.test_data_ttl == 1800
    assert profile.is_protected  # did not say: sensitive by default
    assert profile.aws_endpoint_url is None  # boto3 then honours AWS_ENDPOINT_URL itself


def test_precedence_cli_over_env_over_file(profiles: Path) -> None:
    environ = {"HARNESS_USERS_TABLE": "env-users", "HARNESS_BASE_URL": "https://env.example"}
    profile = load(
        "staging", profiles, overrides={"base_url": "https://cli.example"}, environ=environ
    )
    assert profile.users_table == "env-users"
    assert profile.base_url == "https://cli.example"
    assert profile.tokens_table == "stg-tokens"


def test_profile_chosen_by_env_variable(profiles: Path) -> None:
    assert load(None, profiles, environ={"HARNESS_ENV": "staging"}).name == "staging"


def test_without_a_name_the_files_only_profile_is_used(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(STAGING)
    assert load(None, path, environ={}).name == "staging"
    path.write_text(STAGING + STAGING.replace("[staging]", "[qa]"))
    with pytest.raises(ConfigError, match="defines profiles qa, staging: name one with --env"):
        load(None, path, environ={})
    path.write_text(STAGING + "[sandbox]\n")
    assert load(None, path, environ={}).name == "sandbox"


def test_sandbox_needs_nothing_and_is_unprotected(tmp_path: Path) -> None:
    profile = load(None, tmp_path / "missing.toml", environ={})
    assert profile.name == "sandbox" and profile.needs_local_sandbox
    assert not profile.is_protected


@pytest.mark.parametrize(
    ("text", "name", "environ", "message"),
    [
        (STAGING, "prod", {}, "unknown environment profile 'prod'.*known profiles: staging"),
        ("[staging\nbase_url=", "staging", {}, "not valid TOML"),
        ('[staging]\nbase_url = "https://x"\n', "staging", {}, "missing users_table"),
        ('[staging]\nurl = "https://x"\n', "staging", {}, "unknown field.*url"),
        ('[staging]\naws_secret_access_key = "x"\n', "staging", {}, "unknown field"),
        (STAGING, "staging", {"HARNESS_BASE_URL": "ftp://x"}, "not an http"),
        (STAGING, "staging", {"HARNESS_PROTECTED": "maybe"}, "true or false"),
        (STAGING, "staging", {"HARNESS_TEST_DATA_TTL": "soon"}, "not a duration"),
        ("x = 1\n", "staging", {}, "must be a \\[table\\]"),
    ],
)
def test_errors_name_the_fix(
    tmp_path: Path, text: str, name: str, environ: dict[str, str], message: str
) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(name, path, environ=environ)


def test_protected_from_environment(profiles: Path) -> None:
    environ = {"HARNESS_PROTECTED": "false"}
    assert not load("staging", profiles, environ=environ).is_protected


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


DECLARED_KINDS = """
[local]
base_url = "http://127.0.0.1:8000"
identity = "none"
protected = false

[local.kinds.account]
table = "accounts"
key = ["username"]
marker = "username"

[local.kinds.note]
table = "notes"
key = ["owner", "note_id"]
marker = "owner"
"""


def test_declared_kinds_need_no_adapter_code(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(DECLARED_KINDS)
    profile = load_profile("local", path, environ={})
    assert profile.kinds["note"] == {
        "table": "notes",
        "key": ["owner", "note_id"],
        "marker": "owner",
    }
    assert profile.identity == "none" and profile.settings == {}
    assert profile.sources["base_url"] == "file"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[local.kinds.bad]\ntable = "t"\nkey = ["a", "b", "c"]\nmarker = "a"\n', "key = "),
        ('[local.kinds.bad]\ntable = "t"\nkey = ["a"]\n', "needs marker"),
        ('[local.kinds.bad]\nkey = ["a"]\nmarker = "a"\n', "needs table"),
        ('[local.kinds.bad]\ntable = "t"\nkey = "a"\nmarker = "a"\ncolour = 1\n', "colour"),
    ],
)
def test_a_bad_declared_kind_names_the_fix(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(DECLARED_KINDS + extra)
    with pytest.raises(ConfigError, match=message):
        load_profile("local", path, environ={})


def test_an_unknown_field_names_the_adapters_settings(profiles: Path) -> None:
    text = profiles.read_text() + 'user_table = "typo"\n'
    profiles.write_text(text)
    with pytest.raises(ConfigError, match=r"user_table.*users_table"):
        load("staging", profiles, environ={})


def test_no_identity_is_refused_on_a_protected_profile(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(DECLARED_KINDS.replace("protected = false", "protected = true"))
    with pytest.raises(ConfigError, match="must prove who it is"):
        load_profile("local", path, environ={})


def test_adapter_settings_are_overridden_by_their_variables(profiles: Path) -> None:
    profile = load("staging", profiles, environ={"HARNESS_TOKENS_TABLE": "env-tokens"})
    assert profile.setting("tokens_table") == "env-tokens"
    assert profile.sources["tokens_table"] == "$HARNESS_TOKENS_TABLE"
    assert profile.sources["users_table"] == "file"
