"""What belongs to a resource goes with it, and nothing else does — runs of small projects
against a real sandbox (real HTTP to the service, boto3 to its emulator), judged by
tests/digest.py's independent ``items_mentioning``:

- a sign-up a test made without the ledger fails the run as a leak, and afterwards neither
  the account nor the welcome notification the service wrote for it is in any table — also
  when the service wrote it after the residue check's look began (issue 20 item 4);
- ``module_ledger``: an account made by a module-scoped fixture is used by several tests,
  survives the cleanup of a look-alike (``…-ann`` vs its ``…-ann1``: issue 21 item 3) and is
  gone after the module; kept by ``--keep-on-failure`` when a test that used it failed, and
  cleaned by ``harness recover`` after a SIGKILL in the middle of the module;
- ``session_ledger``: the same for the session.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.clients.aws import Aws
from harness.namespace import RunId
from harness.run import outcome
from harness.waiting import eventually, wait_until
from tests.conftest import REPO
from tests.digest import items_mentioning

pytestmark = pytest.mark.e2e

README = REPO / "README.md"


@dataclass
class Project:
    """A test project of its own (its profile, conftest and tests) aimed at the sandbox."""

    root: Path
    environ: dict[str, str]
    run_id: str

    def write(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            (self.root / name).write_text(text)

    def pytest(self, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        report = self.root / "report.json"
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        done = subprocess.run(
            [*command, "--harness-report", str(report), *args],
            cwd=self.root,
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done, json.loads(report.read_text()) if report.exists() else {}

    def harness(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness", *args],
            cwd=self.root,
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=300,
        )


def profile(sandbox_environ: dict[str, str], *, adapters: bool, kinds: str) -> str:
    adapter = 'adapters = ["fixtures.kinds"]\n' if adapters else ""
    return (
        '[sandbox]\nenvironment = "sandbox"\naws_region = "us-east-1"\nprotected = false\n'
        f'test_data_ttl = "2h"\n{adapter}\n'
        + kinds.format(
            users=sandbox_environ["HARNESS_USERS_TABLE"],
            tokens=sandbox_environ["HARNESS_TOKENS_TABLE"],
            notifications=sandbox_environ["HARNESS_NOTIFICATIONS_TABLE"],
        )
    )


@pytest.fixture
def project(sandbox_environ: dict[str, str], tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    run_id = str(RunId.generate())
    environ = {
        **sandbox_environ,
        "HARNESS_CONFIG": str(root / "environments.toml"),
        "HARNESS_STATE_DIR": str(root / ".harness"),
        "HARNESS_RUN_ID": run_id,
    }
    (root / "pytest.ini").write_text("[pytest]\n")
    return Project(root, environ, run_id)


def shown(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"


# -- a leak's own items go with it (issue 20 item 4) -------------------------------------------

#: A team's no-code adapter for the reference service: its users and the processor's
#: notifications, declared (deleting an account deletes its row, nothing more).
DECLARED = """\
[sandbox.kinds.account]
table = "{users}"
key = "Uid"
marker = "Email"

[sandbox.kinds.welcome]
table = "{notifications}"
key = ["Uid", "NotificationId"]
marker = "Email"
"""

SIGN_UP_BEHIND_THE_LEDGER = """
def test_signs_up_without_the_ledger(api, namespace):
    reply = api.post(
        "/users",
        json={"email": namespace.email("leak"), "name": "Leaky", "password": "leaky-pass-1"},
    )
    assert reply.status_code == 201, reply.text
"""


@pytest.fixture
def slow_consumer(sandbox_environ: dict[str, str], aws: Aws) -> Iterator[None]:
    """The service's consumer two seconds behind: every message on its queue is delayed
    (the queue's own DelaySeconds), so the welcome note is written after the residue
    check's namespace-wide look began. Restored afterwards."""
    queue = sandbox_environ["HARNESS_PROCESSOR_QUEUE_URL"]
    before = aws.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["DelaySeconds"])
    aws.sqs.set_queue_attributes(QueueUrl=queue, Attributes={"DelaySeconds": "2"})
    try:
        yield
    finally:
        aws.sqs.set_queue_attributes(QueueUrl=queue, Attributes=before["Attributes"])


def test_a_leaked_sign_up_goes_with_the_note_the_service_wrote_after_the_look(
    project: Project, sandbox_environ: dict[str, str], aws: Aws, slow_consumer: None
) -> None:
    """The run does not wait for the consumer (``--events-drain 0``: a service whose
    consumer the harness cannot watch), so its look finds the account and no note; the note
    comes ~2 s later, while the leak settles. Removing the account removes the note."""
    project.write(
        {
            "environments.toml": profile(sandbox_environ, adapters=False, kinds=DECLARED),
            "test_leak.py": SIGN_UP_BEHIND_THE_LEDGER,
        }
    )
    done, report = project.pytest("--events-drain", "0", "--residue-settle", "5")
    assert done.returncode == outcome.LEAKED, shown(done)
    assert report["outcome"] == "leaked"
    leaked = sorted(leak["kind"] for leak in report["leaked"])
    assert leaked == ["account", "welcome"], shown(done)
    assert "leaked account " in done.stdout and "leaked welcome " in done.stdout
    assert "2 leaked item(s) removed after the check" in done.stdout, shown(done)
    assert items_mentioning(aws, project.run_id) == []


