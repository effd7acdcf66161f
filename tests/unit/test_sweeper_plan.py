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


# -- execution and rendering -----------------------------------------------------------------


def test_execute_deletes_kind_by_kind_in_sweep_order_and_reports_progress() -> None:
    from harness.cleanup.sweeper import execute
    from tests.unit.stubs import DictKind

    users, leases = DictKind("user", sweep_order=10), DictKind("lease", sweep_order=90)
    dead = ns(5)
    leases.add("l", f"{dead.run}-lease-{dead.worker}")
    users.add("u1", dead.email("a"))
    users.add("u2", dead.email("b"))
    order: list[str] = []
    for kind in (users, leases):
        original = kind.delete_many

        def delete_many(ids: list[dict[str, Any]], _kind: Any = kind, _orig: Any = original) -> int:
            order.append(_kind.name)
            return int(_orig(ids))

        kind.delete_many = delete_many  # type: ignore[method-assign]
    kinds = {"lease": leases, "user": users}
    sweep = plan(kinds, older_than=3600, alive={}, now=NOW.timestamp())
    messages: list[str] = []
    counts = execute(kinds, sweep, progress=messages.append)
    assert counts == {"user": 2, "lease": 1}
    assert order == ["user", "lease"]
    assert messages == ["sweeping 2 user item(s)…", "sweeping 1 lease item(s)…"]
    assert users.store == {} and leases.store == {}


def test_the_sweeper_path_refuses_a_foreign_item_even_if_a_kind_finds_it() -> None:
    """A kind whose find answers an item under a harness marker whose ids (what would be
    deleted) carry someone else's: the plan keeps it out (listed as not harness data), and
    the batch delete refuses it before anything is deleted if it is handed one anyway."""
    from harness.cleanup.sweeper import execute
    from tests.unit.stubs import DictKind

    kind = DictKind("user")
    dead = ns(5)
    kind.add("ours", dead.email("a"))
    lying = Found("user", {"key": "x", "marker": "alice@example.com"}, "alice", dead.email("b"))
    kind.find = lambda prefix: [kind.found("ours"), lying]  # type: ignore[method-assign]
    sweep = plan({"user": kind}, older_than=3600, alive={}, now=NOW.timestamp())
    assert sweep.item_count == 1 and sweep.foreign == [lying]
    assert "not harness data (fails the ownership gate): 1 item(s)" in render(sweep, dry_run=True)
    next(iter(sweep.to_delete.values())).items.append(lying)  # a plan that let it through
    with pytest.raises(OwnershipError, match="carries no harness namespace"):
        execute({"user": kind}, sweep)
    assert kind.batches == [] and "ours" in kind.store


def test_items_without_a_namespace_are_never_planned() -> None:
    kind = StubKind([item("itest-not-a-namespace", 1), item(ns(5), 2)])
    sweep = plan({"stub": kind}, older_than=0, alive={}, now=NOW.timestamp())
    assert [i.ids["key"] for i in sweep.unparsable] == [1] and sweep.item_count == 1
    text = render(sweep, dry_run=False)
    assert "DELETING" in text and "skipped, no parsable namespace: 1 item(s)" in text


def test_the_age_limit_is_a_strict_boundary() -> None:
    run = ns(1)  # exactly one hour old
    kind = StubKind([item(run, 1)])
    now = NOW.timestamp()
    assert list(plan({"s": kind}, older_than=3600, alive={}, now=now).to_delete) == [str(run.run)]
    assert list(plan({"s": kind}, older_than=3601, alive={}, now=now).too_young) == [str(run.run)]
    fresh = Namespace(RunId.generate(), "gw0")
    young = plan({"s": StubKind([item(fresh, 1)])}, older_than=60, alive={})
    assert list(young.too_young) and not young.to_delete  # `now` defaults to the clock


def test_render_lists_runs_ages_and_skips() -> None:
    from harness.cleanup.sweeper import RunLeftovers, SweepPlan, _age

    assert [_age(s) for s in (59, 3599, 3600, 86399, 86400, 3 * 86400)] == [
        "1m",
        "60m",
        "1.0h",
        "24.0h",
        "1.0d",
        "3.0d",
    ]
    empty = render(SweepPlan(), dry_run=True)
    assert empty.splitlines() == [
        f"{'RUN':<28} {'AGE':>8}  WOULD DELETE",
        "(nothing to sweep)",
        "total: 0 item(s) in 0 run(s)",
    ]
    young = ns(0.5)
    run = RunLeftovers(young.run, [item(young, 1), item(young, 2)])
    assert run.counts() == {"stub": 2} and run.age > 0
    sweep = SweepPlan(alive={"a": run}, too_young={"b": run, "c": run})
    lines = render(sweep, dry_run=True).splitlines()
    assert "skipped, alive (lease held): 1 run(s), 2 item(s)" in lines
    assert "skipped, too young: 2 run(s), 4 item(s)" in lines
    dead = ns(30)
    sweep = SweepPlan(to_delete={str(dead.run): RunLeftovers(dead.run, [item(dead, 1)])})
    row = render(sweep, dry_run=False).splitlines()[1]
    assert row.startswith(f"{dead.run!s:<28} ") and row.endswith("  1 stub")


def test_ages_round_at_the_units_boundaries() -> None:
    from harness.cleanup.sweeper import _age

    # 1.05 of a unit shows as 1.1: a divisor off by one second would show 1.0
    assert (_age(3780), _age(90720)) == ("1.1h", "1.1d")
    assert _age(90) == "2m"


def test_the_plan_lists_a_runs_items_in_sweep_order() -> None:
    from tests.unit.stubs import DictKind

    dead = ns(5)
    users, leases = DictKind("user", sweep_order=10), DictKind("lease", sweep_order=90)
    leases.add("l", f"{dead}-lease")
    users.add("u", dead.email("a"))
    sweep = plan({"lease": leases, "user": users}, older_than=60, alive={}, now=NOW.timestamp())
    assert [i.kind for i in sweep.to_delete[str(dead.run)].items] == ["user", "lease"]


def test_render_headers_and_counts_exactly() -> None:
    from harness.cleanup.sweeper import RunLeftovers, SweepPlan

    dead = ns(30)
    items = [item(dead, 1), Found("lease", {"key": 2}, "l", dead.name()), item(dead, 3)]
    sweep = SweepPlan(to_delete={str(dead.run): RunLeftovers(dead.run, items)})
    lines = render(sweep, dry_run=False).splitlines()
    assert lines[0] == f"{'RUN':<28} {'AGE':>8}  DELETING"
    assert lines[1].endswith("  1 lease, 2 stub")
