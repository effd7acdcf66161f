"""Events: a worker's subscription to the service's topic, and assertions on what arrives.

Owns the transport interface (:class:`Transport`: receive, publish, deliver straight to the
consumer) with its SNS/SQS implementation, the :class:`EventStream` — a background poller
that buffers this worker's events (those carrying its namespace; every other run's and every
real user's are dropped and only counted), validating each against its contract — and
:class:`Expectations`, the per-test view with ``expect_event`` / ``no_event`` filtered on the
test's own correlation (the uids and emails it created), plus the processing-latency samples
per event type that end up in the run report. What a test publishes or delivers carries the
test's trace (a ``traceparent`` attribute, a header on Kafka), so the service's consumer logs
it under the test's trace id. It never creates or deletes the subscription
itself (that is the ``queue`` kind, through the ledger) and never sleeps: waits are on a
condition variable with a deadline.

The Kafka transport (:mod:`harness.events.kafka`) fits the same interface: it reads the topic
by manual partition assignment from the end, and hands each record over with its headers and
``kafka.key`` / ``kafka.partition`` / ``kafka.offset`` (/ ``kafka.schema_id`` for the
Confluent wire format) as attributes; the key joins the correlation, the schema id selects the
registry's schema the event is held to, and a ``harness-namespace`` header keeps a record the
harness wrote even when its body names no namespace.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from harness.clients.trace import TestTrace
from harness.events.contracts import ContractError, Contracts, ContractViolation
from harness.safety.protect import refuse_publish
from harness.waiting import eventually

Where = Mapping[str, Any] | Callable[["Event"], bool] | None


@dataclass(frozen=True)
class Delivery:
    """One message as the transport received it."""

    body: str
    attributes: Mapping[str, str]
    received_at: float  # time.time()


class Transport(Protocol):
    def receive(self, wait_seconds: int) -> list[Delivery]:
        """Up to a batch of messages, waiting at most ``wait_seconds``; acknowledged."""

    def publish(self, body: str, attributes: Mapping[str, str]) -> str:
        """Publish to the service's topic, as the service would; the message id."""

    def deliver_to_consumer(self, body: str, attributes: Mapping[str, str], delay: int = 0) -> str:
        """Hand a message straight to the service's consumer, bypassing the topic."""


class SnsSqsTransport:
    """Receives from the worker's own queue; publishes to the topic; delivers to the
    processor's queue. ``sqs``/``sns`` are boto3 clients."""

    def __init__(
        self, sqs: Any, sns: Any, queue_url: str, topic_arn: str, consumer_queue_url: str = ""
    ) -> None:
        self.sqs, self.sns = sqs, sns
        self.queue_url, self.topic_arn = queue_url, topic_arn
        self.consumer_queue_url = consumer_queue_url

    def receive(self, wait_seconds: int) -> list[Delivery]:
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageAttributeNames=["All"],
        )
        messages = got.get("Messages", [])
        now = time.time()
        if messages:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        return [
            Delivery(
                body=m.get("Body", ""),
                attributes={
                    k: str(v.get("StringValue", ""))
                    for k, v in m.get("MessageAttributes", {}).items()
                },
                received_at=now,
            )
            for m in messages
        ]

    @staticmethod
    def _attributes(attributes: Mapping[str, str]) -> dict[str, Any]:
        return {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}

    def publish(self, body: str, attributes: Mapping[str, str]) -> str:
        out = self.sns.publish(
            TopicArn=self.topic_arn, Message=body, MessageAttributes=self._attributes(attributes)
        )
        return str(out["MessageId"])

    def deliver_to_consumer(self, body: str, attributes: Mapping[str, str], delay: int = 0) -> str:
        if not self.consumer_queue_url:
            raise ValueError("the profile names no processor_queue_url to deliver to")
        out = self.sqs.send_message(
            QueueUrl=self.consumer_queue_url,
            MessageBody=body,
            DelaySeconds=delay,
            MessageAttributes=self._attributes(attributes),
        )
        return str(out["MessageId"])


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass
class Event:
    """A received event: its parsed body (``payload``), contract verdict and timing."""

    body: str
    attributes: Mapping[str, str]
    received_at: float
    payload: Any = None
    violation: str = ""
    violation_path: str = ""

    @property
    def type(self) -> str:
        declared = self.payload.get("type") if isinstance(self.payload, dict) else None
        return str(declared or self.attributes.get("type", ""))

    @property
    def data(self) -> dict[str, Any]:
        data = self.payload.get("data") if isinstance(self.payload, dict) else None
        return data if isinstance(data, dict) else {}

    @property
    def id(self) -> str:
        return str(self.payload.get("id", "")) if isinstance(self.payload, dict) else ""

    @property
    def occurred_at(self) -> float | None:
        """When the publisher says it happened (epoch seconds), if it says so legibly."""
        return _epoch(self.payload.get("occurred_at")) if isinstance(self.payload, dict) else None

    @property
    def schema_id(self) -> int | None:
        """The registry schema id of a Confluent wire-format record, else None."""
        text = self.attributes.get("kafka.schema_id", "")
        return int(text) if text.isdigit() else None

    @property
    def where(self) -> str:
        """Where it was on the bus: ``topic-2@17`` (partition 2, offset 17) on Kafka, the
        format of what the harness writes there too; ``event <id>`` on SNS/SQS."""
        if "kafka.partition" in self.attributes:
            return kafka_where(
                self.attributes.get("kafka.topic", ""),
                self.attributes["kafka.partition"],
                self.attributes.get("kafka.offset", "?"),
            )
        return f"event {self.id}" if self.id else ""

    @property
    def keys(self) -> set[str]:
        """Correlation keys: the uid and lower-cased email the event is about, and the
        record's key on Kafka."""
        found = set()
        if self.attributes.get("kafka.key"):
            found.add(self.attributes["kafka.key"].lower())
        if "uid" in self.data:
            found.add(str(self.data["uid"]))
        if isinstance(self.data.get("email"), str):
            found.add(self.data["email"].lower())
        return found

    def describe(self) -> str:
        about = ", ".join(f"{k}={self.data[k]!r}" for k in ("uid", "email") if k in self.data)
        flaw = f" [CONTRACT VIOLATION at {self.violation_path}]" if self.violation else ""
        return f"{self.type or '?'} {self.id or '(no id)'} ({about}){flaw}"


