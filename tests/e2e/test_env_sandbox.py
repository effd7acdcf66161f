"""`harness env up` / `env down` against real sandboxes, as users meet them: two `env up
--detach` at once in one folder start one sandbox; a second one asking for another bus is
refused and leaves the first running; an `env up` cut short leaves nothing `env down` cannot
stop; bad options are one line and exit 8; the help names the command; and the sandbox's
progress lines reach the user through `env up --detach` and `harness run`. Processes are read
from /proc; every sandbox a test starts is stopped by the test's folder fixture."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
HARNESS = [sys.executable, "-m", "harness"]
DOWN = 'eval "$(harness env down)"'
RELAYED = re.compile(r"^harness:   \[\d+\.\d s\] \S.*$")


def harness_in(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HARNESS, *args],
        cwd=folder,
        env=env or CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def sandbox_processes(folder: Path) -> dict[int, list[str]]:
    """Live processes of sandboxes started in ``folder``: each launcher (``-m
    harness.sandbox``) and its emulator (``-m harness.sandbox.emulator``), by their cwd."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not alive(int(entry)):
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().decode().split("\0")
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == str(folder) and any(part.startswith("harness.sandbox") for part in command):
            found[int(entry)] = command
    return found


def launchers(folder: Path) -> list[int]:
    return sorted(
        pid
        for pid, command in sandbox_processes(folder).items()
        if "-m" in command and command[command.index("-m") + 1] == "harness.sandbox"
    )


