"""One test's events as a timeline, for people: the table the HTML report shows per test.

Owns rendering the rows of :meth:`harness.events.stream.Expectations.timeline` — what the
test published or delivered and what it saw (contract violations marked), with type, key,
schema version (and registry id), where on the bus (one format: ``topic-partition@offset``
on Kafka, ``event <id>`` on SNS/SQS) and latency — as an HTML table under the test in the
HTML report (:func:`timeline_html`), and as an aligned plain-text table: the test's "harness
events" section, which the terminal shows for a failed one and JUnit keeps. It reads only the
rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from html import escape
from typing import Any

COLUMNS = ("t+s", "what", "type", "key", "schema", "where", "latency")


def _row(row: Mapping[str, Any]) -> tuple[str, ...]:
    version = row.get("version")
    schema = f"v{version}" if version not in (None, "") else ""
    if row.get("schema_id") is not None:
        schema += f" (id {row['schema_id']})"
    latency = row.get("latency")
    what = str(row.get("action", ""))
    if row.get("violation"):
        what += f" [contract violation at {row['violation']}]"
    return (
        f"{float(row.get('t', 0.0)):7.3f}",
        what,
        str(row.get("type", "")),
        str(row.get("key", "")),
        schema.strip(),
        str(row.get("where", "")),
        "" if latency is None else f"{latency * 1000:.0f} ms",
    )


def _action(row: Mapping[str, Any]) -> str:
    """The row's kind, for its CSS class: published, delivered, seen, seen-again, violation."""
    if row.get("violation"):
        return "violation"
    action = str(row.get("action", ""))
    return {"saw": "seen", "saw again": "seen-again"}.get(action, action.replace(" ", "-"))


def timeline_html(
    rows: Iterable[Mapping[str, Any]], mask: Callable[[str], str] = lambda text: text
) -> str:
    """The rows as an HTML table (one ``tr.harness-event`` per event, its kind as a second
    class), every cell passed through ``mask`` (the worker's redactor) and escaped."""
    body = "".join(
        f'<tr class="harness-event {_action(row)}">'
        + "".join(f"<td>{escape(mask(cell.strip()))}</td>" for cell in _row(row))
        + "</tr>"
        for row in rows
    )
    head = "".join(f"<th>{escape(column)}</th>" for column in COLUMNS)
    return (
        '<div class="harness-events"><h4>Events</h4><table class="harness-timeline">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def render_timeline(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as a table: one line per event, oldest first."""
    lines = [COLUMNS, *(_row(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
