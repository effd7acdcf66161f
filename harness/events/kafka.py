"""Kafka for the harness's events: the transport, the service's consumer lag, the client config.

Owns three things for a profile with ``events_bus = "kafka"``:

- :func:`client_config`: the confluent-kafka settings of the profile (bootstrap servers, and
  ``security.protocol`` / ``sasl.mechanism`` / ``ssl.ca.location`` passed through as-is), with
  the SASL username and password from ``$HARNESS_KAFKA_SASL_USERNAME`` / ``_PASSWORD`` only;
- :class:`KafkaTransport` (the :class:`~harness.events.stream.Transport` interface): it reads
  the service's topic with MANUAL partition assignment from the end offsets at open — no
  group join, no commit, so it leaves no consumer group, topic or committed offset behind and
  never takes a partition from the service's consumers; it publishes as the service does (key
  = the event's uid, headers ``type`` and ``version``, the Confluent wire format when a schema
  registry is configured) plus a ``harness-namespace`` header and the test's
  ``traceparent``; and it delivers to the
  consumer by producing to the same topic, in the order asked, ``delay`` seconds later;
- :func:`group_lag` / :func:`wait_for_group_caught_up`: the service's consumer group's lag
  (end offset minus committed offset per partition, read with OffsetFetch: it never joins the
  group), the Kafka equivalent of "the processor queue has drained".

The client library is imported on first use: a profile on SNS never needs it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from harness.events.contracts import (
    ContractError,
    decode_wire,
    encode_wire,
    registry_version,
)
from harness.events.stream import Delivery

if TYPE_CHECKING:
    from harness.config import Profile

log = logging.getLogger("harness.kafka")

NAMESPACE_HEADER = "harness-namespace"
INSTALL = "pip install 'env-harness[kafka]' (or confluent-kafka)"
TIMEOUT = 10.0


class KafkaUnavailable(RuntimeError):
    """The Kafka client is missing, or the cluster/topic cannot be reached."""


def require_client() -> Any:
    try:
        import confluent_kafka
    except ImportError:
        raise KafkaUnavailable(f'events_bus = "kafka" needs the Kafka client: {INSTALL}') from None
    return confluent_kafka


def client_config(profile: Profile, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The confluent-kafka configuration the profile describes (credentials from ``environ``)."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {"bootstrap.servers": profile.kafka_bootstrap_servers}
    for field, key in (
        ("kafka_security_protocol", "security.protocol"),
        ("kafka_sasl_mechanism", "sasl.mechanism"),
        ("kafka_ssl_ca_location", "ssl.ca.location"),
    ):
        value = getattr(profile, field, "")
        if value:
            config[key] = value
    username = environ.get("HARNESS_KAFKA_SASL_USERNAME", "")
    if username:
        config["sasl.username"] = username
        config["sasl.password"] = environ.get("HARNESS_KAFKA_SASL_PASSWORD", "")
    config["logger"] = log
    return config


def _partitions(client: Any, topic: str) -> list[int]:
    metadata = client.list_topics(topic, timeout=TIMEOUT)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        why = found.error if found is not None else "not in the cluster's metadata"
        raise KafkaUnavailable(f"Kafka topic {topic!r} cannot be read: {why}")
    return sorted(found.partitions)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class KafkaTransport:
    """Reads the service's topic from its end (manual assignment, no group, no commits) and
    writes to it as the service would. ``namespace`` goes into the header of everything it
    writes; ``registry_url`` (optional) makes what it publishes Confluent wire format."""

    def __init__(
        self,
        config: Mapping[str, Any],
        topic: str,
        namespace: str,
        registry_url: str = "",
    ) -> None:
        kafka = require_client()
        self.topic = topic
        self.namespace = namespace
        self.registry_url = registry_url.rstrip("/")
        self._schema_ids: dict[tuple[str, int], int | None] = {}
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()
        #: partition → the highest offset this transport wrote there (for the lag wait).
        self.written: dict[int, int] = {}
        self.consumer = kafka.Consumer(
            {
                **config,
                # Required by the client; assign() never joins it and nothing is committed
                # under it. Namespaced all the same: were it ever created, it is the run's
                # and the kafka_group kind finds and deletes it.
                "group.id": f"{namespace}-events",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "latest",
            }
        )
        try:
            partitions = _partitions(self.consumer, topic)
            starts = []
            for partition in partitions:
                tp = kafka.TopicPartition(topic, partition)
                _, high = self.consumer.get_watermark_offsets(tp, timeout=TIMEOUT)
                starts.append(kafka.TopicPartition(topic, partition, high))
            self.consumer.assign(starts)
        except Exception:
            self.consumer.close()
            raise
        self.producer = kafka.Producer({**config, "linger.ms": 0, "acks": "all"})

    # -- reading -----------------------------------------------------------------------

    def receive(self, wait_seconds: int) -> list[Delivery]:
        # The first record waits (up to wait_seconds); the rest of the batch is only what
        # has already arrived: consume() alone would wait out its timeout to fill the batch,
        # adding that much to every event's publish -> seen latency.
        first = self.consumer.poll(wait_seconds)
        if first is None:
            return []
        messages = [first, *self.consumer.consume(num_messages=99, timeout=0)]
        now = time.time()
        deliveries = []
        for message in messages:
            if message.error() is not None:
                log.warning("Kafka read error on %s: %s", self.topic, message.error())
                continue
            schema_id, value = decode_wire(message.value() or b"")
            attributes = {k: _text(v) for k, v in (message.headers() or [])}
            attributes["kafka.topic"] = _text(message.topic())
            attributes["kafka.key"] = _text(message.key())
            attributes["kafka.partition"] = str(message.partition())
            attributes["kafka.offset"] = str(message.offset())
            if schema_id is not None:
                attributes["kafka.schema_id"] = str(schema_id)
            deliveries.append(
                Delivery(
                    body=value.decode(errors="replace"), attributes=attributes, received_at=now
                )
            )
        return deliveries

    # -- writing -----------------------------------------------------------------------

    def _schema_id(self, event_type: str, version: int) -> int | None:
        """The registry's id of ``<type>-value`` version N, as the service looks it up."""
        key = (event_type, version)
        if key not in self._schema_ids:
            try:
                entry = registry_version(self.registry_url, event_type, version)
            except ContractError as error:
                log.warning("no schema id for %s v%s: %s", event_type, version, error)
                entry = None
            self._schema_ids[key] = int(entry["id"]) if entry and "id" in entry else None
        return self._schema_ids[key]

    def _record(self, body: str, attributes: Mapping[str, str]) -> tuple[str | None, bytes, list]:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        data = payload.get("data") if isinstance(payload, dict) else None
        uid = data.get("uid") if isinstance(data, dict) else None
        key = None if uid is None else str(uid)
        event_type = str(attributes.get("type") or "")
        if not event_type and isinstance(payload, dict):
            event_type = str(payload.get("type") or "")
        version = payload.get("version") if isinstance(payload, dict) else None
        headers = [("type", event_type.encode())]
        if isinstance(version, int) and not isinstance(version, bool):
            headers.append(("version", str(version).encode()))
        headers.append((NAMESPACE_HEADER, self.namespace.encode()))
        if attributes.get("traceparent"):  # the test's trace, for the consumer's log lines
            headers.append(("traceparent", str(attributes["traceparent"]).encode()))
        value = body.encode()
        if self.registry_url and event_type and isinstance(version, int):
            schema_id = self._schema_id(event_type, version)
            if schema_id is not None:
                value = encode_wire(schema_id, value)
        return key, value, headers

    def _produce(self, body: str, attributes: Mapping[str, str]) -> str:
        key, value, headers = self._record(body, attributes)
        outcome: dict[str, Any] = {}

        def delivered(error: Any, message: Any) -> None:
            outcome["error"] = error
            outcome["message"] = message

        self.producer.produce(
            self.topic, value=value, key=key, headers=headers, on_delivery=delivered
        )
        self.producer.flush(TIMEOUT)
        if "message" not in outcome:
            raise KafkaUnavailable(
                f"Kafka did not acknowledge a write to {self.topic} in {TIMEOUT:g}s"
            )
        if outcome["error"] is not None:
            raise KafkaUnavailable(f"Kafka refused a write to {self.topic}: {outcome['error']}")
        message = outcome["message"]
        with self._lock:
            partition, offset = message.partition(), message.offset()
            self.written[partition] = max(offset, self.written.get(partition, -1))
        return f"{self.topic}-{partition}@{offset}"

    def publish(self, body: str, attributes: Mapping[str, str]) -> str:
        return self._produce(body, attributes)

    def deliver_to_consumer(self, body: str, attributes: Mapping[str, str], delay: int = 0) -> str:
        """The consumer reads the topic: produce to it (same key, so same partition and
        order). With ``delay``, produced that many seconds later, in the background; the
        consumer-lag wait waits for it first."""
        if delay <= 0:
            return self._produce(body, attributes)
        timer = threading.Timer(delay, self._produce, args=(body, attributes))
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()
        return f"{self.topic} (in {delay}s)"

    def wait_for_delayed(self, timeout: float) -> bool:
        """Block until every delayed delivery has been produced (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            timers = list(self._timers)
        for timer in timers:
            timer.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()]
            return not self._timers

    def close(self) -> None:
        with self._lock:
            timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        try:
            self.producer.flush(2.0)
        finally:
            self.consumer.close()  # never joined a group: nothing to leave, nothing committed


def group_lag(
    config: Mapping[str, Any], topic: str, group: str, partitions: Iterable[int] | None = None
) -> dict[int, int]:
    """``{partition: lag}`` of ``group`` on ``topic`` (all partitions, or those given): the end
    offset minus the group's committed offset (the start offset where it committed none).
    Reads only (OffsetFetch and ListOffsets): it never joins the group."""
    kafka = require_client()
    consumer = kafka.Consumer(
        {
            **config,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    try:
        wanted = sorted(partitions) if partitions is not None else _partitions(consumer, topic)
        committed = consumer.committed(
            [kafka.TopicPartition(topic, p) for p in wanted], timeout=TIMEOUT
        )
        lag = {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(
                kafka.TopicPartition(topic, tp.partition), timeout=TIMEOUT
            )
            position = tp.offset if tp.offset >= 0 else low
            lag[tp.partition] = max(0, high - position)
        return lag
    finally:
        consumer.close()


def wait_for_group_caught_up(
    config: Mapping[str, Any],
    topic: str,
    group: str,
    *,
    timeout: float = 15.0,
    interval: float = 0.1,
    calm_checks: int = 2,
    partitions: Iterable[int] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> bool:
    """True once ``group`` shows lag 0 on ``topic`` ``calm_checks`` times in a row; False when
    ``timeout`` passes first (the caller goes on, saying so)."""
    wanted = list(partitions) if partitions is not None else None
    deadline = time.monotonic() + timeout
    calm = 0
    told = False
    while True:
        total = sum(group_lag(config, topic, group, wanted).values())
        calm = calm + 1 if total == 0 else 0
        if calm >= calm_checks:
            return True
        if time.monotonic() >= deadline:
            return False
        if total and not told:
            told = True
            progress(f"waiting for consumer group {group} to process {total} event(s) on {topic}")
        time.sleep(interval)
