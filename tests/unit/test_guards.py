"""The ownership gate (harness/safety/guards.py): what it lets through and what it refuses,
on the single and the batched delete path, with the exact reasons it gives."""

from __future__ import annotations

import pytest

from harness.cleanup.journal import Resource
from harness.cleanup.ledger import OwnershipError
from harness.kinds.base import Found
from harness.namespace import TEST_DOMAIN
from harness.safety.guards import Owner, check, guarded_batch_delete, guarded_deleter
from tests.unit.stubs import DictKind, ns

OURS = ns(5, "aaaa")
OTHER = ns(5, "bbbb")  # another run started in the same second: only the suffix differs


def resource(marker: str | None, kind: str = "thing", key: str = "k") -> Resource:
    ids: dict[str, str] = {"key": key}
    if marker is not None:
        ids["marker"] = marker
    return Resource(seq=1, kind=kind, ids=ids, state="created")


# -- Owner ---------------------------------------------------------------------------------


def test_owner_of_a_run_accepts_its_own_namespace_and_returns_it() -> None:
    owner = Owner(run=OURS.run)
    assert owner.marker(OURS.name("q"), "x") == OURS
    assert owner.marker(OURS.email("u"), "x") == OURS
    assert owner.email(OURS.email("u")) == OURS
    # another worker of the same run is still this run
    other_worker = ns(5, "aaaa", worker="gw7")
    assert owner.marker(other_worker.name("q"), "x") == other_worker


def test_owner_of_a_run_refuses_another_runs_namespace_naming_both() -> None:
    owner = Owner(run=OURS.run)
    message = f"refusing to delete the queue: it belongs to run {OTHER.run}, not {OURS.run}"
    with pytest.raises(OwnershipError) as error:
        owner.marker(OTHER.name("q"), "the queue")
    assert str(error.value) == message
    with pytest.raises(OwnershipError, match="belongs to run"):
        owner.email(OTHER.email("u"))


def test_any_run_owner_accepts_every_harness_namespace() -> None:
    owner = Owner(run=None)
    assert owner.marker(OTHER.name("q"), "x") == OTHER
    assert owner.email(OURS.email()) == OURS


@pytest.mark.parametrize("value", [None, "", "alice", "queue-without-namespace"])
def test_a_marker_without_a_namespace_is_refused_by_every_owner(value: str | None) -> None:
    for owner in (Owner(run=OURS.run), Owner(run=None)):
        with pytest.raises(OwnershipError) as error:
            owner.marker(value, "the item")
        assert str(error.value) == "refusing to delete the item: it carries no harness namespace"


@pytest.mark.parametrize(
    "email",
    [
        None,
        "",
        "alice@example.com",
        f"{OURS.name('u')}@gmail.com",  # harness-shaped, real domain: someone's
        f"{OURS.name('u')}@example.test",
    ],
)
def test_an_email_not_made_by_the_harness_is_refused(email: str | None) -> None:
    for owner in (Owner(run=OURS.run), Owner(run=None)):
        with pytest.raises(OwnershipError) as error:
            owner.email(email)
        assert str(error.value) == (
            f"refusing to delete the item of email {email!r}: it carries no harness namespace"
        )
        if email:
            # an address is an email marker too: the namespace inside is not enough
            with pytest.raises(OwnershipError, match="no harness namespace"):
                owner.marker(email, "x")


def test_a_marker_with_the_namespace_but_not_an_email_is_read_as_a_name() -> None:
    assert Owner(run=OURS.run).marker(f"queue-{OURS.name('q')}-dlq", "x") == OURS
    assert OURS.email().endswith("@" + TEST_DOMAIN)


# -- check -----------------------------------------------------------------------------------


def test_check_reads_the_kinds_marker_and_names_the_item() -> None:
    kind = DictKind("user")
    assert check(kind, {"key": "k", "marker": OURS.email()}, Owner(run=OURS.run)) == OURS
    with pytest.raises(OwnershipError) as error:
        check(kind, {"marker": "alice@example.com", "key": "k"}, Owner(run=OURS.run))
    assert str(error.value) == (
        "refusing to delete user(key=k, marker=alice@example.com): it carries no harness namespace"
    )


# -- what the service wrote for a resource goes with it (the cascade) ---------------------------


def accounts_and_notes() -> tuple[DictKind, DictKind, str]:
    accounts, notes = DictKind("account"), DictKind("note")
    name = OURS.name("acct")
    accounts.add("k", name)
    return accounts, notes, name


