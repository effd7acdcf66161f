"""The gate before every create (harness/safety/guards.py ``create_gate``, asked by
harness/cleanup/ledger.py): a kind the run does not know, or an intent whose marker is not
this run's, is refused before anything is journaled or sent; an ``fn`` that answers no ids is
named in one line and its intent kept for cleanup; ``ledger.put`` writes a declared kind's row
through the same path, never over an existing one. Pure logic, on the dict kind and the
in-memory table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.cleanup.journal import Journal, replay
from harness.cleanup.ledger import CreateRefused, Ledger, NotCreated, describe_fn
from harness.config import Profile
from harness.kinds.base import Kind
from harness.kinds.declared import DeclaredKind
from harness.safety.guards import Owner, create_gate, unknown_kind
from harness.safety.protect import ProtectedTargetError, refuse_create
from tests.unit.fake_table import FakeAws, FakeTable
from tests.unit.stubs import DictKind, ns

OURS = ns(5, "aaaa")
OTHER = ns(5, "bbbb")
ORIGINS = {"account": "declared in environments.toml", "queue": "the engine's"}


class Calls:
    """An ``fn`` that counts its calls (the service's requests) and answers ``answer``."""

    def __init__(self, answer: Any = None) -> None:
        self.count = 0
        self.answer = {"id": "1"} if answer is None else answer

    def __call__(self) -> Any:
        self.count += 1
        return self.answer


def kinds() -> dict[str, Kind]:
    return {"account": DictKind("account"), "queue": DictKind("queue")}


def ledger(tmp_path: Path, kinds_: dict[str, Kind] | None = None, **kwargs: Any) -> Ledger:
    gate = create_gate(kinds_ or kinds(), Owner(run=OURS.run), lambda: ORIGINS)
    deleted: list[dict[str, Any]] = []

    def delete(resource: Any) -> Any:
        deleted.append(dict(resource.ids))
        return "deleted"

    made = Ledger(Journal(tmp_path / "gw0.jsonl"), delete, gate=gate, **kwargs)
    made.deleted = deleted  # type: ignore[attr-defined]
    return made


def journaled(tmp_path: Path) -> list[Any]:
    path = tmp_path / "gw0.jsonl"
    return replay(path) if path.exists() else []


# -- refused before anything is journaled or sent ----------------------------------------------


def test_an_unknown_kind_is_refused_naming_the_known_ones_and_where_each_came_from(
    tmp_path: Path,
) -> None:
    made, fn = ledger(tmp_path), Calls()
    with pytest.raises(CreateRefused) as error:
        made.create("acount", {"marker": OURS.name("a")}, fn)
    assert str(error.value) == (
        "no resource kind 'acount': nothing was created or sent; known kinds: account "
        "(declared in environments.toml), queue (the engine's); did you mean 'account'?"
    )
    assert fn.count == 0 and journaled(tmp_path) == [] and made.live() == []
    assert made.stats.created == 0 and made.recorded == []


def test_an_unknown_kind_far_from_every_known_one_gets_no_guess() -> None:
    message = unknown_kind("zzz", kinds(), {})
    assert message == (
        "no resource kind 'zzz': nothing was created or sent; known kinds: account (unknown "
        "origin), queue (unknown origin)"
    )
    assert unknown_kind("zzz", {}, {}).endswith("known kinds: none")


@pytest.mark.parametrize(
    ("marker", "reason"),
    [
        ("plain-dave", "it carries no harness namespace"),
        (None, "it carries no harness namespace"),
        (OTHER.name("dave"), f"it belongs to run {OTHER.run}, not {OURS.run}"),
        (f"{OURS.name('dave')}@gmail.com", "it carries no harness namespace"),
    ],
)
def test_an_intent_whose_marker_is_not_this_runs_is_refused_before_the_request(
    tmp_path: Path, marker: str | None, reason: str
) -> None:
    made, fn = ledger(tmp_path), Calls()
    intent = {"key": "k"} if marker is None else {"key": "k", "marker": marker}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(intent.items()))
    with pytest.raises(CreateRefused) as error:
        made.create("account", intent, fn)
    assert str(error.value) == (
        f"refusing to create account({shown}): {reason} (the kind's marker is what cleanup "
        f"checks before deleting it); name it with namespace.name() or namespace.email()"
    )
    assert fn.count == 0 and journaled(tmp_path) == [] and made.live() == []


def test_an_intent_of_this_run_passes_the_gate_and_is_journaled_first(tmp_path: Path) -> None:
    made, fn = ledger(tmp_path), Calls({"id": "7"})
    other_worker = ns(5, "aaaa", worker="gw3")
    made.create("account", {"marker": other_worker.name("a")}, fn)
    resource = made.create("account", {"marker": OURS.email("b")}, fn)
    assert fn.count == 2 and resource.ids == {"marker": OURS.email("b"), "id": "7"}
    assert [r.state for r in journaled(tmp_path)] == ["created", "created"]


