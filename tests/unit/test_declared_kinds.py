"""Declared kinds (``[profile.kinds.NAME]``, harness/kinds/declared.py) beyond the
conditional delete: a run's items through the sparse run index (never a scan), recorded items
by key in batches, what may not be looked up at all, and the declaration's run fields from the
profile file to the kind. On the in-memory table (tests/unit/fake_table.py, fake_client.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from harness.config import ConfigError, Profile, load_profile
from harness.kinds.base import Found
from harness.kinds.declared import DeclaredKind
from harness.kinds.registry import load_kinds
from tests.unit.fake_client import ClientTable
from tests.unit.fake_table import FakeAws, FakeTable
from tests.unit.stubs import ns

PROFILE = Profile(name="sandbox")
RUN = ns(1, "aaaa")  # worker gw0
RUN_GW1 = ns(1, "aaaa", "gw1")
LATER = ns(1, "bbbb")
RUN_SPEC = {"run_index": "by-run", "run_attribute": "HarnessRun"}


def declared(table: FakeTable, **spec: Any) -> DeclaredKind:
    spec = {"table": "notes", "key": ["id"], "marker": "Tag", **spec}
    return DeclaredKind.from_spec("note", spec, PROFILE, FakeAws(notes=table))  # type: ignore[arg-type]


def tagged(key: str, namespace: Any, run: bool = True) -> dict[str, Any]:
    item = {"id": key, "Tag": namespace.name(key), "body": "not read"}
    if run:
        item["HarnessRun"] = str(namespace.run)
    return item


def run_table(page: int = 2) -> FakeTable:
    items = [tagged(f"a{i}", RUN) for i in range(3)] + [tagged(f"b{i}", RUN_GW1) for i in range(2)]
    items += [tagged("later", LATER), tagged("unindexed", RUN, run=False)]
    return FakeTable(["id"], items, page=page)


def ids_of(found: list[Found]) -> list[str]:
    return sorted(str(f.ids["id"]) for f in found)


# -- a run's items through the run index -------------------------------------------------------


def test_a_runs_items_come_from_one_paginated_query_of_the_run_index() -> None:
    table = run_table(page=2)
    kind = declared(table, **RUN_SPEC)
    assert kind.find_is_cheap
    found = kind.find(f"{RUN.run}-")
    assert ids_of(found) == ["a0", "a1", "a2", "b0", "b1"]  # not another run's, not unindexed
    assert found[0] == Found(
        "note", {"id": "a0", "Tag": RUN.name("a0")}, "note id=a0 in notes", RUN.name("a0")
    )
    assert [name for name, _ in table.calls] == ["query"] * 3  # never a scan
    queries = [call for _, call in table.calls]
    for query in queries:
        assert query["IndexName"] == "by-run"
        assert query["KeyConditionExpression"] == "#r = :r"
        assert query["ExpressionAttributeNames"] == {"#p0": "id", "#p1": "Tag", "#r": "HarnessRun"}
        assert query["ExpressionAttributeValues"] == {":r": str(RUN.run)}
        assert query["ProjectionExpression"] == "#p0, #p1"
    assert [q.get("ExclusiveStartKey") for q in queries] == [None, {"at": 2}, {"at": 4}]


def test_a_namespace_or_a_bare_run_id_is_found_through_the_index_too() -> None:
    table = run_table()
    kind = declared(table, **RUN_SPEC)
    # a worker's namespace: the run's query, then only that worker's items
    assert ids_of(kind.find(f"{RUN_GW1}-")) == ["b0", "b1"]
    assert ids_of(kind.find(str(RUN.run))) == ["a0", "a1", "a2", "b0", "b1"]
    assert {name for name, _ in table.calls} == {"query"}


@pytest.mark.parametrize("prefix", ["itest-", "itest-x", "itest-2026-x-", "itest-nota-run-"])
def test_a_prefix_that_names_no_run_is_scanned_for(prefix: str) -> None:
    table = run_table()
    kind = declared(table, **RUN_SPEC)
    found = kind.find(prefix)
    assert {name for name, _ in table.calls} == {"scan"}
    assert ids_of(found) == sorted(i["id"] for i in table.items if i["Tag"].startswith(prefix))


def test_an_empty_run_index_page_finds_nothing() -> None:
    class Empty(FakeTable):
        def query(self, **kwargs: Any) -> dict[str, Any]:
            return {}

    assert declared(Empty(["id"]), **RUN_SPEC).find(f"{RUN.run}-") == []


@pytest.mark.parametrize(
    "run_fields", [{}, {"run_index": "by-run"}, {"run_attribute": "HarnessRun"}]
)
def test_without_both_run_fields_a_run_is_scanned_for(run_fields: dict[str, Any]) -> None:
    """Only the index and its hash key together make a run's items cheap to find; a kind
    built with one of them (the profile file refuses that) scans like any other."""
    table = run_table()
    aws: Any = FakeAws(notes=table)
    kind = DeclaredKind("note", PROFILE, aws, table="notes", key=["id"], marker="Tag", **run_fields)
    assert not kind.find_is_cheap
    assert (kind.run_index, kind.run_attribute) == (
        run_fields.get("run_index", ""),
        run_fields.get("run_attribute", ""),
    )
    assert ids_of(kind.find(f"{RUN.run}-")) == ["a0", "a1", "a2", "b0", "b1", "unindexed"]
    assert {name for name, _ in table.calls} == {"scan"}


# -- the profile file's run fields -------------------------------------------------------------

PROFILE_FILE = """
[staging]
base_url = "https://api.staging.example.com"

