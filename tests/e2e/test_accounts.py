"""Production smoke runs, end to end: a project whose profile is ``protected = true`` with
``allow_writes = ["POST /login"]`` and the sandbox's pre-provisioned account pool (secrets
in the emulator's Secrets Manager), run for real against the live sandbox.

What it proves: a smoke suite logs in as pool accounts; two concurrent runs of two workers
each hold four different accounts at the same moment (each still logged in at the end: a
shared account's session would have been replaced by the other's login); everything in the
environment is byte-identical afterwards but the one thing the allowed login writes — the
leased accounts' session tokens — and the accounts themselves are untouched; no password or
token reaches any artifact; a live holder's account is refused in one line and left alone by
``harness doctor``, and a SIGKILLed holder's account is free again (lease table: the
liveness rule; local lock: the kernel); doctor logs every free account in, names each broken
one, and sends nothing when the profile does not allow the login; a Cognito pool logs in
through its app client on the same protected profile."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.clients.aws import Aws
from harness.waiting import wait_until
from tests.digest import digest, snapshot

pytestmark = pytest.mark.e2e

POOL = [f"sandbox/smoke-accounts/{n}" for n in (1, 2, 3, 4)]
LEASES = "sandbox-test-leases"
TOKENS = "sandbox-tokens"
USERS = "sandbox-users"

SMOKE = """
import os
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.readonly]
MARKS = Path({marks!r})


def test_holds_its_own_account_while_every_worker_holds_one(api, account, worker_id):
    me = api.get(f"/users/{{account.uid}}", auth=account.auth)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == account.username
    (MARKS / f"{{os.environ['HARNESS_RUN_ID']}}-{{worker_id}}").write_text(account.name)
    deadline = time.monotonic() + 90
    while len(list(MARKS.iterdir())) < {holders} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(list(MARKS.iterdir())) == {holders}
    # still its session: nobody logged in as this account meanwhile
    again = api.get(f"/users/{{account.uid}}", auth=account.auth)
    assert again.status_code == 200, again.text


def test_reads_its_notifications(api, account):
    response = api.get(f"/users/{{account.uid}}/notifications", auth=account.auth)
    assert response.status_code == 200, response.text
"""


@dataclass
class Project:
    """A team's project for production smoke runs, in a folder of its own."""

    path: Path
    environ: dict[str, str]

    def profile(
        self, pool: list[str], *, lease_table: bool = True, allow: bool = True, extra: str = ""
    ) -> None:
        base, endpoint = self.environ["_BASE"], self.environ["_ENDPOINT"]
        secrets = ", ".join(json.dumps(name) for name in pool)
        (self.path / "environments.toml").write_text(
            f"""[prod]
base_url = "{base}"
environment = "sandbox"
aws_region = "us-east-1"
aws_endpoint_url = "{endpoint}"
{f'lease_table = "{LEASES}"' if lease_table else ""}
protected = true
{'allow_writes = ["POST /login"]' if allow else ""}

[prod.accounts]
secrets = [{secrets}]
{extra or 'auth = "uid-token"'}
"""
        )

    def tests(self, source: str) -> None:
        (self.path / "test_smoke.py").write_text(source)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", *args]

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.path,
            env=self.environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=self.path,
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture
def project(sandbox_environ: dict[str, str], tmp_path: Path, aws: Aws) -> Iterator[Project]:
    """No HARNESS_* variable: the profiles file alone says what the target is. A test that
    failed half-way may leave a killed holder's lease: removed, so the next starts clean."""
    environ = {k: v for k, v in sandbox_environ.items() if not k.startswith("HARNESS_")}
    environ["_BASE"] = sandbox_environ["HARNESS_BASE_URL"]
    environ["_ENDPOINT"] = sandbox_environ["HARNESS_AWS_ENDPOINT_URL"]
    folder = tmp_path / "project"
    folder.mkdir()
    yield Project(folder, environ)
    for lease in account_leases(aws):
        aws.table(LEASES).delete_item(Key={"Marker": lease["Marker"]})


def secrets_client(aws: Aws) -> Any:
    return aws.client("secretsmanager")


def pool_logins(aws: Aws) -> dict[str, dict[str, str]]:
    client = secrets_client(aws)
    return {
        name: json.loads(client.get_secret_value(SecretId=name)["SecretString"]) for name in POOL
    }


def uid_of(aws: Aws, email: str) -> int:
    for page in aws.dynamodb_client.get_paginator("scan").paginate(TableName=USERS):
        for item in page["Items"]:
            if item["Email"] == email:
                return int(item["Uid"])
    raise AssertionError(f"no user {email}")


