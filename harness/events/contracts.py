"""Event contracts: which JSON Schema an event must satisfy, and checking that it does.

Owns looking up the schema of an event type and version — from the contract files shared
with the service (``contracts/<type>/v<version>.json``) or, when the profile names one, from a
Confluent-compatible Schema Registry — and validating an event against it (jsonschema), so a
violation names the event and the JSON path of the offending field (``$.data.uid``).

Events on Kafka may carry the Confluent wire format (magic byte 0, the 4-byte big-endian schema
id, then the JSON): :func:`decode_wire` splits it, and such an event is validated against the
schema of that id (``GET /schemas/ids/<id>``, cached), not the one its type names. The
registry's credentials come from ``$HARNESS_SCHEMA_REGISTRY_USER`` / ``_PASSWORD`` only.

Registry convention: the subject of an event type is ``<type>-value`` (Confluent's
TopicNameStrategy for the value), and the registry's subject version *is* the event's
``version`` field: ``GET /subjects/<type>-value/versions/latest`` first, and
``…/versions/<version>`` when the latest is another version. It only reads: it never
registers a schema, and never talks to the environment's stores.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

SchemaSource = Callable[[str, int], dict[str, Any]]

WIRE_MAGIC = 0
WIRE_HEADER = struct.Struct(">bI")


def decode_wire(value: bytes) -> tuple[int | None, bytes]:
    """``(schema id, JSON bytes)`` of a Confluent wire-format value; ``(None, value)`` for
    plain JSON (an object starts with ``{``, never with the magic byte 0)."""
    if len(value) >= WIRE_HEADER.size and value[0] == WIRE_MAGIC:
        _, schema_id = WIRE_HEADER.unpack_from(value)
        return schema_id, value[WIRE_HEADER.size :]
    return None, value


def encode_wire(schema_id: int, body: bytes) -> bytes:
    return WIRE_HEADER.pack(WIRE_MAGIC, schema_id) + body


def registry_auth(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """Basic-auth credentials for the registry, from the environment only."""
    environ = os.environ if environ is None else environ
    user = environ.get("HARNESS_SCHEMA_REGISTRY_USER", "")
    if not user:
        return None
    return user, environ.get("HARNESS_SCHEMA_REGISTRY_PASSWORD", "")


if TYPE_CHECKING:
    from jsonschema import Draft202012Validator


class ContractError(AssertionError):
    """No usable contract for an event (unknown type or version, registry unreachable)."""


class ContractViolation(AssertionError):
    """An event does not satisfy its declared contract; the message names the field's path."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.path = path


def default_contracts_dir() -> Path:
    """``$HARNESS_CONTRACTS_DIR`` (the profile's ``contracts_dir``), else ``./contracts``."""
    configured = os.environ.get("HARNESS_CONTRACTS_DIR")
    if configured:
        return Path(configured)
    return Path("contracts")


def _checked_type(event_type: str) -> str:
    if not event_type or "/" in event_type or event_type.startswith(".") or "\\" in event_type:
        raise ContractError(f"bad event type {event_type!r}")
    return event_type


def directory_source(directory: Path) -> SchemaSource:
    def load(event_type: str, version: int) -> dict[str, Any]:
        path = directory / _checked_type(event_type) / f"v{version}.json"
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ContractError(f"no contract for {event_type} v{version} at {path}") from None

    return load


def registry_subject(event_type: str) -> str:
    return f"{_checked_type(event_type)}-value"


def registry_get(url: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """The JSON object at ``url`` of the registry; None on 404; ContractError otherwise."""
    try:
        response = requests.get(url, timeout=timeout, auth=registry_auth())
    except requests.RequestException as error:
        raise ContractError(f"schema registry {url} unreachable: {error}") from None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise ContractError(f"schema registry {url} answered {response.status_code}")
    try:
        return dict(response.json())
    except ValueError:
        raise ContractError(f"schema registry {url} did not answer JSON") from None


def registry_version(url: str, event_type: str, version: int) -> dict[str, Any] | None:
    """The registry's entry (``id``, ``version``, ``schema``) of ``<type>-value`` version N."""
    subject = quote(registry_subject(event_type), safe="")
    return registry_get(f"{url.rstrip('/')}/subjects/{subject}/versions/{version}")


def registry_source(url: str, timeout: float = 5.0) -> SchemaSource:
    base = url.rstrip("/")

    def fetch(subject: str, version: str) -> dict[str, Any] | None:
        where = f"{base}/subjects/{quote(subject, safe='')}/versions/{version}"
        try:
            response = requests.get(where, timeout=timeout, auth=registry_auth())
        except requests.RequestException as error:
            raise ContractError(f"schema registry {where} unreachable: {error}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ContractError(f"schema registry {where} answered {response.status_code}")
        try:
            return dict(response.json())
        except ValueError:
            raise ContractError(f"schema registry {where} did not answer JSON") from None

    def load(event_type: str, version: int) -> dict[str, Any]:
        subject = registry_subject(event_type)
        entry = fetch(subject, "latest")
        if entry is not None and entry.get("version") != version:
            entry = fetch(subject, str(version))
        if entry is None:
            raise ContractError(f"schema registry {base} has no {subject} version {version}")
        try:
            return dict(json.loads(entry["schema"]))
        except (KeyError, TypeError, ValueError):
            raise ContractError(f"registry entry {subject} v{version} has no JSON schema") from None

    return load


def json_path(parts: Any) -> str:
    """``deque(['data', 'uid'])`` → ``$.data.uid``; list indexes as ``[0]``."""
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


class Contracts:
    """Schema lookup (cached per type and version) and validation of events."""

    def __init__(self, source: SchemaSource, origin: str, registry_url: str = "") -> None:
        self._source = source
        self.origin = origin
        self.registry_url = registry_url.rstrip("/")
        self._validators: dict[tuple[str, int], Draft202012Validator] = {}
        self._by_id: dict[int, Draft202012Validator] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_directory(cls, directory: Path | None = None) -> Contracts:
        directory = directory or default_contracts_dir()
        return cls(directory_source(directory), str(directory))

    @classmethod
    def from_registry(cls, url: str) -> Contracts:
        return cls(registry_source(url), url, registry_url=url)

    @classmethod
    def for_registry_or_directory(cls, registry_url: str = "", directory: str = "") -> Contracts:
        """The registry when the profile names one, else the contract files (``directory``,
        else ``$HARNESS_CONTRACTS_DIR``, else ``./contracts``)."""
        if registry_url:
            return cls.from_registry(registry_url)
        return cls.from_directory(Path(directory) if directory else None)

    def validator(self, event_type: str, version: int) -> Draft202012Validator:
        # jsonschema is imported on first use (~60 ms that every xdist worker would pay)
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        key = (event_type, version)
        with self._lock:
            cached = self._validators.get(key)
        if cached is not None:
            return cached
        schema = self._source(event_type, version)
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise ContractError(
                f"the contract of {event_type} v{version} ({self.origin}) is not a valid "
                f"JSON Schema: {error.message}"
            ) from None
        validator = Draft202012Validator(schema)
        with self._lock:
            self._validators[key] = validator
        return validator

    def _checked(self, schema: Any, what: str) -> Draft202012Validator:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise ContractError(f"{what} is not a valid JSON Schema: {error.message}") from None
        return Draft202012Validator(schema)

    def validator_by_id(self, schema_id: int) -> Draft202012Validator:
        """The registry's schema ``schema_id`` (a wire-format event's), fetched once."""
        with self._lock:
            cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        if not self.registry_url:
            raise ContractError(
                f"the event carries schema id {schema_id} (Confluent wire format) but the "
                f"profile names no schema_registry_url to resolve it; set it or "
                f"HARNESS_SCHEMA_REGISTRY_URL"
            )
        entry = registry_get(f"{self.registry_url}/schemas/ids/{schema_id}")
        if entry is None:
            raise ContractError(f"schema registry {self.registry_url} has no schema id {schema_id}")
        try:
            schema = json.loads(entry["schema"])
        except (KeyError, TypeError, ValueError):
            raise ContractError(f"registry schema id {schema_id} is not a JSON schema") from None
        validator = self._checked(schema, f"registry schema id {schema_id}")
        with self._lock:
            self._by_id[schema_id] = validator
        return validator

    def validate(self, event: Any, schema_id: int | None = None) -> Mapping[str, Any]:
        """The event if it satisfies the contract its ``type`` and ``version`` declare (or,
        for a wire-format event, the registry's schema ``schema_id``); otherwise
        :class:`ContractViolation` naming the first offending field's JSON path."""
        if schema_id is not None:
            return self._report(event, self.validator_by_id(schema_id), f"schema id {schema_id}")
        if not isinstance(event, dict):
            raise ContractViolation(f"event is not a JSON object: {event!r:.200}")
        event_type, version = event.get("type"), event.get("version")
        if (
            not isinstance(event_type, str)
            or isinstance(version, bool)
            or not isinstance(version, int)
        ):
            raise ContractViolation(
                f"event declares no string 'type' and integer 'version' "
                f"(type={event_type!r}, version={version!r})"
            )
        return self._report(event, self.validator(event_type, version), f"v{version}")

    @staticmethod
    def _report(event: Any, validator: Draft202012Validator, which: str) -> Mapping[str, Any]:
        errors = sorted(validator.iter_errors(event), key=lambda e: list(map(str, e.path)))
        if errors:
            first = errors[0]
            path = json_path(first.absolute_path)
            more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
            described = event if isinstance(event, dict) else {}
            raise ContractViolation(
                f"{described.get('type', '?')} {which} event {described.get('id', '?')} "
                f"violates its contract at {path}: {first.message}{more}",
                path,
            )
        if not isinstance(event, dict):
            raise ContractViolation(f"event is not a JSON object: {event!r:.200}")
        return event
