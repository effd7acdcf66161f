"""What the sandbox tells its user on a bad command line, and what its launches leave behind.

A bad option is one line naming the command and its ``--help`` (exit 2, nothing started);
launches keep their stderr in the test's own temporary folder, never in the machine's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from launching import start_process


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