def sessions(state: dict[str, Any], uids: set[int]) -> dict[int, str]:
    """The tokens-table rows of ``uids`` in a snapshot."""
    rows = (json.loads(row) for row in state["tables"][TOKENS])
    return {int(r["Uid"]): r["Token"] for r in rows if int(r["Uid"]) in uids}


def without_sessions(state: dict[str, Any], uids: set[int]) -> dict[str, Any]:
    """The snapshot but the session rows of ``uids``: what the allowed login writes."""
    tables = dict(state["tables"])
    tables[TOKENS] = [r for r in tables[TOKENS] if int(json.loads(r)["Uid"]) not in uids]
    return {**state, "tables": tables}


def account_leases(aws: Aws) -> list[dict[str, Any]]:
    items = aws.dynamodb_client.scan(TableName=LEASES)["Items"]
    return [i for i in items if str(i["Marker"]).startswith("account-lease:")]


def test_concurrent_protected_smoke_runs_never_share_an_account_and_change_nothing_else(
    project: Project, aws: Aws, tmp_path: Path
) -> None:
    logins = pool_logins(aws)
    uids = {uid_of(aws, body["email"]) for body in logins.values()}
    marks = tmp_path / "marks"
    marks.mkdir()
    project.profile(POOL)
    project.tests(SMOKE.format(marks=str(marks), holders=4))
    before = snapshot(aws)
    first = project.start(
        "harness", "run", "--env", "prod", "--suite", "smoke", "-n", "2", "--", "--dist", "each"
    )
    second = project.start(
        "pytest",
        "-p",
        "no:cacheprovider",
        "--env",
        "prod",
        "-n",
        "2",
        "--dist",
        "each",
        "-m",
        "smoke",
    )
    outputs = [process.communicate(timeout=300)[0] for process in (first, second)]
    for process, output in zip((first, second), outputs, strict=True):
        assert process.returncode == 0, output[-4000:]
        assert "protected (file environments.toml), writes allowed: POST /login" in output
        assert "residue check: clean" in output
    held = {path.name: path.read_text() for path in marks.iterdir()}
    assert len(held) == 4, held  # two runs x two workers, all at the same moment
    assert sorted(held.values()) == POOL, held  # never one account twice
    after = snapshot(aws)
    # The one write the profile allows, POST /login, replaced each leased account's session:
    assert set(sessions(after, uids)) == uids
    assert all(sessions(after, uids)[u] != sessions(before, uids).get(u) for u in uids)
    # and nothing else changed: the accounts, every other table, the leases, queues, topics.
    assert without_sessions(after, uids) == without_sessions(before, uids)
    assert digest(without_sessions(after, uids)) == digest(without_sessions(before, uids))
    assert account_leases(aws) == []


LEAKY = """
import pytest

pytestmark = pytest.mark.readonly


def test_fails_and_shows_its_transcript(api, account):
    me = api.get(f"/users/{account.uid}", auth=account.auth)
    print("session", account.session, "auth", account.auth.__dict__)
    assert me.json()["email"] == "someone-else", account.session
"""


def test_no_password_or_token_reaches_any_artifact(project: Project, aws: Aws) -> None:
    logins = pool_logins(aws)
    project.profile(POOL[:1])
    project.tests(LEAKY)
    artifacts = project.path / "artifacts"
    run = project.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "--env",
        "prod",
        "-rA",
        f"--junitxml={artifacts / 'junit.xml'}",
        f"--harness-report={artifacts / 'report.json'}",
        f"--html={artifacts / 'report.html'}",
        f"--summary={artifacts / 'summary.md'}",
    )
    assert run.returncode == 1, run.stdout[-4000:] + run.stderr[-2000:]
    email = logins[POOL[0]]["email"]
    token = sessions(snapshot(aws), {uid_of(aws, email)})[uid_of(aws, email)]
    secrets = [logins[POOL[0]]["password"], token]
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    for path in [*artifacts.iterdir(), *(project.path / ".harness").rglob("*")]:
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    assert len(texts) >= 6, sorted(texts)
    for name, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret in {name}"
    shown = run.stdout
    assert "POST /login -> 200" in shown and email in shown  # the transcript was shown
    assert '"password": "«redacted»"' in shown and '"token": "«redacted»"' in shown


HOLD = """
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.readonly


def test_holds(api, account):
    assert api.get(f"/users/{{account.uid}}", auth=account.auth).status_code == 200
    Path({ready!r}).write_text(account.name)
    time.sleep(300)
"""

AFTER = """
import pytest

pytestmark = pytest.mark.readonly


def test_gets_it(api, account):
    assert account.name == "sandbox/smoke-accounts/1"
    assert api.get(f"/users/{account.uid}", auth=account.auth).status_code == 200
"""


