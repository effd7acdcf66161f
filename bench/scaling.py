"""Parallel scaling against a remote-like environment: ``-n 1`` vs ``-n 8``.

The sandbox's service URL and its AWS endpoint each sit behind a proxy that adds 50 ms to
every request (``tests/faultproxy.py``), as a deployed environment in another region would.
A generated suite of I/O-bound tests (each writes a token straight into the token table,
reads the user through the API, checks health, and is cleaned up by the ledger) runs through
the harness with one worker and with eight, same run length; the figure is the ratio of wall
times. Worker start-up is what the ``-n 8`` run's report says it took until its last worker
was ready (``workers_ready_seconds``), reported as its share of the ``-n 8`` time; the whole
fixed cost of a run (the same ``-n 8`` over 8 empty tests: start-up, preflight, lease,
residue check) is printed too. Peak RSS per worker comes from the run report.
Usage: ``.venv/bin/python -m bench.scaling [--tests N] [--delay SECONDS]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench._common import (
    NO_DEV_PLUGINS,
    PLUGINS,
    emit,
    harness_environ,
    note,
    read_report,
    require_ok,
    run,
    sandbox,
    write_suite,
)
from tests.faultproxy import FaultPlan, FaultProxy

IO_TEST = """
import pytest


@pytest.mark.parametrize("n", range({n}))
def test_remote_round_trips(api, token_factory, n):
    token = token_factory()  # a direct DynamoDB write, journaled, deleted after the test
    response = api.get(f"/users/{{token.uid}}", auth=token.auth)
    assert response.status_code == 404, response.text  # a valid token of no user
    for _ in range({health}):  # cheap for the service, 50 ms each on the wire
        assert api.get("/health").json()["status"] == "ok"
"""

EMPTY_TEST = """
import pytest


@pytest.mark.parametrize("n", range(8))
def test_nothing(n):
    pass
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=600, help="I/O-bound tests (600)")
    parser.add_argument("--delay", type=float, default=0.05, help="added per request (0.05 s)")
    parser.add_argument("--workers", type=int, default=8, help="parallel workers (8)")
    parser.add_argument("--health", type=int, default=6, help="extra GETs per test (6)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="env-harness-scaling-"))
    suite = write_suite(
        work / "suite",
        {
            "test_io.py": IO_TEST.format(n=args.tests, health=args.health),
            "test_empty.py": EMPTY_TEST,
        },
    )
    # hypothesis is a dev-only dependency of this project (its own property tests); its
    # pytest plugin would add ~1 CPU-second to each worker's start and is not part of an
    # install that runs suites, so it is switched off here.
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NO_DEV_PLUGINS]
    pytest += PLUGINS
    with (
        sandbox("scaling") as box,
        FaultProxy(box.exports["HARNESS_BASE_URL"], FaultPlan(delay=args.delay)) as api,
        FaultProxy(box.exports["HARNESS_AWS_ENDPOINT_URL"], FaultPlan(delay=args.delay)) as aws,
    ):
        env = harness_environ(
            box.exports,
            work / "state",
            HARNESS_BASE_URL=api.url,
            HARNESS_AWS_ENDPOINT_URL=aws.url,
        )

        def timed(workers: int, test_file: str, report: str) -> float:
            command = [*pytest, "-n", str(workers), "--harness-report", report, test_file]
            return require_ok(run(command, env, suite), f"-n {workers} {test_file}").seconds

        workers = args.workers
        timed(workers, "test_empty.py", "warmup.json")  # first-use imports, page cache
        fixed = timed(workers, "test_empty.py", "startup.json")
        note(f"-n {workers} run of empty tests (start-up and fixed costs): {fixed:.2f}s")
        one = timed(1, "test_io.py", "n1.json")
        note(f"-n 1: {one:.2f}s")
        many = timed(workers, "test_io.py", "n8.json")
        note(f"-n {workers}: {many:.2f}s")
    report = read_report(suite / "n8.json")
    assert report["tests"]["passed"] == args.tests, report["tests"]
    startup = float(report["workers_ready_seconds"])
    rss = [w["peak_rss_mb"] for w in report.get("workers", []) if w["worker"] != "main"]
    controller = [w["peak_rss_mb"] for w in report.get("workers", []) if w["worker"] == "main"]
    emit("scaling_tests", args.tests)
    emit("scaling_delay_ms_per_request", round(args.delay * 1000))
    emit("scaling_n1_seconds", one, ".2f")
    emit(f"scaling_n{workers}_seconds", many, ".2f")
    emit(f"scaling_n{workers}_startup_seconds", startup, ".2f")
    emit(f"scaling_n{workers}_startup_share", startup / many, ".3f")
    emit(f"scaling_n{workers}_fixed_costs_seconds", fixed, ".2f")
    emit(f"scaling_n{workers}_vs_n1", one / many, ".2f")
    if rss:
        emit("peak_rss_mb", max(rss), ".1f")
        emit("peak_rss_mb_workers", " ".join(f"{v:g}" for v in rss))
    if controller:
        emit("peak_rss_mb_controller", max(controller), ".1f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
