"""Validation of request bodies: JSON objects with known, well-formed fields.

Owns: the size limit, the field rules (email, name, password) and the error that names the
offending field. Must never touch storage and never echo a password back in a message.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_BODY_BYTES = 16 * 1024
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_NAME = 200
MAX_EMAIL = 254
# Deliberately simple: one "@", no whitespace, a dot in the domain. Deliverability is not
# something a regular expression can decide.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ValidationError(Exception):
    """A 400: ``message`` says what is wrong, ``field`` names the field (or ``body``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_object(raw: bytes | None) -> dict[str, Any]:
    """The body as a JSON object, or ValidationError(field="body")."""
    if raw is None or raw == b"":
        raise ValidationError("body", "Request body must be a JSON object")
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationError("body", f"Request body exceeds {MAX_BODY_BYTES} bytes")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("body", "Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValidationError("body", "Request body must be a JSON object")
    return value


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    for key in sorted(body):
        if key not in allowed:
            raise ValidationError(key, f"Unknown field: {key}")


def _string(body: dict[str, Any], field: str) -> str:
    if field not in body or body[field] is None:
        raise ValidationError(field, f"Missing field: {field}")
    value = body[field]
    if not isinstance(value, str):
        raise ValidationError(field, f"Field {field} must be a string")
    return value


def email(body: dict[str, Any]) -> str:
    """The email, stripped and lower-cased."""
    value = _string(body, "email").strip().lower()
    if len(value) > MAX_EMAIL or not _EMAIL.match(value):
        raise ValidationError("email", "Field email is not a valid email address")
    return value


def name(body: dict[str, Any]) -> str:
    value = _string(body, "name").strip()
    if not value:
        raise ValidationError("name", "Field name must not be empty")
    if len(value) > MAX_NAME:
        raise ValidationError("name", f"Field name must be at most {MAX_NAME} characters")
    return value


def password(body: dict[str, Any]) -> str:
    value = _string(body, "password")
    if len(value) < MIN_PASSWORD:
        raise ValidationError(
            "password", f"Field password must be at least {MIN_PASSWORD} characters"
        )
    if len(value) > MAX_PASSWORD:
        raise ValidationError(
            "password", f"Field password must be at most {MAX_PASSWORD} characters"
        )
    return value


def signup(raw: bytes | None) -> tuple[str, str, str]:
    body = parse_object(raw)
    reject_unknown(body, {"email", "name", "password"})
    return email(body), name(body), password(body)


def login(raw: bytes | None) -> tuple[str, str]:
    body = parse_object(raw)
    reject_unknown(body, {"email", "password"})
    # At login, the password's length rule is not checked: any wrong password is simply a
    # wrong password (401), and the rule could change after the account was made.
    return email(body), _string(body, "password")


def patch(raw: bytes | None) -> dict[str, str]:
    """The fields to change: ``name`` and/or ``password``; ``email`` cannot be changed."""
    body = parse_object(raw)
    if "email" in body:
        raise ValidationError("email", "Field email cannot be changed")
    reject_unknown(body, {"name", "password"})
    if not body:
        raise ValidationError("body", "Nothing to update: give name and/or password")
    changes: dict[str, str] = {}
    if "name" in body:
        changes["name"] = name(body)
    if "password" in body:
        changes["password"] = password(body)
    return changes