def kafka_where(topic: str, partition: Any, offset: Any) -> str:
    """A Kafka record's place: ``<topic>-<partition>@<offset>`` (one format for every row)."""
    return f"{topic or '?'}-{partition}@{offset}"


_KAFKA_WHERE = re.compile(r"^.+-\d+@\d+$")


def _written_where(payload: Any, returned: str) -> str:
    """Where a write went, in :attr:`Event.where`'s format: the Kafka transport answers it
    already; an SNS/SQS write is named by the event's id (as the seen row names it)."""
    if _KAFKA_WHERE.match(returned):
        return returned
    event_id = payload.get("id") if isinstance(payload, dict) else None
    return f"event {event_id}" if event_id else f"message {returned}"


def build_event(event_type: str, data: Mapping[str, Any], version: int = 1) -> dict[str, Any]:
    """An envelope as the service publishes it (docs/service-contract.md)."""
    occurred = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "type": event_type,
        "version": version,
        "id": str(uuid.uuid4()),
        "occurred_at": occurred,
        "data": dict(data),
    }


class EventStream:
    """Polls a transport on a daemon thread and buffers this worker's events.

    ``keep`` is the worker's namespace: a message whose body does not contain it belongs to
    another run or to a real user and is dropped unparsed (only counted in ``dropped``).
    """

    def __init__(
        self,
        transport: Transport,
        contracts: Contracts,
        keep: str,
        wait_seconds: int = 1,
        *,
        protected: str = "",
    ) -> None:
        self.transport = transport
        #: The protected profile's name: publishing and delivering are refused.
        self.protected = protected
        self.contracts = contracts
        self.keep = keep
        self.wait_seconds = wait_seconds
        self.events: list[Event] = []
        self.dropped = 0
        self.poll_errors = 0
        self.last_error = ""
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="harness-events", daemon=True)

    def start(self) -> EventStream:
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                deliveries = self.transport.receive(self.wait_seconds)
            except Exception as error:  # the poller must outlive a flaky network
                self.poll_errors += 1
                self.last_error = f"{type(error).__name__}: {error}"
                self._stop.wait(0.5)
                continue
            for delivery in deliveries:
                self.ingest(delivery)

    def ingest(self, delivery: Delivery) -> Event | None:
        """Buffer one delivery if it is this worker's, validated against its contract."""
        if self.keep not in delivery.body and not any(
            self.keep in value for value in delivery.attributes.values()
        ):
            with self._cond:
                self.dropped += 1
            return None
        event = Event(delivery.body, delivery.attributes, delivery.received_at)
        try:
            event.payload = json.loads(delivery.body)
            self.contracts.validate(event.payload, event.schema_id)
        except ValueError as error:
            event.violation, event.violation_path = f"body is not JSON: {error}", "$"
        except ContractViolation as error:
            event.violation, event.violation_path = str(error), error.path
        except ContractError as error:
            event.violation, event.violation_path = str(error), "$.type"
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        return event

    def snapshot(self) -> list[Event]:
        with self._cond:
            return list(self.events)

    def wait(self, timeout: float) -> None:
        """Block until a new event arrives or ``timeout`` passes (no busy loop, no sleep)."""
        with self._cond:
            self._cond.wait(timeout)

    def publish(
        self,
        event: Any,
        *,
        event_type: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """Publish to the topic; ``attributes`` (a ``traceparent``) travel with it."""
        if self.protected:
            raise refuse_publish(self.protected, "publishing an event")
        body = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
        kind = event_type or (event.get("type") if isinstance(event, dict) else None) or ""
        return self.transport.publish(body, {**(attributes or {}), "type": str(kind)})

    def deliver_to_consumer(
        self, event: Mapping[str, Any], delay: int = 0, attributes: Mapping[str, str] | None = None
    ) -> str:
        if self.protected:
            raise refuse_publish(self.protected, "delivering an event to the consumer")
        body = json.dumps(event, separators=(",", ":"))
        return self.transport.deliver_to_consumer(
            body, {**(attributes or {}), "type": str(event["type"])}, delay
        )


def _matches(event: Event, event_type: str, where: Where) -> bool:
    if event.type != event_type:
        return False
    if where is None:
        return True
    if callable(where):
        return bool(where(event))
    data = event.data
    return all(k in data and data[k] == v for k, v in where.items())


class LatencyRecorder:
    """Processing latency samples (seconds) per event type, for the run report."""

    def __init__(self) -> None:
        self._samples: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()

    def add(self, event_type: str, seconds: float) -> None:
        with self._lock:
            self._samples[event_type].append(max(0.0, seconds))

    def samples(self) -> dict[str, list[float]]:
        with self._lock:
            return {k: list(v) for k, v in self._samples.items()}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: Mapping[str, Iterable[float]]) -> dict[str, dict[str, float | int]]:
    """``{type: {count, p50, p95, max}}`` in seconds, rounded to the millisecond."""
    summary: dict[str, dict[str, float | int]] = {}
    for event_type, values in sorted(samples.items()):
        data = [float(v) for v in values]
        if not data:
            continue
        summary[event_type] = {
            "count": len(data),
            "p50": round(percentile(data, 50), 3),
            "p95": round(percentile(data, 95), 3),
            "max": round(max(data), 3),
        }
    return summary


