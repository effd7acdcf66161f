"""The residue check (harness/cleanup/residue.py): how long it lets items settle and what it
re-checks meanwhile (a fake clock: no real waiting), which tables it may scan without a
DescribeTable of its own (preflight's counts), which related kinds it asks, and that it
deletes each item on its own. Stub kinds from tests/unit/stubs.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import harness.cleanup.residue as residue
from harness.cleanup.journal import Resource
from harness.cleanup.residue import ResidueResult, check, look_by_key, still_present
from harness.config import Profile
from harness.kinds.base import Found, Setting
from harness.safety.guards import Owner
from tests.unit.stubs import DictKind, ns

OURS = ns(1, "aaaa")


class Clock:
    """Stands in for the module's ``time``: sleeping moves the clock on, and nothing waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(residue, "time", fake)
    return fake


class Asked(DictKind):
    """Records the keys of every presence check (one ``exists_many`` each)."""

    def __init__(self, name: str = "thing") -> None:
        super().__init__(name)
        self.asked: list[list[str]] = []
        self.vanish_after: dict[str, int] = {}  # key -> checks it is still seen by

    def exists_many(self, ids: list[Mapping[str, Any]]) -> list[Found]:
        self.asked.append([i["key"] for i in ids])
        for key in [i["key"] for i in ids]:
            if key in self.vanish_after:
                self.vanish_after[key] -= 1
                if self.vanish_after[key] < 0:
                    self.store.pop(key, None)  # an asynchronous delete landed
        return super().exists_many(ids)


def run(kinds: Mapping[str, DictKind], **kwargs: Any) -> ResidueResult:
    return check(kinds, str(OURS.run), Owner(run=OURS.run), **kwargs)


def test_by_default_a_present_item_is_rechecked_every_quarter_second_for_three_seconds(
    clock: Clock,
) -> None:
    kind = Asked()
    kind.add("stuck", OURS.name("stuck"))
    messages: list[str] = []
    result = run({"thing": kind}, progress=messages.append)
    # 3 s, and no look at the deadline itself; then, the leak removed, 3 s more of looks for
    # what the service still writes for it (see test_leak_removal.py)
    assert clock.sleeps == [0.25] * 12 + [0.25] * 12
    assert len(kind.asked) == 12
    assert messages == [
        "residue check: 1 item(s) present, letting them settle (3s)",
        "residue check: 1 leaked item(s) removed; looking for what the service still writes "
        "for them (3s)",
    ]
    assert [f.ids["key"] for f in result.leaked] == ["stuck"] and kind.store == {}


def test_the_settle_window_ends_at_its_deadline(clock: Clock) -> None:
    kind = Asked()
    kind.add("stuck", OURS.name("stuck"))
    run({"thing": kind}, settle=1.0, interval=0.5, remove=False)
    assert clock.sleeps == [0.5, 0.5] and clock.now == 101.0
    assert run({"thing": kind}, settle=0).leaked
    assert clock.sleeps == [0.5, 0.5]  # settle 0: no wait at all


def test_the_settle_loop_rechecks_only_what_is_still_present(clock: Clock) -> None:
    kind = Asked()
    kind.add("a-slow", OURS.name("a"))
    kind.add("b-stuck", OURS.name("b"))
    kind.vanish_after["a-slow"] = 0  # gone by its first re-check
    messages: list[str] = []
    result = run({"thing": kind}, settle=1.0, interval=0.25, progress=messages.append)
    assert kind.asked == [["a-slow", "b-stuck"], ["b-stuck"], ["b-stuck"], ["b-stuck"]]
    assert [f.ids["key"] for f in result.leaked] == ["b-stuck"]
    assert messages == [
        "residue check: 2 item(s) present, letting them settle (1s)",
        "residue check: 1 item(s) present, letting them settle (1s)",
        "residue check: 1 leaked item(s) removed; looking for what the service still writes "
        "for them (1s)",
    ]


def test_items_of_every_kind_stay_present_through_the_settle_loop(clock: Clock) -> None:
    users, notes = Asked("user"), Asked("note")
    users.add("u", OURS.name("u"))
    notes.add("n", OURS.name("n"))
    result = run({"user": users, "note": notes}, settle=0.5, interval=0.25)
    assert sorted(f.ids["key"] for f in result.leaked) == ["n", "u"]
    assert users.asked == [["u"]] * 2 and notes.asked == [["n"]] * 2
    assert users.store == {} and notes.store == {}


def test_still_present_answers_for_each_kind_in_the_order_given() -> None:
    users, notes = DictKind("user"), DictKind("note")
    u, gone, n = users.add("u", "x"), users.add("gone", "x"), notes.add("n", "y")
    del users.store["gone"]
    assert still_present({"user": users, "note": notes}, [n, gone, u]) == [n, u]


