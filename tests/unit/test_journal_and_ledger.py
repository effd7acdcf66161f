from pathlib import Path
from typing import Any

import pytest

from harness.cleanup.journal import Journal, Resource, replay
from harness.cleanup.ledger import JournalError, Ledger, Outcome, OwnershipError


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


def lines(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_journal_records_each_step_with_its_data(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)
    create(ledger, store, "a", scope="s")
    ledger.cleanup()
    entries = lines(tmp_path / "gw0.jsonl")
    assert [(e["op"], e["seq"]) for e in entries] == [("intent", 1), ("created", 1), ("deleted", 1)]
    assert entries[0]["kind"] == "thing" and entries[0]["ids"] == {"key": "a"}
    assert entries[0]["scope"] == "s" and entries[1]["ids"] == {"made": True}
    assert "error" not in entries[2]
    assert all(isinstance(e["t"], float) for e in entries)
    assert ledger.stats.created == 1 and ledger.stats.cleaned == 1


def test_a_refusal_and_a_failure_are_journaled_with_their_reason(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)
    create(ledger, store, "mine")
    create(ledger, store, "theirs")
    store.foreign.add("theirs")
    store.failures["mine"] = 99
    result = ledger.cleanup()
    by_seq = {e["seq"]: e for e in lines(tmp_path / "gw0.jsonl") if e["op"] == "failed"}
    assert by_seq[2]["error"] == "theirs is not ours"
    assert by_seq[1]["error"] == "ConnectionError: transient"
    assert result.refused[0].error == "theirs is not ours"
    assert result.refused[0].state == "failed" and result.failed[0].state == "failed"
    assert ledger.stats.failed == 2 and ledger.stats.cleaned == 0
    assert ledger.live() == []  # settled: a second cleanup does not retry them


def test_retries_back_off_exponentially_and_stop_at_the_attempts(tmp_path: Path) -> None:
    store = FakeStore()
    slept: list[float] = []
    ledger = Ledger(
        Journal(tmp_path / "gw0.jsonl"), store.delete, attempts=3, backoff=0.5, sleep=slept.append
    )
    create(ledger, store, "broken")
    store.failures["broken"] = 99
    ledger.cleanup()
    assert slept == [0.5, 1.0]  # no sleep after the last attempt
    assert store.failures["broken"] == 96
    default = Ledger(Journal(tmp_path / "d.jsonl"), store.delete, sleep=slept.append)
    slept.clear()
    create(default, store, "flaky")
    store.failures["flaky"] = 3
    assert [r.ids["key"] for r in default.cleanup().deleted] == ["flaky"]
    assert slept == [0.2, 0.4, 0.8]


def test_keep_settles_and_counts_and_live_filters_by_scope(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)
    a = create(ledger, store, "a", scope="s1")
    b = create(ledger, store, "b", scope="s2")
    assert ledger.live() == [a, b] and ledger.live("s2") == [b] and ledger.live("zz") == []
    kept = ledger.keep("s1")
    assert kept == [a] and ledger.kept == [a] and a.state == "kept"
    assert ledger.stats.kept == 1 and ledger.live() == [b]
    assert b.state == "created"


def test_adopt_continues_the_sequence_after_the_highest_adopted(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)
    adopted = [Resource(seq=7, kind="thing", ids={"key": "x"}), Resource(3, "thing", {"key": "y"})]
    ledger.adopt(adopted)
    assert [r.seq for r in ledger.live()] == [3, 7]
    assert create(ledger, store, "z").seq == 8
    empty = make(tmp_path / "e", store)
    empty.adopt([])
    assert create(empty, store, "w").seq == 1


def test_cleanup_result_merge_and_ok() -> None:
    from harness.cleanup.ledger import CleanupResult

    one = Resource(1, "thing", {})
    left, right = CleanupResult(deleted=[one]), CleanupResult()
    for name in ("deleted", "absent", "failed", "refused", "kept"):
        getattr(right, name).append(Resource(2, name, {}))
    left.merge(right)
    assert [r.kind for r in left.deleted] == ["thing", "deleted"]
    assert [r.kind for r in left.absent + left.failed + left.refused + left.kept] == [
        "absent",
        "failed",
        "refused",
        "kept",
    ]
    assert CleanupResult(absent=[one], kept=[one]).ok
    assert not CleanupResult(failed=[one]).ok and not CleanupResult(refused=[one]).ok


def test_replay_reads_every_state_and_the_worker_from_the_file_name(tmp_path: Path) -> None:
    from harness.cleanup.journal import replay_run, run_dir

    directory = run_dir(tmp_path, "itest-20261127t172503-k3f9")
    journal = Journal(directory / "gw3.jsonl", fsync=True)
    for seq, op in enumerate(("created", "deleted", "failed", "kept", "pending"), 1):
        journal.append("intent", seq, kind="k", ids={"n": seq}, scope="sc")
        if op != "pending":
            journal.append(
                op, seq, ids={"extra": op}, **({"error": "why"} if op == "failed" else {})
            )
    journal.append("created", 99, ids={"orphan": True})  # no intent: ignored
    journal.append("bogus", 1)  # an unknown op changes nothing
    journal.close()
    found = replay(directory / "gw3.jsonl")
    assert [(r.seq, r.state) for r in found] == [
        (1, "created"),
        (2, "deleted"),
        (3, "failed"),
        (4, "kept"),
        (5, "pending"),
    ]
    assert found[0].ids == {"n": 1, "extra": "created"} and found[4].ids == {"n": 5}
    assert found[2].error == "why" and found[0].error == ""
    assert {r.worker for r in found} == {"gw3"} and {r.scope for r in found} == {"sc"}
    shard = run_dir(tmp_path, "itest-20261127t172503-k3f9", "s01")
    assert shard.name == "itest-20261127t172503-k3f9@s01"
    Journal(shard / "gw0.jsonl").append("intent", 1, kind="k", ids={})
    Journal(run_dir(tmp_path, "itest-20261127t172503-zzzz") / "gw0.jsonl").append(
        "intent", 1, kind="other", ids={}
    )
    every = replay_run(tmp_path, "itest-20261127t172503-k3f9")
    assert len(every) == 6 and {r.kind for r in every} == {"k"}
    assert replay_run(tmp_path / "nothing", "itest-20261127t172503-k3f9") == []


def test_describe_and_the_default_state_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.cleanup.journal import default_state_dir

    assert Resource(1, "user", {"uid": 7, "email": "e"}).describe() == "user(email=e, uid=7)"
    monkeypatch.delenv("HARNESS_STATE_DIR", raising=False)
    assert default_state_dir() == Path(".harness")
    monkeypatch.setenv("HARNESS_STATE_DIR", "/tmp/x")
    assert default_state_dir() == Path("/tmp/x")
    monkeypatch.setenv("HARNESS_STATE_DIR", "")
    assert default_state_dir() == Path(".harness")


def test_stats_count_every_event_and_the_default_scope_is_empty(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = make(tmp_path, store)

    def maker(key: str) -> Any:
        def make_it() -> dict[str, Any]:
            store.items.add(key)
            return {}

        return make_it

    made = [ledger.create("thing", {"key": k}, maker(k)) for k in "abcd"]
    assert {r.scope for r in made} == {""} and {r.kind for r in made} == {"thing"}
    assert ledger.live("") == made and ledger.stats.created == 4
    ledger.keep("")
    assert ledger.stats.kept == 4
    for key in "xy":
        create(ledger, store, key)
    ledger.cleanup()
    assert ledger.stats.cleaned == 2


def test_the_default_attempts_are_four(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = Ledger(Journal(tmp_path / "gw0.jsonl"), store.delete, sleep=lambda _: None)
    create(ledger, store, "x")
    store.failures["x"] = 4
    assert [r.ids["key"] for r in ledger.cleanup().failed] == ["x"]
    assert store.failures["x"] == 0


def test_no_attempt_at_all_is_a_failure_not_a_success(tmp_path: Path) -> None:
    store = FakeStore()
    ledger = Ledger(Journal(tmp_path / "gw0.jsonl"), store.delete, attempts=0)
    create(ledger, store, "x")
    result = ledger.cleanup()
    assert [r.error for r in result.failed] == ["NoneType: None"] and "x" in store.items


def test_replay_tolerates_minimal_and_torn_lines_anywhere(tmp_path: Path) -> None:
    import json

    path = tmp_path / "gw0.jsonl"
    path.write_text(
        json.dumps({"op": "intent", "seq": 1, "kind": "k"})
        + "\n{torn\n"
        + json.dumps({"op": "intent", "seq": 2, "kind": "k", "ids": {"a": 1}})
        + "\n"
    )
    first, second = replay(path)
    assert (first.ids, first.scope, first.state) == ({}, "", "pending")
    assert second.ids == {"a": 1}


def test_run_dir_and_journal_timestamps(tmp_path: Path) -> None:
    from harness.cleanup.journal import run_dir

    assert run_dir(tmp_path, "r") == tmp_path / "runs" / "r"
    assert run_dir(tmp_path, "r", "s02") == tmp_path / "runs" / "r@s02"
    journal = Journal(tmp_path / "j.jsonl")
    journal.append("intent", 1)
    journal.close()
    [entry] = lines(tmp_path / "j.jsonl")
    assert entry["t"] == round(entry["t"], 3)


def test_fsync_is_asked_for_only_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    plain = Journal(tmp_path / "a.jsonl")
    plain.append("intent", 1)
    assert synced == []
    durable = Journal(tmp_path / "b.jsonl", fsync=True)
    durable.append("intent", 1)
    durable.append("created", 1)
    assert len(synced) == 2
    plain.close()
    durable.close()


# -- phase seams and a journal that cannot be written ---------------------------------------


def test_create_and_cleanup_pass_their_phase_seams_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault simulation holds a run at these names (harness/faultpoints.py)."""
    from harness import faultpoints

    reached: list[str] = []
    monkeypatch.setattr(faultpoints, "reach", reached.append)
    store = FakeStore()
    ledger = make(tmp_path, store)
    create(ledger, store, "a")
    assert reached == ["create", "created"]
    ledger.cleanup()
    assert reached == ["create", "created", "cleanup"]


class BrokenJournal:
    """A journal whose every append fails with the errors given, in turn."""

    def __init__(self, path: Path, *errors: Exception) -> None:
        self.path = path
        self.errors = list(errors)

    def append(self, op: str, seq: int, **data: Any) -> None:
        raise self.errors.pop(0) if len(self.errors) > 1 else self.errors[0]


def test_a_journal_that_cannot_be_written_stops_creating_and_says_why_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gw0.jsonl"
    journal = BrokenJournal(path, OSError("disk full"), OSError("disk full"), ValueError("closed"))
    ledger = Ledger(journal, FakeStore().delete)  # type: ignore[arg-type]
    assert ledger.broken == "" and ledger.journal_errors == []
    called: list[str] = []
    first = f"journal {path} cannot be written: disk full"
    with pytest.raises(JournalError) as refused:
        ledger.create("thing", {"key": "a"}, lambda: called.append("a") or {})  # type: ignore[func-returns-value]
    assert str(refused.value) == (
        f"not creating a thing: {first}; nothing more is created in this process (what it "
        f"created is still cleaned up); free the disk or fix the folder"
    )
    assert called == [] and ledger.live() == [] and ledger.broken == first
    with pytest.raises(JournalError, match=r"^not creating a gadget: journal"):
        ledger.create("gadget", {"key": "b"}, lambda: called.append("b") or {})  # type: ignore[func-returns-value]
    assert called == [] and ledger.journal_errors == [first]  # refused before its journal line
    ledger.keep("t")  # nothing live: no journal line, no new error
    assert ledger.journal_errors == [first]


def test_every_distinct_journal_error_is_kept_and_the_first_names_the_break(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    path = tmp_path / "gw0.jsonl"
    ledger = Ledger(Journal(path), store.delete)
    made = [create(ledger, store, key) for key in "abc"]
    full, closed = OSError("disk full"), ValueError("closed")
    ledger.journal = BrokenJournal(path, full, full, closed)  # type: ignore[assignment]
    assert ledger.cleanup().deleted == made[::-1]  # cleaned from memory all the same
    first = f"journal {path} cannot be written: disk full"
    assert ledger.broken == first
    assert ledger.journal_errors == [first, f"journal {path} cannot be written: closed"]
