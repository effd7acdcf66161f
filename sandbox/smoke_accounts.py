"""The sandbox's pre-provisioned smoke accounts: what a team keeps for production smoke runs.

Owns signing a few accounts up at start through the service's own API (``POST /users``, as an
operator would), each with a fresh random password, and keeping each one's credentials in
the emulator's Secrets Manager as one secret, ``<prefix><n>`` (``sandbox/smoke-accounts/1``
…), whose value is the login body ``{"email", "password"}``. Nothing else knows a password:
it is never printed, logged or written anywhere but the secret. Idempotent: an account
whose secret exists is left as it is. Never deletes or changes an account.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from typing import Any

from botocore.exceptions import ClientError

#: The accounts' emails: ``smoke-<n>@<domain>`` (a reserved domain: never delivered).
EMAIL_DOMAIN = "accounts.sandbox.example.com"


class ProvisionError(RuntimeError):
    """An account could not be provisioned; the message is for the user."""


def _exists(secretsmanager: Any, name: str) -> bool:
    try:
        secretsmanager.describe_secret(SecretId=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return False
        raise
    return True


def _sign_up(base_url: str, email: str, password: str, number: int) -> None:
    body = json.dumps({"email": email, "name": f"Smoke Account {number}", "password": password})
    request = urllib.request.Request(
        f"{base_url}/users",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as error:
        raise ProvisionError(
            f"signing up the smoke account {email} answered {error.code}"
            + (": it exists, but without its secret" if error.code == 409 else "")
        ) from None


def provision_accounts(base_url: str, secretsmanager: Any, prefix: str, count: int) -> list[str]:
    """Sign ``count`` accounts up and keep their credentials in Secrets Manager; the secret
    names, in order."""
    names = []
    for number in range(1, count + 1):
        name = f"{prefix}{number}"
        names.append(name)
        if _exists(secretsmanager, name):
            continue
        email = f"smoke-{number}@{EMAIL_DOMAIN}"
        password = secrets.token_urlsafe(18)
        _sign_up(base_url.rstrip("/"), email, password, number)
        secretsmanager.create_secret(
            Name=name,
            Description="a pre-provisioned smoke account of the sandbox (login body)",
            SecretString=json.dumps({"email": email, "password": password}),
        )
    return names
