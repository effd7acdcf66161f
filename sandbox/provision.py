"""Creates the reference service's AWS resources, idempotently: what the service expects to exist.

Owns: the three DynamoDB tables (keys per docs/service-contract.md, TTL enabled on the
tokens table's ``TimeToLive``), the table the environment offers test runners for their
leases (key ``Marker``, TTL on ``ExpiresAt``; the service never reads it), the S3 bucket
it offers test runners for their run history (``s3://sandbox-test-history/<prefix>``; the
service never reads it), the events topic, the processor queue and its raw-delivery
subscription to the topic. Running it twice changes nothing. Must never delete or modify
data, and never create anything that is not in ``ResourceNames``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError


@dataclass(frozen=True)
class ResourceNames:
    users_table: str = "sandbox-users"
    tokens_table: str = "sandbox-tokens"
    notifications_table: str = "sandbox-notifications"
    events_topic: str = "sandbox-user-events"
    processor_queue: str = "sandbox-notifications-processor"
    test_leases_table: str = "sandbox-test-leases"
    test_history_bucket: str = "sandbox-test-history"
    #: The Secrets Manager names of the pre-provisioned smoke accounts: ``<this><n>``
    #: (created once the service serves, by ``smoke_accounts.py``).
    smoke_accounts: str = "sandbox/smoke-accounts/"


@dataclass(frozen=True)
class Provisioned:
    names: ResourceNames
    events_topic_arn: str
    processor_queue_url: str
    processor_queue_arn: str
    subscription_arn: str


def _table(
    db: Any, name: str, hash_key: str, range_key: str | None = None, hash_type: str = "N"
) -> None:
    keys = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    attrs = [{"AttributeName": hash_key, "AttributeType": hash_type}]
    if range_key:
        keys.append({"AttributeName": range_key, "KeyType": "RANGE"})
        attrs.append({"AttributeName": range_key, "AttributeType": "S"})
    try:
        db.create_table(
            TableName=name,
            KeySchema=keys,
            AttributeDefinitions=attrs,
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    db.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})


def _ttl(db: Any, table: str, attribute: str) -> None:
    current = db.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    enabled = current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
    if enabled and current.get("AttributeName") == attribute:
        return
    db.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
    )


def _bucket(s3: Any, name: str) -> None:
    try:
        s3.create_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def provision(session: Any, endpoint_url: str | None, names: ResourceNames) -> Provisioned:
    """Create what is missing and return the ARNs/URLs of everything."""
    kwargs: dict[str, Any] = {"endpoint_url": endpoint_url} if endpoint_url else {}
    db = session.client("dynamodb", **kwargs)
    sns = session.client("sns", **kwargs)
    sqs = session.client("sqs", **kwargs)

    _table(db, names.users_table, "Uid")
    _table(db, names.tokens_table, "Uid")
    _table(db, names.notifications_table, "Uid", "NotificationId")
    _ttl(db, names.tokens_table, "TimeToLive")
    _table(db, names.test_leases_table, "Marker", hash_type="S")
    _ttl(db, names.test_leases_table, "ExpiresAt")
    _bucket(session.client("s3", **kwargs), names.test_history_bucket)

    topic_arn = sns.create_topic(Name=names.events_topic)["TopicArn"]
    # A short visibility timeout: a message whose processing failed is retried within seconds.
    queue_url = sqs.create_queue(
        QueueName=names.processor_queue, Attributes={"VisibilityTimeout": "5"}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})

    subscription_arn = ""
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub.get("Protocol") == "sqs" and sub.get("Endpoint") == queue_arn:
                subscription_arn = sub["SubscriptionArn"]
    if not subscription_arn:
        subscription_arn = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
    else:
        sns.set_subscription_attributes(
            SubscriptionArn=subscription_arn,
            AttributeName="RawMessageDelivery",
            AttributeValue="true",
        )
    return Provisioned(names, topic_arn, queue_url, queue_arn, subscription_arn)
