"""No harness command ever takes a live run's data (issue 25, items 1-4), against a real
sandbox with real processes: a live run parks inside a test holding a user it created; another
command runs — a second run with the same run id, `harness recover RUN_ID` after a sibling
shard was SIGKILLed, an ordinary run next to a run of another host name on the same folder,
`harness residue RUN_ID` — and then the live run's own test reads its user back (200, or the
test fails) and the live run must end clean."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.clients.aws import Aws
from harness.namespace import RunId
from harness.run import outcome
from harness.waiting import wait_until
from tests.digest import items_mentioning

pytestmark = pytest.mark.e2e

LIVE_TEST = """
import json
from pathlib import Path
from harness.waiting import wait_until

def test_keeps_its_user(api, user_factory):
    user = user_factory()
    marks = Path({marks!r})
    (marks / "user.json").write_text(json.dumps({{"uid": user.uid}}))
    (marks / "ready").touch()
    wait_until((marks / "go").exists, timeout=120)
    response = api.get(f"/users/{{user.uid}}", auth=user.auth)
    assert response.status_code == 200, "another command deleted this live run's user"
"""


@dataclass
class LiveRun:
    process: subprocess.Popen[str]
    marks: Path
    report: Path

    def user(self) -> int:
        return int(json.loads((self.marks / "user.json").read_text())["uid"])

    def finish(self) -> tuple[int, str]:
        (self.marks / "go").touch()
        out, err = self.process.communicate(timeout=180)
        return self.process.returncode, out + err


@pytest.fixture
def project(tmp_path: Path, sandbox_environ: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A project folder with the parked test; runs in it share `.harness` (its state dir)."""
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "conftest.py").write_text('pytest_plugins = ["fixtures.users"]\n')
    (tmp_path / "suite" / "test_none.py").write_text("def test_nothing():\n    pass\n")
    environ = {**sandbox_environ, "HARNESS_STATE_DIR": str(tmp_path / ".harness")}
    return tmp_path, environ


def start_live(
    project: tuple[Path, dict[str, str]],
    name: str,
    run_id: str,
    *,
    shard: str = "",
    prefix: list[str] | None = None,
) -> LiveRun:
    root, environ = project
    marks = root / f"marks-{name}"
    marks.mkdir()
    test_file = root / "suite" / f"test_{name}.py"
    test_file.write_text(LIVE_TEST.format(marks=str(marks)))
    report = root / f"report-{name}.json"
    env = {**environ, "HARNESS_RUN_ID": run_id}
    if shard:
        env["HARNESS_SHARD"] = shard
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--report",
        str(report),
        "--",
        str(test_file),
    ]
    process = subprocess.Popen(
        [*(prefix or []), *command],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = marks / "ready"
    try:
        wait_until(lambda: ready.exists() or process.poll() is not None, timeout=120)
    finally:
        if not ready.exists():
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"the live run never reached its test: {out[-2000:]}{err[-2000:]}")
    return LiveRun(process, marks, report)


