"""Redaction: secrets never reach a transcript, report, log line or failure message.

Owns the list of sensitive field names and the set of secret values seen during a run
(tokens, passwords). Everything that renders run data for humans or files passes it through
here first. It never decides what is secret from the value's shape alone.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from typing import Any

MASK = "«redacted»"
_MIN_LEARNED = 8
SENSITIVE_KEYS = frozenset(
    {"token", "password", "passwordhash", "authorization", "secret", "x-api-key", "cookie"}
)


_SENSITIVE_NORMALISED = frozenset(k.replace("-", "") for k in SENSITIVE_KEYS)


@functools.lru_cache(maxsize=1024)
def _is_sensitive_key(key: str) -> bool:
    """``Pass_Word`` and ``x-api-key`` count: case, ``_`` and ``-`` are ignored. Cached: a
    run sees the same few dozen JSON keys on every request."""
    return key.replace("_", "").replace("-", "").lower() in _SENSITIVE_NORMALISED


class Redactor:
    """Masks sensitive keys and every registered secret value; safe across threads.

    Secret values are kept in a set, indexed by their distinct lengths (a run's secrets come
    in a few lengths: tokens, passwords), so registering one costs O(1) and masking a string
    costs O(len(text) x distinct lengths) whatever the number of secrets. (One alternation
    regex recompiled on every registration cost O(secrets) per call: 300 secrets — one
    worker's 150 users — took 4.7 s, 1,000 took 40 s; see docs/performance.md.)
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lengths: tuple[int, ...] = ()  # distinct secret lengths, longest first
        self._lock = threading.Lock()

    def add_secret(self, value: str | None) -> None:
        if not value or len(value) < 4:
            return
        with self._lock:
            if value not in self._secrets:
                # The length first: a reader that sees the secret always sees its length.
                if len(value) not in self._lengths:
                    self._lengths = tuple(sorted({*self._lengths, len(value)}, reverse=True))
                self._secrets.add(value)

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
        """``value`` with every registered secret replaced by the mask; at each position the
        longest secret wins, left to right (the semantics of a longest-first alternation)."""
        secrets = self._secrets
        if not secrets or not value:  # pragma: no mutate (equivalent: both return it below)
            return value
        if value in secrets:
            return MASK
        # pragma: no mutate start (equivalent: a whole-text match was done above)
        lengths = [n for n in self._lengths if n <= len(value)]
        # pragma: no mutate end
        if not lengths:
            return value
        out: list[str] = []
        start = i = 0
        # pragma: no mutate start (equivalent: slices past the end are too short)
        end = len(value) - lengths[-1]
        # pragma: no mutate end
        while i <= end:
            for n in lengths:
                if value[i : i + n] in secrets:
                    out.append(value[start:i])
                    out.append(MASK)
                    i += n
                    start = i
                    break
            else:
                i += 1
        if not out:
            return value
        out.append(value[start:])
        return "".join(out)

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
