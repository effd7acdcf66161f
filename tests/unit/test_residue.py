"""The residue check (harness/cleanup/residue.py) on stub kinds: what counts as a leak, what
belongs to a recorded resource, what is kept, and that its removal goes through the gate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from harness.cleanup.journal import Resource
from harness.cleanup.residue import (
    ResidueResult,
    check,
    kept_matcher,
    look_by_key,
    look_namespace_wide,
)
from harness.kinds.base import Found, Kind
from harness.safety.guards import Owner
from tests.unit.stubs import DictKind, ns

OURS = ns(1, "aaaa")
OTHER = ns(1, "bbbb")


def recorded(kind: DictKind, key: str, state: str = "deleted") -> Resource:
    return Resource(seq=1, kind=kind.name, ids={"key": key, "marker": kind.store[key]}, state=state)  # type: ignore[arg-type]


def run_check(kinds: Mapping[str, DictKind], **kwargs: Any) -> ResidueResult:
    kwargs.setdefault("settle", 0)
    return check(kinds, str(OURS.run), Owner(run=OURS.run), **kwargs)


def test_a_clean_run_finds_nothing() -> None:
    kind = DictKind()
    kind.add("foreign", "alice@example.com")
    result = run_check({"thing": kind})
    assert result.clean and result.leaked == [] and result.cleaned == []
    assert kind.deleted == []


def test_an_item_under_the_runs_namespace_is_a_leak_and_is_removed() -> None:
    kind = DictKind()
    kind.add("leak", OURS.name("x"))
    kind.add("theirs", OTHER.name("x"))
    messages: list[str] = []
    result = run_check({"thing": kind}, progress=messages.append)
    assert [f.ids["key"] for f in result.leaked] == ["leak"]
    assert [f.ids["key"] for f in result.cleaned] == ["leak"]
    assert not result.clean
    assert set(kind.store) == {"theirs"}  # another run's item is not even looked at
    assert messages == []  # settle 0: nothing waited for


def test_a_recorded_resource_still_present_is_unfinished_cleanup_never_a_leak() -> None:
    """What the run recorded in its ledger is never reported as leaked: still there after
    the tests' cleanup, it is that cleanup unfinished (interrupted, cut short, failed) —
    removed here all the same, and the run is not clean."""
    kind = DictKind()
    kind.add("r", OURS.name("r"))
    result = run_check({"thing": kind}, recorded=[recorded(kind, "r")])
    assert [f.ids["key"] for f in result.unfinished] == ["r"]
    assert result.leaked == [] and result.belonging == [] and not result.clean
    assert [f.ids["key"] for f in result.cleaned] == ["r"] and "r" not in kind.store


def test_a_kept_resource_is_neither_looked_up_nor_deleted() -> None:
    kind = DictKind()
    kind.add("r", OURS.name("r"))
    is_kept = kept_matcher([{"key": "r", "_marker": OURS.name("r")}])
    result = run_check(
        {"thing": kind}, recorded=[recorded(kind, "r", state="kept")], is_kept=is_kept
    )
    assert [f.ids["key"] for f in result.kept] == ["r"]
    assert result.leaked == [] and result.clean
    assert kind.deleted == [] and "r" in kind.store


def test_items_derived_from_or_related_to_a_recorded_resource_belong_to_it() -> None:
    users, notes = DictKind("user"), DictKind("note", sweep_order=60)
    users.add("u", OURS.name("u"))
    derived = notes.add("n1", OURS.name("u"))
    related = notes.add("n2", OURS.name("u") + "-welcome")
    users.derived_of["u"] = [derived]
    notes.related_of[OURS.name("u")] = [related]
    resource = recorded(users, "u")
    del users.store["u"]  # the user itself was cleaned
    result = run_check({"user": users, "note": notes}, recorded=[resource])
    assert result.clean and result.leaked == []
    assert sorted(f.ids["key"] for f in result.belonging) == ["n1", "n2"]
    assert notes.store == {}  # removed with their owner


def test_an_item_found_namespace_wide_under_a_recorded_marker_belongs() -> None:
    users, notes = DictKind("user"), DictKind("note")
    users.add("u", OURS.name("u"))
    notes.add("n", OURS.name("u") + "-session")
    resource = recorded(users, "u")
    del users.store["u"]
    result = run_check({"user": users, "note": notes}, recorded=[resource])
    assert result.clean
    assert [f.ids["key"] for f in result.belonging] == ["n"]


def test_look_by_key_reports_present_and_belonging_apart() -> None:
    users, notes = DictKind("user"), DictKind("note")
    users.add("u", OURS.email("u"))
    child = notes.add("n", OURS.email("u"))
    users.derived_of["u"] = [child]
    ghost = Resource(seq=2, kind="ghost", ids={"key": "g"})
    present, belonging = look_by_key({"user": users, "note": notes}, [recorded(users, "u"), ghost])
    assert [f.ids["key"] for f in present] == ["u"]
    assert [f.ids["key"] for f in belonging] == ["n"]


def test_an_item_both_present_and_related_counts_once_as_present() -> None:
    kind = DictKind()
    item = kind.add("r", OURS.name("r"))
    kind.related_of[OURS.name("r")] = [item]
    present, belonging = look_by_key({"thing": kind}, [recorded(kind, "r")])
    assert [f.ids["key"] for f in present] == ["r"] and belonging == []


def test_presence_is_rechecked_until_the_item_is_gone() -> None:
    """An asynchronous delete in flight: the item vanishes during the settle window."""

    class Vanishing(DictKind):
        def exists(self, ids: Mapping[str, Any]) -> Found | None:
            found = super().exists(ids)
            self.store.pop(ids["key"], None)  # gone by the next look
            return found

    kind = Vanishing()
    kind.add("slow", OURS.name("slow"))
    messages: list[str] = []
    result = run_check({"thing": kind}, settle=5, interval=0.001, progress=messages.append)
    assert result.clean and result.leaked == []
    assert messages == ["residue check: 1 item(s) present, letting them settle (5s)"]


def test_removal_can_be_turned_off_for_a_protected_target() -> None:
    kind = DictKind()
    kind.add("leak", OURS.name("x"))
    result = run_check({"thing": kind}, remove=False)
    assert [f.ids["key"] for f in result.leaked] == ["leak"]
    assert result.cleaned == [] and kind.deleted == [] and "leak" in kind.store


def test_the_residue_removal_goes_through_the_gate() -> None:
    """A kind whose find returns another run's item under this run's prefix (a bug, or a
    crafted name): the gate refuses it and the refusal is reported, never raised."""

    class Lying(DictKind):
        def find(self, prefix: str) -> list[Found]:
            return [self.found(k) for k in sorted(self.store)]

    kind = Lying()
    kind.add("theirs", OTHER.name("x"))
    kind.add("foreign", "alice@example.com")
    result = run_check({"thing": kind})
    assert kind.deleted == [] and set(kind.store) == {"theirs", "foreign"}
    reasons = {item.ids["key"]: reason for item, reason in result.uncleaned}
    assert reasons["theirs"].startswith("OwnershipError: refusing to delete")
    assert "belongs to run" in reasons["theirs"]
    assert "no harness namespace" in reasons["foreign"]
    assert result.cleaned == [] and not result.clean


class Scanned(DictKind):
    """A kind whose find must scan: the residue check asks its table size first."""

    find_is_cheap = False

    def __init__(self, sizes: list[tuple[str, int]]) -> None:
        super().__init__("scanned")
        self.sizes = sizes


def test_a_scanning_kind_is_looked_at_only_while_its_tables_are_small(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import harness.cleanup.residue as residue

    monkeypatch.setattr(residue, "table_sizes", lambda kind, cache=None: kind.sizes)
    small, big, unknown = Scanned([("t", 10)]), Scanned([("t", 10), ("huge", 11)]), Scanned([])
    for kind in (small, big, unknown):
        kind.add("leak", OURS.name("x"))
    result = ResidueResult()
    assert [f.kind for f in look_namespace_wide({"s": small}, str(OURS.run), 10, result)] == [
        "scanned"
    ]
    assert look_namespace_wide({"s": big}, str(OURS.run), 10, result) == []
    assert look_namespace_wide({"s": unknown}, str(OURS.run), 10, result) == []
    assert look_namespace_wide({"s": small}, str(OURS.run), 0, result) == []
    assert result.skipped_tables == [("huge", 11)]
    messages: list[str] = []
    outcome = check(
        {"s": big},
        str(OURS.run),
        Owner(run=OURS.run),
        settle=0,
        scan_limit=10,
        progress=messages.append,
    )
    assert outcome.skipped_tables == [("huge", 11)] and outcome.clean
    assert messages == [
        "residue check: table huge holds ~11 items (> 10); items a test made there without "
        "the ledger are left to the sweeper"
    ]


def test_kept_matcher_matches_the_resource_and_what_carries_its_marker() -> None:
    is_kept = kept_matcher(
        [{"uid": 7, "email": OURS.email("k"), "namespace": "n", "_marker": OURS.email("k")}]
    )
    assert is_kept(Found("user", {"uid": 7}, "u"))
    assert is_kept(Found("user", {"email": OURS.email("k")}, "u"))
    assert is_kept(Found("note", {"id": 1}, "n", marker=OURS.email("k") + "-welcome"))
    assert not is_kept(Found("user", {"uid": 8}, "u"))
    assert not is_kept(Found("user", {"namespace": "n"}, "u"))  # not an identifying key
    assert not is_kept(Found("note", {"id": 1}, "n", marker=OTHER.email("k")))
    assert not kept_matcher([{"_marker": ""}])(Found("note", {"id": 1}, "n", marker="x"))


def test_a_leak_that_stays_through_the_settle_window_is_reported() -> None:
    kind = DictKind()
    kind.add("stuck", OURS.name("stuck"))
    messages: list[str] = []
    result = run_check({"thing": kind}, settle=0.05, interval=0.01, progress=messages.append)
    assert [f.ids["key"] for f in result.leaked] == ["stuck"]
    assert messages == [
        "residue check: 1 item(s) present, letting them settle (0.05s)",
        "residue check: 1 leaked item(s) removed; looking for what the service still writes "
        "for them (0.05s)",
    ]


def test_an_item_found_twice_namespace_wide_counts_once() -> None:
    kind = DictKind()
    kind.add("leak", OURS.name("x"))
    kind.add("other", OURS.name("y"))
    twice = kind.find
    kind.find = lambda prefix: twice(prefix) + twice(prefix)  # type: ignore[method-assign]
    result = run_check({"thing": kind})
    assert sorted(f.ids["key"] for f in result.leaked) == ["leak", "other"]


def test_an_owned_item_does_not_hide_the_leaks_found_after_it() -> None:
    kind = DictKind()
    kind.add("a-recorded", OURS.name("r"))
    kind.add("b-leak", OURS.name("x"))
    resource = recorded(kind, "a-recorded")
    result = run_check({"thing": kind}, recorded=[resource])
    assert [f.ids["key"] for f in result.unfinished] == ["a-recorded"]
    assert [f.ids["key"] for f in result.leaked] == ["b-leak"]


def test_recorded_resources_of_unknown_kinds_are_skipped_not_fatal() -> None:
    kind = DictKind()
    kind.add("r", OURS.name("r"))
    ghost = Resource(seq=1, kind="ghost", ids={"key": "g"}, state="deleted")
    present, _ = look_by_key({"thing": kind}, [ghost, recorded(kind, "r")])
    assert [f.ids["key"] for f in present] == ["r"]
    assert run_check({"thing": kind}, recorded=[ghost, recorded(kind, "r")]).unfinished


def test_related_items_are_asked_for_by_the_recorded_marker_of_kinds_that_answer() -> None:
    """Only kinds that override ``related`` are asked, with the resource's own marker; what
    they answer belongs to it when its marker continues the resource's."""

    class Silent(DictKind):
        related = Kind.related  # the default: answers nothing

    users, notes, silent = DictKind("user"), DictKind("note"), Silent("silent")
    users.add("u", OURS.name("u"))
    session = notes.add("s", OURS.name("u") + "-session")
    notes.related_of[OURS.name("u")] = [session]
    silent.related_of[OURS.name("u")] = [silent.add("z", "x")]
    present, belonging = look_by_key(
        {"silent": silent, "user": users, "note": notes}, [recorded(users, "u")]
    )
    assert [f.ids["key"] for f in present] == ["u"]
    assert [f.ids["key"] for f in belonging] == ["s"]


