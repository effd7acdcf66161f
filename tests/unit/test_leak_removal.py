"""Removing a leak removes what belongs to it (harness/cleanup/residue.py, issue 20 item 4):
an account a test made without the ledger goes with the welcome note the service wrote for it
— derived by key, or related by marker — each through the gate; also a note written after the
namespace-wide look began, and one written within ``settle`` of the account's removal. Bounded:
no scan of a table the look did not scan, no wait past ``settle``, no wait at all on a
protected target, which removes nothing. Stub kinds (tests/unit/stubs.py), a fake clock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import harness.cleanup.residue as residue
from harness.cleanup.journal import Resource
from harness.cleanup.residue import ResidueResult, belonging_of, check, kept_matcher
from harness.kinds.base import Found, Outcome
from harness.safety.guards import Owner
from tests.unit.stubs import DictKind, ns

OURS = ns(1, "aaaa")
OTHER = ns(1, "bbbb")
ACCOUNT = OURS.name("ann")


class Clock:
    """Stands in for the module's ``time``: sleeping moves the clock on, nothing waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.on_sleep: list[Any] = []  # callables run after each sleep: the service's work

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        for work in self.on_sleep:
            work(self.now)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(residue, "time", fake)
    return fake


class Notes(DictKind):
    """Welcome notes: related to an account by marker (``…-ann`` or ``…-ann-welcome``)."""

    def __init__(self, name: str = "note") -> None:
        super().__init__(name, sweep_order=60)
        self.related_asked: list[str] = []

    def related(self, owner_marker: str) -> list[Found]:
        self.related_asked.append(owner_marker)
        return [self.found(k) for k, m in sorted(self.store.items()) if m.startswith(owner_marker)]


def run(kinds: Mapping[str, DictKind], **kwargs: Any) -> ResidueResult:
    kwargs.setdefault("settle", 0)
    return check(kinds, str(OURS.run), Owner(run=OURS.run), **kwargs)


def keys(found: list[Found]) -> list[str]:
    return [str(f.ids["key"]) for f in found]


def test_a_leaks_related_items_are_leaked_with_it_and_removed_after_it() -> None:
    """Found by the look or not (a note written after the look began), the account's note
    goes with it; the look-alike's (``…-ann1``) and another run's stay."""
    accounts, notes = DictKind("account"), Notes()
    accounts.add("ann", ACCOUNT)
    notes.add("lookalike", OURS.name("ann1") + "-welcome")
    notes.add("theirs", OTHER.name("ann") + "-welcome")
    notes.__dict__["find_is_cheap"] = (
        False  # its table is too big to scan (no DescribeTable: not listed)
    )
    notes.__dict__["related_by_key"] = True  # but it answers by key
    notes.add("welcome", ACCOUNT + "-welcome")
    result = run({"account": accounts, "note": notes}, scan_limit=0)
    assert keys(result.leaked) == ["ann", "welcome"]
    assert keys(result.cleaned) == ["ann", "welcome"]
    assert accounts.deleted == [{"key": "ann", "marker": ACCOUNT}]  # the owner first
    assert keys([notes.found(k) for k in notes.store]) == ["lookalike", "theirs"]
    assert notes.related_asked == [ACCOUNT]
    assert result.belonging == [] and result.uncleaned == []


def test_what_derives_from_a_leak_by_key_goes_with_it() -> None:
    accounts, notes = DictKind("account"), DictKind("note")
    accounts.add("ann", ACCOUNT)
    notes.__dict__["find_is_cheap"] = False  # never scanned: found by the account's key only
    accounts.derived_of["ann"] = [notes.add("n1", OURS.name("welcome"))]  # by key, any name
    result = run({"account": accounts, "note": notes}, scan_limit=0)
    assert keys(result.leaked) == ["ann", "n1"] and keys(result.cleaned) == ["ann", "n1"]
    assert notes.store == {}


