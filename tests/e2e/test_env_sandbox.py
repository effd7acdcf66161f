"""`harness run` and the sandbox it starts, as users meet it: the sandbox's progress lines
reach the user under the run's own `starting the local sandbox…` line, and its log keeps
them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
HARNESS = [sys.executable, "-m", "harness"]
RELAYED = re.compile(r"^harness:   \[\d+\.\d s\] \S.*$")


def test_harness_run_relays_the_sandbox_start_under_its_own_line(tmp_path: Path) -> None:
    state = tmp_path / ".harness"
    result = subprocess.run(
        [
            *HARNESS,
            "run",
            "--report",
            str(tmp_path / "report.json"),
            "--",
            "-k",
            "no_such_test",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        env={**CLEAN_ENV, "HARNESS_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 5, result.stderr  # nothing selected
    lines = result.stderr.splitlines()
    start = lines.index("harness: starting the local sandbox…")
    relayed = []
    for line in lines[start + 1 :]:
        if not line.startswith("harness:   "):
            break
        relayed.append(line)
    assert relayed and all(RELAYED.match(line) for line in relayed), lines
    assert relayed[0].endswith("] starting the AWS emulator…")
    assert re.search(r"\] ready in \d+\.\d s$", relayed[-1]), relayed
    assert lines[start + 1 + len(relayed)].startswith("harness: target [sandbox]")
    # relayed, not taken from the log: the sandbox's log keeps them, with its other lines
    (log,) = (state / "sandbox").glob("*.log")
    logged = [
        line for line in log.read_text().splitlines() if line.startswith("sandbox progress: ")
    ]
    assert [line.replace("sandbox progress: ", "harness:   ") for line in logged] == relayed
    assert " INFO " in log.read_text()
