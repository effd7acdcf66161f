"""Redaction: secrets never reach a transcript, report, log line or failure message.

Owns the list of sensitive field names and the set of secret values seen during a run
(tokens, passwords), and how much of a long text a report shows (cut before it is masked,
never through a secret). Everything that renders run data for humans or files passes it
through here first. It never decides what is secret from the value's shape alone.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

MASK = "«redacted»"
_MIN_LEARNED = 8
#: The most characters of one message, body or line a report shows; the rest is cut, and a
#: marker says how much (:meth:`Redactor.shown`, :func:`shorten`).
SHOWN = 2_000
#: The most characters of a whole text a report shows: a failure's lines together, a
#: captured section.
SHOWN_TEXT = 50_000
_EARLIER_CUT = re.compile(r"… \[(\d+) characters cut\]\Z")
#: A key is sensitive when, ignoring case, ``_`` and ``-``, it contains one of these words
#: (``access_token``, ``X-Api-Key``, ``newPassword``, ``Set-Cookie``, ``client_secret`` …).
SENSITIVE_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "apikey",
    "cookie",
    "session",
    "credential",
    "privatekey",
)
_SCHEMES = r"(?:Bearer|Basic|Token|Digest)\s+"
_FORM = re.compile(r"^[^=&\s]+=[^&\s]*(?:&[^=&\s]+=[^&\s]*)*$")


def cut_marker(count: int) -> str:
    """What ends a text that was cut: how many of its characters are not shown."""
    return f"… [{count} characters cut]"


def shorten(text: str, limit: int) -> str:
    """Already masked ``text`` in at most ``limit`` characters: its head and
    :func:`cut_marker`, whose count includes what an earlier cut of it left out."""
    if len(text) <= limit:
        return text
    earlier = _EARLIER_CUT.search(text)
    before = int(earlier[1]) if earlier else 0
    body = text[: earlier.start()] if earlier else text
    room = max(limit - len(cut_marker(len(body) + before)), 0)
    return body[:room] + cut_marker(len(body) - room + before)


def _normalise(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _word_pattern(word: str) -> str:
    """``apikey`` → a pattern that also matches ``api_key``, ``API-Key``."""
    return "[_-]?".join(re.escape(c) for c in word)


class Redactor:
    """Masks sensitive keys and every registered secret value; safe across threads.

    By key: in JSON-like data (any depth), urlencoded query strings and form bodies, header
    mappings, and in free text wherever a sensitive key is followed by its value — ``'password':
    'x'`` (a dict's repr, JSON), ``token=x`` (a query string, a log line, a cookie),
    ``Authorization: Bearer x`` (a header line). By value: every registered secret, wherever
    it turns up (an assertion message, captured output).

    Secret values are kept in a set, indexed by their distinct lengths (a run's secrets come
    in a few lengths: tokens, passwords), so registering one costs O(1) and masking a string
    costs O(len(text) x distinct lengths) whatever the number of secrets. (One alternation
    regex recompiled on every registration cost O(secrets) per call: 300 secrets — one
    worker's 150 users — took 4.7 s, 1,000 took 40 s; see docs/performance.md.)
    """

    def __init__(self, sensitive_keys: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._lengths: tuple[int, ...] = ()  # distinct secret lengths, longest first
        self._lock = threading.Lock()
        extra = [_normalise(k) for k in sensitive_keys if _normalise(k)]
        self._words = tuple(dict.fromkeys([*SENSITIVE_WORDS, *extra]))
        self._key_cache: dict[str, bool] = {}
        # The order of the words is free: a key runs to the end of its name whichever matched.
        words = "|".join(_word_pattern(w) for w in self._words)
        key = rf"(?<![\w-])[\w-]*?(?:{words})[\w-]*"
        self._any_word = re.compile(words, re.IGNORECASE)
        # 'password': 'x' / "token":"x" / secret = "x" (also JSON escaped inside a string)
        self._quoted = re.compile(
            rf"(?P<key>{key})(?P<kq>\\?[\"']?)(?P<sep>\s*[:=]\s*)"
            rf"(?P<q>\\?[\"'])(?P<value>.*?)(?P=q)",
            re.IGNORECASE,
        )
        # token=x (query strings, form bodies, cookies, log lines, keyword arguments)
        self._pair = re.compile(
            rf"(?P<key>{key})=(?P<value>(?:{_SCHEMES})?[^\s&;,'\"<>()\[\]{{}}]+)",
            re.IGNORECASE,
        )
        # Authorization: Bearer x (a header line)
        self._header_line = re.compile(
            rf"^(?P<key>[ \t]*{key}):[ \t]+(?P<value>\S.*)$", re.IGNORECASE | re.MULTILINE
        )
        # 'password': 'x… — a quoted value that a cut left open, to the end of the text
        self._open_quoted = re.compile(
            rf"(?P<key>{key})(?P<kq>\\?[\"']?)(?P<sep>\s*[:=]\s*)"
            rf"(?P<q>\\?[\"'])(?:(?!(?P=q)).)*\Z",
            re.IGNORECASE,
        )

    def is_sensitive(self, key: str) -> bool:
        """``Pass_Word``, ``x-api-key``, ``access_token`` count: case, ``_`` and ``-`` are
        ignored, and a key that contains a sensitive word is sensitive. Cached: a run sees
        the same few dozen keys on every request."""
        known = self._key_cache.get(key)
        if known is None:
            normal = _normalise(key)
            known = any(word in normal for word in self._words)
            if len(self._key_cache) < 4096:
                self._key_cache[key] = known
        return known

    def add_secret(self, value: str | None) -> None:
        if not value or len(value) < 4:
            return
        with self._lock:
            if value not in self._secrets:
                # The length first: a reader that sees the secret always sees its length.
                if len(value) not in self._lengths:
                    self._lengths = tuple(sorted({*self._lengths, len(value)}, reverse=True))
                self._secrets.add(value)

    def _learn_value(self, value: str) -> None:
        if len(value) >= _MIN_LEARNED:  # "test" as a password must not mask test ids
            self.add_secret(value)
        scheme = re.match(_SCHEMES + r"(\S+)$", value)
        if scheme and len(scheme[1]) >= _MIN_LEARNED:
            self.add_secret(scheme[1])

    def learn(self, value: Any) -> None:
        """Register the string values of sensitive keys found in JSON-like data as secrets,
        so a token the service hands out is masked wherever it turns up later (an assertion
        message, captured output) — not only under its key."""
        if isinstance(value, dict | Mapping):  # dict first: the ABC check is slow
            for k, v in value.items():
                if isinstance(k, str) and self.is_sensitive(k) and isinstance(v, str):
                    self._learn_value(v)
                else:
                    self.learn(v)
        elif isinstance(value, list | tuple):
            for v in value:
                self.learn(v)
        elif isinstance(value, str) and "=" in value:
            for k, v in self._pairs(value):
                if self.is_sensitive(k):
                    self._learn_value(v)

    def learn_headers(self, headers: Mapping[str, str]) -> None:
        """Register the values of sensitive headers, and each value inside a cookie."""
        # requests' CaseInsensitiveDict walks its pairs several times faster by lower_items()
        # (no per-key lookup); the names' case does not matter here
        # pragma: no mutate start (equivalent: the same pairs either way, only slower)
        lower_items = getattr(headers, "lower_items", None)
        pairs = lower_items() if callable(lower_items) else headers.items()
        # pragma: no mutate end
        for k, v in pairs:
            if not isinstance(v, str) or not self.is_sensitive(k):
                continue
            self._learn_value(v)
            if "cookie" in k.lower():
                for part in v.split(";"):
                    name, eq, cookie = part.strip().partition("=")
                    if eq and name.lower() not in ("path", "domain", "expires", "max-age"):
                        self._learn_value(cookie)

    def _pairs(self, text: str) -> list[tuple[str, str]]:
        query = text.partition("?")[2] if "?" in text else text
        query = query.partition("#")[0]
        if not _FORM.match(query):
            return []
        return parse_qsl(query)  # blank values are not secrets: no need to keep them

    def _by_value(self, value: str) -> str:
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

    def _by_key(self, value: str) -> str:
        if not self._any_word.search(value):
            return value
        value = self._quoted.sub(
            lambda m: f"{m['key']}{m['kq']}{m['sep']}{m['q']}{MASK}{m['q']}", value
        )
        value = self._pair.sub(lambda m: f"{m['key']}={MASK}", value)
        return self._header_line.sub(lambda m: f"{m['key']}: {MASK}", value)

    def text(self, value: str) -> str:
        """``value`` with every registered secret replaced by the mask (at each position the
        longest secret wins, left to right: the semantics of a longest-first alternation),
        and every value that follows a sensitive key masked."""
        if not value:
            return value
        return self._by_key(self._by_value(value))

    def _clear_cut(self, value: str, end: int) -> int:
        """``end``, moved back to the start of every registered secret it would split."""
        lengths = self._lengths
        if not lengths:
            return end
        longest = lengths[0]
        i = max(end - longest, 0)
        while i < end:
            if any(i + n > end and value[i : i + n] in self._secrets for n in lengths):
                end = i
                i = max(end - longest, 0)
            else:
                i += 1
        return end

    def shown(self, value: str, limit: int) -> str:
        """``value`` masked as :meth:`form` masks it, in at most ``limit`` characters. A longer
        one is cut *before* it is masked — a 10 MB body costs what its head costs — and ends
        with :func:`cut_marker`. The cut never splits a registered secret (it moves back to
        the secret's start), and a quoted value of a sensitive key that it leaves open is
        masked to the end."""
        if len(value) <= limit:
            return self.form(value)
        room = max(limit - len(cut_marker(len(value))), 0)
        end = room
        while True:
            end = self._clear_cut(value, end)
            head = self._open_quoted.sub(
                lambda m: f"{m['key']}{m['kq']}{m['sep']}{m['q']}{MASK}", self.form(value[:end])
            )
            if len(head) <= room:
                return head + cut_marker(len(value) - end)
            end = end * room // len(head)  # masks longer than what they hide overflowed it

    def _fields(self, query: str) -> str:
        """``a=1&token=x`` -> ``a=1&token=«redacted»``: the whole value of each sensitive
        field (its name read decoded) masked; every other field left as it was sent."""
        fields = query.split("&")
        for i, field in enumerate(fields):
            name, eq, _ = field.partition("=")
            if eq and self.is_sensitive(unquote_plus(name)):
                fields[i] = f"{name}={MASK}"
        return "&".join(fields)

    def url(self, value: str) -> str:
        """A URL or path whose query string's sensitive parameters are masked (a fragment
        is read as part of the last field: the value it follows is masked with it)."""
        head, mark, query = value.partition("?")
        return self.text(head + mark + self._fields(query))

    def form(self, value: str) -> str:
        """An urlencoded form body with its sensitive fields masked; other text as ``text``."""
        return self.text(self._fields(value) if _FORM.match(value) else value)

    def data(self, value: Any) -> Any:
        """A deep copy of JSON-like data with sensitive keys and secret values masked."""
        if isinstance(value, str):
            return self.form(value)
        if isinstance(value, dict | Mapping):
            return {
                k: (MASK if isinstance(k, str) and self.is_sensitive(k) else self.data(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def masked_keys(self, value: Any) -> Any:
        """A copy of JSON-like data with the values of sensitive keys masked, and nothing else
        looked at: one cheap walk over a body too long to show whole, which is then written
        out, cut and masked as text (:meth:`shown`)."""
        if isinstance(value, dict | Mapping):
            return {
                k: (MASK if isinstance(k, str) and self.is_sensitive(k) else self.masked_keys(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.masked_keys(v) for v in value]
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {k: (MASK if self.is_sensitive(k) else self.text(v)) for k, v in headers.items()}
