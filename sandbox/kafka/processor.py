"""The local Kafka event-source mapping: consumes the events topic and invokes the app's handler.

Owns: what Lambda's Kafka trigger (MSK or self-managed) does for the deployed service: one
consumer in the group ``sandbox-notifications-processor`` reading from the earliest offset,
each batch handed to the app's Kafka ``@app.lambda_function`` as the Lambda event it would
get (records grouped by ``<topic>-<partition>``, key and value in base64, headers as byte
lists), offsets committed only after the handler returns, and, when it raises, the batch's
partitions rewound to be delivered again (logging why). On stop it closes the consumer, so
it leaves the group at once. Must never contain processing logic of its own, and never
commit past a record whose handler failed.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from chalice.app import Chalice
from chalice.local import LambdaContext

log = logging.getLogger("sandbox.processor")

Handler = Callable[[dict[str, Any], Any], Any]


def find_lambda_handler(module: ModuleType, app: Chalice, name: str) -> Handler:
    """The module's ``@app.lambda_function(name=...)`` handler."""
    for function in app.pure_lambda_functions:
        if function.name == name:
            handler: Handler = getattr(module, function.handler_string.rsplit(".", 1)[-1])
            return handler
    raise LookupError(f"the app has no @app.lambda_function named {name!r}")


def _b64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode()


def lambda_event(messages: list[Any], bootstrap_servers: str) -> dict[str, Any]:
    """The self-managed Kafka event Lambda would pass for these messages."""
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    records: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        kind, timestamp = m.timestamp()
        record: dict[str, Any] = {
            "topic": m.topic(),
            "partition": m.partition(),
            "offset": m.offset(),
            "timestamp": timestamp,
            "timestampType": "LOG_APPEND_TIME"
            if kind == TIMESTAMP_LOG_APPEND_TIME
            else "CREATE_TIME",
            "value": _b64(m.value()),
            "headers": [{k: list(v or b"")} for k, v in (m.headers() or [])],
        }
        if m.key() is not None:
            record["key"] = _b64(m.key())
        records.setdefault(f"{m.topic()}-{m.partition()}", []).append(record)
    return {
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": bootstrap_servers,
        "records": records,
    }


class KafkaProcessor:
    """A daemon thread consuming one topic as one consumer group until ``stop()``."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        group: str,
        handler: Handler,
        batch_size: int = 10,
        retry_seconds: float = 1.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.group = group
        self.handler = handler
        self.batch_size = max(1, batch_size)
        self.retry_seconds = retry_seconds
        self.processed = 0
        self._stop = threading.Event()
        self._assigned = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name="sandbox-kafka-processor", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def wait_assigned(self, timeout: float) -> bool:
        """True once the group has given this consumer its partitions."""
        self._assigned.wait(timeout)
        if self._failed is not None:
            raise RuntimeError(f"the Kafka processor failed: {self._failed}")
        return self._assigned.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _consumer(self) -> Any:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "group.id": self.group,
                "client.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "logger": log,
            }
        )
        consumer.subscribe([self.topic], on_assign=lambda c, parts: self._assigned.set())
        return consumer

    def _run(self) -> None:
        try:
            consumer = self._consumer()
        except BaseException as exc:
            self._failed = exc
            self._assigned.set()
            return
        try:
            while not self._stop.is_set():
                try:
                    self.poll_once(consumer)
                except Exception:
                    if self._stop.is_set():
                        return
                    log.exception("consuming %s failed; retrying", self.topic)
                    self._stop.wait(self.retry_seconds)
        finally:
            consumer.close()  # leaves the group now, not after its session times out

    def poll_once(self, consumer: Any) -> int:
        """Consume one batch, invoke the handler, commit on success; records handled."""
        from confluent_kafka import TopicPartition

        # The first record waits (up to half a second, so stop is heard); the rest of the
        # batch is only what has already arrived: consume() alone would wait out its timeout
        # to fill the batch, adding that much latency to every event.
        first_message = consumer.poll(0.5)
        if first_message is None:
            return 0
        messages = [first_message]
        if self.batch_size > 1:
            messages += consumer.consume(num_messages=self.batch_size - 1, timeout=0)
        good = []
        for m in messages:
            if m.error() is not None:
                log.warning("consumer error on %s: %s", self.topic, m.error())
            else:
                good.append(m)
        if not good:
            return 0
        context = LambdaContext("process_user_events_kafka", 128, max_runtime_ms=60_000)
        first: dict[tuple[str, int], int] = {}
        last: dict[tuple[str, int], int] = {}
        for m in good:
            key = (m.topic(), m.partition())
            first.setdefault(key, m.offset())
            last[key] = m.offset()
        try:
            self.handler(lambda_event(good, self.bootstrap_servers), context)
        except Exception:
            log.exception(
                "handler failed on %d record(s) %s; delivering them again",
                len(good),
                sorted(f"{t}-{p}@{o}" for (t, p), o in first.items()),
            )
            for (topic, partition), offset in first.items():
                consumer.seek(TopicPartition(topic, partition, offset))
            self._stop.wait(self.retry_seconds)
            return 0
        consumer.commit(
            offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
            asynchronous=False,
        )
        self.processed += len(good)
        return len(good)
