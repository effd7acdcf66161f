"""The ``lease`` kind: the item that tells a sweeper a run is still alive.

A run's controller writes one lease item into the token table (the one table the harness
already writes to directly): ``Uid`` derived from the run id, ``HarnessNamespace`` =
``<run id>-lease``, ``HarnessLease`` = ``host:pid`` and ``TimeToLive`` = when the lease lapses
(so DynamoDB's TTL removes a dead run's lease by itself). It never creates a table, topic or
queue. The holder refreshes it while the run lives and deletes it when the run ends.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from harness.cleanup.ledger import Outcome
from harness.kinds import Found, Kind
from harness.kinds.dynamo import batch_delete, is_condition_failed, scan_prefix
from harness.kinds.token import LEASE, MARKER
from harness.namespace import find_namespace
from harness.safety.guards import Owner, OwnershipError


def lease_uid(marker: str) -> int:
    return int(hashlib.sha256(f"lease:{marker}".encode()).hexdigest()[:13], 16)


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

    def _table(self) -> Any:
        return self.aws.table(self.profile.tokens_table)

    def write(self, marker: str, duration: float) -> None:
        """Take or refresh the lease; never over an item that is not this run's lease."""
        item = {
            "Uid": lease_uid(marker),
            "Token": "lease-" + secrets.token_urlsafe(16),
            "TimeToLive": int(time.time() + duration),
            MARKER: marker,
            LEASE: f"{socket.gethostname()}:{os.getpid()}",
        }
        try:
            self._table().put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(Uid) OR #m = :m",
                ExpressionAttributeNames={"#m": MARKER},
                ExpressionAttributeValues={":m": marker},
            )
        except ClientError as error:
            if is_condition_failed(error):
                raise OwnershipError(
                    f"the lease slot {marker} holds an item this run did not write"
                ) from None
            raise

    def delete(self, ids: Mapping[str, Any], owner: Owner) -> Outcome:
        marker = str(ids["marker"])
        owner.marker(marker, f"lease {marker}")
        try:
            self._table().delete_item(
                Key={"Uid": lease_uid(marker)},
                ConditionExpression="#m = :m",
                ExpressionAttributeNames={"#m": MARKER},
                ExpressionAttributeValues={":m": marker},
            )
            return "deleted"
        except ClientError as error:
            if is_condition_failed(error):
                return "absent"
            raise

    def delete_many(self, ids: list[dict[str, Any]], owner: Owner) -> int:
        keys = []
        for one in ids:
            owner.marker(str(one["marker"]), "lease")
            keys.append({"Uid": lease_uid(str(one["marker"]))})
        return batch_delete(self._table(), keys)

    def leases(self, prefix: str = "itest-") -> list[LeaseInfo]:
        found = []
        for item in scan_prefix(self._table(), MARKER, prefix, f"{MARKER}, {LEASE}, TimeToLive"):
            namespace = find_namespace(str(item[MARKER]))
            if LEASE not in item or namespace is None or not namespace.worker.endswith("lease"):
                continue
            host, _, pid = str(item[LEASE]).rpartition(":")
            found.append(
                LeaseInfo(
                    run_id=str(namespace.run),
                    marker=str(item[MARKER]),
                    host=host,
                    pid=int(pid or 0),
                    expires_at=float(item.get("TimeToLive", 0)),
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
