"""What a run's results mean against its history: new failure, still failing, flaky, fixed.

Owns the rules, as pure functions of this run's test records and the earlier runs' (newest
first; the shards of one run count as one run, keyed by the shared run id):

- ``flaky`` — the test passed on a retry in this run; or it is in the flaky state: within the
  window (default 14 days) it passed and failed on the same test-code commit and the same
  deployed build — went from one to the other and back, so one break that stays broken is a
  new failure, then still failing, and its mend is fixed; a failure the service's new
  version caused is not flakiness — or passed on a retry; until it has passed ``passes``
  times in a row (default 5) since.
- ``still-failing`` — it fails, and its last run failed too (``failing_since`` names the run
  that began the streak);
- ``new-failure`` — it fails, its last run did not, and it is not flaky (a test's first run
  that fails is a new failure too);
- ``fixed`` — it passes, and its last run failed;
- ``new-test`` — its first run, not failing; ``passing`` — the rest (a skip neither passes
  nor fails: it is passing, and earlier skips are not looked at).

Also the run-level facts an alert on change needs: a new leak, and an endpoint whose p95 is
beyond its own trend. Never reads a store or a clock of its own (``now`` is given).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.history.records import RunRecord, TestRecord

NEW_FAILURE = "new-failure"
STILL_FAILING = "still-failing"
FLAKY = "flaky"
FIXED = "fixed"
PASSING = "passing"
NEW_TEST = "new-test"
CLASSES = (NEW_FAILURE, STILL_FAILING, FLAKY, FIXED, PASSING, NEW_TEST)
#: New failures first (what the terminal, Markdown and HTML show on top).
ORDER = {NEW_FAILURE: 0, STILL_FAILING: 1, FLAKY: 2, FIXED: 3, NEW_TEST: 4, PASSING: 5}

DEFAULT_WINDOW_DAYS = 14.0
DEFAULT_PASSES = 5
#: An endpoint's p95 beyond this many times the median of its earlier runs' p95 is news.
P95_FACTOR = 1.5
#: … once it has at least this many earlier runs to make a trend of.
P95_MIN_RUNS = 3


@dataclass(frozen=True)
class Policy:
    window_days: float = DEFAULT_WINDOW_DAYS
    passes: int = DEFAULT_PASSES


@dataclass(frozen=True)
class Past:
    """One earlier run of a test."""

    run_id: str
    started_at: float
    commit: str
    service_version: str
    record: TestRecord


@dataclass
class Verdict:
    classification: str
    failing_since: str | None = None
    flake_rate: float = 0.0
    #: The earlier state, said in words for an alert ("failing since itest-…, 3 runs").
    previous: str = ""


@dataclass
class Current:
    """This run: its id, start, test-code commit and deployed build."""

    run_id: str
    started_at: float
    commit: str = ""
    service_version: str = ""


def by_test(runs: Iterable[RunRecord]) -> dict[str, list[Past]]:
    """Each test's earlier runs, newest first (shards of one run are one run)."""
    found: dict[str, list[Past]] = {}
    for run in sorted(runs, key=lambda r: -r.started_at):
        for record in run.results:
            found.setdefault(record.nodeid, []).append(
                Past(run.run_id, run.started_at, run.commit, run.service_version, record)
            )
    return found


def _passed_clean(record: TestRecord) -> bool:
    return record.outcome == "passed" and record.attempts <= 1


def _in_flaky_state(past: Sequence[Past], test: TestRecord, now: Current, policy: Policy) -> bool:
    since = now.started_at - policy.window_days * 86400
    recent = [p.record for p in past if p.started_at >= since and p.record.counts]
    # the evidence is the earlier runs' (this run's own failure after a pass is a new
    # failure, and a pass after a failing streak a fix, until it flips back): a pass on a
    # retry, or a test that went from passing to failing and back (or the other way) on one
    # commit of the test code and one deployed build
    evidence = any(r.outcome == "passed" and r.attempts > 1 for r in recent)
    if not evidence:
        outcomes: dict[tuple[str, str], list[bool]] = {}
        for entry in reversed(past):  # oldest first
            if entry.started_at >= since and entry.record.counts:
                key = (entry.commit, entry.service_version)
                outcomes.setdefault(key, []).append(entry.record.failing)
        evidence = any(
            sum(1 for a, b in itertools.pairwise(seen) if a != b) >= 2 for seen in outcomes.values()
        )
    if not evidence:
        return False
    streak = 0
    for record in [test, *recent]:  # newest first: this run, then the earlier ones
        if not _passed_clean(record):
            break
        streak += 1
    return streak < policy.passes


def _streak(past: Sequence[Past]) -> list[Past]:
    """The failing runs right before this one, newest first."""
    streak = []
    for entry in past:
        if not entry.record.failing:
            break
        streak.append(entry)
    return streak


