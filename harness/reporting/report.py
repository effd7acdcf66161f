"""The JSON run report: one file a CI job, an engineer or an alert reads after a run.

Owns counting test outcomes and rendering the run's facts (run id, environment and its
identity, seed, counts, failures (with trace ids and service log lines), duration,
resources created / cleaned / leaked, per-endpoint
latency and event processing latency) as JSON — and that the file at the report's path is
truthful or absent, never stale or torn: a run first replaces an earlier report there with an
``incomplete`` placeholder (:func:`write_placeholder`), and every write goes to a temporary
file renamed over the path (a failed write leaves the previous whole file, never half of
one). Everything in it has passed through the redactor's hands upstream; it never reads the
environment.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.events.stream import summarize as summarize_latency
from harness.reporting import latency

# The writers of the report's file live with the run's other output files (they import
# nothing heavy, so `harness run` uses them before it starts a sandbox).
from harness.reporting.outputs import (
    INCOMPLETE,
    write_atomic,
    write_failed_start,
    write_placeholder,
)
from harness.run import outcome


@dataclass
class RunReport:
    run_id: str
    environment: str
    profile: str
    base_url: str
    seed: int
    started_at: float = field(default_factory=time.time)
    outcomes: Counter[str] = field(default_factory=Counter)
    resources: Counter[str] = field(default_factory=Counter)
    cleanup_failures: list[str] = field(default_factory=list)
    leaked: list[dict[str, Any]] = field(default_factory=list)
    skipped_by_protection: int = 0
    #: publish → observed-effect samples (seconds) per event type, from every worker
    event_latency: dict[str, list[float]] = field(default_factory=dict)
    #: publish → seen samples (seconds) per event type: every event a test saw
    event_seen: dict[str, list[float]] = field(default_factory=dict)
    #: What the target said it is (``GET /health``: environment, version).
    identity: dict[str, Any] = field(default_factory=dict)
    #: The deployed build (the identity answer's ``version``, or the profile's version_path).
    service_version: str = ""
    #: One entry per failed test phase: ``{"nodeid", "when", "message", "trace_id",
    #: "service_logs": [{"timestamp", "log_group", "message"}]}`` (already redacted).
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: The service-log lookups of failed tests: the profile's groups, FilterLogEvents calls,
    #: tests looked up, lines attached, and why the logs could not be read ("" if they could).
    service_logs: dict[str, Any] = field(
        default_factory=lambda: {
            "log_groups": [],
            "calls": 0,
            "lookups": 0,
            "lines": 0,
            "error": "",
        }
    )
    #: Every HTTP latency sample of the run by endpoint (exact percentiles, not averages).
    latency_samples: latency.Samples = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    #: Under xdist: seconds from the run's start until its last worker was ready.
    workers_ready_seconds: float | None = None
    #: Which target, and where each part of it came from (:func:`harness.config.provenance`).
    target: dict[str, Any] = field(default_factory=dict)
    #: A stop request ended the run: ``{"signal", "cleanup": finished|abandoned}``.
    interrupted: dict[str, Any] = field(default_factory=dict)
    #: What this run left in place when it ended (an abandoned cleanup, a cut-short residue
    #: check): its recorded resources still unsettled and its lease; `harness recover` removes
    #: them.
    left_behind: list[dict[str, Any]] = field(default_factory=list)
    #: Recorded resources still present after the tests' cleanup (it was interrupted or
    #: failed): removed by the residue check, never counted as leaks.
    unfinished: list[dict[str, Any]] = field(default_factory=list)
    #: Problems of the harness's own files (a journal it could not write): each one line.
    errors: list[str] = field(default_factory=list)
    #: One entry per test: nodeid, outcome, attempts, duration_s, classification,
    #: failing_since, flake_rate (:mod:`harness.history`), new failures first.
    results: list[dict[str, Any]] = field(default_factory=list)
    #: ``{store, runs_considered, new_failures, still_failing, fixed, flaky}``; None without
    #: a readable history.
    history: dict[str, Any] | None = None
    #: The earlier runs the history was read from (newest first): the HTML report's trends.
    history_runs: list[dict[str, Any]] = field(default_factory=list)
    #: Things that did not change the verdict but someone should know (a history store that
    #: cannot be reached): each one line.
    warnings: list[str] = field(default_factory=list)
    #: What is new in this run beyond its tests (an alert on change says these):
    #: ``new_leak`` (the earlier state, "" when not new) and ``p95`` (endpoints beyond trend).
    changes: dict[str, Any] = field(default_factory=dict)

    def count(self, when: str, outcome: str, wasxfail: bool) -> None:
        """Fold one pytest report phase into the counts (pytest's own vocabulary)."""
        if wasxfail:
            if when == "call":
                self.outcomes["xfailed" if outcome == "skipped" else "xpassed"] += 1
            return
        if outcome == "failed":
            self.outcomes["failed" if when == "call" else "error"] += 1
        elif outcome == "passed" and when == "call":
            self.outcomes["passed"] += 1
        elif outcome == "skipped":
            self.outcomes["skipped"] += 1

    def add_worker_stats(self, stats: dict[str, Any]) -> None:
        for key in ("created", "cleaned", "failed", "kept", "belonging"):
            self.resources[key] = self.resources.get(key, 0) + int(stats.get(key, 0))
        self.cleanup_failures.extend(stats.get("failures", []))
        self.errors.extend(stats.get("errors", []))
        latency.merge(self.latency_samples, stats.get("latency") or {})
        for event_type, samples in stats.get("event_latency", {}).items():
            self.event_latency.setdefault(event_type, []).extend(samples)
        for event_type, samples in stats.get("event_seen", {}).items():
            self.event_seen.setdefault(event_type, []).extend(samples)
        logs = stats.get("service_logs") or {}
        for key in ("calls", "lookups", "lines"):
            self.service_logs[key] += int(logs.get(key, 0))
        if logs.get("error") and not self.service_logs["error"]:
            self.service_logs["error"] = str(logs["error"])
        # every worker is listed; one stopped before it could send its figures (read from its
        # journal) has no memory figure: None, never a guess
        self.workers.append(
            {"worker": stats.get("worker", ""), "peak_rss_mb": stats.get("peak_rss_mb")}
        )

    def as_dict(self, exit_status: int) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "environment": self.environment,
            "profile": self.profile,
            "base_url": self.base_url,
            "seed": self.seed,
            "identity": self.identity,
            "service_version": self.service_version,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "duration_seconds": round(time.time() - self.started_at, 3),
            "workers_ready_seconds": self.workers_ready_seconds,
            "exit_status": exit_status,
            "outcome": outcome.word(exit_status),
            "target": self.target,
            "tests": {
                k: self.outcomes.get(k, 0)
                for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
            },
            "skipped_by_protection": self.skipped_by_protection,
            "resources": {
                "created": self.resources.get("created", 0),
                "cleaned": self.resources.get("cleaned", 0),
                "kept": self.resources.get("kept", 0),
                "cleanup_failed": self.resources.get("failed", 0),
                "leaked": len(self.leaked),
                # written by the service for recorded resources, removed with them: no leak
                "belonging": self.resources.get("belonging", 0),
                # recorded, still there after an interrupted or failed cleanup: no leak
                "unfinished": len(self.unfinished),
            },
            "interrupted": self.interrupted or None,
            "left_behind": self.left_behind,
            "unfinished": self.unfinished,
            "errors": self.errors,
            "failures": self.failures,
            "service_logs": self.service_logs,
            "cleanup_failures": self.cleanup_failures,
            "workers": sorted(self.workers, key=lambda w: str(w["worker"])),
            "leaked": self.leaked,
            "event_latency": summarize_latency(self.event_latency),
            "events_seen": summarize_latency(self.event_seen),
            "latency": latency.summarize(self.latency_samples),
            # every sample (ms, per endpoint): `harness merge` keeps shards' percentiles exact
            "latency_samples_ms": {
                endpoint: [round(v, 2) for v in values]
                for endpoint, values in sorted(self.latency_samples.items())
            },
            "results": self.results,
            "history": self.history,
            "warnings": self.warnings,
            "changes": self.changes,
        }

    def write(self, path: Path, exit_status: int) -> None:
        write_atomic(path, self.as_dict(exit_status))


__all__ = ["INCOMPLETE", "RunReport", "write_atomic", "write_failed_start", "write_placeholder"]
