"""Post-deploy smoke: the service answers, and a user can sign up, log in and read itself."""

import pytest

from fixtures.users import TestUser
from harness.clients.http import ApiClient
from harness.config import Profile

pytestmark = pytest.mark.smoke


@pytest.mark.readonly
def test_health_names_this_environment(api: ApiClient, env: Profile) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["environment"] == env.expected_environment


def test_signup_login_read_self(api: ApiClient, user: TestUser) -> None:
    response = api.get(f"/users/{user.uid}", auth=user.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["uid"] == user.uid
    assert body["email"] == user.email
    assert body["name"] == user.name
    assert "password" not in body and "PasswordHash" not in body
