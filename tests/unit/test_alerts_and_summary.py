"""Alert targets, policy, message and metrics; the Markdown summary — pure logic on a report."""

from __future__ import annotations

from typing import Any

import pytest

from harness.reporting import alerts, summary
from harness.safety.redact import MASK, Redactor


def report(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run_id": "itest-20261127t172503-k3f9",
        "environment": "staging",
        "profile": "staging",
        "seed": 7,
        "identity": {"environment": "staging", "version": "1.2.3"},
        "duration_seconds": 12.5,
        "exit_status": 0,
        "tests": {"passed": 3, "failed": 0, "error": 0, "skipped": 1, "xfailed": 0, "xpassed": 0},
        "skipped_by_protection": 0,
        "failures": [],
        "cleanup_failures": [],
        "leaked": [],
        "latency": [
            {
                "method": "GET",
                "route": "/users/{id}",
                "count": 4,
                "p50_ms": 10.0,
                "p95_ms": 40.0,
                "max_ms": 41.0,
            },
        ],
    }
    base.update(changes)
    return base


FAILED = report(
    exit_status=1,
    tests={"passed": 2, "failed": 1, "error": 0, "skipped": 0, "xfailed": 0, "xpassed": 0},
    failures=[{"nodeid": "suites/a.py::test_x", "when": "call", "message": "assert 403 == 200"}],
)
LEAKED = report(exit_status=1, leaked=[{"kind": "user", "uid": 5, "email": "itest-x@y.test"}])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cloudwatch", alerts.AlertTarget("cloudwatch")),
        (
            "webhook=http://127.0.0.1:8/hook",
            alerts.AlertTarget("webhook", "http://127.0.0.1:8/hook"),
        ),
    ],
)
def test_parse_target(text: str, expected: alerts.AlertTarget) -> None:
    assert alerts.parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [("slack", "--alert webhook=URL or --alert cloudwatch"), ("webhook=ftp://x", "http(s) URL")],
)
def test_bad_target_names_the_fix(text: str, hint: str) -> None:
    with pytest.raises(alerts.AlertConfigError, match=hint.replace("(", r"\(").replace(")", r"\)")):
        alerts.parse_target(text)


def test_policy() -> None:
    assert not alerts.should_alert("failure", report())
    assert alerts.should_alert("failure", FAILED)
    assert alerts.should_alert("failure", LEAKED)
    assert alerts.should_alert("always", report())
    with pytest.raises(alerts.AlertConfigError, match="failure, always"):
        alerts.parse_policy("sometimes")


def test_webhook_description_never_shows_the_secret_path() -> None:
    target = alerts.parse_target("webhook=https://hooks.slack.com/services/T0/B0/s3cr3t")
    assert "s3cr3t" not in target.describe()


def test_slack_message_lists_failures_and_leaks() -> None:
    text = alerts.slack_message({**FAILED, "leaked": LEAKED["leaked"]})["text"]
    assert "FAILED" in text and "suites/a.py::test_x" in text and "assert 403 == 200" in text
    assert "leaked user" in text and "1 leaked" in text


def test_metric_data() -> None:
    metrics = {m["MetricName"]: m for m in alerts.metric_data(FAILED)}
    assert set(metrics) == {"Passed", "Failed", "Skipped", "Leaked", "DurationSeconds"}
    assert metrics["Failed"]["Value"] == 1 and metrics["Passed"]["Value"] == 2
    assert metrics["DurationSeconds"]["Unit"] == "Seconds"
    assert metrics["Leaked"]["Dimensions"] == [{"Name": "environment", "Value": "staging"}]


def test_summary_of_a_failed_run() -> None:
    text = summary.render({**FAILED, "leaked": LEAKED["leaked"]})
    assert text.startswith("## env-harness: ❌ FAILED")
    assert "- `suites/a.py::test_x`: assert 403 == 200" in text
    assert "leaked user: uid=5, email=itest-x@y.test" in text
    assert "| `GET /users/{id}` | 4 | 10 | 40 | 41 |" in text
    assert "version 1.2.3" in text


def test_summary_shows_event_latency_when_events_were_observed() -> None:
    assert "Event processing" not in summary.render(report())
    events = {"user.created": {"count": 3, "p50": 0.12, "p95": 0.5, "max": 0.51}}
    text = summary.render(report(event_latency=events))
    assert "| `user.created` | 3 | 0.120 | 0.500 | 0.510 |" in text


def test_summary_counts_the_events_tests_saw_per_type_with_p95() -> None:
    assert "Events the tests saw" not in summary.render(report())
    seen = {"user.deleted": {"count": 7, "p50": 0.004, "p95": 0.016, "max": 0.02}}
    text = summary.render(report(events_seen=seen))
    assert "### Events the tests saw (publish → seen by the harness)" in text
    assert "| `user.deleted` | 7 | 0.004 | 0.016 | 0.020 |" in text


def test_summary_says_what_the_service_wrote_for_recorded_resources() -> None:
    """docs/adapters.md §7 promises this line; the JSON report's resources.belonging."""
    line = "14 item(s) the service wrote for recorded resources removed with them (not leaks)."
    text = summary.render(report(resources={"created": 9, "cleaned": 9, "belonging": 14}))
    assert f"\n\n{line}\n" in text
    assert "wrote for recorded" not in summary.render(report(resources={"belonging": 0}))
    assert "wrote for recorded" not in summary.render(report())


def test_summary_of_a_passed_run_and_a_setup_error() -> None:
    assert "✅ passed" in summary.render(report())
    error = report(exit_status=1, failures=[{"nodeid": "t::x", "when": "setup", "message": "m|n"}])
    assert "- `t::x` (error in setup): m\\|n" in summary.render(error)


def test_redactor_learns_values_of_sensitive_keys() -> None:
    redactor = Redactor()
    redactor.learn({"uid": 1, "token": "abcdefghijklmnop", "nested": [{"password": "pw-12345678"}]})
    redactor.learn({"password": "test"})  # too short to learn: would mask test ids
    assert redactor.text("abcdefghijklmnop pw-12345678 test_x") == f"{MASK} {MASK} test_x"
