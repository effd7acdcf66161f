"""A profile's account pool, ``[NAME.accounts]`` (harness/accounts/spec.py through
harness/config.py): read as written, with its defaults; and every mistake — above all a
credential in the file — refused when the profile loads, in one line naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.accounts.spec import AccountEntry, AccountsSpec
from harness.config import ConfigError, Profile, load_profile

HEAD = """
[prod]
base_url = "https://api.example.com"
allow_writes = ["POST /login"]

[prod.accounts]
"""


def load(tmp_path: Path, accounts: str, head: str = HEAD) -> Profile:
    path = tmp_path / "environments.toml"
    path.write_text(head + accounts)
    return load_profile("prod", path, environ={}, declared={})


def refused(tmp_path: Path, accounts: str, head: str = HEAD) -> str:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, accounts, head)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_pool_is_read_with_its_defaults(tmp_path: Path) -> None:
    profile = load(tmp_path, 'secrets = ["prod/smoke/1", "prod/smoke/2"]\n')
    assert profile.accounts == AccountsSpec(
        entries=(
            AccountEntry("secretsmanager", "prod/smoke/1"),
            AccountEntry("secretsmanager", "prod/smoke/2"),
        )
    )
    spec = profile.accounts
    assert (spec.login, spec.auth, spec.uid_field, spec.wait) == ("POST /login", "bearer", "uid", 0)
    assert spec.route == ("POST", "/login") and spec.token_key == "token"
    assert not spec.is_cognito
    assert spec.entries[0].lease_key == "account-lease:secretsmanager:prod/smoke/1"
    assert spec.entries[0].where == "secret prod/smoke/1"


def test_every_field_as_written(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        """secrets = [" a/1 "]
parameters = ["/prod/smoke/2"]
login = "post /v1/sessions"
auth = "uid-token"
token_field = "access_token"
uid_field = "user_id"
wait = "2m"
""",
    ).accounts
    assert spec is not None
    assert spec.entries == (
        AccountEntry("secretsmanager", "a/1"),
        AccountEntry("ssm", "/prod/smoke/2"),
    )
    assert spec.entries[1].where == "parameter /prod/smoke/2"
    assert spec.entries[1].lease_key == "account-lease:ssm:/prod/smoke/2"
    assert (spec.login, spec.auth, spec.token_key, spec.uid_field) == (
        "POST /v1/sessions",
        "uid-token",
        "access_token",
        "user_id",
    )
    assert spec.wait == 120.0


def test_a_cognito_pool(tmp_path: Path) -> None:
    spec = load(
        tmp_path, 'parameters = ["/p/1"]\nlogin = "cognito"\nclient_id = " app1 "\n'
    ).accounts
    assert spec is not None and spec.is_cognito
    assert (spec.client_id, spec.token_key, spec.auth) == ("app1", "IdToken", "bearer")


def test_a_profile_without_a_pool_has_none(tmp_path: Path) -> None:
    assert load(tmp_path, "", HEAD.replace("[prod.accounts]", "")).accounts is None


@pytest.mark.parametrize(
    ("accounts", "named"),
    [
        ('secrets = ["a/1"]\npassword = "hunter22"\n', "password"),
        ('secrets = ["a/1"]\nclient_secret = "s"\n', "client_secret"),
        (
            'secrets = ["a/1"]\n[prod.accounts.users.a]\nemail = "a@x"\npassword = "p"\n',
            "users.a.password",
        ),
        ('secrets = ["a/1"]\napi_key = "k"\n', "api_key"),
    ],
)
def test_a_credential_in_the_file_is_refused_saying_where_credentials_go(
    tmp_path: Path, accounts: str, named: str
) -> None:
    message = refused(tmp_path, accounts)
    assert message.startswith(f"{tmp_path / 'environments.toml'}: [prod.accounts] has {named}: ")
    assert "credentials never go in this file" in message
    assert "AWS Secrets Manager (secrets = [" in message and "SSM Parameter Store" in message
    assert "hunter22" not in message  # the value is never repeated


@pytest.mark.parametrize(
    ("accounts", "expected"),
    [
        ("", "[prod.accounts] names no account: keep each account's credentials in AWS"),
        ("secrets = []\nparameters = []\n", "[prod.accounts] names no account"),
        ('secrets = "a/1"\n', 'secrets must be a list of names, like secrets = ["prod/smoke'),
        ('secrets = ["a/1", ""]\n', "secrets must be a list of names"),
        ("parameters = [1]\n", "parameters must be a list of names"),
        ('secrets = ["a/1", "a/1"]\n', "names secret a/1 twice: an account is in a pool once"),
        ('secrets = ["a/1"]\nlogins = "x"\n', "has unknown field(s) logins; known: secrets, "),
        ('secrets = ["a/1"]\nlogin = "/login"\n', "login: '/login' is not a route;"),
        (
            'secrets = ["a/1"]\nlogin = "POST /users/{id}/login"\n',
            "names one route, with no wildcard",
        ),
        ('secrets = ["a/1"]\nlogin = "POST /a/*"\n', "names one route, with no wildcard"),
        ('secrets = ["a/1"]\nlogin = "cognito"\n', 'login = "cognito" needs client_id = "…"'),
        ('secrets = ["a/1"]\nclient_id = "app1"\n', 'client_id is for login = "cognito" only'),
        (
            'secrets = ["a/1"]\nauth = "basic"\n',
            "auth must be one of bearer, uid-token, not 'basic'",
        ),
        (
            'secrets = ["a/1"]\nlogin = "cognito"\nclient_id = "c"\nauth = "uid-token"\n',
            'a Cognito login gives a bearer token: use auth = "bearer"',
        ),
        ('secrets = ["a/1"]\nauth = 1\n', "auth must be a string, not 1"),
        ('secrets = ["a/1"]\nwait = "soon"\n', "wait: 'soon' is not a duration"),
        ('secrets = ["a/1"]\nwait = true\n', "wait: True is not a duration"),
        ('secrets = ["a/1"]\nwait = -5\n', "wait must not be negative, not -5"),
    ],
)
def test_a_mistake_is_one_line_naming_the_fix(tmp_path: Path, accounts: str, expected: str) -> None:
    assert expected in refused(tmp_path, accounts)


def test_accounts_must_be_a_table(tmp_path: Path) -> None:
    head = HEAD.replace("[prod.accounts]\n", 'accounts = ["a/1"]\n')
    assert "[prod.accounts]: accounts must be a table, like [prod.accounts] with secrets" in (
        refused(tmp_path, "", head)
    )


def test_a_pool_is_never_shared_through_defaults(tmp_path: Path) -> None:
    head = '[defaults.accounts]\nsecrets = ["a/1"]\n' + HEAD.replace("[prod.accounts]", "")
    message = refused(tmp_path, "", head)
    assert message.endswith(
        "[defaults.accounts]: a pool of accounts belongs to one environment; write it as "
        "[NAME.accounts] under that profile"
    )


def test_no_variable_reaches_the_pool(tmp_path: Path) -> None:
    """It is a table of the file: HARNESS_ACCOUNTS is no field to override."""
    path = tmp_path / "environments.toml"
    path.write_text(HEAD + 'secrets = ["a/1"]\n')
    profile = load_profile("prod", path, environ={"HARNESS_ACCOUNTS": "x"}, declared={})
    assert profile.accounts is not None and profile.accounts.entries[0].name == "a/1"