# -- shared resources: module_ledger, session_ledger (issue 21 item 3) -------------------------

#: The reference adapter, plus session grants written straight into the token table and
#: marked with a namespaced *name* (``…-ann``), found by scanning: the kind whose cleanup
#: could reach a look-alike's rows.
GRANTS = """\
[sandbox.kinds.grant]
table = "{tokens}"
key = "Uid"
marker = "HarnessNamespace"
"""

SHARED = '''
import secrets
import time
from pathlib import Path

import pytest

from harness.adapter import UidTokenAuth

OUT = Path("{out}")


def grant(harness_session, ledger, uid, label):
    """A session for ``uid`` written straight into the token table, marked ``…-<label>``."""
    name = harness_session.namespace.name(label)
    token = secrets.token_urlsafe(24)
    table = harness_session.aws.table(harness_session.profile.setting("tokens_table"))
    item = {{"Uid": uid, "Token": token, "TimeToLive": int(time.time()) + 600}}

    def write():
        table.put_item(Item={{**item, "HarnessNamespace": name}})
        return {{"Uid": uid}}

    ledger.create("grant", {{"HarnessNamespace": name, "Uid": uid}}, write)
    return UidTokenAuth(uid, token)


@pytest.fixture(scope="module")
def ann1(harness_session, module_ledger):
    """One account for the module's tests, with its session ``…-ann1``."""
    users = harness_session.kinds["user"]
    email = harness_session.namespace.email("ann1")
    password = secrets.token_urlsafe(18)
    created = module_ledger.create(
        "user", {{"email": email}}, lambda: users.create(harness_session.api, email, "A", password)
    )
    uid = int(created.ids["uid"])
    (OUT / "uid").write_text(str(uid))
    return uid, grant(harness_session, module_ledger, uid, "ann1")


def test_reads_itself(api, ann1):
    uid, auth = ann1
    assert api.get(f"/users/{{uid}}", auth=auth).status_code == 200


def test_a_look_alike_is_made_and_cleaned(harness_session, ledger, ann1):
    grant(harness_session, ledger, secrets.randbits(52), "ann")  # …-ann, this test's


def test_reads_itself_after_the_look_alikes_cleanup(api, ann1):
    uid, auth = ann1
    reply = api.get(f"/users/{{uid}}", auth=auth)
    assert reply.status_code == 200, "the module's account lost its session"
    {last}
'''

AFTER = """
from pathlib import Path

def test_the_modules_account_is_gone_after_the_module(harness_session):
    uid = int(Path("{out}", "uid").read_text())
    profile, aws = harness_session.profile, harness_session.aws
    for table in (profile.setting("users_table"), profile.setting("tokens_table")):
        assert "Item" not in aws.table(table).get_item(Key={{"Uid": uid}}, ConsistentRead=True)
"""


def shared_project(project: Project, sandbox_environ: dict[str, str], last: str = "") -> None:
    out = project.root
    project.write(
        {
            "environments.toml": profile(sandbox_environ, adapters=True, kinds=GRANTS),
            "conftest.py": 'pytest_plugins = ["fixtures.users"]\n',
            "test_shared.py": SHARED.format(out=out, last=last),
            "test_z_after.py": AFTER.format(out=out),
        }
    )


def test_a_module_account_survives_a_look_alikes_cleanup_and_goes_with_the_module(
    project: Project, sandbox_environ: dict[str, str], aws: Aws
) -> None:
    shared_project(project, sandbox_environ)
    done, report = project.pytest("-v")
    assert done.returncode == outcome.PASSED, shown(done)
    assert report["tests"]["passed"] == 4, shown(done)
    # the account, its session, the look-alike's session; all cleaned by the ledger
    assert report["resources"]["created"] == report["resources"]["cleaned"] == 3, report
    assert report["resources"]["leaked"] == 0
    assert items_mentioning(aws, project.run_id) == []


def test_a_module_account_a_failed_test_used_is_kept_with_keep_on_failure(
    project: Project, sandbox_environ: dict[str, str], aws: Aws
) -> None:
    shared_project(project, sandbox_environ, last='assert False, "deliberate failure"')
    (project.root / "test_z_after.py").unlink()
    (project.root / "test_other_module.py").write_text(OTHER_MODULE)
    done, report = project.pytest("--keep-on-failure")
    try:
        assert done.returncode == outcome.FAILED, shown(done)  # a failed test, no leak
        assert report["resources"]["kept"] == 2, report  # the failed module's account + session
        assert "kept for debugging (--keep-on-failure)" in done.stdout, shown(done)
        left = items_mentioning(aws, project.run_id)
        assert any("-ann1@" in item for item in left) and any("-ann1'" in i for i in left), left
        assert not any("-other" in item for item in left), left  # the passing module's: gone
    finally:
        swept = project.harness("sweep", "--older-than", "0", "--yes")
        assert swept.returncode == 0, shown(swept)
    eventually(lambda: _none_left(aws, project.run_id), timeout=15)


