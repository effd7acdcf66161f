"""Recovery of a dead run also removes what the service wrote for what the run recorded (an
account's welcome note and session rows: ``Kind.related``), through the gate — and nothing
of anyone else. Pure logic: in-memory stand-in kinds, a real journal on disk."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.cleanup.journal import Journal, run_dir
from harness.cleanup.ledger import Ledger, Outcome
from harness.cleanup.recovery import LocalRun, recover
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

    result = recover(LocalRun(str(run), directory, {"pid": 0}), kinds)

    assert [r.ids["id"] for r in result.deleted] == [name]
    assert [r.ids["id"] for r in result.belonging] == ["welcome"]
    assert result.ok and not directory.exists()
    assert accounts.items == {other: other}
    assert notes.items == {"theirs": other, "alice": "alice"}
