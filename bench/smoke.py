"""Smoke run from a cold start: ``harness run --suite smoke`` with its own sandbox.

The post-deploy smoke stage's cost on a fresh machine: start the embedded sandbox, preflight,
lease, the smoke suite, cleanup, the residue check, stop the sandbox. Median of three runs,
each a fresh ``harness`` process. Usage: ``.venv/bin/python -m bench.smoke [--runs N]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench._common import (
    NO_DEV_PLUGINS,
    REPO,
    emit,
    harness_environ,
    median,
    note,
    require_ok,
    run,
    sandbox,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold runs (3)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="env-harness-smoke-"))
    env = harness_environ({}, work / "state")  # no HARNESS_BASE_URL: the run starts a sandbox
    seconds = []
    for number in range(args.runs):
        report = work / f"report-{number}.json"
        command = [sys.executable, "-m", "harness", "run", "--suite", "smoke"]
        command += ["--report", str(report), "--", *NO_DEV_PLUGINS]
        seconds.append(require_ok(run(command, env, REPO), "harness run --suite smoke").seconds)
        note(f"smoke run {number + 1}: {seconds[-1]:.2f}s")
    starts = []  # how much of it is the sandbox's own start (python -m sandbox to ready)
    for _ in range(args.runs):
        started = time.perf_counter()
        with sandbox("smoke-start"):
            starts.append(time.perf_counter() - started)
    emit("smoke_seconds", median(seconds), ".2f")
    emit("smoke_sandbox_start_seconds", median(starts), ".2f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
