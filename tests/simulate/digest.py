"""An independent digest of the whole environment, its difference from another, and putting
the environment back.

Independent of the engine: plain boto3 on the emulator, none of the harness's kinds,
finders or clients (a check must not grade itself). The state is every item of every table
(the lease table included), every queue with its attributes (message counts included) and
every topic with its subscriptions. It is taken once the service's own consumer queue has
drained, so an event still in flight is not taken for a difference. :func:`restore` is the
driver's hygiene between scenarios (so one scenario's leftovers never become the next one's
baseline); it runs only after the verdict, never instead of it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

#: Queue attributes that change without anything being created or deleted.
VOLATILE_QUEUE_ATTRIBUTES = frozenset({"LastModifiedTimestamp"})
#: Message counts of a queue: a difference there is a difference, but at rest they are 0.
COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


class Aws:
    """boto3 clients on the sandbox's emulator (its exports name it)."""

    def __init__(self, exports: Mapping[str, str]) -> None:
        options: dict[str, Any] = {
            "endpoint_url": exports["HARNESS_AWS_ENDPOINT_URL"],
            "region_name": exports.get("HARNESS_AWS_REGION") or "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "config": Config(retries={"mode": "standard", "max_attempts": 5}),
        }
        self.dynamodb = boto3.client("dynamodb", **options)
        self.sqs = boto3.client("sqs", **options)
        self.sns = boto3.client("sns", **options)
        self.processor_queue = exports.get("HARNESS_PROCESSOR_QUEUE_URL", "")