[staging.kinds.note]
table = "notes"
key = "id"
marker = "Tag"
"""


def test_the_run_fields_reach_the_kind_from_the_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(PROFILE_FILE + 'run_index = "by-run"\nrun_attribute = "HarnessRun"\n')
    profile = load_profile("staging", path, environ={}, declared={})
    kind = load_kinds(profile, FakeAws(notes=run_table()))["note"]  # type: ignore[arg-type]
    assert isinstance(kind, DeclaredKind) and kind.find_is_cheap
    assert (kind.run_index, kind.run_attribute) == ("by-run", "HarnessRun")
    path.write_text(PROFILE_FILE)
    profile = load_profile("staging", path, environ={}, declared={})
    plain = load_kinds(profile, FakeAws(notes=run_table()))["note"]  # type: ignore[arg-type]
    assert isinstance(plain, DeclaredKind) and not plain.find_is_cheap
    assert (plain.run_index, plain.run_attribute) == ("", "")


@pytest.mark.parametrize(
    "fields",
    [
        'run_index = "by-run"\n',
        'run_attribute = "HarnessRun"\n',
        'run_index = "by-run"\nrun_attribute = ""\n',
    ],
)
def test_the_run_fields_go_together(tmp_path: Path, fields: str) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(PROFILE_FILE + fields)
    with pytest.raises(ConfigError) as error:
        load_profile("staging", path, environ={}, declared={})
    assert str(error.value) == (
        f'{path}: [staging.kinds.note]: run_index = "<sparse GSI>" and run_attribute = '
        '"<its hash key, holding the run id>" go together'
    )


# -- recorded items by key, in batches -----------------------------------------------------------


def test_recorded_items_are_found_by_key_in_one_batch_and_by_marker_without_one() -> None:
    mine, other = RUN.name("n"), LATER.name("lost")
    items = [
        {"owner": mine, "n": Decimal(1), "body": "x"},
        {"owner": mine, "n": Decimal(3)},
        {"owner": other, "n": Decimal(9)},
    ]
    table = ClientTable(["owner", "n"], items)
    kind = declared(table, key=["owner", "n"], marker="owner")
    recorded: list[Any] = [
        {"owner": mine, "n": 1},
        {"owner": mine, "n": 2},  # deleted since
        {"owner": mine, "n": 3},
        {"owner": other},  # its create's answer was lost: only the marker is known
        {"owner": RUN.name("never")},
    ]
    found = kind.exists_many(recorded)
    assert found == [
        Found("note", {"owner": other, "n": 9}, f"note owner={other}, n=9 in notes", other),
        Found("note", {"owner": mine, "n": 1}, f"note owner={mine}, n=1 in notes", mine),
        Found("note", {"owner": mine, "n": 3}, f"note owner={mine}, n=3 in notes", mine),
    ]
    [batch] = table.client_calls("batch_get_item")
    assert batch["fake"]["Keys"] == [{"owner": mine, "n": n} for n in (1, 2, 3)]
    assert batch["fake"]["ProjectionExpression"] == "#p0, #p1"
    assert table.client_calls("get_item") == []  # by key: only the batch


def test_without_keyed_records_no_batch_is_asked() -> None:
    table = ClientTable(["owner", "n"], [{"owner": RUN.name("x"), "n": 1}])
    kind = declared(table, key=["owner", "n"], marker="owner")
    assert [f.ids["n"] for f in kind.exists_many([{"owner": RUN.name("x")}])] == [1]
    assert table.client_calls("batch_get_item") == []


# -- what cannot be looked up ------------------------------------------------------------------


def test_a_record_with_neither_key_nor_marker_reads_nothing_and_matches_nothing() -> None:
    """An item without the marker attribute is not what an empty record names: nothing is
    read for such a record (a scan-only kind would read the whole table for it)."""
    table = FakeTable(["id"], [{"id": "untagged"}, {"id": "t", "Tag": RUN.name("t")}])
    kind = declared(table)
    assert kind.exists({}) is None and kind.exists({"other": 1}) is None
    assert table.calls == []
    assert kind.exists_many([{"other": 1}]) == [] and table.calls == []
