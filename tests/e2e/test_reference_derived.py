"""The reference adapter's derived items, against the real sandbox: the welcome notification
the service writes on its own for a user is found by its full key — all users' in
``BatchGetItem`` calls, never a ``Query`` per user — and only while it is addressed to the
user the run recorded."""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

import pytest

from harness.cleanup import residue
from harness.cleanup.journal import Resource
from harness.clients.aws import Aws
from harness.kinds import load_kinds
from harness.namespace import Namespace, RunId

pytestmark = pytest.mark.e2e


def _welcome(aws: Aws, uid: int, email: str) -> None:
    table = aws.table(aws.profile.setting("notifications_table"))
    table.put_item(
        Item={"Uid": uid, "NotificationId": "welcome", "Kind": "welcome", "Email": email}
    )


def _forget(aws: Aws, uids: list[int]) -> None:
    table = aws.table(aws.profile.setting("notifications_table"))
    for uid in uids:
        table.delete_item(Key={"Uid": uid, "NotificationId": "welcome"})


def test_welcome_notifications_left_behind_are_found_by_key_in_batches(aws: Aws) -> None:
    """150 users the run recorded (and deleted): the welcome notification written behind the
    deletion of two of them belongs to them; one addressed to someone else is not theirs."""
    kinds = load_kinds(aws.profile, aws)
    namespace = Namespace(RunId.generate(), "main")
    recorded = [
        Resource(seq, "user", {"uid": secrets.randbits(52), "email": namespace.email()})
        for seq in range(150)
    ]
    late, other = recorded[7].ids, recorded[120].ids
    foreign = recorded[42].ids
    _welcome(aws, late["uid"], late["email"])
    _welcome(aws, other["uid"], other["email"].upper())  # the service keeps the email's case
    _welcome(aws, foreign["uid"], "staff@corp.example.com")
    calls: Counter[str] = Counter()

    def count(model: Any = None, **_: Any) -> None:
        if model is not None:
            calls[model.name] += 1

    events = aws.dynamodb_client.meta.events  # the clients are built: hook them, not the session
    events.register("before-call.dynamodb", count)
    try:
        present, belonging = residue.look_by_key(kinds, recorded)
    finally:
        events.unregister("before-call.dynamodb", count)
        _forget(aws, [late["uid"], other["uid"], foreign["uid"]])
    assert present == []
    assert sorted((f.kind, f.ids["uid"]) for f in belonging) == sorted(
        [("notification", late["uid"]), ("notification", other["uid"])]
    )
    assert {f.ids["notification_id"] for f in belonging} == {"welcome"}
    # the users by key (150 keys: two calls) and their welcome notifications (two more)
    assert calls == Counter({"BatchGetItem": 4}), calls
