"""The history's costs and the balanced shards (issue 22).

- ``history_overhead_ms_per_test``: what history adds per test to a run's controller —
  folding its three phase reports into a record (real ``TestReport`` objects), classifying it
  against its last 100 runs, and its rows in the run's one SQLite transaction: the slope
  between a 200-test and a 1,000-test run, each over a store of 100 earlier runs of its
  tests (in process, median of rounds); ``history_fixed_ms_per_run`` is the rest (the
  transaction's commit and checkpoint, one fsync or two).
- ``history_read_100_runs_ms_sqlite`` / ``_s3``: reading the last 100 runs (200 tests each) at
  a run's start, from SQLite and from the sandbox emulator's S3 (one object per run).
- ``shard_spread_*``: a 200-test suite (each test sleeps its own seeded, long-tailed
  duration) split 4 ways by ``harness run --shard I/4``, the shards run at once against one
  sandbox: max/min of the shards' test time, without history (unknown tests: spread by count)
  and with the durations one recorded run left.

Usage: ``.venv/bin/python -m bench.history [--rounds N] [--tests N]``.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench._common import emit, harness_environ, median, note, read_report, sandbox, write_suite
from harness.clients.aws import Aws
from harness.history import classify, shards
from harness.history.plugin import _Result
from harness.history.records import RunRecord, TestRecord
from harness.history.store import S3Store, SqliteStore, history_s3_client
from harness.kinds.registry import load_profile

TESTS = 200
RUNS = 100


def earlier_runs(tests: int, runs: int) -> list[RunRecord]:
    rng = random.Random(1)
    return [
        RunRecord(
            run_id=f"itest-2027{(n // 28) % 12 + 1:02d}{n % 28 + 1:02d}t000000-{n:04d}",
            environment="bench",
            started_at=1_800_000_000.0 + n * 3600,
            commit="c1",
            service_version="1.0",
            tests={"passed": tests},
            latency=[{"endpoint": "GET /users/{id}", "count": 10, "p50_ms": 5.0, "p95_ms": 9.0}],
            results=[
                TestRecord(
                    f"suite/test_{i:03d}.py::test_it",
                    "passed" if rng.random() > 0.02 else "failed",
                    1,
                    rng.random(),
                )
                for i in range(tests)
            ],
        )
        for n in range(runs)
    ]


def reports_of(tests: int) -> list[pytest.TestReport]:
    made = []
    for i in range(tests):
        nodeid = f"suite/test_{i:03d}.py::test_it"
        for when in ("setup", "call", "teardown"):
            made.append(
                pytest.TestReport(
                    nodeid, ("x", 0, "test_it"), {}, "passed", None, when, duration=0.01
                )
            )
    return made


def overhead(tests: int, rounds: int, folder: Path) -> tuple[float, float]:
    """(ms of record + classify + append for a run of ``tests``, ms to read 100 runs)."""
    store = SqliteStore(folder / "history.sqlite")
    for run in earlier_runs(tests, RUNS):
        store.append(run)
    reports = reports_of(tests)
    totals, reads = [], []
    for number in range(rounds):
        started = time.perf_counter()
        runs = store.runs("bench", RUNS)
        reads.append(time.perf_counter() - started)
        started = time.perf_counter()
        results: dict[str, _Result] = {}
        for report in reports:
            results.setdefault(report.nodeid, _Result()).add(report)
        records = [r.record(n) for n, r in results.items()]
        now = classify.Current(f"itest-20280101t0000{number:02d}-zzzz", 1_900_000_000.0, "c1")
        verdicts = classify.classify(records, runs, now)
        for record in records:
            record.classification = verdicts.verdicts[record.nodeid].classification
        store.append(
            RunRecord(
                now.run_id, environment="bench-out", started_at=now.started_at, results=records
            )
        )
        totals.append((time.perf_counter() - started) * 1000)
    return median(totals), median(reads) * 1000


def s3_read(tests: int, rounds: int) -> float:
    with sandbox("history-s3") as box:
        profile = load_profile("sandbox", environ={**box.exports})
        client = history_s3_client(Aws(profile))
        store = S3Store("s3://sandbox-test-history/bench", client)
        for run in earlier_runs(tests, RUNS):
            store.append(run)
        seconds = []
        for _ in range(rounds):
            started = time.perf_counter()
            assert len(store.runs("bench", RUNS)) == RUNS
            seconds.append(time.perf_counter() - started)
    return median(seconds) * 1000


SLEEPY = """
import json, os, time
import pytest

DURATIONS = json.loads(os.environ["BENCH_DURATIONS"])


@pytest.mark.parametrize("n", range(len(DURATIONS)))
def test_sleeps(n):
    time.sleep(DURATIONS[n])
"""


def shard_spreads(tests: int, folder: Path) -> tuple[float, float]:
    rng = random.Random(22)
    durations = [round(min(rng.lognormvariate(-3.3, 1.0), 1.0), 4) for _ in range(tests)]
    suite = write_suite(folder / "suite", {"test_sleepy.py": SLEEPY})
    import json

    with sandbox("history-shards") as box:
        env = harness_environ(box.exports, folder / "state", BENCH_DURATIONS=json.dumps(durations))
        history = f"--history={folder / 'shards.sqlite'}"

        def shard_times(*extra: str) -> float:
            processes = []
            for index in range(1, 5):
                report = folder / f"shard-{index}-{time.monotonic_ns()}.json"
                command = [sys.executable, "-m", "harness", "run", "--report", str(report),
                           "--shard", f"{index}/4", *extra]  # fmt: skip
                processes.append((report, subprocess.Popen(command, cwd=suite, env=env,
                                                          stdout=subprocess.DEVNULL)))  # fmt: skip
            totals = []
            for report, process in processes:
                process.wait(timeout=600)
                results = read_report(report)["results"]
                totals.append(sum(r["duration_s"] for r in results))
            note(f"shard test seconds: {' '.join(f'{t:.2f}' for t in totals)}")
            return shards.spread(totals)

        without = shard_times("--no-history")
        recorded = folder / "whole.json"
        subprocess.run(
            [sys.executable, "-m", "harness", "run", "--report", str(recorded), history],
            cwd=suite, env=env, stdout=subprocess.DEVNULL, timeout=600, check=True,
        )  # fmt: skip
        with_history = shard_times(history)
    return without, with_history


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tests", type=int, default=TESTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="env-harness-history-") as temporary:
        folder = Path(temporary)
        small, read_ms = overhead(args.tests, args.rounds, folder / "small")
        large, _ = overhead(args.tests * 5, args.rounds, folder / "large")
        per_test = (large - small) / (args.tests * 4)
        emit("history_overhead_ms_per_test", per_test, ".3f")
        emit("history_fixed_ms_per_run", small - per_test * args.tests, ".1f")
        emit("history_read_100_runs_ms_sqlite", read_ms, ".1f")
        emit("history_read_100_runs_ms_s3", s3_read(args.tests, max(1, args.rounds // 2)), ".1f")
        without, with_history = shard_spreads(args.tests, folder)
        emit("shard_tests", args.tests)
        emit("shard_spread_without_history", without, ".3f")
        emit("shard_spread_with_history", with_history, ".3f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
