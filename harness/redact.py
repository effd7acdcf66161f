"""Redaction: secrets never reach a transcript, report, log line or failure message.

Owns the list of sensitive field names and the set of secret values seen during a run
(tokens, passwords). Everything that renders run data for humans or files passes it through
here first. It never decides what is secret from the value's shape alone.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "«redacted»"
_MIN_LEARNED = 8
SENSITIVE_KEYS = frozenset(
    {"token", "password", "passwordhash", "authorization", "secret", "x-api-key", "cookie"}
)


def _is_sensitive_key(key: str) -> bool:
    return key.replace("_", "").replace("-", "").lower() in {
        k.replace("-", "") for k in SENSITIVE_KEYS
    }


class Redactor:
    """Masks sensitive keys and every registered secret value; safe across threads."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add_secret(self, value: str | None) -> None:
        if not value or len(value) < 4:
            return
        with self._lock:
            if value not in self._secrets:
                self._secrets.add(value)
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def learn(self, value: Any) -> None:
        """Register the string values of sensitive keys found in JSON-like data as secrets,
        so a token the service hands out is masked wherever it turns up later (an assertion
        message, captured output) — not only under its key."""
        if isinstance(value, Mapping):
            for k, v in value.items():
                if isinstance(k, str) and _is_sensitive_key(k) and isinstance(v, str):
                    if len(v) >= _MIN_LEARNED:  # "test" as a password must not mask test ids
                        self.add_secret(v)
                else:
                    self.learn(v)
        elif isinstance(value, list | tuple):
            for v in value:
                self.learn(v)

    def text(self, value: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, value) if pattern else value

    def data(self, value: Any) -> Any:
        """A deep copy of JSON-like data with sensitive keys and secret values masked."""
        if isinstance(value, Mapping):
            return {
                k: (MASK if isinstance(k, str) and _is_sensitive_key(k) else self.data(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {k: (MASK if _is_sensitive_key(k) else self.text(v)) for k, v in headers.items()}
