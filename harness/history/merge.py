"""One report from a run's CI shards: ``harness merge`` joins their JSON reports.

Owns joining the shards' report dictionaries into the whole run's — counts and resources
summed, failures, results and leaks concatenated (results new failures first), the history
block's lists united, HTTP latency recomputed exactly from every shard's samples (events'
from the shards' summaries: their largest p50 and p95), the exit status the worst of the
shards' by the table's order (:data:`WORST_FIRST`) — and writing JUnit XML from the joined
results, and a self-contained HTML page from the harness's own sections. The whole-run
residue check and the one alert are the command's (:mod:`harness.cli.history`); this module
never touches the environment.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from harness.history.classify import ordered
from harness.reporting import latency
from harness.run import outcome

#: Which shard status the whole run takes: the first of these any shard has.
WORST_FIRST = (
    outcome.INTERRUPTED,
    outcome.INTERNAL_ERROR,
    outcome.CONFIG,
    outcome.UNREACHABLE,
    outcome.RUN_IN_USE,
    outcome.COLLECTION_ERROR,
    outcome.FAILED,
    outcome.LEAKED,
    outcome.PASSED,
    outcome.NO_TESTS,
)


class MergeError(ValueError):
    """Reports that are not shards of one run; the message names the fix."""


def worst(statuses: Sequence[int | None]) -> int:
    known = [s for s in statuses if s is not None]
    if len(known) < len(statuses):  # a shard whose report says incomplete: it was killed
        return outcome.INTERNAL_ERROR
    for status in WORST_FIRST:
        if status in known:
            return status
    return max(known) if known else outcome.NO_TESTS


def _sum(dicts: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in dicts:
        for key, value in one.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + int(value)
    return total


def join(reports: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """The whole run's report from its shards' (same run id)."""
    if not reports:
        raise MergeError("harness merge: name the shards' JSON reports")
    run_ids = {str(r.get("run_id")) for r in reports}
    if len(run_ids) != 1:
        raise MergeError(
            f"harness merge: these reports are of different runs ({', '.join(sorted(run_ids))}): "
            f"merge the shards of one run (one HARNESS_RUN_ID)"
        )
    first = reports[0]
    samples: latency.Samples = {}
    for report in reports:
        latency.merge(samples, report.get("latency_samples_ms") or {})
    events: dict[str, dict[str, float]] = {}
    for report in reports:
        for kind, row in (report.get("event_latency") or {}).items():
            mine = events.setdefault(kind, {"count": 0, "p50": 0.0, "p95": 0.0, "max": 0.0})
            mine["count"] += int(row.get("count", 0))
            for key in ("p50", "p95", "max"):
                mine[key] = max(mine[key], float(row.get(key, 0.0)))
    blocks = [r["history"] for r in reports if r.get("history")]
    history = None
    if blocks:
        history = {
            "store": blocks[0]["store"],
            "runs_considered": max(b["runs_considered"] for b in blocks),
            **{
                key: [n for b in blocks for n in b[key]]
                for key in ("new_failures", "still_failing", "fixed", "flaky")
            },
        }
    started = [str(r["started_at"]) for r in reports if r.get("started_at")]
    merged: dict[str, Any] = {
        "run_id": first.get("run_id"),
        "environment": first.get("environment"),
        "profile": first.get("profile"),
        "base_url": first.get("base_url"),
        "seed": first.get("seed"),
        "identity": first.get("identity") or {},
        "service_version": first.get("service_version", ""),
        "started_at": min(started) if started else "",
        "duration_seconds": max(float(r.get("duration_seconds") or 0) for r in reports),
        "exit_status": worst([r.get("exit_status") for r in reports]),
        "target": first.get("target") or {},
        "tests": _sum([r.get("tests") or {} for r in reports]),
        "skipped_by_protection": sum(int(r.get("skipped_by_protection") or 0) for r in reports),
        "resources": _sum([r.get("resources") or {} for r in reports]),
        "interrupted": next((r["interrupted"] for r in reports if r.get("interrupted")), None),
        "left_behind": [x for r in reports for x in r.get("left_behind") or []],
        "unfinished": [x for r in reports for x in r.get("unfinished") or []],
        "errors": [x for r in reports for x in r.get("errors") or []],
        "failures": [x for r in reports for x in r.get("failures") or []],
        "service_logs": first.get("service_logs") or {},
        "cleanup_failures": [x for r in reports for x in r.get("cleanup_failures") or []],
        "workers": [w for r in reports for w in r.get("workers") or []],
        "leaked": [x for r in reports for x in r.get("leaked") or []],
        "event_latency": events,
        "events_seen": {},
        "latency": latency.summarize(samples),
        "latency_samples_ms": samples,
        "results": ordered([x for r in reports for x in r.get("results") or []]),
        "history": history,
        "warnings": [x for r in reports for x in r.get("warnings") or []],
        "changes": {
            "new_leak": next(
                (
                    r["changes"]["new_leak"]
                    for r in reports
                    if (r.get("changes") or {}).get("new_leak")
                ),
                "",
            ),
            "p95": [x for r in reports for x in (r.get("changes") or {}).get("p95") or []],
        },
        "shards": [
            {"report": name, "exit_status": r.get("exit_status"), "outcome": r.get("outcome")}
            for name, r in zip(names, reports, strict=True)
        ],
    }
    merged["outcome"] = outcome.word(merged["exit_status"])
    return merged


def _classname(nodeid: str) -> tuple[str, str]:
    """pytest's JUnit names: ``a/test_b.py::C::test_d`` -> (``a.test_b.C``, ``test_d``)."""
    parts = nodeid.split("::")
    module = parts[0].removesuffix(".py").replace("/", ".")
    return ".".join([module, *parts[1:-1]]), parts[-1]


