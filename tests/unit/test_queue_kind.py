"""The engine's ``queue`` kind (harness/kinds/queue.py) over an in-memory SQS and SNS that
answer and refuse as AWS does (tests/unit/fake_messaging.py): what ``create`` makes, that
``delete`` unsubscribes before it deletes and — its second line behind the ownership gate —
never touches a queue whose name is not a harness events queue, and what ``find`` lists."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from harness.cleanup.ledger import OwnershipError
from harness.config import Profile
from harness.kinds.base import Found
from harness.kinds.queue import QueueKind, _missing, queue_name
from tests.unit.fake_messaging import FakeSns, FakeSqs, client_error

RUN = "itest-20261127t170000-abcd"
NAME = queue_name(f"{RUN}-gw0")


class Setup:
    def __init__(self, topic: bool = True) -> None:
        self.calls: list[str] = []
        self.sqs = FakeSqs(self.calls)
        self.sns = FakeSns(self.calls)
        self.topic = self.sns.create_topic("user-events")
        self.other_topic = self.sns.create_topic("billing-events")
        profile = Profile(name="staging", events_topic_arn=self.topic if topic else "")
        aws = SimpleNamespace(sqs=self.sqs, sns=self.sns)
        self.kind = QueueKind(profile, cast(Any, aws))

    def subscribe(self, endpoint: str, protocol: str = "sqs", topic: str = "") -> str:
        answer = self.sns.subscribe(
            TopicArn=topic or self.topic, Protocol=protocol, Endpoint=endpoint
        )
        return str(answer["SubscriptionArn"])

    def endpoints(self, topic: str = "") -> list[str]:
        return [s["Endpoint"] for s in self.sns.subscriptions(topic or self.topic)]


def test_queue_name_is_the_namespace_and_the_events_suffix() -> None:
    assert queue_name(f"{RUN}-gw1") == f"{RUN}-gw1-events"


def test_create_makes_the_queue_lets_only_the_topic_send_and_subscribes_it_raw() -> None:
    setup = Setup()
    made = setup.kind.create(NAME, setup.topic)
    arn = FakeSqs.arn(NAME)
    [subscription] = setup.sns.subscriptions(setup.topic)
    assert made == {
        "queue_url": FakeSqs.url(NAME),
        "queue_arn": arn,
        "subscription_arn": subscription["SubscriptionArn"],
    }
    stored = setup.sqs.queues[NAME]
    assert stored["MessageRetentionPeriod"] == "3600"  # a leaked queue holds events an hour
    assert json.loads(stored["Policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": setup.topic}},
            }
        ],
    }
    assert set(stored) == {"MessageRetentionPeriod", "Policy"}
    assert subscription["Protocol"] == "sqs" and subscription["Endpoint"] == arn
    assert subscription["Attributes"] == {"RawMessageDelivery": "true"}


def test_the_marker_is_the_queue_name() -> None:
    kind = Setup().kind
    assert kind.marker({"name": NAME}) == NAME
    assert kind.marker({}) is None
    assert kind.marker({"name": ""}) is None


def test_delete_unsubscribes_first_then_deletes_the_queue_and_nothing_else() -> None:
    setup = Setup()
    setup.kind.create(NAME, setup.topic)
    other = queue_name(f"{RUN}-gw1")
    setup.kind.create(other, setup.topic)
    lambda_endpoint = f"arn:aws:lambda:us-east-1:123456789012:function:{NAME}"
    setup.subscribe(lambda_endpoint, protocol="lambda")  # not a queue: never unsubscribed
    setup.subscribe(FakeSqs.arn(NAME), topic=setup.other_topic)  # not the events topic
    mine = setup.sns.subscriptions(setup.topic)[0]["SubscriptionArn"]
    setup.calls.clear()
    assert setup.kind.delete({"name": NAME}) == "deleted"
    writes = [c for c in setup.calls if c.split()[1] in ("Unsubscribe", "DeleteQueue")]
    assert writes == [f"sns Unsubscribe {mine}", f"sqs DeleteQueue {NAME}"]
    assert NAME not in setup.sqs.queues and other in setup.sqs.queues
    assert setup.endpoints() == [FakeSqs.arn(other), lambda_endpoint]
    assert setup.endpoints(setup.other_topic) == [FakeSqs.arn(NAME)]


def test_delete_is_done_when_either_part_was_still_there_and_absent_when_neither() -> None:
    setup = Setup()
    assert setup.kind.delete({"name": NAME}) == "absent"
    setup.subscribe(FakeSqs.arn(NAME))  # the queue is gone, its subscription is not
    assert setup.kind.delete({"name": NAME}) == "deleted"
    assert setup.endpoints() == []
    setup.sqs.create_queue(QueueName=NAME)  # a queue that never got its subscription
    assert setup.kind.delete({"name": NAME}) == "deleted"
    assert setup.sqs.queues == {}
    assert setup.kind.delete({"name": NAME}) == "absent"


def test_a_queue_gone_between_the_look_and_the_delete_is_absent() -> None:
    setup = Setup()
    setup.sqs.create_queue(QueueName=NAME)
    setup.sqs.fail_next["DeleteQueue"] = client_error("QueueDoesNotExist", "DeleteQueue")
    assert setup.kind.delete({"name": NAME}) == "absent"


def test_delete_raises_what_is_not_a_missing_queue() -> None:
    setup = Setup()
    setup.sqs.create_queue(QueueName=NAME)
    setup.sqs.fail_next["DeleteQueue"] = client_error("AccessDenied", "DeleteQueue")
    with pytest.raises(ClientError, match="AccessDenied"):
        setup.kind.delete({"name": NAME})
    setup.sqs.fail_next["GetQueueUrl"] = client_error("AccessDenied", "GetQueueUrl")
    with pytest.raises(ClientError, match="AccessDenied"):
        setup.kind.delete({"name": NAME})
    assert NAME in setup.sqs.queues


@pytest.mark.parametrize(
    "name",
    [
        f"{RUN}-gw0",  # carries the namespace (the gate lets it through), not an events queue
        f"{RUN}-gw0-events-dlq",
        f"{RUN}-gw0-Events",
        "",
    ],
)
def test_delete_refuses_a_queue_that_is_not_a_harness_events_queue(name: str) -> None:
    """The second line behind the gate: whatever its marker says, only ``…-events``."""
    setup = Setup()
    if name:
        setup.sqs.create_queue(QueueName=name)
        setup.subscribe(FakeSqs.arn(name))
    setup.calls.clear()
    with pytest.raises(OwnershipError) as refused:
        setup.kind.delete({"name": name} if name else {})
    assert str(refused.value) == (f"refusing to delete queue {name!r}: not a harness events queue")
    assert setup.calls == []  # not even a look
    if name:
        assert name in setup.sqs.queues and setup.endpoints() == [FakeSqs.arn(name)]


def test_find_lists_events_queues_by_prefix_over_every_page_and_orphaned_subscriptions() -> None:
    setup = Setup()
    many = [queue_name(f"{RUN}-s01gw{i:04d}") for i in range(1001)]  # more than one page
    for name in many:
        setup.sqs.create_queue(QueueName=name)
    setup.sqs.create_queue(QueueName=f"{RUN}-gw0-dlq")  # the prefix, not an events queue
    setup.sqs.create_queue(QueueName=queue_name("itest-20261127t160000-zzzz-gw0"))  # another run
    orphan = queue_name(f"{RUN}-gw7")  # its queue is gone, its subscription is not
    setup.subscribe(FakeSqs.arn(orphan))
    setup.subscribe(f"arn:aws:lambda:us-east-1:123456789012:function:{queue_name(RUN)}", "lambda")
    setup.subscribe(FakeSqs.arn(f"{RUN}-gw8-dlq"))
    found = setup.kind.find(RUN)
    expected = sorted([*many, orphan])
    assert found == [
        Found(kind="queue", ids={"name": n}, summary=f"events queue {n}", marker=n)
        for n in expected
    ]
    assert setup.kind.find("itest-20261127t180000") == []


def test_without_an_events_topic_find_lists_queues_and_reads_no_subscription() -> None:
    setup = Setup(topic=False)
    setup.sqs.create_queue(QueueName=NAME)
    setup.subscribe(FakeSqs.arn(queue_name(f"{RUN}-gw9")))
    assert [f.marker for f in setup.kind.find(RUN)] == [NAME]
    assert not any(c.startswith("sns ") for c in setup.calls if "Subscribe " not in c)


def test_the_subscriptions_are_read_over_every_page() -> None:
    setup = Setup()
    setup.sns.PAGE = 2
    names = [queue_name(f"{RUN}-gw{i}") for i in range(5)]
    for name in names:
        setup.subscribe(FakeSqs.arn(name))
    assert [f.marker for f in setup.kind.find(RUN)] == names
    assert setup.kind.delete({"name": names[4]}) == "deleted"
    assert setup.endpoints() == [FakeSqs.arn(n) for n in names[:4]]


@pytest.mark.parametrize(
    ("code", "missing"),
    [
        ("AWS.SimpleQueueService.NonExistentQueue", True),
        ("QueueDoesNotExist", True),
        ("NotFound", True),
        ("AccessDenied", False),
        ("NonExistentQueueish", True),  # SQS's codes name it inside a longer code
        ("queuedoesnotexist", False),
    ],
)
def test_what_counts_as_a_missing_queue(code: str, missing: bool) -> None:
    assert _missing(client_error(code, "DeleteQueue")) is missing


def test_an_error_without_a_code_is_not_a_missing_queue() -> None:
    assert _missing(ClientError({"Error": {"Message": "x"}}, "DeleteQueue")) is False
    assert _missing(ClientError({}, "DeleteQueue")) is False
