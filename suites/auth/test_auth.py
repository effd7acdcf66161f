"""Every 403 of the design notes' ``login_required``, plus logout, expiry and cross-user access."""

import pytest
import requests

from fixtures.users import TestLedger, TestUser, TokenFactory, UserFactory
from harness.adapter import UidTokenAuth
from harness.clients.http import ApiClient

pytestmark = pytest.mark.nightly
NOT_AUTHORIZED = {"error": "Not authorized"}


def assert_not_authorized(response: requests.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == NOT_AUTHORIZED


@pytest.mark.readonly
@pytest.mark.parametrize(
    "headers",
    [{}, {"uid": "1"}, {"token": "x" * 43}, {"uid": "not-a-number", "token": "x" * 43}],
    ids=["no-headers", "uid-only", "token-only", "non-numeric-uid"],
)
def test_missing_or_malformed_headers_are_403(api: ApiClient, headers: dict[str, str]) -> None:
    assert_not_authorized(api.get("/users/1", headers=headers))


def test_wrong_token_is_403(api: ApiClient, user: TestUser) -> None:
    assert_not_authorized(api.get(f"/users/{user.uid}", auth=UidTokenAuth(user.uid, "x" * 43)))


def test_injected_token_works_like_a_login(
    api: ApiClient, user: TestUser, token_factory: TokenFactory
) -> None:
    injected = token_factory(user, ttl=120)
    response = api.get(f"/users/{user.uid}", auth=injected.auth)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == user.email


def test_expired_token_is_403(
    api: ApiClient, user_factory: UserFactory, token_factory: TokenFactory
) -> None:
    user = user_factory(login=False)
    expired = token_factory(user, expired=True)
    assert_not_authorized(api.get(f"/users/{user.uid}", auth=expired.auth))


def test_token_without_a_user_authenticates_but_finds_nothing(
    api: ApiClient, token_factory: TokenFactory
) -> None:
    # The notes' auth trusts the token table alone: a token for a uid with no user passes
    # it, and the route then answers 404 (docs/service-contract.md).
    orphan = token_factory(ttl=120)
    assert api.get(f"/users/{orphan.uid}", auth=orphan.auth).status_code == 404
    assert_not_authorized(api.get(f"/users/{orphan.uid + 1}", auth=orphan.auth))


def test_logout_revokes_the_token(api: ApiClient, user: TestUser) -> None:
    assert api.get(f"/users/{user.uid}", auth=user.auth).status_code == 200
    assert api.post("/logout", auth=user.auth).status_code == 204
    assert_not_authorized(api.get(f"/users/{user.uid}", auth=user.auth))


def test_another_users_uid_is_403(api: ApiClient, user_factory: UserFactory) -> None:
    alice, bob = user_factory(), user_factory()
    for method in ("GET", "PATCH", "DELETE"):
        kwargs = {"json": {"name": "Mallory"}} if method == "PATCH" else {}
        assert_not_authorized(api.request(method, f"/users/{bob.uid}", auth=alice.auth, **kwargs))
    assert_not_authorized(api.get(f"/users/{bob.uid}/notifications", auth=alice.auth))
    assert api.get(f"/users/{bob.uid}", auth=bob.auth).json()["name"] == bob.name


def test_a_new_login_replaces_the_previous_token(
    api: ApiClient, user: TestUser, user_factory: UserFactory, ledger: TestLedger
) -> None:
    first = user.token
    user_factory.login(user)
    assert user.token != first
    assert_not_authorized(api.get(f"/users/{user.uid}", auth=UidTokenAuth(user.uid, first)))
    assert api.get(f"/users/{user.uid}", auth=user.auth).status_code == 200
