"""The history's pure parts and its SQLite store: classification at the right runs, the
flaky state and how it ends, concurrent writers losing nothing, an unreachable store, the
quarantine file, balanced shards, alerts on change, the verdict with quarantined failures,
and shards' reports joined."""

from __future__ import annotations

import json
import multiprocessing
import random
from datetime import date
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from harness.history import classify, merge, quarantine, shards
from harness.history.records import RunRecord, TestRecord
from harness.history.store import (
    HistoryConfigError,
    HistoryUnavailable,
    S3Store,
    SqliteStore,
    open_store,
)
from harness.reporting import alerts, summary
from harness.run import outcome
from harness.safety.protect import ProtectedTargetError

DAY = 86400.0
T0 = 1_800_000_000.0


def run_of(n: int, results: dict[str, tuple[str, int]], **extra: object) -> RunRecord:
    return RunRecord(
        run_id=f"itest-2027011{n}t000000-ab{n:02d}",
        environment="staging",
        started_at=T0 + n * 3600,
        commit=str(extra.get("commit", "c1")),
        service_version=str(extra.get("version", "1.0")),
        results=[TestRecord(k, o, a) for k, (o, a) in results.items()],
    )


def replay(runs: list[dict[str, tuple[str, int]]], **extra: object) -> list[dict[str, str]]:
    """Each run classified against the ones before it, as the plugin does."""
    earlier: list[RunRecord] = []
    seen = []
    for n, results in enumerate(runs, 1):
        record = run_of(n, results, **extra)
        now = classify.Current(record.run_id, record.started_at, record.commit, "1.0")
        verdicts = classify.classify(record.results, earlier, now)
        for test in record.results:
            test.classification = verdicts.verdicts[test.nodeid].classification
        seen.append({k: v.classification for k, v in verdicts.verdicts.items()})
        earlier.append(record)
    return seen


def test_four_runs_new_failure_still_failing_fixed_and_flaky_at_the_right_runs() -> None:
    steady, broken, flaky = ("passed", 1), ("failed", 2), ("passed", 2)
    runs = [
        {"steady": steady, "b": steady, "f": flaky},
        {"steady": steady, "b": broken, "f": flaky},
        {"steady": steady, "b": broken, "f": flaky},
        {"steady": steady, "b": steady, "f": flaky},
    ]
    assert replay(runs) == [
        {"steady": "new-test", "b": "new-test", "f": "flaky"},
        {"steady": "passing", "b": "new-failure", "f": "flaky"},
        {"steady": "passing", "b": "still-failing", "f": "flaky"},
        {"steady": "passing", "b": "fixed", "f": "flaky"},
    ]


def test_failing_since_names_the_run_that_began_the_streak_and_counts_it() -> None:
    earlier = [run_of(1, {"t": ("passed", 1)}), run_of(2, {"t": ("failed", 1)})]
    earlier.append(run_of(3, {"t": ("failed", 1)}))
    verdict = classify.classify_test(
        TestRecord("t", "failed"),
        classify.by_test(earlier)["t"],
        classify.Current("itest-20270114t000000-ab04", T0 + 4 * 3600, "c1", "1.0"),
    )
    assert verdict.classification == "still-failing"
    assert verdict.failing_since == earlier[1].run_id
    assert verdict.previous == f"failing since {earlier[1].run_id}, 3 runs"


def test_a_test_that_flips_on_one_commit_is_flaky_until_it_passes_k_times_in_a_row() -> None:
    p, f = ("passed", 1), ("failed", 1)
    seen = replay([{"t": p}, {"t": f}, {"t": p}, {"t": f}, *[{"t": p}] * 6])
    assert [s["t"] for s in seen] == [
        "new-test", "new-failure", "fixed", "flaky",  # failed again on the same commit
        "flaky", "flaky", "flaky", "flaky", "passing", "passing",  # 5 passes in a row end it
    ]  # fmt: skip


