"""The declared Cognito kind (harness/kinds/cognito.py) against Cognito's own API semantics —
moto in-process, the emulator the sandbox serves, through the harness's real boto3 clients:
finding by a ListUsers prefix filter (never a full listing when a filter can answer), what
belongs to a user and what is a look-alike, AdminDeleteUser only of users that still carry
the checked marker, and the cognito_user fixture's sign-up and log-in.

On the old code none of this exists: ``type = "cognito"`` is refused as an unknown field of a
declared kind, so a run cannot find or delete a single test user in a pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from harness.cleanup.ledger import OwnershipError
from harness.clients.aws import Aws
from harness.config import ConfigError, Profile
from harness.kinds.cognito import CognitoKind, CognitoUser, create_user, log_in
from harness.kinds.dynamo import Checkpoint, Progress, RateLimiter, ScanControl
from harness.kinds.registry import declared_kind
from harness.kinds.stores import FAIL, OK, WARN
from harness.safety.guards import Owner, guarded_batch_delete
from harness.safety.protect import ProtectedTargetError
from tests.unit.stubs import ns

NS = str(ns(1, "aaaa"))
OTHER = str(ns(2, "bbbb"))
PASSWORD = "Pa55word!x"


class Pool:
    def __init__(self, aws: Aws, **attributes: Any) -> None:
        self.client = aws.cognito_idp
        pool = self.client.create_user_pool(PoolName="members", **attributes)["UserPool"]
        self.id = pool["Id"]
        self.client_id = self.client.create_user_pool_client(
            UserPoolId=self.id, ClientName="tests", ExplicitAuthFlows=["USER_PASSWORD_AUTH"]
        )["UserPoolClient"]["ClientId"]
        self.calls: list[dict[str, Any]] = []
        self.client.meta.events.register(
            "provide-client-params.cognito-idp.ListUsers",
            lambda params, **_: self.calls.append(dict(params)),
        )

    def add(self, username: str, email: str = "") -> None:
        attributes = [{"Name": "email", "Value": email}] if email else []
        self.client.admin_create_user(
            UserPoolId=self.id,
            Username=username,
            UserAttributes=attributes,
            MessageAction="SUPPRESS",
        )

    def usernames(self) -> list[str]:
        users = self.client.list_users(UserPoolId=self.id)["Users"]
        return sorted(u["Username"] for u in users)

    def email(self, username: str, email: str) -> None:
        self.client.admin_update_user_attributes(
            UserPoolId=self.id,
            Username=username,
            UserAttributes=[{"Name": "email", "Value": email}],
        )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    with mock_aws():
        yield Aws(Profile(name="t", aws_region="us-east-1", protected=False))


@pytest.fixture
def pool(aws: Aws) -> Pool:
    return Pool(aws)


def kind_of(aws: Aws, pool: Pool, marker: str = "username", **extra: Any) -> CognitoKind:
    spec = {"type": "cognito", "user_pool_id": pool.id, "marker": marker, **extra}
    made = declared_kind("member", spec, aws.profile, aws)
    assert isinstance(made, CognitoKind)
    return made


def test_declared_with_its_fields(aws: Aws, pool: Pool) -> None:
    kind = kind_of(aws, pool, client_id="abc", sweep_order=7)
    assert (kind.name, kind.sweep_order, kind.user_pool_id) == ("member", 7, pool.id)
    assert (kind.marker_attribute, kind.client_id, kind.store) == ("username", "abc", "cognito")
    assert kind.find_is_cheap and kind.related_by_key
    plain = kind_of(aws, pool)
    assert (plain.client_id, plain.sweep_order) == ("", 50)
    custom = kind_of(aws, pool, marker="custom:ns")
    assert not custom.find_is_cheap and not custom.related_by_key


def test_find_asks_a_prefix_filter_and_pages_past_60(aws: Aws, pool: Pool) -> None:
    for i in range(65):
        pool.add(f"{NS}-u{i}")
    pool.add(f"{OTHER}-x")
    pool.add("alice")
    kind = kind_of(aws, pool)
    found = kind.find(f"{NS}-")
    assert sorted(f.ids["username"] for f in found) == sorted(f"{NS}-u{i}" for i in range(65))
    assert all(f.marker == f.ids["username"] and f.kind == "member" for f in found)
    assert found[0].summary == f"member user {found[0].ids['username']} in {pool.id}"
    assert [c["Filter"] for c in pool.calls] == [f'username ^= "{NS}-"'] * 2
    assert [c["Limit"] for c in pool.calls] == [60, 60]
    assert "PaginationToken" in pool.calls[1] and "PaginationToken" not in pool.calls[0]


def test_a_filter_value_is_quoted(aws: Aws, pool: Pool) -> None:
    kind_of(aws, pool).find('a"b\\c')
    assert pool.calls[-1]["Filter"] == 'username ^= "a\\"b\\\\c"'


def test_related_keeps_what_belongs_never_a_look_alike(aws: Aws, pool: Pool) -> None:
    for name in ("ann", "ann-admin", "ann1", "annx"):
        pool.add(f"{NS}-{name}")
    related = kind_of(aws, pool).related(f"{NS}-ann")
    assert sorted(f.ids["username"] for f in related) == [f"{NS}-ann", f"{NS}-ann-admin"]


def test_exists_by_username_or_by_the_marker_alone(aws: Aws, pool: Pool) -> None:
    pool.add(f"{NS}-ann")
    pool.add(f"{NS}-ann1")
    kind = kind_of(aws, pool)
    there = kind.exists({"username": f"{NS}-ann"})
    assert there is not None and there.ids == {"username": f"{NS}-ann"}
    assert kind.exists({"username": f"{NS}-bob"}) is None
    by_marker = kind_of(aws, pool, marker="email")
    pool.email(f"{NS}-ann1", f"{NS}-ann1@env-harness.example.test")
    pool.email(f"{NS}-ann", f"{NS}-ann@env-harness.example.test")
    lost = by_marker.exists({"email": f"{NS}-ann@env-harness.example.test"})
    assert lost is not None and lost.ids["username"] == f"{NS}-ann"
    assert by_marker.exists({"email": f"{NS}-zed@env-harness.example.test"}) is None
    assert by_marker.exists({}) is None


def test_delete_by_username_then_absent(aws: Aws, pool: Pool) -> None:
    pool.add(f"{NS}-ann")
    pool.add("alice")
    kind = kind_of(aws, pool)
    assert kind.delete({"username": f"{NS}-ann"}) == "deleted"
    assert kind.delete({"username": f"{NS}-ann"}) == "absent"
    assert pool.usernames() == ["alice"]


def test_an_email_marker_is_checked_before_admin_delete_user(aws: Aws, pool: Pool) -> None:
    mine = f"{NS}-ann@env-harness.example.test"
    pool.add("u-1", mine)
    pool.add("u-2", f"{NS}-bob@env-harness.example.test")
    kind = kind_of(aws, pool, marker="email")
    found = kind.find(f"{NS}-")
    assert sorted((f.ids["username"], f.marker) for f in found) == [
        ("u-1", mine),
        ("u-2", f"{NS}-bob@env-harness.example.test"),
    ]
    assert pool.calls[-1]["Filter"] == f'email ^= "{NS}-"'
    assert kind.marker({"username": "u-1", "email": mine}) == mine
    assert kind.marker({"username": "u-1"}) is None
    pool.email("u-2", "bob@example.com")  # the user changed its address: no longer ours
    with pytest.raises(OwnershipError, match="no longer carries"):
        kind.delete({"username": "u-2", "email": f"{NS}-bob@env-harness.example.test"})
    assert kind.delete({"username": "u-1", "email": mine}) == "deleted"
    assert kind.delete({"username": "u-1", "email": mine}) == "absent"
    assert pool.usernames() == ["u-2"]


def test_a_lost_create_answer_deletes_exactly_its_marker(aws: Aws, pool: Pool) -> None:
    pool.add("u-1", f"{NS}-ann@env-harness.example.test")
    pool.add("u-2", f"{NS}-ann1@env-harness.example.test")
    kind = kind_of(aws, pool, marker="email")
    assert kind.delete({"email": f"{NS}-ann@env-harness.example.test"}) == "deleted"
    assert kind.delete({"email": f"{NS}-ann@env-harness.example.test"}) == "absent"
    assert pool.usernames() == ["u-2"]


def test_an_unfilterable_marker_lists_the_pool(aws: Aws, pool: Pool) -> None:
    pool.client.add_custom_attributes(
        UserPoolId=pool.id, CustomAttributes=[{"Name": "ns", "AttributeDataType": "String"}]
    )
    for name, value in (("u-1", f"{NS}-a"), ("u-2", "alice")):
        pool.client.admin_create_user(
            UserPoolId=pool.id,
            Username=name,
            UserAttributes=[{"Name": "custom:ns", "Value": value}],
        )
    kind = kind_of(aws, pool, marker="custom:ns")
    assert [f.ids for f in kind.find(f"{NS}-")] == [{"username": "u-1", "custom:ns": f"{NS}-a"}]
    assert "Filter" not in pool.calls[-1]
    assert kind.store_sizes() == [(pool.id, 2)]
    rows = kind.checks()
    assert [r.status for r in rows] == [OK, WARN]
    assert "ListUsers cannot filter on 'custom:ns'" in rows[1].detail
    assert 'marker = "username" or "email"' in rows[1].fix


def test_the_gate_refuses_a_foreign_user_before_any_delete(aws: Aws, pool: Pool) -> None:
    for name in (f"{NS}-ann", "alice"):
        pool.add(name)
    kind = kind_of(aws, pool)
    mine = kind.find(f"{NS}-")
    foreign = [f for f in kind._list("", scan=None) if f.marker == "alice"]
    with pytest.raises(OwnershipError, match="carries no harness namespace"):
        guarded_batch_delete({"member": kind}, Owner(run=None), mine + foreign)
    assert pool.usernames() == sorted([f"{NS}-ann", "alice"])
    assert guarded_batch_delete({"member": kind}, Owner(run=None), mine) == {"member": 1}
    assert pool.usernames() == ["alice"]


def test_a_sweep_pages_within_its_budget_and_resumes(aws: Aws, pool: Pool, tmp_path: Any) -> None:
    for i in range(70):
        pool.add(f"{NS}-u{i}")
    kind = kind_of(aws, pool)
    lines: list[str] = []
    control = ScanControl(
        limiter=RateLimiter(1e6),
        checkpoint=Checkpoint(tmp_path, "t"),
        progress=Progress(lines.append, every=0),
    )
    assert len(kind.find(f"{NS}-", scan=control)) == 70
    assert (control.calls, control.scanned) == (2, 70)
    assert control.limiter is not None and control.limiter.spent == 70
    assert lines and f"sweep: {pool.id}: scanned 60/70" in lines[0]
    again = ScanControl(checkpoint=Checkpoint(tmp_path, "t"))
    assert len(kind.find(f"{NS}-", scan=again)) == 70 and again.calls == 0  # done: from the file


def test_doctor_rows(aws: Aws, pool: Pool) -> None:
    pool.add(f"{NS}-a")
    rows = kind_of(aws, pool).checks()
    assert [(r.name, r.status) for r in rows] == [("kind member", OK)]
    assert rows[0].detail == f"user pool {pool.id} (members, ~1 users)"
    missing = kind_of(aws, pool)
    missing.user_pool_id = "us-east-1_nothere"
    (row,) = missing.checks()
    assert row.status == FAIL and "ResourceNotFoundException" in row.detail
    assert row.fix == "create the pool, or fix user_pool_id under [t.kinds.member]"


def test_create_user_then_log_in_gives_its_tokens(aws: Aws, pool: Pool) -> None:
    kind = kind_of(aws, pool, client_id=pool.client_id)
    email = f"{NS}-ann@env-harness.example.test"
    ids = create_user(kind, f"{NS}-ann", PASSWORD, {"email": email})
    assert ids == {"username": f"{NS}-ann"}
    user = pool.client.admin_get_user(UserPoolId=pool.id, Username=f"{NS}-ann")
    assert user["UserStatus"] == "CONFIRMED"
    assert {"Name": "email", "Value": email} in user["UserAttributes"]
    tokens = log_in(kind, f"{NS}-ann", PASSWORD)
    assert set(tokens) == {"access_token", "id_token", "refresh_token"}
    assert all(tokens.values())
    me = pool.client.get_user(AccessToken=tokens["access_token"])
    assert me["Username"] == f"{NS}-ann"
    by_email = kind_of(aws, pool, marker="email")
    other = create_user(by_email, f"{NS}-bob", PASSWORD, {"email": f"{NS}-bob@x.test"})
    assert other == {"username": f"{NS}-bob", "email": f"{NS}-bob@x.test"}
    with pytest.raises(ConfigError, match=r'add client_id = "<app client id>" under \[t.kinds'):
        log_in(kind_of(aws, pool), f"{NS}-ann", PASSWORD)


def test_a_users_auth_carries_its_tokens() -> None:
    user = CognitoUser("u", "pw", access_token="acc", id_token="idt")
    assert user.auth.token == "acc"
    assert user.id_auth.headers == {"Authorization": "idt"}
    assert "pw" not in repr(user) and "acc" not in repr(user)


def test_a_protected_profiles_client_reads_and_refuses_admin_delete_user(
    aws: Aws, pool: Pool
) -> None:
    pool.add(f"{NS}-ann")
    guarded = Aws(Profile(name="prod", aws_region="us-east-1", protected=True))
    spec = {"type": "cognito", "user_pool_id": pool.id, "marker": "username"}
    kind = CognitoKind.from_spec("member", spec, guarded.profile, guarded)
    assert [f.marker for f in kind.find(f"{NS}-")] == [f"{NS}-ann"]
    assert kind.exists({"username": f"{NS}-ann"}) is not None  # AdminGetUser is a read
    with pytest.raises(ProtectedTargetError, match="AWS cognito-idp AdminDeleteUser refused"):
        kind.delete({"username": f"{NS}-ann"})
    assert pool.usernames() == [f"{NS}-ann"]


def test_exists_is_by_the_username_even_when_the_marker_moved(aws: Aws, pool: Pool) -> None:
    pool.add("u-1", f"{NS}-ann@env-harness.example.test")
    kind = kind_of(aws, pool, marker="email")
    pool.email("u-1", "ann@example.com")
    there = kind.exists({"username": "u-1", "email": f"{NS}-ann@env-harness.example.test"})
    assert there is not None and there.marker == "ann@example.com"  # the gate refuses it now
    pool.add("u-2")  # no email at all: no marker
    bare = kind.exists({"username": "u-2"})
    assert bare is not None and bare.marker == "" and bare.ids == {"username": "u-2", "email": ""}


def test_create_user_sends_no_invitation_and_a_temporary_password_first(
    aws: Aws, pool: Pool
) -> None:
    sent: list[dict[str, Any]] = []
    pool.client.meta.events.register(
        "provide-client-params.cognito-idp.AdminCreateUser",
        lambda params, **_: sent.append(dict(params)),
    )
    create_user(kind_of(aws, pool), f"{NS}-ann", PASSWORD, {})
    assert sent == [
        {
            "UserPoolId": pool.id,
            "Username": f"{NS}-ann",
            "MessageAction": "SUPPRESS",
            "TemporaryPassword": PASSWORD,
            "UserAttributes": [],
        }
    ]


def test_doctor_names_its_rows_and_the_filterable_attributes(aws: Aws, pool: Pool) -> None:
    (missing,) = [r for r in kind_of(aws, pool, marker="custom:x").checks() if r.status == WARN]
    assert missing.name == "kind member marker"
    assert missing.fix == (
        "carry the namespace in one of email, family_name, given_name, name, phone_number, "
        'preferred_username, sub, username (marker = "username" or "email")'
    )
    gone = kind_of(aws, pool)
    gone.user_pool_id = "us-east-1_gone"
    (row,) = gone.checks()
    assert row.name == "kind member"
    assert row.detail == "user pool us-east-1_gone: ResourceNotFoundException"


def test_a_username_marker_is_deleted_without_reading_the_user_first(aws: Aws, pool: Pool) -> None:
    pool.add(f"{NS}-ann")
    reads: list[str] = []
    pool.client.meta.events.register(
        "provide-client-params.cognito-idp.AdminGetUser",
        lambda params, **_: reads.append(params["Username"]),
    )
    assert kind_of(aws, pool).delete({"username": f"{NS}-ann"}) == "deleted"
    assert reads == []  # the username cannot change: AdminDeleteUser is conditional enough
    pool.add("u-1", f"{NS}-bob@env-harness.example.test")
    by_email = kind_of(aws, pool, marker="email")
    assert by_email.delete({"username": "u-1", "email": f"{NS}-bob@env-harness.example.test"})
    assert reads == ["u-1"]


@pytest.mark.parametrize("marker", ["username", "custom:ns"])
def test_each_prefix_sweeps_from_its_own_checkpoint(
    aws: Aws, pool: Pool, tmp_path: Any, marker: str
) -> None:
    pool.client.add_custom_attributes(
        UserPoolId=pool.id, CustomAttributes=[{"Name": "ns", "AttributeDataType": "String"}]
    )
    for name in (f"{NS}-a", f"{OTHER}-b"):
        pool.client.admin_create_user(
            UserPoolId=pool.id, Username=name, UserAttributes=[{"Name": "custom:ns", "Value": name}]
        )
    kind = kind_of(aws, pool, marker=marker)
    lines: list[str] = []
    first = ScanControl(
        checkpoint=Checkpoint(tmp_path, "t"), progress=Progress(lines.append, every=0)
    )
    assert [f.marker for f in kind.find(f"{NS}-", scan=first)] == [f"{NS}-a"]
    assert first.calls == 1 and lines and "/2 items" in lines[-1]
    second = ScanControl(checkpoint=Checkpoint(tmp_path, "t"))
    assert [f.marker for f in kind.find(f"{OTHER}-", scan=second)] == [f"{OTHER}-b"]
    assert second.calls == 1  # not the first prefix's saved pages
    again = ScanControl(checkpoint=Checkpoint(tmp_path, "t"))
    assert [f.marker for f in kind.find(f"{NS}-", scan=again)] == [f"{NS}-a"]
    assert again.calls == 0
