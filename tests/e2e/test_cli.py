"""The `harness` command line as a user meets it: help that explains, `env up` printing its
exports first and stopping cleanly, and clear errors (exit 2) instead of tracebacks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        env=env or CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["sweep", "--help"]])
def test_help_explains(args: list[str]) -> None:
    result = harness(*args)
    assert result.returncode == 0
    assert "usage: harness" in result.stdout and len(result.stdout.splitlines()) > 5


def test_env_up_prints_exports_first_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "env", "up", "--quiet"],
        cwd=REPO,
        env=CLEAN_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(12)]
        started = _children(process.pid)  # `env up` execs the launcher: the emulator is its child
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    exports = [line for line in lines[:11] if line.startswith("export HARNESS_")]
    assert len(exports) == 11, lines
    assert exports[0].startswith("export HARNESS_BASE_URL=http://127.0.0.1:")
    assert lines[11].startswith("# sandbox ready")
    assert process.returncode == 0
    assert started, "the launcher should have started the emulator as a child"
    assert [pid for pid in started if _exists(pid)] == []


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep"], "names no running sandbox"),
        (["recover", "itest-20200101t000000-abcd"], "names no running sandbox"),
        (["sweep", "--env", "nope"], "unknown environment profile 'nope'"),
    ],
)
def test_commands_fail_early_with_the_fix(args: list[str], message: str) -> None:
    result = harness(*args)
    assert result.returncode == 8, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_profile_in_run_exits_8_with_the_fix(tmp_path: object) -> None:
    result = harness("run", "--env", "staging-typo")
    assert result.returncode == 8
    assert "unknown environment profile 'staging-typo'" in result.stderr
    assert "Traceback" not in result.stderr
