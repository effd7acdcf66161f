"""Plain ``pytest -n`` under the harness: xdist takes any whole number, and ``-n -1`` ran the
tests in one process as if -n was not given. The harness refuses it as ``harness run -n``
does — one line, exit 8 — before anything reaches the target (a loopback service that records
every request it gets)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.run import outcome
from tests.unit.loopback import loopback

REPO = Path(__file__).resolve().parents[2]


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "AWS_"))}
    environ.update(HARNESS_STATE_DIR=str(project / ".harness"), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_negative_worker_count_is_refused_before_the_target_is_touched(
    tmp_path: Path,
) -> None:
    with loopback() as service:
        service.route("/health", 200, {"environment": "staging"})
        (tmp_path / "environments.toml").write_text(
            f'[staging]\nbase_url = "{service.url}"\nprotected = false\n'
        )
        (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
        done = _pytest(tmp_path, "-n", "-1")
        received = list(service.received)
    everything = done.stdout + done.stderr
    assert done.returncode == outcome.CONFIG, everything
    assert done.stderr.splitlines() == [
        "harness: -n -1: give 1 or more workers, or auto (omit -n to run in one process)"
    ], everything
    assert "Traceback" not in everything and "passed" not in everything, everything
    assert received == []  # not even the identity check
    assert not (tmp_path / ".harness").exists()  # no journal, no lock
    # without a target the harness is off, and leaves xdist's reading of -n alone
    (tmp_path / "environments.toml").unlink()
    plain = _pytest(tmp_path, "-n", "-1")
    assert "harness:" not in plain.stdout + plain.stderr
    assert plain.returncode == 0, plain.stdout + plain.stderr