def test_what_the_service_wrote_for_a_resource_is_deleted_with_it_through_the_gate() -> None:
    accounts, notes, name = accounts_and_notes()
    welcome = notes.add("welcome", name)
    notes.related_of[name] = [welcome]
    heard: list[Found] = []
    kinds = {"account": accounts, "note": notes}
    delete = guarded_deleter(kinds, Owner(run=OURS.run), on_related=heard.append)
    assert delete(resource(name, kind="account")) == "deleted"
    assert accounts.store == {} and notes.store == {}
    assert notes.deleted == [{"key": "welcome", "marker": name}] and heard == [welcome]


def test_without_the_cascade_only_the_resource_is_deleted() -> None:
    accounts, notes, name = accounts_and_notes()
    notes.related_of[name] = [notes.add("welcome", name)]
    delete = guarded_deleter(
        {"account": accounts, "note": notes}, Owner(run=OURS.run), cascade=False
    )
    assert delete(resource(name, kind="account")) == "deleted"
    assert accounts.store == {} and "welcome" in notes.store and notes.deleted == []


def test_a_related_item_that_belongs_but_is_not_ours_is_refused_by_the_gate() -> None:
    """The resource's name on a real mail domain belongs to it by the rule, yet carries no
    harness namespace the gate accepts: refused, not deleted."""
    accounts, notes, name = accounts_and_notes()
    notes.related_of[name] = [notes.add("theirs", name + "@gmail.com")]
    delete = guarded_deleter({"account": accounts, "note": notes}, Owner(run=OURS.run))
    with pytest.raises(OwnershipError, match="carries no harness namespace"):
        delete(resource(name, kind="account"))
    assert "theirs" in notes.store and notes.deleted == []


def test_the_cascade_takes_only_what_belongs_never_a_look_alikes() -> None:
    """A kind's ``related`` may answer by prefix (a scan's ``begins_with``): ``…-acct1``'s
    session and another run's item are left alone — skipped, not refused, so the resource's
    own items still go and its cleanup succeeds."""
    accounts, notes, name = accounts_and_notes()
    own = [notes.add("own", name + "-session"), notes.add("mail", name + "@" + TEST_DOMAIN)]
    others = [
        notes.add("lookalike", OURS.name("acct1")),
        notes.add("lookalike-session", OURS.name("acct1") + "-session"),
        notes.add("theirs", OTHER.name("acct")),
    ]
    notes.related_of[name] = [others[0], own[0], others[1], own[1], others[2]]
    heard: list[Found] = []
    kinds = {"account": accounts, "note": notes}
    delete = guarded_deleter(kinds, Owner(run=OURS.run), on_related=heard.append)
    assert delete(resource(name, kind="account")) == "deleted"
    assert heard == own
    assert sorted(notes.store) == ["lookalike", "lookalike-session", "theirs"]
    assert [d["key"] for d in notes.deleted] == ["own", "mail"]


def test_the_cascade_judges_belonging_by_the_marker_the_gate_checks() -> None:
    """What a kind's ``marker(ids)`` says (what the gate and the conditional delete use), not
    the summary a ``related`` answer carries."""
    accounts, notes, name = accounts_and_notes()
    notes.add("x", OURS.name("acct1"))
    posing = Found("note", {"key": "x", "marker": OURS.name("acct1")}, "note x", marker=name)
    notes.related_of[name] = [posing]
    delete = guarded_deleter({"account": accounts, "note": notes}, Owner(run=OURS.run))
    assert delete(resource(name, kind="account")) == "deleted"
    assert "x" in notes.store and notes.deleted == []


def test_a_gone_resource_whose_writes_were_still_there_counts_as_deleted() -> None:
    accounts, notes, name = accounts_and_notes()
    accounts.store.clear()  # the account was already gone; its welcome note was not
    notes.related_of[name] = [notes.add("welcome", name)]
    heard: list[Found] = []
    kinds = {"account": accounts, "note": notes}
    delete = guarded_deleter(kinds, Owner(run=OURS.run), on_related=heard.append)
    assert delete(resource(name, kind="account")) == "deleted"
    assert notes.store == {} and len(heard) == 1


def test_related_items_already_gone_are_not_counted() -> None:
    accounts, notes, name = accounts_and_notes()
    ghost = Found("note", {"key": "gone", "marker": name}, "note gone", name)
    notes.related_of[name] = [ghost]
    accounts.store.clear()
    heard: list[Found] = []
    kinds = {"account": accounts, "note": notes}
    delete = guarded_deleter(kinds, Owner(run=OURS.run), on_related=heard.append)
    assert delete(resource(name, kind="account")) == "absent"
    assert heard == [] and notes.deleted == [{"key": "gone", "marker": name}]


def test_a_kind_that_does_not_answer_related_is_not_asked() -> None:
    from harness.kinds.base import Kind

    class Plain(DictKind):
        related = Kind.related  # the base class's: answers nothing, never asked

    accounts, _, name = accounts_and_notes()
    plain = Plain("plain")
    plain.related_of[name] = [plain.add("x", name)]
    delete = guarded_deleter({"account": accounts, "plain": plain}, Owner(run=OURS.run))
    assert delete(resource(name, kind="account")) == "deleted"
    assert "x" in plain.store


