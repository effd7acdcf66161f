"""In-memory SQS and SNS for the fast tier: what the engine's ``queue`` kind
(harness/kinds/queue.py) sends, answered the way AWS answers it — and refused the way AWS
refuses it: an unknown queue is ``AWS.SimpleQueueService.NonExistentQueue``, an attribute
name SQS does not know is ``InvalidAttributeName``, ``MaxResults`` outside 1..1000 and a
``NextToken`` that was never handed out are ``InvalidParameterValue``, a parameter boto3
would not send (``None``) is botocore's ``ParamValidationError``, and ``ListQueues`` leaves
``QueueUrls`` out of an empty answer. Every call is logged, in order, in ``calls``."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError, OperationNotPageableError, ParamValidationError

REGION = "us-east-1"
ACCOUNT = "123456789012"
#: SQS attributes a caller may set (the ones the kind and these tests use, and a few more).
SETTABLE = frozenset(
    {"DelaySeconds", "MessageRetentionPeriod", "Policy", "VisibilityTimeout", "RedrivePolicy"}
)
READABLE = SETTABLE | {"QueueArn", "ApproximateNumberOfMessages"}
PROTOCOLS = frozenset({"http", "https", "email", "email-json", "sms", "sqs", "lambda", "firehose"})
SUBSCRIPTION_ATTRIBUTES = frozenset({"RawMessageDelivery", "FilterPolicy", "RedrivePolicy"})


def client_error(code: str, operation: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message or code}}, operation)


def _required(operation: str, **params: Any) -> None:
    for name, value in params.items():
        if not isinstance(value, str):
            raise ParamValidationError(
                report=f"{operation}: {name} must be a string, not {value!r}"
            )


class FakeSqs:
    def __init__(self, calls: list[str] | None = None) -> None:
        self.queues: dict[str, dict[str, str]] = {}
        self.calls: list[str] = [] if calls is None else calls
        #: operation name -> the error its next call raises (once)
        self.fail_next: dict[str, ClientError] = {}
        self._tokens: dict[str, int] = {}

    @staticmethod
    def url(name: str) -> str:
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"

    @staticmethod
    def arn(name: str) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"

    def _call(self, operation: str, detail: str) -> None:
        self.calls.append(f"sqs {operation} {detail}")
        failure = self.fail_next.pop(operation, None)
        if failure is not None:
            raise failure

    def _queue(self, url: Any, operation: str) -> str:
        _required(operation, QueueUrl=url)
        name = url.rpartition("/")[2]
        if url != self.url(name) or name not in self.queues:
            raise client_error("AWS.SimpleQueueService.NonExistentQueue", operation)
        return name

    def _check_attributes(self, names: Any, allowed: frozenset[str], operation: str) -> None:
        for name in names:
            if name not in allowed:
                raise client_error("InvalidAttributeName", operation, f"Unknown attribute {name}")

    def create_queue(self, *, QueueName: Any, Attributes: Any = None) -> dict[str, Any]:
        _required("CreateQueue", QueueName=QueueName)
        self._call("CreateQueue", QueueName)
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", QueueName):
            raise client_error("InvalidParameterValue", "CreateQueue", QueueName)
        attributes = dict(Attributes or {})
        self._check_attributes(attributes, SETTABLE, "CreateQueue")
        self.queues.setdefault(QueueName, attributes)
        return {"QueueUrl": self.url(QueueName)}

    def get_queue_attributes(self, *, QueueUrl: Any, AttributeNames: list[str]) -> dict[str, Any]:
        name = self._queue(QueueUrl, "GetQueueAttributes")
        self._call("GetQueueAttributes", name)
        self._check_attributes(AttributeNames, READABLE, "GetQueueAttributes")
        stored = {**self.queues[name], "QueueArn": self.arn(name)}
        return {"Attributes": {a: stored[a] for a in AttributeNames if a in stored}}

    def set_queue_attributes(self, *, QueueUrl: Any, Attributes: dict[str, str]) -> None:
        name = self._queue(QueueUrl, "SetQueueAttributes")
        self._call("SetQueueAttributes", name)
        self._check_attributes(Attributes, SETTABLE, "SetQueueAttributes")
        self.queues[name].update(Attributes)

    def get_queue_url(self, *, QueueName: Any) -> dict[str, Any]:
        _required("GetQueueUrl", QueueName=QueueName)
        self._call("GetQueueUrl", QueueName)
        if QueueName not in self.queues:
            raise client_error("AWS.SimpleQueueService.NonExistentQueue", "GetQueueUrl")
        return {"QueueUrl": self.url(QueueName)}

    def delete_queue(self, *, QueueUrl: Any) -> None:
        _required("DeleteQueue", QueueUrl=QueueUrl)
        self._call("DeleteQueue", QueueUrl.rpartition("/")[2])
        del self.queues[self._queue(QueueUrl, "DeleteQueue")]

    def list_queues(
        self, *, QueueNamePrefix: str = "", MaxResults: Any = None, NextToken: Any = ""
    ) -> dict[str, Any]:
        _required("ListQueues", QueueNamePrefix=QueueNamePrefix, NextToken=NextToken)
        self._call("ListQueues", QueueNamePrefix)
        if MaxResults is not None and not (isinstance(MaxResults, int) and 1 <= MaxResults <= 1000):
            raise client_error("InvalidParameterValue", "ListQueues", f"MaxResults {MaxResults}")
        if NextToken and NextToken not in self._tokens:
            raise client_error("InvalidParameterValue", "ListQueues", "invalid NextToken")
        start = self._tokens.pop(NextToken, 0) if NextToken else 0
        names = sorted(n for n in self.queues if n.startswith(QueueNamePrefix))
        page = names[start : start + (MaxResults or 1000)]
        answer: dict[str, Any] = {}
        if page:
            answer["QueueUrls"] = [self.url(n) for n in page]
        if MaxResults is not None and start + len(page) < len(names):
            token = f"token-{len(self._tokens)}-{start + len(page)}"
            self._tokens[token] = start + len(page)
            answer["NextToken"] = token
        return answer


class FakeSns:
    #: ListSubscriptionsByTopic answers 100 subscriptions a page.
    PAGE = 100

    def __init__(self, calls: list[str] | None = None) -> None:
        self.topics: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[str] = [] if calls is None else calls
        self._ids = itertools.count(1)

    def create_topic(self, name: str) -> str:
        arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
        self.topics.setdefault(arn, [])
        return arn

    def _topic(self, arn: Any, operation: str) -> list[dict[str, Any]]:
        _required(operation, TopicArn=arn)
        if arn not in self.topics:
            raise client_error("NotFound", operation, "Topic does not exist")
        return self.topics[arn]

    def subscribe(
        self,
        *,
        TopicArn: Any,
        Protocol: Any,
        Endpoint: Any,
        Attributes: Any = None,
        ReturnSubscriptionArn: bool = False,
    ) -> dict[str, Any]:
        _required("Subscribe", Protocol=Protocol, Endpoint=Endpoint)
        subscriptions = self._topic(TopicArn, "Subscribe")
        self.calls.append(f"sns Subscribe {Protocol} {Endpoint}")
        if Protocol not in PROTOCOLS:
            raise client_error("InvalidParameter", "Subscribe", f"Invalid protocol {Protocol}")
        if Protocol == "sqs" and not Endpoint.startswith("arn:aws:sqs:"):
            raise client_error("InvalidParameter", "Subscribe", "sqs endpoint must be an ARN")
        attributes = dict(Attributes or {})
        for name in attributes:
            if name not in SUBSCRIPTION_ATTRIBUTES:
                raise client_error("InvalidParameter", "Subscribe", f"Unknown attribute {name}")
        arn = f"{TopicArn}:sub-{next(self._ids)}"
        subscriptions.append(
            {
                "SubscriptionArn": arn,
                "Owner": ACCOUNT,
                "Protocol": Protocol,
                "Endpoint": Endpoint,
                "TopicArn": TopicArn,
                "Attributes": attributes,
            }
        )
        return {"SubscriptionArn": arn}

    def unsubscribe(self, *, SubscriptionArn: Any) -> None:
        _required("Unsubscribe", SubscriptionArn=SubscriptionArn)
        self.calls.append(f"sns Unsubscribe {SubscriptionArn}")
        for subscriptions in self.topics.values():
            subscriptions[:] = [s for s in subscriptions if s["SubscriptionArn"] != SubscriptionArn]

    def get_paginator(self, operation: str) -> Any:
        if operation != "list_subscriptions_by_topic":
            raise OperationNotPageableError(operation_name=operation)
        sns = self

        class Paginator:
            def paginate(self, *, TopicArn: Any) -> Iterator[dict[str, Any]]:
                subscriptions = sns._topic(TopicArn, "ListSubscriptionsByTopic")
                listed = [{k: v for k, v in s.items() if k != "Attributes"} for s in subscriptions]
                for start in range(0, max(len(listed), 1), sns.PAGE):
                    sns.calls.append(f"sns ListSubscriptionsByTopic {start}")
                    yield {"Subscriptions": listed[start : start + sns.PAGE]}

        return Paginator()

    def subscriptions(self, topic: str) -> list[dict[str, Any]]:
        return self.topics[topic]
