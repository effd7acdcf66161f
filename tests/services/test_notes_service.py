"""The notes service (the project's second, differently shaped test service) does what its
docstring promises: over real HTTP, with its DynamoDB tables read directly on its emulator,
and as a process that prints its protocol and exits 0 on SIGTERM leaving nothing behind."""

from __future__ import annotations

import ctypes
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SERVICE_DIR = Path(__file__).resolve().parent / "notes_service"


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    url: str
    aws_endpoint: str

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def _die_with_us() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start(args: list[str], cwd: Path = REPO, deadline_s: float = 30.0) -> Service:
    """Start the service and read its three protocol lines; a failed start kills it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # stderr goes to a file, not a pipe nobody drains; it is read only to explain a failure
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            bufsize=0,  # unbuffered: readline must not pull the next lines past the selector
            preexec_fn=_die_with_us,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + deadline_s
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(proc.stdout, selectors.EVENT_READ)
                while len(lines) < 3 and (left := deadline - time.monotonic()) > 0:
                    if selector.select(left):
                        line = proc.stdout.readline().decode()
                        if not line:
                            stderr.seek(0)
                            err = stderr.read().decode(errors="replace")
                            pytest.fail(f"service exited with {proc.wait(5)}; stderr:\n{err}")
                        lines.append(line.rstrip("\n"))
            assert len(lines) == 3, f"service not ready in {deadline_s}s; printed {lines}"
            assert lines[0].startswith("SERVICE_URL=http://127.0.0.1:")
            assert lines[1].startswith("AWS_ENDPOINT_URL=http://")
            assert lines[2] == "READY"
        except BaseException:
            proc.kill()
            proc.wait(5)
            raise
    return Service(proc, lines[0].partition("=")[2], lines[1].partition("=")[2])


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    svc = start(["-m", "tests.services.notes_service", "--port", "0", "--with-emulator"])
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def dynamodb(service: Service) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=service.aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def new_account(service: Service) -> tuple[str, str]:
    """Register a fresh account; returns (username, bearer token)."""
    username = f"u-{uuid.uuid4().hex[:12]}"
    reply = requests.post(f"{service.url}/register", json={"username": username, "password": "pw"})
    assert reply.status_code == 201 and reply.json() == {"username": username}
    login = requests.post(f"{service.url}/login", json={"username": username, "password": "pw"})
    assert login.status_code == 200 and login.json()["token_type"] == "Bearer"
    return username, login.json()["access_token"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def items(dynamodb: Any, table: str, key: str, value: str) -> list[dict[str, Any]]:
    return dynamodb.scan(
        TableName=table,
        FilterExpression="#k = :v",
        ExpressionAttributeNames={"#k": key},
        ExpressionAttributeValues={":v": {"S": value}},
    )["Items"]


def test_tables_have_the_documented_keys(service: Service, dynamodb: Any) -> None:
    keys = {
        name: {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}
        for name in ("accounts", "notes", "sessions")
        for table in [dynamodb.describe_table(TableName=name)["Table"]]
    }
    assert keys == {
        "accounts": {"username": "HASH"},
        "notes": {"owner": "HASH", "note_id": "RANGE"},
        "sessions": {"session_id": "HASH"},
    }


def test_register_then_the_welcome_note_appears_on_its_own(service: Service, dynamodb: Any) -> None:
    username, token = new_account(service)
    account = dynamodb.get_item(TableName="accounts", Key={"username": {"S": username}})["Item"]
    assert account["password_hash"]["S"].startswith("pbkdf2_sha256$")
    assert "pw" not in account["password_hash"]["S"].split("$")
    deadline = time.monotonic() + 3
    while not (notes := requests.get(f"{service.url}/notes", headers=auth(token)).json()["notes"]):
        assert time.monotonic() < deadline, "no welcome note within 3 s"
        time.sleep(0.05)
    assert [n["note_id"] for n in notes] == ["welcome"]
    assert items(dynamodb, "notes", "owner", username)[0]["note_id"] == {"S": "welcome"}


def test_register_rejects_bad_input_and_taken_names(service: Service) -> None:
    username, _ = new_account(service)
    taken = requests.post(f"{service.url}/register", json={"username": username, "password": "x"})
    assert taken.status_code == 409
    for body in [{"username": "has space", "password": "x"}, {"username": "a"}, ["a", "b"]]:
        reply = requests.post(f"{service.url}/register", json=body)
        assert reply.status_code == 400 and "message" in reply.json()
    garbage = requests.post(f"{service.url}/register", data=b"{not json")
    assert garbage.status_code == 400


def test_login_gives_a_session_backed_bearer_token(service: Service, dynamodb: Any) -> None:
    username, token = new_account(service)
    session_id, _, signature = token.partition(".")
    assert signature
    session = dynamodb.get_item(TableName="sessions", Key={"session_id": {"S": session_id}})
    assert session["Item"]["username"] == {"S": username}
    assert int(session["Item"]["expires_at"]["N"]) > time.time()
    me = requests.get(f"{service.url}/me", headers=auth(token))
    assert me.status_code == 200 and me.json()["username"] == username and me.json()["created_at"]

    wrong = requests.post(f"{service.url}/login", json={"username": username, "password": "no"})
    assert wrong.status_code == 401
    forged = f"{session_id}.{'0' * len(signature)}"
    for headers in [{}, auth("nonsense"), auth(forged), {"Authorization": f"Basic {token}"}]:
        reply = requests.get(f"{service.url}/notes", headers=headers)
        assert reply.status_code == 401 and reply.json() == {"message": "unauthorized"}


def test_notes_crud_is_per_caller(service: Service) -> None:
    _, token = new_account(service)
    _, other = new_account(service)
    created = requests.post(f"{service.url}/notes", json={"text": "hello"}, headers=auth(token))
    assert created.status_code == 201
    note_id = created.json()["note_id"]
    assert len(note_id) == 32 and int(note_id, 16) >= 0

    mine = requests.get(f"{service.url}/notes", headers=auth(token)).json()["notes"]
    assert {"note_id": note_id, "text": "hello"}.items() <= next(
        n for n in mine if n["note_id"] == note_id
    ).items()
    theirs = requests.get(f"{service.url}/notes", headers=auth(other)).json()["notes"]
    assert note_id not in [n["note_id"] for n in theirs]
    assert requests.delete(f"{service.url}/notes/{note_id}", headers=auth(other)).status_code == 404

    assert requests.delete(f"{service.url}/notes/{note_id}", headers=auth(token)).status_code == 204
    after = requests.get(f"{service.url}/notes", headers=auth(token)).json()["notes"]
    assert note_id not in [n["note_id"] for n in after]
    bad = requests.post(f"{service.url}/notes", json={"text": ""}, headers=auth(token))
    assert bad.status_code == 400


def test_delete_me_leaves_notes_and_sessions_behind(service: Service, dynamodb: Any) -> None:
    username, token = new_account(service)
    requests.post(f"{service.url}/notes", json={"text": "left over"}, headers=auth(token))
    assert requests.delete(f"{service.url}/me", headers=auth(token)).status_code == 204

    assert "Item" not in dynamodb.get_item(TableName="accounts", Key={"username": {"S": username}})
    assert requests.get(f"{service.url}/me", headers=auth(token)).status_code == 401
    # The sloppiness is the point: whoever cleans up must know these belong to the account.
    # (On a loaded machine the welcome note may have come before the delete: that is fine.)
    left = sorted(n["note_id"]["S"] for n in items(dynamodb, "notes", "owner", username))
    assert len(left) - left.count("welcome") == 1
    assert len(items(dynamodb, "sessions", "username", username)) == 1
    time.sleep(0.6)  # past the welcome delay: no welcome note for a deleted account
    assert sorted(n["note_id"]["S"] for n in items(dynamodb, "notes", "owner", username)) == left


def test_status_only_and_json_errors(service: Service) -> None:
    status = requests.get(f"{service.url}/status")
    assert status.status_code == 200 and status.json() == {"ok": True}
    for path in ["/health", "/nope", "/notes/a/b"]:
        missing = requests.get(f"{service.url}{path}")
        assert missing.status_code == 404 and missing.json() == {"message": "not found"}
    assert requests.put(f"{service.url}/status").status_code == 405


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _refused(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return True
    return False


@needs_proc
def test_copy_runs_as_a_folder_on_another_endpoint_and_exits_0_on_sigterm(
    service: Service, dynamodb: Any, tmp_path: Path
) -> None:
    """The way another project's tests use it: a copy outside the repository, run by path,
    against an existing emulator, with its own table names."""
    copy = tmp_path / "somewhere" / "notes_service"
    shutil.copytree(SERVICE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    tables = ["--accounts-table", "x-accounts", "--notes-table", "x-notes"]
    tables += ["--sessions-table", "x-sessions"]
    svc = start([str(copy), "--aws-endpoint", service.aws_endpoint, *tables], cwd=tmp_path)
    try:
        assert svc.aws_endpoint == service.aws_endpoint
        assert requests.get(f"{svc.url}/status").json() == {"ok": True}
        username = f"u-{uuid.uuid4().hex[:12]}"
        body = {"username": username, "password": "pw"}
        assert requests.post(f"{svc.url}/register", json=body).status_code == 201
        stored = dynamodb.get_item(TableName="x-accounts", Key={"username": {"S": username}})
        assert "Item" in stored
        children = _children(svc.proc.pid)
    finally:
        code = svc.stop(signal.SIGTERM)
    assert code == 0
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert _refused(f"{svc.url}/status")


@needs_proc
def test_with_emulator_exits_0_on_sigterm_and_leaves_nothing() -> None:
    svc = start(["-m", "tests.services.notes_service", "--with-emulator"])
    try:
        assert requests.get(f"{svc.url}/status").status_code == 200
        children = _children(svc.proc.pid)
    finally:
        code = svc.stop(signal.SIGTERM)
    assert code == 0
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert _refused(f"{svc.url}/status") and _refused(svc.aws_endpoint)
