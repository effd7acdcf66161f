"""The service's DynamoDB tables: users, tokens and notifications.

Owns: item shapes and key design (see docs/service-contract.md), every read and write, and
the conditions that keep them correct under concurrency (sign-up is one conditional put,
logout only deletes the token it was given, a welcome notification is only written while
its user still exists). Must never swallow an unexpected storage error: it propagates (and
``web.guarded`` answers 500); only the expected "condition failed" outcomes become values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import settings

MAX_UID = 2**53 - 1


def uid_for(email: str) -> int:
    """The stable 52-bit uid of a normalised email (first 13 hex digits of its SHA-256)."""
    return int(hashlib.sha256(email.lower().encode("utf-8")).hexdigest()[:13], 16)


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class User:
    uid: int
    email: str
    name: str
    password_hash: str
    created_at: str

    def public(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "email": self.email,
            "name": self.name,
            "created_at": self.created_at,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> User:
        return cls(
            uid=int(item["Uid"]["N"]),
            email=item["Email"]["S"],
            name=item["Name"]["S"],
            password_hash=item["PasswordHash"]["S"],
            created_at=item["CreatedAt"]["S"],
        )


def _ctx() -> tuple[Any, settings.Settings]:
    clients = settings.current()
    return clients.dynamodb, clients.settings


# --- users ---------------------------------------------------------------------------


def create_user(user: User) -> bool:
    """Put the user unless the uid exists; False means the email is already registered."""
    db, cfg = _ctx()
    try:
        db.put_item(
            TableName=cfg.users_table,
            Item={
                "Uid": _n(user.uid),
                "Email": _s(user.email),
                "Name": _s(user.name),
                "PasswordHash": _s(user.password_hash),
                "CreatedAt": _s(user.created_at),
            },
            ConditionExpression="attribute_not_exists(Uid)",
        )
    except ClientError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


def get_user(uid: int) -> User | None:
    db, cfg = _ctx()
    item = db.get_item(TableName=cfg.users_table, Key={"Uid": _n(uid)}, ConsistentRead=True).get(
        "Item"
    )
    return User.from_item(item) if item else None


def delete_user_only(uid: int, email: str) -> None:
    """Undo a sign-up whose event could not be published (only that very item)."""
    db, cfg = _ctx()
    try:
        db.delete_item(
            TableName=cfg.users_table,
            Key={"Uid": _n(uid)},
            ConditionExpression="Email = :e",
            ExpressionAttributeValues={":e": _s(email)},
        )
    except ClientError as exc:
        if not _condition_failed(exc):
            raise


def update_user(uid: int, name: str | None, password_hash: str | None) -> User | None:
    """Change name and/or password hash of an existing user; None if the user is gone."""
    db, cfg = _ctx()
    sets, values, names = [], {}, {}
    if name is not None:
        sets.append("#n = :n")
        names["#n"] = "Name"
        values[":n"] = _s(name)
    if password_hash is not None:
        sets.append("#p = :p")
        names["#p"] = "PasswordHash"
        values[":p"] = _s(password_hash)
    try:
        out = db.update_item(
            TableName=cfg.users_table,
            Key={"Uid": _n(uid)},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_exists(Uid)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if _condition_failed(exc):
            return None
        raise
    return User.from_item(out["Attributes"])


def delete_user_and_token(user: User) -> bool:
    """Delete the user and their token in one transaction; False if the user was already gone."""
    db, cfg = _ctx()
    try:
        db.transact_write_items(
            TransactItems=[
                {
                    "Delete": {
                        "TableName": cfg.users_table,
                        "Key": {"Uid": _n(user.uid)},
                        "ConditionExpression": "attribute_exists(Uid)",
                    }
                },
                {"Delete": {"TableName": cfg.tokens_table, "Key": {"Uid": _n(user.uid)}}},
            ]
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
            reasons = exc.response.get("CancellationReasons") or []
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                return False
        raise
    return True


# --- tokens --------------------------------------------------------------------------


def put_token(uid: int, token: str, expires_at: int) -> None:
    """One live session per user: a new login replaces the previous token."""
    db, cfg = _ctx()
    db.put_item(
        TableName=cfg.tokens_table,
        Item={"Uid": _n(uid), "Token": _s(token), "TimeToLive": _n(expires_at)},
    )


def get_token(uid: int) -> tuple[str, int] | None:
    """(token, expiry epoch seconds) of the uid's session, or None."""
    db, cfg = _ctx()
    item = db.get_item(TableName=cfg.tokens_table, Key={"Uid": _n(uid)}, ConsistentRead=True).get(
        "Item"
    )
    return _token_of(item)