def junit(report: Mapping[str, Any], path: Path) -> None:
    """JUnit XML of the joined results (one testcase per test, its last attempt's verdict)."""
    results = report.get("results") or []
    messages = {f["nodeid"]: f["message"] for f in report.get("failures") or []}
    suite = ElementTree.Element(
        "testsuite",
        name="env-harness",
        tests=str(len(results)),
        failures=str(sum(1 for r in results if r["outcome"] == "failed")),
        errors=str(sum(1 for r in results if r["outcome"] == "error")),
        skipped=str(sum(1 for r in results if r["outcome"] in ("skipped", "xfailed"))),
        time=f"{float(report.get('duration_seconds') or 0):.3f}",
        timestamp=str(report.get("started_at", "")),
    )
    properties = ElementTree.SubElement(suite, "properties")
    for name in ("run_id", "service_version", "environment"):
        if report.get(name):
            ElementTree.SubElement(properties, "property", name=name, value=str(report[name]))
    for result in results:
        classname, name = _classname(result["nodeid"])
        case = ElementTree.SubElement(
            suite, "testcase", classname=classname, name=name,
            time=f"{float(result.get('duration_s') or 0):.3f}",
        )  # fmt: skip
        message = messages.get(result["nodeid"], result["outcome"])
        if result["outcome"] == "failed":
            ElementTree.SubElement(case, "failure", message=message)
        elif result["outcome"] == "error":
            ElementTree.SubElement(case, "error", message=message)
        elif result["outcome"] in ("skipped", "xfailed"):
            ElementTree.SubElement(case, "skipped", message=result["outcome"])
    root = ElementTree.Element("testsuites")
    root.append(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def html_page(report: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]) -> str:
    """One self-contained page: the run's facts and leaks, every test, latency, history."""
    from harness.reporting import html_report, trends

    rows = "".join(
        f'<tr class="harness-result {escape(str(r["outcome"]))}">'
        f"<td><code>{escape(str(r['nodeid']))}</code></td><td>{escape(str(r['outcome']))}</td>"
        f"<td>{int(r.get('attempts', 1))}</td><td>{float(r.get('duration_s') or 0):.3f}</td>"
        f"<td>{escape(str(r.get('classification') or ''))}</td></tr>"
        for r in report.get("results") or []
    )
    shards = "".join(
        f"<li>{escape(str(s['report']))}: {escape(str(s['outcome']))}</li>"
        for s in report.get("shards") or []
    )
    results = (
        '<h2>Tests</h2><table class="harness-results"><thead><tr><th>test</th>'
        "<th>outcome</th><th>attempts</th><th>seconds</th><th>verdict</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    body = (
        html_report.fragment(report, report.get("latency_samples_ms") or {})
        + f"<h2>Shards</h2><ul>{shards}</ul>"
        + results
        + trends.section(report, earlier)
    )
    title = (
        f"env-harness run {escape(str(report.get('run_id')))}: {escape(str(report.get('outcome')))}"
    )
    generated = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}</style></head>"
        f"<body><h1>{title}</h1><p>merged from {len(report.get('shards') or [])} shard(s), "
        f"{generated}</p>{body}</body></html>"
    )
