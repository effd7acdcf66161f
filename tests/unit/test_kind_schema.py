"""A declared kind against its table (harness/safety/preflight.py ``kind_misfits``, issue 21
item 2): its ``key`` is the table's KeySchema, its ``index`` an index keyed on the marker,
its ``run_index`` one keyed on ``run_attribute`` that carries the marker. Each misfit names
the table's real key or indexes and the TOML line to write, and where; the run's preflight
refuses (exit 8) from the DescribeTable answer it already had, and ``doctor`` shows a FAIL
row per misfit. Tables here are DescribeTable answers as DynamoDB gives them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from harness.cli import doctor
from harness.config import ConfigError, Profile, load_profile
from harness.kinds.declared import DeclaredKind
from harness.run import outcome
from harness.safety import preflight
from harness.safety.preflight import Misfit, check_aws, kind_misfits
from tests.conftest import REPO


def keys(*names: str) -> list[dict[str, str]]:
    return [
        {"AttributeName": name, "KeyType": "HASH" if i == 0 else "RANGE"}
        for i, name in enumerate(names)
    ]


def index(name: str, *names: str, projection: str = "ALL", **extra: Any) -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": keys(*names),
        "Projection": {"ProjectionType": projection, **extra},
    }


def table(*key: str, gsi: list[Any] | None = None, lsi: list[Any] | None = None) -> dict[str, Any]:
    described: dict[str, Any] = {"TableName": "notes", "KeySchema": keys(*key), "ItemCount": 4}
    if gsi:
        described["GlobalSecondaryIndexes"] = gsi
    if lsi:
        described["LocalSecondaryIndexes"] = lsi
    return described


NOTES = table("owner", "note_id", gsi=[index("by-owner", "owner"), index("by-run", "Run")])


def kind(
    key: list[str],
    marker: str = "owner",
    sources: dict[str, str] | None = None,
    **spec: str,
) -> DeclaredKind:
    profile = Profile(name="local", kind_sources={"note": sources or {}})
    return DeclaredKind("note", profile, None, table="notes", key=key, marker=marker, **spec)  # type: ignore[arg-type]


def test_a_kind_that_fits_its_table_has_no_misfit() -> None:
    assert kind_misfits(kind(["owner", "note_id"]), NOTES) == []
    fits = kind(["owner", "note_id"], index="by-owner", run_index="by-run", run_attribute="Run")
    assert kind_misfits(fits, NOTES) == []


def test_the_key_schema_is_read_hash_key_first_in_any_order() -> None:
    reversed_schema = {**NOTES, "KeySchema": list(reversed(keys("owner", "note_id")))}
    assert kind_misfits(kind(["owner", "note_id"]), reversed_schema) == []
    [misfit] = kind_misfits(kind(["note_id", "owner"]), reversed_schema)
    assert misfit.fix == 'write key = ["owner", "note_id"] under [local.kinds.note]'


@pytest.mark.parametrize("wrong", [["note_id"], ["owner"], ["note_id", "owner"], ["Owner"]])
def test_a_wrong_key_names_the_tables_key_and_the_line_to_write(wrong: list[str]) -> None:
    assert kind_misfits(kind(wrong), NOTES) == [
        Misfit(
            "note",
            "key",
            f"kind note: key = {json.dumps(wrong)} is not the key of table 'notes' (its "
            f"KeySchema: owner HASH, note_id RANGE)",
            'write key = ["owner", "note_id"] under [local.kinds.note]',
        )
    ]


def test_two_keys_for_a_hash_only_table_is_a_misfit() -> None:
    [misfit] = kind_misfits(kind(["owner", "note_id"]), table("owner"))
    assert str(misfit) == (
        'kind note: key = ["owner", "note_id"] is not the key of table \'notes\' (its '
        'KeySchema: owner HASH): write key = ["owner"] under [local.kinds.note]'
    )


@pytest.mark.parametrize(
    ("sources", "where"),
    [
        ({}, "[local.kinds.note]"),  # built by hand: the profile's own
        ({"table": "file", "key": "file"}, "[local.kinds.note]"),
        ({"table": "defaults", "key": "defaults"}, "[defaults.kinds.note]"),
        ({"table": "defaults", "key": "file"}, "[local.kinds.note]"),  # said by the profile
        ({"table": "file", "key": "defaults"}, "[defaults.kinds.note]"),  # inherited
    ],
)
def test_the_line_to_write_goes_where_the_field_was_written(
    sources: dict[str, str], where: str
) -> None:
    [misfit] = kind_misfits(kind(["note_id"], sources=sources), NOTES)
    assert misfit.fix.endswith(f"under {where}")


def test_a_field_never_written_goes_where_the_kinds_table_was() -> None:
    inherited = kind(["owner", "note_id"], marker="author", sources={"table": "defaults"})
    assert preflight.where_declared(inherited, "index") == "[defaults.kinds.note]"
    own = kind(["owner", "note_id"], marker="author", sources={"table": "file"})
    assert preflight.where_declared(own, "index") == "[local.kinds.note]"


def test_an_index_the_table_lacks_names_the_one_on_the_marker() -> None:
    [misfit] = kind_misfits(kind(["owner", "note_id"], index="by-ownr"), NOTES)
    assert misfit == Misfit(
        "note",
        "index",
        "kind note: index 'by-ownr' is not an index of table 'notes' (its indexes: by-owner "
        "(owner HASH), by-run (Run HASH))",
        'write index = "by-owner" under [local.kinds.note]',
    )


def test_an_index_on_another_attribute_shows_its_key() -> None:
    described = table(
        "note_id", gsi=[index("by-date", "created", "owner"), index("mine", "owner", "created")]
    )
    [misfit] = kind_misfits(kind(["note_id"], index="by-date"), described)
    assert misfit.problem == (
        "kind note: index 'by-date' of table 'notes' is keyed on created HASH, owner RANGE, "
        "not on owner"
    )
    assert misfit.fix == 'write index = "mine" under [local.kinds.note]'


def test_without_an_index_on_the_marker_the_fix_is_to_remove_the_line_or_add_one() -> None:
    [misfit] = kind_misfits(kind(["note_id"], index="by-owner"), table("note_id"))
    assert str(misfit) == (
        "kind note: index 'by-owner' is not an index of table 'notes' (it has none): remove "
        'index = "by-owner" from [local.kinds.note] (finding what belongs to a resource then '
        "scans notes), or give notes a GSI whose hash key is owner"
    )


def test_a_local_index_counts_as_an_index() -> None:
    described = table("owner", "note_id", lsi=[index("by-date", "owner", "created")])
    assert kind_misfits(kind(["owner", "note_id"], index="by-date"), described) == []
    assert preflight.indexes_on(described, "owner") == ["by-date"]


def run_kind(run_index: str = "by-run", run_attribute: str = "Run") -> DeclaredKind:
    return kind(["owner", "note_id"], run_index=run_index, run_attribute=run_attribute)


def test_a_run_index_the_table_lacks_names_the_one_on_run_attribute() -> None:
    [misfit] = kind_misfits(run_kind("by-rnu"), NOTES)
    assert str(misfit) == (
        "kind note: run_index 'by-rnu' is not an index of table 'notes' (its indexes: "
        'by-owner (owner HASH), by-run (Run HASH)): write run_index = "by-run" under '
        "[local.kinds.note]"
    )


def test_a_run_index_with_no_index_on_run_attribute_says_remove_or_create() -> None:
    [misfit] = kind_misfits(run_kind(), table("owner", "note_id"))
    assert misfit.fix == (
        "remove run_index and run_attribute from [local.kinds.note] (the residue check then "
        "scans notes while it is small), or give notes a sparse GSI whose hash key is Run"
    )


def test_a_run_index_keyed_on_another_attribute_names_it_as_run_attribute() -> None:
    [misfit] = kind_misfits(run_kind(run_attribute="HarnessRun"), NOTES)
    assert str(misfit) == (
        "kind note: run_index 'by-run' of table 'notes' is keyed on Run HASH, not on "
        'run_attribute HarnessRun: write run_attribute = "Run" under [local.kinds.note]'
    )
    inherited = kind(
        ["owner", "note_id"],
        run_index="by-run",
        run_attribute="HarnessRun",
        sources={"table": "file", "run_index": "file", "run_attribute": "defaults"},
    )
    [misfit] = kind_misfits(inherited, NOTES)
    assert misfit.fix.endswith("under [defaults.kinds.note]")


@pytest.mark.parametrize(
    ("run_index", "carries"),
    [
        (index("by-run", "Run", projection="ALL"), True),
        (index("by-run", "Run", projection="INCLUDE", NonKeyAttributes=["x", "owner"]), True),
        (index("by-run", "Run", projection="INCLUDE", NonKeyAttributes=["x"]), False),
        (index("by-run", "Run", projection="KEYS_ONLY"), False),
        (index("by-run", "Run", "owner", projection="KEYS_ONLY"), True),  # its range key
        ({"IndexName": "by-run", "KeySchema": keys("Run"), "Projection": {}}, False),
    ],
)
def test_a_run_index_must_carry_the_marker(run_index: dict[str, Any], carries: bool) -> None:
    by_key = kind(["note_id", "x"], run_index="by-run", run_attribute="Run")
    misfits = kind_misfits(by_key, table("note_id", "x", gsi=[run_index]))
    assert (misfits == []) == carries
    # the table's own key is in every index
    marker_is_key = kind(["owner"], run_index="by-run", run_attribute="Run")
    assert kind_misfits(marker_is_key, table("owner", gsi=[run_index])) == []


def test_a_run_index_without_the_marker_says_so() -> None:
    described = table("note_id", gsi=[index("by-run", "Run", projection="KEYS_ONLY")])
    by_key = kind(["note_id"], run_index="by-run", run_attribute="Run")
    assert [str(m) for m in kind_misfits(by_key, described)] == [
        "kind note: run_index 'by-run' of table 'notes' projects KEYS_ONLY, without the "
        "marker owner the residue check reads from it: project owner into by-run "
        "(ProjectionType ALL, or INCLUDE owner), or remove run_index and run_attribute from "
        "[local.kinds.note]"
    ]
    no_type = table("note_id", gsi=[{"IndexName": "by-run", "KeySchema": keys("Run")}])
    [misfit] = kind_misfits(by_key, no_type)
    assert "projects KEYS_ONLY," in misfit.problem


def test_a_local_run_index_reads_the_marker_from_the_table() -> None:
    described = table(
        "Run", "note_id", lsi=[index("by-run", "Run", "created", projection="KEYS_ONLY")]
    )
    local = kind(["Run", "note_id"], run_index="by-run", run_attribute="Run")
    assert kind_misfits(local, described) == []


def test_every_misfit_of_a_kind_is_listed_key_index_run_index() -> None:
    wrong = kind(["id"], index="nope", run_index="nope", run_attribute="Run")
    assert [m.field for m in kind_misfits(wrong, NOTES)] == ["key", "index", "run_index"]


# -- preflight: from the DescribeTable answers it already has --------------------------------


class Dynamo:
    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        self.tables = tables
        self.described: list[str] = []

    def describe_table(self, TableName: str) -> dict[str, Any]:
        self.described.append(TableName)
        return {"Table": self.tables[TableName]}


class Aws:
    endpoint_url = None

    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        self.dynamodb_client = Dynamo(tables)


def test_preflight_refuses_every_misfit_in_one_line_describing_each_table_once() -> None:
    aws = Aws({"notes": NOTES, "tags": table("tag")})
    profile = Profile(name="local", base_url="http://x")
    note = DeclaredKind("note", profile, aws, table="notes", key=["id"], marker="owner")  # type: ignore[arg-type]
    draft = DeclaredKind("draft", profile, aws, table="notes", key=["owner"], marker="owner")  # type: ignore[arg-type]
    tag = DeclaredKind("tag", profile, aws, table="tags", key=["tag"], marker="tag")  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as error:
        check_aws(profile, aws, {"note": note, "draft": draft, "tag": tag})  # type: ignore[arg-type]
    assert type(error.value) is ConfigError  # exit 8, not the target's 7
    assert str(error.value) == (
        "kind note: key = [\"id\"] is not the key of table 'notes' (its KeySchema: owner "
        'HASH, note_id RANGE): write key = ["owner", "note_id"] under [local.kinds.note]; and '
        "kind draft: key = [\"owner\"] is not the key of table 'notes' (its KeySchema: owner "
        'HASH, note_id RANGE): write key = ["owner", "note_id"] under [local.kinds.draft]'
    )
    assert aws.dynamodb_client.described == ["notes", "tags"]  # no call of its own


def test_preflight_passes_kinds_that_fit_and_returns_the_counts() -> None:
    aws = Aws({"notes": NOTES})
    profile = Profile(name="local", base_url="http://x")
    key = ["owner", "note_id"]
    note = DeclaredKind("note", profile, aws, table="notes", key=key, marker="owner")  # type: ignore[arg-type]
    assert check_aws(profile, aws, {"note": note}) == {"notes": 4}  # type: ignore[arg-type]


# -- doctor: a row per kind -----------------------------------------------------------------


def test_doctor_fails_each_misfit_as_configuration() -> None:
    wrong = kind(["id"], index="by-ownr")
    rows = doctor.kind_checks(wrong, NOTES)
    assert [(r.name, r.status, r.config) for r in rows] == [
        ("kind note key", doctor.FAIL, True),
        ("kind note index", doctor.FAIL, True),
    ]
    assert rows[0].fix == 'write key = ["owner", "note_id"] under [local.kinds.note]'
    assert "its KeySchema: owner HASH, note_id RANGE" in rows[0].detail
    rendered = doctor.render(rows)
    assert 'fix: write index = "by-owner" under [local.kinds.note]' in rendered
    assert rendered.endswith("FAIL: fix the rows above before a run")


def test_doctor_shows_a_kind_that_fits_and_warns_a_scan_naming_an_index_to_use() -> None:
    fits = kind(["owner", "note_id"], index="by-owner", run_index="by-run", run_attribute="Run")
    [row] = doctor.kind_checks(fits, NOTES)
    assert (row.name, row.status) == ("kind note", doctor.OK)
    assert row.detail == "key owner, note_id; index by-owner; run_index by-run: fit table notes"
    [plain] = doctor.kind_checks(kind(["owner", "note_id"]), NOTES)
    assert plain.detail == "key owner, note_id: fit table notes"
    scans = kind(["note_id"], marker="owner")
    [warn] = doctor.kind_checks(scans, table("note_id", gsi=[index("mine", "owner")]))
    assert (warn.status, warn.fix) == (doctor.WARN, 'write index = "mine" under [local.kinds.note]')
    [warn] = doctor.kind_checks(scans, table("note_id"))
    assert warn.fix == 'declare index = "<GSI with hash key owner>"'


def test_a_misfit_is_exit_8_as_for_harness_run_after_the_targets_7() -> None:
    misfit = doctor.Check("kind note key", doctor.FAIL, config=True)
    other = doctor.Check("events topic", doctor.FAIL)
    assert doctor.status([misfit, other]) == outcome.CONFIG
    assert doctor.status([doctor.Check("identity", doctor.FAIL), misfit]) == outcome.UNREACHABLE
    assert doctor.status([doctor.Check("kind note", doctor.WARN, config=True)]) == outcome.PASSED
    assert doctor.status([other]) == outcome.FAILED


def test_the_profile_records_where_each_kind_field_was_written(tmp_path: Path) -> None:
    """Through the config: a misfit of a field inherited from [defaults.kinds.note] is fixed
    there; a field the profile says itself, under its own table."""
    path = tmp_path / "environments.toml"
    path.write_text(
        '[defaults.kinds.note]\ntable = "notes"\nkey = ["id"]\nmarker = "owner"\n\n'
        '[local]\nbase_url = "http://x"\nprotected = false\n\n'
        '[local.kinds.note]\ntable = "stg-notes"\n\n'
        '[local.kinds.tag]\ntable = "tags"\nkey = ["tag"]\nmarker = "tag"\n'
    )
    profile = load_profile("local", path, environ={}, declared={})
    assert profile.kind_sources == {
        "note": {"table": "file", "key": "defaults", "marker": "defaults"},
        "tag": {"table": "file", "key": "file", "marker": "file"},
    }
    note = DeclaredKind.from_spec("note", profile.kinds["note"], profile, None)  # type: ignore[arg-type]
    [misfit] = kind_misfits(note, NOTES)
    assert misfit.fix == 'write key = ["owner", "note_id"] under [defaults.kinds.note]'


@pytest.mark.skipif(
    bool(os.environ.get("HARNESS_MUTATION_RUN")), reason="checks the checkout's own documents"
)
def test_the_documented_refusal_is_what_preflight_says() -> None:
    """docs/adapters.md shows the run's line for a wrong key, the README its fix."""
    [misfit] = kind_misfits(kind(["note_id"]), NOTES)
    guide = (REPO / "docs" / "adapters.md").read_text(encoding="utf-8")
    [shown] = [b for b in re.findall(r"```text\n(.*?)```", guide, re.S) if "KeySchema" in b]
    assert shown == f"harness: {misfit}\n"
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert f"e.g. `{misfit.fix}`" in readme


