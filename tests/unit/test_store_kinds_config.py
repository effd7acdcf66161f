"""Declared kinds of every store in the profiles file: ``type = "cognito" | "s3" | "sql"``
with the field names of issue 24 load as written, and every mistake — an unknown type or
field, a missing field, an S3 marker that is not the key, credentials in the file, a URL
variable that is not a variable's name, an SQL name that is not plain — is one line naming
the fix (exit 8). On the old code each of these profiles was refused for ``type``."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import ConfigError, load_profile

HEAD = '[local]\nbase_url = "http://127.0.0.1:1"\nprotected = false\n'


def load(tmp_path: Path, kinds: str) -> dict:
    path = tmp_path / "environments.toml"
    path.write_text(HEAD + kinds)
    return dict(load_profile("local", path, environ={}, declared={}).kinds)


def test_the_issues_three_kinds_load_as_written(tmp_path: Path) -> None:
    kinds = load(
        tmp_path,
        """
[local.kinds.member]
type = "cognito"
user_pool_id = "us-east-1_AbCdEf"
marker = "username"

[local.kinds.upload]
type = "s3"
bucket = "uploads"
marker = "key"

[local.kinds.order]
type = "sql"
url_variable = "ORDERS_DB_URL"
table = "orders"
key = ["id"]
marker = "owner"
""",
    )
    assert kinds["member"]["user_pool_id"] == "us-east-1_AbCdEf"
    assert kinds["upload"] == {"type": "s3", "bucket": "uploads", "marker": "key"}
    assert kinds["order"]["url_variable"] == "ORDERS_DB_URL"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ('type = "redis"\n', r"type = 'redis'; a declared kind's type is one of cognito, "),
        ('type = "cognito"\nmarker = "username"\n', r'needs user_pool_id = "us-east-1_AbCdEf"'),
        ('type = "cognito"\nuser_pool_id = "p"\n', r'needs marker = "username" or "email"'),
        (
            'type = "cognito"\nuser_pool_id = "p"\nmarker = "email"\nclient_id = 3\n',
            "client_id is the app client's id",
        ),
        (
            'type = "cognito"\nuser_pool_id = "p"\nmarker = "email"\ntable = "t"\n',
            r'unknown field\(s\) table; known for type = "cognito": type, client_id, marker',
        ),
        ('type = "s3"\nmarker = "key"\n', 'needs bucket = "the bucket name"'),
        (
            'type = "s3"\nbucket = "b"\nmarker = "name"\n',
            'object key carries the marker: marker = "key"',
        ),
        ('type = "s3"\nbucket = "b"\nmarker = "key"\nprefix = 1\n', "prefix is the key's start"),
        ('type = "sql"\nurl = "postgresql://u:p@h/db"\n', "credentials never go in the profiles"),
        ('type = "sql"\npassword = "p"\n', "credentials never go in the profiles"),
        ('type = "sql"\ntable = "t"\nkey = ["id"]\nmarker = "m"\n', "needs url_variable = "),
        (
            'type = "sql"\nurl_variable = "A"\nurl_secret = "s"\ntable = "t"\nkey = ["id"]\n'
            'marker = "m"\n',
            "one of them",
        ),
        (
            'type = "sql"\nurl_variable = "postgresql://x"\ntable = "t"\nkey = ["id"]\n'
            'marker = "m"\n',
            "url_variable names an environment variable",
        ),
        ('type = "sql"\nurl_variable = "A"\ntable = "t"\nmarker = "m"\n', r'needs key = \["id"\]'),
        (
            'type = "sql"\nurl_variable = "A"\nkey = ["id"]\nmarker = "m"\n',
            'needs table = "orders"',
        ),
        (
            'type = "sql"\nurl_variable = "A"\ntable = "t; drop"\nkey = ["id"]\nmarker = "m"\n',
            "'t; drop' is not a plain SQL name",
        ),
        (
            'type = "sql"\nurl_variable = "A"\ntable = "t"\nkey = ["a.b"]\nmarker = "m"\n',
            "'a.b' is not a plain SQL name",
        ),
    ],
)
def test_a_mistake_is_one_line_naming_the_fix(tmp_path: Path, kind: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load(tmp_path, "[local.kinds.thing]\n" + kind)
    assert "\n" not in str(caught.value) and "[local.kinds.thing]" in str(caught.value)


def test_a_schema_qualified_table_and_a_secret(tmp_path: Path) -> None:
    kinds = load(
        tmp_path,
        '[local.kinds.order]\ntype = "sql"\nurl_secret = "prod/orders-db"\n'
        'table = "shop.orders"\nkey = "id"\nmarker = "owner"\n',
    )
    assert kinds["order"]["table"] == "shop.orders"


def test_dynamodb_stays_the_default_and_may_be_said(tmp_path: Path) -> None:
    kinds = load(
        tmp_path,
        '[local.kinds.note]\ntype = "dynamodb"\ntable = "notes"\nkey = ["owner"]\n'
        'marker = "owner"\n',
    )
    assert kinds["note"]["type"] == "dynamodb"
    with pytest.raises(ConfigError, match=r"unknown field\(s\) bucket"):
        load(tmp_path, '[local.kinds.note]\ntable = "n"\nkey = ["o"]\nmarker = "o"\nbucket = "b"\n')


@pytest.mark.skipif(  # mutmut's copy of the tree has no docs/
    bool(__import__("os").environ.get("HARNESS_MUTATION_RUN")),
    reason="checks the checkout's own documents",
)
def test_the_adapter_guides_store_profile_loads_as_written(tmp_path: Path) -> None:
    from tests.unit.test_config_docs import the_block

    path = tmp_path / "environments.toml"
    path.write_text(the_block("docs/adapters.md", "# shop/environments.toml"))
    kinds = load_profile("local", path, environ={}, declared={}).kinds
    assert {name: spec["type"] for name, spec in kinds.items()} == {
        "member": "cognito",
        "upload": "s3",
        "order": "sql",
    }
    assert (
        kinds["upload"]["prefix"] == "files/" and kinds["order"]["url_variable"] == "ORDERS_DB_URL"
    )
