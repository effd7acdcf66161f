"""Alerts: tell someone when a run failed or leaked — a Slack-compatible webhook, CloudWatch.

Owns parsing ``--alert`` targets (``webhook=URL``, ``cloudwatch``), the policy (on failure or
leak; on every run with ``--alert-on always``; with ``--alert-on change`` only when something
is new — a new failure, a fixed test, a new leak, an endpoint's p95 beyond its own trend —
said with the earlier state, from the report's ``results`` and ``changes``), the webhook
message (built only from the
already redacted run report: each failure with its trace id and the service's last log
lines for it) and the metrics (Passed, Failed, Skipped, Leaked,
DurationSeconds with dimension ``environment``). Delivery problems are returned as one-line
warnings, never raised: an alert must never change a run's exit code. A webhook URL is a
secret (Slack's carry the key in the path), so messages name only its host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import requests

POLICIES = ("failure", "always", "change")
METRIC_NAMESPACE = "EnvHarness"
WEBHOOK_TIMEOUT = (3.05, 10.0)
#: The service's last log lines an alert shows per failure, and the characters of each.
LOG_LINES = 2
LOG_LINE_CHARS = 200


class AlertConfigError(ValueError):
    """A bad ``--alert`` / ``--alert-on`` value; the message names the fix."""


@dataclass(frozen=True)
class AlertTarget:
    kind: str  # "webhook" or "cloudwatch"
    url: str = ""

    def describe(self) -> str:
        if self.kind == "webhook":
            return f"webhook to {urlparse(self.url).netloc}"
        return "CloudWatch metrics"


def parse_target(text: str) -> AlertTarget:
    if text.strip() == "cloudwatch":
        return AlertTarget("cloudwatch")
    kind, sep, url = text.partition("=")
    if kind.strip() == "webhook" and sep:
        parsed = urlparse(url.strip())
        if parsed.scheme in ("http", "https") and parsed.netloc:
            return AlertTarget("webhook", url.strip())
        raise AlertConfigError(
            f"--alert webhook=…: {url.strip()!r} is not an http(s) URL; "
            f"use e.g. --alert webhook=https://hooks.slack.com/services/…"
        )
    raise AlertConfigError(
        f"--alert {text!r}: unknown alert target; use --alert webhook=URL or --alert cloudwatch"
    )


def parse_policy(text: str) -> str:
    if text not in POLICIES:
        raise AlertConfigError(f"--alert-on {text!r}: use one of {', '.join(POLICIES)}")
    return text


def run_failed(report: Mapping[str, Any]) -> bool:
    return int(report.get("exit_status", 0)) != 0 or bool(report.get("leaked"))


def changes(report: Mapping[str, Any]) -> list[str]:
    """What is new in this run, each with its earlier state (the history's verdicts)."""
    found = []
    for result in report.get("results") or []:
        said = f" ({result['previous']})" if result.get("previous") else ""
        if result.get("classification") == "new-failure":
            found.append(f"new failure: `{result['nodeid']}`{said}")
        elif result.get("classification") == "fixed":
            found.append(f"fixed: `{result['nodeid']}` (was {result.get('previous') or 'failing'})")
    news = report.get("changes") or {}
    if news.get("new_leak"):
        found.append(
            f"new leak: {len(report.get('leaked', []))} item(s) left behind ({news['new_leak']})"
        )
    for row in news.get("p95") or []:
        found.append(
            f"`{row['endpoint']}` p95 {row['p95_ms']:.0f} ms, beyond its trend "
            f"{row['trend_ms']:.0f} ms (median of {row['runs']} runs)"
        )
    return found


def should_alert(policy: str, report: Mapping[str, Any]) -> bool:
    if policy == "change":
        if report.get("history") is None:  # nothing to compare with: as --alert-on failure
            return run_failed(report)
        return bool(changes(report))
    return policy == "always" or run_failed(report)


def headline(report: Mapping[str, Any]) -> str:
    tests = report.get("tests", {})
    leaked = len(report.get("leaked", []))
    status = "FAILED" if run_failed(report) else "passed"
    counts = ", ".join(f"{n} {k}" for k, n in tests.items() if n) or "no tests"
    leak = f", {leaked} leaked" if leaked else ""
    version = f" (version {report['service_version']})" if report.get("service_version") else ""
    return (
        f"env-harness run {report.get('run_id')} on {report.get('environment')}{version} "
        f"{status}: {counts}{leak} (exit {report.get('exit_status')})"
    )


def slack_message(report: Mapping[str, Any], max_lines: int = 10) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (also what other receivers read) and blocks."""
    lines = [f"*{headline(report)}*"]
    news = changes(report)
    if news:
        lines.append("What changed:")
        lines += [f"• {line}" for line in news[:max_lines]]
    for result in (report.get("results") or [])[:500]:
        if result.get("classification") == "still-failing":
            lines.append(f"• still failing: `{result['nodeid']}` ({result.get('previous', '')})")
    for failure in report.get("failures", [])[:max_lines]:
        lines.append(f"• `{failure['nodeid']}` — {failure['message']}")
        if failure.get("trace_id"):
            lines.append(f"   trace `{failure['trace_id']}`")
        for line in (failure.get("service_logs") or [])[-LOG_LINES:]:  # nearest the failure
            message = " ".join(str(line["message"]).split())[:LOG_LINE_CHARS]
            lines.append(f"   `{line['log_group']}` {message}")
    for leak in report.get("leaked", [])[:max_lines]:
        ids = ", ".join(f"{k}={v}" for k, v in leak.items() if k != "kind")
        lines.append(f"• leaked {leak.get('kind')}: {ids}")
    for problem in report.get("cleanup_failures", [])[:max_lines]:
        lines.append(f"• cleanup failed: {problem}")
    text = "\n".join(lines)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def post_webhook(
    target: AlertTarget, payload: Mapping[str, Any], session: requests.Session | None = None
) -> str | None:
    """POST the message; returns a one-line warning when it was not delivered."""
    http = session or requests.Session()
    try:
        response = http.post(target.url, json=dict(payload), timeout=WEBHOOK_TIMEOUT)
    except requests.RequestException as error:
        return f"alert ({target.describe()}) not delivered: {type(error).__name__}"
    if not 200 <= response.status_code < 300:
        return f"alert ({target.describe()}) not delivered: HTTP {response.status_code}"
    return None


def metric_data(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    tests = report.get("tests", {})
    dimensions = [{"Name": "environment", "Value": str(report.get("environment") or "unknown")}]
    values = {
        "Passed": (tests.get("passed", 0), "Count"),
        "Failed": (tests.get("failed", 0) + tests.get("error", 0), "Count"),
        "Skipped": (tests.get("skipped", 0), "Count"),
        "Leaked": (len(report.get("leaked", [])), "Count"),
        "DurationSeconds": (float(report.get("duration_seconds", 0.0)), "Seconds"),
    }
    return [
        {"MetricName": name, "Dimensions": dimensions, "Value": float(value), "Unit": unit}
        for name, (value, unit) in values.items()
    ]


def put_metrics(cloudwatch: Any, report: Mapping[str, Any]) -> str | None:
    """PutMetricData through boto3; returns a one-line warning when it failed."""
    try:
        cloudwatch.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=metric_data(report))
    except Exception as error:  # botocore raises many kinds; all mean "not delivered"
        return f"alert (CloudWatch metrics) not delivered: {type(error).__name__}: {error}"
    return None


def send(
    targets: list[AlertTarget], policy: str, report: Mapping[str, Any], cloudwatch: Any = None
) -> tuple[list[str], list[str]]:
    """Deliver to every target the policy calls for: (delivered descriptions, warnings).

    Metrics go to CloudWatch on every run (a dashboard needs the passes too); webhook
    messages only on failure or leak unless the policy is ``always``."""
    delivered: list[str] = []
    warnings: list[str] = []
    for target in targets:
        if target.kind == "cloudwatch":
            if cloudwatch is None:
                warnings.append("alert (CloudWatch metrics) not delivered: no AWS profile")
                continue
            problem = put_metrics(cloudwatch, report)
        elif should_alert(policy, report):
            problem = post_webhook(target, slack_message(report))
        else:
            continue
        if problem:
            warnings.append(problem)
        else:
            delivered.append(target.describe())
    return delivered, warnings
