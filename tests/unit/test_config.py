from pathlib import Path
from typing import Any

import pytest

from fixtures.kinds import NOTIFICATIONS, TOKENS, USERS
from harness.config import ConfigError, Profile, load_profile, parse_duration
from harness.kinds import registry

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


def test_protected_from_environment_only_tightens(profiles: Path) -> None:
    """A variable may protect a profile the file leaves open, never open one it protects
    (staging says nothing: protected; issue 20, item 3)."""
    with pytest.raises(ConfigError, match=r"^\$HARNESS_PROTECTED would unprotect profile"):
        load("staging", profiles, environ={"HARNESS_PROTECTED": "false"})
    profiles.write_text(STAGING + "protected = false\n")
    assert not load("staging", profiles, environ={}).is_protected
    assert load("staging", profiles, environ={"HARNESS_PROTECTED": "true"}).is_protected


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
    profile = registry.load_profile("local", path, environ={})
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
        registry.load_profile("local", path, environ={})


def test_an_unknown_field_names_the_adapters_settings(profiles: Path) -> None:
    text = profiles.read_text() + 'user_table = "typo"\n'
    profiles.write_text(text)
    with pytest.raises(ConfigError, match=r"user_table.*users_table"):
        load("staging", profiles, environ={})


def test_no_identity_is_refused_on_a_protected_profile(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(DECLARED_KINDS.replace("protected = false", "protected = true"))
    with pytest.raises(ConfigError, match="must prove who it is"):
        registry.load_profile("local", path, environ={})


def test_adapter_settings_are_overridden_by_their_variables(profiles: Path) -> None:
    profile = load("staging", profiles, environ={"HARNESS_TOKENS_TABLE": "env-tokens"})
    assert profile.setting("tokens_table") == "env-tokens"
    assert profile.sources["tokens_table"] == "$HARNESS_TOKENS_TABLE"
    assert profile.sources["users_table"] == "file"


# -- rules, one by one -------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "environments.toml"
    path.write_text(text)
    return path


def test_durations_accept_numbers_decimals_and_space() -> None:
    assert parse_duration(5) == 5.0 and isinstance(parse_duration(5), float)
    assert parse_duration(2.5) == 2.5
    assert parse_duration(" 1.5h ") == 5400
    assert parse_duration("2 d") == 172800
    with pytest.raises(ValueError) as error:
        parse_duration("5w")
    assert str(error.value) == "'5w' is not a duration (use e.g. 90s, 30m, 2h, 7d)"


def test_profile_properties() -> None:
    sandbox = Profile(name="sandbox")
    assert sandbox.is_sandbox and not sandbox.is_protected and sandbox.needs_local_sandbox
    assert not Profile(name="sandbox", base_url="http://x").needs_local_sandbox
    assert Profile(name="sandbox", protected=True).is_protected
    staging = Profile(name="staging", settings={"users_table": "u"})
    assert not staging.is_sandbox and staging.is_protected and not staging.needs_local_sandbox
    assert not Profile(name="staging", protected=False).is_protected
    assert staging.expected_environment == "staging"
    assert Profile(name="staging", environment="stg-eu").expected_environment == "stg-eu"
    assert staging.setting("users_table") == "u" and staging.setting("nope") == ""
    assert staging.users_table == "u"
    with pytest.raises(AttributeError):
        _ = staging.nope


def test_every_source_is_recorded(tmp_path: Path) -> None:
    path = write(tmp_path, STAGING + 'health_path = "/h"\n')
    environ = {
        "HARNESS_HEALTH_PATH": "",  # empty: not said
        "HARNESS_ENVIRONMENT": " stg ",
        "HARNESS_TOKENS_TABLE": " env-tokens ",
        "HARNESS_NOTIFICATIONS_TABLE": "",
    }
    profile = load(
        "staging",
        path,
        overrides={"base_url": "https://cli.example", "lease_table": None},
        environ=environ,
    )
    assert profile.health_path == "/h" and profile.environment == "stg"
    assert (
        profile.tokens_table == "env-tokens" and profile.notifications_table == "stg-notifications"
    )
    assert profile.lease_table == ""
    assert profile.sources == {
        "name": "option",
        "base_url": "option",
        "test_data_ttl": "file",
        "health_path": "file",
        "environment": "$HARNESS_ENVIRONMENT",
        "users_table": "file",
        "tokens_table": "$HARNESS_TOKENS_TABLE",
        "notifications_table": "file",
    }
    assert profile.config_dir == str(tmp_path.resolve())


def test_profiles_file_option_over_environment_over_default(tmp_path: Path) -> None:
    from harness.config import profiles_file

    assert profiles_file("a.toml", {"HARNESS_CONFIG": "b.toml"}) == Path("a.toml")
    assert profiles_file(None, {"HARNESS_CONFIG": "b.toml"}) == Path("b.toml")
    assert profiles_file(None, {}) == Path("environments.toml")
    other = tmp_path / "other.toml"
    other.write_text(STAGING.replace("[staging]", "[elsewhere]"))
    assert load(None, None, environ={"HARNESS_CONFIG": str(other), "HARNESS_ENV": "elsewhere"})
    assert load("sandbox", None, environ={"HARNESS_CONFIG": str(other)}).name == "sandbox"


def test_the_profile_name_option_wins_over_harness_env(profiles: Path) -> None:
    assert load("sandbox", profiles, environ={"HARNESS_ENV": "staging"}).name == "sandbox"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("yes", True),
        ("ON", True),
        ("1", True),
        (" no ", False),
        ("off", False),
        ("0", False),
        ("false", False),
        ("true", True),
    ],
)
def test_protected_spellings(tmp_path: Path, value: object, expected: bool) -> None:
    path = write(tmp_path, STAGING + "protected = false\n")  # open: either way is allowed
    profile = load("staging", path, overrides={"protected": value}, environ={})
    assert profile.protected is expected


