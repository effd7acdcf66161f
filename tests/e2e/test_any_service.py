"""Any service, the way a new user meets the harness: a wheel of this repository installed
(non-editable) into a fresh virtual environment, and a separate project — only its own
``environments.toml``, ``suites/`` and a small ``fixtures/``, its configuration and fixtures
copied from the snippets of docs/adapters.md (so the doc stays true) — run against the notes
service (tests/services/notes_service: bearer tokens, its own tables and key schemas, no
``/health``, a welcome note written by a background worker, a ``DELETE /me`` that leaves
notes and sessions behind).

With plain ``pytest`` and ``harness run`` (``-n 2`` included): tests pass and nothing is
left; a test that creates without the ledger is reported as a leak and fails the run; a
SIGKILLed run is recovered by ``harness recover`` and by the next run; ``harness sweep``
deletes leftovers of every declared kind; foreign items in the same tables — ``alice``'s,
and a harness-shaped ``itest-…@gmail.com`` — are never touched (checked with boto3 on the
service's emulator). ``harness init`` + ``harness doctor`` say what to fill in; the doc's
worked example of a kind written in Python works like the declared one.

The venv is built once per test session (shared by xdist workers through a file lock); its
build figures are printed (``-s`` without xdist shows them; ``--durations`` shows the setup
cost). Each test starts its own notes service, so tests never see each other's data.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from boto3.dynamodb.types import TypeDeserializer
from filelock import FileLock

from tests.services.test_notes_service import SERVICE_DIR, Service, start

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TABLES = {"accounts": "username", "notes": "owner", "sessions": "username"}
#: Items of other people in the same tables: a plain name, and a harness-shaped name on a
#: real mail domain (its run id parses; the ownership gate must still refuse it).
FOREIGN = ("alice", "itest-20260101t000000-abcd-main-x@gmail.com")

# --- the separate project, as docs/adapters.md tells a user to write it ---------------------

DOC = REPO / "docs" / "adapters.md"


def doc_files() -> dict[str, str]:
    """The snippets of docs/adapters.md whose first line names a file (``# fixtures/x.py``)."""
    blocks = re.findall(r"```(?:python|toml)\n# ([\w./]+)\n(.*?)```", DOC.read_text(), re.S)
    return dict(blocks)


SUITES_NOTES = """\
import time

import pytest


def wait_for_notes(api, account, count=1):
    deadline = time.monotonic() + 5
    while len(notes := api.get("/notes", auth=account.auth).json()["notes"]) < count:
        assert time.monotonic() < deadline, f"{count} note(s) expected, got {notes}"
        time.sleep(0.05)
    return notes


@pytest.mark.smoke
@pytest.mark.readonly
def test_status(api):
    assert api.get("/status").json() == {"ok": True}


@pytest.mark.smoke
def test_me(api, account):
    me = api.get("/me", auth=account.auth)
    assert me.status_code == 200 and me.json()["username"] == account.username


def test_the_welcome_note_arrives_by_itself(api, account):
    assert [n["note_id"] for n in wait_for_notes(api, account)] == ["welcome"]


def test_a_recorded_note(api, ledger, account):
    def create():
        reply = api.post("/notes", json={"text": "hello"}, auth=account.auth)
        assert reply.status_code == 201
        return reply.json()

    note = ledger.create("note", {"owner": account.username}, create)
    listed = [n["note_id"] for n in api.get("/notes", auth=account.auth).json()["notes"]]
    assert note.ids["note_id"] in listed


def test_a_note_the_test_deletes_itself(api, ledger, account):
    def create():
        return api.post("/notes", json={"text": "bye"}, auth=account.auth).json()

    note = ledger.create("note", {"owner": account.username}, create)
    path = f"/notes/{note.ids['note_id']}"
    assert api.delete(path, auth=account.auth).status_code == 204
    assert api.delete(path, auth=account.auth).status_code == 404


def test_delete_me_is_sloppy(api, account):
    wait_for_notes(api, account)  # the welcome note is there
    assert api.post("/notes", json={"text": "forgotten"}, auth=account.auth).status_code == 201
    assert api.delete("/me", auth=account.auth).status_code == 204
    assert api.get("/me", auth=account.auth).status_code == 401
    # two notes and a session row stay behind: they belong to the account


def test_two_accounts_do_not_see_each_other(api, account_factory):
    one, two = account_factory(), account_factory()
    created = api.post("/notes", json={"text": "mine"}, auth=one.auth).json()
    theirs = [n["note_id"] for n in api.get("/notes", auth=two.auth).json()["notes"]]
    assert created["note_id"] not in theirs
"""

SUITES_SCENARIOS = '''\
"""Scenarios the harness's own e2e test asks for: a leak, a run killed mid-test."""

import os
import time
from pathlib import Path

import pytest

SCENARIO = os.environ.get("NOTES_SCENARIO", "")


@pytest.mark.skipif(SCENARIO != "leak", reason="only when a leak is asked for")
def test_registers_without_the_ledger(api, namespace):
    name = namespace.name("leak")
    reply = api.post("/register", json={"username": name, "password": "pw-leak"})
    assert reply.status_code == 201
    time.sleep(0.6)  # its welcome note is written too


@pytest.mark.skipif(SCENARIO != "crash", reason="only when a crash is asked for")
def test_killed_mid_test(api, ledger, account):
    deadline = time.monotonic() + 5
    while not api.get("/notes", auth=account.auth).json()["notes"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ledger.create(
        "note",
        {"owner": account.username},
        lambda: api.post("/notes", json={"text": "x"}, auth=account.auth).json(),
    )
    Path(os.environ["NOTES_READY_FILE"]).write_text(account.username)
    time.sleep(300)  # SIGKILLed here
'''

#: The project: what the doc tells a user to write, and the tests of this module's scenarios.
PROJECT_FILES = {
    "fixtures/__init__.py": "",
    "suites/__init__.py": "",
    "suites/test_notes.py": SUITES_NOTES,
    "suites/test_scenarios.py": SUITES_SCENARIOS,
}
DOC_FILES = ("environments.toml", "fixtures/accounts.py", "suites/conftest.py")
#: Tests of a normal run: test_notes.py's seven pass; the two scenarios are skipped.
NORMAL_PASSED = 7

# --- the installed harness ---------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def environ(self, **extra: str) -> dict[str, str]:
        """A user's shell: the venv first on PATH, nothing of this repository or this run."""
        drop = ("HARNESS_", "AWS_", "PYTEST_", "PYTHON", "VIRTUAL_ENV")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = "test"  # the emulator's
        env.update(extra)
        return env

    def run(
        self, command: list[str], cwd: Path, timeout: float = 120, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / command[0]), *command[1:]],
            cwd=cwd,
            env=self.environ(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def shown(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


PIP = (sys.executable, "-m", "pip")


def _build(where: Path) -> Path:
    source = where / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", ".harness", "*.egg-info", "__pycache__", "*_cache"
        ),
    )
    timings = {}
    started = time.perf_counter()
    wheels = where / "wheels"
    # this interpreter's setuptools builds it (no download) when it has one; else pip's own way
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run(
        [*PIP, "wheel", "-q", "--no-deps", *isolation, "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
    )
    timings["wheel"] = time.perf_counter() - started
    (wheel,) = wheels.glob("env_harness-*.whl")
    venv = where / "venv"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    timings["venv"] = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(
        # the `sql` extra too: the stores service's SQL kind (tests/e2e/test_stores_service.py)
        [*PIP, "--python", str(venv / "bin" / "python"), "install", "-q", f"{wheel}[sql]"],
        check=True,
        capture_output=True,
    )
    timings["install"] = time.perf_counter() - started
    figures = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    print(f"\nany-service venv: {figures} ({wheel.name}, non-editable, with its dependencies)")
    return venv


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh venv with the wheel installed; one per test session, xdist workers share it."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    where = root / "any-service-venv"
    with FileLock(str(root / "any-service-venv.lock")):
        if not (where / "venv" / "bin" / "harness").exists():
            shutil.rmtree(where, ignore_errors=True)
            _build(where)
    return Installed(where / "venv")


# --- the service, its tables and the project ---------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = start([str(SERVICE_DIR), "--with-emulator"], cwd=tmp_path)
    try:
        yield svc
    finally:
        svc.stop()


def write_project(root: Path, service: Service, *, code_kind: bool = False) -> Path:
    """The user's project — environments.toml, suites/ and fixtures/, outside the repo — from
    the doc's snippets, pointed at ``service``. ``code_kind``: the session kind written in
    Python (the doc's fixtures/kinds.py) instead of declared."""
    assert not root.resolve().is_relative_to(REPO)
    documented = doc_files()
    assert set(DOC_FILES) <= set(documented), f"docs/adapters.md lost a snippet: {documented}"
    files = {name: documented[name] for name in DOC_FILES}
    profile = files.pop("environments.toml")
    if code_kind:  # the doc's profile for it, as written
        (profile,) = re.findall(
            r"```toml\n# environments.toml, with the session kind written in Python\n(.*?)```",
            DOC.read_text(),
            re.S,
        )
        files["fixtures/kinds.py"] = documented["fixtures/kinds.py"]
    profile = re.sub(r'(?m)^base_url = ".*"$', f'base_url = "{service.url}"', profile)
    endpoint = f'aws_endpoint_url = "{service.aws_endpoint}"'
    profile = re.sub(r'(?m)^aws_endpoint_url = ".*"$', endpoint, profile)
    assert service.url in profile and service.aws_endpoint in profile
    for relative, text in {"environments.toml": profile, **files, **PROJECT_FILES}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def project(tmp_path: Path, service: Service) -> Path:
    return write_project(tmp_path / "my-notes-tests", service)


class Tables:
    """The service's tables read directly on its emulator (boto3), as plain dicts."""

    def __init__(self, service: Service) -> None:
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=service.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        self._plain = TypeDeserializer()

    def items(self) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for table in TABLES:
            rows: list[dict[str, Any]] = []
            kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
            while True:
                page = self.client.scan(**kwargs)
                rows += [
                    {k: self._plain.deserialize(v) for k, v in i.items()} for i in page["Items"]
                ]
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            found[table] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
        return found

    def of(self, markers: tuple[str, ...] | None = None) -> dict[str, list[dict[str, Any]]]:
        """Items whose marker is one of ``markers``; None: every harness-made item (itest-,
        not foreign)."""
        return {
            table: [
                row
                for row in rows
                if (
                    str(row.get(TABLES[table])) in markers
                    if markers is not None
                    else str(row.get(TABLES[table])).startswith("itest-")
                    and str(row.get(TABLES[table])) not in FOREIGN
                )
            ]
            for table, rows in self.items().items()
        }

    def count(self, markers: tuple[str, ...] | None = None) -> dict[str, int]:
        return {table: len(rows) for table, rows in self.of(markers).items()}


def make_account(service: Service, name: str) -> None:
    """Register, log in and write a note through the service itself (as someone else, or as
    a run that crashed on another machine), then wait for its welcome note."""
    body = {"username": name, "password": "pw-someone"}
    assert requests.post(f"{service.url}/register", json=body).status_code == 201
    token = requests.post(f"{service.url}/login", json=body).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.post(f"{service.url}/notes", json={"text": "x"}, headers=auth).status_code
    deadline = time.monotonic() + 5
    while len(requests.get(f"{service.url}/notes", headers=auth).json()["notes"]) < 2:
        assert time.monotonic() < deadline, f"no welcome note for {name}"
        time.sleep(0.05)


@pytest.fixture
def tables(service: Service) -> Tables:
    return Tables(service)


@pytest.fixture
def foreign(service: Service, tables: Tables) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Someone else's data in the same tables; asserted untouched after the test."""
    for name in FOREIGN:
        make_account(service, name)
    before = tables.of(FOREIGN)
    assert {t: len(rows) for t, rows in before.items()} == {
        "accounts": 2,
        "notes": 4,
        "sessions": 2,
    }
    yield before
    assert tables.of(FOREIGN) == before, "a foreign item was touched"


def report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def kill_mid_test(installed: Installed, project: Path, tables: Tables) -> str:
    """Start a run whose test records an account and a note, SIGKILL it mid-test; the name
    of the account it left behind (with its welcome note, its note and its session)."""
    ready = project / "ready.txt"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [str(installed.bin / "pytest"), "-q", "--env", "local", "suites/test_scenarios.py"],
        cwd=project,
        env=installed.environ(NOTES_SCENARIO="crash", NOTES_READY_FILE=str(ready)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text():
            assert proc.poll() is None, f"the run ended by itself ({proc.returncode})"
            assert time.monotonic() < deadline, "the run never reached its test"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    name = ready.read_text()
    assert tables.count((name,)) == {"accounts": 1, "notes": 2, "sessions": 1}
    return name


def journals(project: Path) -> list[str]:
    runs = project / ".harness" / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.exists() else []


# --- the tests ---------------------------------------------------------------------------


def test_the_wheel_installs_the_harness_and_nothing_else(
    installed: Installed, tmp_path: Path
) -> None:
    probe = textwrap.dedent(
        """
        import importlib.metadata, importlib.resources, importlib.util, json
        import harness, harness.sandbox
        assets = importlib.resources.files("harness.sandbox") / "service"
        contracts = assets / "chalicelib" / "contracts"
        print(json.dumps({
            "missing": [m for m in ("fixtures", "suites", "sandbox")
                        if importlib.util.find_spec(m) is None],
            "not_installed": [m for m in ("chalice", "moto")
                              if importlib.util.find_spec(m) is None],
            "sandbox_extra": sorted(
                r.split("~")[0] for r in importlib.metadata.requires("env-harness") or []
                if r.endswith('extra == "sandbox"')
            ),
            "harness": harness.__file__,
            "app": (assets / "app.py").is_file(),
            "contracts": sorted(p.name for p in contracts.iterdir()),
        }))
        """
    )
    found = json.loads(installed.run(["python", "-c", probe], cwd=tmp_path).stdout)
    assert found["missing"] == ["fixtures", "suites", "sandbox"]
    # the embedded sandbox's emulator and framework are the `sandbox` extra, not the core
    assert found["not_installed"] == ["chalice", "moto"]
    assert {"chalice", "moto[server]"} <= set(found["sandbox_extra"]), found["sandbox_extra"]
    assert Path(found["harness"]).is_relative_to(installed.venv)  # not editable
    assert found["app"] and found["contracts"] == ["user.created", "user.deleted"]
    # every package of the checkout is in the wheel (harness.accounts once was not: the
    # installed plugin failed to load, `No module named 'harness.accounts'`)
    checkout = sorted(
        ".".join(("harness", *prefix, *init.parent.relative_to(REPO / top).parts))
        for top, prefix in (("harness", ()), ("sandbox", ("sandbox",)))
        for init in (REPO / top).rglob("__init__.py")
        if "__pycache__" not in init.parts and "service" not in init.parts  # the app: assets
    )
    lister = (
        "import importlib.util as u, sys\nprint([m for m in sys.argv[1:] if not u.find_spec(m)])"
    )
    absent = installed.run(["python", "-c", lister, *checkout], cwd=tmp_path).stdout.strip()
    assert absent == "[]", (absent, checkout)

    help_text = installed.run(["pytest", "--help"], cwd=tmp_path)
    assert help_text.returncode == 0 and "--env=NAME" in help_text.stdout
    markers = installed.run(["pytest", "--markers"], cwd=tmp_path).stdout
    for marker in ("smoke", "nightly", "readonly"):
        assert markers.count(f"@pytest.mark.{marker}:") == 1, markers
    # a project with a harness/ folder of its own never shadows the installed package
    (tmp_path / "mine" / "harness").mkdir(parents=True)
    (tmp_path / "mine" / "harness" / "__init__.py").write_text("")
    env_help = installed.run(["harness", "env", "up", "--help"], cwd=tmp_path / "mine")
    assert "No module named" not in env_help.stderr, env_help.stderr
    assert env_help.stdout.startswith("usage: harness env up"), shown(env_help)


def test_plain_pytest_and_harness_run_pass_and_leave_nothing(
    installed: Installed, project: Path, tables: Tables, foreign: Any
) -> None:
    # No --env: environments.toml at the rootdir activates the plugin, its one profile is used.
    plain = installed.run(["pytest", "-q", "--harness-report=plain.json"], cwd=project)
    assert plain.returncode == 0, shown(plain)
    assert 'identity = "none"' in plain.stderr  # the loud warning
    assert "residue check: clean" in plain.stdout, shown(plain)
    parallel = installed.run(
        ["pytest", "-q", "-n", "2", "--env", "local", "--harness-report=parallel.json"],
        cwd=project,
    )
    assert parallel.returncode == 0, shown(parallel)
    cli = installed.run(
        ["harness", "run", "--env", "local", "-n", "2", "--summary", "summary.md"], cwd=project
    )
    assert cli.returncode == 0, shown(cli)
    # docs/adapters.md §7: the terminal and the Markdown summary say what the JSON counts
    belonging = report(project / "harness-report.json")["resources"]["belonging"]
    line = f"{belonging} item(s) the service wrote for recorded resources removed with them"
    assert f"{line} (not leaks)" in cli.stdout, shown(cli)
    assert f"{line} (not leaks)." in (project / "summary.md").read_text()

    for name in ("plain.json", "parallel.json", "harness-report.json"):
        run = report(project / name)
        assert run["exit_status"] == 0 and run["leaked"] == [], run
        assert run["tests"]["passed"] == NORMAL_PASSED, run["tests"]
        created = run["resources"]["created"]
        assert created == run["resources"]["cleaned"] == 9, run["resources"]
        # every login's session row, the welcome notes that made it before their account was
        # deleted, the notes DELETE /me forgot: found by their marker, removed, no leak
        assert run["resources"]["belonging"] >= 12, run["resources"]
    assert tables.count() == {"accounts": 0, "notes": 0, "sessions": 0}
    assert journals(project) == []


def test_a_leak_is_reported_removed_and_fails_the_run(
    installed: Installed, project: Path, tables: Tables, foreign: Any
) -> None:
    cli = installed.run(
        ["harness", "run", "--env", "local", "-n", "2", "suites/test_scenarios.py"],
        cwd=project,
        NOTES_SCENARIO="leak",
    )
    assert cli.returncode == 6, shown(cli)  # 6: the tests passed, something leaked
    assert "RESIDUE:" in cli.stdout and "leaked account" in cli.stdout, shown(cli)
    leaked = report(project / "harness-report.json")["leaked"]
    accounts = [item["username"] for item in leaked if item["kind"] == "account"]
    assert len(accounts) == 1 and accounts[0].endswith("-leak"), leaked
    assert {"kind": "note", "owner": accounts[0], "note_id": "welcome"} in leaked
    assert tables.count() == {"accounts": 0, "notes": 0, "sessions": 0}  # and removed

    plain = installed.run(["pytest", "-q"], cwd=project, NOTES_SCENARIO="leak")
    assert plain.returncode == 6 and "leaked account" in plain.stdout, shown(plain)
    assert tables.count() == {"accounts": 0, "notes": 0, "sessions": 0}


def test_a_killed_run_is_recovered_by_harness_recover(
    installed: Installed, project: Path, tables: Tables, foreign: Any
) -> None:
    name = kill_mid_test(installed, project, tables)
    (run_id,) = journals(project)
    assert name.startswith(run_id)
    recovered = installed.run(["harness", "recover", "--env", "local"], cwd=project)
    assert recovered.returncode == 0, shown(recovered)
    assert f"run {run_id}: 2 deleted" in recovered.stdout, shown(recovered)
    assert "2 written by the service for them removed too" in recovered.stdout
    assert tables.count() == {"accounts": 0, "notes": 0, "sessions": 0}
    assert journals(project) == []
    again = installed.run(["harness", "recover", "--env", "local"], cwd=project)
    assert again.returncode == 0 and "no dead run" in again.stdout, shown(again)


def test_a_killed_run_is_recovered_by_the_next_run(
    installed: Installed, project: Path, tables: Tables, foreign: Any
) -> None:
    name = kill_mid_test(installed, project, tables)
    (run_id,) = journals(project)
    following = installed.run(["pytest", "-q", "-n", "2", "--env", "local"], cwd=project)
    assert following.returncode == 0, shown(following)
    assert f"recovered dead run {run_id}: 2 deleted" in following.stderr, shown(following)
    assert tables.count((name,)) == {"accounts": 0, "notes": 0, "sessions": 0}
    assert tables.count() == {"accounts": 0, "notes": 0, "sessions": 0}
    assert journals(project) == []


def test_sweep_deletes_leftovers_of_every_declared_kind(
    installed: Installed, service: Service, project: Path, tables: Tables, foreign: Any
) -> None:
    kill_mid_test(installed, project, tables)
    shutil.rmtree(project / ".harness")  # as if it had died on another machine
    make_account(service, "itest-20260101t000000-wxyz-gw1-old")  # an older run's leftovers
    left = tables.items()
    assert tables.count() == {"accounts": 2, "notes": 4, "sessions": 2}

    dry = installed.run(["harness", "sweep", "--env", "local", "--older-than", "0"], cwd=project)
    assert dry.returncode == 0, shown(dry)
    assert "1 account, 2 note, 1 session" in dry.stdout, shown(dry)
    assert "not harness data (fails the ownership gate): 4 item(s)" in dry.stdout
    assert "total: 8 item(s) in 2 run(s)" in dry.stdout and "dry run" in dry.stdout
    assert tables.items() == left

    swept = installed.run(
        ["harness", "sweep", "--env", "local", "--older-than", "0", "--yes"], cwd=project
    )
    assert swept.returncode == 0, shown(swept)
    assert "deleted 8 item(s)" in swept.stdout, shown(swept)
    assert tables.count() == {"accounts": 0, "notes": 0, "sessions": 0}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_init_then_doctor_says_what_to_fill_in(installed: Installed, tmp_path: Path) -> None:
    target = tmp_path / "new-project"
    init = installed.run(["harness", "init", str(target)], cwd=tmp_path)
    assert init.returncode == 0, shown(init)
    for relative in ("environments.toml", "pytest.ini", "conftest.py", "suites/smoke"):
        assert (target / relative).exists(), relative
    nothing = f"http://127.0.0.1:{_closed_port()}"
    doctor = installed.run(
        ["harness", "doctor", "--env", "local"],
        cwd=target,
        timeout=90,
        HARNESS_BASE_URL=nothing,
        HARNESS_AWS_ENDPOINT_URL=nothing,
        HARNESS_ALLOW_ENV_OVERRIDE="1",  # the variables change the named profile on purpose
    )
    assert doctor.returncode == 7, shown(doctor)  # 7: the target is unreachable
    lines = doctor.stdout.splitlines()
    assert any(line.startswith("OK") and "environments.toml" in line for line in lines)
    assert any(line.startswith("FAIL") and "reachability" in line for line in lines)
    assert any(line.startswith("WARN") and "identity" in line for line in lines)  # "none"
    assert "fix: is the environment up? check base_url of [local]" in doctor.stdout
    assert "FAIL: fix the rows above before a run" in doctor.stdout
    init_again = installed.run(["harness", "init", str(target)], cwd=tmp_path)
    assert init_again.returncode == 0 and "kept" in init_again.stdout  # never overwrites


def test_doctor_is_green_for_the_project(
    installed: Installed, project: Path, service: Service
) -> None:
    doctor = installed.run(["harness", "doctor"], cwd=project)
    assert doctor.returncode == 0, shown(doctor)
    for row in ("table kind account", "table kind note", "table kind session"):
        assert any(line.startswith("OK") and row in line for line in doctor.stdout.splitlines()), (
            shown(doctor)
        )


def test_a_kind_written_in_python_works_the_same(
    installed: Installed, service: Service, tmp_path: Path, tables: Tables, foreign: Any
) -> None:
    """The doc's worked example: the session kind as a Kind subclass in fixtures/kinds.py,
    its table a setting of the profile, loaded by the plugin and by every command."""
    project = write_project(tmp_path / "coded", service, code_kind=True)
    run = installed.run(["harness", "run", "-n", "2"], cwd=project)
    assert run.returncode == 0, shown(run)
    resources = report(project / "harness-report.json")["resources"]
    assert resources["belonging"] >= 12 and resources["leaked"] == 0, resources
    assert tables.count() == {"accounts": 0, "notes": 0, "sessions": 0}

    make_account(service, "itest-20260101t000000-wxyz-gw1-old")
    swept = installed.run(["harness", "sweep", "--older-than", "0", "--yes"], cwd=project)
    assert swept.returncode == 0, shown(swept)
    assert "1 account, 2 note, 1 session" in swept.stdout, shown(swept)
    assert tables.count() == {"accounts": 0, "notes": 0, "sessions": 0}
    doctor = installed.run(["harness", "doctor"], cwd=project)
    assert doctor.returncode == 0 and "table sessions_table" in doctor.stdout, shown(doctor)
