"""One test's events as a timeline, for people: the section the HTML report shows per test.

Owns rendering the rows of :meth:`harness.events.stream.Expectations.timeline` — what the
test published or delivered and what it saw, with type, key, schema version (and registry
id), partition/offset or message id, and latency — as an aligned plain-text table. pytest
keeps it as the test's "harness events" section, which pytest-html shows under the test and
the terminal shows for a failed one. It reads only the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def render_timeline(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as a table: one line per event, oldest first."""
    lines = [COLUMNS, *(_row(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
