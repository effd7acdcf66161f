"""The HTML report's history: this run's verdicts, and trends over the earlier runs.

Owns the history section of the one self-contained HTML file: a table of every test the
history has news about (new failures first, each with its earlier state), and four charts —
per run, its passed / failed / flaky tests as stacked bars; per endpoint, its p95 over the
runs; the slowest tests; the flakiest tests. The charts are Plotly's (plotly.js, embedded
once in the file: the page loads nothing from the network, and a reader hovers for values).
The figures are plain dictionaries, not validated by plotly's Python classes (whose import
costs ~1 s); only ``plotly.io`` turns them into HTML. It reads only the (already redacted)
report and the earlier runs' records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

#: The runs the charts show (the newest, this one included).
CHART_RUNS = 30
TOP = 10
ENDPOINTS = 8
LABELS = {
    "new-failure": "new failure",
    "still-failing": "still failing",
    "flaky": "flaky",
    "fixed": "fixed",
}
CHART_IDS = (
    "harness-trend-runs",
    "harness-trend-p95",
    "harness-trend-slowest",
    "harness-trend-flakiest",
)


def _runs(report: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per run (shards summed), oldest first, this run last: id, counts, p95s, durations."""
    by_id: dict[str, dict[str, Any]] = {}
    current = {
        "run_id": report.get("run_id"),
        "started_at": float("inf"),
        "tests": report.get("tests") or {},
        "latency": [
            {"endpoint": f"{r['method']} {r['route']}", "p95_ms": r["p95_ms"]}
            for r in report.get("latency") or []
        ],
        "results": report.get("results") or [],
    }
    for run in [*earlier, current]:
        entry = by_id.setdefault(
            str(run["run_id"]),
            {"run_id": str(run["run_id"]), "started_at": run["started_at"], "passed": 0,
             "failed": 0, "flaky": 0, "p95": {}, "results": []},
        )  # fmt: skip
        tests = run.get("tests") or {}
        results = run.get("results") or []
        if results:  # each test once: flaky (passed or not), else failed, else passed
            for result in results:
                if result.get("classification") == "flaky":
                    entry["flaky"] += 1
                elif result.get("outcome") in ("failed", "error"):
                    entry["failed"] += 1
                elif result.get("outcome") == "passed":
                    entry["passed"] += 1
        else:
            entry["passed"] += int(tests.get("passed", 0))
            entry["failed"] += int(tests.get("failed", 0)) + int(tests.get("error", 0))
        for row in run.get("latency") or []:
            entry["p95"][row["endpoint"]] = max(
                float(row["p95_ms"]), entry["p95"].get(row["endpoint"], 0.0)
            )
        entry["results"] += list(run.get("results") or [])
    ordered = sorted(by_id.values(), key=lambda r: r["started_at"])
    return ordered[-CHART_RUNS:]


def _figure(data: list[dict[str, Any]], title: str, **layout: Any) -> dict[str, Any]:
    return {
        "data": data,
        "layout": {
            "title": {"text": title},
            "height": 320,
            "margin": {"l": 60, "r": 20, "t": 40, "b": 80},
            **layout,
        },
    }