def classify_test(
    test: TestRecord, past: Sequence[Past], now: Current, policy: Policy = Policy()
) -> Verdict:
    """One test's verdict; ``past`` is its earlier runs, newest first."""
    counted = [p for p in past if p.record.counts]
    previous = counted[0] if counted else None
    streak = _streak(counted)
    verdict = Verdict(PASSING)
    if test.outcome == "passed" and test.attempts > 1:
        verdict.classification = FLAKY
        verdict.previous = f"passed on attempt {test.attempts}"
    elif not past:
        verdict.classification = NEW_FAILURE if test.failing else NEW_TEST
        if test.failing:
            verdict.failing_since = now.run_id
            verdict.previous = "its first run"
    elif test.failing:
        if streak:
            verdict.classification = STILL_FAILING
            verdict.failing_since = streak[-1].run_id
            verdict.previous = f"failing since {streak[-1].run_id}, {len(streak) + 1} runs"
        elif _in_flaky_state(past, test, now, policy):
            verdict.classification = FLAKY
            verdict.previous = "flaky: passed and failed on the same commit"
        else:
            verdict.classification = NEW_FAILURE
            verdict.failing_since = now.run_id
            if previous is not None:
                verdict.previous = f"passed in {previous.run_id}"
    elif test.counts and streak and _in_flaky_state(past, test, now, policy):
        verdict.classification = FLAKY
        verdict.previous = "flaky: passed and failed on the same commit"
    elif test.counts and streak:
        verdict.classification = FIXED
        verdict.previous = f"failing since {streak[-1].run_id}, {len(streak)} runs"
    elif test.counts and _in_flaky_state(past, test, now, policy):
        verdict.classification = FLAKY
        verdict.previous = "flaky: passed and failed on the same commit"
    verdict.flake_rate = _flake_rate(verdict.classification, past, now, policy)
    return verdict


def _flake_rate(classification: str, past: Sequence[Past], now: Current, policy: Policy) -> float:
    """The share of the test's runs in the window (this one included) that were flaky."""
    since = now.started_at - policy.window_days * 86400
    recent = [p.record.classification for p in past if p.started_at >= since]
    labels = [classification, *recent]
    return round(sum(1 for c in labels if c == FLAKY) / len(labels), 3)


@dataclass
class Classified:
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    runs_considered: int = 0

    def block(self, store: str) -> dict[str, Any]:
        """The JSON report's ``history`` block."""
        lists: dict[str, list[str]] = {c: [] for c in (NEW_FAILURE, STILL_FAILING, FIXED, FLAKY)}
        for nodeid, verdict in self.verdicts.items():
            if verdict.classification in lists:
                lists[verdict.classification].append(nodeid)
        return {
            "store": store,
            "runs_considered": self.runs_considered,
            "new_failures": lists[NEW_FAILURE],
            "still_failing": lists[STILL_FAILING],
            "fixed": lists[FIXED],
            "flaky": lists[FLAKY],
        }


def classify(
    tests: Iterable[TestRecord],
    runs: Sequence[RunRecord],
    now: Current,
    policy: Policy = Policy(),
) -> Classified:
    """Every test of this run against the earlier runs (newest first, this run excluded)."""
    history = by_test(runs)
    result = Classified(runs_considered=len({r.run_id for r in runs}))
    for test in tests:
        result.verdicts[test.nodeid] = classify_test(
            test, history.get(test.nodeid, []), now, policy
        )
    return result


def ordered(results: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Results as people read them: new failures first, then still failing, flaky, fixed."""
    return sorted(
        results, key=lambda r: (ORDER.get(str(r.get("classification")), 9), r.get("nodeid", ""))
    )


def new_leak(leaked: int, runs: Sequence[RunRecord]) -> str:
    """ "" unless this run leaked and the run before it did not; else the earlier state."""
    if not leaked:
        return ""
    last = _last_run(runs)
    if last is None:
        return "the first recorded run"
    if sum(r.leaks for r in runs if r.run_id == last) == 0:
        return f"{last} leaked nothing"
    return ""


def _last_run(runs: Sequence[RunRecord]) -> str | None:
    return max(runs, key=lambda r: r.started_at).run_id if runs else None


def p95_beyond_trend(
    latency: Iterable[dict[str, Any]],
    runs: Sequence[RunRecord],
    factor: float = P95_FACTOR,
    min_runs: int = P95_MIN_RUNS,
) -> list[dict[str, Any]]:
    """Endpoints whose p95 now is beyond ``factor`` times the median of their earlier p95s."""
    earlier: dict[str, list[float]] = {}
    for run in runs:
        for row in run.latency:
            earlier.setdefault(str(row["endpoint"]), []).append(float(row["p95_ms"]))
    found = []
    for row in latency:
        endpoint = f"{row['method']} {row['route']}" if "route" in row else str(row["endpoint"])
        values = earlier.get(endpoint, [])
        if len(values) < min_runs:
            continue
        trend = statistics.median(values)
        if float(row["p95_ms"]) > factor * trend:
            found.append(
                {
                    "endpoint": endpoint,
                    "p95_ms": float(row["p95_ms"]),
                    "trend_ms": round(trend, 1),
                    "runs": len(values),
                }
            )
    return found
