"""The local sandbox's pure logic: which options a detached sandbox was asked for and when a
second ``env up --detach`` may reuse it, the folder's lock, relaying progress lines from the
log, and never stopping a process that is not the recorded sandbox. Real files, real
processes (a stand-in child prints what a sandbox would); no sandbox starts here."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.run.local_sandbox import (
    KAFKA_START_TIMEOUT,
    START_TIMEOUT,
    PendingSandbox,
    ProgressTail,
    SandboxError,
    detached_lock,
    detached_path,
    option_mismatch,
    requested_options,
    running_detached,
    start_timeout,
    stop_detached,
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], {"--bus": "sns"}),
        (["--bus", "kafka"], {"--bus": "kafka"}),
        (["--bus=kafka"], {"--bus": "kafka"}),
        (["--quiet", "--log-file", "x.log", "--bus", "sns"], {"--bus": "sns"}),
        (["--log-file=x.log"], {"--bus": "sns"}),
        (
            ["--no-schema-registry", "--bus", "kafka", "--port", "8000"],
            {"--bus": "kafka", "--no-schema-registry": True, "--port": "8000"},
        ),
        (["--port", "1", "--port", "2"], {"--bus": "sns", "--port": "2"}),  # argparse: last wins
        (["stray"], {"--bus": "sns", "stray": True}),
    ],
)
def test_requested_options_read_a_command_line_as_the_sandbox_does(
    args: list[str], expected: dict[str, str | bool]
) -> None:
    assert requested_options(args) == expected


def test_a_kafka_start_gets_the_kafka_deadline() -> None:
    assert start_timeout(["--bus", "kafka"]) == KAFKA_START_TIMEOUT
    assert start_timeout(["--bus=kafka", "--quiet"]) == KAFKA_START_TIMEOUT
    assert start_timeout([]) == START_TIMEOUT == start_timeout(["--bus", "sns"])


def record(args: list[str], bus: str | None = "sns") -> dict[str, object]:
    exports = {"HARNESS_EVENTS_BUS": bus} if bus is not None else {}
    return {"pid": 4242, "args": args, "exports": exports}


@pytest.mark.parametrize(
    ("running", "asked"),
    [
        (record([]), []),
        (record([]), ["--bus", "sns"]),
        (record(["--quiet"]), ["--log-file", "x.log"]),  # logging only
        (record(["--bus", "kafka"], "kafka"), ["--bus=kafka"]),
        (record(["--port", "8000"]), ["--port=8000", "--quiet"]),
    ],
)
def test_the_same_options_reuse_the_running_sandbox(
    running: dict[str, object], asked: list[str]
) -> None:
    assert option_mismatch(running, asked) is None


def test_another_bus_is_refused_with_the_fix() -> None:
    message = option_mismatch(record([]), ["--bus", "kafka"])
    assert message == (
        "a detached sandbox already runs here (pid 4242: --bus sns), not the one asked for "
        '(--bus kafka): stop it first with `eval "$(harness env down)"`, then start again'
    )


def test_what_it_runs_on_beats_what_it_was_asked() -> None:
    # a record that says nothing of its options (an older one): its exports tell the bus
    assert option_mismatch({"pid": 1, "exports": {"HARNESS_EVENTS_BUS": "kafka"}}, []) is not None
    assert (
        option_mismatch({"pid": 1, "exports": {"HARNESS_EVENTS_BUS": "kafka"}}, ["--bus", "kafka"])
        is None
    )


def test_other_options_are_refused_naming_only_the_differences() -> None:
    message = option_mismatch(record(["--port", "8000", "--quiet"]), ["--no-schema-registry"])
    assert message is not None
    assert "(pid 4242: --no-schema-registry, --port 8000)" not in message
    assert "(pid 4242: without --no-schema-registry, --port 8000)" in message
    assert "asked for (--no-schema-registry, without --port)" in message
    assert "--bus" not in message and "--quiet" not in message


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


def test_the_folder_lock_makes_a_second_command_wait_and_says_so(tmp_path: Path) -> None:
    said: list[str] = []
    held = r"has held .*detached\.lock for 0 s .*stop that command"
    with (
        detached_lock(tmp_path),
        pytest.raises(SandboxError, match=held),
        detached_lock(tmp_path, said.append, timeout=0.2),
    ):
        pass  # pragma: no cover - never entered
    assert len(said) == 1 and "waiting for it" in said[0]
    entered = threading.Event()

    def second() -> None:
        with detached_lock(tmp_path, said.append, timeout=10):
            entered.set()

    with detached_lock(tmp_path):
        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(0.3)  # held here: the second one waits
    thread.join(10)
    assert entered.is_set()


def test_env_down_never_stops_a_process_that_is_not_the_recorded_sandbox(tmp_path: Path) -> None:
    """A record whose pid now names another process (reused after a reboot) is stale: it is
    removed, and that process is left alone."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = detached_path(tmp_path)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"pid": other.pid, "exports": {"HARNESS_BASE_URL": "x"}}))
        assert running_detached(tmp_path) is None
        found, running = stop_detached(tmp_path, grace=1.0)
        assert found is not None and found["pid"] == other.pid and not running
        time.sleep(0.2)
        assert other.poll() is None, "an unrelated process was stopped"
        assert not path.exists()
    finally:
        other.kill()
        other.wait()


def test_env_down_where_there_is_nothing_makes_nothing(tmp_path: Path) -> None:
    assert stop_detached(tmp_path / ".harness") == (None, False)
    assert not (tmp_path / ".harness").exists()