def harness(
    project: tuple[Path, dict[str, str]], *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    root, environ = project
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=root,
        env={**environ, **extra},
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_survived(live: LiveRun, aws: Aws, run_id: str) -> None:
    status, output = live.finish()
    assert status == outcome.PASSED, output[-4000:]
    assert json.loads(live.report.read_text())["outcome"] == "passed"
    assert items_mentioning(aws, run_id) == []


def test_a_refused_duplicate_run_id_leaves_the_live_run_alone(
    project: tuple[Path, dict[str, str]], aws: Aws
) -> None:
    run_id = str(RunId.generate())
    live = start_live(project, "live", run_id)
    folder = project[0] / ".harness" / "runs" / run_id
    owner_before = (folder / "owner.json").read_text()
    second = harness(
        project,
        "run",
        "--report",
        str(project[0] / "dup.json"),
        "--",
        "suite",
        HARNESS_RUN_ID=run_id,
    )
    assert second.returncode == outcome.RUN_IN_USE, second.stdout[-2000:] + second.stderr[-2000:]
    assert f"run id {run_id} is in use" in second.stderr
    report = json.loads((project[0] / "dup.json").read_text())
    assert (report["outcome"], report["exit_status"]) == ("run_in_use", 10)
    assert (
        folder / "owner.json"
    ).read_text() == owner_before  # nothing of the live run's rewritten
    # an ordinary run next: its start-up recovery must judge the live run alive
    other = harness(
        project, "run", "--report", str(project[0] / "next.json"), "--", "suite/test_none.py"
    )
    assert f"recovered dead run {run_id}" not in other.stderr, other.stderr
    assert harness(project, "recover").stdout.count(run_id) == 0
    assert_survived(live, aws, run_id)


def test_recover_run_id_refuses_while_any_shard_lives_then_recovers_the_dead_one(
    project: tuple[Path, dict[str, str]], aws: Aws
) -> None:
    run_id = str(RunId.generate())
    dying = start_live(project, "one", run_id, shard="1")
    live = start_live(project, "two", run_id, shard="2")
    dying.process.send_signal(signal.SIGKILL)  # shard 1's controller: no cleanup at all
    dying.process.communicate()
    refused = harness(project, "recover", run_id)
    assert refused.returncode == outcome.RUN_IN_USE, refused.stdout + refused.stderr
    assert f"{run_id}@s02 (a process on this machine holds its lock)" in refused.stderr
    assert f"{run_id}@s01" not in refused.stderr  # the dead shard is no live part
    assert_survived(live, aws, f"{run_id}-s02")
    recovered = harness(project, "recover", run_id)
    assert recovered.returncode == outcome.PASSED, recovered.stdout + recovered.stderr
    assert f"run {run_id}@s01: " in recovered.stdout
    assert items_mentioning(aws, run_id) == []  # shard 1's user is gone too
    assert not list((project[0] / ".harness" / "runs").glob(f"{run_id}*"))


def test_residue_of_a_run_refuses_while_a_shard_lives(
    project: tuple[Path, dict[str, str]], aws: Aws
) -> None:
    run_id = str(RunId.generate())
    live = start_live(project, "only", run_id, shard="3")
    refused = harness(project, "residue", run_id)
    assert refused.returncode == outcome.RUN_IN_USE, refused.stdout + refused.stderr
    assert "still running" in refused.stderr and "Nothing was touched" in refused.stderr
    assert_survived(live, aws, run_id)
    after = harness(project, "residue", run_id)
    assert after.returncode == outcome.PASSED, after.stdout + after.stderr


@pytest.mark.skipif(
    (os.geteuid() != 0 or shutil.which("unshare") is None) and os.environ.get("CI") != "true",
    reason="needs root and unshare(1) for a second host name on this folder",
)
def test_a_run_under_another_host_name_on_this_folder_is_alive(
    project: tuple[Path, dict[str, str]], aws: Aws
) -> None:
    """A devcontainer and its host, or CI containers on a shared workspace: another host name
    (a UTS namespace), the same folder and kernel. Its lock and its lease both say alive."""
    run_id = str(RunId.generate())
    renamed = ["unshare", "--uts", "sh", "-c", 'hostname harness-elsewhere && exec "$@"', "sh"]
    live = start_live(project, "elsewhere", run_id, prefix=renamed)
    owner = json.loads((project[0] / ".harness" / "runs" / run_id / "owner.json").read_text())
    assert owner["host"] == "harness-elsewhere"
    ordinary = harness(
        project, "run", "--report", str(project[0] / "here.json"), "--", "suite/test_none.py"
    )
    assert f"recovered dead run {run_id}" not in ordinary.stderr, ordinary.stderr
    swept = harness(project, "sweep", "--older-than", "0")
    assert "alive (lease held): 1 run(s)" in swept.stdout, swept.stdout
    assert_survived(live, aws, run_id)
