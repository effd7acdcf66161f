"""User events: their envelope, their JSON Schema contracts, and publishing them to SNS.

Owns: the event envelope (``type``, ``version``, ``id``, ``occurred_at``, ``data``), finding
and loading the contracts (``contracts/<type>/v<version>.json``, JSON Schema 2020-12) and
validating every event against them before it is published or processed. Must never
publish an event that does not validate, and never put a password or hash in an event.

Where the contracts are: ``$CONTRACTS_DIR`` if set; else ``chalicelib/contracts`` (a copy
made for ``chalice deploy``: Chalice's packager does not follow directory symlinks in
``chalicelib/``); else ``<repo>/contracts``, found relative to this file.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from chalicelib import settings

USER_CREATED = "user.created"
USER_DELETED = "user.deleted"
VERSION = 1


class InvalidEvent(Exception):
    """An event does not match its contract (or has no contract)."""


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
    """Validate and publish to the events topic; the SNS message id."""
    validate(event)
    clients = settings.current()
    out = clients.sns.publish(
        TopicArn=clients.settings.events_topic_arn,
        Message=json.dumps(event, separators=(",", ":")),
        MessageAttributes={"type": {"DataType": "String", "StringValue": event["type"]}},
    )
    return str(out["MessageId"])
