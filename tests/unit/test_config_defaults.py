"""Profiles written once (issue 21, item 5): ``[defaults]`` holds what the file's profiles
share, kinds included (a profile's own table wins, field by field); ``default = "local"`` at
the top names the profile plain `pytest` uses; and a protected profile never inherits
``protected = false`` or ``allow_writes`` without saying so under its own table."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import (
    ConfigError,
    Profile,
    describe_target,
    load_profile,
    provenance,
    refuse_env_overrides,
)
from harness.kinds.base import Setting

DECLARED = {"users_table": Setting("users_table")}
FILE = """\
default = "local"

[defaults]
aws_region = "us-east-1"
users_table = "users"
test_data_ttl = "30m"

[defaults.kinds.note]
table = "notes"
key = ["owner", "note_id"]
marker = "owner"

[local]
base_url = "http://127.0.0.1:8000"
protected = false

[staging]
base_url = "https://api.staging.example.com"
users_table = "stg-users"

[staging.kinds.note]
table = "stg-notes"

[staging.kinds.session]
table = "sessions"
key = "id"
marker = "user"
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "environments.toml"
    file.write_text(FILE)
    return file


def load(path: Path, name: str | None = None, environ: dict[str, str] | None = None) -> Profile:
    return load_profile(name, path, environ=environ or {}, declared=DECLARED)


def refusal(path: Path, text: str, name: str | None = None) -> str:
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load(path, name)
    return str(error.value)


def test_the_profiles_share_the_defaults_and_their_own_table_wins(path: Path) -> None:
    local = load(path, "local")
    assert (local.aws_region, local.test_data_ttl, local.setting("users_table")) == (
        "us-east-1",
        1800.0,
        "users",
    )
    assert local.sources == {
        "name": "option",
        "aws_region": "defaults",
        "test_data_ttl": "defaults",
        "users_table": "defaults",
        "base_url": "file",
        "protected": "file",
    }
    staging = load(path, "staging")
    assert staging.setting("users_table") == "stg-users"
    assert staging.sources["users_table"] == "file"
    assert provenance(local)["base_url_source"] == f"file {path}"
    assert provenance(staging)["protected_source"] == "default: not the sandbox"


def test_kinds_are_shared_and_a_profile_overrides_them_field_by_field(path: Path) -> None:
    assert load(path, "local").kinds == {
        "note": {"table": "notes", "key": ["owner", "note_id"], "marker": "owner"}
    }
    assert load(path, "staging").kinds == {
        "note": {"table": "stg-notes", "key": ["owner", "note_id"], "marker": "owner"},
        "session": {"table": "sessions", "key": "id", "marker": "user"},
    }


def test_the_bare_sandbox_profile_inherits_nothing(path: Path) -> None:
    sandbox = load(path, "sandbox")
    assert sandbox.kinds == {} and sandbox.settings == {} and sandbox.aws_region is None
    path.write_text(FILE + "\n[sandbox]\n")
    assert load(path, "sandbox").aws_region == "us-east-1"  # one the file defines does


def test_default_names_the_profile_a_run_without_a_name_uses(path: Path) -> None:
    profile = load(path)
    assert profile.name == "local" and profile.sources["name"] == "file"
    target = provenance(profile)
    assert target["profile_source"] == f'default = "local" in {path}'
    assert describe_target(target).startswith(f'target [local] (default = "local" in {path}): ')
    assert load(path, "staging").name == "staging"  # --env wins
    assert load(path, None, {"HARNESS_ENV": "staging"}).name == "staging"  # so does HARNESS_ENV
    path.write_text(FILE.replace('default = "local"', 'default = "sandbox"'))
    assert load(path).name == "sandbox"  # the built-in one, though the file does not define it


def test_without_default_several_profiles_still_need_a_name(path: Path) -> None:
    message = refusal(path, FILE.replace('default = "local"\n', ""))
    assert message == (
        f"{path} defines profiles local, staging: name one with --env NAME or HARNESS_ENV, or "
        f'write default = "NAME" at the top of {path}'
    )


def test_a_default_that_names_no_profile_is_refused(path: Path) -> None:
    assert refusal(path, FILE.replace('"local"', '"prod"', 1), "local") == (
        f'{path}: default = "prod" names no profile of this file (profiles: local, staging); '
        "name one of them, or add [prod]"
    )
    assert refusal(path, 'default = "x"\n') == (
        f'{path}: default = "x" names no profile of this file (profiles: none); name one of '
        "them, or add [x]"
    )
    assert refusal(path, FILE.replace('"local"', "5", 1), "local") == (
        f'{path}: default must name a profile, like default = "local" above the first [table], '
        "not 5"
    )