def test_a_failure_on_a_new_build_of_the_service_is_not_flakiness() -> None:
    earlier = [
        run_of(1, {"t": ("passed", 1)}, version="1.0"),
        run_of(2, {"t": ("failed", 1)}, version="2.0"),
        run_of(3, {"t": ("passed", 1)}, version="2.1"),
    ]
    now = classify.Current("itest-20270114t000000-ab04", T0 + 4 * 3600, "c1", "2.2")
    verdict = classify.classify_test(TestRecord("t", "failed"), classify.by_test(earlier)["t"], now)
    assert verdict.classification == "new-failure"


def test_the_flaky_window_forgets_old_flips_and_a_brand_new_failing_test_is_new() -> None:
    old = [run_of(1, {"t": ("passed", 2)})]
    now = classify.Current("itest-20270130t000000-abcd", T0 + 20 * DAY, "c1", "1.0")
    assert classify.classify_test(TestRecord("t", "passed"), classify.by_test(old)["t"], now) == (
        classify.Verdict("passing", None, 0.0, "")
    )
    first = classify.classify_test(TestRecord("u", "failed"), [], now)
    assert (first.classification, first.failing_since) == ("new-failure", now.run_id)


def test_history_block_lists_each_class() -> None:
    result = classify.Classified(
        {
            "a": classify.Verdict("new-failure"),
            "b": classify.Verdict("flaky"),
            "c": classify.Verdict("passing"),
        },
        runs_considered=3,
    )
    assert result.block("sqlite:x") == {
        "store": "sqlite:x",
        "runs_considered": 3,
        "new_failures": ["a"],
        "still_failing": [],
        "fixed": [],
        "flaky": ["b"],
    }


def _append_many(path: str, worker: int, count: int) -> None:
    store = SqliteStore(Path(path))
    for n in range(count):
        record = run_of(1, {f"t{i}": ("passed", 1) for i in range(20)})
        record.run_id = f"itest-20270101t0000{worker:02d}-{n:04d}"
        record.started_at = T0 + worker * 1000 + n
        store.append(record)


def test_concurrent_writers_to_one_sqlite_file_lose_no_record(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_append_many, args=(str(path), w, 25)) for w in range(4)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    runs = SqliteStore(path).runs("staging", last=1000)
    assert len(runs) == 100 and all(len(r.results) == 20 for r in runs)
    assert SqliteStore(path).runs("staging", last=10)[0].started_at == T0 + 3 * 1000 + 24


def test_sqlite_keeps_every_shard_of_a_run_and_leaves_the_current_run_out(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite")
    one = run_of(1, {"a": ("passed", 1)})
    two = run_of(1, {"b": ("failed", 1)})
    two.shard = "s02"
    store.append(one)
    store.append(two)
    later = run_of(2, {"a": ("passed", 1)})
    store.append(later)
    runs = store.runs("staging")
    assert [(r.run_id, r.shard) for r in runs] == [
        (later.run_id, ""), (one.run_id, ""), (one.run_id, "s02"),
    ]  # fmt: skip
    assert store.runs("staging", last=1, exclude_run=later.run_id)[0].run_id == one.run_id
    assert store.runs("production") == []


def test_a_store_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HistoryUnavailable, match="sqlite:"):
        SqliteStore(blocker / "h.sqlite").append(run_of(1, {}))
    with pytest.raises(HistoryConfigError, match="s3://BUCKET/PREFIX"):
        open_store("s3://only-a-bucket", tmp_path)


def test_the_s3_store_lists_newest_first_and_its_client_only_puts_under_its_prefix() -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="ci-runs")
        store = S3Store("s3://ci-runs/history", client)
        for n in range(1, 6):
            store.append(run_of(n, {"t": ("passed", 1)}))
        runs = store.runs("staging", last=3, exclude_run=run_of(5, {}).run_id)
        assert [r.run_id for r in runs] == [run_of(n, {}).run_id for n in (4, 3, 2)]
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="ci-runs")["Contents"]]
        assert all(k.startswith("history/staging/runs/") for k in keys)
        with pytest.raises(ProtectedTargetError, match="DeleteObject refused"):
            client.delete_object(Bucket="ci-runs", Key=keys[0])
        with pytest.raises(ProtectedTargetError, match="PutObject refused"):
            client.put_object(Bucket="ci-other", Key="history/x", Body=b"")