def test_adapters_from_a_list_or_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, STAGING + 'adapters = ["a.kinds", "b"]\n')
    assert load("staging", path, environ={}).adapters == ("a.kinds", "b")
    environ = {"HARNESS_ADAPTERS": "x.kinds, y  z"}
    assert load("staging", path, environ=environ).adapters == ("x.kinds", "y", "z")
    for bad in ("adapters = [1]", 'adapters = {a = "b"}'):
        with pytest.raises(ConfigError) as error:
            load("staging", write(tmp_path, STAGING + bad + "\n"), environ={})
        assert str(error.value) == (
            f"{tmp_path / 'environments.toml'} [staging]: adapters must be a list of module names"
        )


def test_string_fields_are_stripped_and_typed(tmp_path: Path) -> None:
    path = write(tmp_path, STAGING + 'aws_region = "  "\nevents_topic_arn = " arn "\n')
    profile = load("staging", path, environ={})
    assert profile.aws_region is None and profile.events_topic_arn == "arn"
    with pytest.raises(ConfigError) as error:
        load("staging", write(tmp_path, STAGING + "health_path = 5\n"), environ={})
    assert str(error.value) == (
        f"{tmp_path / 'environments.toml'} [staging]: health_path must be a string, not 5"
    )
    text = STAGING.replace('users_table = "stg-users"', "users_table = 5")
    with pytest.raises(ConfigError) as error:
        load("staging", write(tmp_path, text), environ={})
    assert str(error.value) == (
        f"{tmp_path / 'environments.toml'} [staging]: users_table must be a string, not 5"
    )


def test_identity_modes(tmp_path: Path) -> None:
    path = write(tmp_path, STAGING)
    with pytest.raises(ConfigError) as error:
        load("staging", path, environ={"HARNESS_IDENTITY": "trust-me"})
    assert str(error.value) == (
        "$HARNESS_IDENTITY: identity must be one of health, route, aws-account, none, "
        "not 'trust-me'"
    )
    with pytest.raises(ConfigError) as error:
        load("staging", path, environ={"HARNESS_IDENTITY": "none"})
    assert 'is protected and has identity = "none"' in str(error.value)
    unprotected = write(tmp_path, STAGING + "protected = false\n")
    assert load("staging", unprotected, environ={"HARNESS_IDENTITY": "none"}).identity == "none"
    path = write(tmp_path, STAGING)
    with pytest.raises(ConfigError) as error:
        load("staging", path, environ={"HARNESS_IDENTITY": "aws-account"})
    assert str(error.value) == (
        'profile [staging] has identity = "aws-account" but no aws_account_id: '
        "set aws_account_id (or HARNESS_AWS_ACCOUNT_ID)"
    )
    with_account = {"HARNESS_IDENTITY": "aws-account", "HARNESS_AWS_ACCOUNT_ID": "42"}
    assert load("staging", path, environ=with_account).aws_account_id == "42"


