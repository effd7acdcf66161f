"""The ``lease`` kind: the item that tells a sweeper a run is still alive.

A run's controller writes one item into the profile's ``lease_table`` — a table the
environment offers test runners (key ``Marker`` S, TTL on ``ExpiresAt``), never a table the
service reads: ``Marker`` = ``<run id>-lease`` (``<run id>-s01lease`` for a CI shard),
``Holder`` = ``host:pid`` and ``ExpiresAt`` = when the lease lapses (so DynamoDB's TTL removes
a dead run's lease by itself). Without a ``lease_table`` the kind is off: leases are local
(the run's journal folder names its process) and the sweeper falls back on the age rule.
The holder refreshes it while the run lives and deletes it when the run ends.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from harness.cleanup.ledger import OwnershipError
from harness.kinds.base import Found, Kind, Outcome
from harness.kinds.dynamo import batch_delete, is_condition_failed, scan_prefix
from harness.namespace import find_namespace

if TYPE_CHECKING:
    from harness.config import Profile

KEY = "Marker"
HOLDER = "Holder"
EXPIRES = "ExpiresAt"


def lease_marker(run_id: str, shard: str = "") -> str:
    """``<run id>-lease``, or ``<run id>-s01lease`` for one CI shard of a run."""
    return f"{run_id}-{shard}lease"


@dataclass(frozen=True)
class LeaseInfo:
    run_id: str
    marker: str
    host: str
    pid: int
    expires_at: float

    def alive(self, now: float, this_host: str, pid_alive: Any) -> bool:
        """Lapsed = dead; on this machine, a gone process is dead at once."""
        if self.expires_at <= now:
            return False
        return not (self.host == this_host and not pid_alive(self.pid))


class LeaseKind(Kind):
    name = "lease"
    sweep_order = 90
    find_is_cheap = False

    @classmethod
    def enabled(cls, profile: Profile) -> bool:
        return bool(profile.lease_table)

    def _table(self) -> Any:
        return self.aws.table(self.profile.lease_table)

    def write(self, marker: str, duration: float) -> None:
        """Take or refresh the lease; never over an item that is not this run's lease."""
        item = {
            KEY: marker,
            HOLDER: f"{socket.gethostname()}:{os.getpid()}",
            EXPIRES: int(time.time() + duration),
        }
        try:
            self._table().put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(#k) OR #h = :h",
                ExpressionAttributeNames={"#k": KEY, "#h": HOLDER},
                ExpressionAttributeValues={":h": item[HOLDER]},
            )
        except ClientError as error:
            if is_condition_failed(error):
                raise OwnershipError(
                    f"the lease {marker} is held by another process; not taking it over"
                ) from None
            raise

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        marker = ids.get("marker")
        return str(marker) if marker else None

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        marker = str(ids["marker"])
        try:
            self._table().delete_item(
                Key={KEY: marker},
                ConditionExpression="attribute_exists(#k)",
                ExpressionAttributeNames={"#k": KEY},
            )
            return "deleted"
        except ClientError as error:
            if is_condition_failed(error):
                return "absent"
            raise

    def delete_many(self, ids: list[dict[str, Any]]) -> int:
        return batch_delete(self._table(), [{KEY: str(one["marker"])} for one in ids])

    def leases(self, prefix: str = "itest-") -> list[LeaseInfo]:
        found = []
        names = {"#k": KEY, "#h": HOLDER, "#e": EXPIRES}
        for item in scan_prefix(self._table(), KEY, prefix, "#k, #h, #e", names=names):
            namespace = find_namespace(str(item[KEY]))
            if namespace is None or not namespace.worker.endswith("lease"):
                continue
            host, _, pid = str(item.get(HOLDER, "")).rpartition(":")
            found.append(
                LeaseInfo(
                    run_id=str(namespace.run),
                    marker=str(item[KEY]),
                    host=host,
                    pid=int(pid or 0),
                    expires_at=float(item.get(EXPIRES, 0)),
                )
            )
        return found

    def find(self, prefix: str) -> list[Found]:
        return [
            Found(
                self.name,
                {"marker": lease.marker},
                f"lease {lease.marker} held by {lease.host}:{lease.pid}",
                marker=lease.marker,
            )
            for lease in self.leases(prefix)
        ]