@pytest.mark.parametrize("leasing", ["lease table", "local lock"])
def test_a_live_holders_account_is_refused_and_a_killed_ones_is_free_again(
    project: Project, aws: Aws, tmp_path: Path, leasing: str
) -> None:
    table = leasing == "lease table"
    project.profile(POOL[:1], lease_table=table)
    ready = tmp_path / "ready"
    project.tests(HOLD.format(ready=str(ready)))
    holder = project.start("pytest", "-p", "no:cacheprovider", "--env", "prod")
    try:
        wait_until(lambda: ready.exists() or holder.poll() is not None, timeout=60)
        assert ready.exists(), holder.communicate()[0]
        uid = uid_of(aws, pool_logins(aws)[POOL[0]]["email"])
        session = sessions(snapshot(aws), {uid})

        # a second run while the holder lives: one line, the account left alone
        project.tests(AFTER)
        refused = project.run("pytest", "-p", "no:cacheprovider", "--env", "prod")
        assert refused.returncode == 1, refused.stdout[-3000:]
        who = (
            f"sandbox/smoke-accounts/1 by {socket.gethostname()}:{holder.pid} (itest-"
            if table
            else f"sandbox/smoke-accounts/1 by a live process on this machine (pid {holder.pid})"
        )
        section = refused.stdout.split("ERROR at setup of test_gets_it")[1].split("\n")
        assert section[1].startswith(
            f"account pool of [prod] exhausted: all 1 account(s) are leased ({who}"
        ), refused.stdout[-3000:]
        assert section[2].startswith("-----") and "HTTP transcript" in section[2]  # one line
        assert "Traceback" not in refused.stdout and "During handling" not in refused.stdout

        # doctor leaves it alone too: not logged in, so the holder's session stays
        doctor = project.run("harness", "doctor", "--env", "prod")
        assert doctor.returncode == 0, doctor.stdout
        assert "SKIP account sandbox/smoke-accounts/1 in use by " in " ".join(doctor.stdout.split())
        assert sessions(snapshot(aws), {uid}) == session
        if table:
            (lease,) = account_leases(aws)
            assert lease["Holder"] == f"{socket.gethostname()}:{holder.pid}"
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.communicate()
    if table:
        assert len(account_leases(aws)) == 1  # the killed holder's lease is still there

    # its holder is dead: the account is free again (at once, on this machine)
    freed = project.run("pytest", "-p", "no:cacheprovider", "--env", "prod")
    assert freed.returncode == 0, freed.stdout[-3000:]
    assert account_leases(aws) == []


def test_doctor_logs_every_free_account_in_and_names_each_broken_one(
    project: Project, aws: Aws
) -> None:
    client = secrets_client(aws)
    wrong = {"email": pool_logins(aws)[POOL[1]]["email"], "password": "not-the-password-1"}
    client.create_secret(Name="doctor/wrong", SecretString=json.dumps(wrong))
    try:
        project.profile([POOL[0], "doctor/wrong", "doctor/missing"])
        before = snapshot(aws)
        doctor = project.run("harness", "doctor", "--env", "prod")
        assert doctor.returncode == 1, doctor.stdout
        rows = {  # name -> the row, its columns' padding collapsed
            ln[6:].split("  ")[0]: " ".join(ln.split())
            for ln in doctor.stdout.splitlines()
            if ln[6:13] == "account"
        }
        assert rows["account pool"].startswith(
            "OK account pool 3 account(s), leased through the lease table sandbox-test-leases"
        )
        email = pool_logins(aws)[POOL[0]]["email"]
        assert rows["account sandbox/smoke-accounts/1"].endswith(
            f"logged in as {email} through POST /login (a read-only login: the one write the "
            f"profile allows; the account is not changed)"
        )
        assert rows["account doctor/wrong"].startswith("FAIL account doctor/wrong secret")
        assert rows["account doctor/wrong"].endswith(
            "secret doctor/wrong cannot log in: POST /login answered 401 (Invalid credentials): "
            "its credentials are not the account's (rotated without the secret?); put the "
            "current ones in the secret (docs/adapters.md, 'Production smoke runs')"
        )
        assert (
            "cannot read secret doctor/missing: ResourceNotFoundException"
            in (rows["account doctor/missing"])
        )
        assert "not-the-password-1" not in doctor.stdout + doctor.stderr
        after = snapshot(aws)
        uid = uid_of(aws, email)
        assert without_sessions(after, {uid}) == without_sessions(before, {uid})

        # a protected profile that does not allow the login: FAIL naming it, nothing sent
        project.profile([POOL[0]], allow=False)
        refused = project.run("harness", "doctor", "--env", "prod")
        assert refused.returncode == 1, refused.stdout
        assert (
            "protected target [prod]: the account pool logs in through POST /login, which the "
            'profile does not allow: add allow_writes = ["POST /login"] under [prod]'
        ) in refused.stdout
        assert digest(snapshot(aws)) == digest(after)
    finally:
        client.delete_secret(SecretId="doctor/wrong", ForceDeleteWithoutRecovery=True)


