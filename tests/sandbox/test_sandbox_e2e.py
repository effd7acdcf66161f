"""Integration tests against a real launched sandbox: HTTP with requests, boto3 to the emulator.

No mocks: ``python -m sandbox`` runs as a subprocess (the ``sandbox`` session fixture, or
its own launches for lifecycle tests), and everything is observed from outside.
"""

from __future__ import annotations

import re
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
import requests
from launching import EXPORT_NAMES, LaunchedSandbox, launch, start_process

pytestmark = pytest.mark.e2e
T = TypeVar("T")


def eventually(check: Callable[[], T], deadline_s: float = 10.0, every: float = 0.1) -> T:
    """check()'s first truthy result, or AssertionError with the last one at the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {deadline_s}s; last: {result!r}")
        time.sleep(every)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def emulator_pid(stderr: str) -> int:
    match = re.search(r"emulator pid (\d+)", stderr)
    assert match, stderr
    return int(match.group(1))


@pytest.fixture(scope="module")
def aws(sandbox: LaunchedSandbox) -> Callable[[str], Any]:
    session = boto3.session.Session(
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
        region_name=sandbox.exports["HARNESS_AWS_REGION"],
    )
    return lambda service: session.client(
        service, endpoint_url=sandbox.exports["HARNESS_AWS_ENDPOINT_URL"]
    )


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["X-Harness-Run"] = "tests-sandbox"
        yield s


def new_user(http: requests.Session, base: str) -> tuple[int, dict[str, str], str]:
    email = f"e2e-{uuid.uuid4().hex[:12]}@sandbox.example.test"
    created = http.post(
        f"{base}/users", json={"email": email, "name": "E2E", "password": "e2e-password"}
    )
    assert created.status_code == 201, created.text
    login = http.post(f"{base}/login", json={"email": email, "password": "e2e-password"})
    assert login.status_code == 200, login.text
    body = login.json()
    assert body["uid"] == created.json()["uid"]
    return body["uid"], {"uid": str(body["uid"]), "token": body["token"]}, email


def test_exports_come_first_in_order_then_the_ready_marker(sandbox: LaunchedSandbox) -> None:
    assert sandbox.export_order == EXPORT_NAMES
    assert sandbox.stdout_lines[: len(EXPORT_NAMES)] == [
        line for line in sandbox.stdout_lines if line.startswith("export ")
    ]
    assert sandbox.ready_line == (
        f"# sandbox ready: pid {sandbox.proc.pid}; Ctrl-C or SIGTERM stops it"
    )
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.base_url)
    assert sandbox.exports["HARNESS_USERS_TABLE"] == "sandbox-users"
    assert not any("AWS_SECRET" in line or "ACCESS_KEY" in line for line in sandbox.stdout_lines)


def test_health_names_the_environment(sandbox: LaunchedSandbox, http: requests.Session) -> None:
    resp = http.get(f"{sandbox.base_url}/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"
    assert resp.json()["environment"] == sandbox.exports["HARNESS_ENVIRONMENT"] == "sandbox"


def test_token_table_has_ttl_enabled(aws: Callable[[str], Any], sandbox: LaunchedSandbox) -> None:
    ttl = aws("dynamodb").describe_time_to_live(TableName=sandbox.exports["HARNESS_TOKENS_TABLE"])[
        "TimeToLiveDescription"
    ]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "TimeToLive"}


def test_signup_login_read_self_logout_then_403(
    sandbox: LaunchedSandbox, http: requests.Session
) -> None:
    base = sandbox.base_url
    uid, auth, email = new_user(http, base)
    me = http.get(f"{base}/users/{uid}", headers=auth)
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert http.post(f"{base}/logout", headers=auth).status_code == 204
    after = http.get(f"{base}/users/{uid}", headers=auth)
    assert after.status_code == 403
    assert after.json() == {"error": "Not authorized"}
    assert http.delete(f"{base}/users/{uid}", headers=login(http, base, email)).status_code == 204


def login(http: requests.Session, base: str, email: str) -> dict[str, str]:
    resp = http.post(f"{base}/login", json={"email": email, "password": "e2e-password"})
    assert resp.status_code == 200, resp.text
    return {"uid": str(resp.json()["uid"]), "token": resp.json()["token"]}


def test_expired_token_written_into_the_table_is_403(
    sandbox: LaunchedSandbox, http: requests.Session, aws: Callable[[str], Any]
) -> None:
    base = sandbox.base_url
    uid, auth, email = new_user(http, base)
    assert http.get(f"{base}/users/{uid}", headers=auth).status_code == 200
    aws("dynamodb").put_item(
        TableName=sandbox.exports["HARNESS_TOKENS_TABLE"],
        Item={
            "Uid": {"N": str(uid)},
            "Token": {"S": auth["token"]},
            "TimeToLive": {"N": str(int(time.time()) - 1)},
            "HarnessNamespace": {"S": "tests-sandbox"},
        },
    )
    resp = http.get(f"{base}/users/{uid}", headers=auth)
    assert resp.status_code == 403
    assert resp.json() == {"error": "Not authorized"}
    assert http.delete(f"{base}/users/{uid}", headers=login(http, base, email)).status_code == 204


def test_another_users_uid_is_403(sandbox: LaunchedSandbox, http: requests.Session) -> None:
    base = sandbox.base_url
    uid_a, auth_a, _ = new_user(http, base)
    uid_b, auth_b, _ = new_user(http, base)
    for method, path in (
        ("GET", f"/users/{uid_b}"),
        ("PATCH", f"/users/{uid_b}"),
        ("DELETE", f"/users/{uid_b}"),
        ("GET", f"/users/{uid_b}/notifications"),
    ):
        resp = http.request(method, f"{base}{path}", headers=auth_a, json={"name": "x"})
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json() == {"error": "Not authorized"}
    assert http.get(f"{base}/users/{uid_b}", headers=auth_b).status_code == 200
    for uid, auth in ((uid_a, auth_a), (uid_b, auth_b)):
        assert http.delete(f"{base}/users/{uid}", headers=auth).status_code == 204


def test_created_user_is_welcomed_and_deleted_users_notifications_go(
    sandbox: LaunchedSandbox, http: requests.Session, aws: Callable[[str], Any]
) -> None:
    base = sandbox.base_url
    uid, auth, _ = new_user(http, base)

    def welcome() -> list[dict[str, Any]]:
        resp = http.get(f"{base}/users/{uid}/notifications", headers=auth)
        assert resp.status_code == 200
        return [n for n in resp.json()["notifications"] if n["kind"] == "welcome"]

    (note,) = eventually(welcome)
    assert note["id"] == "welcome"

    assert http.delete(f"{base}/users/{uid}", headers=auth).status_code == 204
    db = aws("dynamodb")

    def notifications_left() -> int:
        return int(
            db.query(
                TableName=sandbox.exports["HARNESS_NOTIFICATIONS_TABLE"],
                KeyConditionExpression="Uid = :u",
                ExpressionAttributeValues={":u": {"N": str(uid)}},
            )["Count"]
        )

    eventually(lambda: notifications_left() == 0)
    assert (
        db.get_item(
            TableName=sandbox.exports["HARNESS_TOKENS_TABLE"], Key={"Uid": {"N": str(uid)}}
        ).get("Item")
        is None
    )


def test_invalid_and_duplicate_signups(sandbox: LaunchedSandbox, http: requests.Session) -> None:
    base = sandbox.base_url
    bad = http.post(
        f"{base}/users", data=b"x" * 20000, headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["field"] == "body"
    uid, auth, email = new_user(http, base)
    dup = http.post(
        f"{base}/users", json={"email": email.upper(), "name": "Again", "password": "e2e-password"}
    )
    assert dup.status_code == 409
    assert http.delete(f"{base}/users/{uid}", headers=auth).status_code == 204


# --- lifecycle: its own launches -------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_everything(sig: int, tmp_path: Path) -> None:
    launched = launch(["--quiet"], tmp_path)
    child = emulator_pid(launched.stderr())
    assert alive(child)
    assert launched.stop(sig) == 0
    eventually(lambda: not alive(child), 5.0)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{launched.base_url}/health", timeout=2)


def test_killed_launcher_takes_the_emulator_with_it(tmp_path: Path) -> None:
    launched = launch(["--quiet"], tmp_path)
    child = emulator_pid(launched.stderr())
    launched.stop(signal.SIGKILL)
    eventually(lambda: not alive(child), 5.0)


@pytest.mark.parametrize("which", ["--port", "--aws-port"])
def test_failed_start_leaves_nothing_running(which: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, stderr_path = start_process(["--quiet", which, str(port)], tmp_path)
        try:
            assert proc.wait(30) != 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            out = proc.stdout.read().decode()
            proc.stdout.close()
    err = stderr_path.read_text()
    assert "export " not in out, out
    message = [line for line in err.splitlines() if line.startswith("sandbox: ")]
    assert len(message) == 1, err
    assert str(port) in message[0]
    if which == "--port":  # the emulator had started: it must be gone too
        child = emulator_pid(err)
        eventually(lambda: not alive(child), 5.0)
    assert "Traceback" not in err
