"""Pre-provisioned accounts, in use: lease one, read its credentials, log in as it.

Owns turning a profile's account pool (:mod:`harness.accounts.spec`) into a logged-in
:class:`Account`: lease a free account (:mod:`harness.accounts.leases`; waiting up to the
pool's ``wait``, then one line naming every holder when the pool is exhausted), read its
credentials — ``GetSecretValue`` from AWS Secrets Manager or ``GetParameter`` (decrypted) from
SSM Parameter Store, both reads, allowed on a protected profile — and register every
sensitive value with the run's redactor before anything could show it, then log in: through
the pool's HTTP route on the guarded client (so a protected profile's ``allow_writes`` must
name it) or a Cognito app client (``InitiateAuth``, ``USER_PASSWORD_AUTH``). It never creates,
changes or deletes an account: the login is its only request to the target, and the lease
items are its only writes to the target's AWS. Every problem is an :class:`AccountError`
whose message is one line naming the fix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from harness.accounts.leases import Busy, Held, LocalLocks, TableLeases
from harness.accounts.spec import LEASE_PREFIX, AccountEntry, AccountsSpec
from harness.clients.auth import BearerAuth, UidTokenAuth
from harness.clients.aws import RETRY_CONFIG, Aws
from harness.clients.http import ApiClient
from harness.config import Profile
from harness.kinds.lease import KEY
from harness.safety.protect import AwsAllowance, ProtectedTargetError
from harness.safety.redact import Redactor

#: The guide's section on account pools, named by messages that ask for a change there.
GUIDE = "docs/adapters.md, 'Production smoke runs'"
#: The login answer's fields registered as secrets whatever their names (Cognito's).
_TOKEN_FIELDS = ("IdToken", "AccessToken", "RefreshToken")


class AccountError(Exception):
    """An account cannot be leased, read or logged in as; the message is one line."""


class PoolExhausted(AccountError):
    """Every account of the pool is leased by a live holder."""


@dataclass
class Account:
    """One pre-provisioned account, logged in: ``api.get(..., auth=account.auth)``."""

    #: Where its credentials are: the secret's id or the parameter's name.
    name: str
    #: Whom it logs in as (its credentials' ``username`` or ``email``).
    username: str
    #: The login's answer (``{"uid", "token", …}``; Cognito's ``AuthenticationResult``).
    session: dict[str, Any] = field(repr=False)
    auth: requests.auth.AuthBase = field(repr=False)
    #: The login answer's ``uid`` (the pool's ``uid_field``); None when it has none.
    uid: Any = None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class AccountPool:
    """A profile's pool, for one process: what it leased is released by :meth:`close`."""

    def __init__(
        self,
        profile: Profile,
        api: ApiClient,
        redactor: Redactor,
        state_dir: Path,
        run: str,
        *,
        aws_config: Config = RETRY_CONFIG,
    ) -> None:
        if profile.accounts is None:
            raise AccountError(f"profile [{profile.name}] names no account pool ({GUIDE})")
        self.profile = profile
        self.spec: AccountsSpec = profile.accounts
        self.api = api
        self.redactor = redactor
        self.run = run
        allow = AwsAllowance(
            lease_table=profile.lease_table,
            lease_prefix=LEASE_PREFIX,
            lease_key=KEY,
            cognito_client_id=self.spec.client_id if self.spec.is_cognito else "",
        )
        self.aws = Aws(profile, aws_config, allow=allow)
        self.leases: TableLeases | LocalLocks = (
            TableLeases(self.aws, profile.lease_table, run)
            if profile.lease_table
            else LocalLocks(state_dir / "accounts")
        )
        self.held: list[Held] = []

    # -- leasing -----------------------------------------------------------------------

    def describe_leasing(self) -> str:
        if isinstance(self.leases, TableLeases):
            return f"leased through the lease table {self.profile.lease_table}"
        return f"leased by local locks under {self.leases.folder} (this machine only)"

    def take(self, entry: AccountEntry) -> Held | Busy:
        """Lease this one account, or say who holds it."""
        if any(h.entry == entry for h in self.held):
            return Busy(entry, "this process")
        try:
            got = self.leases.take(entry)
        except (BotoCoreError, ClientError) as error:
            raise AccountError(
                f"cannot lease {entry.where} through the lease table "
                f"{self.profile.lease_table}: {_aws_error(error)}"
            ) from None
        except OSError as error:
            raise AccountError(
                f"cannot lock {entry.where} under {getattr(self.leases, 'folder', '')}: "
                f"{error.strerror or error}; set HARNESS_STATE_DIR to a folder that can be "
                f"written"
            ) from None
        if isinstance(got, Held):
            self.held.append(got)
        return got

    def lease(self, wait: float | None = None) -> Held:
        """The first free account of the pool, waiting up to ``wait`` seconds (the pool's
        ``wait`` by default) for one; :class:`PoolExhausted` then."""
        wait = self.spec.wait if wait is None else wait
        deadline = time.monotonic() + wait
        while True:
            busy: list[Busy] = []
            for entry in self.spec.entries:
                got = self.take(entry)
                if isinstance(got, Held):
                    return got
                busy.append(got)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(1.0, left))
        holders = "; ".join(f"{b.entry.name} by {b.holder}" for b in busy)
        waited = f" after waiting {wait:g}s" if wait else ""
        name = self.profile.name
        queue = "a longer wait" if wait else 'wait = "2m"'
        raise PoolExhausted(
            f"account pool of [{name}] exhausted{waited}: all {len(busy)} account(s) are "
            f"leased ({holders}); add accounts to [{name}.accounts], run fewer workers (-n), "
            f"or set {queue} there to queue for one"
        )

    def close(self) -> None:
        """Release every account this pool leased (idempotent)."""
        while self.held:
            self.held.pop().release()

    # -- credentials and login -----------------------------------------------------------

    def credentials(self, entry: AccountEntry) -> dict[str, Any]:
        """The account's credentials (a JSON object), its sensitive values registered."""
        try:
            if entry.store == "secretsmanager":
                secret = self.aws.client("secretsmanager").get_secret_value(SecretId=entry.name)
                text = secret.get("SecretString")
            else:
                answer = self.aws.client("ssm").get_parameter(Name=entry.name, WithDecryption=True)
                text = answer["Parameter"]["Value"]
        except (BotoCoreError, ClientError) as error:
            raise AccountError(
                f"cannot read {entry.where}: {_aws_error(error)}; {_read_fix(entry, self.profile)}"
            ) from None
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            value = None
        if isinstance(text, str):
            self.redactor.add_secret(text)
        if not isinstance(value, dict) or not value:
            raise AccountError(
                f'{entry.where} is not a JSON object like {{"email": "…", "password": '
                f'"…"}}: store each account\'s login fields in it ({GUIDE})'
            )
        for key, inner in value.items():
            if isinstance(inner, str) and self.redactor.is_sensitive(str(key)):
                self.redactor.add_secret(inner)
        return value

    def login(self, entry: AccountEntry) -> Account:
        """Log in as the account (read-only for the account: a session is all it makes)."""
        credentials = self.credentials(entry)
        username = str(
            credentials.get("username")
            or credentials.get("email")
            or credentials.get("user")
            or entry.name
        )
        if self.spec.is_cognito:
            session = self._cognito(entry, credentials)
        else:
            session = self._http(entry, credentials)
        token = session.get(self.spec.token_key)
        if not isinstance(token, str) or not token:
            raise AccountError(
                f"{entry.where}: the login answered without {self.spec.token_key!r}: set "
                f'token_field = "…" in [{self.profile.name}.accounts] to the field holding '
                f"the token"
            )
        self.redactor.add_secret(token)
        if self.spec.auth == "uid-token":
            uid = session.get(self.spec.uid_field)
            if uid is None or uid == "":
                raise AccountError(
                    f"{entry.where}: the login answered without {self.spec.uid_field!r}: set "
                    f'uid_field = "…" in [{self.profile.name}.accounts], or auth = "bearer"'
                )
            auth: requests.auth.AuthBase = UidTokenAuth(uid, token)
        else:
            auth = BearerAuth(token)
        return Account(entry.name, username, session, auth, session.get(self.spec.uid_field))

    def _http(self, entry: AccountEntry, credentials: dict[str, Any]) -> dict[str, Any]:
        method, path = self.spec.route
        guard = self.api.guard
        if guard is not None and not guard.allows(method, path):
            name = self.profile.name
            raise AccountError(
                f"protected target [{name}]: the account pool logs in through {method} "
                f"{path}, which the profile does not allow: add allow_writes = "
                f'["{method} {path}"] under [{name}]'
            )
        try:
            response = self.api.request(method, path, json=credentials)
        except ProtectedTargetError as refused:
            raise AccountError(str(refused)) from None
        except requests.RequestException as error:
            raise AccountError(
                f"{entry.where}: {method} {path} failed: {type(error).__name__} (is the "
                f"service up? check base_url of [{self.profile.name}])"
            ) from None
        if response.status_code != 200:
            raise AccountError(
                f"{entry.where} cannot log in: {method} {path} answered "
                f"{response.status_code} {self._said(response)}: its credentials are not the "
                f"account's (rotated without the secret?); put the current ones in the "
                f"{'secret' if entry.store == 'secretsmanager' else 'parameter'} ({GUIDE})"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise AccountError(f"{entry.where}: {method} {path} answered no JSON object")
        self.redactor.learn(body)
        return body

    def _said(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return ""
        said = body.get("error") or body.get("message") if isinstance(body, dict) else None
        return f"({self.redactor.text(_one_line(str(said)))[:200]})" if said else ""

    def _cognito(self, entry: AccountEntry, credentials: dict[str, Any]) -> dict[str, Any]:
        username, password = credentials.get("username"), credentials.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise AccountError(
                f'{entry.where}: a Cognito account\'s secret is {{"username": "…", '
                f'"password": "…"}}'
            )
        try:
            answer = self.aws.client("cognito-idp").initiate_auth(
                AuthFlow="USER_PASSWORD_AUTH",
                ClientId=self.spec.client_id,
                AuthParameters={"USERNAME": username, "PASSWORD": password},
            )
        except (BotoCoreError, ClientError) as error:
            raise AccountError(
                f"{entry.where} cannot log in through Cognito app client "
                f"{self.spec.client_id}: {_aws_error(error, self.redactor)} ({GUIDE})"
            ) from None
        if answer.get("ChallengeName"):
            raise AccountError(
                f"{entry.where}: Cognito answers the {answer['ChallengeName']} challenge, not "
                f"tokens: give the account a permanent password (admin-set-user-password "
                f"--permanent) and put it in its secret"
            )
        result = dict(answer.get("AuthenticationResult") or {})
        for name in _TOKEN_FIELDS:
            if isinstance(result.get(name), str):
                self.redactor.add_secret(result[name])
        return result

    def lease_and_login(self, wait: float | None = None) -> Account:
        """Lease a free account and log in as it; on a failure, the lease is given back."""
        held = self.lease(wait)
        try:
            return self.login(held.entry)
        except BaseException:
            self.held.remove(held)
            held.release()
            raise

    # -- doctor ------------------------------------------------------------------------

    def probe(self) -> Iterator[tuple[AccountEntry, str, str]]:
        """Each account: ``("ok", how it logged in)``, ``("busy", who holds it)`` — not
        logged in, so a live run's session is left alone — or ``("fail", why)``. Each is
        leased for the moment of its login only."""
        for entry in self.spec.entries:
            try:
                got = self.take(entry)
            except AccountError as error:
                yield entry, "fail", str(error)
                continue
            if isinstance(got, Busy):
                yield entry, "busy", f"in use by {got.holder}: not logged in, to keep its session"
                continue
            try:
                account = self.login(entry)
                yield entry, "ok", f"logged in as {account.username} through {self.via()}"
            except AccountError as error:
                yield entry, "fail", str(error)
            finally:
                self.held.remove(got)
                got.release()

    def via(self) -> str:
        if self.spec.is_cognito:
            return f"Cognito InitiateAuth (app client {self.spec.client_id})"
        return self.spec.login


def _aws_error(error: Exception, redactor: Redactor | None = None) -> str:
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        text = f"{detail.get('Code', '?')}: {detail.get('Message', '')}"
    else:
        text = f"{type(error).__name__}: {error}"
    text = _one_line(text)
    return redactor.text(text) if redactor is not None else text


def _read_fix(entry: AccountEntry, profile: Profile) -> str:
    if entry.store == "secretsmanager":
        return (
            f"create the secret, or fix secrets = [...] in [{profile.name}.accounts]; the "
            f"credentials need secretsmanager:GetSecretValue on it"
        )
    return (
        f"create the parameter (SecureString), or fix parameters = [...] in "
        f"[{profile.name}.accounts]; the credentials need ssm:GetParameter (and kms:Decrypt)"
    )
