"""Safety end to end against a real sandbox: the sweeper (dry run, cap, liveness, age,
foreign data, protected targets), crash recovery after SIGKILL and of a lost create, SIGTERM
and a second Ctrl-C during cleanup, --keep-on-failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.cleanup.journal import Journal
from harness.cleanup.recovery import write_owner
from harness.clients.aws import Aws
from harness.kinds.lease import LeaseKind
from harness.kinds.registry import load_profile
from harness.namespace import Namespace, RunId
from harness.waiting import eventually, wait_until
from tests.conftest import REPO
from tests.digest import items_mentioning

pytestmark = pytest.mark.e2e


def cli(environ: dict[str, str], *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def sign_up(base_url: str, email: str) -> int:
    body = {"email": email, "name": "Leftover", "password": "leftover-pass-1"}
    response = requests.post(f"{base_url}/users", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return int(response.json()["uid"])


def old_run(hours: float) -> Namespace:
    started = datetime.now(UTC) - timedelta(hours=hours)
    return Namespace(RunId.generate(started), "gw0")


@pytest.fixture
def environ(sandbox_environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**sandbox_environ, "HARNESS_STATE_DIR": str(tmp_path / "state")}


def test_sweeper_deletes_only_dead_old_harness_data(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    base_url = environ["HARNESS_BASE_URL"]
    dead = old_run(hours=5)
    young = old_run(hours=0.1)
    alive = old_run(hours=6)
    for ns in (dead, dead, young, alive):
        sign_up(base_url, ns.email())
    profile = load_profile("sandbox", REPO / "environments.toml", environ=environ)
    lease = LeaseKind(profile, aws)
    lease.write(f"{alive.run}-lease", duration=600)  # held by this (live) test process
    # a real person whose address merely looks like a harness one (another old run id)
    lookalike = f"{old_run(hours=7).name('x')}@gmail.com"
    foreign = [sign_up(base_url, e) for e in (lookalike, "bob@example.com")]

    dry = cli(environ, "sweep", "--older-than", "1h")
    assert dry.returncode == 0, dry.stderr
    assert str(dead.run) in dry.stdout and "2 user" in dry.stdout
    assert "alive (lease held): 1 run(s)" in dry.stdout
    assert "too young: 1 run(s)" in dry.stdout
    assert "dry run: nothing deleted" in dry.stdout
    assert len(items_mentioning(aws, str(dead.run))) >= 2  # still there (+ notifications)

    capped = cli(environ, "sweep", "--older-than", "1h", "--yes", "--max", "1")
    assert capped.returncode == 8
    assert "exceed the cap of 1" in capped.stderr
    assert items_mentioning(aws, str(dead.run))

    swept = cli(environ, "sweep", "--older-than", "1h", "--yes")
    assert swept.returncode == 0, swept.stderr
    assert "items/s" in swept.stdout
    eventually(lambda: _none_mention(aws, str(dead.run)), timeout=10)
    assert items_mentioning(aws, str(young.run)) and items_mentioning(aws, str(alive.run))
    users = aws.table(profile.users_table)
    assert all("Item" in users.get_item(Key={"Uid": uid}) for uid in foreign)

    protected = cli({**environ, "HARNESS_PROTECTED": "true"}, "sweep", "--yes")
    assert protected.returncode == 8 and "protected: sweeping is refused" in protected.stderr

    lease.delete({"marker": f"{alive.run}-lease"})
    everything = cli(environ, "sweep", "--older-than", "0", "--yes")  # tidy up this test
    assert everything.returncode == 0, everything.stderr
    for ns in (young, alive):
        run_id = str(ns.run)
        eventually(lambda: _none_mention(aws, run_id), timeout=10)  # noqa: B023
    for uid in foreign:
        users.delete_item(Key={"Uid": uid})


def _none_mention(aws: Aws, text: str) -> None:
    left = items_mentioning(aws, text)
    assert not left, left


KILLED = """
import time
from pathlib import Path

def test_killed(user_factory, token_factory):
    token_factory(user_factory())
    Path("{ready}").write_text("created")
    time.sleep(120)
"""


def test_sigkill_leaves_a_journal_that_recover_and_the_next_run_clean(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    run_id = str(RunId.generate())
    ready = tmp_path / "ready"
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "conftest.py").write_text('pytest_plugins = ["fixtures.users"]\n')
    (tmp_path / "suite" / "test_killed.py").write_text(KILLED.format(ready=ready))
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path / "suite")],
        cwd=tmp_path,
        env={**environ, "HARNESS_RUN_ID": run_id},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(ready.exists, timeout=60, description="the test to create its data")
        assert ready.exists()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    left = items_mentioning(aws, run_id)
    assert len(left) >= 3, left  # user, its token, the lease (and maybe a notification)

    recovered = cli(environ, "recover", run_id, cwd=tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "2 deleted" in recovered.stdout
    eventually(lambda: _none_mention(aws, run_id), timeout=10)
    assert not (tmp_path / "state" / "runs" / run_id).exists()


def test_a_create_whose_answer_was_lost_is_recovered(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    """The journal holds only the intent (the process died before the answer): recovery
    finds the user by its email and deletes it."""
    namespace = Namespace(RunId.generate(), "main")
    email = namespace.email()
    state = tmp_path / "state"
    journal = Journal(state / "runs" / str(namespace.run) / "main.jsonl")
    journal.append("intent", 1, kind="user", ids={"email": email}, scope="t")
    journal.close()
    write_owner(state, str(namespace.run), "sandbox", environ["HARNESS_BASE_URL"])
    sign_up(environ["HARNESS_BASE_URL"], email)  # the server did act

    # the next `harness run` against the same target notices the dead run and recovers it
    run = cli(environ, "run", "--suite", "smoke", "--report", str(tmp_path / "r.json"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"recovered dead run {namespace.run}: 1 deleted" in run.stderr
    eventually(lambda: _none_mention(aws, str(namespace.run)), timeout=10)


INTERRUPTIBLE = """
import time
from pathlib import Path
import pytest

