"""``harness doctor`` and ``harness residue`` against a real sandbox: every row OK on a
healthy target; a missing table, a token table without TTL, a missing topic or queue each
a FAIL row with its fix and a non-zero exit; a whole-run residue check that finds, reports and
removes what a run left behind."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests

from harness.cli import doctor
from harness.clients.aws import Aws
from harness.kinds.registry import load_profile
from harness.namespace import Namespace, RunId
from tests.conftest import REPO
from tests.digest import items_mentioning

pytestmark = pytest.mark.e2e


def harness_cli(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rows_by_name(rows: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {row.name: row for row in rows}


def test_doctor_on_a_healthy_sandbox_is_all_ok(sandbox_environ: dict[str, str]) -> None:
    done = harness_cli(sandbox_environ, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for check in (
        "configuration",
        "reachability",
        "identity",
        "credentials",
        "table users_table",
        "table tokens_table",
        "table notifications_table",
        "tokens_table TTL",
        "events topic",
        "processor queue",
    ):
        assert any(line.startswith("OK") and check in line for line in lines), done.stdout
    assert "FAIL" not in done.stdout and "all checks OK" in done.stdout


def test_doctor_reports_every_problem_with_its_fix(sandbox_environ: dict[str, str]) -> None:
    environ = {
        **sandbox_environ,
        "HARNESS_USERS_TABLE": "no-such-users-table",
        "HARNESS_EVENTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:no-such-topic",
        "HARNESS_ENVIRONMENT": "staging",
    }
    done = harness_cli(environ, "doctor")
    assert done.returncode == 7, done.stdout + done.stderr  # the identity row
    out = done.stdout
    assert "FAIL  identity" in out and "expects 'staging'" in out
    assert "FAIL  table users_table" in out and "create table 'no-such-users-table'" in out
    assert "FAIL  events topic" in out and "fix events_topic_arn" in out
    assert "OK    table tokens_table" in out  # one bad row does not hide the others
    assert "OK    processor queue" in out


@pytest.fixture
def table_without_ttl(aws: Aws) -> Iterator[str]:
    name = f"itest-doctor-{secrets.token_hex(4)}"
    aws.dynamodb_client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "Uid", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Uid", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        yield name
    finally:
        aws.dynamodb_client.delete_table(TableName=name)


def test_doctor_fails_a_token_table_without_ttl(
    sandbox_environ: dict[str, str], table_without_ttl: str
) -> None:
    profile = load_profile("sandbox", REPO / "environments.toml", environ=sandbox_environ)
    settings = {**profile.settings, "tokens_table": table_without_ttl}
    rows = rows_by_name(doctor.diagnose(replace(profile, settings=settings)))
    ttl = rows["tokens_table TTL"]
    assert ttl.status == doctor.FAIL
    assert "update-time-to-live" in ttl.fix and "AttributeName=TimeToLive" in ttl.fix
    assert rows["table tokens_table"].status == doctor.OK


def test_doctor_fails_a_missing_queue(sandbox_environ: dict[str, str]) -> None:
    profile = load_profile("sandbox", REPO / "environments.toml", environ=sandbox_environ)
    base = profile.processor_queue_url.rsplit("/", 1)[0]
    rows = rows_by_name(doctor.diagnose(replace(profile, processor_queue_url=f"{base}/nope")))
    assert rows["processor queue"].status == doctor.FAIL
    assert "processor_queue_url" in rows["processor queue"].fix


def test_doctor_without_a_sandbox_says_how_to_point_at_one() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    done = harness_cli(environ, "doctor", "--no-start")
    assert done.returncode == 8
    assert "FAIL  configuration" in done.stdout and "harness env up" in done.stdout


def test_residue_command_finds_reports_and_removes_a_runs_leftovers(
    sandbox_environ: dict[str, str], aws: Aws
) -> None:
    run_id = RunId.generate()
    email = Namespace(run=run_id, worker="s01main").email("leak")
    response = requests.post(
        sandbox_environ["HARNESS_BASE_URL"] + "/users",
        json={"email": email, "name": "Leaky", "password": "leaky-pass-1"},
        timeout=10,
    )
    assert response.status_code == 201
    done = harness_cli(sandbox_environ, "residue", str(run_id))
    assert done.returncode == 6, done.stdout + done.stderr
    assert "leaked user" in done.stdout and email in done.stdout
    assert items_mentioning(aws, str(run_id)) == []
    again = harness_cli(sandbox_environ, "residue", str(run_id))
    assert again.returncode == 0 and "clean" in again.stdout


def test_residue_command_rejects_a_malformed_run_id(sandbox_environ: dict[str, str]) -> None:
    done = harness_cli(sandbox_environ, "residue", "not-a-run")
    assert done.returncode == 8
    assert "harness:" in done.stderr and "Traceback" not in done.stderr
