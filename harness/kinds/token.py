"""The ``token`` kind: a session token the harness writes straight into the token table.

For tests that bypass login (the design notes' ``insert_token``): the item carries
``TimeToLive`` as a Number and a ``HarnessNamespace`` attribute. It is only ever written over
an empty slot, another token of this run, or the token of a user this run created; deleted
only while it still carries this run's marker (a conditional delete).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from harness.cleanup.ledger import Outcome
from harness.kinds import Found, Kind
from harness.kinds.dynamo import batch_delete, is_condition_failed, scan_prefix
from harness.namespace import parse_email
from harness.safety.guards import Owner, OwnershipError

MARKER = "HarnessNamespace"
LEASE = "HarnessLease"


class TokenKind(Kind):
    name = "token"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    def create(
        self, uid: int, token: str, namespace: str, ttl_seconds: float, *, user_is_ours: bool
    ) -> dict[str, Any]:
        """Write ``token`` for ``uid``; ``ttl_seconds`` may be negative (an expired token).
        The returned ids are journaled, so they never include the token value itself."""
        expires_at = int(time.time() + ttl_seconds)
        item = {"Uid": uid, "Token": token, "TimeToLive": expires_at, MARKER: namespace}
        kwargs: dict[str, Any] = {"Item": item}
        if not user_is_ours:
            run = namespace.rsplit("-", 1)[0]
            kwargs["ConditionExpression"] = "attribute_not_exists(Uid) OR begins_with(#m, :run)"
            kwargs["ExpressionAttributeNames"] = {"#m": MARKER}
            kwargs["ExpressionAttributeValues"] = {":run": run}
        try:
            self.aws.table(self.profile.tokens_table).put_item(**kwargs)
        except ClientError as error:
            if is_condition_failed(error):
                raise OwnershipError(
                    f"uid {uid} already has a token this run did not write; not overwriting it"
                ) from None
            raise
        return {"expires_at": expires_at}

    def delete(self, ids: Mapping[str, Any], owner: Owner) -> Outcome:
        namespace = str(ids.get("namespace", ""))
        owner.marker(namespace, f"token of uid {ids.get('uid')}")
        uid = int(ids["uid"])
        table = self.aws.table(self.profile.tokens_table)
        try:
            table.delete_item(
                Key={"Uid": uid},
                ConditionExpression="#m = :ns",
                ExpressionAttributeNames={"#m": MARKER},
                ExpressionAttributeValues={":ns": namespace},
            )
            return "deleted"
        except ClientError as error:
            if not is_condition_failed(error):
                raise
        item = table.get_item(Key={"Uid": uid}, ConsistentRead=True).get("Item")
        if item is None:
            return "absent"
        # Replaced by a login of a user this run created: the user kind removes it.
        user = (
            self.aws.table(self.profile.users_table)
            .get_item(Key={"Uid": uid}, ConsistentRead=True)
            .get("Item")
        )
        if user is not None and parse_email(str(user.get("Email", ""))) is not None:
            owner.email(str(user["Email"]))
            return "absent"
        raise OwnershipError(f"the token of uid {uid} was replaced by one this run did not write")

    def find(self, prefix: str) -> list[Found]:
        table = self.aws.table(self.profile.tokens_table)
        return [
            Found(
                self.name,
                {"uid": int(i["Uid"]), "namespace": i[MARKER]},
                f"token of uid {i['Uid']} ({i[MARKER]})",
                marker=i[MARKER],
            )
            for i in scan_prefix(table, MARKER, prefix, f"Uid, {MARKER}, {LEASE}")
            if LEASE not in i  # a run's lease lives in the same table: see kinds/lease.py
        ]

    sweep_order = 20

    def delete_many(self, ids: list[dict[str, Any]], owner: Owner) -> int:
        keys = [{"Uid": int(one["uid"])} for one in ids if owner.marker(one["namespace"], "token")]
        return batch_delete(self.aws.table(self.profile.tokens_table), keys)