@pytest.fixture
def slow_teardown():
    yield
    Path("{marks}/in-teardown").touch()
    time.sleep({teardown_sleep})

def test_waits(user_factory, token_factory, slow_teardown):
    token_factory(user_factory())
    Path("{marks}/ready").touch()
    time.sleep(120)
"""


def _start_interruptible(environ: dict[str, str], tmp_path: Path, teardown_sleep: int) -> Any:
    run_id = str(RunId.generate())
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["fixtures.users"]\n')
    source = INTERRUPTIBLE.format(marks=tmp_path, teardown_sleep=teardown_sleep)
    (suite / "test_waits.py").write_text(source)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(suite)],
        cwd=tmp_path,
        env={**environ, "HARNESS_RUN_ID": run_id},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: (tmp_path / "ready").exists() or _dead(process), timeout=60)
    assert (tmp_path / "ready").exists(), process.communicate()
    return process, run_id


def _dead(process: subprocess.Popen) -> bool:
    return process.poll() is not None


def test_sigterm_runs_cleanup_like_ctrl_c(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    process, run_id = _start_interruptible(environ, tmp_path, teardown_sleep=0)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "residue check: clean" in out, out + err
    assert items_mentioning(aws, run_id) == []


def test_second_ctrl_c_during_cleanup_says_what_is_left(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    process, run_id = _start_interruptible(environ, tmp_path, teardown_sleep=60)
    process.send_signal(signal.SIGINT)
    wait_until((tmp_path / "in-teardown").exists, timeout=30)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "cleanup abandoned" in err
    assert "still in place: user(" in err and "still in place: token(" in err
    assert f"harness recover {run_id}" in err
    recovered = cli(environ, "recover", run_id, cwd=tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    eventually(lambda: _none_mention(aws, run_id), timeout=10)


PER_WORKER = """
import time
from pathlib import Path
import pytest

@pytest.mark.parametrize("n", range(4))
def test_waits(n, user_factory, token_factory, worker_id):
    token_factory(user_factory())
    Path("{marks}", f"ready-{{worker_id}}").touch()
    time.sleep(120)
"""


@pytest.mark.parametrize("whom", ["controller", "process group"])
def test_ctrl_c_with_workers_counts_what_each_worker_created_and_cleaned(
    environ: dict[str, str], aws: Aws, tmp_path: Path, whom: str
) -> None:
    """Ctrl-C under -n 2 (at the pytest process alone, or at its whole process group as a
    terminal sends it): xdist tears the workers down before their own figures reach the
    controller; the summary and the report still count what each one created and cleaned."""
    run_id = str(RunId.generate())
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["fixtures.users"]\n')
    (suite / "test_waits.py").write_text(PER_WORKER.format(marks=tmp_path))
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            str(suite),
            "--harness-report",
            str(report),
        ],
        cwd=tmp_path,
        env={**environ, "HARNESS_RUN_ID": run_id},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    ready = [tmp_path / "ready-gw0", tmp_path / "ready-gw1"]
    wait_until(lambda: all(p.exists() for p in ready) or _dead(process), timeout=90)
    assert all(p.exists() for p in ready), process.communicate()
    if whom == "controller":
        process.send_signal(signal.SIGINT)
    else:
        os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out + err
    # each worker created a user and its token, and cleaned both
    assert "resources: 4 created, 4 cleaned, 0 kept, 0 cleanup failed" in out, out + err
    data = json.loads(report.read_text())
    assert data["outcome"] == "interrupted" and data["exit_status"] == 130
    assert data["resources"]["created"] == 4 and data["resources"]["cleaned"] == 4, data
    assert err.count("interrupted — cleaning up") == 1, err
    assert items_mentioning(aws, run_id) == []


def test_keep_on_failure_keeps_and_tells_how_to_find(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["fixtures.users"]\n')
    (suite / "test_k.py").write_text(
        "def test_fails(user):\n    assert False\n\ndef test_passes(user):\n    pass\n"
    )
    run_id = str(RunId.generate())
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--keep-on-failure", str(suite)],
        cwd=tmp_path,
        env={**environ, "HARNESS_RUN_ID": run_id},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = completed.stdout
    assert completed.returncode == 1, out
    assert "kept for debugging (--keep-on-failure)" in out and "harness sweep" in out
    assert "RESIDUE" not in out
    left = items_mentioning(aws, run_id)
    assert any("users" in item for item in left) and len(left) <= 3, left  # one user's data
    swept = cli(environ, "sweep", "--older-than", "0", "--yes", cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    eventually(lambda: _none_mention(aws, run_id), timeout=10)
