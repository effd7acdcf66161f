"""The ``notification`` kind: records the service's processor derives from user events.

The harness never creates these; it finds them (they carry the recipient's namespaced email)
so the residue check sees what processors wrote asynchronously, and deletes them only while
they are still addressed to a harness email.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from harness.cleanup.ledger import Outcome
from harness.kinds import Found, Kind
from harness.kinds.dynamo import batch_delete, is_condition_failed, scan_prefix
from harness.namespace import parse_email
from harness.safety.guards import Owner


class NotificationKind(Kind):
    name = "notification"

    def delete(self, ids: Mapping[str, Any], owner: Owner) -> Outcome:
        email = str(ids.get("email", "")).lower()
        owner.email(email)
        try:
            self.aws.table(self.profile.notifications_table).delete_item(
                Key={"Uid": int(ids["uid"]), "NotificationId": str(ids["notification_id"])},
                ConditionExpression="Email = :e",
                ExpressionAttributeValues={":e": email},
            )
            return "deleted"
        except ClientError as error:
            if is_condition_failed(error):
                return "absent"
            raise

    sweep_order = 30

    def delete_many(self, ids: list[dict[str, Any]], owner: Owner) -> int:
        keys = [
            {"Uid": int(one["uid"]), "NotificationId": str(one["notification_id"])}
            for one in ids
            if owner.email(str(one["email"]))
        ]
        return batch_delete(self.aws.table(self.profile.notifications_table), keys)

    def find(self, prefix: str) -> list[Found]:
        table = self.aws.table(self.profile.notifications_table)
        return [
            Found(
                self.name,
                {"uid": int(i["Uid"]), "notification_id": i["NotificationId"], "email": i["Email"]},
                f"notification {i['NotificationId']} for {i['Email']}",
                marker=i["Email"],
            )
            for i in scan_prefix(table, "Email", prefix, "Uid, NotificationId, Email")
            if parse_email(str(i["Email"])) is not None
        ]
