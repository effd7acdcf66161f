"""The ``queue`` kind: a worker's temporary SQS queue and its subscription to the events topic.

Created as ``<namespace>-events`` (the name carries the namespace, so the ownership guard and
the sweeper can read whose it is and how old), with a policy letting only the events topic
send to it, then subscribed to the topic with raw delivery. Deleted unsubscribe-first (a topic
never keeps delivering to a dead endpoint), then the queue; found by queue-name prefix, and
also by the events topic's subscriptions whose endpoint is a namespaced queue already gone.
Never deletes a queue or subscription whose name does not carry a harness namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from harness.cleanup.ledger import OwnershipError
from harness.kinds.base import Found, Kind, Outcome

SUFFIX = "-events"
RETENTION_SECONDS = "3600"  # a leaked queue stops holding copies of events after an hour


def queue_name(namespace: str) -> str:
    return f"{namespace}{SUFFIX}"


def _missing(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    return isinstance(code, str) and (
        "NonExistentQueue" in code or code in ("QueueDoesNotExist", "NotFound")
    )


def _endpoint_name(subscription: Mapping[str, Any]) -> str:
    """The last part of a subscription's endpoint: a queue's name, for an SQS ARN."""
    return str(subscription["Endpoint"]).rpartition(":")[2]


class QueueKind(Kind):
    name = "queue"

    def create(self, name: str, topic_arn: str) -> dict[str, Any]:
        """Create the queue, let the topic send to it, subscribe it (raw delivery)."""
        sqs, sns = self.aws.sqs, self.aws.sns
        url = sqs.create_queue(
            QueueName=name, Attributes={"MessageRetentionPeriod": RETENTION_SECONDS}
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        subscription = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
            # SNS confirms a queue subscribed by its owner at once: the ARN comes back anyway
            ReturnSubscriptionArn=True,  # pragma: no mutate (equivalent: confirmed at once)
        )["SubscriptionArn"]
        return {"queue_url": url, "queue_arn": arn, "subscription_arn": subscription}

    def _subscriptions(self) -> Iterator[dict[str, Any]]:
        """The events topic's queue subscriptions: the only topic a harness queue is ever
        subscribed to. Never the account's whole list, which grows with every other team's
        topics and would make each residue check pay for them (a profile without a topic
        made no subscription to look for)."""
        topic = self.profile.events_topic_arn
        if not topic:
            return
        pages = self.aws.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
        for page in pages:
            for sub in page.get("Subscriptions") or ():
                if sub.get("Protocol") == "sqs":
                    yield sub

    def _queue_url(self, name: str) -> str | None:
        try:
            return str(self.aws.sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as error:
            if _missing(error):
                return None
            raise

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        name = ids.get("name")
        return str(name) if name else None

    #: Listing queues by name prefix costs O(what it finds); the subscriptions, O(the events
    #: topic's subscribers).
    find_is_cheap = True

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        name = str(ids.get("name", ""))
        if not name.endswith(SUFFIX):
            raise OwnershipError(f"refusing to delete queue {name!r}: not a harness events queue")
        deleted = False  # pragma: no mutate (equivalent: None is as false)
        for sub in self._subscriptions():
            if _endpoint_name(sub) == name:
                self.aws.sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
                deleted = True
        url = self._queue_url(name)
        if url is not None:
            try:
                self.aws.sqs.delete_queue(QueueUrl=url)
                deleted = True
            except ClientError as error:
                if not _missing(error):
                    raise
        return "deleted" if deleted else "absent"

    def find(self, prefix: str) -> list[Found]:
        names: set[str] = set()
        kwargs: dict[str, Any] = {"QueueNamePrefix": prefix, "MaxResults": 1000}
        while True:
            page = self.aws.sqs.list_queues(**kwargs)
            for url in page.get("QueueUrls", []):  # left out of an empty answer
                names.add(url.rpartition("/")[2])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        for sub in self._subscriptions():
            endpoint = _endpoint_name(sub)
            if endpoint.startswith(prefix):
                names.add(endpoint)
        return [
            Found(kind=self.name, ids={"name": name}, summary=f"events queue {name}", marker=name)
            for name in sorted(names)
            if name.endswith(SUFFIX)
        ]
