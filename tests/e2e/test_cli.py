"""The `harness` command line as a user meets it: help that explains, `env up` printing its
exports first and stopping cleanly, `env up --detach` / `env down` from a real shell, stale
exports refused on a named profile, and clear errors (exit 8) instead of tracebacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.sandbox.launching import EXPORT_NAMES

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
        lines = [process.stdout.readline() for _ in range(len(EXPORT_NAMES) + 1)]
        started = _children(process.pid)  # `env up` execs the launcher: the emulator is its child
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    exports = [line.split("=", 1)[0] for line in lines[:-1]]
    assert exports == [f"export {name}" for name in EXPORT_NAMES], lines
    assert lines[0].startswith("export HARNESS_BASE_URL=http://127.0.0.1:")
    assert lines[-1].startswith("# sandbox ready")
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


DETACHED_SCRIPT = """
set -e
eval "$(python -m harness env up --detach)"
python -c 'import json; print("pid", json.load(open(".harness/sandbox/detached.json"))["pid"])'
python - <<'PY'
import json, os, urllib.request
with urllib.request.urlopen(os.environ["HARNESS_BASE_URL"] + "/health", timeout=10) as answer:
    print("health", json.load(answer)["environment"])
PY
eval "$(python -m harness env down)"
echo "after down: [${HARNESS_BASE_URL:-}]"
"""


def test_env_up_detach_gives_a_shell_its_variables_and_env_down_leaves_nothing(
    tmp_path: object,
) -> None:
    """The README's recipe, in a real shell: `eval "$(harness env up --detach)"` returns once
    the sandbox is ready, with its variables in this shell; `eval "$(harness env down)"`
    stops it — the launcher and the emulator it started — and unsets them."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    done = subprocess.run(
        ["bash", "-c", DETACHED_SCRIPT],
        cwd=str(tmp_path),
        env={**CLEAN_ENV, "PATH": path},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "health sandbox" in lines, done.stdout + done.stderr
    assert "after down: []" in lines, done.stdout
    pid = int(next(line for line in lines if line.startswith("pid "))[4:])
    # nothing of it is left: not the launcher (a session of its own, pid = session id), not
    # the emulator it started (a session of its own too, told by its --parent-pid)
    assert _left_of(pid) == [], done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def _left_of(launcher: int) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", encoding="utf-8") as cmdline:
                command = cmdline.read().split("\0")
        except OSError:
            continue
        if fields[0] == "Z":
            continue
        child = "--parent-pid" in command and command[command.index("--parent-pid") + 1] == str(
            launcher
        )
        if int(fields[3]) == launcher or child:
            found.append(f"{entry}: {' '.join(command)}")
    return found


def test_env_down_without_a_sandbox_says_so(tmp_path: object) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "env", "down"],
        cwd=str(tmp_path),
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "no detached sandbox is running" in done.stderr and done.stdout == ""


STAGING_ONLY = """
[staging]
base_url = "https://api.staging.example.com"
environment = "staging"
aws_region = "eu-west-1"
"""


@pytest.mark.parametrize("named_by", ["--env", "HARNESS_ENV"])
def test_stale_sandbox_exports_never_turn_a_staging_run_into_a_sandbox_run(
    sandbox_environ: dict[str, str], tmp_path: Path, named_by: str
) -> None:
    """The issue's reproduction: the exports of `harness env up` still in the shell, then
    `harness run --env staging` — refused, in one line naming the variables; confirmed with
    --allow-env-override it runs, and its first line says where the target came from."""
    (tmp_path / "environments.toml").write_text(STAGING_ONLY)
    environ = {k: v for k, v in sandbox_environ.items() if k != "HARNESS_CONFIG"}
    args = ["run", "--env", "staging"]
    if named_by == "HARNESS_ENV":
        environ["HARNESS_ENV"], args = "staging", ["run"]

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "harness", *args, *extra],
            cwd=tmp_path,
            env={**environ, "HARNESS_STATE_DIR": str(tmp_path / ".harness")},
            capture_output=True,
            text=True,
            timeout=180,
        )

    refused = run()
    assert refused.returncode == 8, refused.stdout + refused.stderr
    lines = refused.stderr.splitlines()
    assert len(lines) == 1, refused.stderr
    for variable in ("HARNESS_BASE_URL", "HARNESS_AWS_ENDPOINT_URL", "HARNESS_ENVIRONMENT"):
        assert variable in lines[0]
    assert "--allow-env-override" in lines[0] and "[staging]" in lines[0]

    confirmed = run("--allow-env-override")
    assert confirmed.returncode == 5, confirmed.stdout + confirmed.stderr  # no tests here
    first = confirmed.stderr.splitlines()[0]
    assert first.startswith("harness: target [staging] ("), first
    assert f"{environ['HARNESS_BASE_URL']} (variable $HARNESS_BASE_URL)" in first
    assert "environment 'sandbox' (variable $HARNESS_ENVIRONMENT)" in first
    report = json.loads((tmp_path / "harness-report.json").read_text())
    assert report["outcome"] == "no_tests" and report["exit_status"] == 5
    assert report["target"]["overridden_by_variables"] == [
        "HARNESS_AWS_ENDPOINT_URL",
        "HARNESS_BASE_URL",
        "HARNESS_ENVIRONMENT",
    ]
