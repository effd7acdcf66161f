"""The local sandbox's progress relay: the lines a sandbox writes to its log while it starts
are handed on as they come, and nothing else. Real files, a real child process (a stand-in
that prints what a sandbox would); no sandbox starts here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.run.local_sandbox import PendingSandbox, ProgressTail


def test_progress_lines_are_relayed_and_nothing_else(tmp_path: Path) -> None:
    log = tmp_path / "sandbox.log"
    log.write_text("2026-12-06 sandbox INFO emulator pid 1\nsandbox progress: [0.0 s] star")
    relayed: list[str] = []
    tail = ProgressTail(log, relayed.append)
    tail.poll()
    assert relayed == []  # half a line waits for its end
    with log.open("a") as more:
        more.write("ting the AWS emulator…\r\nsandbox: not progress\n")
        more.write("sandbox progress: [0.6 s] ready in 0.6 s\n")
    tail.poll()
    tail.poll()  # nothing new: nothing twice
    assert relayed == ["[0.0 s] starting the AWS emulator…", "[0.6 s] ready in 0.6 s"]


def test_a_missing_log_is_no_error(tmp_path: Path) -> None:
    relayed: list[str] = []
    ProgressTail(tmp_path / "not-yet.log", relayed.append).poll()
    assert relayed == []


CHILD = """
import sys, time
for step in ("starting the AWS emulator…", "starting the service…"):
    print("sandbox progress: [0.1 s] " + step, file=sys.stderr, flush=True)
    time.sleep(0.3)
print("irrelevant log line", file=sys.stderr, flush=True)
print("sandbox progress: [0.9 s] ready in 0.9 s", file=sys.stderr, flush=True)
print("export HARNESS_BASE_URL=http://127.0.0.1:1", flush=True)
print("# sandbox ready: pid 1", flush=True)
time.sleep(30)
"""


def test_wait_ready_relays_every_progress_line_up_to_the_ready_marker(tmp_path: Path) -> None:
    """The line written just before the ready marker is relayed too (a last look at the log
    once the marker is read), and the log keeps every line."""
    log = tmp_path / "sandbox.log"
    with log.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    relayed: list[str] = []
    sandbox = PendingSandbox(child, log).wait_ready(timeout=20, progress=relayed.append)
    try:
        assert relayed == [
            "[0.1 s] starting the AWS emulator…",
            "[0.1 s] starting the service…",
            "[0.9 s] ready in 0.9 s",
        ]
        assert sandbox.exports == {"HARNESS_BASE_URL": "http://127.0.0.1:1"}
        assert "irrelevant log line" in log.read_text()
    finally:
        sandbox.stop()
