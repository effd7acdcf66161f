"""Event contracts: what the service publishes satisfies its versioned JSON Schema, and an
event that does not is caught by the harness with the path of the offending field."""

from __future__ import annotations

import pytest

from fixtures.users import TestUser
from harness.events.contracts import ContractViolation
from harness.events.stream import build_event
from harness.namespace import Namespace
from harness.pytest_plugin.fixtures import TestEvents

pytestmark = pytest.mark.nightly


def test_published_events_satisfy_their_contracts(user: TestUser, events: TestEvents) -> None:
    # expect_event already refuses an event that breaks its contract; what the schema cannot
    # say is whether the event is about *this* user: its data must be the user's own.
    created = events.expect_event("user.created", where={"uid": user.uid})
    assert created.data == {"uid": user.uid, "email": user.email, "name": user.name}


def test_a_malformed_event_fails_the_contract_check(
    events: TestEvents, namespace: Namespace
) -> None:
    email = namespace.email()
    events.correlate(email)
    malformed = build_event("user.created", {"uid": "not-a-number", "email": email, "name": "M"})
    events.publish_raw(malformed, event_type="user.created")
    with pytest.raises(ContractViolation, match=r"at \$\.data\.uid: 'not-a-number' is not of"):
        events.expect_event("user.created", where={"email": email})


def test_publishing_helper_refuses_an_invalid_event(
    events: TestEvents, namespace: Namespace
) -> None:
    with pytest.raises(ContractViolation, match=r"\$\.data"):
        events.publish("user.deleted", {"uid": 5, "email": namespace.email(), "extra": 1})
