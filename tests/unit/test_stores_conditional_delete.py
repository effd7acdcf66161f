"""The second line of defence in the stores: a kind deletes only while the item still carries
the marker the guard checked. Declared kinds (harness/kinds/declared.py) and the reference
adapter's user kind (fixtures/kinds.py) on a tiny in-memory table."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fixtures.kinds import UserKind
from harness.cleanup.ledger import OwnershipError
from harness.config import Profile
from harness.kinds.base import Found
from harness.kinds.declared import DeclaredKind
from tests.unit.fake_table import FakeAws, FakeTable
from tests.unit.stubs import ns

OURS = ns(1, "aaaa")
MINE = OURS.name("n")
OTHER = ns(1, "bbbb").name("n")
PROFILE = Profile(name="sandbox")


def declared(table: FakeTable, **spec: Any) -> DeclaredKind:
    spec.setdefault("table", "notes")
    spec.setdefault("key", ["owner", "note_id"])
    spec.setdefault("marker", "owner")
    return DeclaredKind.from_spec("note", spec, PROFILE, FakeAws(notes=table))  # type: ignore[arg-type]


# -- declared kinds ------------------------------------------------------------------------------


def test_from_spec_reads_the_declaration() -> None:
    kind = declared(FakeTable(["id"]), key="id", marker="Tag", index="by-tag", sweep_order="7")
    assert (kind.name, kind.table_name, kind.key, kind.marker_attribute) == (
        "note",
        "notes",
        ["id"],
        "Tag",
    )
    assert (kind.index, kind.sweep_order) == ("by-tag", 7)
    assert kind.profile is PROFILE and isinstance(kind.aws, FakeAws)
    plain = declared(FakeTable(["owner", "note_id"]))
    assert (plain.index, plain.sweep_order, plain.key) == ("", 50, ["owner", "note_id"])
    assert plain.marker({"owner": MINE}) == MINE and plain.marker({"note_id": 1}) is None
    assert plain.marker({"owner": 5}) == "5"


def test_a_conditional_delete_removes_the_item_that_still_carries_the_marker() -> None:
    table = FakeTable(["owner", "note_id"], [{"owner": MINE, "note_id": "a"}])
    kind = declared(table)
    assert kind.delete({"owner": MINE, "note_id": "a"}) == "deleted"
    assert table.items == []
    call = table.calls[0][1]
    assert call["ConditionExpression"] == "#m = :m"
    assert call["ExpressionAttributeNames"] == {"#m": "owner"}
    assert call["ExpressionAttributeValues"] == {":m": MINE}
    assert kind.delete({"owner": MINE, "note_id": "a"}) == "absent"  # gone: done


def test_a_conditional_delete_refuses_an_item_that_now_carries_another_marker() -> None:
    table = FakeTable(["id"], [{"id": "x", "Tag": OTHER}])
    kind = declared(table, key=["id"], marker="Tag")
    with pytest.raises(OwnershipError) as error:
        kind.delete({"id": "x", "Tag": MINE})
    assert str(error.value) == f"note {{'id': 'x'}} in notes no longer carries {MINE!r}; left alone"
    assert table.items == [{"id": "x", "Tag": OTHER}]


def test_other_errors_of_the_conditional_delete_are_raised() -> None:
    from botocore.exceptions import ClientError

    class Throttled(FakeTable):
        def delete_item(self, **kwargs: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "Throttling"}}, "DeleteItem")

    kind = declared(Throttled(["owner", "note_id"]))
    with pytest.raises(ClientError, match="Throttling"):
        kind.delete({"owner": MINE, "note_id": "a"})


def test_without_the_full_key_everything_carrying_exactly_the_marker_is_deleted() -> None:
    items = [
        {"owner": MINE, "note_id": "a"},
        {"owner": MINE, "note_id": "b"},
        {"owner": MINE + "-x", "note_id": "c"},  # starts with it: not the resource itself
        {"owner": OTHER, "note_id": "d"},
    ]
    table = FakeTable(["owner", "note_id"], items)
    kind = declared(table)
    assert kind.delete({"owner": MINE}) == "deleted"
    assert sorted(i["note_id"] for i in table.items) == ["c", "d"]
    assert kind.delete({"owner": MINE}) == "absent"


def test_found_items_carry_plain_numbers_and_the_marker() -> None:
    table = FakeTable(["id"], [{"id": Decimal(3), "Tag": MINE, "n": Decimal("1.5")}])
    kind = declared(table, key=["id"], marker="Tag")
    found = kind.exists({"id": 3})
    assert found == Found("note", {"id": 3, "Tag": MINE}, "note id=3 in notes", marker=MINE)
    assert isinstance(found.ids["id"], int)
    half = declared(
        FakeTable(["id"], [{"id": Decimal("1.5"), "Tag": MINE}]), key=["id"], marker="Tag"
    )
    assert half.exists({"id": Decimal("1.5")}).ids["id"] == 1.5  # type: ignore[union-attr]
    get = table.calls[0][1]
    assert get["ConsistentRead"] is True
    assert get["ProjectionExpression"] == "#p0, #p1"
    assert get["ExpressionAttributeNames"] == {"#p0": "id", "#p1": "Tag"}


def test_exists_by_key_and_by_marker_alone() -> None:
    table = FakeTable(["owner", "note_id"], [{"owner": MINE, "note_id": "a"}])
    kind = declared(table)
    assert kind.exists({"owner": MINE, "note_id": "a"}) is not None
    assert kind.exists({"owner": MINE, "note_id": "zz"}) is None
    assert kind.exists({"owner": MINE}).ids == {"owner": MINE, "note_id": "a"}  # type: ignore[union-attr]
    assert kind.exists({"owner": OTHER}) is None
    assert kind.exists({"note_id": "a"}) is None  # neither key nor marker: cannot tell


def test_related_by_hash_key_marker_queries_consistently_across_pages() -> None:
    items = [{"owner": MINE, "note_id": str(i)} for i in range(5)] + [
        {"owner": OTHER, "note_id": "x"}
    ]
    table = FakeTable(["owner", "note_id"], items, page=2)
    kind = declared(table)
    assert kind.related_by_key
    assert sorted(f.ids["note_id"] for f in kind.related(MINE)) == ["0", "1", "2", "3", "4"]
    queries = [c for name, c in table.calls if name == "query"]
    assert len(queries) == 3 and all(q["ConsistentRead"] is True for q in queries)
    assert "IndexName" not in queries[0]


def test_related_through_the_declared_index() -> None:
    table = FakeTable(["id"], [{"id": "1", "Tag": MINE}, {"id": "2", "Tag": OTHER}])
    kind = declared(table, key=["id"], marker="Tag", index="by-tag")
    assert kind.related_by_key
    assert [f.ids["id"] for f in kind.related(MINE)] == ["1"]
    [(_, query)] = [c for c in table.calls if c[0] == "query"]
    assert query["IndexName"] == "by-tag" and "ConsistentRead" not in query


def test_related_when_the_marker_is_the_whole_key_is_one_get() -> None:
    table = FakeTable(["Tag"], [{"Tag": MINE}])
    kind = declared(table, key=["Tag"], marker="Tag")
    assert [f.marker for f in kind.related(MINE)] == [MINE]
    assert kind.related(OTHER) == []
    assert [name for name, _ in table.calls] == ["get_item", "get_item"]


def test_related_without_a_key_or_index_scans_by_prefix() -> None:
    items = [{"id": "1", "Tag": MINE + "-w"}, {"id": "2", "Tag": OTHER}, {"id": "3", "Tag": MINE}]
    table = FakeTable(["id"], items, page=1)
    kind = declared(table, key=["id"], marker="Tag")
    assert not kind.related_by_key
    assert sorted(f.ids["id"] for f in kind.related(MINE)) == ["1", "3"]
    assert sorted(f.ids["id"] for f in kind.find("itest-")) == ["1", "2", "3"]


def test_delete_many_deletes_whole_keys_once() -> None:
    items = [{"owner": MINE, "note_id": "a"}, {"owner": MINE, "note_id": "b"}]
    table = FakeTable(["owner", "note_id"], items)
    kind = declared(table)
    ids: list[dict[str, Any]] = [
        {"owner": MINE, "note_id": "a"},
        {"owner": MINE, "note_id": "a"},
        {"owner": MINE, "note_id": "b", "extra": 1},
        {"owner": MINE},  # no full key: skipped
    ]
    assert kind.delete_many(ids) == 2
    assert table.items == []


# -- the reference adapter's user kind -----------------------------------------------------------

EMAIL = OURS.email("u")


def user_kind(
    users: list[dict[str, Any]], tokens: list[dict[str, Any]], notes: list[dict[str, Any]]
) -> tuple[UserKind, FakeAws]:
    aws = FakeAws(
        users=FakeTable(["Uid"], users),
        tokens=FakeTable(["Uid"], tokens),
        notes=FakeTable(["Uid", "NotificationId"], notes),
    )
    profile = Profile(
        name="sandbox",
        settings={"users_table": "users", "tokens_table": "tokens", "notifications_table": "notes"},
    )
    return UserKind(profile, aws), aws


def test_user_delete_removes_the_user_its_token_and_its_notifications() -> None:
    kind, aws = user_kind(
        [{"Uid": 7, "Email": EMAIL}],
        [{"Uid": 7, "Token": "t"}],
        [{"Uid": 7, "NotificationId": "n1", "Email": EMAIL}],
    )
    assert kind.delete({"uid": 7, "email": EMAIL.upper()}) == "deleted"
    assert [t.items for t in aws.tables.values()] == [[], [], []]
    [(_, call)] = [c for c in aws.tables["users"].calls if c[0] == "delete_item"]
    assert call["ConditionExpression"] == "Email = :e"
    assert call["ExpressionAttributeValues"] == {":e": EMAIL}
    assert kind.delete({"uid": 7, "email": EMAIL}) == "absent"


def test_user_delete_refuses_when_the_uid_now_holds_another_email() -> None:
    """The uid was reused (the journaled user is gone, someone else signed up): nothing of
    theirs is touched — not the user, not the token, not the notifications."""
    someone = "alice@example.com"
    kind, aws = user_kind(
        [{"Uid": 7, "Email": someone}],
        [{"Uid": 7, "Token": "t"}],
        [{"Uid": 7, "NotificationId": "n1", "Email": someone}],
    )
    with pytest.raises(OwnershipError) as error:
        kind.delete({"uid": 7, "email": EMAIL})
    assert str(error.value) == f"uid 7 now holds {someone!r}, not {EMAIL!r}"
    assert aws.tables["users"].items == [{"Uid": 7, "Email": someone}]
    assert aws.tables["tokens"].items == [{"Uid": 7, "Token": "t"}]
    assert len(aws.tables["notes"].items) == 1


def test_user_delete_refuses_notifications_addressed_to_someone_else() -> None:
    kind, aws = user_kind(
        [{"Uid": 7, "Email": EMAIL}],
        [],
        [{"Uid": 7, "NotificationId": "n1", "Email": "alice@example.com"}],
    )
    with pytest.raises(OwnershipError, match=r"addressed to 'alice@example\.com'"):
        kind.delete({"uid": 7, "email": EMAIL})
    assert len(aws.tables["notes"].items) == 1


def test_user_exists_only_while_the_uid_holds_the_journaled_email() -> None:
    kind, _ = user_kind([{"Uid": 7, "Email": "alice@example.com"}], [], [])
    assert kind.exists({"uid": 7, "email": EMAIL}) is None
    kind, _ = user_kind([{"Uid": 7, "Email": EMAIL}], [], [])
    assert kind.exists({"uid": "7", "email": EMAIL}) == Found(
        "user", {"uid": 7, "email": EMAIL}, f"user {EMAIL}", marker=EMAIL
    )


def test_a_declared_kind_built_directly_has_the_documented_defaults() -> None:
    table = FakeTable(["id"], [{"id": "1"}])
    aws: Any = FakeAws(notes=table)
    kind = DeclaredKind("note", PROFILE, aws, table="notes", key=["id"], marker="m")
    assert (kind.index, kind.sweep_order, kind.profile) == ("", 50, PROFILE)
    found = kind.exists({"id": "1"})
    assert found is not None and found.ids == {"id": "1", "m": ""} and found.marker == ""


def test_found_summaries_name_every_key_and_scans_are_projected() -> None:
    items = [{"owner": MINE, "note_id": "a", "body": "not read"}]
    table = FakeTable(["owner", "note_id"], items)
    kind = declared(table)
    [found] = kind.find("itest-")
    assert found.summary == f"note owner={MINE}, note_id=a in notes"
    scan = table.calls[0][1]
    assert scan["ProjectionExpression"] == "#p0, #p1"
    assert scan["ExpressionAttributeNames"] == {"#a": "owner", "#p0": "owner", "#p1": "note_id"}
    kind.related(MINE)
    query = table.calls[-1][1]
    assert query["ProjectionExpression"] == "#p0, #p1"


def test_a_query_page_without_items_finds_nothing() -> None:
    class Empty(FakeTable):
        def query(self, **kwargs: Any) -> dict[str, Any]:
            return {}

    assert declared(Empty(["owner", "note_id"])).related(MINE) == []
