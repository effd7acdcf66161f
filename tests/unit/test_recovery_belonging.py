"""Recovery of a dead run also removes what the service wrote for what the run recorded (an
account's welcome note and session rows: ``Kind.related``), through the gate — and nothing
of anyone else. Pure logic: in-memory stand-in kinds, a real journal on disk."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.cleanup.journal import Journal, run_dir
from harness.cleanup.ledger import Ledger, Outcome
from harness.cleanup.liveness import Claim, RunFolder
from harness.cleanup.recovery import recover
from harness.kinds import Found, Kind
from harness.namespace import Namespace, RunId


class MemoryKind(Kind):
    """Items keyed by ``id``, their marker under ``owner``."""

    def __init__(self, name: str, items: dict[str, str]) -> None:
        self.__dict__["name"] = name
        self.items = items  # id -> owner marker

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        return ids.get("owner")

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        return "deleted" if self.items.pop(str(ids["id"]), None) is not None else "absent"

    def find(self, prefix: str) -> list[Found]:
        return [
            Found(self.name, {"id": i, "owner": o}, f"{self.name} {i}", marker=o)
            for i, o in self.items.items()
            if o.startswith(prefix)
        ]

    def related(self, owner_marker: str) -> list[Found]:
        return self.find(owner_marker)


def dead(run: RunId, directory: Path) -> Claim:
    """A dead run's folder as the liveness authority hands it to recovery."""
    return Claim(RunFolder(str(run), "", directory), lease=None)


def test_recovery_removes_what_belongs_to_the_recorded_resources(tmp_path: Path) -> None:
    run = RunId.generate()
    name = Namespace(run, "main").name("acct")
    other = Namespace(RunId.generate(), "main").name("acct")
    accounts = MemoryKind("account", {name: name, other: other})
    notes = MemoryKind("note", {"welcome": name, "theirs": other, "alice": "alice"})
    kinds: dict[str, Kind] = {"account": accounts, "note": notes}

    directory = run_dir(tmp_path, str(run))
    journal = Journal(directory / "main.jsonl")
    Ledger(journal, lambda r: "deleted").create("account", {"owner": name}, lambda: {"id": name})
    journal.close()  # the process died here: the account and its welcome note remain

    result = recover(dead(run, directory), kinds)

    assert [r.ids["id"] for r in result.deleted] == [name]
    assert [r.ids["id"] for r in result.belonging] == ["welcome"]
    assert result.ok and not directory.exists()
    assert accounts.items == {other: other}
    assert notes.items == {"theirs": other, "alice": "alice"}


class ScanOnly(MemoryKind):
    """Answers ``related`` only by scanning its table (not by key): the residue check leaves
    it to its bounded look, but recovery (rare, and nothing else will look) asks it. Counts
    the questions: each is a scan."""

    related_by_key = False

    def __init__(self, name: str, items: dict[str, str]) -> None:
        super().__init__(name, items)
        self.asked: list[str] = []

    def related(self, owner_marker: str) -> list[Found]:
        self.asked.append(owner_marker)
        return super().related(owner_marker)


def dead_run(tmp_path: Path, *workers: str) -> tuple[RunId, Path, list[str]]:
    """A run that died with one account created by each worker (``name`` each, in order)."""
    run = RunId.generate()
    directory = run_dir(tmp_path, str(run))

    def created(worker: str) -> str:
        name = Namespace(run, worker).name("acct")
        journal = Journal(directory / f"{worker}.jsonl")
        Ledger(journal, lambda r: "deleted").create(
            "account", {"owner": name}, lambda: {"id": name}
        )
        journal.close()  # the process died here
        return name

    return run, directory, [created(worker) for worker in workers]


def test_recovery_asks_kinds_that_must_scan_once_per_recovered_resource(tmp_path: Path) -> None:
    run, directory, [name] = dead_run(tmp_path, "main")
    accounts = MemoryKind("account", {name: name})
    sessions = ScanOnly("session", {"s1": name + "-s1", "s2": name + "-s2", "x": "alice"})
    result = recover(dead(run, directory), {"account": accounts, "session": sessions})
    assert sorted(r.ids["id"] for r in result.belonging) == ["s1", "s2"]
    assert sessions.items == {"x": "alice"} and result.ok
    assert sessions.asked == [name]  # not again for each session row it deletes


def test_recovery_cleans_what_belongs_to_the_resources_of_every_journal(tmp_path: Path) -> None:
    run, directory, names = dead_run(tmp_path, "gw0", "gw1")
    accounts = MemoryKind("account", {n: n for n in names})
    notes = MemoryKind("note", {f"welcome-{i}": n for i, n in enumerate(names)})
    result = recover(dead(run, directory), {"account": accounts, "note": notes})
    assert sorted(r.ids["id"] for r in result.deleted) == sorted(names)
    assert sorted(r.ids["id"] for r in result.belonging) == ["welcome-0", "welcome-1"]
    assert accounts.items == {} and notes.items == {} and not directory.exists()


def test_a_belonging_item_the_gate_refuses_is_reported_and_the_journal_kept(
    tmp_path: Path,
) -> None:
    """A kind answering ``related`` with an item that belongs by its name but is someone's
    (the account's name on a real mail domain: a bug, or a crafted marker)."""
    run, directory, [name] = dead_run(tmp_path, "main")
    theirs = name + "@gmail.com"

    class Lying(MemoryKind):
        def related(self, owner_marker: str) -> list[Found]:
            return [Found(self.name, {"id": "t", "owner": theirs}, "note t", marker=theirs)]

    notes = Lying("note", {"t": theirs})
    result = recover(
        dead(run, directory),
        {"account": MemoryKind("account", {name: name}), "note": notes},
    )
    [refused] = result.refused
    assert refused.describe() == f"note(id=t, owner={theirs})"
    assert refused.error.startswith("refusing to delete")
    assert "carries no harness namespace" in refused.error
    assert result.belonging == [] and result.failed == [] and not result.ok
    assert notes.items == {"t": theirs} and directory.exists()  # kept: run it again later


def test_a_belonging_item_whose_delete_fails_is_reported_and_the_journal_kept(
    tmp_path: Path,
) -> None:
    run, directory, [name] = dead_run(tmp_path, "main")

    class Throttled(MemoryKind):
        def delete(self, ids: Mapping[str, Any]) -> Outcome:
            raise RuntimeError("rate exceeded")

    notes = Throttled("note", {"welcome": name})
    result = recover(
        dead(run, directory),
        {"account": MemoryKind("account", {name: name}), "note": notes},
    )
    [failed] = result.failed
    assert (failed.describe(), failed.error) == (
        f"note(id=welcome, owner={name})",
        "RuntimeError: rate exceeded",
    )
    assert result.belonging == [] and result.refused == [] and not result.ok
    assert [r.ids["id"] for r in result.deleted] == [name] and directory.exists()