def test_what_belongs_to_a_kept_resource_is_kept_too() -> None:
    users, notes = DictKind("user"), DictKind("note")
    users.add("u", OURS.name("u"))
    child = notes.add("n", "notification-for-u")  # outside the prefix: found by key only
    users.derived_of["u"] = [child]
    kept, other = recorded(users, "u", state="kept"), recorded(users, "u")
    result = run_check({"user": users, "note": notes}, recorded=[kept])
    assert "n" in notes.store and notes.deleted == []  # not even looked up by key
    is_kept = kept_matcher([{"_marker": "notification-for-u"}])
    result = run_check({"user": users, "note": notes}, recorded=[other], is_kept=is_kept)
    assert "n" in notes.store and result.belonging == []


def test_scanning_kinds_before_cheap_ones_do_not_stop_the_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import harness.cleanup.residue as residue

    monkeypatch.setattr(residue, "table_sizes", lambda kind, cache=None: kind.sizes)
    big = Scanned([("huge", 99)])
    big.__dict__["sweep_order"] = 1
    cheap = DictKind("cheap", sweep_order=2)
    cheap.add("c", OURS.name("c"))
    for limit in (0, 10):
        found = look_namespace_wide({"b": big, "c": cheap}, str(OURS.run), limit, ResidueResult())
        assert [f.ids["key"] for f in found] == ["c"]
    one = Scanned([("t", 1)])
    one.add("s", OURS.name("s"))
    assert look_namespace_wide({"o": one}, str(OURS.run), 1, ResidueResult())