@dataclass
class Expectations:
    """One test's view of the stream: only events about what the test itself created.

    ``correlation`` returns the test's keys (uids and emails of its ledger resources) at the
    moment of asking; :meth:`correlate` adds more. Every correlated event the test looks at is
    held to its contract: a violation fails the test (once) with the field's JSON path.
    """

    stream: EventStream
    correlation: Callable[[], set[str]]
    latency: LatencyRecorder
    extra: set[str] = field(default_factory=set)
    _reported: set[int] = field(default_factory=set)
    #: What this test wrote: ``{"at", "action", "type", "key", "where"}`` (for the report).
    written: list[dict[str, Any]] = field(default_factory=list)
    #: When this view was made (the timeline's zero).
    started: float = field(default_factory=time.time)
    #: The test's trace: what it publishes or delivers carries a span of it.
    trace: TestTrace | None = None

    def _trace_attributes(self) -> dict[str, str]:
        return {"traceparent": self.trace.headers()["traceparent"]} if self.trace else {}

    def _wrote(self, action: str, payload: Any, where: str) -> None:
        data = payload.get("data") if isinstance(payload, dict) else None
        uid = data.get("uid") if isinstance(data, dict) else None
        self.written.append(
            {
                "at": time.time(),
                "action": action,
                "type": str(payload.get("type", "?")) if isinstance(payload, dict) else "?",
                "version": payload.get("version", "") if isinstance(payload, dict) else "",
                "key": "" if uid is None else str(uid),
                "where": _written_where(payload, where),
            }
        )

    def timeline(self) -> list[dict[str, Any]]:
        """This test's events in time order: what it published or delivered, and what it
        saw — type, key, schema version (and registry id), partition/offset or message id,
        seconds since the test began and, for a seen event, since it was published."""
        rows = [{**row, "latency": None} for row in self.written]
        ids: set[str] = set()
        for event in self.seen():
            # A redelivery (same event id again) has no publish -> seen latency of its own.
            again = bool(event.id) and event.id in ids
            ids.add(event.id)
            occurred = None if again else event.occurred_at
            version = event.payload.get("version", "") if isinstance(event.payload, dict) else ""
            rows.append(
                {
                    "at": event.received_at,
                    "action": "saw again" if again else "saw",
                    "type": event.type or "?",
                    "version": version,
                    "schema_id": event.schema_id,
                    "key": event.attributes.get("kafka.key") or str(event.data.get("uid", "")),
                    "where": event.where,
                    "latency": None if occurred is None else event.received_at - occurred,
                    "violation": event.violation_path if event.violation else "",
                }
            )
        rows.sort(key=lambda row: row["at"])
        zero = min([self.started, *(row["at"] for row in rows)])
        for row in rows:
            row["t"] = row.pop("at") - zero
        return rows

    def correlate(self, *values: Any) -> None:
        for value in values:
            self.extra.add(str(value).lower())

    def keys(self) -> set[str]:
        return {k.lower() for k in self.correlation()} | self.extra

    def seen(self) -> list[Event]:
        """Every event so far about this test's own data."""
        keys = self.keys()
        return [e for e in self.stream.snapshot() if e.keys & keys]

    def _check_contracts(self, events: list[Event]) -> None:
        for event in events:
            if event.violation and id(event) not in self._reported:
                self._reported.add(id(event))
                raise ContractViolation(event.violation, event.violation_path)

    def unreported_violations(self) -> list[Event]:
        return [e for e in self.seen() if e.violation and id(e) not in self._reported]

    def _describe_seen(self) -> str:
        seen = self.seen()
        listing = "; ".join(e.describe() for e in seen[-10:]) or "none"
        return (
            f"this test's events seen: {len(seen)} ({listing}); the worker's stream buffered "
            f"{len(self.stream.snapshot())} and dropped {self.stream.dropped} of other runs"
            + (f"; last poll error: {self.stream.last_error}" if self.stream.last_error else "")
        )

    def expect_event(self, event_type: str, where: Where = None, timeout: float = 10.0) -> Event:
        """The first event of ``event_type`` about this test's data matching ``where`` (a
        mapping of ``data`` fields, or a predicate); fails after ``timeout`` with what was seen."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.seen()
            self._check_contracts(seen)
            for event in seen:
                if _matches(event, event_type, where):
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no {event_type} event{_where_text(where)} within {timeout:g}s; "
                    + self._describe_seen()
                )
            self.stream.wait(min(remaining, 0.5))

    def no_event(self, event_type: str, where: Where = None, within: float = 2.0) -> None:
        """Fails as soon as an event of ``event_type`` about this test's data matching
        ``where`` is seen, or passes after ``within`` seconds of silence."""
        deadline = time.monotonic() + within
        while True:
            seen = self.seen()
            self._check_contracts(seen)
            unexpected = [e for e in seen if _matches(e, event_type, where)]
            if unexpected:
                raise AssertionError(
                    f"unexpected {event_type} event{_where_text(where)}: "
                    f"{unexpected[0].describe()}; " + self._describe_seen()
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.stream.wait(min(remaining, 0.5))

    def publish(self, event_type: str, data: Mapping[str, Any], version: int = 1) -> Event:
        """Publish a contract-valid event to the topic, as the service would; its data's uid
        and email become this test's correlation. Returns it as an unreceived Event."""
        event = build_event(event_type, data, version)
        self.stream.contracts.validate(event)
        self.correlate(*(v for k, v in data.items() if k in ("uid", "email")))
        self._wrote(
            "published", event, self.stream.publish(event, attributes=self._trace_attributes())
        )
        return Event(json.dumps(event), {"type": event_type}, time.time(), payload=event)

    def publish_raw(self, body: Any, event_type: str = "") -> None:
        """Publish anything at all (a malformed event, for contract tests) to the topic."""
        where = self.stream.publish(
            body, event_type=event_type, attributes=self._trace_attributes()
        )
        self._wrote("published", body if isinstance(body, dict) else {"type": event_type}, where)

    def deliver_to_consumer(self, event: Event | Mapping[str, Any], delay: int = 0) -> None:
        """Hand an event straight to the service's consumer (duplicates, reordering)."""
        payload = event.payload if isinstance(event, Event) else event
        where = self.stream.deliver_to_consumer(payload, delay, self._trace_attributes())
        self._wrote("delivered", payload, where)

    def await_effect(self, event: Event, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait for ``check`` to pass, then record publish → observed-effect latency under
        the event's type (publish time is the event's ``occurred_at``)."""
        started = event.occurred_at or event.received_at
        result = eventually(
            check,
            timeout=timeout,
            interval=0.02,
            max_interval=0.2,
            description=f"the effect of {event.describe()}",
        )
        self.latency.add(event.type, time.time() - started)
        return result


def _where_text(where: Where) -> str:
    if where is None:
        return " about this test's data"
    if callable(where):
        return f" matching {getattr(where, '__name__', 'the predicate')}"
    return f" with {dict(where)!r}"
