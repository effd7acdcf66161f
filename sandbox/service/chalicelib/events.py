"""User events: their envelope, their JSON Schema contracts, and publishing them to the bus.

Owns: the event envelope (``type``, ``version``, ``id``, ``occurred_at``, ``data``), finding
and loading the contracts (``contracts/<type>/v<version>.json``, JSON Schema 2020-12) and
validating every event against them before it is published or processed, and the two buses:
SNS (message attribute ``type``) or Kafka (key = the uid as a string, headers ``type`` and
``version``; on both, the ``traceparent`` of the request that published it; the value
is the envelope's JSON, in the Confluent wire format, magic byte 0 and
the 4-byte big-endian schema id before it, when a schema registry is configured: the id is
the registry's for this very contract under the subject ``<type>-value``). Must never
publish an event that does not validate, and never put a password or hash in an event.

Where the contracts are: ``$CONTRACTS_DIR`` if set; else ``chalicelib/contracts`` (a copy
made for ``chalice deploy``: Chalice's packager does not follow directory symlinks in
``chalicelib/``); else ``<repo>/contracts``, found relative to this file.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import struct
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator

from chalicelib import logs, settings

USER_CREATED = "user.created"
USER_DELETED = "user.deleted"
VERSION = 1


WIRE_MAGIC = 0
WIRE_HEADER = struct.Struct(">bI")


class InvalidEvent(Exception):
    """An event does not match its contract (or has no contract)."""


class PublishError(Exception):
    """The bus or the schema registry did not take the event."""


def contracts_dir() -> Path:
    configured = os.environ.get("CONTRACTS_DIR")
    if configured:
        return Path(configured)
    here = Path(__file__).resolve().parent
    return here / "contracts"


@functools.cache
def _validator(directory: str, event_type: str, version: int) -> Draft202012Validator:
    path = Path(directory) / event_type / f"v{version}.json"
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidEvent(f"no contract for {event_type} v{version} at {path}") from None
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate(event: Any) -> dict[str, Any]:
    """The event if it matches its contract, else InvalidEvent naming the first problem."""
    if not isinstance(event, dict):
        raise InvalidEvent("event is not a JSON object")
    event_type, version = event.get("type"), event.get("version")
    if not isinstance(event_type, str) or not isinstance(version, int):
        raise InvalidEvent("event has no string 'type' and integer 'version'")
    if "/" in event_type or event_type.startswith("."):
        raise InvalidEvent(f"bad event type {event_type!r}")
    validator = _validator(str(contracts_dir()), event_type, version)
    error = next(iter(sorted(validator.iter_errors(event), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise InvalidEvent(f"{event_type} v{version} invalid at {where}: {error.message}")
    return event


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": event_type,
        "version": VERSION,
        "id": str(uuid.uuid4()),
        "occurred_at": now_iso(),
        "data": data,
    }


def publish(event: dict[str, Any]) -> str:
    """Validate and publish to the configured bus; the SNS message id, or Kafka's
    ``topic/partition/offset``."""
    validate(event)
    clients = settings.current()
    body = json.dumps(event, separators=(",", ":"))
    if clients.settings.events_bus == "kafka":
        return _publish_kafka(clients, event, body.encode())
    attributes = {"type": {"DataType": "String", "StringValue": event["type"]}}
    traceparent = logs.outgoing_traceparent()  # the request's trace, for the consumer's lines
    if traceparent:
        attributes["traceparent"] = {"DataType": "String", "StringValue": traceparent}
    out = clients.sns.publish(
        TopicArn=clients.settings.events_topic_arn, Message=body, MessageAttributes=attributes
    )
    return str(out["MessageId"])


def _publish_kafka(clients: Any, event: dict[str, Any], body: bytes) -> str:
    config = clients.settings
    value = body
    if config.schema_registry_url:
        schema_id = registry_schema_id(config.schema_registry_url, event["type"], event["version"])
        value = WIRE_HEADER.pack(WIRE_MAGIC, schema_id) + body
    producer = clients.kafka_producer()
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def delivered(error: Any, message: Any) -> None:
        outcome["error"], outcome["message"] = error, message
        done.set()

    headers = [("type", event["type"].encode()), ("version", str(event["version"]).encode())]
    traceparent = logs.outgoing_traceparent()  # the request's trace, for the consumer's lines
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    producer.produce(
        config.kafka_topic,
        key=str(event["data"]["uid"]).encode(),
        value=value,
        headers=headers,
        on_delivery=delivered,
    )
    # Delivery callbacks run inside poll/flush, in whichever thread calls them: wait for ours.
    while not done.is_set():
        producer.flush(1.0)
    if outcome["error"] is not None:
        raise PublishError(f"Kafka did not take {event['type']}: {outcome['error']}")
    message = outcome["message"]
    return f"{message.topic()}/{message.partition()}/{message.offset()}"


@functools.cache
def registry_schema_id(registry_url: str, event_type: str, version: int) -> int:
    """The registry's id of this contract under ``<type>-value`` (looked up, never registered)."""
    schema = (contracts_dir() / event_type / f"v{version}.json").read_text(encoding="utf-8")
    subject = f"{event_type}-value"
    request = urllib.request.Request(
        f"{registry_url}/subjects/{quote(subject, safe='')}",
        data=json.dumps({"schemaType": "JSON", "schema": schema}).encode(),
        method="POST",
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    user_info = os.environ.get("SCHEMA_REGISTRY_USER_INFO")
    if user_info:
        token = base64.b64encode(user_info.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(json.loads(response.read())["id"])
    except urllib.error.HTTPError as exc:
        raise PublishError(
            f"schema registry has no {subject} matching contract v{version} ({exc.code})"
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise PublishError(f"schema registry lookup of {subject} failed: {exc}") from None


def decode_value(value: bytes) -> str:
    """A Kafka value as JSON text: the Confluent wire format's 5-byte header removed if there.

    A JSON object starts with ``{``, never with the magic byte 0, so both forms are told apart
    by the first byte.
    """
    if len(value) >= WIRE_HEADER.size and value[0] == WIRE_MAGIC:
        value = value[WIRE_HEADER.size :]
    return value.decode("utf-8", errors="replace")


def kafka_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a Lambda Kafka event (MSK or self-managed), partition by partition."""
    records: list[dict[str, Any]] = []
    for batch in (event.get("records") or {}).values():
        records.extend(batch)
    return records


def kafka_record_body(record: dict[str, Any]) -> str:
    """The JSON text of one record of a Lambda Kafka event (its value is base64)."""
    return decode_value(base64.b64decode(record.get("value") or ""))
