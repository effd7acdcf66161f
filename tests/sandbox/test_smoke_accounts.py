"""The sandbox's pre-provisioned smoke accounts (sandbox/smoke_accounts.py), observed from
outside a real ``python -m sandbox``: each secret in the emulator's Secrets Manager is a login
body that logs in; no password reaches its stdout or its log; provisioning again changes
nothing; ``--smoke-accounts 0`` provisions none and a negative count is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from launching import LaunchedSandbox, launch

from sandbox.smoke_accounts import EMAIL_DOMAIN, provision_accounts

pytestmark = pytest.mark.e2e
PREFIX = "sandbox/smoke-accounts/"


@pytest.fixture(scope="module")
def secrets(sandbox: LaunchedSandbox) -> Callable[[], Any]:
    session = boto3.session.Session(
        aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name="us-east-1"
    )
    client = session.client(
        "secretsmanager", endpoint_url=sandbox.exports["HARNESS_AWS_ENDPOINT_URL"]
    )
    return lambda: client


def _pool(client: Any) -> dict[str, dict[str, str]]:
    names = [s["Name"] for s in client.list_secrets()["SecretList"]]
    return {
        name: json.loads(client.get_secret_value(SecretId=name)["SecretString"])
        for name in sorted(names)
        if name.startswith(PREFIX)
    }


def test_each_smoke_account_logs_in_with_its_secret_and_no_password_is_shown(
    sandbox: LaunchedSandbox, secrets: Callable[[], Any]
) -> None:
    pool = _pool(secrets())
    assert sorted(pool) == [f"{PREFIX}{n}" for n in (1, 2, 3, 4)]
    passwords = set()
    for n in (1, 2, 3, 4):
        body = pool[f"{PREFIX}{n}"]
        assert sorted(body) == ["email", "password"]
        assert body["email"] == f"smoke-{n}@{EMAIL_DOMAIN}"
        login = requests.post(f"{sandbox.base_url}/login", json=body, timeout=10)
        assert login.status_code == 200, login.text
        passwords.add(body["password"])
    assert len(passwords) == 4 and all(len(p) >= 20 for p in passwords)
    shown = "\n".join(sandbox.stdout_lines) + sandbox.stderr()
    assert not any(p in shown for p in passwords)


def test_provisioning_again_changes_nothing(
    sandbox: LaunchedSandbox, secrets: Callable[[], Any]
) -> None:
    before = _pool(secrets())
    names = provision_accounts(sandbox.base_url, secrets(), PREFIX, 4)
    assert names == [f"{PREFIX}{n}" for n in (1, 2, 3, 4)]
    assert _pool(secrets()) == before


def test_no_smoke_accounts_when_asked_for_none(tmp_path: Path) -> None:
    launched = launch(["--quiet", "--smoke-accounts", "0"], tmp_path)
    try:
        session = boto3.session.Session(
            aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name="us-east-1"
        )
        client = session.client(
            "secretsmanager", endpoint_url=launched.exports["HARNESS_AWS_ENDPOINT_URL"]
        )
        assert client.list_secrets()["SecretList"] == []
        assert "signing up" not in launched.stderr()
    finally:
        launched.stop()


def test_a_negative_count_is_refused_before_anything_starts() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "--smoke-accounts", "-1"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "python -m sandbox: argument --smoke-accounts: -1 is too small: give at least 0 "
        "(see `python -m sandbox --help`)"
    )
    assert done.stdout == ""
