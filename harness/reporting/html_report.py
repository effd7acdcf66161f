"""The harness's part of the HTML report: run facts, leaks and a latency chart per endpoint,
and what it puts under a test: the service's log lines for a failed one.

pytest-html renders the results table, the failures and their sections (the redacted HTTP
transcript among them) as one self-contained file; this module owns the HTML fragment the
harness adds to its summary (the target, its bus and event latency, the service version among
the run's facts) and the per-test extras (:func:`logs_html`; the events timeline is
:func:`harness.reporting.events.timeline_html`) — escaped text and inline SVG only, so the
file loads nothing from the network. It reads only the (already redacted) report, latency
samples and log lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from harness.reporting import latency

WIDTH = 560
HEIGHT = 34
_PAD = 6


def _x(ms: float, scale_max: float) -> float:
    return _PAD + (WIDTH - 2 * _PAD) * (ms / scale_max if scale_max > 0 else 0.0)


def latency_svg(samples: Iterable[float], scale_max: float) -> str:
    """One endpoint: every sample as a tick, the p50 and p95 as marks, on a shared scale."""
    ordered = sorted(samples)
    if not ordered:
        return ""
    p50, p95 = latency.percentile(ordered, 0.5), latency.percentile(ordered, 0.95)
    ticks = "".join(
        f'<line x1="{_x(v, scale_max):.1f}" y1="10" x2="{_x(v, scale_max):.1f}" y2="24" '
        f'stroke="#4a78b5" stroke-opacity="0.45"/>'
        for v in ordered
    )
    marks = "".join(
        f'<line x1="{_x(v, scale_max):.1f}" y1="4" x2="{_x(v, scale_max):.1f}" y2="30" '
        f'stroke="{color}" stroke-width="2"><title>{label} {v:.1f} ms</title></line>'
        for v, color, label in ((p50, "#2e7d32", "p50"), (p95, "#c62828", "p95"))
    )
    axis = (
        f'<line x1="{_PAD}" y1="17" x2="{WIDTH - _PAD}" y2="17" stroke="#ccc"/>'
        f'<text x="{_PAD}" y="33" font-size="9" fill="#666">0</text>'
        f'<text x="{WIDTH - _PAD}" y="33" font-size="9" text-anchor="end" fill="#666">'
        f"{scale_max:.0f} ms</text>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="latency samples">{axis}{ticks}{marks}</svg>'
    )


def latency_section(samples: Mapping[str, list[float]]) -> str:
    rows = latency.summarize(samples)
    if not rows:
        return "<h2>Endpoint latency</h2><p>No HTTP requests were made.</p>"
    scale_max = max(row["max_ms"] for row in rows)
    body = "".join(
        "<tr>"
        f"<td><code>{escape(row['method'])} {escape(row['route'])}</code></td>"
        f"<td>{row['count']}</td><td>{row['p50_ms']:.1f}</td><td>{row['p95_ms']:.1f}</td>"
        f"<td>{row['max_ms']:.1f}</td>"
        f"<td>{latency_svg(samples[row['method'] + ' ' + row['route']], scale_max)}</td>"
        "</tr>"
        for row in rows
    )
    return (
        "<h2>Endpoint latency</h2>"
        "<p>Routes are templates derived from paths (numeric, UUID and token-like segments "
        "become <code>{id}</code>). Each tick is one request; green is p50, red is p95.</p>"
        '<table class="harness-latency"><thead><tr><th>endpoint</th><th>count</th>'
        "<th>p50 ms</th><th>p95 ms</th><th>max ms</th><th>samples</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _events_fact(report: Mapping[str, Any]) -> str:
    """The bus and topic the run heard the service's events on, and their latency."""
    target = report.get("target") or {}
    if not target.get("events_bus"):
        return ""
    fact = f"{target['events_bus']} (topic {target.get('events_topic', '')})"
    for label, key in (("processed", "event_latency"), ("seen", "events_seen")):
        for event_type, row in (report.get(key) or {}).items():
            fact += (
                f"; {event_type} {label} p50 {row['p50'] * 1000:.0f} ms / "
                f"p95 {row['p95'] * 1000:.0f} ms (n={row['count']})"
            )
    return fact


def run_section(report: Mapping[str, Any]) -> str:
    identity = report.get("identity") or {}
    facts = [
        ("run id", report.get("run_id")),
        ("environment", report.get("environment")),
        ("service version", report.get("service_version") or identity.get("version", "")),
        ("events", _events_fact(report)),
        ("profile", report.get("profile")),
        ("base URL", report.get("base_url")),
        ("seed", report.get("seed")),
        ("exit status", report.get("exit_status")),
        ("skipped by protection", report.get("skipped_by_protection")),
    ]
    resources = report.get("resources", {})
    facts.append(
        ("resources", ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in resources.items()))
    )
    rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts if v != ""
    )
    leaks = "".join(
        f"<li>leaked {escape(str(leak.get('kind')))}: "
        + escape(", ".join(f"{k}={v}" for k, v in leak.items() if k != "kind"))
        + "</li>"
        for leak in report.get("leaked", [])
    )
    problems = "".join(
        f"<li>cleanup failed: {escape(str(p))}</li>" for p in report.get("cleanup_failures", [])
    )
    residue = (
        f'<ul class="harness-leaks">{leaks}{problems}</ul>'
        if leaks or problems
        else "<p>Residue check: clean (nothing left carrying this run's namespace).</p>"
    )
    return f'<h2>env-harness run</h2><table class="harness-run">{rows}</table>{residue}'


def html_extra(content: str) -> dict[str, Any]:
    """A pytest-html extra of HTML (what ``pytest_html.extras.html`` makes), shown under the
    test in the results table."""
    return {
        "name": None,
        "format_type": "html",
        "content": content,
        "mime_type": None,
        "extension": None,
    }


def render_logs(lines: Iterable[Mapping[str, Any]]) -> str:
    """The service's lines as text, for the terminal and JUnit: one per line, oldest first."""
    shown = [f"{line['timestamp']} {line['log_group']} {line['message']}" for line in lines]
    return "\n".join(shown) or "(no line carries this trace id)"


def logs_html(trace_id: str, lines: Iterable[Mapping[str, Any]], error: str = "") -> str:
    """A failed test's service log lines as a table (already redacted; escaped here)."""
    rows = "".join(
        '<tr class="harness-log-line">'
        f"<td>{escape(str(line['timestamp']))}</td>"
        f"<td><code>{escape(str(line['log_group']))}</code></td>"
        f'<td><pre class="harness-log-message">{escape(str(line["message"]))}</pre></td></tr>'
        for line in lines
    )
    title = f"<h4>Service logs of trace <code>{escape(trace_id)}</code></h4>"
    if error:
        body = f"<p>The service's logs could not be read: {escape(error)}</p>"
    elif rows:
        body = (
            '<table class="harness-logs"><thead><tr><th>time (UTC)</th><th>log group</th>'
            f"<th>message</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        body = "<p>No line of the service's log groups carries this trace id.</p>"
    return f'<div class="harness-service-logs">{title}{body}</div>'


def fragment(report: Mapping[str, Any], samples: Mapping[str, list[float]]) -> str:
    return f'<div class="harness">{run_section(report)}{latency_section(samples)}</div>'
