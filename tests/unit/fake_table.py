"""A tiny in-memory stand-in for a boto3 DynamoDB ``Table``, for unit tests of a kind's pure
logic (which key it deletes, under which condition, what it does when the condition fails).
It understands exactly the expressions the kinds use: ``A = :v`` (``A`` or ``#name``) as a
condition or key condition, ``attribute_not_exists(#k)`` as a put's condition, and
``begins_with(#a, :p)`` as a scan filter; pages of ``page``
items. Anything else is an error, so a kind that changes its expressions fails loudly."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

_EQUALS = re.compile(r"^\s*(#?\w+)\s*=\s*(:\w+)\s*$")
_BEGINS = re.compile(r"^\s*begins_with\((#?\w+),\s*(:\w+)\)\s*$")
_NOT_EXISTS = re.compile(r"^\s*attribute_not_exists\((#?\w+)\)\s*$")


def _condition_failed() -> ClientError:
    return ClientError(
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": "failed"}}, "DeleteItem"
    )


class FakeTable:
    def __init__(self, key: list[str], items: list[dict[str, Any]] | None = None, page: int = 2):
        self.name = "fake"  # the sweeper keys its checkpoints by table name
        self.key = key
        self.items: list[dict[str, Any]] = [dict(i) for i in items or []]
        self.page = page
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _find(self, key: dict[str, Any]) -> dict[str, Any] | None:
        assert sorted(key) == sorted(self.key), f"key {key} is not the table's key {self.key}"
        for item in self.items:
            if all(item.get(k) == v for k, v in key.items()):
                return item
        return None

    @staticmethod
    def _attribute(name: str, names: dict[str, str] | None) -> str:
        return (names or {}).get(name, name) if name.startswith("#") else name

    def _equals(self, expression: str, names: Any, values: Any) -> tuple[str, Any]:
        match = _EQUALS.match(expression)
        assert match, f"unsupported expression {expression!r}"
        return self._attribute(match[1], names), values[match[2]]

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("delete_item", kwargs))
        item = self._find(kwargs["Key"])
        condition = kwargs.get("ConditionExpression")
        if condition is not None:
            attribute, value = self._equals(
                condition,
                kwargs.get("ExpressionAttributeNames"),
                kwargs["ExpressionAttributeValues"],
            )
            if item is None or item.get(attribute) != value:
                raise _condition_failed()
        if item is not None:
            self.items.remove(item)
        if kwargs.get("ReturnValues") == "ALL_OLD" and item is not None:
            return {"Attributes": dict(item)}
        return {}

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("put_item", kwargs))
        item = dict(kwargs["Item"])
        existing = self._find({k: item[k] for k in self.key})
        condition = kwargs.get("ConditionExpression")
        if condition is not None:
            match = _NOT_EXISTS.match(condition)
            assert match, f"unsupported condition {condition!r}"
            attribute = self._attribute(match[1], kwargs.get("ExpressionAttributeNames"))
            if existing is not None and attribute in existing:
                raise _condition_failed()
        if existing is not None:
            self.items.remove(existing)
        self.items.append(item)
        return {}

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("get_item", kwargs))
        item = self._find(kwargs["Key"])
        return {"Item": dict(item)} if item is not None else {}

    def _pages(self, matching: list[dict[str, Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
        start = int(kwargs.get("ExclusiveStartKey", {}).get("at", 0))
        page = matching[start : start + self.page]
        answer: dict[str, Any] = {"Items": [dict(i) for i in page]}
        if start + self.page < len(matching):
            answer["LastEvaluatedKey"] = {"at": start + self.page}
        return answer

    def query(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("query", kwargs))
        attribute, value = self._equals(
            kwargs["KeyConditionExpression"],
            kwargs.get("ExpressionAttributeNames"),
            kwargs["ExpressionAttributeValues"],
        )
        return self._pages([i for i in self.items if i.get(attribute) == value], kwargs)

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("scan", kwargs))
        match = _BEGINS.match(kwargs["FilterExpression"])
        assert match, f"unsupported filter {kwargs['FilterExpression']!r}"
        attribute = self._attribute(match[1], kwargs.get("ExpressionAttributeNames"))
        prefix = kwargs["ExpressionAttributeValues"][match[2]]
        matching = [i for i in self.items if str(i.get(attribute, "")).startswith(prefix)]
        return self._pages(matching, kwargs)

    @contextmanager
    def batch_writer(self, overwrite_by_pkeys: list[str] | None = None) -> Iterator[Any]:
        table = self

        class Batch:
            def delete_item(self, Key: dict[str, Any]) -> None:
                table.calls.append(("batch_delete", {"Key": Key}))
                item = table._find(Key)
                if item is not None:
                    table.items.remove(item)

        yield Batch()


class FakeAws:
    """``aws.table(name)`` of a few named fake tables."""

    def __init__(self, **tables: FakeTable) -> None:
        self.tables = tables

    def table(self, name: str) -> FakeTable:
        return self.tables[name]
