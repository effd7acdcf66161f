"""User CRUD through the API, validation errors and duplicate email."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fixtures.users import TestUser, UserFactory
from harness.clients.http import ApiClient
from harness.namespace import Namespace

if TYPE_CHECKING:
    from faker import Faker  # annotations only: faker is imported when `fake` is first used

pytestmark = pytest.mark.nightly


def test_read_update_self(api: ApiClient, user: TestUser, fake: Faker) -> None:
    new_name = fake.name()
    response = api.patch(f"/users/{user.uid}", json={"name": new_name}, auth=user.auth)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == new_name
    assert api.get(f"/users/{user.uid}", auth=user.auth).json()["name"] == new_name


def test_password_change_takes_effect(api: ApiClient, user: TestUser) -> None:
    new_password = user.password + "-changed"
    response = api.patch(f"/users/{user.uid}", json={"password": new_password}, auth=user.auth)
    assert response.status_code == 200, response.text
    old = api.post("/login", json={"email": user.email, "password": user.password})
    assert old.status_code == 401
    user.password = new_password
    fresh = api.post("/login", json={"email": user.email, "password": new_password})
    assert fresh.status_code == 200


def test_email_cannot_be_changed(api: ApiClient, user: TestUser, namespace: Namespace) -> None:
    response = api.patch(f"/users/{user.uid}", json={"email": namespace.email()}, auth=user.auth)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "email"
    # refused means unchanged: the stored email is still the user's own
    assert api.get(f"/users/{user.uid}", auth=user.auth).json()["email"] == user.email


def test_delete_self(api: ApiClient, user: TestUser) -> None:
    assert api.delete(f"/users/{user.uid}", auth=user.auth).status_code == 204
    # the token went with the user
    assert api.get(f"/users/{user.uid}", auth=user.auth).status_code == 403
    again = api.post("/login", json={"email": user.email, "password": user.password})
    assert again.status_code == 401


def test_duplicate_email_is_409(api: ApiClient, user: TestUser, fake: Faker) -> None:
    before = api.get(f"/users/{user.uid}", auth=user.auth).json()
    response = api.post(
        "/users", json={"email": user.email, "name": fake.name(), "password": "another-pass-1"}
    )
    assert response.status_code == 409, response.text
    assert response.json() == {"error": "Email already registered"}
    # the first account is untouched: same record, its password still the one that logs in
    assert api.get(f"/users/{user.uid}", auth=user.auth).json() == before
    intruder = api.post("/login", json={"email": user.email, "password": "another-pass-1"})
    assert intruder.status_code == 401
    owner = api.post("/login", json={"email": user.email, "password": user.password})
    assert owner.status_code == 200 and owner.json()["uid"] == user.uid
    user.token = owner.json()["token"]  # a login replaces the previous token


def test_wrong_password_is_401(api: ApiClient, user_factory: UserFactory) -> None:
    user = user_factory(login=False)
    response = api.post("/login", json={"email": user.email, "password": "not-" + user.password})
    assert response.status_code == 401
    assert "token" not in response.json()


# Not `readonly`: a POST, refused on a protected target unless its profile allows the route
# (allow_writes = ["POST /login"]). Same for the sign-up probes below: if validation were
# broken, they would create a user.
def test_unknown_email_is_401(api: ApiClient, namespace: Namespace) -> None:
    response = api.post("/login", json={"email": namespace.email(), "password": "whatever-123"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "A", "password": "long-enough-1"}, "email"),
        ({"email": "not-an-email", "name": "A", "password": "long-enough-1"}, "email"),
        ({"email": "EMAIL", "password": "long-enough-1"}, "name"),
        ({"email": "EMAIL", "name": "A", "password": "short"}, "password"),
        ({"email": "EMAIL", "name": "", "password": "long-enough-1"}, "name"),
    ],
    ids=["missing-email", "malformed-email", "missing-name", "short-password", "empty-name"],
)
def test_signup_validation_names_the_field(
    api: ApiClient, namespace: Namespace, body: dict[str, str], field: str
) -> None:
    body = {k: (namespace.email() if v == "EMAIL" else v) for k, v in body.items()}
    response = api.post("/users", json=body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["field"] == field, answer
    assert field in answer["error"]


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"[1, 2]", b'{"email": "' + b"a" * 20000 + b'"}'],
    ids=["malformed-json", "not-an-object", "oversized"],
)
def test_signup_rejects_bad_bodies(api: ApiClient, payload: bytes) -> None:
    response = api.post("/users", data=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "body", response.text