OTHER_MODULE = """
import pytest

@pytest.fixture(scope="module")
def other(harness_session, module_ledger):
    users = harness_session.kinds["user"]
    email = harness_session.namespace.email("other")
    make = lambda: users.create(harness_session.api, email, "O", "pw-other-1")  # noqa: E731
    return module_ledger.create("user", {"email": email}, make)

def test_passes(other):
    assert other.ids["uid"]
"""


def _none_left(aws: Aws, run_id: str) -> None:
    left = items_mentioning(aws, run_id)
    assert not left, left


KILLED = """
import time
from pathlib import Path

def test_is_killed_in_the_middle_of_the_module(ann1):
    Path("{out}", "ready").write_text("ready")
    time.sleep(120)
"""


def test_a_sigkill_in_the_middle_of_a_module_leaves_a_journal_recover_cleans(
    project: Project, sandbox_environ: dict[str, str], aws: Aws
) -> None:
    shared_project(project, sandbox_environ)
    source = (project.root / "test_shared.py").read_text()
    source = source[: source.index("def test_reads_itself")]  # the module fixture only
    (project.root / "test_shared.py").write_text(source + KILLED.format(out=project.root))
    (project.root / "test_z_after.py").unlink()
    ready = project.root / "ready"
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-x"],
        cwd=project.root,
        env=project.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: ready.exists() or process.poll() is not None, timeout=60)
        assert ready.exists(), "the run never reached its test"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    left = items_mentioning(aws, project.run_id)
    assert any("-ann1@" in i for i in left) and any("-ann1'" in i for i in left), left
    journals = list((project.root / ".harness" / "runs" / project.run_id).glob("*.jsonl"))
    scopes = {
        json.loads(line).get("scope") for p in journals for line in p.read_text().splitlines()
    }
    assert "module:test_shared.py" in scopes, scopes

    recovered = project.harness("recover", project.run_id)
    assert recovered.returncode == 0, shown(recovered)
    assert "2 deleted" in recovered.stdout, shown(recovered)
    eventually(lambda: _none_left(aws, project.run_id), timeout=15)
    assert not (project.root / ".harness" / "runs" / project.run_id).exists()


SESSION = """
from pathlib import Path

import pytest

@pytest.fixture(scope="session")
def shared(harness_session, session_ledger):
    users = harness_session.kinds["user"]
    email = harness_session.namespace.email("everyone")
    make = lambda: users.create(harness_session.api, email, "E", "pw-all-1")  # noqa: E731
    return session_ledger.create("user", {{"email": email}}, make)

@pytest.mark.parametrize("n", range(3))
def test_each_sees_the_same_account(shared, n):
    Path("{out}", f"uid-{{n}}").write_text(str(shared.ids["uid"]))
"""


def test_a_session_account_is_shared_by_all_tests_and_cleaned_at_the_end(
    project: Project, sandbox_environ: dict[str, str], aws: Aws
) -> None:
    project.write(
        {
            "environments.toml": profile(sandbox_environ, adapters=True, kinds=""),
            "conftest.py": 'pytest_plugins = ["fixtures.users"]\n',
            "test_session.py": SESSION.format(out=project.root),
        }
    )
    done, report = project.pytest()
    assert done.returncode == outcome.PASSED, shown(done)
    uids = [p.read_text() for p in project.root.glob("uid-*")]
    assert len(uids) == 3 and len(set(uids)) == 1, uids
    assert report["resources"]["created"] == report["resources"]["cleaned"] == 1, report
    assert items_mentioning(aws, project.run_id) == []


# -- the README's snippet ------------------------------------------------------------------------


def readme_shared_snippet() -> str:
    """The README's module_ledger example ("Writing a suite")."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [snippet] = [b for b in blocks if "module_ledger" in b]
    return snippet


def test_the_readmes_module_ledger_snippet_runs_and_leaves_nothing(
    project: Project, sandbox_environ: dict[str, str], aws: Aws
) -> None:
    project.write(
        {
            "environments.toml": profile(sandbox_environ, adapters=True, kinds=""),
            "conftest.py": 'pytest_plugins = ["fixtures.users"]\n',
            "test_readme.py": readme_shared_snippet(),
        }
    )
    done, report = project.pytest()
    assert done.returncode == outcome.PASSED, shown(done)
    assert report["tests"]["passed"] >= 2, report
    assert report["resources"]["created"] == report["resources"]["cleaned"] == 1, report
    assert items_mentioning(aws, project.run_id) == []