def test_a_related_kind_that_must_scan_is_asked_only_when_the_look_scanned_its_table() -> None:
    """A run's cost never grows with a big table: a scanning kind the namespace-wide look
    skipped is not scanned for a leak's items either."""
    accounts, notes = DictKind("account"), Notes()
    accounts.add("ann", ACCOUNT)
    notes.__dict__["related_by_key"] = False
    notes.__dict__["find_is_cheap"] = False
    notes.add("welcome", ACCOUNT + "-welcome")
    skipped = run({"account": accounts, "note": notes}, scan_limit=0)
    assert keys(skipped.leaked) == ["ann"] and notes.related_asked == []
    assert "welcome" in notes.store
    accounts.add("ann", ACCOUNT)
    notes.__dict__["find_is_cheap"] = (
        True  # now the look searches it (and finds the note as a leak)
    )
    notes.store.clear()
    searched = run({"account": accounts, "note": notes})
    assert keys(searched.leaked) == ["ann"] and notes.related_asked == [ACCOUNT]


def test_a_note_written_while_the_leak_settles_is_found_and_removed(clock: Clock) -> None:
    """The service writes the welcome note 0.3 s after the look began (issue 20 item 4): the
    look missed it, the leak's removal takes it."""
    accounts, notes = DictKind("account"), Notes()
    accounts.add("ann", ACCOUNT)

    def service_writes(now: float) -> None:
        if now >= 100.3 and "ann" in accounts.store and "welcome" not in notes.store:
            notes.add("welcome", ACCOUNT + "-welcome")

    clock.on_sleep.append(service_writes)
    result = run({"account": accounts, "note": notes}, settle=1.0, interval=0.25)
    assert keys(result.leaked) == ["ann", "welcome"] and notes.store == {}
    assert keys(result.cleaned) == ["ann", "welcome"] and accounts.store == {}


def test_after_the_removal_it_looks_again_until_settle_has_passed_and_no_longer(
    clock: Clock,
) -> None:
    """A service that writes for the account after it is gone (an unconditional consumer):
    what it writes within ``settle`` of the removal is removed; what comes later is not
    waited for (the sweeper's). Each look asks once; nothing is deleted twice."""
    accounts, notes = DictKind("account"), Notes()
    accounts.add("ann", ACCOUNT)
    removed_at: list[float] = []
    written: list[str] = []

    def service_writes(now: float) -> None:
        if "ann" not in accounts.store and not removed_at:
            removed_at.append(now)
        for key, delay in (("late", 0.5), ("later", 5)):
            if removed_at and now >= removed_at[0] + delay and key not in written:
                written.append(key)
                notes.add(key, ACCOUNT + "-" + key)

    clock.on_sleep.append(service_writes)
    messages: list[str] = []
    result = run(
        {"account": accounts, "note": notes}, settle=1.0, interval=0.25, progress=messages.append
    )
    assert messages == [
        "residue check: 1 item(s) present, letting them settle (1s)",
        "residue check: 1 leaked item(s) removed; looking for what the service still writes "
        "for them (1s)",
    ]
    # the settle window (4 sleeps), then looks at 0, 0.25, … 1.0 s after the removal
    assert clock.sleeps == [0.25] * 8
    assert notes.related_asked == [ACCOUNT] * 5
    assert keys(result.leaked) == ["ann", "late"] and keys(result.cleaned) == ["ann", "late"]
    assert [d["key"] for d in notes.deleted] == ["late"]
    assert "later" not in notes.store  # not yet written: not waited for
    clock.sleeps.clear()
    assert run({"account": accounts, "note": notes}, settle=3.0).clean
    assert clock.sleeps == []  # a clean run waits for nothing after its check


def test_with_settle_zero_it_looks_once_right_after_the_removal(clock: Clock) -> None:
    accounts, notes = DictKind("account"), Notes()
    accounts.add("ann", ACCOUNT)
    notes.add("welcome", ACCOUNT + "-welcome")
    notes.__dict__["find_is_cheap"] = False
    notes.__dict__["related_by_key"] = True
    messages: list[str] = []
    result = run(
        {"account": accounts, "note": notes}, scan_limit=0, settle=0, progress=messages.append
    )
    assert clock.sleeps == [] and notes.related_asked == [ACCOUNT] and messages == []
    assert keys(result.cleaned) == ["ann", "welcome"]


