"""The ``user`` kind: a user signed up through the service's API.

Created with ``POST /users`` (namespaced email under the reserved test domain). Deleted, after
the guard has checked the email, in one of two ways:

- while this process still holds the user's session (``remember_session``), through the
  service's own ``DELETE /users/{uid}`` — one request, the real delete path, its
  ``user.deleted`` event and all; the processor then removes the notifications and the run's
  drain and residue check wait for it;
- otherwise (crash recovery, the sweeper, a session the test revoked) straight from storage:
  the user item (conditional on its email), then its session token and its notifications.
  The user item goes first: the service's processor only writes a notification while the
  user exists, so nothing can be resurrected behind cleanup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from botocore.exceptions import ClientError

from harness.cleanup.ledger import Outcome
from harness.kinds import Found, Kind
from harness.kinds.dynamo import batch_delete, is_condition_failed, scan_prefix
from harness.namespace import parse_email
from harness.safety.guards import Owner, OwnershipError


class ApiError(AssertionError):
    """The service answered a harness request with an unexpected status."""


class UserKind(Kind):
    name = "user"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: uid -> (token, client) of users this process created and logged in; memory only
        self._sessions: dict[int, tuple[str, requests.Session]] = {}

    def remember_session(self, uid: int, token: str, api: requests.Session) -> None:
        self._sessions[uid] = (token, api)

    def _delete_via_api(self, uid: int) -> bool:
        """True when the service itself deleted the user (204); anything else — a revoked
        token's 403, an error, a dead network — leaves it to the storage path."""
        session = self._sessions.pop(uid, None)
        if session is None:
            return False
        token, api = session
        try:
            response = api.delete(f"/users/{uid}", headers={"uid": str(uid), "token": token})
        except requests.RequestException:
            return False
        return response.status_code == 204

    def create(self, api: requests.Session, email: str, name: str, password: str) -> dict:
        response = api.post("/users", json={"email": email, "name": name, "password": password})
        if response.status_code != 201:
            raise ApiError(
                f"sign-up of {email} answered {response.status_code}: {response.text[:300]}"
            )
        try:
            uid = int(response.json()["uid"])
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                f"sign-up answered 201 without a numeric uid: {response.text[:300]}"
            ) from None
        return {"uid": uid}

    def _uid_for(self, email: str) -> int | None:
        """Find a user by email when the create's answer was lost (crash, timeout)."""
        table = self.aws.table(self.profile.users_table)
        for item in scan_prefix(table, "Email", email, "Uid, Email"):
            if item.get("Email") == email:
                return int(item["Uid"])
        return None

    def delete(self, ids: Mapping[str, Any], owner: Owner) -> Outcome:
        email = str(ids.get("email", "")).lower()
        owner.email(email)
        uid = ids.get("uid")
        uid = int(uid) if uid is not None else self._uid_for(email)
        if uid is None:
            return "absent"
        if self._delete_via_api(uid):
            return "deleted"
        deleted = self._delete_user_item(uid, email)
        # The uid is proven ours (journaled for our email, and no one else's item holds it).
        tokens = self.aws.table(self.profile.tokens_table)
        token = tokens.delete_item(Key={"Uid": uid}, ReturnValues="ALL_OLD")
        deleted |= bool(token.get("Attributes"))
        deleted |= self._delete_notifications(uid, email) > 0
        return "deleted" if deleted else "absent"

    def _delete_user_item(self, uid: int, email: str) -> bool:
        users = self.aws.table(self.profile.users_table)
        try:
            users.delete_item(
                Key={"Uid": uid},
                ConditionExpression="Email = :e",
                ExpressionAttributeValues={":e": email},
            )
            return True
        except ClientError as error:
            if not is_condition_failed(error):
                raise
        item = users.get_item(Key={"Uid": uid}, ConsistentRead=True).get("Item")
        if item is not None:
            raise OwnershipError(f"uid {uid} now holds {item.get('Email')!r}, not {email!r}")
        return False

    def _delete_notifications(self, uid: int, email: str) -> int:
        table = self.aws.table(self.profile.notifications_table)
        count = 0
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "Uid = :u",
            "ExpressionAttributeValues": {":u": uid},
            "ConsistentRead": True,
        }
        while True:
            page = table.query(**kwargs)
            for item in page.get("Items", []):
                if str(item.get("Email", "")).lower() != email:
                    raise OwnershipError(
                        f"notification {item.get('NotificationId')} of uid {uid} is addressed "
                        f"to {item.get('Email')!r}, not {email!r}; left alone"
                    )
                table.delete_item(Key={"Uid": uid, "NotificationId": item["NotificationId"]})
                count += 1
            if "LastEvaluatedKey" not in page:
                return count
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    sweep_order = 10

    def delete_many(self, ids: list[dict[str, Any]], owner: Owner) -> int:
        """Sweeper path: batched deletes of user items and their session tokens (their
        notifications are found and swept by the notification kind)."""
        uids = [int(one["uid"]) for one in ids if owner.email(str(one["email"]))]
        batch_delete(self.aws.table(self.profile.tokens_table), [{"Uid": u} for u in uids])
        return batch_delete(self.aws.table(self.profile.users_table), [{"Uid": u} for u in uids])

    def find(self, prefix: str) -> list[Found]:
        table = self.aws.table(self.profile.users_table)
        return [
            Found(
                self.name,
                {"uid": int(i["Uid"]), "email": i["Email"]},
                f"user {i['Email']}",
                marker=i["Email"],
            )
            for i in scan_prefix(table, "Email", prefix, "Uid, Email")
            if parse_email(str(i["Email"])) is not None  # the test domain too, not just the shape
        ]