def test_an_intent_that_is_not_a_mapping_is_refused_before_anything(tmp_path: Path) -> None:
    made, fn = ledger(tmp_path), Calls()
    with pytest.raises(CreateRefused) as error:
        made.create("account", "plain-dave", fn)  # type: ignore[arg-type]
    assert str(error.value) == (
        "ledger.create('account', …): the intent must be a mapping of ids, e.g. "
        "{'username': namespace.name()}, not str 'plain-dave'"
    )
    assert fn.count == 0 and journaled(tmp_path) == []


def test_a_ledger_without_a_gate_checks_nothing_but_the_shape(tmp_path: Path) -> None:
    """Recovery's ledger only cleans; unit tests of cleanup use it with any kind."""
    made = Ledger(Journal(tmp_path / "gw0.jsonl"), lambda r: "deleted")
    assert made.create("ghost", {"key": "k"}, Calls()).ids == {"key": "k", "id": "1"}


def test_the_protected_refusal_comes_before_the_gate(tmp_path: Path) -> None:
    made, fn = ledger(tmp_path, protected="production"), Calls()
    expected = str(refuse_create("production", "acount"))
    with pytest.raises(ProtectedTargetError) as error:
        made.create("acount", {"marker": "x"}, fn)
    assert str(error.value) == expected
    with pytest.raises(ProtectedTargetError) as error:
        made.put("acount", {"marker": "x"})
    assert str(error.value) == expected
    assert fn.count == 0 and journaled(tmp_path) == []


# -- what fn answers ----------------------------------------------------------------------------


def register() -> str:
    return "created"


def test_fn_answering_no_mapping_is_named_in_one_line_and_its_intent_kept(tmp_path: Path) -> None:
    made = ledger(tmp_path)
    name = OURS.name("a")
    with pytest.raises(CreateRefused) as error:
        made.create("account", {"marker": name}, register)  # type: ignore[arg-type]
    line = register.__code__.co_firstlineno
    assert str(error.value) == (
        f"ledger.create('account', …): register() ({__file__}:{line}) returned str 'created', "
        f"not the ids the account is deleted by; return a mapping such as reply.json() (the "
        f"intent {{'marker': '{name}'}} is kept and cleaned up by it)"
    )
    assert "\n" not in str(error.value)
    (resource,) = made.live()
    assert resource.ids == {"marker": name} and resource.state == "pending"
    assert [r.state for r in journaled(tmp_path)] == ["pending"]
    made.cleanup()
    assert made.deleted == [{"marker": name}]  # type: ignore[attr-defined]


def test_fn_answering_ids_that_move_the_marker_out_of_the_run_is_refused(tmp_path: Path) -> None:
    made, name = ledger(tmp_path), OURS.name("a")
    fn = Calls({"marker": "plain-dave", "id": "9"})
    with pytest.raises(CreateRefused) as error:
        made.create("account", {"marker": name}, fn)
    message = str(error.value)
    assert message.startswith(
        f"ledger.create('account', …): {describe_fn(fn)} returned ids "
        "{'marker': 'plain-dave', 'id': '9'} that the gate refuses (refusing to create "
        "account(id=9, marker=plain-dave): it carries no harness namespace"
    )
    assert message.endswith(f"the intent {{'marker': '{name}'}} is kept and cleaned up by it")
    (resource,) = made.live()
    assert resource.ids == {"marker": name}
    assert [r.ids for r in journaled(tmp_path)] == [{"marker": name}]


def test_fn_answering_ids_of_this_run_is_merged(tmp_path: Path) -> None:
    made, name = ledger(tmp_path), OURS.name("a")
    resource = made.create("account", {"marker": name}, Calls({"marker": name, "id": "2"}))
    assert resource.ids == {"marker": name, "id": "2"} and resource.state == "created"


def test_describe_fn_names_functions_lambdas_and_callables() -> None:
    assert describe_fn(register) == (f"register() ({__file__}:{register.__code__.co_firstlineno})")
    answer: Any = lambda: {}  # noqa: E731
    assert describe_fn(answer).startswith(
        "test_describe_fn_names_functions_lambdas_and_callables.<locals>.<lambda>() ("
    )
    assert describe_fn(Calls()) == "Calls()"


def test_a_long_answer_is_cut_in_the_line(tmp_path: Path) -> None:
    made = ledger(tmp_path)
    with pytest.raises(CreateRefused) as error:
        made.create("account", {"marker": OURS.name("a")}, lambda: "x" * 500)  # type: ignore[arg-type, return-value]
    assert f"returned str '{'x' * 78}…, not" in str(error.value)
    with pytest.raises(CreateRefused) as error:
        made.create("account", {"marker": OURS.name("b")}, lambda: "y" * 78)  # type: ignore[arg-type, return-value]
    assert f"returned str '{'y' * 78}', not" in str(error.value)