# -- the size rule: preflight's counts spare the DescribeTable ---------------------------------


class Describe:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.asked: list[str] = []

    def describe_table(self, TableName: str) -> dict[str, Any]:
        self.asked.append(TableName)
        return {"Table": {"ItemCount": self.counts[TableName]}}


class Scanning(DictKind):
    """A kind whose ``find`` scans the table named by its setting ``table``."""

    find_is_cheap = False
    settings = (Setting("table", table=True),)

    def __init__(self, name: str, table: str, aws: Any) -> None:
        super().__init__(name)
        self.profile = Profile(name="sandbox", settings={"table": table})
        self.aws = aws


class Aws:
    def __init__(self, **counts: int) -> None:
        self.dynamodb_client = Describe(counts)


def test_tables_preflight_described_are_not_described_again() -> None:
    aws = Aws(notes=5)
    kind = Scanning("note", "notes", aws)
    kind.add("leak", OURS.name("x"))
    result = run({"note": kind}, settle=0, sizes={"notes": 5})
    assert [f.ids["key"] for f in result.leaked] == ["leak"]
    assert aws.dynamodb_client.asked == []


def test_a_table_preflight_counted_as_big_is_skipped_without_a_call() -> None:
    aws = Aws(notes=5)
    kind = Scanning("note", "notes", aws)
    kind.add("leak", OURS.name("x"))
    messages: list[str] = []
    result = run({"note": kind}, settle=0, sizes={"notes": 5000}, progress=messages.append)
    assert result.clean and result.skipped_tables == [("notes", 5000)] and "leak" in kind.store
    assert aws.dynamodb_client.asked == []
    assert messages[0].startswith("residue check: table notes holds ~5000 items (> 1000);")


def test_a_table_two_kinds_scan_is_described_once() -> None:
    aws = Aws(notes=3)
    first, second = Scanning("note", "notes", aws), Scanning("memo", "notes", aws)
    second.add("leak", OURS.name("x"))
    result = run({"note": first, "memo": second}, settle=0)
    assert [f.ids["key"] for f in result.leaked] == ["leak"]
    assert aws.dynamodb_client.asked == ["notes"]


# -- which related kinds are asked ----------------------------------------------------------


class Related(DictKind):
    """Records every ``related`` question (the owner markers asked about)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.related_asked: list[str] = []

    def related(self, owner_marker: str) -> list[Found]:
        self.related_asked.append(owner_marker)
        return super().related(owner_marker)


class ScanOnly(Related):
    """A kind that can tell what is related to a resource only by scanning its table."""

    related_by_key = False


def recorded_user() -> tuple[DictKind, ScanOnly, Resource]:
    users, sessions = DictKind("user"), ScanOnly("session")
    users.add("u", OURS.name("u"))
    session = sessions.add("s", OURS.name("u") + "-session")
    sessions.related_of[OURS.name("u")] = [session]
    resource = Resource(seq=1, kind="user", ids={"key": "u", "marker": OURS.name("u")})
    return users, sessions, resource


def test_a_kind_that_must_scan_is_not_asked_what_is_related_by_default() -> None:
    users, sessions, resource = recorded_user()
    present, belonging = look_by_key({"user": users, "session": sessions}, [resource])
    assert [f.ids["key"] for f in present] == ["u"] and belonging == []
    assert sessions.related_asked == []


def test_with_related_by_scan_a_scanning_kind_is_asked_too() -> None:
    users, sessions, resource = recorded_user()
    kinds = {"user": users, "session": sessions}
    _, belonging = look_by_key(kinds, [resource], related_by_scan=True)
    assert [f.ids["key"] for f in belonging] == ["s"]
    assert sessions.related_asked == [OURS.name("u")]


# -- removal: each item on its own ------------------------------------------------------------


def test_removing_a_leak_leaves_a_kept_item_related_to_it() -> None:
    """The leak's own delete does not cascade: what relates to it is looked up and listed
    apart, and an item kept for debugging (--keep-on-failure) stays."""
    users, notes = DictKind("user"), Related("note")
    users.add("u", OURS.name("u"))
    welcome = notes.add("w", OURS.name("u") + "-welcome")
    notes.related_of[OURS.name("u")] = [welcome]
    is_kept = residue.kept_matcher([{"_marker": OURS.name("u") + "-welcome"}])
    result = run({"user": users, "note": notes}, settle=0, is_kept=is_kept)
    assert [f.ids["key"] for f in result.cleaned] == ["u"] and users.store == {}
    assert [f.ids["key"] for f in result.kept] == ["w"] and "w" in notes.store
    assert notes.related_asked == [OURS.name("u")] and notes.deleted == []
