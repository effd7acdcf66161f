"""The Markdown run summary: what a CI job page shows (``$GITHUB_STEP_SUMMARY``, ``--summary``).

Owns rendering the (already redacted) run report as short Markdown: a status line, the
counts (and what the service wrote for recorded resources, removed with them), each failure
in one line with its trace id and the service's last log lines for it, leaks and cleanup
problems, the slowest endpoints and event processing latency, and the per-type counts and
latency of the events tests saw. It reads only the report dictionary; it never touches the
environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SLOWEST = 5
_MAX_FAILURES = 50
#: The service's last log lines shown under a failure, nearest the failure (the JSON and HTML
#: reports have them all).
LOG_LINES = 3
_LOG_LINE_CHARS = 300


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: Any) -> str:
    return "`" + str(text).replace("`", "'") + "`"


def render(report: Mapping[str, Any]) -> str:
    tests = report.get("tests", {})
    leaked = report.get("leaked", [])
    failed = int(report.get("exit_status", 0)) != 0 or bool(leaked)
    status = "❌ FAILED" if failed else "✅ passed"
    identity = report.get("identity") or {}
    shown = report.get("service_version") or identity.get("version")
    version = f", version {shown}" if shown else ""
    lines = [
        f"## env-harness: {status}",
        "",
        f"Run {_code(report.get('run_id'))} on **{report.get('environment')}**{version} "
        f"(profile {report.get('profile')}, seed {report.get('seed')}, "
        f"{float(report.get('duration_seconds', 0)):.1f} s, exit {report.get('exit_status')})",
        "",
        "| passed | failed | errors | skipped | xfailed | xpassed | leaked |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        "| "
        + " | ".join(
            str(tests.get(k, 0))
            for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
        )
        + f" | {len(leaked)} |",
    ]
    belonging = int((report.get("resources") or {}).get("belonging", 0))
    if belonging:
        lines += [
            "",
            f"{belonging} item(s) the service wrote for recorded resources removed with them "
            f"(not leaks).",
        ]
    if report.get("skipped_by_protection"):
        lines += [
            "",
            f"{report['skipped_by_protection']} test(s) skipped: protected target "
            f"(only `readonly` tests run).",
        ]
    lines += history_lines(report)
    failures = report.get("failures", [])
    if failures:
        lines += ["", "### Failures", ""]
        for failure in failures[:_MAX_FAILURES]:
            when = "" if failure.get("when") == "call" else f" (error in {failure.get('when')})"
            lines.append(f"- {_code(failure['nodeid'])}{when}: {_cell(failure['message'])}")
            lines += _trace_lines(failure)
        if len(failures) > _MAX_FAILURES:
            lines.append(f"- … and {len(failures) - _MAX_FAILURES} more (see the JSON report)")
    if leaked or report.get("cleanup_failures"):
        lines += ["", "### Leaks and cleanup problems", ""]
        for leak in leaked:
            ids = ", ".join(f"{k}={v}" for k, v in leak.items() if k != "kind")
            lines.append(f"- leaked {leak.get('kind')}: {_cell(ids)}")
        for problem in report.get("cleanup_failures", []):
            lines.append(f"- cleanup failed: {_cell(problem)}")
    rows = report.get("latency", [])[:SLOWEST]
    if rows:
        lines += [
            "",
            "### Slowest endpoints",
            "",
            "| endpoint | count | p50 ms | p95 ms | max ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in rows:
            lines.append(
                f"| {_code(row['method'] + ' ' + row['route'])} | {row['count']} | "
                f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['max_ms']:.0f} |"
            )
    events = report.get("event_latency") or {}
    if events:
        lines += [
            "",
            "### Event processing latency",
            "",
            "| event | count | p50 s | p95 s | max s |",
            "|---|---:|---:|---:|---:|",
        ]
        for event_type, row in events.items():
            lines.append(
                f"| {_code(event_type)} | {row['count']} | {row['p50']:.3f} | "
                f"{row['p95']:.3f} | {row['max']:.3f} |"
            )
    seen = report.get("events_seen") or {}
    if seen:
        lines += [
            "",
            "### Events the tests saw (publish → seen by the harness)",
            "",
            "| event | count | p50 s | p95 s | max s |",
            "|---|---:|---:|---:|---:|",
        ]
        for event_type, row in seen.items():
            lines.append(
                f"| {_code(event_type)} | {row['count']} | {row['p50']:.3f} | "
                f"{row['p95']:.3f} | {row['max']:.3f} |"
            )
    return "\n".join(lines) + "\n"


#: How the summary names each classification, in the order it lists them (new failures first).
LABELS = {
    "new-failure": "🆕 new failure",
    "still-failing": "🔁 still failing",
    "flaky": "🎲 flaky",
    "fixed": "✅ fixed",
}


def history_lines(report: Mapping[str, Any]) -> list[str]:
    """The history's verdicts: what is new first, each with its earlier state; quarantined
    failures; a store that could not be reached."""
    lines: list[str] = []
    block = report.get("history")
    results = report.get("results") or []
    shown = [r for r in results if r.get("classification") in LABELS]
    shown.sort(key=lambda r: list(LABELS).index(r["classification"]))
    quarantined = [
        r for r in results if r.get("quarantined") and r.get("outcome") in ("failed", "error")
    ]
    if block is None and not quarantined and not report.get("warnings"):
        return lines
    lines += ["", "### History", ""]
    if block is not None:
        lines.append(
            f"{len(block['new_failures'])} new failure(s), {len(block['still_failing'])} still "
            f"failing, {len(block['flaky'])} flaky, {len(block['fixed'])} fixed "
            f"({block['runs_considered']} earlier run(s) in {_code(block['store'])})"
        )
        if shown:
            lines += ["", "| | test | attempts | earlier |", "|---|---|---:|---|"]
        for result in shown[:_MAX_FAILURES]:
            lines.append(
                f"| {LABELS[result['classification']]} | {_code(result['nodeid'])} | "
                f"{result.get('attempts', 1)} | {_cell(result.get('previous') or '')} |"
            )
    for result in quarantined:
        lines.append(
            f"- quarantined: {_code(result['nodeid'])} {result['outcome']}, not failing the run"
        )
    for warning in report.get("warnings") or []:
        lines.append(f"- ⚠️ {_cell(warning)}")
    return lines


def _trace_lines(failure: Mapping[str, Any]) -> list[str]:
    """Under a failure: its trace id, and the service's last lines carrying it."""
    if not failure.get("trace_id"):
        return []
    logs = failure.get("service_logs") or []
    said = f"  - trace {_code(failure['trace_id'])}"
    if logs:
        said += f"; the service's log lines ({len(logs)}):"
    lines = [said]
    if len(logs) > LOG_LINES:
        lines.append(f"    - … {len(logs) - LOG_LINES} earlier (see the JSON or HTML report)")
    for line in logs[-LOG_LINES:]:
        message = " ".join(str(line["message"]).split())
        if len(message) > _LOG_LINE_CHARS:
            message = message[:_LOG_LINE_CHARS] + "…"
        lines.append(f"    - {line['timestamp']} {_code(line['log_group'])}: {_code(message)}")
    return lines


def write(path: Path, text: str, *, append: bool = False) -> None:
    """``append`` for ``$GITHUB_STEP_SUMMARY``, which collects every step's summary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as out:
        out.write(text if not append else "\n" + text)
