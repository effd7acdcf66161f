"""A project's profiles file, as a user lays it out, against the live sandbox: found from a
subfolder (`cd suites && harness run`, `-n 2`) with the journals kept in the project root,
where `harness recover` from the root finds a killed run's; a variable that would loosen a
protected profile refused before anything starts (exit 8, the target unchanged); and two
profiles written once ([defaults] with a declared kind, `default = "local"`) run under plain
`pytest` and `--env other`. Nothing names the file here: HARNESS_CONFIG (which the
`sandbox_environ` fixture sets) and every other HARNESS_* variable are dropped, and the
sandbox's names are written into the project's environments.toml instead."""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.clients.aws import Aws
from harness.run.local_sandbox import LocalSandbox
from tests.digest import digest, snapshot

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


@pytest.mark.parametrize(
    ("variable", "value"), [("HARNESS_PROTECTED", "false"), ("HARNESS_ALLOW_WRITES", "POST /users")]
)
def test_a_variable_cannot_loosen_a_protected_profile(
    project: Path,
    live_sandbox: LocalSandbox,
    sandbox_environ: dict[str, str],
    aws: Aws,
    tmp_path: Path,
    variable: str,
    value: str,
) -> None:
    """Issue 20, item 3: `--env prod` (protected = true) with a loosening variable exported
    is refused before anything is started: one line naming the variable, exit 8, the report
    says `config`, and the target is exactly as it was."""
    prod = {**fields_of(live_sandbox), "adapters": ["fixtures.kinds"], "protected": True}
    prod["allow_writes"] = ["POST /login"]
    (project / "environments.toml").write_text(toml_table("prod", prod))
    report_path = tmp_path / "report.json"
    before = digest(snapshot(aws))
    environ = user_environ(sandbox_environ, **{variable: value})
    run = harness(environ, project, "run", "--env", "prod", "--report", str(report_path))
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 8, shown(run)
    assert len(lines) == 1 and lines[0].startswith(f"harness: ${variable} would "), shown(run)
    assert "only the file can loosen a protected profile" in lines[0]
    assert "Traceback" not in run.stdout + run.stderr
    report = json.loads(report_path.read_text())
    assert (report["outcome"], report["exit_status"]) == ("config", 8)
    assert digest(snapshot(aws)) == before


NOTES = """\
def test_a_note_of_a_shared_kind(ledger, namespace, harness_session, env):
    owner = namespace.name()
    table = harness_session.aws.table(env.kinds["note"]["table"])

    def put():
        table.put_item(Item={"Owner": owner, "Text": "written by the test"})
        return {}

    ledger.create("note", {"Owner": owner}, put)
    assert table.get_item(Key={"Owner": owner}, ConsistentRead=True)["Item"]["Owner"] == owner
"""


@pytest.fixture
def notes_table(aws: Aws) -> Iterator[str]:
    """A table of the project's own, for a kind declared in [defaults]; removed after."""
    name = f"notes-{secrets.token_hex(3)}"
    aws.dynamodb_client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "Owner", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Owner", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        yield name
    finally:
        aws.dynamodb_client.delete_table(TableName=name)


def test_profiles_written_once_run_under_plain_pytest_and_with_env(
    project: Path,
    live_sandbox: LocalSandbox,
    sandbox_environ: dict[str, str],
    aws: Aws,
    notes_table: str,
    tmp_path: Path,
) -> None:
    """Issue 21, item 5: two profiles sharing [defaults] (the sandbox's names, the adapter,
    a declared kind) and `default = "local"`: plain `pytest` runs [local], `--env other` runs
    [other]; each creates through the shared kind and the reference adapter and leaves
    nothing."""
    shared = {**fields_of(live_sandbox), "adapters": ["fixtures.kinds"]}
    base_url = shared.pop("base_url")
    text = (
        'default = "local"\n\n'
        + toml_table("defaults", shared)
        + f'\n[defaults.kinds.note]\ntable = "{notes_table}"\nkey = ["Owner"]\nmarker = "Owner"\n\n'
        + toml_table("local", {"base_url": base_url, "protected": False})
        + "\n"
        + toml_table("other", {"base_url": base_url, "protected": False, "test_data_ttl": "1h"})
    )
    (project / "environments.toml").write_text(text)
    (project / "suites" / "test_notes.py").write_text(NOTES)
    environ = user_environ(sandbox_environ)
    for args, profile in (([], "local"), (["--env", "other"], "other")):
        report_path = tmp_path / f"{profile}.json"
        run = subprocess.run(
            [sys.executable, "-m", "pytest", f"--harness-report={report_path}", *args],
            cwd=project,
            env=environ,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, shown(run)
        report = json.loads(report_path.read_text())
        assert report["profile"] == profile, report["target"]
        source = 'default = "local" in environments.toml' if not args else "flag --env"
        assert report["target"]["profile_source"] == source
        assert report["tests"]["passed"] == 2
        assert report["resources"]["created"] == report["resources"]["cleaned"] >= 2
        assert report["resources"]["leaked"] == 0
        assert aws.table(notes_table).scan(ConsistentRead=True)["Items"] == []