def test_defaults_is_not_a_profile_and_default_may_still_be_one(path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown environment profile 'defaults'"):
        load(path, "defaults")
    path.write_text('[default]\nbase_url = "https://d.example"\nusers_table = "u"\n')
    assert load(path).name == "default"  # a profile named "default", the only one
    assert refusal(path, 'defaults = 5\n[local]\nbase_url = "https://x"\n', "local") == (
        f"{path}: defaults must be a [defaults] table of shared fields"
    )


def test_the_defaults_refuse_credentials_like_a_profile(path: Path) -> None:
    text = FILE.replace("[defaults]\n", '[defaults]\naws_secret_access_key = "x"\n')
    assert refusal(path, text, "local") == (
        f"{path}: [defaults] has unknown field(s) for credentials: credentials never go in "
        "this file; use AWS_PROFILE"
    )
    text = FILE.replace("[defaults]\n", '[defaults]\nkafka_sasl_password = "x"\n')
    assert refusal(path, text, "local").startswith(
        f"{path}: [defaults] has kafka_sasl_password: credentials never go in this file"
    )


def test_a_wrong_field_is_named_where_it_is_written(path: Path) -> None:
    inherited = refusal(path, FILE.replace("[defaults]\n", "[defaults]\ncolour = 1\n"), "local")
    assert inherited.startswith(
        f"{path}: [defaults] (inherited by [local]) has unknown field(s) colour; engine fields:"
    )
    own = FILE.replace("[local]\n", "[local]\ncolour = 1\n").replace(
        "[defaults]\n", "[defaults]\nsize = 1\n"
    )
    assert refusal(path, own, "local").startswith(
        f"{path}: profile [local] has unknown field(s) colour, size; engine fields:"
    )
    text = FILE.replace('users_table = "users"', "users_table = 5")
    assert refusal(path, text, "local") == f"{path} [defaults]: users_table must be a string, not 5"
    text = FILE.replace('aws_region = "us-east-1"', "aws_region = 5")
    assert refusal(path, text, "local") == f"{path} [defaults]: aws_region must be a string, not 5"
    text = FILE.replace('[local]\nbase_url = "http://127.0.0.1:8000"', "[local]\nbase_url = 5")
    assert refusal(path, text, "local") == f"{path} [local]: base_url must be a string, not 5"


def test_a_wrong_kind_is_named_where_it_is_written(path: Path) -> None:
    text = FILE.replace('marker = "owner"\n', "")
    assert refusal(path, text, "local").startswith(f"{path}: [defaults.kinds.note] needs marker")
    text = FILE.replace('marker = "user"\n', "")
    assert refusal(path, text, "staging").startswith(f"{path}: [staging.kinds.session] needs")
    assert refusal(path, FILE + "[local.kinds]\nbad = 5\n", "local") == (
        f"{path} [local]: kinds must be tables like [local.kinds.account]"
    )
    text = FILE.replace("[defaults.kinds.note]\n", "[defaults.kinds]\nnote = 1\n[x]\n")
    assert refusal(path, text, "local") == (
        f"{path} [defaults]: kinds must be tables like [defaults.kinds.account]"
    )


# -- a protected profile never inherits a loosening ----------------------------------------------


def test_a_protected_profile_never_inherits_protected_false(path: Path) -> None:
    text = FILE.replace("[defaults]\n", "[defaults]\nprotected = false\n")
    assert refusal(path, text, "staging") == (
        f"{path}: profile [staging] would inherit protected = false from [defaults], but a "
        "profile that does not say is protected: write protected = false under [staging] "
        "itself if it really is a test environment (or drop it from [defaults])"
    )
    assert not load(path, "local").is_protected  # it says protected = false itself
    path.write_text(text + "\n[sandbox]\n")
    assert not load(path, "sandbox").is_protected  # open anyway: nothing loosened


def test_protected_true_in_the_defaults_protects(path: Path) -> None:
    path.write_text(FILE.replace("[defaults]\n", "[defaults]\nprotected = true\n") + "[sandbox]\n")
    sandbox = load(path, "sandbox")
    assert sandbox.is_protected and provenance(sandbox)["protected_source"] == (
        f"file {path} [defaults]"
    )
    assert not load(path, "local").is_protected  # its own table says otherwise
    with pytest.raises(ConfigError, match=r"\(protected = true\): only the file can loosen"):
        load(path, "sandbox", {"HARNESS_PROTECTED": "false"})


def test_a_protected_profile_never_inherits_allow_writes(path: Path) -> None:
    text = FILE.replace("[defaults]\n", '[defaults]\nallow_writes = ["POST /login"]\n')
    assert refusal(path, text, "staging") == (
        f"{path}: protected profile [staging] would inherit allow_writes from [defaults]: a "
        "protected profile names the writes it lets through itself; write allow_writes = "
        "[...] under [staging] (or drop it from [defaults])"
    )
    assert load(path, "local").allow_writes == ("POST /login",)  # open: harmless
    path.write_text(text + "\n[sandbox]\n")
    assert load(path, "sandbox").allow_writes == ("POST /login",)  # open by default: harmless
    own = text.replace("[staging]\n", '[staging]\nallow_writes = ["POST /logout"]\n')
    path.write_text(own)
    assert load(path, "staging").allow_writes == ("POST /logout",)
    path.write_text(text.replace('["POST /login"]', "[]"))
    assert load(path, "staging").allow_writes == ()  # nothing to inherit


def test_a_profile_the_file_defaults_to_is_named_for_stale_exports(path: Path) -> None:
    profile = load(path, None, {"HARNESS_BASE_URL": "http://127.0.0.1:4010"})
    with pytest.raises(ConfigError) as error:
        refuse_env_overrides(profile, environ={})
    assert str(error.value).startswith(
        'profile [local] was named explicitly (default = "local" in its file), but '
        "HARNESS_BASE_URL changes its base_url from what"
    )