def test_table_sizes_describe_each_table_once() -> None:
    from harness.cleanup.residue import table_sizes
    from harness.config import Profile
    from harness.kinds.base import Setting
    from harness.kinds.declared import DeclaredKind

    class Describe:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def describe_table(self, TableName: str) -> dict[str, Any]:
            self.asked.append(TableName)
            return {"Table": {"ItemCount": 7} if TableName == "notes" else {}}

    class Aws:
        dynamodb_client = Describe()

    aws = Aws()
    profile = Profile(name="sandbox", settings={"a": "notes", "b": "notes", "c": "other"})
    note = DeclaredKind("note", profile, aws, table="notes", key=["id"], marker="m")  # type: ignore[arg-type]
    assert table_sizes(note) == [("notes", 7)]

    class Coded(DictKind):
        settings = (
            Setting("a", table=True),
            Setting("b", table=True),
            Setting("c"),
            Setting("d", table=True),
        )

    coded = Coded()
    coded.profile, coded.aws = profile, aws  # type: ignore[assignment]
    aws.dynamodb_client.asked.clear()
    assert table_sizes(coded) == [("notes", 7)]
    assert aws.dynamodb_client.asked == ["notes"]  # c is no table, d is unset


def test_the_documented_defaults() -> None:
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(check).parameters.items()}
    assert (defaults["settle"], defaults["interval"], defaults["scan_limit"]) == (3.0, 0.25, 1_000)
    assert defaults["remove"] is True