def test_quarantine_file_round_trip_expiry_and_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "quarantine.toml"
    entry = quarantine.add(path, "a.py::t", "2027-01-31", 'say "why"\n', on=date(2027, 1, 1))
    assert quarantine.read(path) == {"a.py::t": entry}
    assert entry.active(date(2027, 1, 31)) and not entry.active(date(2027, 2, 1))
    with pytest.raises(quarantine.QuarantineError, match="has passed"):
        quarantine.add(path, "b", "2026-12-31", "r", on=date(2027, 1, 1))
    with pytest.raises(quarantine.QuarantineError, match="YYYY-MM-DD"):
        quarantine.add(path, "b", "next week", "r")
    assert quarantine.remove(path, "a.py::t") and quarantine.read(path) == {}
    path.write_text("[[quarantine]]\nnodeid = 'x'\n")
    with pytest.raises(quarantine.QuarantineError, match="reason"):
        quarantine.read(path)


def test_shards_by_recorded_durations_finish_within_ten_percent() -> None:
    rng = random.Random(7)
    nodeids = [f"t{i:03d}" for i in range(200)]
    known = {n: rng.lognormvariate(-2.0, 0.8) for n in nodeids}
    parts = shards.split(nodeids, 4, known)
    assert sorted(n for p in parts for n in p) == nodeids
    assert shards.spread([sum(known[n] for n in p) for p in parts]) <= 1.1
    assert parts == shards.split(list(nodeids), 4, dict(known))  # every shard agrees
    unknown = shards.split(nodeids, 4, {})
    assert [len(p) for p in unknown] == [50, 50, 50, 50]


def test_shard_option_refuses_bad_input() -> None:
    assert shards.parse("2/4") == (2, 4)
    for text in ("0/4", "5/4", "2", "a/b"):
        with pytest.raises(Exception, match="I/N"):
            shards.parse(text)


def test_a_quarantined_failure_does_not_fail_the_run_a_cleanup_failure_still_does() -> None:
    facts = outcome.RunFacts(pytest_status=1, tests_failed=0, quarantined_failures=1)
    assert outcome.decide(facts) == outcome.PASSED
    assert outcome.decide(outcome.RunFacts(pytest_status=1, tests_failed=1)) == outcome.FAILED


def report_with(results: list[dict], **extra: object) -> dict:
    return {
        "run_id": "itest-20270101t000000-abcd",
        "environment": "staging",
        "exit_status": 0,
        "tests": {"passed": 1},
        "results": results,
        "history": {"store": "s", "runs_considered": 3},
        **extra,
    }


def test_alert_on_change_only_when_something_is_new_with_the_earlier_state() -> None:
    still = {
        "nodeid": "a",
        "classification": "still-failing",
        "previous": "failing since X, 3 runs",
    }
    assert not alerts.should_alert("change", report_with([still], exit_status=1))
    fixed = {"nodeid": "b", "classification": "fixed", "previous": "failing since itest-1, 3 runs"}
    assert alerts.should_alert("change", report_with([fixed]))
    text = alerts.slack_message(report_with([fixed, still]))["text"]
    assert "fixed: `b` (was failing since itest-1, 3 runs)" in text
    assert "still failing: `a` (failing since X, 3 runs)" in text
    slow = report_with([], changes={"p95": [{"endpoint": "GET /x", "p95_ms": 300.0,
                                             "trend_ms": 100.0, "runs": 5}]})  # fmt: skip
    assert alerts.should_alert("change", slow)
    assert "beyond its trend 100 ms" in alerts.slack_message(slow)["text"]
    # no history to compare with: as --alert-on failure
    assert alerts.should_alert("change", {**report_with([]), "history": None, "exit_status": 1})