COGNITO = """
import pytest

pytestmark = pytest.mark.readonly


def test_logged_in_through_cognito(account, harness_session):
    assert account.username == "smoke-member"
    cognito = harness_session.aws.client("cognito-idp")  # read-only: GetUser is a read
    assert cognito.get_user(AccessToken=account.session["AccessToken"])["Username"] == (
        "smoke-member"
    )
    assert account.auth.token == account.session["IdToken"]
"""


@pytest.fixture
def cognito_pool(aws: Aws) -> Iterator[str]:
    """A user pool with one pre-provisioned member, its login in a secret (as a team keeps
    it): the app client's id."""
    cognito = aws.client("cognito-idp")
    pool_id = cognito.create_user_pool(PoolName="smoke-members")["UserPool"]["Id"]
    try:
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id, ClientName="smoke", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
        )["UserPoolClient"]["ClientId"]
        cognito.admin_create_user(
            UserPoolId=pool_id, Username="smoke-member", MessageAction="SUPPRESS"
        )
        password = "Smoke-" + os.urandom(8).hex() + "!"
        cognito.admin_set_user_password(
            UserPoolId=pool_id, Username="smoke-member", Password=password, Permanent=True
        )
        secrets_client(aws).create_secret(
            Name="cognito/smoke-member",
            SecretString=json.dumps({"username": "smoke-member", "password": password}),
        )
        yield client_id
    finally:
        secrets = secrets_client(aws)
        secrets.delete_secret(SecretId="cognito/smoke-member", ForceDeleteWithoutRecovery=True)
        cognito.delete_user_pool(UserPoolId=pool_id)


def test_a_cognito_pool_logs_in_through_its_app_client_on_a_protected_profile(
    project: Project, aws: Aws, cognito_pool: str
) -> None:
    project.profile(
        ["cognito/smoke-member"],
        allow=False,  # no HTTP write at all: the login is Cognito's
        extra=f'login = "cognito"\nclient_id = "{cognito_pool}"',
    )
    project.tests(COGNITO)
    before = digest(snapshot(aws))
    run = project.run("pytest", "-p", "no:cacheprovider", "--env", "prod")
    assert run.returncode == 0, run.stdout[-3000:]
    assert digest(snapshot(aws)) == before
    assert account_leases(aws) == []


def test_a_credential_in_the_profile_stops_everything_before_it_starts(
    project: Project, aws: Aws
) -> None:
    project.profile(POOL[:1], extra='auth = "uid-token"\npassword = "hunter2-in-the-file"')
    project.tests(AFTER)
    before = digest(snapshot(aws))
    run = project.run("pytest", "-p", "no:cacheprovider", "--env", "prod")
    assert run.returncode == 8, run.stdout[-2000:] + run.stderr[-2000:]
    (line,) = [ln for ln in run.stderr.splitlines() if ln.startswith("harness: ")]
    assert "[prod.accounts] has password: credentials never go in this file; keep each" in line
    doctor = project.run("harness", "doctor", "--env", "prod")
    assert doctor.returncode == 8, doctor.stdout
    assert "FAIL  configuration" in doctor.stdout
    for output in (run.stdout + run.stderr, doctor.stdout + doctor.stderr):
        assert "hunter2-in-the-file" not in output and "Traceback" not in output
    assert digest(snapshot(aws)) == before


def test_an_interrupted_run_gives_its_account_back(
    project: Project, aws: Aws, tmp_path: Path
) -> None:
    project.profile(POOL[:1])
    ready = tmp_path / "ready"
    project.tests(HOLD.format(ready=str(ready)))
    holder = project.start("pytest", "-p", "no:cacheprovider", "--env", "prod")
    try:
        wait_until(lambda: ready.exists() or holder.poll() is not None, timeout=60)
        assert ready.exists(), holder.communicate()[0]
        assert len(account_leases(aws)) == 1
        holder.send_signal(signal.SIGINT)  # Ctrl-C: the session's teardown releases it
        output = holder.communicate(timeout=60)[0]
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.communicate()
    assert holder.returncode == 130, output[-3000:]
    assert account_leases(aws) == []