def test_a_kept_recorded_resource_is_not_looked_up_at_all() -> None:
    """Its derived items (found by key only: their marker names the run but does not start
    with it) are left alone; an unkept resource's are removed through the gate."""
    users, notes = DictKind("user"), DictKind("note")
    child = notes.add("n", "note-for-" + OURS.name("u"))
    users.add("u", OURS.name("u"))
    users.derived_of["u"] = [child]
    kept = recorded(users, "u", state="kept")
    del users.store["u"]
    assert run_check({"user": users, "note": notes}, recorded=[kept]).clean
    assert "n" in notes.store
    users.store["u"] = OURS.name("u")
    unkept = recorded(users, "u")
    del users.store["u"]
    result = run_check({"user": users, "note": notes}, recorded=[unkept])
    assert [f.ids["key"] for f in result.belonging] == ["n"] and notes.store == {}


def test_a_table_without_a_count_reads_as_empty() -> None:
    from harness.cleanup.residue import table_sizes
    from harness.config import Profile
    from harness.kinds.declared import DeclaredKind

    class Aws:
        class dynamodb_client:
            @staticmethod
            def describe_table(TableName: str) -> dict[str, Any]:
                return {"Table": {}}

    profile = Profile(name="sandbox")
    note = DeclaredKind("note", profile, Aws(), table="notes", key=["id"], marker="m")  # type: ignore[arg-type]
    assert table_sizes(note) == [("notes", 0)]
