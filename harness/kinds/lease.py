"""The ``lease`` kind: the item that tells a sweeper a run is still alive.

A run's controller writes one item into the profile's ``lease_table`` — a table the
environment offers test runners (key ``Marker`` S, TTL on ``ExpiresAt``), never a table the
service reads: ``Marker`` = ``<run id>-lease`` (``<run id>-s01lease`` for a CI shard),
``Holder`` = ``host:pid``, ``Boot`` and ``PidNs`` = the holder's kernel boot id and pid
namespace (:mod:`harness.host`), and ``ExpiresAt`` = when the lease lapses (so DynamoDB's TTL
removes a dead run's lease by itself). Without a ``lease_table`` the kind is off: liveness is
then local only (:mod:`harness.cleanup.liveness`) and the sweeper falls back on the age rule.
The holder refreshes it while the run lives and deletes it when the run ends; a lapsed lease
may be taken over. Whether a lease means "alive" is decided by the liveness authority, not
here: this module only stores and reads the items.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from harness.cleanup.ledger import OwnershipError
from harness.host import this_machine
from harness.kinds.base import Found, Kind, Outcome
from harness.kinds.dynamo import batch_delete, is_condition_failed, scan_prefix
from harness.namespace import find_namespace

if TYPE_CHECKING:
    from harness.config import Profile

KEY = "Marker"
HOLDER = "Holder"
EXPIRES = "ExpiresAt"
BOOT = "Boot"
PIDNS = "PidNs"
#: A lease is taken when there is none, refreshed by its holder, taken over once lapsed.
TAKE_WHEN = "attribute_not_exists(#k) OR #h = :h OR #e < :now"


def own_holder() -> str:
    """How this process signs the leases it holds: ``host:pid``."""
    return f"{this_machine().host}:{os.getpid()}"


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
    #: The holder's kernel boot id and pid namespace ("" and 0 for leases written before).
    boot: str = ""
    pidns: int = 0

    @property
    def holder(self) -> str:
        return f"{self.host}:{self.pid}"


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
        """Take or refresh the lease; never over another holder's lease that has not lapsed."""
        machine = this_machine()
        now = int(time.time())
        item = {
            KEY: marker,
            HOLDER: own_holder(),
            BOOT: machine.boot,
            PIDNS: machine.pidns,
            EXPIRES: now + int(duration),
        }
        try:
            self._table().put_item(
                Item=item,
                ConditionExpression=TAKE_WHEN,
                ExpressionAttributeNames={"#k": KEY, "#h": HOLDER, "#e": EXPIRES},
                ExpressionAttributeValues={":h": item[HOLDER], ":now": now},
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
        """Delete a lease; with ``holder`` in the ids, only while that holder still has it
        (recovery removes a dead holder's lease, never one a new run has taken over)."""
        marker = str(ids["marker"])
        condition, names, values = "attribute_exists(#k)", {"#k": KEY}, {}
        if ids.get("holder"):
            # pragma: no mutate start (equivalent: DynamoDB's keywords ignore case)
            condition += " AND #h = :h"
            # pragma: no mutate end
            names["#h"], values[":h"] = HOLDER, str(ids["holder"])
        try:
            self._table().delete_item(
                Key={KEY: marker},
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
            return "deleted"
        except ClientError as error:
            if is_condition_failed(error):
                return "absent"
            raise

    def delete_many(self, ids: list[dict[str, Any]]) -> int:
        return batch_delete(self._table(), [{KEY: str(one["marker"])} for one in ids])

    def lease(self, marker: str) -> LeaseInfo | None:
        """One lease by its marker (a consistent GetItem), or None when there is none."""
        # pragma: no mutate start (equivalent here: the emulator's reads are all consistent)
        item = self._table().get_item(Key={KEY: marker}, ConsistentRead=True).get("Item")
        # pragma: no mutate end
        return self._info(item) if item is not None else None

    def _info(self, item: Mapping[str, Any]) -> LeaseInfo | None:
        namespace = find_namespace(str(item[KEY]))
        if namespace is None or not namespace.worker.endswith("lease"):
            return None
        host, _, pid = str(item.get(HOLDER, "")).rpartition(":")
        return LeaseInfo(
            run_id=str(namespace.run),
            marker=str(item[KEY]),
            host=host,
            pid=int(pid or 0),
            expires_at=float(item.get(EXPIRES, 0)),
            boot=str(item.get(BOOT, "")),
            pidns=int(item.get(PIDNS) or 0),
        )

    def leases(self, prefix: str = "itest-") -> list[LeaseInfo]:
        found = []
        names = {"#k": KEY, "#h": HOLDER, "#e": EXPIRES, "#b": BOOT, "#p": PIDNS}
        for item in scan_prefix(self._table(), KEY, prefix, "#k, #h, #e, #b, #p", names=names):
            info = self._info(item)
            if info is not None:
                found.append(info)
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