def test_a_protected_target_lists_what_belongs_to_a_leak_and_removes_nothing(
    clock: Clock,
) -> None:
    accounts, notes = DictKind("account"), Notes()
    accounts.add("ann", ACCOUNT)
    notes.__dict__["find_is_cheap"] = False
    notes.add("welcome", ACCOUNT + "-welcome")
    result = run({"account": accounts, "note": notes}, scan_limit=0, remove=False, settle=1.0)
    assert keys(result.leaked) == ["ann", "welcome"]
    assert result.cleaned == [] and result.belonging == []
    assert accounts.deleted == [] and notes.deleted == []
    assert clock.sleeps == [0.25] * 4  # the settle window only: no looks after a removal
    assert notes.related_asked == [ACCOUNT]


def test_an_item_of_a_leak_the_gate_refuses_is_reported_once_and_left() -> None:
    """The account's name on a real mail domain belongs to it by name, but is someone's."""
    accounts, notes = DictKind("account"), Notes()
    accounts.add("ann", ACCOUNT)
    notes.__dict__["find_is_cheap"] = False
    notes.add("foreign", ACCOUNT + "@gmail.com")
    result = run({"account": accounts, "note": notes}, scan_limit=0)
    assert keys(result.leaked) == ["ann", "foreign"] and keys(result.cleaned) == ["ann"]
    [(item, why)] = result.uncleaned
    assert item.ids["key"] == "foreign" and why.startswith("OwnershipError: refusing")
    assert "foreign" in notes.store and notes.deleted == []


def test_an_item_of_a_leak_that_fails_to_delete_is_not_tried_again_each_look(
    clock: Clock,
) -> None:
    """Reported once among the failed removals (with a recorded resource's item that failed
    too), not deleted again at each look."""

    class Failing(Notes):
        def delete(self, ids: Mapping[str, Any]) -> Outcome:
            self.deleted.append(dict(ids))
            raise RuntimeError("throttled")

    accounts, notes = DictKind("account"), Failing()
    accounts.add("bob", OURS.name("bob"))
    bob = Resource(seq=1, kind="account", ids={"key": "bob", "marker": OURS.name("bob")})
    del accounts.store["bob"]  # cleaned by the ledger; its welcome note was not
    notes.add("bobs", OURS.name("bob") + "-welcome")
    accounts.add("ann", ACCOUNT)
    notes.__dict__["find_is_cheap"] = False
    notes.add("welcome", ACCOUNT + "-welcome")
    result = run({"account": accounts, "note": notes}, scan_limit=0, settle=0.5, recorded=[bob])
    assert notes.related_asked == [OURS.name("bob")] + [ACCOUNT] * 3
    assert [d["key"] for d in notes.deleted] == ["bobs", "welcome"]
    assert [(i.ids["key"], why) for i, why in result.uncleaned] == [
        ("bobs", "RuntimeError: throttled"),
        ("welcome", "RuntimeError: throttled"),
    ]
    assert keys(result.leaked) == ["ann", "welcome"] and result.belonging == []


def test_an_item_of_a_leak_kept_for_debugging_stays() -> None:
    accounts, notes = DictKind("account"), Notes()
    accounts.add("ann", ACCOUNT)
    notes.__dict__["find_is_cheap"] = False
    notes.add("welcome", ACCOUNT + "-welcome")
    notes.add("session", ACCOUNT + "-session")
    is_kept = kept_matcher([{"_marker": ACCOUNT + "-welcome"}])
    result = run({"account": accounts, "note": notes}, scan_limit=0, is_kept=is_kept)
    assert keys(result.leaked) == ["ann", "session"] and list(notes.store) == ["welcome"]


