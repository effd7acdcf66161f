"""A project's profiles file, as a user lays it out, against the live sandbox: found from a
subfolder (`cd suites && harness run`), with the journals kept in the project root where
`harness recover` from the root finds them. Nothing names the file here: HARNESS_CONFIG (which
the `sandbox_environ` fixture sets) and every other HARNESS_* variable are dropped, and the
sandbox's names are written into the project's environments.toml instead."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.clients.aws import Aws
from harness.run.local_sandbox import LocalSandbox

pytestmark = pytest.mark.e2e

PYTEST_INI = """\
[pytest]
testpaths = suites
addopts = -p no:cacheprovider -p no:faker -p no:hypothesispytest
markers =
    smoke: fast checks
    readonly: creates nothing
"""
SIGNED_UP = """\
import os
import time
from pathlib import Path

import pytest


@pytest.mark.smoke
def test_signed_up(api, user):
    assert api.get(f"/users/{user.uid}", auth=user.auth).status_code == 200
    ready = os.environ.get("READY_FILE")
    if ready:  # hold the run here, its user created, until it is killed
        Path(ready).write_text(str(user.uid))
        time.sleep(120)
"""


def fields_of(sandbox: LocalSandbox) -> dict[str, str]:
    """The sandbox's exports as profile fields (``HARNESS_USERS_TABLE`` -> ``users_table``)."""
    return {
        name.removeprefix("HARNESS_").lower(): value
        for name, value in sandbox.exports.items()
        if value and name.startswith("HARNESS_")
    }


def toml_table(name: str, values: dict[str, Any]) -> str:
    lines = [f"[{name}]"]
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def user_environ(sandbox_environ: dict[str, str], **extra: str) -> dict[str, str]:
    """A user's shell: no HARNESS_* variable (no HARNESS_CONFIG, no sandbox exports); the
    repository on PYTHONPATH for the reference adapter (fixtures.kinds, fixtures.users)."""
    environ = {k: v for k, v in sandbox_environ.items() if not k.startswith("HARNESS_")}
    return {**environ, **extra}


def harness(environ: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def shown(result: subprocess.CompletedProcess[str]) -> str:
    out, err = result.stdout[-4000:], result.stderr[-3000:]
    return f"exit {result.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"


@pytest.fixture
def project(tmp_path: Path, live_sandbox: LocalSandbox) -> Path:
    """environments.toml (one profile, `local`, naming the live sandbox), pytest.ini and
    conftest.py at the root; the suite in suites/."""
    root = tmp_path / "proj"
    (root / "suites").mkdir(parents=True)
    local = {**fields_of(live_sandbox), "adapters": ["fixtures.kinds"], "protected": False}
    (root / "environments.toml").write_text(toml_table("local", local))
    (root / "pytest.ini").write_text(PYTEST_INI)
    (root / "conftest.py").write_text('pytest_plugins = ["fixtures.users"]\n')
    (root / "suites" / "test_signed_up.py").write_text(SIGNED_UP)
    return root


def test_harness_run_from_a_subfolder_uses_the_projects_profiles(
    project: Path, sandbox_environ: dict[str, str], tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    environ = user_environ(sandbox_environ)
    run = harness(
        environ,
        project / "suites",
        "run",
        "--suite",
        "smoke",
        "--report",
        str(report_path),
        "-n",
        "2",
    )
    assert run.returncode == 0, shown(run)
    report = json.loads(report_path.read_text())
    assert report["profile"] == "local", report
    assert report["target"]["config_file"] == str(project / "environments.toml")
    assert report["tests"]["passed"] == 1 and report["resources"]["created"] >= 1
    assert report["resources"]["cleaned"] == report["resources"]["created"]
    assert not (project / "suites" / ".harness").exists()
    doctor = harness(environ, project / "suites", "doctor")
    assert doctor.returncode == 0, shown(doctor)
    assert f"profile [local] ({project / 'environments.toml'})" in doctor.stdout


def test_a_run_killed_in_a_subfolder_is_recovered_from_the_root(
    project: Path, sandbox_environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    environ = user_environ(sandbox_environ)
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--report", str(tmp_path / "killed.json")],
        cwd=project / "suites",
        env={**environ, "READY_FILE": str(ready)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() or not ready.read_text():
            assert process.poll() is None, f"the run ended by itself ({process.returncode})"
            assert time.monotonic() < deadline, "the run never reached its test"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    users = aws.table(sandbox_environ["HARNESS_USERS_TABLE"])
    key = {"Uid": int(ready.read_text())}
    assert "Item" in users.get_item(Key=key, ConsistentRead=True), "the killed run's user"
    assert (project / ".harness" / "runs").is_dir(), "the journal is kept in the project root"
    assert not (project / "suites" / ".harness").exists()
    recovered = harness(environ, project, "recover")
    assert recovered.returncode == 0, shown(recovered)
    assert re.search(r": [1-9]\d* deleted", recovered.stdout), shown(recovered)
    assert "Item" not in users.get_item(Key=key, ConsistentRead=True), shown(recovered)