def test_an_index_line_goes_where_that_field_was_written_not_the_tables() -> None:
    sources = {"table": "file", "index": "defaults", "run_index": "defaults"}
    spec = {"index": "nope", "run_index": "nope", "run_attribute": "Run"}
    wrong = kind(["owner", "note_id"], sources=sources, **spec)
    assert [m.fix for m in kind_misfits(wrong, NOTES)] == [
        'write index = "by-owner" under [defaults.kinds.note]',
        'write run_index = "by-run" under [defaults.kinds.note]',
    ]
    sources = {"table": "defaults", "index": "file", "run_index": "file"}
    spec["run_attribute"] = "Nothing"
    wrong = kind(["owner", "note_id"], sources=sources, **spec)
    assert [m.fix for m in kind_misfits(wrong, table("owner", "note_id"))] == [
        'remove index = "nope" from [local.kinds.note] (finding what belongs to a resource '
        "then scans notes), or give notes a GSI whose hash key is owner",
        "remove run_index and run_attribute from [local.kinds.note] (the residue check then "
        "scans notes while it is small), or give notes a sparse GSI whose hash key is Nothing",
    ]


def test_each_run_index_misfit_names_its_kind_and_field() -> None:
    cases = [
        (run_kind("nope"), NOTES),  # no such index
        (run_kind(run_attribute="Other"), NOTES),  # keyed on another attribute
        (
            kind(["note_id"], run_index="by-run", run_attribute="Run"),
            table("note_id", gsi=[index("by-run", "Run", projection="KEYS_ONLY")]),
        ),  # without the marker
    ]
    for wrong, described in cases:
        assert [(m.kind, m.field) for m in kind_misfits(wrong, described)] == [
            ("note", "run_index")
        ]


def test_the_projection_a_run_index_has_is_named() -> None:
    described = table(
        "note_id", gsi=[index("by-run", "Run", projection="INCLUDE", NonKeyAttributes=["x"])]
    )
    by_key = kind(["note_id"], run_index="by-run", run_attribute="Run")
    [misfit] = kind_misfits(by_key, described)
    assert misfit.problem.startswith(
        "kind note: run_index 'by-run' of table 'notes' projects INCLUDE, without the marker"
    )
