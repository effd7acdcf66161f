from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.cleanup.ledger import Outcome, OwnershipError
from harness.cleanup.sweeper import plan, render
from harness.kinds import Found, Kind
from harness.kinds.lease import LeaseInfo
from harness.namespace import Namespace, RunId
from harness.safety.guards import Owner, guarded_batch_delete

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def ns(hours_ago: float) -> Namespace:
    return Namespace(RunId.generate(NOW - timedelta(hours=hours_ago)), "gw0")


class StubKind(Kind):
    """Pure-logic stand-in: returns fixed items, records deletes."""

    name = "stub"

    def __init__(self, items: list[Found]) -> None:
        self.items = items
        self.deleted: list[dict[str, Any]] = []
        self.markers = {i.ids["key"]: i.marker for i in items}

    def find(self, prefix: str) -> list[Found]:
        return [i for i in self.items if i.marker.startswith(prefix)]

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        return self.markers.get(ids["key"])

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        raise NotImplementedError

    def delete_many(self, ids: list[dict[str, Any]]) -> int:
        self.deleted.extend(ids)
        return len(ids)


def item(namespace: Namespace | str, key: int) -> Found:
    marker = namespace.email() if isinstance(namespace, Namespace) else namespace
    return Found("stub", {"key": key}, f"item {key}", marker=marker)


def test_plan_splits_dead_alive_and_young_runs() -> None:
    dead, alive, young = ns(5), ns(6), ns(0.2)
    kind = StubKind([item(dead, 1), item(dead, 2), item(alive, 3), item(young, 4)])
    lease = LeaseInfo(str(alive.run), f"{alive.run}-lease", "h", 1, NOW.timestamp() + 60)
    sweep = plan(
        {"stub": kind}, older_than=3600, alive={str(alive.run): lease}, now=NOW.timestamp()
    )
    assert list(sweep.to_delete) == [str(dead.run)]
    assert sweep.item_count == 2
    assert list(sweep.alive) == [str(alive.run)] and list(sweep.too_young) == [str(young.run)]
    text = render(sweep, dry_run=True)
    assert "WOULD DELETE" in text and "2 stub" in text and "total: 2 item(s) in 1 run(s)" in text


def test_a_harness_shaped_foreign_item_stays_out_of_the_plan() -> None:
    """``itest-…@gmail.com`` parses as a namespace, but a harness-shaped address on a real
    domain is someone's: the gate refuses it, so the plan lists it apart and the rest of the
    sweep goes ahead (one such item must not block every delete of its kind)."""
    dead = ns(5)
    lookalike = f"{ns(9).name('x')}@gmail.com"
    kind = StubKind([item(dead, 1), item(lookalike, 2)])
    sweep = plan({"stub": kind}, older_than=3600, alive={}, now=NOW.timestamp())
    assert sweep.item_count == 1 and [f.marker for f in sweep.foreign] == [lookalike]
    assert "not harness data (fails the ownership gate): 1 item(s)" in render(sweep, dry_run=True)


def test_batch_delete_refuses_an_item_without_a_namespace() -> None:
    kind = StubKind([])
    good = item(ns(5), 1)
    foreign = Found("stub", {"key": 2}, "someone's item", marker="alice@example.com")
    with pytest.raises(OwnershipError, match="carries no harness namespace"):
        guarded_batch_delete({"stub": kind}, Owner(run=None), [good, foreign])
    assert kind.deleted == []  # one refusal stops the whole batch before any delete


def test_lease_liveness_rules() -> None:
    now = NOW.timestamp()
    lease = LeaseInfo("r", "r-lease", "this-host", 42, now + 60)
    assert lease.alive(now, "this-host", lambda pid: True)
    assert not lease.alive(now, "this-host", lambda pid: False)  # local process gone: dead
    assert lease.alive(now, "other-host", lambda pid: False)  # remote: trust the lease
    assert not LeaseInfo("r", "r-lease", "other-host", 42, now - 1).alive(
        now, "this-host", lambda pid: True
    )
