"""Small DynamoDB helpers shared by the kinds: paginated filtered scans and error codes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError


def is_condition_failed(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def scan_prefix(
    table: Any,
    attribute: str,
    prefix: str,
    projection: str,
    names: dict[str, str] | None = None,
) -> Iterator[dict]:
    """Every item whose ``attribute`` begins with ``prefix`` (the sweeper's search: a scan is
    unavoidable there, since no key names a namespace). ``names`` maps ``#placeholders`` used
    in ``projection`` to attribute names."""
    kwargs: dict[str, Any] = {
        "FilterExpression": "begins_with(#a, :p)",
        "ExpressionAttributeNames": {"#a": attribute, **(names or {})},
        "ExpressionAttributeValues": {":p": prefix},
        "ProjectionExpression": projection,
    }
    while True:
        page = table.scan(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def batch_delete(table: Any, keys: list[dict[str, Any]]) -> int:
    """Delete ``keys`` with BatchWriteItem, 25 per call, unprocessed items re-sent (boto3's
    ``batch_writer`` does both). Only for items the caller has already proven ours."""
    unique = {tuple(sorted(k.items())): k for k in keys}
    if not unique:
        return 0
    key_names = list(next(iter(unique.values())))
    with table.batch_writer(overwrite_by_pkeys=key_names) as batch:
        for key in unique.values():
            batch.delete_item(Key=key)
    return len(unique)
