"""An independent digest of the whole environment, its difference from another, and putting
the environment back.

Independent of the engine: plain boto3 on the emulator and, on a Kafka sandbox, confluent-kafka's
own AdminClient on the broker — none of the harness's kinds, finders or clients (a check must
not grade itself). The state is every item of every table (the lease table included), every
queue with its attributes (message counts included), every topic with its subscriptions, and
on Kafka every topic (name and partition count, the broker's own ``__`` topics included) and
every consumer group (its name: a group the harness makes carries an ``itest-`` namespace,
and its existence is what matters; the service's group's offsets move with the service's own
work). It is taken once the service's own consumer has caught up — its SQS queue drained, or
on Kafka its consumer group at lag 0 — so an event still in flight is not taken for a
difference. :func:`restore` is the driver's hygiene between scenarios (so one scenario's
leftovers never become the next one's baseline); it runs only after the verdict, never
instead of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
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


#: librdkafka's own log lines (a broker going away at the sandbox's stop) go here, unshown.
_QUIET = logging.getLogger("tests.simulate.kafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False
KAFKA_TIMEOUT = 10.0


class Kafka:
    """confluent-kafka's AdminClient on a Kafka sandbox's broker (its exports name it, the
    service's topic and consumer group too): bootstrap servers only, not the harness's
    ``client_config``."""

    def __init__(self, exports: Mapping[str, str]) -> None:
        from confluent_kafka.admin import AdminClient

        config: dict[str, Any] = {
            "bootstrap.servers": exports["HARNESS_KAFKA_BOOTSTRAP_SERVERS"],
            "logger": _QUIET,
        }
        self.admin = AdminClient(config)
        self.topic = exports.get("HARNESS_KAFKA_TOPIC", "")
        self.group = exports.get("HARNESS_KAFKA_CONSUMER_GROUP", "")

    def topics(self) -> dict[str, int]:
        """Every topic on the cluster, with its partition count."""
        listing = self.admin.list_topics(timeout=KAFKA_TIMEOUT).topics
        return {name: len(meta.partitions) for name, meta in listing.items()}

    def groups(self) -> list[str]:
        """Every consumer group the cluster lists (classic and new protocol alike)."""
        result = self.admin.list_consumer_groups(request_timeout=KAFKA_TIMEOUT).result()
        if result.errors:
            raise RuntimeError(f"listing consumer groups: {result.errors[0]}")
        return sorted(group.group_id for group in result.valid)

    def lag(self) -> int:
        """The service's consumer group's lag on its topic: end offset minus committed offset,
        summed over the partitions (a partition it never committed counts whole: it reads from
        the earliest offset)."""
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
        from confluent_kafka.admin import OffsetSpec

        partitions = self.admin.list_topics(self.topic, timeout=KAFKA_TIMEOUT).topics[self.topic]
        wanted = [TopicPartition(self.topic, p) for p in sorted(partitions.partitions)]
        ends = {
            tp.partition: info.offset
            for tp, future in self.admin.list_offsets(
                {tp: OffsetSpec.latest() for tp in wanted}, request_timeout=KAFKA_TIMEOUT
            ).items()
            if (info := future.result()) is not None
        }
        request = [ConsumerGroupTopicPartitions(self.group, wanted)]
        future = self.admin.list_consumer_group_offsets(request, request_timeout=KAFKA_TIMEOUT)
        committed = {
            tp.partition: max(tp.offset, 0)
            for tp in future[self.group].result().topic_partitions or []
        }
        return sum(max(end - committed.get(p, 0), 0) for p, end in ends.items())

    def delete_topics(self, names: list[str]) -> list[str]:
        if not names:
            return []
        futures = self.admin.delete_topics(names, operation_timeout=KAFKA_TIMEOUT)
        return self._problems("topic", futures)

    def delete_groups(self, names: list[str]) -> list[str]:
        if not names:
            return []
        futures = self.admin.delete_consumer_groups(names, request_timeout=KAFKA_TIMEOUT)
        return self._problems("consumer group", futures)

    @staticmethod
    def _problems(what: str, futures: Mapping[str, Any]) -> list[str]:
        problems = []
        for name, future in futures.items():
            try:
                future.result()
            except Exception as error:
                problems.append(f"kafka {what} {name} could not be deleted: {error}")
        return problems


class Aws:
    """boto3 clients on the sandbox's emulator (its exports name it), and on a Kafka
    sandbox (``HARNESS_EVENTS_BUS=kafka``) the broker's :class:`Kafka` admin too."""

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
        kafka = exports.get("HARNESS_EVENTS_BUS") == "kafka"
        self.kafka: Kafka | None = Kafka(exports) if kafka else None

    def close(self) -> None:
        """Let go of the Kafka admin client (librdkafka's threads end with it), before the
        broker stops."""
        self.kafka = None


@dataclass
class State:
    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)
    queues: dict[str, dict[str, str]] = field(default_factory=dict)
    topics: dict[str, list[str]] = field(default_factory=dict)
    kafka_topics: dict[str, int] = field(default_factory=dict)
    kafka_groups: list[str] = field(default_factory=list)

    def digest(self) -> str:
        parts = [self.tables, self.queues, self.topics, self.kafka_topics, self.kafka_groups]
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def wait_for_processor(aws: Aws, timeout: float = 20.0) -> bool:
    """True once the service's consumer has caught up twice in a row: its queue shows nothing
    visible, in flight or delayed (the processor writes what an event set off before deleting
    it), or on Kafka its consumer group's lag is 0 (it commits after the handler returns)."""
    if aws.kafka is None and not aws.processor_queue:
        return True
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if _caught_up(aws) else 0
        if quiet >= 2:
            return True
        time.sleep(0.2)
    return False