# -- NotCreated: the create function knows nothing was written ---------------------------------


def taken() -> dict[str, Any]:
    raise NotCreated("the key is taken; nothing was written")


def test_not_created_settles_the_intent_at_once(tmp_path: Path) -> None:
    made = ledger(tmp_path)
    kept = [made.create("account", {"marker": OURS.name(f"k{i}")}, Calls()) for i in range(2)]
    with pytest.raises(NotCreated, match="nothing was written"):
        made.create("account", {"marker": OURS.name("a")}, taken)
    assert made.live() == kept and made.recorded == kept
    assert made.stats.created == 2
    states = {r.ids["marker"]: (r.state, r.error) for r in journaled(tmp_path)}
    assert states == {
        OURS.name("k0"): ("created", ""),
        OURS.name("k1"): ("created", ""),
        OURS.name("a"): ("deleted", "not created"),
    }
    assert made.cleanup().deleted == kept[::-1]
    assert made.deleted == [r.ids for r in kept[::-1]]  # type: ignore[attr-defined]


def test_not_created_as_the_first_create_leaves_nothing_counted(tmp_path: Path) -> None:
    made = ledger(tmp_path)
    with pytest.raises(NotCreated):
        made.create("account", {"marker": OURS.name("a")}, taken)
    assert made.stats.created == 0 and made.live() == [] and made.recorded == []


# -- put: a row written the way the service would ---------------------------------------------

PROFILE = Profile(name="local")


def accounts(table: FakeTable) -> DeclaredKind:
    spec = {"table": "accounts", "key": ["username"], "marker": "username"}
    return DeclaredKind.from_spec("account", spec, PROFILE, FakeAws(accounts=table))  # type: ignore[arg-type]


def sessions(table: FakeTable) -> DeclaredKind:
    spec = {"table": "sessions", "key": ["session_id"], "marker": "username"}
    return DeclaredKind.from_spec("session", spec, PROFILE, FakeAws(sessions=table))  # type: ignore[arg-type]


def test_put_journals_the_items_key_and_marker_then_writes_it(tmp_path: Path) -> None:
    table = FakeTable(["username"])
    made = ledger(tmp_path, {"account": accounts(table)})
    name = OURS.name("dave")
    resource = made.put("account", {"username": name, "password_hash": "h", "n": 3}, scope="t")
    assert resource.ids == {"username": name} and resource.scope == "t"
    assert table.items == [{"username": name, "password_hash": "h", "n": 3}]
    (call,) = table.calls
    assert call == (
        "put_item",
        {
            "Item": {"username": name, "password_hash": "h", "n": 3},
            "ConditionExpression": "attribute_not_exists(#k)",
            "ExpressionAttributeNames": {"#k": "username"},
        },
    )
    assert [(r.kind, r.ids, r.state) for r in journaled(tmp_path)] == [
        ("account", {"username": name}, "created")
    ]


def test_put_takes_the_key_and_the_marker_when_they_differ(tmp_path: Path) -> None:
    table = FakeTable(["session_id"])
    made = ledger(tmp_path, {"session": sessions(table)})
    name = OURS.name("dave")
    resource = made.put("session", {"session_id": "s1", "username": name, "ttl": 1})
    assert resource.ids == {"session_id": "s1", "username": name} and resource.scope == ""


def test_put_of_a_name_outside_the_namespace_writes_nothing(tmp_path: Path) -> None:
    table = FakeTable(["username"])
    made = ledger(tmp_path, {"account": accounts(table)})
    with pytest.raises(CreateRefused, match=r"refusing to create account\(username=plain-dave\)"):
        made.put("account", {"username": "plain-dave"})
    assert table.items == [] and table.calls == [] and journaled(tmp_path) == []


def test_put_of_an_item_without_its_key_or_marker_is_refused_first(tmp_path: Path) -> None:
    table = FakeTable(["session_id"])
    made = ledger(tmp_path, {"session": sessions(table)})
    with pytest.raises(CreateRefused) as error:
        made.put("session", {"ttl": 1})
    assert str(error.value) == (
        "ledger.put('session', …): the item has no session_id, username; kind session is "
        "keyed by ['session_id'] and marked by 'username' in table sessions"
    )
    with pytest.raises(CreateRefused, match="has no username;"):
        made.put("session", {"session_id": "s"})
    assert table.calls == [] and journaled(tmp_path) == []