@dataclass
class State:
    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)
    queues: dict[str, dict[str, str]] = field(default_factory=dict)
    topics: dict[str, list[str]] = field(default_factory=dict)

    def digest(self) -> str:
        text = json.dumps([self.tables, self.queues, self.topics], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def wait_for_processor(aws: Aws, timeout: float = 20.0) -> bool:
    """True once the service's consumer queue shows nothing visible, in flight or delayed
    twice in a row (the processor writes what an event set off before deleting it)."""
    if not aws.processor_queue:
        return True
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        attributes = aws.sqs.get_queue_attributes(
            QueueUrl=aws.processor_queue, AttributeNames=list(COUNTS)
        )["Attributes"]
        quiet = quiet + 1 if all(attributes.get(c, "0") == "0" for c in COUNTS) else 0
        if quiet >= 2:
            return True
        time.sleep(0.2)
    return False


def _item_key(item: dict[str, Any], key_names: list[str]) -> str:
    return json.dumps({k: item.get(k) for k in key_names}, sort_keys=True)


def snapshot(aws: Aws, drain_timeout: float = 20.0) -> State:
    wait_for_processor(aws, drain_timeout)
    state = State()
    for name in aws.dynamodb.list_tables()["TableNames"]:
        schema = aws.dynamodb.describe_table(TableName=name)["Table"]["KeySchema"]
        key_names = [k["AttributeName"] for k in schema]
        state.keys[name] = key_names
        items: dict[str, dict[str, Any]] = {}
        for page in aws.dynamodb.get_paginator("scan").paginate(
            TableName=name, ConsistentRead=True
        ):
            for item in page["Items"]:
                items[_item_key(item, key_names)] = item
        state.tables[name] = items
    for url in aws.sqs.list_queues().get("QueueUrls", []):
        try:
            attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        except aws.sqs.exceptions.QueueDoesNotExist:
            continue  # deleted between the listing and the look
        state.queues[url] = {
            k: v
            for k, v in sorted(attributes.get("Attributes", {}).items())
            if k not in VOLATILE_QUEUE_ATTRIBUTES
        }
    for page in aws.sns.get_paginator("list_topics").paginate():
        for topic in page["Topics"]:
            arn = topic["TopicArn"]
            subscriptions = aws.sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
            state.topics[arn] = sorted(f"{s['Protocol']}:{s['Endpoint']}" for s in subscriptions)
    return state


def _short(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diff(before: State, after: State, limit: int = 6) -> list[str]:
    """One line per difference (at most ``limit`` per table), empty when equal."""
    lines: list[str] = []
    for table in sorted(set(before.tables) | set(after.tables)):
        old, new = before.tables.get(table), after.tables.get(table)
        if old is None or new is None:
            lines.append(f"table {table} {'created' if old is None else 'deleted'}")
            continue
        added = [k for k in new if k not in old]
        removed = [k for k in old if k not in new]
        changed = [k for k in new if k in old and new[k] != old[k]]
        for label, keys in (("+", added), ("-", removed), ("~", changed)):
            for key in keys[:limit]:
                item = new.get(key) or old.get(key) or {}
                lines.append(_short(f"{table} {label} {_plain(item)}"))
            if len(keys) > limit:
                lines.append(f"{table} {label} … {len(keys) - limit} more")
    for url in sorted(set(before.queues) | set(after.queues)):
        old_q, new_q = before.queues.get(url), after.queues.get(url)
        if old_q is None:
            lines.append(f"queue + {url}")
        elif new_q is None:
            lines.append(f"queue - {url}")
        elif old_q != new_q:
            changes = {k: (old_q.get(k), new_q.get(k)) for k in new_q if old_q.get(k) != new_q[k]}
            lines.append(_short(f"queue ~ {url} {changes}", 200))
    for arn in sorted(set(before.topics) | set(after.topics)):
        old_s, new_s = set(before.topics.get(arn, [])), set(after.topics.get(arn, []))
        lines += [f"subscription + {arn} -> {s}" for s in sorted(new_s - old_s)]
        lines += [f"subscription - {arn} -> {s}" for s in sorted(old_s - new_s)]
    return lines


def _plain(item: dict[str, Any]) -> str:
    """``{"Uid": {"N": "1"}}`` as ``Uid=1`` (secrets are not shown: the sandbox's tokens and
    password hashes are test data, but a digest line is for reading, not for replay)."""
    parts = []
    for name, value in sorted(item.items()):
        if name in ("Token", "PasswordHash"):
            continue
        parts.append(f"{name}={next(iter(value.values())) if isinstance(value, dict) else value}")
    return " ".join(parts)


def restore(aws: Aws, before: State, after: State) -> list[str]:
    """Put the environment back as ``before`` (items, queues, subscriptions); returns what
    could not be put back (a deleted queue or topic: the driver cannot recreate the
    sandbox's own wiring, and says so)."""
    problems: list[str] = []
    for table, old in before.tables.items():
        new = after.tables.get(table)
        if new is None:
            problems.append(f"table {table} was deleted")
            continue
        for key, item in new.items():
            if key not in old:
                key_names = before.keys[table]
                aws.dynamodb.delete_item(
                    TableName=table, Key={k: item[k] for k in key_names if k in item}
                )
        for key, item in old.items():
            if new.get(key) != item:
                aws.dynamodb.put_item(TableName=table, Item=item)
    for url in after.queues:
        if url not in before.queues:
            aws.sqs.delete_queue(QueueUrl=url)
    problems += [f"queue {url} was deleted" for url in before.queues if url not in after.queues]
    for arn, subscriptions in after.topics.items():
        extra = set(subscriptions) - set(before.topics.get(arn, []))
        if not extra:
            continue
        for page in aws.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn):
            for sub in page["Subscriptions"]:
                if f"{sub['Protocol']}:{sub['Endpoint']}" in extra:
                    aws.sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    problems += [f"topic {arn} was deleted" for arn in before.topics if arn not in after.topics]
    return problems


def user_exists(aws: Aws, users_table: str, uid: int) -> bool:
    """Is the user item there (by key, consistent read)? The live-run check's own look."""
    response = aws.dynamodb.get_item(
        TableName=users_table, Key={"Uid": {"N": str(uid)}}, ConsistentRead=True
    )
    return "Item" in response
