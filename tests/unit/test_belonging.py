"""The rule of belonging (harness/namespace.py ``belongs``): an item belongs to a resource when
its marker equals the resource's, or continues it after a separator no namespace name can hold
there — never a bare prefix (``…-ann`` is not ``…-ann1``). Pure logic."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.cleanup.journal import Journal, run_dir
from harness.cleanup.ledger import Ledger
from harness.cleanup.liveness import Claim, RunFolder
from harness.cleanup.recovery import recover
from harness.kinds.base import Found, Kind, Outcome
from harness.namespace import TEST_DOMAIN, Namespace, RunId, belongs

NS = Namespace.parse("itest-20261127t172503-k3f9-gw1")
ANN = NS.name("ann")


@pytest.mark.parametrize(
    "marker",
    [
        ANN,
        ANN + "-session",  # a name's part after "-": names never hold one after their label
        ANN + "@" + TEST_DOMAIN,  # its email
        ANN + "#note",
        ANN + "/inbox",
        ANN + ".bak",
        ANN.upper(),  # emails compare without case; no two names differ by case alone
        "Itest-20261127t172503-k3f9-gw1-Ann-welcome",
    ],
)
def test_an_item_equal_to_or_continuing_the_name_after_a_separator_belongs(marker: str) -> None:
    assert belongs(marker, ANN)


@pytest.mark.parametrize(
    "marker",
    [
        ANN + "1",  # the look-alike: another name
        ANN + "b",
        ANN + "1-session",
        NS.email("ann1"),
        ANN.upper() + "1",
        (ANN + "X").upper(),  # a letter in either case continues the label
        ANN[:-1],  # a prefix of the name is not the name's
        NS.name("bob") + "-ann",
        "x" + ANN,
        str(NS),
        "",
    ],
)
def test_a_look_alike_or_another_name_does_not_belong(marker: str) -> None:
    assert not belongs(marker, ANN)


def test_a_name_in_a_namespace_is_not_the_namespaces_own() -> None:
    """A resource whose marker is a namespace (a token's) takes nothing of the names made in
    it; after a run id, "-" starts one of its workers."""
    assert belongs(str(NS), str(NS))
    assert not belongs(ANN, str(NS))
    assert not belongs(str(NS) + "0", str(NS))  # gw10 is another worker than gw1
    assert belongs(str(NS) + "@queue", str(NS))
    assert belongs(str(NS) + ":dlq", str(NS).upper())
    assert not belongs(str(NS), str(NS.run))
    assert not belongs(str(NS).upper(), str(NS.run))
    assert belongs(str(NS.run) + ".lease", str(NS.run))


def test_nothing_belongs_to_an_empty_marker_and_an_empty_marker_to_nothing() -> None:
    assert not belongs(ANN, "")
    assert not belongs(ANN, None)
    assert not belongs("", ANN)
    assert not belongs(None, ANN)
    assert not belongs("", "")


labels = st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True)


@given(labels, labels)
def test_two_names_of_one_namespace_never_belong_to_each_other(a: str, b: str) -> None:
    first, second = NS.name(a), NS.name(b)
    assert belongs(first, second) == (a == b)
    assert belongs(NS.email(a), second) == (a == b)


def test_a_label_outside_lowercase_letters_and_digits_is_refused() -> None:
    """The rule stands on it: a name continues only with [a-z0-9]."""
    for label in ("ann-1", "Ann", "ann_1", "ann@x"):
        with pytest.raises(ValueError) as error:
            NS.name(label)
        assert str(error.value) == (
            f"a name's label is lowercase letters and digits, not {label!r}"
        )
    assert NS.name("ann1") == str(NS) + "-ann1"


# -- declared kinds' related (harness/kinds/declared.py) -----------------------------------------


def test_a_declared_kind_that_scans_answers_only_what_belongs() -> None:
    """Its scan's ``begins_with(…-ann)`` also reads ``…-ann1``'s rows; ``related`` keeps only
    the resource's own."""
    from harness.config import Profile
    from harness.kinds.declared import DeclaredKind
    from tests.unit.fake_table import FakeAws, FakeTable

    rows = {
        "own": ANN,
        "session": ANN + "-session",
        "mail": NS.email("ann"),
        "lookalike": NS.name("ann1"),
        "lookalike-session": NS.name("ann1") + "-session",
        "other": NS.name("bob"),
    }
    table = FakeTable(["id"], [{"id": k, "Owner": v} for k, v in rows.items()], page=2)
    spec = {"table": "sessions", "key": ["id"], "marker": "Owner"}
    kind = DeclaredKind.from_spec("session", spec, Profile(name="sandbox"), FakeAws(sessions=table))  # type: ignore[arg-type]
    assert not kind.related_by_key
    assert sorted(f.ids["id"] for f in kind.related(ANN)) == ["mail", "own", "session"]
    assert sorted(f.ids["id"] for f in kind.related(NS.name("ann1"))) == [
        "lookalike",
        "lookalike-session",
    ]
    assert {name for name, _ in table.calls} == {"scan"}


# -- crash recovery (harness/cleanup/recovery.py, _clean_belonging) -------------------------------


class Rows(Kind):
    """Rows keyed by ``id``, their marker under ``owner``; ``related`` answers by prefix, as
    a scan's ``begins_with`` does, and never by key."""

    related_by_key = False

    def __init__(self, name: str, items: dict[str, str]) -> None:
        self.__dict__["name"] = name
        self.items = items  # id -> marker

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


def test_recovery_takes_the_dead_runs_resources_own_items_never_a_look_alikes(
    tmp_path: Path,
) -> None:
    """A dead run recorded ``…-ann`` (unsettled) and kept ``…-ann1`` for debugging (a failed
    test under --keep-on-failure): recovering ``…-ann`` asks a scanning kind for its rows,
    which answers by prefix; ``…-ann1``'s session stays for the sweeper."""
    run = RunId.generate()
    directory = run_dir(tmp_path, str(run))
    ann, ann1 = Namespace(run, "main").name("ann"), Namespace(run, "main").name("ann1")
    journal = Journal(directory / "main.jsonl")
    ledger = Ledger(journal, lambda r: "deleted")
    ledger.create("account", {"owner": ann}, lambda: {"id": ann})
    ledger.create("account", {"owner": ann1}, lambda: {"id": ann1}, scope="t1")
    ledger.keep("t1")
    journal.close()  # the process died here
    accounts = Rows("account", {ann: ann, ann1: ann1})
    sessions = Rows("session", {"s": ann + "-session", "s1": ann1 + "-session", "x": ann1})

    result = recover(
        Claim(RunFolder(str(run), "", directory), lease=None),
        {"account": accounts, "session": sessions},
    )

    assert [r.ids["id"] for r in result.deleted] == [ann]
    assert [r.ids["id"] for r in result.belonging] == ["s"]
    assert accounts.items == {ann1: ann1}
    assert sessions.items == {"s1": ann1 + "-session", "x": ann1}
    assert result.ok
