"""What the sandbox tells its user while it starts, and on a bad command line.

A real ``python -m harness.sandbox`` (the session's ``sandbox``, or a launch of its own):
each step of a start is one ``sandbox progress: [SECONDS s] WHAT`` line on stderr, the last
``ready in …``; stdout keeps only the exports. A bad option is one line naming the command
and its ``--help`` (exit 2, nothing started). Launches keep their stderr in the test's own
temporary folder, never in the machine's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from launching import LaunchedSandbox, launch, start_process

PROGRESS = re.compile(r"^sandbox progress: \[(\d+\.\d) s\] (\S.*)$")


def progress_steps(stderr: str) -> list[tuple[float, str]]:
    lines = [line for line in stderr.splitlines() if line.startswith("sandbox progress: ")]
    matches = [PROGRESS.match(line) for line in lines]
    assert all(matches), lines
    return [(float(m.group(1)), m.group(2)) for m in matches if m]


def test_an_sns_start_says_each_step_on_stderr(sandbox: LaunchedSandbox) -> None:
    steps = progress_steps(sandbox.stderr())
    assert [what for _, what in steps[:-1]] == [
        "starting the AWS emulator…",
        "creating the tables, topic and queue…",
        "starting the service…",
        "signing up 4 smoke account(s)…",
    ]
    assert re.fullmatch(r"ready in \d+\.\d s", steps[-1][1]), steps
    times = [seconds for seconds, _ in steps]
    assert times == sorted(times)
    assert not [line for line in sandbox.stdout_lines if "progress" in line]


def test_with_a_log_file_progress_still_shows_on_stderr_and_is_logged_too(
    tmp_path: Path,
) -> None:
    log = tmp_path / "sandbox.log"
    launched = launch(["--quiet", "--log-file", str(log)], tmp_path)
    try:
        shown = launched.stderr()
    finally:
        launched.stop()
    steps = progress_steps(shown)
    assert steps and steps[-1][1].startswith("ready in ")
    # stderr: the progress lines only; the logs went to the file, with the steps among them
    assert [line for line in shown.splitlines() if not line.startswith("sandbox progress")] == []
    logged = log.read_text()
    assert " sandbox INFO emulator pid " in logged
    assert all(f" sandbox.progress INFO {what}\n" in logged for _, what in steps), logged


def test_a_launch_keeps_its_stderr_in_the_folder_it_is_given(tmp_path: Path) -> None:
    proc, stderr_path = start_process(["--bogus"], tmp_path)
    try:
        assert proc.wait(60) == 2
    finally:
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.stdout.close()
    assert stderr_path.parent == tmp_path
    assert out == b""
    assert stderr_path.read_text() == (
        "python -m harness.sandbox: unrecognized arguments: --bogus "
        "(see `python -m harness.sandbox --help`)\n"
    )


def test_its_help_names_the_command_it_was_started_as() -> None:
    own = subprocess.run(
        [sys.executable, "-m", "harness.sandbox", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert own.returncode == 0 and own.stdout.startswith("usage: python -m harness.sandbox ")
    fronted = subprocess.run(
        [sys.executable, "-m", "harness.sandbox", "--bus", "sqs"],
        env={**os.environ, "SANDBOX_PROG": "harness env up", "SANDBOX_USAGE_STATUS": "8"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fronted.returncode == 8 and fronted.stdout == ""
    assert fronted.stderr.startswith("harness env up: argument --bus: invalid choice: 'sqs'")
    assert fronted.stderr.endswith(" (see `harness env up --help`)\n")
