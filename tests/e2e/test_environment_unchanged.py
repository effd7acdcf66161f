"""The product promise, end to end: against one externally started sandbox, `harness run`
three times (once with -n 2) leaves every table, queue and topic exactly as it was, and data
the harness did not create — users with real-looking emails, live tokens — untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from harness.clients.aws import Aws
from harness.waiting import eventually
from tests.conftest import REPO
from tests.digest import digest, snapshot

pytestmark = pytest.mark.e2e


def seed_foreign_data(base_url: str, aws: Aws) -> list[tuple[int, str]]:
    """Users a real person made: real-looking emails (one even shaped like a harness one),
    logged in, with their welcome notifications."""
    sessions = []
    for email in ("alice@example.com", "itest-20200101t000000-abcd-gw0-x@gmail.com"):
        body = {"email": email, "name": "Not A Test", "password": "correct-horse-1"}
        signup = requests.post(f"{base_url}/users", json=body, timeout=10)
        assert signup.status_code in (201, 409), signup.text
        credentials = {"email": email, "password": body["password"]}
        login = requests.post(f"{base_url}/login", json=credentials, timeout=10)
        assert login.status_code == 200, login.text
        sessions.append((login.json()["uid"], login.json()["token"]))

    def notified() -> None:
        for uid, token in sessions:
            response = requests.get(
                f"{base_url}/users/{uid}/notifications",
                headers={"uid": str(uid), "token": token},
                timeout=10,
            )
            assert response.json()["notifications"], "welcome not written yet"

    eventually(notified, timeout=20, description="foreign users' welcome notifications")
    return sessions


def harness_run(environ: dict[str, str], tmp_path: Path, *args: str) -> dict:
    report = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.json"
    environ = {**environ, "HARNESS_STATE_DIR": str(tmp_path / "state")}
    completed = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--report", str(report), *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    return json.loads(report.read_text())


def test_three_runs_leave_the_environment_identical(
    sandbox_environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    base_url = sandbox_environ["HARNESS_BASE_URL"]
    sessions = seed_foreign_data(base_url, aws)
    before = snapshot(aws)
    reports = [
        harness_run(sandbox_environ, tmp_path),
        harness_run(sandbox_environ, tmp_path, "-n", "2"),
        harness_run(sandbox_environ, tmp_path, "--suite", "smoke"),
    ]
    after = snapshot(aws)
    assert after == before, "the environment changed"
    assert digest(after) == digest(before)
    for report in reports:
        assert report["tests"]["failed"] == report["tests"]["error"] == 0
        assert report["resources"]["created"] > 0
        assert report["resources"]["created"] == report["resources"]["cleaned"]
        assert report["resources"]["leaked"] == 0
    assert len({r["run_id"] for r in reports}) == 3
    for uid, token in sessions:  # foreign sessions still work
        response = requests.get(
            f"{base_url}/users/{uid}", headers={"uid": str(uid), "token": token}, timeout=10
        )
        assert response.status_code == 200