def eventually(check: object, deadline_s: float = 20.0) -> None:
    assert callable(check)
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s}s: {check}")
        time.sleep(0.1)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A project folder; whatever sandbox a test (or the code under test) leaves running in
    it is killed afterwards, so a failing test leaves nothing behind either."""
    yield tmp_path
    for pid in sandbox_processes(tmp_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def ready_pid(stdout: str) -> int:
    (line,) = [line for line in stdout.splitlines() if line.startswith("# sandbox ready: pid ")]
    return int(line.split("pid ")[1].split(";")[0])


def exports(stdout: str) -> dict[str, str]:
    return dict(
        line[len("export ") :].split("=", 1)
        for line in stdout.splitlines()
        if line.startswith("export ")
    )


def test_two_env_up_detach_at_once_share_one_sandbox_and_env_down_leaves_nothing(
    folder: Path,
) -> None:
    """The issue's reproduction: two `env up --detach` at the same moment in one folder. One
    sandbox starts; both print its pid and exports; `env down` stops it, launcher and
    emulator, with nothing orphaned."""
    ups = [
        subprocess.Popen(
            [*HARNESS, "env", "up", "--detach"],
            cwd=folder,
            env=CLEAN_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [up.communicate(timeout=180) for up in ups]
    assert [up.returncode for up in ups] == [0, 0], outputs
    pids = [ready_pid(out) for out, _ in outputs]
    assert pids[0] == pids[1], outputs
    assert exports(outputs[0][0]) == exports(outputs[1][0])
    reused = [err for _, err in outputs if "already running here" in err]
    assert len(reused) == 1, outputs
    assert launchers(folder) == [pids[0]]
    family = list(sandbox_processes(folder))
    assert len(family) == 2, family  # the launcher and its emulator

    down = harness_in(folder, "env", "down")
    assert down.returncode == 0, down.stderr
    assert f"stopped the detached sandbox (pid {pids[0]})" in down.stderr
    eventually(lambda: not any(alive(pid) for pid in family))
    assert sandbox_processes(folder) == {}
    again = harness_in(folder, "env", "down")
    assert "no detached sandbox is running" in again.stderr


def test_a_second_env_up_asking_for_another_bus_is_refused_and_the_first_left_running(
    folder: Path,
) -> None:
    first = harness_in(folder, "env", "up", "--detach")
    assert first.returncode == 0, first.stderr
    pid = ready_pid(first.stdout)
    record = (folder / ".harness" / "sandbox" / "detached.json").read_text()

    for asked in (["--bus", "kafka"], ["--environment-name", "other"]):
        refused = harness_in(folder, "env", "up", "--detach", *asked)
        assert refused.returncode == 8, refused.stdout + refused.stderr
        assert refused.stdout == ""  # an `eval` of it sets nothing
        (line,) = refused.stderr.splitlines()
        assert line.startswith(f"harness: a detached sandbox already runs here (pid {pid}: ")
        assert " ".join(asked) in line and f"stop it first with `{DOWN}`" in line

    # a bad option is named as one, not as a different sandbox
    for bad, said in (
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--port", "-5"], "argument --port: -5 is not a port"),
    ):
        refused = harness_in(folder, "env", "up", "--detach", *bad)
        assert refused.returncode == 8, refused.stdout + refused.stderr
        assert refused.stdout == ""
        (line,) = refused.stderr.splitlines()
        assert line.startswith(f"harness env up: {said}"), line

    same = harness_in(folder, "env", "up", "--detach", "--bus=sns", "--quiet")
    assert same.returncode == 0 and ready_pid(same.stdout) == pid, same.stderr
    assert exports(same.stdout) == exports(first.stdout)

    # the running sandbox was not touched: same record, same process, still serving
    assert (folder / ".harness" / "sandbox" / "detached.json").read_text() == record
    assert launchers(folder) == [pid]
    base_url = exports(first.stdout)["HARNESS_BASE_URL"]
    with urllib.request.urlopen(f"{base_url}/health", timeout=10) as answer:
        assert json.load(answer)["environment"] == "sandbox"
    down = harness_in(folder, "env", "down")
    assert down.returncode == 0
    eventually(lambda: sandbox_processes(folder) == {})
    # the first start's steps were shown while it ran, ending with the time it took
    relayed = [line for line in first.stderr.splitlines() if line.startswith("harness:   ")]
    assert relayed and all(RELAYED.match(line) for line in relayed), first.stderr
    assert re.search(r"\] ready in \d+\.\d s$", relayed[-1]), relayed


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_an_env_up_stopped_while_its_sandbox_starts_leaves_nothing_running(
    folder: Path, sig: int
) -> None:
    """Ctrl-C while `env up --detach` waits stops the sandbox it spawned (exit 130); if the
    command is killed outright, its sandbox was already recorded, so `env down` stops it."""
    up = subprocess.Popen(
        [*HARNESS, "env", "up", "--detach"],
        cwd=folder,
        env=CLEAN_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        eventually(lambda: launchers(folder) != [])
        time.sleep(0.2)  # spawned, not ready (a start takes a second or more)
        up.send_signal(sig)
        out, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert out == ""
    if sig == signal.SIGINT:
        assert up.returncode == 130, err
        assert err.splitlines()[-1] == "harness: interrupted"
    else:
        assert launchers(folder) != []  # it outlives the killed command: its own session
        down = harness_in(folder, "env", "down")
        assert down.returncode == 0
        assert "stopped the detached sandbox" in down.stderr, down.stderr
    eventually(lambda: sandbox_processes(folder) == {})
    assert not (folder / ".harness" / "sandbox" / "detached.json").exists()


@pytest.mark.parametrize(
    ("detach", "bad", "said"),
    [
        ([], ["--bogus"], "unrecognized arguments: --bogus"),
        (["--detach"], ["--bogus"], "unrecognized arguments: --bogus"),
        (
            [],
            ["--port", "-5"],
            "argument --port: -5 is not a port: give 1-65535, or 0 for a free one",
        ),
        (
            ["--detach"],
            ["--kafka-partitions", "0"],
            "argument --kafka-partitions: 0 is too small: give at least 1",
        ),
    ],
)
def test_a_bad_sandbox_option_is_one_line_and_exit_8(
    folder: Path, detach: list[str], bad: list[str], said: str
) -> None:
    result = harness_in(folder, "env", "up", *detach, *bad)
    assert result.returncode == 8, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == f"harness env up: {said} (see `harness env up --help`)\n"
    assert sandbox_processes(folder) == {}
    state = folder / ".harness" / "sandbox"
    assert not state.exists() or sorted(p.name for p in state.iterdir()) == ["detached.lock"]


def test_env_up_help_names_the_command_and_the_sandbox_its_own(folder: Path) -> None:
    helped = harness_in(folder, "env", "up", "--help")
    assert helped.returncode == 0
    assert helped.stdout.startswith("usage: harness env up "), helped.stdout[:200]
    assert re.search(r"^  --detach +start it in the background", helped.stdout, re.M)
    assert "--bus" in helped.stdout and "--check-options" not in helped.stdout
    own = subprocess.run(
        [sys.executable, "-m", "harness.sandbox", "--help"],
        cwd=folder,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert own.returncode == 0 and own.stdout.startswith("usage: python -m harness.sandbox ")
    assert not re.search(r"^  --detach", own.stdout, re.M)  # only the front command offers it


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