def figures(
    report: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The four charts' figures (chart id -> figure), from this run and the earlier ones."""
    runs = _runs(report, earlier)
    x = [r["run_id"] for r in runs]
    bars = [
        {"type": "bar", "name": name, "x": x, "y": [r[key] for r in runs], "marker": {"color": c}}
        for name, key, c in (
            ("passed", "passed", "#2e7d32"),
            ("failed", "failed", "#c62828"),
            ("flaky", "flaky", "#f9a825"),
        )
    ]
    endpoints: dict[str, int] = {}
    for run in runs:
        for endpoint in run["p95"]:
            endpoints[endpoint] = endpoints.get(endpoint, 0) + 1
    lines = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": endpoint,
            "x": x,
            "y": [run["p95"].get(endpoint) for run in runs],
        }
        for endpoint in sorted(endpoints, key=lambda e: (-endpoints[e], e))[:ENDPOINTS]
    ]
    durations: dict[str, list[float]] = {}
    flakes: dict[str, list[bool]] = {}
    for run in runs:
        for result in run["results"]:
            durations.setdefault(result["nodeid"], []).append(float(result.get("duration_s", 0)))
            flakes.setdefault(result["nodeid"], []).append(result.get("classification") == "flaky")
    slowest = sorted(durations, key=lambda n: (-sum(durations[n]) / len(durations[n]), n))[:TOP]
    rates = {n: sum(f) / len(f) for n, f in flakes.items() if any(f)}
    flakiest = sorted(rates, key=lambda n: (-rates[n], n))[:TOP]
    return {
        CHART_IDS[0]: _figure(bars, "Tests per run", barmode="stack"),
        CHART_IDS[1]: _figure(lines, "p95 per endpoint (ms)"),
        CHART_IDS[2]: _figure(
            [
                {
                    "type": "bar",
                    "orientation": "h",
                    "name": "mean duration (s)",
                    "y": slowest[::-1],
                    "x": [round(sum(durations[n]) / len(durations[n]), 3) for n in slowest[::-1]],
                }
            ],
            "Slowest tests (mean seconds)",
            margin={"l": 320, "r": 20, "t": 40, "b": 40},
        ),
        CHART_IDS[3]: _figure(
            [
                {
                    "type": "bar",
                    "orientation": "h",
                    "name": "flake rate",
                    "y": flakiest[::-1],
                    "x": [round(rates[n], 3) for n in flakiest[::-1]],
                    "marker": {"color": "#f9a825"},
                }
            ],
            "Flakiest tests (share of runs flaky)",
            margin={"l": 320, "r": 20, "t": 40, "b": 40},
        ),
    }


def _charts(figures: Mapping[str, Mapping[str, Any]]) -> str:
    import plotly.io

    html = []
    for index, (chart_id, figure) in enumerate(figures.items()):
        html.append(
            plotly.io.to_html(
                dict(figure),
                include_plotlyjs=index == 0,  # plotly.js once, inline: nothing from the network
                full_html=False,
                validate=False,
                div_id=chart_id,
                default_height="320px",
                config={"displaylogo": False, "responsive": True},
            )
        )
    return "".join(f'<div class="harness-chart">{h}</div>' for h in html)


def verdict_table(results: Iterable[Mapping[str, Any]]) -> str:
    rows = "".join(
        f'<tr class="harness-class-{escape(str(r["classification"]))}">'
        f"<td>{escape(LABELS[str(r['classification'])])}</td>"
        f"<td><code>{escape(str(r['nodeid']))}</code></td>"
        f"<td>{escape(str(r.get('outcome', '')))}</td><td>{int(r.get('attempts', 1))}</td>"
        f"<td>{escape(str(r.get('previous') or ''))}</td></tr>"
        for r in results
        if r.get("classification") in LABELS
    )
    if not rows:
        return "<p>No new failures, nothing still failing, flaky or fixed.</p>"
    return (
        '<table class="harness-history"><thead><tr><th>verdict</th><th>test</th>'
        "<th>outcome</th><th>attempts</th><th>earlier</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def section(report: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]) -> str:
    """The history section ("" when the run has no history)."""
    block = report.get("history")
    warnings = "".join(f"<p>⚠ {escape(str(w))}</p>" for w in report.get("warnings") or [])
    if block is None:
        return f'<div class="harness-history-section">{warnings}</div>' if warnings else ""
    head = (
        f"<h2>History</h2><p>{block['runs_considered']} earlier run(s) in "
        f"<code>{escape(str(block['store']))}</code>: {len(block['new_failures'])} new "
        f"failure(s), {len(block['still_failing'])} still failing, {len(block['flaky'])} "
        f"flaky, {len(block['fixed'])} fixed.</p>"
    )
    from harness.history.classify import ordered

    table = verdict_table(ordered(report.get("results") or []))
    # a trend needs an earlier run; until then the file stays small (no plotly.js)
    charts = (
        _charts(figures(report, earlier))
        if earlier
        else "<p>Trends appear from the second recorded run of this environment.</p>"
    )
    return f'<div class="harness-history-section">{head}{warnings}{table}{charts}</div>'