def test_p95_beyond_its_own_trend_and_a_new_leak() -> None:
    earlier = [run_of(n, {}) for n in range(1, 5)]
    for run in earlier:
        run.latency = [{"endpoint": "GET /x", "p95_ms": 100.0}]
    rows = [{"method": "GET", "route": "/x", "p95_ms": 160.0}]
    assert classify.p95_beyond_trend(rows, earlier)[0]["trend_ms"] == 100.0
    assert classify.p95_beyond_trend([{**rows[0], "p95_ms": 140.0}], earlier) == []
    assert classify.new_leak(2, earlier) == f"{earlier[-1].run_id} leaked nothing"
    earlier[-1].leaks = 1
    assert classify.new_leak(2, earlier) == ""


def test_merged_shards_sum_counts_and_keep_percentiles_exact() -> None:
    one = report_with(
        [{"nodeid": "a", "outcome": "passed", "classification": "passing"}],
        tests={"passed": 1, "failed": 0},
        resources={"created": 2, "leaked": 0},
        latency_samples_ms={"GET /x": [10.0, 20.0]},
    )
    two = report_with(
        [{"nodeid": "b", "outcome": "failed", "classification": "new-failure"}],
        tests={"passed": 0, "failed": 1},
        resources={"created": 3, "leaked": 0},
        latency_samples_ms={"GET /x": [30.0, 1000.0]},
        exit_status=1,
        history={
            "store": "s",
            "runs_considered": 2,
            "new_failures": ["b"],
            "still_failing": [],
            "fixed": [],
            "flaky": [],
        },
    )
    one["history"] = {**two["history"], "new_failures": []}
    joined = merge.join([one, two], ["r1.json", "r2.json"])
    assert joined["tests"] == {"passed": 1, "failed": 1}
    assert joined["resources"]["created"] == 5
    assert joined["exit_status"] == 1 and joined["outcome"] == "failed"
    assert [r["nodeid"] for r in joined["results"]] == ["b", "a"]  # new failures first
    assert joined["history"]["new_failures"] == ["b"]
    assert joined["latency"][0]["max_ms"] == 1000.0 and joined["latency"][0]["count"] == 4
    with pytest.raises(merge.MergeError, match="different runs"):
        merge.join([one, {**two, "run_id": "itest-20270101t000000-zzzz"}], ["a", "b"])
    assert merge.worst([0, None]) == outcome.INTERNAL_ERROR
    assert merge.worst([5, 0]) == 0 and merge.worst([6, 1, 0]) == 1


def test_summary_shows_new_failures_first_with_their_earlier_state() -> None:
    text = summary.render(
        report_with(
            [
                {"nodeid": "f", "classification": "fixed", "previous": "failing since X, 2 runs"},
                {"nodeid": "n", "classification": "new-failure", "previous": "passed in Y"},
            ],
            history={
                "store": "s",
                "runs_considered": 3,
                "new_failures": ["n"],
                "still_failing": [],
                "fixed": ["f"],
                "flaky": [],
            },
        )
    )
    assert text.index("new failure | `n`") < text.index("fixed | `f`")
    assert "failing since X, 2 runs" in text


def test_trend_figures_carry_each_runs_counts() -> None:
    from harness.reporting import trends

    earlier = [run_of(1, {"a": ("passed", 1), "b": ("failed", 1)}).as_dict()]
    earlier[0]["latency"] = [{"endpoint": "GET /x", "p95_ms": 12.0}]
    report = report_with(
        [{"nodeid": "a", "outcome": "passed", "classification": "flaky", "duration_s": 1.0}],
        latency=[{"method": "GET", "route": "/x", "p95_ms": 30.0}],
    )
    figures = trends.figures(report, earlier)
    bars = {t["name"]: t["y"] for t in figures["harness-trend-runs"]["data"]}
    assert bars == {"passed": [1, 0], "failed": [1, 0], "flaky": [0, 1]}
    assert figures["harness-trend-p95"]["data"][0]["y"] == [12.0, 30.0]
    assert json.dumps(figures)  # plain data: embedded as is
