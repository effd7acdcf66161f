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
