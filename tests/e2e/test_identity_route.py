"""``identity = "route"`` against the live sandbox (issue 21, item 7): a profile that proves
its environment with a field of any GET route runs (the report keeps the proof); one that
expects another environment is refused — one line, exit 7, nothing written; and a protected
profile that would take the sandbox's ``"status": "ok"`` (what every environment's status
route answers) as proof is refused by its configuration, exit 8. A project as a user lays it
out: no HARNESS_* variable, the sandbox's names in its file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.clients.aws import Aws
from harness.run.local_sandbox import LocalSandbox
from tests.digest import digest, snapshot
from tests.e2e.test_config_project import PYTEST_INI, fields_of, harness, shown, user_environ

pytestmark = pytest.mark.e2e

HEALTH = """\
def test_health(api):
    assert api.get("/health").status_code == 200
"""
ADAPTER = ("users_table", "tokens_table", "notifications_table")  # no adapter here


@pytest.fixture
def project(tmp_path: Path, live_sandbox: LocalSandbox) -> Path:
    root = tmp_path / "proj"
    (root / "suites").mkdir(parents=True)
    shared = {k: v for k, v in fields_of(live_sandbox).items() if k not in ADAPTER}
    shared.update(identity="route", identity_route="GET /health")
    profiles = {
        "local": {"environment": "sandbox", "identity_field": "environment", "protected": False},
        "prod": {"environment": "production", "identity_field": "environment", "protected": True},
        "stale": {"environment": "ok", "identity_field": "status", "protected": True},
    }
    text = ""
    for name, own in profiles.items():
        values = {**shared, **own}
        text += f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    (root / "environments.toml").write_text(text)
    (root / "pytest.ini").write_text(PYTEST_INI)
    (root / "suites" / "test_health.py").write_text(HEALTH)
    return root


def test_a_route_field_proves_the_environment(
    project: Path, sandbox_environ: dict[str, str], tmp_path: Path
) -> None:
    environ = user_environ(sandbox_environ)
    doctor = harness(environ, project, "doctor", "--env", "local")
    assert doctor.returncode == 0, shown(doctor)
    rows = [" ".join(line.split()) for line in doctor.stdout.splitlines()]
    assert "OK identity environment 'sandbox' (GET /health, field environment)" in rows
    report_path = tmp_path / "report.json"
    run = harness(environ, project, "run", "--env", "local", "--report", str(report_path))
    assert run.returncode == 0, shown(run)
    assert json.loads(report_path.read_text())["identity"] == {
        "identity": "route",
        "identity_route": "GET /health",
        "identity_field": "environment",
        "environment": "sandbox",
    }


def test_another_environment_behind_the_route_is_refused_before_anything_is_written(
    project: Path, sandbox_environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    before = digest(snapshot(aws))
    environ = user_environ(sandbox_environ)
    run = harness(environ, project, "run", "--env", "prod", "--report", str(report_path))
    assert run.returncode == 7, shown(run)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "/health says (its field environment) it is environment " in lines[0]
    assert "'sandbox', but profile [prod] expects 'production': refusing" in lines[0], shown(run)
    assert json.loads(report_path.read_text())["exit_status"] == 7
    assert not (project / ".harness" / "runs").exists()
    assert digest(snapshot(aws)) == before


def test_a_protected_profile_cannot_take_ok_for_an_environment(
    project: Path, sandbox_environ: dict[str, str]
) -> None:
    """The sandbox's /health answers "status": "ok" — as every environment's would."""
    environ = user_environ(sandbox_environ)
    for command in (["run", "--env", "stale"], ["doctor", "--env", "stale"]):
        done = harness(environ, project, *command)
        assert done.returncode == 8, shown(done)
        assert (
            "expects the answer 'ok', which every environment's status route may give"
            in done.stdout + done.stderr
        ), shown(done)
        assert "Traceback" not in done.stdout + done.stderr
