"""Configuration of the service, read from environment variables exactly as on AWS Lambda.

Owns: the names of tables, topic and queue, the endpoint override, and one cached set of
thread-safe low-level boto3 clients built from them. Must never hard-code a resource name
that differs between stages, and never hold credentials (boto3's normal chain provides them).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_QUEUE_NAME = "sandbox-notifications-processor"


@dataclass(frozen=True)
class Settings:
    environment_name: str
    users_table: str
    tokens_table: str
    notifications_table: str
    events_topic_arn: str
    endpoint_url: str | None
    region: str | None

    @classmethod
    def from_environ(cls) -> Settings:
        env = os.environ
        return cls(
            environment_name=env.get("ENVIRONMENT_NAME", "unknown"),
            users_table=env["USERS_TABLE_NAME"],
            tokens_table=env["TOKEN_TABLE_NAME"],
            notifications_table=env["NOTIFICATIONS_TABLE_NAME"],
            events_topic_arn=env["EVENTS_TOPIC_ARN"],
            endpoint_url=env.get("ENDPOINT_URL") or None,
            region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None,
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
