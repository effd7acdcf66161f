"""What the notifications processor does with one user event taken from its queue.

Owns: the derived notifications record: ``user.created`` writes the welcome notification
(only while the user still exists with that email), ``user.deleted`` removes all of the
user's notifications. Both are idempotent, so redelivery is harmless. Must never raise for
an event that can never succeed (bad JSON, no contract, fails its contract: logged and
dropped, or it would be redelivered forever); storage errors do raise, so the message stays
on the queue and is retried.
"""

from __future__ import annotations

import json
import logging

from chalicelib import events, logs, store

log = logging.getLogger("service.processor")


def handle_message(body: str) -> str:
    """Apply one message body; a short word saying what happened (for logs and tests)."""
    try:
        event = events.validate(json.loads(body))
    except (ValueError, events.InvalidEvent) as exc:
        log.error("dropping unprocessable message: %s", exc)
        return "dropped"
    data = event["data"]
    uid = int(data["uid"])
    log.info(
        "handling %s %s for uid %s",
        event["type"],
        event["id"],
        uid,
        extra=logs.fields(event_type=event["type"], event_id=event["id"], uid=uid),
    )
    if event["type"] == events.USER_CREATED:
        written = store.put_welcome_if_user_exists(
            uid, data["email"], data["name"], event["id"], events.now_iso()
        )
        return "welcomed" if written else "skipped (user gone)"
    if event["type"] == events.USER_DELETED:
        removed = store.delete_notifications(uid)
        return f"removed {removed}"
    log.warning("ignoring event type %s", event["type"])
    return "ignored"
