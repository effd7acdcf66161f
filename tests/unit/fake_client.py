"""The low-level half of the in-memory table: what ``table.meta.client`` answers, for the
code that talks to the client rather than the resource — the sweeper's controlled scans
(``Segment``/``TotalSegments``, ``Limit``, ``ReturnConsumedCapacity``, ``describe_table``)
and ``BatchGetItem``. Like :mod:`tests.unit.fake_table` it understands only what the kinds
send, and refuses what DynamoDB refuses (an ``ExpressionAttributeNames`` entry no
expression uses, a ``#name`` no entry defines, more than 100 keys in one batch get)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

from tests.unit.fake_table import _BEGINS, FakeTable


def _invalid(message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation)


def _projected(
    item: dict[str, Any], projection: str | None, names: dict[str, str], operation: str
) -> dict[str, Any]:
    if not projection:
        return dict(item)
    wanted = []
    for part in projection.split(","):
        part = part.strip()
        if part.startswith("#"):
            if part not in names:
                raise _invalid(f"undefined attribute name {part}", operation)
            part = names[part]
        wanted.append(part)
    return {k: v for k, v in item.items() if k in wanted}


def _check_names_used(names: dict[str, str], expressions: list[str], operation: str) -> None:
    used = set(re.findall(r"#\w+", " ".join(expressions)))
    unused = sorted(set(names) - used)
    if unused:
        raise _invalid(f"Value provided in ExpressionAttributeNames unused: {unused}", operation)


class FakeClient:
    def __init__(self, table: ClientTable) -> None:
        self.table = table

    def describe_table(self, TableName: str) -> dict[str, Any]:
        assert TableName == self.table.name
        self.table.calls.append(("describe_table", {"TableName": TableName}))
        return {"Table": {"TableName": TableName, "ItemCount": len(self.table.items)}}

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        table = self.table
        assert kwargs.pop("TableName") == table.name
        table.calls.append(("client.scan", dict(kwargs)))
        if table.fail_at_scan is not None and table.scans == table.fail_at_scan:
            table.fail_at_scan = None
            raise ClientError({"Error": {"Code": "RequestLimitExceeded"}}, "Scan")
        table.scans += 1
        assert ("Segment" in kwargs) == ("TotalSegments" in kwargs)
        segment, total = kwargs.get("Segment", 0), kwargs.get("TotalSegments", 1)
        assert 0 <= segment < total
        mine = [item for i, item in enumerate(table.items) if i % total == segment]
        start = int(kwargs.get("ExclusiveStartKey", {}).get("at", 0))
        read = mine[start : start + int(kwargs.get("Limit", table.page))]
        names = kwargs.get("ExpressionAttributeNames", {})
        _check_names_used(
            names, [kwargs["FilterExpression"], kwargs.get("ProjectionExpression", "")], "Scan"
        )
        match = _BEGINS.match(kwargs["FilterExpression"])
        assert match, f"unsupported filter {kwargs['FilterExpression']!r}"
        attribute = names[match[1]] if match[1].startswith("#") else match[1]
        prefix = kwargs["ExpressionAttributeValues"][match[2]]
        items = [
            _projected(item, kwargs.get("ProjectionExpression"), names, "Scan")
            for item in read
            if str(item.get(attribute, "")).startswith(prefix)
        ]
        answer: dict[str, Any] = {"Items": items, "Count": len(items), "ScannedCount": len(read)}
        if start + len(read) < len(mine):
            answer["LastEvaluatedKey"] = {"at": start + len(read)}
        if kwargs.get("ReturnConsumedCapacity") == "TOTAL":
            answer["ConsumedCapacity"] = {"TableName": table.name, "CapacityUnits": len(read) / 4}
        return answer

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        table = self.table
        table.calls.append(("batch_get_item", RequestItems))
        request = RequestItems[table.name]
        keys = request["Keys"]
        if len(keys) > 100:
            raise _invalid("Too many items requested for the BatchGetItem call", "BatchGetItem")
        names = request.get("ExpressionAttributeNames", {})
        projection = request.get("ProjectionExpression")
        _check_names_used(names, [projection or ""], "BatchGetItem")
        found = [item for key in keys if (item := table._find(key)) is not None]
        items = [_projected(item, projection, names, "BatchGetItem") for item in found]
        return {"Responses": {table.name: items}, "UnprocessedKeys": {}}


class ClientTable(FakeTable):
    """A :class:`FakeTable` that also answers through ``meta.client``. Items are dealt to
    scan segments by position (item ``i`` is in segment ``i % TotalSegments``); a page reads
    ``Limit`` items (``page`` without one) before the filter, as DynamoDB does.
    ``fail_at_scan = n`` makes the n-th client scan (from 0) fail once: a sweep cut short."""

    def __init__(self, key: list[str], items: list[dict[str, Any]] | None = None, page: int = 2):
        super().__init__(key, items, page)
        self.meta = SimpleNamespace(client=FakeClient(self))
        self.scans = 0
        self.fail_at_scan: int | None = None

    def client_calls(self, name: str) -> list[dict[str, Any]]:
        return [call for called, call in self.calls if called == name]