def test_put_never_replaces_an_existing_row_and_leaves_nothing_to_clean(tmp_path: Path) -> None:
    name = OURS.name("dave")
    theirs = {"session_id": "s1", "username": "alice", "ttl": 1}
    table = FakeTable(["session_id"], [theirs])
    made = ledger(tmp_path, {"session": sessions(table)})
    with pytest.raises(NotCreated) as error:
        made.put("session", {"session_id": "s1", "username": name})
    assert str(error.value) == (
        "ledger.put('session', …): an item with key {'session_id': 's1'} is already in "
        "sessions; not replacing it (nothing was written)"
    )
    assert table.items == [theirs]
    assert made.live() == [] and [r.state for r in journaled(tmp_path)] == ["deleted"]


def test_put_passes_on_other_errors_and_keeps_the_intent(tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    class Broken(FakeTable):
        def put_item(self, **kwargs: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceeded"}}, "PutItem")

    made = ledger(tmp_path, {"account": accounts(Broken(["username"]))})
    with pytest.raises(ClientError):
        made.put("account", {"username": OURS.name("a")})
    assert [r.state for r in made.live()] == ["pending"]  # it may have been written


def test_put_of_a_kind_without_put_or_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    made = ledger(tmp_path)
    with pytest.raises(CreateRefused) as error:
        made.put("account", {"marker": OURS.name("a")})
    assert str(error.value) == (
        "kind 'account' has no direct write (intent/put): create it through its service with "
        "ledger.create(kind, intent, fn), or give the kind intent(item) and put(item)"
    )
    with pytest.raises(CreateRefused, match="did you mean 'account'"):
        made.put("acount", {"marker": OURS.name("a")})
    with pytest.raises(CreateRefused, match="has no direct write"):
        DictKind().put({"marker": OURS.name("a")})
    plain = Ledger(Journal(tmp_path / "other.jsonl"), lambda r: "deleted")
    with pytest.raises(CreateRefused) as error:
        plain.put("account", {"marker": OURS.name("a")})
    assert str(error.value) == "ledger.put('account', …): this ledger knows no kinds"
    assert journaled(tmp_path) == []


# -- where each kind came from ------------------------------------------------------------------


def test_kind_origins_name_the_engine_adapter_modules_entry_points_and_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    from harness.kinds import registry

    module = "adapter_origins_beside_the_profiles_file"
    (tmp_path / f"{module}.py").write_text(
        "from harness.kinds.base import Kind\n"
        "class Order(Kind):\n"
        '    name = "order"\n'
        "class Shared(Kind):\n"
        '    name = "shared"\n'
    )
    installed = types.ModuleType("installed_adapter")
    exec(  # a module an installed package names in the entry-point group
        'from harness.kinds.base import Kind\nclass Invoice(Kind):\n    name = "invoice"\n',
        installed.__dict__,
    )
    label = "entry point billing = billing.kinds of package billing"
    monkeypatch.setattr(registry, "_installed_adapters", lambda: ((installed, label),))
    monkeypatch.setattr(sys, "path", list(sys.path))
    profile = Profile(
        name="shop",
        adapters=(module,),
        config_dir=str(tmp_path),
        config_file=str(tmp_path / "profiles.toml"),
        kinds={"note": {"table": "notes", "key": ["id"], "marker": "owner"}},
    )
    try:
        origins = registry.kind_origins(profile)
    finally:
        sys.modules.pop(module, None)
    assert origins == {
        "queue": "the engine's",
        "lease": "the engine's",
        "kafka_group": "the engine's",
        "kafka_topic": "the engine's",
        "order": f"adapter module {module}",
        "shared": f"adapter module {module}",
        "invoice": label,
        "note": "declared in profiles.toml",
    }
    assert registry.kind_origins(Profile(name="x", kinds={"n": {}}))["n"] == (
        "declared in the profile"
    )


def test_a_kind_found_twice_keeps_its_first_origin_and_two_classes_are_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    from harness.config import ConfigError
    from harness.kinds import registry

    first = types.ModuleType("first_adapter")
    exec("from harness.kinds.base import Kind\nclass A(Kind):\n    name = 'a'\n", first.__dict__)
    first.A.__module__ = "first_adapter"
    monkeypatch.setattr(
        registry, "_installed_adapters", lambda: ((first, "entry point one"), (first, "two"))
    )
    assert registry.kind_origins(Profile(name="x"))["a"] == "entry point one"
    second = types.ModuleType("second_adapter")
    exec("from harness.kinds.base import Kind\nclass A(Kind):\n    name = 'a'\n", second.__dict__)
    second.A.__module__ = "second_adapter"
    monkeypatch.setattr(registry, "_installed_adapters", lambda: ((first, "one"), (second, "two")))
    with pytest.raises(ConfigError, match="two kinds are named 'a'"):
        registry.kind_origins(Profile(name="x"))
