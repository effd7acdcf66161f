"""Faults on the wire: with 20% of requests to both the service and the AWS endpoint failing
(503s, resets, lost answers, latency), cleanup still reaches zero residue; beyond the retry
budget the leak is reported and the sweeper removes it later."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.clients.aws import Aws
from harness.namespace import RunId
from harness.waiting import wait_until
from tests.conftest import REPO
from tests.digest import items_mentioning
from tests.faultproxy import FaultPlan, FaultProxy

pytestmark = pytest.mark.e2e

TWENTY_PERCENT = {"5xx": 0.06, "reset": 0.05, "drop_response": 0.05, "latency": 0.04}


def test_twenty_percent_faults_still_leave_zero_residue(
    sandbox_environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    run_id = str(RunId.generate())
    api_plan = FaultPlan(rates=dict(TWENTY_PERCENT), latency=0.05, seed=11)
    aws_plan = FaultPlan(rates=dict(TWENTY_PERCENT), latency=0.05, seed=12)
    upstream_api = sandbox_environ["HARNESS_BASE_URL"]
    upstream_aws = sandbox_environ["HARNESS_AWS_ENDPOINT_URL"]
    with FaultProxy(upstream_api, api_plan) as api, FaultProxy(upstream_aws, aws_plan) as aws_p:
        environ = {
            **sandbox_environ,
            "HARNESS_BASE_URL": api.url,
            "HARNESS_AWS_ENDPOINT_URL": aws_p.url,
            "HARNESS_RUN_ID": run_id,
            "HARNESS_STATE_DIR": str(tmp_path / "state"),
        }
        report_path = tmp_path / "report.json"
        completed = subprocess.run(
            [sys.executable, "-m", "harness", "run", "--report", str(report_path)],
            cwd=REPO,
            env=environ,
            capture_output=True,
            text=True,
            timeout=600,
        )
    output = completed.stdout[-5000:] + completed.stderr[-2000:]
    injected = {k: v for k, v in (api.counts + aws_p.counts).items() if k != "forwarded"}
    assert sum(injected.values()) >= 20, (injected, output)  # the faults really happened
    report = json.loads(report_path.read_text())
    # Tests may fail under faults (a create is never retried), the run may not: exit 1 only
    # with a failed test to show for it, exit 0 only when every test passed.
    failed_tests = report["tests"]["failed"] + report["tests"]["error"]
    assert completed.returncode == (1 if failed_tests else 0), output
    resources = report["resources"]
    assert resources["created"] > 10, output
    # the promise under faults: what was created was cleaned, nothing is left behind
    assert resources["cleanup_failed"] == 0 and resources["leaked"] == 0, output
    assert items_mentioning(aws, run_id) == [], output


STRANDED = """
from pathlib import Path
from harness.waiting import wait_until

def test_creates_then_the_network_dies(user_factory, token_factory):
    token_factory(user_factory())
    Path("{marks}/created").touch()
    wait_until(Path("{marks}/network-down").exists, timeout=60)
"""


def test_beyond_the_retry_budget_the_leak_is_reported_and_swept_later(
    sandbox_environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    run_id = str(RunId.generate())
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["fixtures.users"]\n')
    (suite / "test_stranded.py").write_text(STRANDED.format(marks=tmp_path))
    plan = FaultPlan(seed=3)
    with FaultProxy(sandbox_environ["HARNESS_AWS_ENDPOINT_URL"], plan) as aws_proxy:
        environ = {
            **sandbox_environ,
            "HARNESS_AWS_ENDPOINT_URL": aws_proxy.url,
            "HARNESS_RUN_ID": run_id,
            "HARNESS_STATE_DIR": str(tmp_path / "state"),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(suite)],
            cwd=tmp_path,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until((tmp_path / "created").exists, timeout=60)
        plan.rates["5xx"] = 1.0  # from now on every AWS call fails: cleanup cannot succeed
        (tmp_path / "network-down").touch()
        out, err = process.communicate(timeout=300)
    assert process.returncode == 6, out + err  # the test passed; its cleanup failed
    assert "CLEANUP FAILED" in out and "harness cleanup failed" in out, out
    # the leak is reported: the run must not call itself clean (the residue check either
    # could not run, the AWS endpoint being down, or lists what leaked)
    assert "residue check: clean" not in out, out
    assert "residue check: not run" in out or "RESIDUE:" in out, out
    assert items_mentioning(aws, run_id), "the stranded data should still be there"

    swept = subprocess.run(
        [sys.executable, "-m", "harness", "sweep", "--older-than", "0", "--yes"],
        cwd=tmp_path,
        env={**sandbox_environ, "HARNESS_STATE_DIR": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert swept.returncode == 0, swept.stdout + swept.stderr
    wait_until(lambda: not items_mentioning(aws, run_id), timeout=10)
