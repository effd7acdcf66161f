from pathlib import Path
from typing import Any

import pytest

from harness.cleanup.journal import Journal, Resource, replay
from harness.cleanup.ledger import Ledger, Outcome, OwnershipError


class FakeStore:
    """The pure-logic stand-in for an environment: a dict of ids that exist."""

    def __init__(self) -> None:
        self.items: set[str] = set()
        self.deleted_order: list[str] = []
        self.failures: dict[str, int] = {}
        self.foreign: set[str] = set()

    def delete(self, resource: Resource) -> Outcome:
        key = resource.ids["key"]
        if key in self.foreign:
            raise OwnershipError(f"{key} is not ours")
        if self.failures.get(key, 0) > 0:
            self.failures[key] -= 1
            raise ConnectionError("transient")
        if key not in self.items:
            return "absent"
        self.items.remove(key)
        self.deleted_order.append(key)
        return "deleted"


def make(tmp_path: Path, store: FakeStore) -> Ledger:
    return Ledger(Journal(tmp_path / "gw0.jsonl"), store.delete, sleep=lambda _: None)


def create(ledger: Ledger, store: FakeStore, key: str, scope: str = "t") -> Resource:
    def do() -> dict[str, Any]:
        store.items.add(key)
        return {"made": True}

    return ledger.create("thing", {"key": key}, do, scope=scope)


def test_cleanup_is_lifo_and_scoped(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)
    for key in ("a", "b", "c"):
        create(ledger, store, key)
    create(ledger, store, "other", scope="u")
    result = ledger.cleanup("t")
    assert store.deleted_order == ["c", "b", "a"]
    assert [r.ids["key"] for r in result.deleted] == ["c", "b", "a"]
    assert store.items == {"other"}


def test_already_gone_is_done_and_cleanup_is_idempotent(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)
    create(ledger, store, "a")
    store.items.clear()  # the test deleted it itself
    assert [r.ids["key"] for r in ledger.cleanup().absent] == ["a"]
    assert ledger.cleanup().deleted == []  # nothing left to do


def test_transient_errors_are_retried_then_reported(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)
    create(ledger, store, "flaky")
    create(ledger, store, "broken")
    store.failures = {"flaky": 2, "broken": 99}
    result = ledger.cleanup()
    assert [r.ids["key"] for r in result.deleted] == ["flaky"]
    assert [r.ids["key"] for r in result.failed] == ["broken"]
    assert "transient" in result.failed[0].error
    assert not result.ok


def test_ownership_refusal_is_not_retried(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)
    create(ledger, store, "x")
    store.foreign.add("x")
    result = ledger.cleanup()
    assert [r.ids["key"] for r in result.refused] == ["x"]
    assert "x" in store.items


def test_intent_is_journaled_before_the_create(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)

    def crash() -> dict[str, Any]:
        # what another process would see at this instant: the intent, already on disk
        seen = replay(tmp_path / "gw0.jsonl")
        assert [(r.kind, r.ids, r.state) for r in seen] == [("thing", {"key": "k"}, "pending")]
        raise TimeoutError("the answer was lost")

    with pytest.raises(TimeoutError):
        ledger.create("thing", {"key": "k"}, crash)
    store.items.add("k")  # the server did act
    assert [r.ids["key"] for r in ledger.cleanup().deleted] == ["k"]


def test_replay_folds_states_and_survives_a_torn_line(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)
    create(ledger, store, "a")
    create(ledger, store, "b")
    ledger.journal.append("deleted", 1)
    with (tmp_path / "gw0.jsonl").open("a") as file:
        file.write('{"op": "intent", "seq": 3, "kind": "thi')  # killed mid-write
    states = {r.ids["key"]: r.state for r in replay(tmp_path / "gw0.jsonl")}
    assert states == {"a": "deleted", "b": "created"}


def test_keep_leaves_resources_and_journals_it(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)
    create(ledger, store, "a")
    assert [r.ids["key"] for r in ledger.keep("t")] == ["a"]
    assert ledger.cleanup().deleted == []
    assert [r.state for r in replay(tmp_path / "gw0.jsonl")] == ["kept"]