def test_messages_name_the_file_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, STAGING)
    with pytest.raises(ConfigError) as error:
        load("prod", tmp_path / "missing.toml", environ={})
    assert str(error.value) == (
        f"unknown environment profile 'prod' in {tmp_path / 'missing.toml'} (file not found); "
        f"known profiles: none. Add a [prod] table to {tmp_path / 'missing.toml'} or pass --env "
        f"with one of the known names."
    )
    with pytest.raises(ConfigError) as error:
        load("staging", write(tmp_path, '[staging]\naws_access_key_id = "x"\n'), environ={})
    assert str(error.value) == (
        f"{path}: profile [staging] has unknown field(s) for credentials: credentials never go "
        f"in this file; use AWS_PROFILE"
    )
    with pytest.raises(ConfigError) as error:
        load(
            "staging",
            write(tmp_path, '[staging]\nbase_url = "https://x"\ncolour = 1\n'),
            environ={},
        )
    message = str(error.value)
    assert message.startswith(
        f"{path}: profile [staging] has unknown field(s) colour; engine fields: base_url, "
        "environment,"
    )
    assert message.endswith(
        "; settings of its adapters: notifications_table, tokens_table, users_table"
    )
    with pytest.raises(ConfigError) as error:
        load_profile("staging", write(tmp_path, "[staging]\ncolour = 1\n"), environ={}, declared={})
    assert str(error.value).endswith(". Is an adapter missing from adapters = [...]? (now: [])")
    with pytest.raises(ConfigError) as error:
        load("staging", write(tmp_path, "[staging]\n"), environ={})
    assert str(error.value) == (
        f'profile [staging] has no base_url: add base_url = "https://…" under [staging] in '
        f"{path}, or set HARNESS_BASE_URL"
    )
    with pytest.raises(ConfigError) as error:
        load("staging", write(tmp_path, '[staging]\nbase_url = "https://x"\n'), environ={})
    assert str(error.value) == (
        "profile [staging] is missing users_table, tokens_table, notifications_table: set "
        'users_table = "…" or HARNESS_USERS_TABLE; tokens_table = "…" or HARNESS_TOKENS_TABLE; '
        f'notifications_table = "…" or HARNESS_NOTIFICATIONS_TABLE (in {path} under [staging])'
    )
    with pytest.raises(ConfigError) as error:
        load("staging", path, environ={"HARNESS_BASE_URL": "api.example.com"})
    assert str(error.value) == (
        "base_url 'api.example.com' of profile [staging] is not an http(s) URL; set it like "
        "https://api.staging.example.com"
    )
    with pytest.raises(ConfigError) as error:
        load("staging", path, environ={"HARNESS_TEST_DATA_TTL": "soon"})
    assert str(error.value) == (
        "$HARNESS_TEST_DATA_TTL: test_data_ttl: 'soon' is not a duration "
        "(use e.g. 90s, 30m, 2h, 7d)"
    )
    with pytest.raises(ConfigError) as error:
        load("staging", path, environ={"HARNESS_PROTECTED": "maybe"})
    assert str(error.value) == "$HARNESS_PROTECTED: protected must be true or false, not 'maybe'"


def test_optional_settings_may_be_missing(tmp_path: Path) -> None:
    from harness.kinds.base import Setting

    declared = {"queue": Setting("queue", required=False), "table": Setting("table")}
    path = write(tmp_path, '[staging]\nbase_url = "https://x"\ntable = "t"\n')
    profile = load_profile("staging", path, environ={}, declared=declared)
    assert profile.settings == {"table": "t"}


KIND = '[staging.kinds.note]\ntable = "notes"\nkey = ["owner", "id"]\nmarker = "owner"\n'


