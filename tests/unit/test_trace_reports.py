"""What the reports make of a failed test's trace: the JSON report's ``failures[]`` and
``service_logs`` figures, the Markdown summary's and the alert's lines, the HTML tables under
a test (service logs, events timeline), all from already redacted data and escaped."""

from __future__ import annotations

from typing import Any

from harness.reporting import alerts, summary
from harness.reporting.events import timeline_html
from harness.reporting.html_report import logs_html, render_logs
from harness.reporting.report import RunReport

TRACE = "5759e988bd862e3fe1be46a994272793"
LINES = [
    {
        "timestamp": "2026-01-01T00:00:00.100Z",
        "log_group": "/aws/lambda/api",
        "message": f'{{"trace_id": "{TRACE}", "path": "/users/7", "status": 500}}',
    },
    {
        "timestamp": "2026-01-01T00:00:00.200Z",
        "log_group": "/aws/lambda/api",
        "message": '<script>alert("x")</script> ValueError: boom',
    },
]


def failed_report(**extra: Any) -> dict[str, Any]:
    report = RunReport("itest-20260101t000000-abcd", "sandbox", "sandbox", "http://x", 1)
    report.failures.append(
        {
            "nodeid": "suites/t.py::test_x",
            "when": "call",
            "message": "assert 500 == 200",
            "trace_id": TRACE,
            "service_logs": LINES * 3,
        }
    )
    report.add_worker_stats({"service_logs": {"calls": 3, "lookups": 1, "lines": 6, "error": ""}})
    report.add_worker_stats({"service_logs": {"calls": 1, "lookups": 1, "lines": 0, "error": "E"}})
    return report.as_dict(1)


def test_the_json_report_has_each_failures_trace_and_the_runs_lookup_figures() -> None:
    report = failed_report()
    (failure,) = report["failures"]
    assert failure["trace_id"] == TRACE and failure["service_logs"][0] == LINES[0]
    assert report["service_logs"] == {
        "log_groups": [],
        "calls": 4,
        "lookups": 2,
        "lines": 6,
        "error": "E",
    }


def test_the_summary_shows_the_trace_and_the_first_lines_under_the_failure() -> None:
    text = summary.render(failed_report())
    after = text.split("suites/t.py::test_x")[1]
    assert f"trace `{TRACE}`" in after and "log lines (6)" in after
    assert after.count("`/aws/lambda/api`") == summary.LOG_LINES
    assert "ValueError: boom" in after and "… 3 earlier" in after


def test_the_alert_names_the_trace_and_the_first_lines() -> None:
    text = alerts.slack_message(failed_report())["text"]
    assert f"trace `{TRACE}`" in text
    assert text.count("`/aws/lambda/api`") == alerts.LOG_LINES
    assert "ValueError: boom" in text


def test_the_html_table_of_service_lines_is_escaped() -> None:
    page = logs_html(TRACE, LINES)
    assert page.count('<tr class="harness-log-line">') == 2
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert TRACE in page
    assert "could not be read: AccessDenied" in logs_html(TRACE, [], "AccessDenied")
    assert "No line" in logs_html(TRACE, [])
    assert render_logs(LINES).splitlines()[0].startswith("2026-01-01T00:00:00.100Z /aws/lambda/api")


def test_the_events_timeline_is_a_table_with_a_row_per_event() -> None:
    rows = [
        {"t": 0.0, "action": "published", "type": "user.created", "version": 1, "key": "7",
         "where": "topic-0@4", "latency": None},
        {"t": 0.02, "action": "delivered", "type": "user.created", "version": 1, "key": "7",
         "where": "topic-0@5", "latency": None},
        {"t": 0.05, "action": "saw", "type": "user.created", "version": 1, "schema_id": 3,
         "key": "7", "where": "topic-0@4", "latency": 0.05, "violation": ""},
        {"t": 0.06, "action": "saw", "type": "user.created", "version": 1, "key": "<b>",
         "where": "topic-0@5", "latency": 0.01, "violation": "$.data.uid"},
    ]  # fmt: skip
    page = timeline_html(rows, mask=lambda text: text.replace("secret", "«redacted»"))
    for kind in ("published", "delivered", "seen", "violation"):
        assert f'<tr class="harness-event {kind}">' in page
    assert page.count('<tr class="harness-event') == 4
    assert "v1 (id 3)" in page and "50 ms" in page and "topic-0@4" in page
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert "contract violation at $.data.uid" in page
