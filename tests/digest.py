"""A digest of everything in a sandbox: every item of every table, every queue with its
message counts and attributes, every topic with its subscriptions. Two equal digests mean
the environment is exactly as it was."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from harness.clients.aws import Aws
from harness.waiting import eventually


def _queues_drained(aws: Aws) -> None:
    for url in aws.sqs.list_queues().get("QueueUrls", []):
        attributes = aws.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert all(v == "0" for v in attributes.values()), f"{url} still has messages"


def snapshot(aws: Aws) -> dict[str, Any]:
    """Wait until the processor has drained its queue, then capture everything."""
    eventually(lambda: _queues_drained(aws), timeout=20, description="queues to drain")
    client = aws.dynamodb_client
    tables: dict[str, list[str]] = {}
    for name in client.list_tables()["TableNames"]:
        items: list[str] = []
        for page in client.get_paginator("scan").paginate(TableName=name):
            items.extend(json.dumps(i, sort_keys=True, default=str) for i in page["Items"])
        tables[name] = sorted(items)
    queues = {}
    for url in aws.sqs.list_queues().get("QueueUrls", []):
        attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        volatile = {"LastModifiedTimestamp"}
        queues[url] = {
            k: v for k, v in sorted(attributes["Attributes"].items()) if k not in volatile
        }
    topics = {}
    for topic in aws.sns.list_topics()["Topics"]:
        arn = topic["TopicArn"]
        subs = aws.sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        topics[arn] = sorted(s["Endpoint"] for s in subs)
    return {"tables": tables, "queues": queues, "topics": topics}


def digest(state: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def items_mentioning(aws: Aws, text: str) -> list[str]:
    """Every item of every table with ``text`` anywhere in it — independent of the
    harness's own finders, so a test of the residue check does not grade itself."""
    client = aws.dynamodb_client
    found: list[str] = []
    for name in client.list_tables()["TableNames"]:
        for page in client.get_paginator("scan").paginate(TableName=name):
            found.extend(
                f"{name}: {i}" for i in page["Items"] if text in json.dumps(i, default=str)
            )
    return found
