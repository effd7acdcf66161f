"""Structured log lines, as AWS Lambda Powertools' logger writes them, keyed on the caller's trace.

Owns the service's log line format — one JSON object per line: ``timestamp``, ``level``,
``service``, ``message``, ``location``, the fields the caller gives (``path``, ``status`` …),
the current ``trace_id`` and ``span_id``, and for an exception its ``exception_name`` (the
type) and ``exception`` (the traceback) — and the trace context of the work in hand: taken
from an incoming request's or event's W3C ``traceparent`` (:func:`traced`), carried on every
event the service publishes while it lasts (:func:`outgoing_traceparent`), so the consumer's
lines join the same trace. On Lambda, :func:`configure` puts the format on the runtime's
handler (its lines go to the function's log group); locally the sandbox ships them the same
way (``sandbox/lambda_logs.py``). Must never log a request's or an event's secrets: only the
fields named here.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

SERVICE = "reference-service"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
#: (trace id, this work's span id) while a request or an event is being handled.
_current: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "trace", default=None
)


def parse_traceparent(header: str | None) -> str:
    """The trace id of a W3C ``traceparent`` (version 00), or "" when it is not one."""
    match = _TRACEPARENT.match((header or "").strip().lower())
    return match[1] if match and match[1] != "0" * 32 else ""


@contextlib.contextmanager
def traced(traceparent: str | None) -> Iterator[str]:
    """The work inside belongs to the caller's trace (a span of its own); its trace id, ""
    when the caller sent none (then nothing is carried on)."""
    trace_id = parse_traceparent(traceparent)
    token = _current.set((trace_id, secrets.token_hex(8)) if trace_id else None)
    try:
        yield trace_id
    finally:
        _current.reset(token)


def outgoing_traceparent() -> str:
    """The ``traceparent`` an event published now carries ("" outside a traced request)."""
    current = _current.get()
    return f"00-{current[0]}-{current[1]}-01" if current else ""


def event_traceparent(attributes: Mapping[str, Any] | None) -> str:
    """The ``traceparent`` of an SQS record's message attributes (Lambda's shape,
    ``{"stringValue": …}``) or of a Kafka record's headers (``[{name: [bytes]}]``)."""
    if isinstance(attributes, Mapping):
        value = attributes.get("traceparent")
        if isinstance(value, Mapping):
            return str(value.get("stringValue") or value.get("StringValue") or "")
        return ""
    headers: list[Any] = list(attributes or [])
    for header in headers:
        if isinstance(header, Mapping) and "traceparent" in header:
            return bytes(header["traceparent"]).decode("ascii", errors="replace")
    return ""


class JsonFormatter(logging.Formatter):
    """One JSON object per record (the Powertools logger's keys)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "service": SERVICE,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", None) or {})
        current = _current.get()
        if current:
            line["trace_id"], line["span_id"] = current
        if record.exc_info and record.exc_info[0] is not None:
            line["exception_name"] = record.exc_info[0].__name__
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def fields(**values: Any) -> dict[str, Any]:
    """``log.info("…", extra=fields(path=…, status=…))``: keys added to the line."""
    return {"fields": values}


def configure(logger: logging.Logger) -> None:
    """On Lambda, the runtime's handler writes what the function logs to its log group:
    give it the JSON format (locally the sandbox attaches its own shipping handler)."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
        logger.setLevel(logging.INFO)
