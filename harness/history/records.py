"""What one run leaves in its history: a run record and one record per test.

Owns the two shapes (:class:`TestRecord`, :class:`RunRecord`), turning them into plain
dictionaries and back (the S3 store's objects and the SQLite rows both hold them), building a
run record from the JSON report's dictionary, and finding the git commit of the test code
(``$HARNESS_COMMIT``, CI's own variables, else ``git rev-parse HEAD`` in the project). Pure
data: it never talks to a store.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: A test's outcome, in pytest's words (one per test, its last attempt's).
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
FAILING = frozenset({"failed", "error"})
#: Variables that name the commit being tested, most specific first.
COMMIT_VARIABLES = ("HARNESS_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "BUILD_VCS_NUMBER")


@dataclass(slots=True)
class TestRecord:
    """One test in one run (its last attempt's outcome; its time over every attempt)."""

    __test__ = False  # not a test class

    nodeid: str
    outcome: str
    attempts: int = 1
    duration_s: float = 0.0
    #: What the run made of it (:mod:`harness.history.classify`); "" when not classified.
    classification: str = ""
    #: It was quarantined in this run: its failure did not fail the run.
    quarantined: bool = False

    @property
    def failing(self) -> bool:
        return self.outcome in FAILING

    @property
    def counts(self) -> bool:
        """A skip says nothing about whether a test works: it neither passes nor fails."""
        return self.outcome not in ("skipped",)


@dataclass
class RunRecord:
    """One run (or one CI shard of it): who, what, and how it went."""

    run_id: str
    shard: str = ""
    profile: str = ""
    environment: str = ""
    started_at: float = 0.0
    duration_s: float = 0.0
    outcome: str = ""
    exit_status: int | None = None
    service_version: str = ""
    #: The git commit of the test code ("" when unknown).
    commit: str = ""
    tests: dict[str, int] = field(default_factory=dict)
    resources: dict[str, int] = field(default_factory=dict)
    leaks: int = 0
    #: Per endpoint: ``{"endpoint": "GET /users/{id}", "count", "p50_ms", "p95_ms"}``.
    latency: list[dict[str, Any]] = field(default_factory=list)
    #: Per event type: ``{"count", "p50", "p95"}`` (seconds, publish → processed).
    events: dict[str, dict[str, float]] = field(default_factory=dict)
    results: list[TestRecord] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        results = [
            TestRecord(**{k: v for k, v in r.items() if k in TestRecord.__dataclass_fields__})
            for r in known.pop("results", [])
        ]
        return cls(**known, results=results)


def from_report(report: Mapping[str, Any], shard: str, commit: str, started_at: float) -> RunRecord:
    """The run record of a finished run, from its JSON report's dictionary."""
    resources = dict(report.get("resources") or {})
    return RunRecord(
        run_id=str(report.get("run_id", "")),
        shard=shard,
        profile=str(report.get("profile", "")),
        environment=str(report.get("environment", "")),
        started_at=started_at,
        duration_s=float(report.get("duration_seconds") or 0.0),
        outcome=str(report.get("outcome", "")),
        exit_status=report.get("exit_status"),
        service_version=str(report.get("service_version") or ""),
        commit=commit,
        tests={k: int(v) for k, v in (report.get("tests") or {}).items()},
        resources={k: int(v) for k, v in resources.items()},
        leaks=int(resources.get("leaked", 0)),
        latency=[
            {
                "endpoint": f"{row['method']} {row['route']}",
                "count": row["count"],
                "p50_ms": row["p50_ms"],
                "p95_ms": row["p95_ms"],
            }
            for row in report.get("latency") or []
        ],
        events={
            kind: {"count": row["count"], "p50": row["p50"], "p95": row["p95"]}
            for kind, row in (report.get("event_latency") or {}).items()
        },
        results=[
            TestRecord(
                nodeid=r["nodeid"],
                outcome=r["outcome"],
                attempts=int(r.get("attempts", 1)),
                duration_s=float(r.get("duration_s", 0.0)),
                classification=str(r.get("classification") or ""),
                quarantined=bool(r.get("quarantined")),
            )
            for r in report.get("results") or []
        ],
    )


def code_commit(root: Path | str | None, environ: Mapping[str, str] | None = None) -> str:
    """The commit of the test code: a CI variable, else ``git rev-parse HEAD`` in ``root``
    (bounded; "" when there is no git or no repository)."""
    environ = os.environ if environ is None else environ
    for name in COMMIT_VARIABLES:
        if environ.get(name):
            return str(environ[name]).strip()
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=str(root or "."),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
