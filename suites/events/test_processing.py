"""The notifications processor, driven through real pub/sub: user events produce and remove
the welcome notification within a deadline, and duplicate or out-of-order delivery never
leaves one behind. Each effect's publish → observed latency goes into the run report."""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.users import TestUser
from harness.clients.http import ApiClient
from harness.pytest_plugin.fixtures import TestEvents
from harness.run.session import HarnessSession

pytestmark = pytest.mark.nightly

DEADLINE = 15.0  # seconds from publish to the processor's effect


def stored_notifications(harness_session: HarnessSession, uid: int) -> list[dict[str, Any]]:
    """The notifications table's items for ``uid`` (read straight from storage: after a
    delete the user has no token left to ask the API with)."""
    table = harness_session.aws.table(harness_session.profile.notifications_table)
    response = table.query(
        KeyConditionExpression="Uid = :u",
        ExpressionAttributeValues={":u": uid},
        ConsistentRead=True,
    )
    return list(response.get("Items", []))


def welcome_via_api(api: ApiClient, user: TestUser) -> dict[str, Any]:
    response = api.get(f"/users/{user.uid}/notifications", auth=user.auth)
    assert response.status_code == 200, response.text
    welcomes = [n for n in response.json()["notifications"] if n["kind"] == "welcome"]
    assert len(welcomes) == 1, f"expected one welcome, got {response.json()}"
    return welcomes[0]


def gone(harness_session: HarnessSession, uid: int) -> None:
    items = stored_notifications(harness_session, uid)
    assert items == [], f"notifications still there: {items}"


@pytest.mark.smoke
def test_user_created_produces_a_welcome(
    api: ApiClient, user: TestUser, events: TestEvents
) -> None:
    created = events.expect_event("user.created", where={"uid": user.uid}, timeout=DEADLINE)
    assert created.data == {"uid": user.uid, "email": user.email, "name": user.name}
    welcome = events.await_effect(created, lambda: welcome_via_api(api, user), timeout=DEADLINE)
    assert user.name in welcome["message"]


def test_user_deleted_removes_the_welcome(
    api: ApiClient, user: TestUser, events: TestEvents, harness_session: HarnessSession
) -> None:
    created = events.expect_event("user.created", where={"uid": user.uid}, timeout=DEADLINE)
    events.await_effect(created, lambda: welcome_via_api(api, user), timeout=DEADLINE)
    assert api.delete(f"/users/{user.uid}", auth=user.auth).status_code == 204
    deleted = events.expect_event("user.deleted", where={"uid": user.uid}, timeout=DEADLINE)
    assert deleted.data == {"uid": user.uid, "email": user.email}
    events.await_effect(deleted, lambda: gone(harness_session, user.uid), timeout=DEADLINE)


def test_duplicate_delivery_leaves_exactly_one_welcome_then_none(
    api: ApiClient, user: TestUser, events: TestEvents, harness_session: HarnessSession
) -> None:
    created = events.expect_event("user.created", where={"uid": user.uid}, timeout=DEADLINE)
    events.await_effect(created, lambda: welcome_via_api(api, user), timeout=DEADLINE)
    events.deliver_to_consumer(created)
    events.deliver_to_consumer(created)
    events.wait_until_processed(timeout=DEADLINE)
    assert len(stored_notifications(harness_session, user.uid)) == 1

    assert api.delete(f"/users/{user.uid}", auth=user.auth).status_code == 204
    deleted = events.expect_event("user.deleted", where={"uid": user.uid}, timeout=DEADLINE)
    events.await_effect(deleted, lambda: gone(harness_session, user.uid), timeout=DEADLINE)
    for duplicate in (deleted, created, deleted, created):
        events.deliver_to_consumer(duplicate)
    events.wait_until_processed(timeout=DEADLINE)
    gone(harness_session, user.uid)


def test_out_of_order_delivery_does_not_resurrect_the_welcome(
    api: ApiClient, user: TestUser, events: TestEvents, harness_session: HarnessSession
) -> None:
    created = events.expect_event("user.created", where={"uid": user.uid}, timeout=DEADLINE)
    assert api.delete(f"/users/{user.uid}", auth=user.auth).status_code == 204
    deleted = events.expect_event("user.deleted", where={"uid": user.uid}, timeout=DEADLINE)
    events.await_effect(deleted, lambda: gone(harness_session, user.uid), timeout=DEADLINE)
    # The deletion overtakes the creation: user.created arrives last, and late.
    events.deliver_to_consumer(deleted)
    events.deliver_to_consumer(created, delay=1)
    events.wait_until_processed(timeout=DEADLINE)
    gone(harness_session, user.uid)


def test_a_refused_signup_publishes_nothing(
    api: ApiClient, user: TestUser, events: TestEvents
) -> None:
    first = events.expect_event("user.created", where={"uid": user.uid}, timeout=DEADLINE)
    again = {"email": user.email, "name": "Second Try", "password": "another-pass-1"}
    assert api.post("/users", json=again).status_code == 409
    events.no_event("user.created", where=lambda e: e.id != first.id, within=2.0)