def get_session(uid: int) -> tuple[tuple[str, int] | None, User | None]:
    """The uid's token and user in one round trip (BatchGetItem, consistent reads).

    Authenticated routes need both, and on the local emulator a round trip costs more than
    the work; one call instead of two roughly doubles their throughput.
    """
    db, cfg = _ctx()
    request: dict[str, Any] = {
        cfg.tokens_table: {"Keys": [{"Uid": _n(uid)}], "ConsistentRead": True},
        cfg.users_table: {"Keys": [{"Uid": _n(uid)}], "ConsistentRead": True},
    }
    found: dict[str, list[dict[str, Any]]] = {}
    for _ in range(5):
        out = db.batch_get_item(RequestItems=request)
        for table, items in out.get("Responses", {}).items():
            found.setdefault(table, []).extend(items)
        request = out.get("UnprocessedKeys") or {}
        if not request:
            break
    else:
        raise RuntimeError("BatchGetItem left keys unprocessed after 5 attempts")
    token_items = found.get(cfg.tokens_table) or []
    user_items = found.get(cfg.users_table) or []
    return (
        _token_of(token_items[0]) if token_items else None,
        User.from_item(user_items[0]) if user_items else None,
    )


def _token_of(item: dict[str, Any] | None) -> tuple[str, int] | None:
    if not item or "Token" not in item or "TimeToLive" not in item:
        return None
    ttl = item["TimeToLive"]
    # Items written by older code stored TimeToLive as a string; read either, write numbers.
    raw = ttl.get("N", ttl.get("S"))
    try:
        expires_at = int(float(raw))
    except (TypeError, ValueError):
        return None
    return item["Token"].get("S", ""), expires_at


def delete_token(uid: int, token: str) -> None:
    """Delete the session only if it is still this token (a newer login is left alone)."""
    db, cfg = _ctx()
    try:
        db.delete_item(
            TableName=cfg.tokens_table,
            Key={"Uid": _n(uid)},
            ConditionExpression="#t = :t",
            ExpressionAttributeNames={"#t": "Token"},
            ExpressionAttributeValues={":t": _s(token)},
        )
    except ClientError as exc:
        if not _condition_failed(exc):
            raise


# --- notifications -------------------------------------------------------------------

WELCOME_ID = "welcome"


def put_welcome_if_user_exists(
    uid: int, email: str, name: str, event_id: str, created_at: str
) -> bool:
    """Write the welcome notification only while the user exists with that email.

    False (nothing written) when the user is gone or changed: a late or duplicate
    ``user.created`` never resurrects a notification for a deleted user.
    """
    db, cfg = _ctx()
    try:
        db.transact_write_items(
            TransactItems=[
                {
                    "ConditionCheck": {
                        "TableName": cfg.users_table,
                        "Key": {"Uid": _n(uid)},
                        "ConditionExpression": "Email = :e",
                        "ExpressionAttributeValues": {":e": _s(email)},
                    }
                },
                {
                    "Put": {
                        "TableName": cfg.notifications_table,
                        "Item": {
                            "Uid": _n(uid),
                            "NotificationId": _s(WELCOME_ID),
                            "Kind": _s("welcome"),
                            "Email": _s(email),
                            "Message": _s(f"Welcome, {name}!"),
                            "CreatedAt": _s(created_at),
                            "EventId": _s(event_id),
                        },
                    }
                },
            ]
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
        raise
    return True


def _notification_keys(uid: int) -> list[dict[str, Any]]:
    db, cfg = _ctx()
    keys: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": cfg.notifications_table,
        "KeyConditionExpression": "Uid = :u",
        "ExpressionAttributeValues": {":u": _n(uid)},
        "ConsistentRead": True,
    }
    while True:
        page = db.query(**kwargs)
        keys.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return keys
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def list_notifications(uid: int) -> list[dict[str, Any]]:
    return [
        {
            "id": item["NotificationId"]["S"],
            "kind": item.get("Kind", {}).get("S", ""),
            "message": item.get("Message", {}).get("S", ""),
            "created_at": item.get("CreatedAt", {}).get("S", ""),
        }
        for item in _notification_keys(uid)
    ]


def delete_notifications(uid: int) -> int:
    """Delete every notification of the uid; the number deleted."""
    db, cfg = _ctx()
    items = _notification_keys(uid)
    for item in items:
        db.delete_item(
            TableName=cfg.notifications_table,
            Key={"Uid": item["Uid"], "NotificationId": item["NotificationId"]},
        )
    return len(items)
