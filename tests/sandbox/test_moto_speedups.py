"""The emulator's moto speed-ups answer exactly what stock moto answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from harness.sandbox import moto_speedups
from moto.core.serialize import JSONSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model

RICH_ITEM: dict[str, Any] = {
    "Uid": {"N": "4503599627370495"},
    "Email": {"S": "ada@example.test"},
    "Empty": {"S": ""},
    "Unicode": {"S": "Grüße, 世界"},
    "Flag": {"BOOL": False},
    "Nothing": {"NULL": True},
    "Bytes": {"B": "YWJj"},
    "Strings": {"SS": ["a", "b"]},
    "Numbers": {"NS": ["1", "2.5"]},
    "Blobs": {"BS": ["YWJj"]},
    "Map": {"M": {"Inner": {"S": "x"}, "Deep": {"M": {"N": {"N": "1"}}}}},
    "List": {"L": [{"S": "x"}, {"N": "2"}, {"BOOL": True}, {"L": []}]},
}


def _serialize(cls: type[Any], operation: str, result: dict[str, Any]) -> str:
    model = get_service_model("dynamodb")
    serializer = cls(
        operation_model=model.operation_model(operation),
        pretty_print=False,
        value_picker=XFormedAttributePicker(),
    )
    body: str = serializer.serialize(result)["body"]
    return body


@pytest.mark.parametrize(
    ("operation", "result"),
    [
        ("GetItem", {"Item": RICH_ITEM}),
        ("GetItem", {}),
        ("GetItem", {"Item": {"Uid": {"N": "1"}, "Token": {"S": "t"}, "Ok": {"BOOL": True}}}),
        ("GetItem", {"Item": {}}),
        (
            "BatchGetItem",
            {
                "Responses": {"tokens": [RICH_ITEM], "users": [RICH_ITEM, {"Uid": {"N": "1"}}]},
                "UnprocessedKeys": {},
                "ConsumedCapacity": [],
            },
        ),
        (
            "BatchGetItem",
            {
                "Responses": {"users": [{"Uid": {"N": "1"}}]},
                "ConsumedCapacity": [
                    {"TableName": "users", "CapacityUnits": 1.0},
                    {"CapacityUnits": 0.5, "TableName": "tokens"},  # out of member order
                    {"TableName": "t", "CapacityUnits": 1},  # an int for a double
                    {"TableName": "t", "CapacityUnits": 1.0, "Table": {"CapacityUnits": 1.0}},
                    {"TableName": "t", "table_name": "x"},  # an alias moto looks up
                    {"TableName": "", "ReadCapacityUnits": None},
                ],
            },
        ),
        ("Query", {"Items": [RICH_ITEM, RICH_ITEM], "Count": 2, "ScannedCount": 2}),
        (
            "UpdateItem",
            {"Attributes": RICH_ITEM, "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1}},
        ),
    ],
)
def test_dynamodb_serializer_matches_stock_moto(operation: str, result: dict[str, Any]) -> None:
    fast = moto_speedups.dynamodb_serializer_class()
    stock = _serialize(JSONSerializer, operation, result)
    assert _serialize(fast, operation, result) == stock  # the very same bytes
    assert isinstance(json.loads(stock), dict)  # and a real answer


@pytest.mark.parametrize(
    "value",
    [
        {"S": "x", "N": "1"},  # malformed: two members
        {"S": 1},  # not a string
        {"BOOL": "true"},  # not a flag
        {"B": b"abc"},
        {"M": {}},
        "S",
    ],
)
def test_anything_but_a_plain_scalar_takes_motos_path(value: Any) -> None:
    assert moto_speedups.plain_attribute_value(value) is None


def test_plain_scalars_are_copied() -> None:
    value = {"S": "x"}
    copied = moto_speedups.plain_attribute_value(value)
    assert copied == value and copied is not value


def test_install_is_idempotent_and_memoises_method_names() -> None:
    import moto.core.responses as responses
    from moto.core import serialize
    from moto.dynamodb.responses import DynamoHandler

    moto_speedups.install()
    moto_speedups.install()
    assert serialize.get_serializer_class("dynamodb", "json").__name__ == "DynamoDBJSONSerializer"
    first = responses.method_names_from_class(DynamoHandler)
    assert "batch_get_item" in first
    assert responses.method_names_from_class(DynamoHandler) is first


def _versions_answer(answer: Any) -> Any:
    versions, prefixes, markers, next_key, next_version = answer
    return (
        [(v.name, v.version_id, v.is_latest) for v in versions],
        sorted(prefixes),
        [(m.name, m.version_id, m.is_latest) for m in markers],
        next_key,
        next_version,
    )


def test_s3_list_object_versions_under_a_prefix_answers_as_moto(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    from moto import mock_aws
    from moto.s3.models import S3Backend, s3_backends

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bkt")
        s3.put_bucket_versioning(Bucket="bkt", VersioningConfiguration={"Status": "Enabled"})
        for key in ("a/1", "a/1", "a/2", "a/x/3", "ab/4", "b/5", "a/2", "c"):
            s3.put_object(Bucket="bkt", Key=key, Body=b"x")
        s3.delete_object(Bucket="bkt", Key="a/2")
        backend = s3_backends["123456789012"]["aws"]
        stock = moto_speedups.STOCK.get("s3.list_object_versions", S3Backend.list_object_versions)
        fast = moto_speedups.prefix_list_object_versions(stock)
        first = stock(backend, "bkt", prefix="a/", max_keys=2)
        asked: list[dict[str, Any]] = [
            {"prefix": "a/"},
            {"prefix": "a"},
            {"prefix": "a/", "delimiter": "/"},
            {"prefix": "zzz"},
            {"prefix": ""},
            {"prefix": "a/", "max_keys": 2},
            {"prefix": "a/", "max_keys": 2, "key_marker": first[3], "version_id_marker": first[4]},
            {"prefix": "a/", "key_marker": "a/1"},  # a key marker alone: moto's own path
        ]
        for kwargs in asked:
            assert _versions_answer(fast(backend, "bkt", **kwargs)) == _versions_answer(
                stock(backend, "bkt", **kwargs)
            ), kwargs


def test_cognito_list_users_on_the_username_answers_as_moto(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    from moto import mock_aws
    from moto.cognitoidp.models import CognitoIdpBackend, cognitoidp_backends
    from moto.cognitoidp.utils import PAGINATION_MODEL
    from moto.utilities.paginator import paginate

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    with mock_aws():
        client = boto3.client("cognito-idp", region_name="us-east-1")
        pool = client.create_user_pool(PoolName="p")["UserPool"]["Id"]
        for name in ("ann", "ann1", "annx", "bob", 'q"x'):
            client.admin_create_user(
                UserPoolId=pool,
                Username=name,
                UserAttributes=[{"Name": "email", "Value": f"{name}@x.test"}],
            )
        backend = cognitoidp_backends["123456789012"]["us-east-1"]
        stock = moto_speedups.STOCK.get("cognito-idp.list_users", CognitoIdpBackend.list_users)
        fast = moto_speedups.username_list_users(stock, paginate, PAGINATION_MODEL)
        for filt in (
            'username ^= "ann"',
            'username = "ann"',
            'username ^= ""',
            'username ^= "q"x"',
            'email ^= "ann"',
            "",
        ):
            for limit in (None, 2):
                kwargs: dict[str, Any] = {"limit": limit} if limit else {}
                mine, token = fast(backend, pool, filt, **kwargs)
                theirs, their_token = stock(backend, pool, filt, **kwargs)
                assert [u.username for u in mine] == [u.username for u in theirs], filt
                assert (token is None) == (their_token is None), filt
