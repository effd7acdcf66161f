"""Issue 5's promise, end to end: against one externally started sandbox, `harness run
suites/events` (once alone, once with -n 2) passes, leaves every table, queue, topic and
subscription exactly as it was, and its JSON report carries per-event-type latency."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.clients.aws import Aws
from tests.digest import digest, snapshot
from tests.e2e.test_environment_unchanged import harness_run

pytestmark = pytest.mark.e2e


def test_events_suite_leaves_the_environment_identical_and_reports_latency(
    sandbox_environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    before = snapshot(aws)
    reports = [
        harness_run(sandbox_environ, tmp_path, "suites/events"),
        harness_run(sandbox_environ, tmp_path, "-n", "2", "suites/events"),
    ]
    after = snapshot(aws)
    assert after == before, "the environment changed"
    assert digest(after) == digest(before)
    for report in reports:
        assert report["tests"]["failed"] == report["tests"]["error"] == 0
        assert report["tests"]["passed"] >= 8
        assert report["resources"]["created"] == report["resources"]["cleaned"]
        assert report["resources"]["leaked"] == 0
        latency = report["event_latency"]
        assert set(latency) == {"user.created", "user.deleted"}
        for figures in latency.values():
            assert figures["count"] >= 3
            assert 0 <= figures["p50"] <= figures["p95"] <= figures["max"]
