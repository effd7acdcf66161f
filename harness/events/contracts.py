"""Event contracts: which JSON Schema an event must satisfy, and checking that it does.

Owns looking up the schema of an event type and version — from the contract files shared
with the service (``contracts/<type>/v<version>.json``) or, when the profile names one, from a
Confluent-compatible Schema Registry — and validating an event against it (jsonschema), so a
violation names the event and the JSON path of the offending field (``$.data.uid``).

Registry convention: the subject of an event type is ``<type>-value`` (Confluent's
TopicNameStrategy for the value), and the registry's subject version *is* the event's
``version`` field: ``GET /subjects/<type>-value/versions/latest`` first, and
``…/versions/<version>`` when the latest is another version. It only reads: it never
registers a schema, and never talks to the environment's stores.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

SchemaSource = Callable[[str, int], dict[str, Any]]


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


def registry_source(url: str, timeout: float = 5.0) -> SchemaSource:
    base = url.rstrip("/")

    def fetch(subject: str, version: str) -> dict[str, Any] | None:
        where = f"{base}/subjects/{quote(subject, safe='')}/versions/{version}"
        try:
            response = requests.get(where, timeout=timeout)
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

    def __init__(self, source: SchemaSource, origin: str) -> None:
        self._source = source
        self.origin = origin
        self._validators: dict[tuple[str, int], Draft202012Validator] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_directory(cls, directory: Path | None = None) -> Contracts:
        directory = directory or default_contracts_dir()
        return cls(directory_source(directory), str(directory))

    @classmethod
    def from_registry(cls, url: str) -> Contracts:
        return cls(registry_source(url), url)

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

    def validate(self, event: Any) -> Mapping[str, Any]:
        """The event if it satisfies the contract its ``type`` and ``version`` declare;
        otherwise :class:`ContractViolation` naming the first offending field's JSON path."""
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
        validator = self.validator(event_type, version)
        errors = sorted(validator.iter_errors(event), key=lambda e: list(map(str, e.path)))
        if errors:
            first = errors[0]
            path = json_path(first.absolute_path)
            more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
            raise ContractViolation(
                f"{event_type} v{version} event {event.get('id', '?')} violates its contract "
                f"at {path}: {first.message}{more}",
                path,
            )
        return event