def test_declared_kinds_are_read_and_checked(tmp_path: Path) -> None:
    path = write(tmp_path, STAGING + KIND)
    profile = load("staging", path, environ={})
    assert profile.kinds == {"note": {"table": "notes", "key": ["owner", "id"], "marker": "owner"}}
    single = STAGING + KIND.replace('["owner", "id"]', '"owner"')
    assert load("staging", write(tmp_path, single), environ={}).kinds["note"]["key"] == "owner"
    where = f"{path}: [staging.kinds."
    bad = {
        KIND.replace("note]", "Note]"): "Note]: a kind's name is lowercase letters, digits and _",
        KIND + 'colour = "x"\n': "note] has unknown field(s) colour; known: index, key, marker, "
        "run_attribute, run_index, sweep_order, table",
        KIND.replace(
            'table = "notes"', 'table = ""'
        ): 'note] needs table = "the DynamoDB table name"',
        KIND.replace(
            '["owner", "id"]', "[]"
        ): 'note] needs key = ["hash key"] or ["hash key", "range key"]',
        KIND.replace('["owner", "id"]', '["a", "b", "c"]'): "note] needs key = [",
        KIND.replace('["owner", "id"]', '["a", ""]'): "note] needs key = [",
        KIND.replace('["owner", "id"]', "5"): "note] needs key = [",
        KIND.replace(
            'marker = "owner"', 'marker = ""'
        ): 'note] needs marker = "the attribute whose value carries the run namespace"',
    }
    for kind_text, message in bad.items():
        with pytest.raises(ConfigError) as error:
            load("staging", write(tmp_path, STAGING + kind_text), environ={})
        assert str(error.value).startswith(where + message), str(error.value)
    with pytest.raises(ConfigError) as error:
        load("staging", write(tmp_path, STAGING + "kinds = 5\n"), environ={})
    assert str(error.value) == (
        f"{path} [staging]: kinds must be tables like [staging.kinds.account]"
    )


def test_an_unknown_profile_in_an_existing_file_lists_the_known_ones(profiles: Path) -> None:
    profiles.write_text(STAGING + STAGING.replace("[staging]", "[qa]"))
    with pytest.raises(ConfigError) as error:
        load("prod", profiles, environ={})
    assert str(error.value).startswith(
        f"unknown environment profile 'prod' in {profiles}; known profiles: qa, staging. "
    )


def test_the_adapters_the_profile_names_declare_its_settings(tmp_path: Path) -> None:
    """The registry's loader imports the adapter modules to learn their settings."""
    text = STAGING + 'adapters = ["fixtures.kinds"]\n'
    profile = registry.load_profile("staging", write(tmp_path, text), environ={})
    assert profile.adapters == ("fixtures.kinds",) and profile.users_table == "stg-users"
    with pytest.raises(ConfigError, match="unknown field"):
        registry.load_profile("staging", write(tmp_path, STAGING), environ={})  # no adapter


def test_the_process_environment_is_read_when_none_is_given(
    profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_BASE_URL", "https://from-process.example")
    assert load("staging", profiles).base_url == "https://from-process.example"


def test_option_sources_name_the_option_in_errors(profiles: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load("staging", profiles, overrides={"protected": "perhaps"}, environ={})
    assert (
        str(error.value) == "option for protected: protected must be true or false, not 'perhaps'"
    )


def test_empty_strings_are_unset(tmp_path: Path) -> None:
    profile = load("staging", write(tmp_path, STAGING + 'events_topic_arn = " "\n'), environ={})
    assert profile.events_topic_arn == "" and profile.aws_profile is None


def test_unknown_attributes_name_themselves() -> None:
    with pytest.raises(AttributeError) as error:
        _ = Profile(name="x").colour
    assert error.value.args == ("colour",)


def test_credentials_in_the_file_are_refused_by_any_spelling(tmp_path: Path) -> None:
    for key in ("aws_secret_access_key", "aws_secret", "aws_access_key_id"):
        with pytest.raises(ConfigError, match="credentials never go in this file"):
            load("staging", write(tmp_path, f'[staging]\n{key} = "x"\n'), environ={})


def test_several_unknown_fields_are_all_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown field\(s\) colour, size; engine"):
        load("staging", write(tmp_path, STAGING + "colour = 1\nsize = 2\n"), environ={})
    text = STAGING + KIND + 'colour = "x"\nsize = 1\n'
    with pytest.raises(ConfigError, match=r"unknown field\(s\) colour, size; known"):
        load("staging", write(tmp_path, text), environ={})


def test_a_declared_setting_is_required_unless_it_says_otherwise(tmp_path: Path) -> None:
    path = write(tmp_path, '[staging]\nbase_url = "https://x"\n')
    with pytest.raises(ConfigError, match="is missing plain"):
        load_profile("staging", path, environ={}, declared={"plain": object()})
