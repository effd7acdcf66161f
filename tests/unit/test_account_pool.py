"""The account pool in use (harness/accounts/pool.py): its credentials read from Secrets
Manager or SSM (moto in-process), a login over real HTTP to a loopback service or through
Cognito (moto), its lease in the lease table through the protected profile's one AWS opening.
What it proves: the secret's fields are the login body and every secret value is masked from
then on; a protected profile that does not allow the login route sends nothing; an
exhausted pool is one line naming each holder (or waits for one to be freed); every failure
gives the lease back and names the fix; doctor's probe logs in only where nobody holds the
account."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from harness.accounts.leases import Held
from harness.accounts.pool import AccountError, AccountPool, PoolExhausted
from harness.accounts.spec import AccountEntry, AccountsSpec
from harness.clients.auth import BearerAuth, UidTokenAuth
from harness.clients.http import ApiClient
from harness.config import Profile
from harness.safety.protect import http_guard
from harness.safety.redact import MASK, Redactor
from tests.unit.loopback import Loopback, loopback

LEASES = "leases"
PASSWORD = "pool-password-1"
TOKEN = "token-abcdefgh-123456"
ONE = AccountEntry("secretsmanager", "prod/smoke/1")
TWO = AccountEntry("secretsmanager", "prod/smoke/2")
PARAM = AccountEntry("ssm", "/prod/smoke/3")


@contextlib.contextmanager
def releasing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every account leased inside is given back on leaving (while the emulator is still
    there): no refresh thread outlives its test, for a later test's process-wide signal to
    land on."""
    made: list[Held] = []
    original = Held.__init__

    def record(self: Held, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Held, "__init__", record)
    try:
        yield
    finally:
        for held in made:
            held.release()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws(), releasing(monkeypatch):
        boto3.client("dynamodb").create_table(
            TableName=LEASES,
            KeySchema=[{"AttributeName": "Marker", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "Marker", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        secrets = boto3.client("secretsmanager")
        for n in (1, 2):
            body = {"email": f"smoke-{n}@example.com", "password": f"{PASSWORD}{n}"}
            secrets.create_secret(Name=f"prod/smoke/{n}", SecretString=json.dumps(body))
        body = {"email": "smoke-3@example.com", "password": f"{PASSWORD}3"}
        boto3.client("ssm").put_parameter(
            Name=PARAM.name, Value=json.dumps(body), Type="SecureString"
        )
        yield


@pytest.fixture
def service() -> Iterator[Loopback]:
    with loopback() as server:
        server.route("/login", 200, {"uid": 7, "token": TOKEN, "expires_at": 1})
        yield server


def profile(
    url: str,
    entries: tuple[AccountEntry, ...] = (ONE,),
    *,
    allow: tuple[str, ...] = ("POST /login",),
    lease_table: str = LEASES,
    **spec: Any,
) -> Profile:
    return Profile(
        name="prod",
        base_url=url,
        aws_region="us-east-1",
        protected=True,
        allow_writes=allow,
        lease_table=lease_table,
        accounts=AccountsSpec(entries=entries, **spec),
    )


def pool(prof: Profile, tmp_path: Path, redactor: Redactor | None = None) -> AccountPool:
    redactor = redactor or Redactor()
    api = ApiClient(prof.base_url, "itest-run", redactor, guard=http_guard(prof))
    return AccountPool(prof, api, redactor, tmp_path, "itest-20260101t000000-abcd-gw0")


def lease_items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=LEASES)["Items"]


def hold_elsewhere(entry: AccountEntry, seconds: float = 600) -> None:
    boto3.resource("dynamodb").Table(LEASES).put_item(
        Item={
            "Marker": entry.lease_key,
            "Holder": "ci-b:77",
            "Boot": "another-kernel",
            "PidNs": 1,
            "Run": "itest-other-gw1",
            "ExpiresAt": int(time.time() + seconds),
        }
    )


def test_an_account_is_leased_and_logged_in_with_its_secret_as_the_body(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    redactor = Redactor()
    accounts = pool(profile(service.url, auth="uid-token"), tmp_path, redactor)
    account = accounts.lease_and_login()
    (login,) = service.received
    assert (login.method, login.path) == ("POST", "/login")
    assert json.loads(login.body) == {"email": "smoke-1@example.com", "password": f"{PASSWORD}1"}
    assert (account.name, account.username, account.uid) == (ONE.name, "smoke-1@example.com", 7)
    assert isinstance(account.auth, UidTokenAuth)
    assert (account.auth.uid, account.auth.token) == ("7", TOKEN)
    assert PASSWORD not in repr(account) and TOKEN not in repr(account)
    assert [i["Marker"]["S"] for i in lease_items()] == [ONE.lease_key]
    shown = redactor.text(f"oops {PASSWORD}1 and {TOKEN}")
    assert shown == f"oops {MASK} and {MASK}"
    accounts.close()
    assert lease_items() == []


def test_a_parameter_store_account_and_bearer_auth(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    account = pool(profile(service.url, (PARAM,)), tmp_path).lease_and_login()
    assert account.username == "smoke-3@example.com"
    assert json.loads(service.received[0].body)["password"] == f"{PASSWORD}3"
    assert isinstance(account.auth, BearerAuth) and account.auth.token == TOKEN


def test_a_protected_profile_that_does_not_allow_the_login_sends_nothing(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    accounts = pool(profile(service.url, allow=()), tmp_path)
    with pytest.raises(AccountError) as refused:
        accounts.lease_and_login()
    assert str(refused.value) == (
        "protected target [prod]: the account pool logs in through POST /login, which the "
        'profile does not allow: add allow_writes = ["POST /login"] under [prod]'
    )
    assert service.received == [] and lease_items() == []  # nothing sent, lease given back


def test_an_exhausted_pool_is_one_line_naming_each_holder(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    hold_elsewhere(ONE)
    hold_elsewhere(TWO)
    with pytest.raises(PoolExhausted) as exhausted:
        pool(profile(service.url, (ONE, TWO)), tmp_path).lease_and_login()
    message = str(exhausted.value)
    assert "\n" not in message
    assert message.startswith(
        "account pool of [prod] exhausted: all 2 account(s) are leased (prod/smoke/1 by "
        "ci-b:77 (itest-other-gw1) until "
    )
    assert "; prod/smoke/2 by ci-b:77 (itest-other-gw1) until " in message
    assert message.endswith(
        'add accounts to [prod.accounts], run fewer workers (-n), or set wait = "2m" there '
        "to queue for one"
    )
    assert service.received == []


def test_a_worker_waits_for_an_account_to_be_freed(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    hold_elsewhere(ONE)
    freed = threading.Timer(
        0.5,
        lambda: boto3.client("dynamodb").delete_item(
            TableName=LEASES, Key={"Marker": {"S": ONE.lease_key}}
        ),
    )
    freed.start()
    try:
        account = pool(profile(service.url, wait=10), tmp_path).lease_and_login()
    finally:
        freed.join()
    assert account.name == ONE.name


def test_waiting_in_vain_says_how_long(aws: None, service: Loopback, tmp_path: Path) -> None:
    hold_elsewhere(ONE)
    started = time.monotonic()
    with pytest.raises(PoolExhausted) as exhausted:
        pool(profile(service.url, wait=1.5), tmp_path).lease()
    assert time.monotonic() - started >= 1.5
    message = str(exhausted.value)
    assert message.startswith("account pool of [prod] exhausted after waiting 1.5s: all 1 ")
    assert message.endswith("or set a longer wait there to queue for one")


def test_a_process_never_holds_one_account_twice(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    accounts = pool(profile(service.url, (ONE, TWO)), tmp_path)
    first, second = accounts.lease(), accounts.lease()
    assert (first.entry, second.entry) == (ONE, TWO)
    with pytest.raises(PoolExhausted, match=r"prod/smoke/1 by this process; prod/smoke/2 by this"):
        accounts.lease()
    accounts.close()
    assert lease_items() == []


def test_without_a_lease_table_a_local_lock_leases_it(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    first = pool(profile(service.url, lease_table=""), tmp_path)
    assert first.lease().entry == ONE
    assert first.describe_leasing() == (
        f"leased by local locks under {tmp_path / 'accounts'} (this machine only)"
    )
    with pytest.raises(PoolExhausted, match=r"prod/smoke/1 by a live process on this machine"):
        pool(profile(service.url, lease_table=""), tmp_path).lease()
    assert lease_items() == []  # nothing written to AWS
    first.close()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            (401, {"error": "Invalid credentials"}),
            "secret prod/smoke/1 cannot log in: POST /login answered 401 (Invalid credentials): "
            "its credentials are not the account's (rotated without the secret?); put the "
            "current ones in the secret (docs/adapters.md, 'Production smoke runs')",
        ),
        (
            (200, {"uid": 7}),
            "secret prod/smoke/1: the login answered without 'token': set token_field = \"…\" "
            "in [prod.accounts] to the field holding the token",
        ),
        ((200, ["x"]), "secret prod/smoke/1: POST /login answered no JSON object"),
    ],
)
def test_a_failed_login_names_the_fix_and_gives_the_lease_back(
    aws: None, service: Loopback, tmp_path: Path, answer: tuple[int, Any], expected: str
) -> None:
    service.route("/login", *answer)
    with pytest.raises(AccountError) as failed:
        pool(profile(service.url), tmp_path).lease_and_login()
    assert str(failed.value) == expected
    assert lease_items() == []


def test_the_uid_is_read_from_the_pools_uid_field(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    service.route("/login", 200, {"user_id": 9, "uid": 1, "token": TOKEN})
    prof = profile(service.url, auth="uid-token", uid_field="user_id")
    account = pool(prof, tmp_path).lease_and_login()
    assert account.uid == 9
    assert isinstance(account.auth, UidTokenAuth) and account.auth.uid == "9"


def test_a_uid_token_login_needs_its_uid(aws: None, service: Loopback, tmp_path: Path) -> None:
    service.route("/login", 200, {"token": TOKEN})
    with pytest.raises(AccountError, match=r"answered without 'uid': set uid_field = "):
        pool(profile(service.url, auth="uid-token"), tmp_path).lease_and_login()


def test_an_unreadable_secret_names_it_and_the_fix(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    missing = AccountEntry("secretsmanager", "prod/smoke/9")
    with pytest.raises(AccountError) as failed:
        pool(profile(service.url, (missing,)), tmp_path).lease_and_login()
    assert str(failed.value).startswith(
        "cannot read secret prod/smoke/9: ResourceNotFoundException"
    )
    assert str(failed.value).endswith(
        "create the secret, or fix secrets = [...] in [prod.accounts]; the credentials need "
        "secretsmanager:GetSecretValue on it"
    )
    with pytest.raises(AccountError, match=r"^cannot read parameter /nope: ParameterNotFound"):
        pool(profile(service.url, (AccountEntry("ssm", "/nope"),)), tmp_path).lease_and_login()
    assert lease_items() == [] and service.received == []


def test_a_secret_that_is_not_a_json_object_is_masked_and_refused(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    boto3.client("secretsmanager").create_secret(Name="raw", SecretString="just-a-password")
    redactor = Redactor()
    with pytest.raises(AccountError) as failed:
        pool(
            profile(service.url, (AccountEntry("secretsmanager", "raw"),)), tmp_path, redactor
        ).lease_and_login()
    assert str(failed.value).startswith('secret raw is not a JSON object like {"email": "…"')
    assert redactor.text("just-a-password") == MASK


def test_a_cognito_account_logs_in_through_its_app_client_on_a_protected_profile(
    aws: None, tmp_path: Path
) -> None:
    cognito = boto3.client("cognito-idp")
    pool_id = cognito.create_user_pool(PoolName="members")["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="smoke", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    cognito.admin_create_user(UserPoolId=pool_id, Username="smoke1", MessageAction="SUPPRESS")
    cognito.admin_set_user_password(
        UserPoolId=pool_id, Username="smoke1", Password="Pool-Passw0rd!", Permanent=True
    )
    boto3.client("secretsmanager").create_secret(
        Name="cog/1", SecretString=json.dumps({"username": "smoke1", "password": "Pool-Passw0rd!"})
    )
    entry = AccountEntry("secretsmanager", "cog/1")
    redactor = Redactor()
    prof = profile("http://127.0.0.1:9", (entry,), allow=(), login="cognito", client_id=client_id)
    first = pool(prof, tmp_path, redactor)
    account = first.lease_and_login()
    assert account.username == "smoke1"
    assert isinstance(account.auth, BearerAuth)
    assert account.auth.token == account.session["IdToken"]
    assert cognito.get_user(AccessToken=account.session["AccessToken"])["Username"] == "smoke1"
    assert redactor.text(account.session["AccessToken"]) == MASK
    assert redactor.text("Pool-Passw0rd!") == MASK
    first.close()
    boto3.client("secretsmanager").put_secret_value(
        SecretId="cog/1", SecretString=json.dumps({"username": "smoke1", "password": "Wrong-1!"})
    )
    with pytest.raises(AccountError) as failed:
        pool(prof, tmp_path).lease_and_login()
    assert str(failed.value).startswith(
        f"secret cog/1 cannot log in through Cognito app client {client_id}: "
        "NotAuthorizedException: "
    )


def test_doctors_probe_logs_in_only_where_nobody_holds_the_account(
    aws: None, service: Loopback, tmp_path: Path
) -> None:
    hold_elsewhere(TWO)
    missing = AccountEntry("secretsmanager", "prod/smoke/9")
    accounts = pool(profile(service.url, (ONE, TWO, missing)), tmp_path)
    verdicts = {entry.name: (verdict, detail) for entry, verdict, detail in accounts.probe()}
    assert verdicts[ONE.name] == ("ok", "logged in as smoke-1@example.com through POST /login")
    assert verdicts[TWO.name][0] == "busy"
    assert verdicts[TWO.name][1].startswith("in use by ci-b:77 (itest-other-gw1) until ")
    assert verdicts[TWO.name][1].endswith(": not logged in, to keep its session")
    assert verdicts[missing.name][0] == "fail"
    assert verdicts[missing.name][1].startswith("cannot read secret prod/smoke/9: ")
    assert len(service.received) == 1  # only the free account logged in
    assert [i["Marker"]["S"] for i in lease_items()] == [TWO.lease_key]  # its own given back


def test_a_profile_without_a_pool_is_an_error(tmp_path: Path) -> None:
    prof = Profile(name="prod", base_url="http://127.0.0.1:9")
    with pytest.raises(AccountError, match=r"^profile \[prod\] names no account pool"):
        AccountPool(prof, ApiClient(prof.base_url, "r"), Redactor(), tmp_path, "r")


def test_doctors_rows_and_never_a_traceback(
    aws: None, service: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from harness.cli import doctor

    hold_elsewhere(TWO)
    prof = replace(profile(service.url, (ONE, TWO)), project_root=str(tmp_path))
    rows = [(r.name, r.status) for r in doctor.account_checks(prof)]
    assert rows == [
        ("account pool", doctor.OK),
        ("account prod/smoke/1", doctor.OK),
        ("account prod/smoke/2", doctor.SKIP),
    ]

    def breaks(self: AccountPool, entry: AccountEntry) -> None:
        raise RuntimeError("unexpected\nproblem")

    monkeypatch.setattr(AccountPool, "login", breaks)
    *_, last = doctor.account_checks(prof)
    assert (last.name, last.status) == ("account pool", doctor.FAIL)
    assert last.detail == "RuntimeError: unexpected problem"  # one line
    assert [i["Marker"]["S"] for i in lease_items()] == [TWO.lease_key]  # its own given back