def test_belonging_of_asks_each_kind_once_for_all_its_items_and_skips_unknown_kinds() -> None:
    class Counting(DictKind):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.batches_asked: list[list[str]] = []

        def derived_many(self, ids: list[Mapping[str, Any]]) -> list[Found]:
            self.batches_asked.append([i["key"] for i in ids])
            return super().derived_many(ids)

    accounts, notes = Counting("account"), Notes()
    notes.__dict__["related_by_key"] = False
    a, b = accounts.add("a", OURS.name("a")), accounts.add("b", OURS.name("b"))
    accounts.derived_of["b"] = [notes.add("nb", "derived-of-b")]
    notes.add("na", OURS.name("a") + "-x")
    ghost = Found("ghost", {"key": "g"}, "ghost g", OURS.name("g"))
    kinds = {"account": accounts, "note": notes}
    assert keys(belonging_of(kinds, [a, ghost, b])) == ["nb"]  # the scanning kind: not asked
    assert accounts.batches_asked == [["a", "b"]] and notes.related_asked == []
    assert keys(belonging_of(kinds, [a, b], searched={"note"})) == ["nb", "na"]
    assert notes.related_asked == [OURS.name("a"), OURS.name("b")]


# -- the residue check's other uses of belonging (issue 21 item 3) ---------------------------------


def recorded(kind: DictKind, key: str) -> Resource:
    return Resource(seq=1, kind=kind.name, ids={"key": key, "marker": kind.store[key]})


def test_a_look_alikes_item_found_namespace_wide_is_a_leak_not_the_recorded_ones() -> None:
    accounts, notes = DictKind("account"), DictKind("note")
    accounts.add("ann", ACCOUNT)
    resource = recorded(accounts, "ann")
    del accounts.store["ann"]  # cleaned by the ledger
    notes.add("own", ACCOUNT + "-welcome")
    notes.add("lookalike", OURS.name("ann1") + "-welcome")
    result = run({"account": accounts, "note": notes}, recorded=[resource])
    assert keys(result.belonging) == ["own"]
    assert keys(result.leaked) == ["lookalike"]


def test_a_recorded_token_whose_marker_is_the_namespace_does_not_hide_the_workers_leaks() -> None:
    """A token's marker is the worker's namespace: every name made in it starts with it, yet
    none belongs to the token."""
    tokens, accounts = DictKind("token"), DictKind("account")
    tokens.add("t", str(OURS))
    resource = recorded(tokens, "t")
    del tokens.store["t"]
    accounts.add("leak", OURS.name("leak"))
    result = run({"token": tokens, "account": accounts}, recorded=[resource])
    assert keys(result.leaked) == ["leak"] and result.belonging == []


def test_a_related_answer_by_prefix_brings_no_look_alikes_item_by_key() -> None:
    accounts, notes = DictKind("account"), Notes()
    accounts.add("ann", ACCOUNT)
    resource = recorded(accounts, "ann")
    notes.add("own", ACCOUNT)
    notes.add("lookalike", OURS.name("ann1"))
    present, belonging = residue.look_by_key({"account": accounts, "note": notes}, [resource])
    assert keys(present) == ["ann"] and keys(belonging) == ["own"]


def test_kept_items_are_the_kept_resources_own_never_a_look_alikes() -> None:
    is_kept = kept_matcher([{"_marker": ACCOUNT}, {"_marker": None}, {"uid": 7}])

    def found(marker: str, **ids: Any) -> Found:
        return Found("note", ids, "note", marker)

    assert is_kept(found(ACCOUNT))
    assert is_kept(found(ACCOUNT + "-welcome"))
    assert is_kept(found(ACCOUNT.upper() + "@X"))
    assert not is_kept(found(OURS.name("ann1")))
    assert not is_kept(found(OURS.name("ann1") + "-welcome"))
    assert not is_kept(found("None"))  # a kept resource without a marker keeps no marker
    assert not is_kept(found(""))
    assert is_kept(found("anything", uid=7))
