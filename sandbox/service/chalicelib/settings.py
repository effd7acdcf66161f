"""Configuration of the service, read from environment variables exactly as on AWS Lambda.

Owns: the names of tables, topic and queue, the endpoint override, which bus the events go
to (``EVENTS_BUS``: ``sns``, the default, or ``kafka`` with ``KAFKA_BOOTSTRAP_SERVERS``,
``KAFKA_TOPIC``, optional ``KAFKA_SECURITY_PROTOCOL``/``KAFKA_SASL_MECHANISM``/
``KAFKA_SASL_USERNAME``/``KAFKA_SASL_PASSWORD``, and ``SCHEMA_REGISTRY_URL`` with optional
``SCHEMA_REGISTRY_USER_INFO`` ``user:password``), and one cached set of thread-safe clients
built from them (boto3's, and a Kafka producer made on first use, so an SNS deployment never
needs ``confluent-kafka``). Must never hard-code a resource name that differs between stages,
and never hold credentials (boto3's normal chain provides them; Kafka's and the registry's
come from the environment).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_QUEUE_NAME = "sandbox-notifications-processor"
BUSES = ("sns", "kafka")
# Passed to the Kafka client as they are, for a cluster that needs TLS or SASL.
KAFKA_SECURITY_SETTINGS = {
    "KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "KAFKA_SASL_USERNAME": "sasl.username",
    "KAFKA_SASL_PASSWORD": "sasl.password",
}


@dataclass(frozen=True)
class Settings:
    environment_name: str
    users_table: str
    tokens_table: str
    notifications_table: str
    events_topic_arn: str
    endpoint_url: str | None
    region: str | None
    events_bus: str = "sns"
    kafka_bootstrap_servers: str = ""
    kafka_topic: str = ""
    schema_registry_url: str = ""

    @classmethod
    def from_environ(cls) -> Settings:
        env = os.environ
        bus = (env.get("EVENTS_BUS") or "sns").strip().lower()
        if bus not in BUSES:
            raise ValueError(f"EVENTS_BUS must be one of {', '.join(BUSES)}, not {bus!r}")
        return cls(
            environment_name=env.get("ENVIRONMENT_NAME", "unknown"),
            users_table=env["USERS_TABLE_NAME"],
            tokens_table=env["TOKEN_TABLE_NAME"],
            notifications_table=env["NOTIFICATIONS_TABLE_NAME"],
            events_topic_arn=env["EVENTS_TOPIC_ARN"] if bus == "sns" else "",
            endpoint_url=env.get("ENDPOINT_URL") or None,
            region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None,
            events_bus=bus,
            kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"] if bus == "kafka" else "",
            kafka_topic=env["KAFKA_TOPIC"] if bus == "kafka" else "",
            schema_registry_url=(env.get("SCHEMA_REGISTRY_URL") or "").rstrip("/"),
        )


def queue_name() -> str:
    """The queue the processor consumes; needed at import time by ``@app.on_sqs_message``."""
    return os.environ.get("NOTIFICATIONS_QUEUE_NAME", DEFAULT_QUEUE_NAME)


class _Clients:
    """Settings plus the boto3 clients for them, built once per process (thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # A few retries, short timeouts: a request that cannot reach storage should fail
        # fast with a 500, not hang until the Lambda timeout.
        config = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=10,
            max_pool_connections=32,
        )
        session = boto3.session.Session()
        kwargs: dict[str, Any] = {"config": config}
        if settings.endpoint_url:
            kwargs["endpoint_url"] = settings.endpoint_url
        if settings.region:
            kwargs["region_name"] = settings.region
        self.dynamodb: Any = session.client("dynamodb", **kwargs)
        self.sns: Any = session.client("sns", **kwargs)
        self._producer: Any = None
        self._producer_lock = threading.Lock()

    def kafka_producer(self) -> Any:
        """The process's Kafka producer (thread-safe), made on first use."""
        if self._producer is None:
            with self._producer_lock:
                if self._producer is None:
                    from confluent_kafka import Producer

                    config: dict[str, Any] = {
                        "bootstrap.servers": self.settings.kafka_bootstrap_servers,
                        "client.id": f"reference-service-{self.settings.environment_name}",
                        "acks": "all",
                        "enable.idempotence": True,
                        # Each publish waits for its acknowledgement: send at once, and fail
                        # within the request's time rather than the Lambda's.
                        "linger.ms": 0,
                        "message.timeout.ms": 10_000,
                        # The client's own log lines go where the service's do.
                        "logger": logging.getLogger("service.kafka"),
                    }
                    for variable, key in KAFKA_SECURITY_SETTINGS.items():
                        if os.environ.get(variable):
                            config[key] = os.environ[variable]
                    self._producer = Producer(config)
        return self._producer


_lock = threading.Lock()
_current: _Clients | None = None


def current() -> _Clients:
    """The process-wide settings and clients, created on first use."""
    global _current
    clients = _current
    if clients is None:
        with _lock:
            if _current is None:
                _current = _Clients(Settings.from_environ())
            clients = _current
    return clients


def reset() -> None:
    """Forget the cached settings and clients (tests change the environment between cases)."""
    global _current
    with _lock:
        _current = None
