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

import gc
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from harness.history.records import FAILING as _FAILING
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


class Past(NamedTuple):
    """One earlier run of a test (a tuple: a run reads ~20,000 of them, 100 runs of 200
    tests, and a frozen dataclass costs three times as much to make)."""

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


#: An earlier run of a test as :func:`classify` keeps it: a plain tuple laid out as
#: :class:`Past` (one allocation each; a run reads 100 runs of every test).
_Entry = tuple[str, float, str, str, TestRecord]


def _entries(runs: Iterable[RunRecord]) -> dict[str, list[_Entry]]:
    found: dict[str, list[_Entry]] = {}
    for run in sorted(runs, key=lambda r: -r.started_at):
        entry = (run.run_id, run.started_at, run.commit, run.service_version)
        for record in run.results:
            found.setdefault(record.nodeid, []).append((*entry, record))
    return found


def by_test(runs: Iterable[RunRecord]) -> dict[str, list[Past]]:
    """Each test's earlier runs, newest first (shards of one run are one run)."""
    return {
        nodeid: [Past(*entry) for entry in entries] for nodeid, entries in _entries(runs).items()
    }


class _Seen(NamedTuple):
    """What one pass over a test's earlier runs found (newest first)."""

    #: The last earlier run that passed or failed (skips say nothing).
    previous: _Entry | None
    #: The failing runs right before this one, newest first.
    streak: list[_Entry]
    #: Flaky evidence within the window: a pass on a retry, or a flip and a flip back on one
    #: commit and build.
    evidence: bool
    #: Clean passes (first attempt) in a row, newest first, within the window.
    clean_passes: int
    #: Earlier runs within the window, and how many of them were classified flaky.
    in_window: int
    flaky: int


def _look(past: Sequence[_Entry], since: float) -> _Seen:
    """One pass over a test's earlier runs (a run reads 100 runs of every test: this is
    the history's per-test cost), by index: ``Past`` and ``_Entry`` alike."""
    previous: _Entry | None = None
    streak: list[_Entry] = []
    streak_open = True
    evidence = False
    passes_open = True
    clean_passes = in_window = flaky = 0
    #: per (commit, build): (the newer run's failing, changes so far)
    flips: dict[tuple[str, str], tuple[bool, int]] = {}
    for entry in past:
        record = entry[4]
        within = entry[1] >= since
        if not within and previous is not None and not streak_open:
            break  # older than the window: only a failing streak would still count
        if within:
            in_window += 1
            if record.classification == FLAKY:
                flaky += 1
        if record.outcome == "skipped":
            continue
        failing = record.outcome in _FAILING
        if previous is None:
            previous = entry
        if streak_open:
            if failing:
                streak.append(entry)
            else:
                streak_open = False
        if not within:
            continue
        if passes_open:
            if record.outcome == "passed" and record.attempts <= 1:
                clean_passes += 1
            else:
                passes_open = False
        if evidence:
            continue
        if record.attempts > 1 and record.outcome == "passed":
            evidence = True
            continue
        key = (entry[2], entry[3])
        seen = flips.get(key)
        if seen is None:
            flips[key] = (failing, 0)
        elif seen[0] != failing:
            evidence = seen[1] + 1 >= 2
            flips[key] = (failing, seen[1] + 1)
    return _Seen(previous, streak, evidence, clean_passes, in_window, flaky)


def _flaky_state(seen: _Seen, test: TestRecord, policy: Policy) -> bool:
    """The evidence is the earlier runs' (this run's own failure after a pass is a new
    failure, and a pass after a failing streak a fix, until it flips back); the state ends
    after ``policy.passes`` clean passes in a row, this run's included."""
    if not seen.evidence:
        return False
    if test.outcome == "passed" and test.attempts <= 1:
        return 1 + seen.clean_passes < policy.passes
    return True


def classify_test(
    test: TestRecord, past: Sequence[_Entry], now: Current, policy: Policy = Policy()
) -> Verdict:
    """One test's verdict; ``past`` is its earlier runs, newest first."""
    seen = _look(past, now.started_at - policy.window_days * 86400)
    streak = seen.streak
    counts = test.outcome != "skipped"
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
            verdict.failing_since = streak[-1][0]
            verdict.previous = f"failing since {streak[-1][0]}, {len(streak) + 1} runs"
        elif _flaky_state(seen, test, policy):
            verdict.classification = FLAKY
            verdict.previous = "flaky: passed and failed on the same commit"
        else:
            verdict.classification = NEW_FAILURE
            verdict.failing_since = now.run_id
            if seen.previous is not None:
                verdict.previous = f"passed in {seen.previous[0]}"
    elif counts and _flaky_state(seen, test, policy):
        verdict.classification = FLAKY
        verdict.previous = "flaky: passed and failed on the same commit"
    elif counts and streak:
        verdict.classification = FIXED
        verdict.previous = f"failing since {streak[-1][0]}, {len(streak)} runs"
    flaky = seen.flaky + (verdict.classification == FLAKY)
    verdict.flake_rate = round(flaky / (seen.in_window + 1), 3)
    return verdict


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
    # ~20,000 small tuples for 100 runs of 200 tests, none of them in a cycle: the cyclic
    # collector would scan the run's every object again and again while they are made
    collecting = gc.isenabled()
    gc.disable()
    try:
        history = _entries(runs)
        result = Classified(runs_considered=len({r.run_id for r in runs}))
        for test in tests:
            result.verdicts[test.nodeid] = classify_test(
                test, history.get(test.nodeid, []), now, policy
            )
    finally:
        if collecting:
            gc.enable()
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