def _caught_up(aws: Aws) -> bool:
    if aws.kafka is not None:
        return aws.kafka.lag() == 0
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=aws.processor_queue, AttributeNames=list(COUNTS)
    )["Attributes"]
    return all(attributes.get(c, "0") == "0" for c in COUNTS)


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
    if aws.kafka is not None:
        state.kafka_topics = aws.kafka.topics()
        state.kafka_groups = aws.kafka.groups()
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
    for name in sorted(set(before.kafka_topics) | set(after.kafka_topics)):
        old_p, new_p = before.kafka_topics.get(name), after.kafka_topics.get(name)
        if old_p is None:
            lines.append(f"kafka topic + {name} ({new_p} partition(s))")
        elif new_p is None:
            lines.append(f"kafka topic - {name}")
        elif old_p != new_p:
            lines.append(f"kafka topic ~ {name} partitions {old_p} -> {new_p}")
    old_g, new_g = set(before.kafka_groups), set(after.kafka_groups)
    lines += [f"kafka consumer group + {g}" for g in sorted(new_g - old_g)]
    lines += [f"kafka consumer group - {g}" for g in sorted(old_g - new_g)]
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
    if aws.kafka is not None:
        problems += aws.kafka.delete_groups(
            sorted(set(after.kafka_groups) - set(before.kafka_groups))
        )
        problems += aws.kafka.delete_topics(
            sorted(set(after.kafka_topics) - set(before.kafka_topics))
        )
        problems += [
            f"kafka topic {t} was deleted"
            for t in before.kafka_topics
            if t not in after.kafka_topics
        ]
        problems += [
            f"kafka consumer group {g} was deleted"
            for g in before.kafka_groups
            if g not in after.kafka_groups
        ]
    return problems


def user_exists(aws: Aws, users_table: str, uid: int) -> bool:
    """Is the user item there (by key, consistent read)? The live-run check's own look."""
    response = aws.dynamodb.get_item(
        TableName=users_table, Key={"Uid": {"N": str(uid)}}, ConsistentRead=True
    )
    return "Item" in response