# -- the single delete path --------------------------------------------------------------------


def test_guarded_deleter_deletes_own_items_and_returns_the_kinds_outcome() -> None:
    kind = DictKind()
    kind.add("k", OURS.name("a"))
    delete = guarded_deleter({"thing": kind}, Owner(run=OURS.run))
    assert delete(resource(OURS.name("a"))) == "deleted"
    assert delete(resource(OURS.name("a"))) == "absent"
    assert len(kind.deleted) == 2


@pytest.mark.parametrize(
    ("marker", "reason"),
    [
        (OTHER.name("a"), "belongs to run"),
        ("alice@example.com", "no harness namespace"),
        (None, "no harness namespace"),
    ],
)
def test_guarded_deleter_refuses_before_the_kind_is_called(marker: str | None, reason: str) -> None:
    kind = DictKind()
    kind.add("k", marker or "x")
    delete = guarded_deleter({"thing": kind}, Owner(run=OURS.run))
    with pytest.raises(OwnershipError, match=reason):
        delete(resource(marker))
    assert kind.deleted == [] and "k" in kind.store


def test_guarded_deleter_refuses_an_unknown_kind_naming_the_fix() -> None:
    delete = guarded_deleter({"thing": DictKind()}, Owner(run=OURS.run))
    with pytest.raises(OwnershipError) as error:
        delete(resource(OURS.name("a"), kind="ghost"))
    assert str(error.value) == (
        "unknown resource kind 'ghost'; not deleting it (this profile declares no kind of "
        "that name, nor do its adapters)"
    )


# -- the batched delete path (the sweeper's) ---------------------------------------------------


def test_batch_delete_groups_by_kind_and_reports_counts() -> None:
    users, notes = DictKind("user"), DictKind("note")
    items = [
        users.add("u1", OURS.email("a")),
        notes.add("n1", OTHER.name("x")),
        users.add("u2", OTHER.email("b")),
    ]
    counts = guarded_batch_delete({"user": users, "note": notes}, Owner(run=None), items)
    assert counts == {"user": 2, "note": 1}
    assert [[i["key"] for i in batch] for batch in users.batches] == [["u1", "u2"]]
    assert [[i["key"] for i in batch] for batch in notes.batches] == [["n1"]]


def test_batch_delete_of_nothing_deletes_nothing() -> None:
    kind = DictKind()
    assert guarded_batch_delete({"thing": kind}, Owner(run=None), []) == {}
    assert kind.batches == []


@pytest.mark.parametrize(
    ("marker", "reason"),
    [(OTHER.name("b"), "belongs to run"), ("alice@example.com", "no harness namespace")],
)
def test_one_refusal_stops_the_whole_batch_for_a_run_owner(marker: str, reason: str) -> None:
    kind = DictKind()
    items = [kind.add("a", OURS.name("a")), kind.add("b", marker)]
    with pytest.raises(OwnershipError, match=reason):
        guarded_batch_delete({"thing": kind}, Owner(run=OURS.run), items)
    assert kind.batches == [] and set(kind.store) == {"a", "b"}


def test_batch_delete_refuses_an_unknown_kind() -> None:
    kind = DictKind()
    ghost = Found("ghost", {"key": "g", "marker": OURS.name("g")}, "ghost g", OURS.name("g"))
    with pytest.raises(OwnershipError) as error:
        guarded_batch_delete({"thing": kind}, Owner(run=None), [kind.add("a", OURS.name()), ghost])
    assert str(error.value) == "unknown resource kind 'ghost'; not deleting it"
    assert kind.batches == []


def test_batch_delete_refuses_an_item_whose_found_marker_disagrees_with_its_ids() -> None:
    """Found under a harness marker, but the ids (what is deleted) say something else."""
    kind = DictKind()
    ids = {"key": "a", "marker": OURS.name("a")}
    lying = Found("thing", ids, "thing a", marker=OTHER.name("zz"))
    with pytest.raises(OwnershipError) as error:
        guarded_batch_delete({"thing": kind}, Owner(run=None), [lying])
    assert str(error.value) == (
        f"refusing to delete thing a: found with marker {OTHER.name('zz')!r}, "
        f"but its ids say {OURS.name('a')!r}"
    )
    assert kind.batches == []


def test_batch_delete_accepts_an_item_found_without_a_marker_when_its_ids_carry_one() -> None:
    kind = DictKind()
    kind.store["a"] = OURS.name("a")
    item = Found("thing", {"key": "a", "marker": OURS.name("a")}, "thing a", marker="")
    assert guarded_batch_delete({"thing": kind}, Owner(run=None), [item]) == {"thing": 1}
