"""The promise off the designed paths (issue 20), against a real sandbox with real processes
and real signals: the JSON report CI reads is truthful or marked incomplete — never a stale
or a wrong verdict — and the environment ends as it began, after at most one `harness
recover`. Phases are reached exactly through the fault points (harness/faultpoints.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.clients.aws import Aws
from harness.namespace import RunId
from harness.run import outcome
from harness.waiting import wait_until
from tests.conftest import REPO
from tests.digest import items_mentioning

pytestmark = pytest.mark.e2e

STALE = {"run_id": "itest-20261127t100000-old0", "outcome": "passed", "exit_status": 0}
SUITES = ["--", "suites/users", "suites/smoke"]


class Run:
    """A real `harness run` in its own session, held at a fault point until released."""

    def __init__(
        self, environ: dict[str, str], tmp: Path, phase: str, *args: str, workers: int = 1
    ) -> None:
        self.run_id = str(RunId.generate())
        self.report = tmp / "report.json"
        self.report.write_text(json.dumps(STALE))  # what an earlier run left there
        self.log = tmp / "fault.log"
        env = {
            **environ,
            "HARNESS_RUN_ID": self.run_id,
            "HARNESS_FAULT_AT": phase,
            "HARNESS_FAULT_LOG": str(self.log),
            "HARNESS_FAULT_HOLD": "30",
        }
        command = [sys.executable, "-m", "harness", "run", "-n", str(workers)]
        command += ["--report", str(self.report), "--residue-settle", "0.5", *args]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def reached(self) -> int:
        """The pid that reached the phase (waiting for it)."""
        wait_until(lambda: self.log.exists() or self.process.poll() is not None, timeout=120)
        assert self.log.exists(), self.finish()[1][-3000:]
        return int(self.log.read_text().split()[0])

    def release(self) -> None:
        Path(f"{self.log}.release").touch()

    def finish(self) -> tuple[int, str]:
        self.release()
        out, _ = self.process.communicate(timeout=240)
        return self.process.returncode, out

    def verdict(self) -> dict:
        return json.loads(self.report.read_text())


def recover(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "recover"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def environ(sandbox_environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**sandbox_environ, "HARNESS_STATE_DIR": str(tmp_path / "state")}


def test_a_double_ctrl_c_never_reports_a_pass_and_one_recover_restores_everything(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    """Ctrl-C twice, 0.05 s apart, to the whole group of a -n 2 run in the middle of its
    tests: exit 130 and the report says interrupted, cleanup abandoned, and lists what it
    left — the lease among it; one `harness recover` (no arguments) removes all of it."""
    run = Run(environ, tmp_path, "create@2", *SUITES, workers=2)
    run.reached()
    os.killpg(run.process.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(run.process.pid, signal.SIGINT)
    status, output = run.finish()
    report = run.verdict()
    assert status == outcome.INTERRUPTED, output[-3000:]
    assert (report["outcome"], report["exit_status"]) == ("interrupted", 130), output[-3000:]
    assert report["interrupted"]["cleanup"] == "abandoned"
    assert {"kind": "lease", "marker": f"{run.run_id}-lease"} in report["left_behind"]
    assert "still in place: lease(marker=" in output
    recovered = recover(environ)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert run.run_id in recovered.stdout
    wait_until(lambda: items_mentioning(aws, run.run_id) == [], timeout=20)


def test_sigterm_to_the_controller_alone_reaches_every_workers_cleanup(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    """What a CI runner sends on cancel, to the controller only: its workers clean what they
    created (nothing is left for the residue check to call a leak), quickly."""
    run = Run(environ, tmp_path, "create@2", *SUITES, workers=2)
    run.reached()
    started = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    status, output = run.finish()
    took = time.monotonic() - started
    report = run.verdict()
    assert status == outcome.INTERRUPTED, output[-3000:]
    assert report["interrupted"] == {"signal": "SIGTERM", "cleanup": "finished"}
    resources = report["resources"]
    assert resources["created"] >= 2 and resources["cleaned"] == resources["created"], output
    assert report["leaked"] == [] and report["unfinished"] == [], output[-3000:]
    assert {"gw0", "gw1"} <= {w["worker"] for w in report["workers"]}  # each worker listed
    assert "RESIDUE" not in output and took < 30, (took, output[-3000:])
    assert items_mentioning(aws, run.run_id) == []
    assert not (tmp_path / "state" / "runs" / run.run_id).exists()


def test_a_killed_run_leaves_an_incomplete_report_never_the_last_runs_verdict(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    run = Run(environ, tmp_path, "created", *SUITES)
    run.reached()
    run.process.send_signal(signal.SIGKILL)
    status, _ = run.finish()
    assert status == -signal.SIGKILL
    assert run.verdict()["outcome"] == "incomplete"  # not the stale 'passed'
    assert recover(environ).returncode == 0
    wait_until(lambda: items_mentioning(aws, run.run_id) == [], timeout=20)


@pytest.mark.parametrize(
    "option",
    ["--junitxml=/dev/null/x/j.xml", "--html=/dev/null/x/h.html", "--summary=/dev/null/s.md"],
)
def test_an_unwritable_output_is_refused_before_anything_is_touched(
    environ: dict[str, str], aws: Aws, tmp_path: Path, option: str
) -> None:
    run = Run(environ, tmp_path, "preflight", *SUITES, option)
    status, output = run.finish()
    assert status == outcome.CONFIG, output[-3000:]
    assert option.split("=")[0] in output and "Traceback" not in output
    assert output.count("\n") <= 2, output  # one line
    assert not run.log.exists()  # not even preflight was reached
    report = run.verdict()
    assert (report["outcome"], report["exit_status"]) == ("config", 8)
    assert items_mentioning(aws, run.run_id) == []  # no lease, no user, nothing


def test_a_closed_stdout_never_stops_the_cleanup(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    """`harness run … | head -2`: the reader goes away after two lines."""
    run_id = str(RunId.generate())
    report = tmp_path / "r.json"
    command = (
        f"{sys.executable} -m harness run --report {report} --residue-settle 0.5 -- "
        f"suites/users | head -2"
    )
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=REPO,
        env={**environ, "HARNESS_RUN_ID": run_id},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert len(done.stdout.splitlines()) == 2
    wait_until(lambda: json.loads(report.read_text())["outcome"] != "incomplete", timeout=60)
    verdict = json.loads(report.read_text())
    assert (verdict["outcome"], verdict["exit_status"]) == ("passed", 0), done.stderr
    assert verdict["resources"]["created"] == verdict["resources"]["cleaned"] > 0
    assert items_mentioning(aws, run_id) == []


@pytest.mark.skipif(
    not Path("/usr/bin/prlimit").exists() and os.environ.get("CI") != "true",
    reason="needs prlimit(1) (util-linux) to set a file-size limit on a running process",
)
def test_a_journal_that_cannot_be_written_stops_creating_and_keeps_cleaning(
    environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    """A full disk, as a file-size limit on the run after its first create: every later
    create is refused before its request (the tests fail), what was created is still
    cleaned from memory, and the environment ends clean."""
    run = Run(environ, tmp_path, "created", *SUITES)
    pid = run.reached()
    journal = next((tmp_path / "state" / "runs" / run.run_id).glob("*.jsonl"))
    limit = journal.stat().st_size + 40  # not even one more line fits
    subprocess.run(["prlimit", "--pid", str(pid), f"--fsize={limit}:{limit}"], check=True)
    status, output = run.finish()
    assert status == outcome.FAILED, output[-3000:]
    assert "journal" in output and "cannot be written" in output, output[-3000:]
    assert "not creating a" in output
    assert items_mentioning(aws, run.run_id) == [], output[-3000:]
