"""The declared SQL kind (harness/kinds/sql.py) against a real PostgreSQL server (its own
per test session, tests/postgres.py): the URL only from its variable, never printed;
``WHERE marker LIKE 'prefix%'`` (LIKE's wildcards taken literally) paged by the primary key;
rows by key in batches; what belongs to a resource and what is a look-alike; the gate's
condition in the DELETE statement, in a transaction; doctor's rows on the marker's index;
and a protected profile's connection that sends nothing but SELECT.

On the old code none of this exists: ``type = "sql"`` is refused as an unknown field of a
declared kind, so a run cannot find or delete a row of a SQL table."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
import pytest

from harness.cleanup.ledger import OwnershipError
from harness.clients.aws import Aws
from harness.config import ConfigError, Profile, TargetError
from harness.kinds.dynamo import Checkpoint, Progress, ScanControl
from harness.kinds.registry import declared_kind
from harness.kinds.sql import SqlKind, _like, _plain
from harness.kinds.stores import FAIL, OK, WARN, StoreCheck, preflight, store_checks
from harness.safety.guards import Owner, guarded_batch_delete
from harness.safety.protect import ProtectedTargetError, check_sql
from tests.postgres import postgres_url  # noqa: F401 - a fixture
from tests.unit.stubs import ns

NS = str(ns(1, "aaaa"))
VARIABLE = "TEST_ORDERS_DB_URL"


class Db:
    """A schema of its own in the session's database, dropped after the test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.schema = f"t_{secrets.token_hex(4)}"
        self.connection = psycopg.connect(url, autocommit=True)
        self.connection.execute(f"CREATE SCHEMA {self.schema}")

    def run(self, statement: str, *params: Any) -> Any:
        return self.connection.execute(statement.replace("S.", f"{self.schema}."), params)

    def rows(self, table: str = "orders") -> list[tuple[Any, ...]]:
        return self.run(f"SELECT * FROM S.{table} ORDER BY 1, 2").fetchall()

    def close(self) -> None:
        self.connection.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self.connection.close()


@pytest.fixture
def db(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Db]:  # noqa: F811
    database = Db(postgres_url)
    database.run("CREATE TABLE S.orders (id serial PRIMARY KEY, owner text NOT NULL, item text)")
    monkeypatch.setenv(VARIABLE, postgres_url)
    try:
        yield database
    finally:
        database.close()


def profile(protected: bool = False) -> Profile:
    return Profile(name="prod" if protected else "t", aws_region="us-east-1", protected=protected)


def kind_of(db: Db, protected: bool = False, **extra: Any) -> SqlKind:
    spec = {
        "type": "sql",
        "url_variable": VARIABLE,
        "table": f"{db.schema}.orders",
        "key": ["id"],
        "marker": "owner",
        **extra,
    }
    made = declared_kind("order", spec, profile(protected), Aws(profile(protected)))
    assert isinstance(made, SqlKind)
    return made


def add(db: Db, *owners: str) -> list[int]:
    return [
        db.run("INSERT INTO S.orders (owner) VALUES (%s) RETURNING id", o).fetchone()[0]
        for o in owners
    ]


def test_declared_with_its_fields(db: Db) -> None:
    kind = kind_of(db, sweep_order=3, key="id")
    assert (kind.name, kind.sweep_order, kind.key, kind.marker_attribute) == (
        "order",
        3,
        ["id"],
        "owner",
    )
    assert (kind.url_variable, kind.url_secret, kind.store, kind.read_only) == (
        VARIABLE,
        "",
        "sql",
        False,
    )
    assert kind_of(db).sweep_order == 50 and kind_of(db, protected=True).read_only


def test_find_is_a_prefix_like_paged_by_the_key(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.kinds.sql.PAGE", 3)
    ids = add(db, *(f"{NS}-u{i}" for i in range(7)))
    add(db, "alice", f"{ns(2, 'bbbb')!s}-x", f"x{NS}")
    kind = kind_of(db)
    control = ScanControl()
    found = kind.find(f"{NS}-", scan=control)
    assert [f.ids for f in found] == [{"id": i, "owner": f"{NS}-u{n}"} for n, i in enumerate(ids)]
    assert control.calls == 3 and control.scanned == 7
    assert found[0].summary == f"order id={ids[0]} in {db.schema}.orders"
    assert found[0].marker == f"{NS}-u0" and found[0].kind == "order"


def test_like_wildcards_in_a_prefix_are_literal(db: Db) -> None:
    assert _like("a_b%c\\") == "a\\_b\\%c\\\\%"
    add(db, "a_b", "axb", "a%b1", "ab")
    kind = kind_of(db)
    assert [f.marker for f in kind.find("a_")] == ["a_b"]
    assert [f.marker for f in kind.find("a%")] == ["a%b1"]


def test_values_as_the_journal_keeps_them() -> None:
    from decimal import Decimal
    from uuid import UUID

    assert _plain(Decimal("3")) == 3 and isinstance(_plain(Decimal("3")), int)
    assert _plain(Decimal("2.5")) == 2.5
    assert _plain(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert [_plain(v) for v in (True, 1, 1.5, "s", None)] == [True, 1, 1.5, "s", None]


def test_related_keeps_what_belongs_never_a_look_alike(db: Db) -> None:
    add(db, f"{NS}-ann", f"{NS}-ann-x", f"{NS}-ann1", f"{NS}-ann")
    related = kind_of(db).related(f"{NS}-ann")
    assert sorted(f.marker for f in related) == [f"{NS}-ann", f"{NS}-ann", f"{NS}-ann-x"]


def test_exists_many_by_key_in_batches(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.kinds.sql.LOOKUP_BATCH", 2)
    ids = add(db, *(f"{NS}-u{i}" for i in range(5)))
    kind = kind_of(db)
    asked = [{"id": i, "owner": f"{NS}-u{n}"} for n, i in enumerate(ids)]
    found = kind.exists_many([*asked, {"id": 99999, "owner": "x"}, asked[0]])
    assert sorted(f.ids["id"] for f in found) == ids
    lost = kind.exists({"owner": f"{NS}-u1"})  # the create's answer was lost: by marker
    assert lost is not None and lost.ids == asked[1]
    assert kind.exists({"owner": f"{NS}-zz"}) is None and kind.exists({}) is None


def test_delete_carries_the_gates_condition(db: Db) -> None:
    mine, theirs = add(db, f"{NS}-ann", f"{NS}-bob")
    kind = kind_of(db)
    db.run("UPDATE S.orders SET owner = 'alice' WHERE id = %s", theirs)  # taken over
    with pytest.raises(OwnershipError, match=r"order \{'id': \d+\} in .* no longer carries"):
        kind.delete({"id": theirs, "owner": f"{NS}-bob"})
    assert kind.delete({"id": mine, "owner": f"{NS}-ann"}) == "deleted"
    assert kind.delete({"id": mine, "owner": f"{NS}-ann"}) == "absent"
    assert [r[:2] for r in db.rows()] == [(theirs, "alice")]


def test_a_lost_create_answer_deletes_exactly_its_marker(db: Db) -> None:
    add(db, f"{NS}-ann", f"{NS}-ann", f"{NS}-ann1")
    kind = kind_of(db)
    assert kind.delete({"owner": f"{NS}-ann"}) == "deleted"
    assert kind.delete({"owner": f"{NS}-ann"}) == "absent"
    assert [r[1] for r in db.rows()] == [f"{NS}-ann1"]


def test_delete_many_in_batches_with_the_marker_in_the_statement(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.kinds.sql.DELETE_BATCH", 2)
    ids = add(db, *(f"{NS}-u{i}" for i in range(5)), "alice")
    kind = kind_of(db)
    asked = [{"id": i, "owner": f"{NS}-u{n}"} for n, i in enumerate(ids[:5])]
    wrong = {"id": ids[5], "owner": f"{NS}-u9"}  # alice's row under a harness marker
    assert kind.delete_many([*asked, asked[0], wrong, {"owner": "no key"}]) == 5
    assert [r[1] for r in db.rows()] == ["alice"]


def test_the_gate_before_a_sweep_with_a_checkpoint(db: Db, tmp_path: Any) -> None:
    add(db, f"{NS}-ann", "alice")
    kind = kind_of(db)
    control = ScanControl(checkpoint=Checkpoint(tmp_path, "t"))
    mine = kind.find("itest-", scan=control)
    assert [f.marker for f in mine] == [f"{NS}-ann"]
    again = ScanControl(checkpoint=Checkpoint(tmp_path, "t"))
    assert [f.ids for f in kind.find("itest-", scan=again)] == [mine[0].ids] and again.calls == 0
    foreign = kind._found([2, "alice"])
    with pytest.raises(OwnershipError):
        guarded_batch_delete({"order": kind}, Owner(run=None), [*mine, foreign])
    assert len(db.rows()) == 2
    assert guarded_batch_delete({"order": kind}, Owner(run=None), mine) == {"order": 1}
    assert [r[1] for r in db.rows()] == ["alice"]


def test_the_marker_index_decides_whether_find_is_cheap(db: Db) -> None:
    kind = kind_of(db)
    assert kind.marker_index() == ("", False) and not kind.find_is_cheap
    assert not kind.related_by_key
    rows = kind.checks()
    assert [(r.name, r.status) for r in rows] == [("kind order", OK), ("kind order marker", WARN)]
    assert rows[0].detail == f"table {db.schema}.orders (~0 rows)"
    assert rows[1].detail == f"no index on owner: finding a run's rows scans {db.schema}.orders"
    assert rows[1].fix == f"CREATE INDEX ON {db.schema}.orders (owner text_pattern_ops)"
    db.run("CREATE INDEX plain_owner ON S.orders (owner)")
    kind = kind_of(db)
    index, serves = kind.marker_index()
    assert index.endswith("plain_owner") and not serves
    plain = kind.checks()[1]
    assert plain.status == WARN and "not for LIKE 'prefix%'" in plain.detail
    db.run("CREATE INDEX pattern_owner ON S.orders (owner text_pattern_ops)")
    kind = kind_of(db)
    assert kind.marker_index()[1] and kind.find_is_cheap and kind.related_by_key
    good = kind.checks()[1]
    assert good.status == OK and good.detail.startswith("owner indexed (")


def test_a_c_collation_index_serves_like_too(db: Db) -> None:
    db.run('CREATE INDEX c_owner ON S.orders (owner COLLATE "C")')
    assert kind_of(db).find_is_cheap


def test_store_sizes_counts_a_table_never_analysed(db: Db) -> None:
    add(db, "a", "b", "c")
    kind = kind_of(db)
    assert kind.store_sizes() == [(f"{db.schema}.orders", 3)]
    db.run("ANALYZE S.orders")
    assert kind.store_sizes() == [(f"{db.schema}.orders", 3)]


def test_a_missing_table_or_variable_is_one_line_naming_the_fix(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = kind_of(db, table=f"{db.schema}.nothere")
    (row,) = store_checks(missing)
    assert row.status == FAIL and row.detail.startswith(f"table {db.schema}.nothere does not exist")
    assert "postgresql://" not in row.detail and "password" not in row.detail
    with pytest.raises(ConfigError, match=r"fix table under \[t.kinds.order\]"):
        preflight({"order": missing})
    monkeypatch.delenv(VARIABLE)
    unset = kind_of(db)
    with pytest.raises(ConfigError, match=rf"\${VARIABLE} is not set: export it"):
        preflight({"order": unset})


def test_a_database_that_does_not_answer_is_the_target(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(VARIABLE, f"postgresql://u:sekrit@127.0.0.1:{port}/shop")
    kind = kind_of(db)
    with pytest.raises(TargetError) as caught:
        preflight({"order": kind})
    message = str(caught.value)
    assert f"host 127.0.0.1, port {port}, database shop" in message and "sekrit" not in message
    (row,) = store_checks(kind)
    assert row.unreachable and row.status == FAIL
    monkeypatch.setenv(VARIABLE, db.url.replace("@", "x@", 1).replace(":", ":", 1))
    wrong = kind_of(db)
    with pytest.raises(ConfigError, match=rf"refused the connection .*fix the URL in \${VARIABLE}"):
        wrong.connection  # noqa: B018


def test_a_protected_profile_sends_only_select(db: Db) -> None:
    (mine,) = add(db, f"{NS}-ann")
    kind = kind_of(db, protected=True)
    assert [f.marker for f in kind.find(f"{NS}-")] == [f"{NS}-ann"]
    with pytest.raises(ProtectedTargetError, match=r"protected target \[prod\]: SQL DELETE FROM"):
        kind.delete({"id": mine, "owner": f"{NS}-ann"})
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # the connection refuses too
        kind.connection.execute(f"DELETE FROM {db.schema}.orders")
    assert len(db.rows()) == 1
    check_sql("prod", "select 1")
    check_sql("prod", "SELECT\n1;")
    for statement in ("SELECT 1; DELETE FROM t", "  ", "WITH x AS (DELETE FROM t) SELECT 1"):
        with pytest.raises(ProtectedTargetError, match="only SELECT on a protected profile"):
            check_sql("prod", statement)


def test_the_url_from_a_secret(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    parts = psycopg.conninfo.conninfo_to_dict(db.url)
    with mock_aws():
        aws = Aws(profile())
        aws.secretsmanager.create_secret(Name="plain", SecretString=db.url)
        rds = {
            "host": parts["host"],
            "port": int(str(parts["port"])),
            "username": parts["user"],
            "password": parts["password"],
            "dbname": parts["dbname"],
        }
        aws.secretsmanager.create_secret(Name="rds", SecretString=json.dumps(rds))
        aws.secretsmanager.create_secret(Name="list", SecretString="[1]")
        for secret in ("plain", "rds"):
            spec = {"type": "sql", "url_secret": secret, "table": f"{db.schema}.orders"}
            kind = declared_kind(
                "order", {**spec, "key": ["id"], "marker": "owner"}, profile(), aws
            )
            assert isinstance(kind, SqlKind) and kind.source == f"the secret {secret}"
            assert kind.find("x") == []
        odd = SqlKind(
            "o",
            profile(),
            aws,
            table="t",
            key=["id"],
            marker="m",
            url_variable="",
            url_secret="list",
            sweep_order=50,
        )
        assert odd.url() == "[1]"


@pytest.fixture
def lines(db: Db) -> SqlKind:
    """A table keyed by two columns, its kind."""
    db.run(
        "CREATE TABLE S.lines (order_id int, line int, owner text NOT NULL, "
        "PRIMARY KEY (order_id, line))"
    )
    return kind_of(db, table=f"{db.schema}.lines", key=["order_id", "line"])


def test_a_two_column_key_pages_looks_up_and_deletes(
    db: Db, lines: SqlKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.kinds.sql.PAGE", 2)
    rows = [
        (1, 1, f"{NS}-a"),
        (1, 2, f"{NS}-a"),
        (2, 1, f"{NS}-b"),
        (2, 2, "alice"),
        (3, 1, f"{NS}-c"),
    ]
    for row in rows:
        db.run("INSERT INTO S.lines VALUES (%s, %s, %s)", *row)
    found = lines.find(f"{NS}-")
    assert [tuple(f.ids.values()) for f in found] == [r for r in rows if r[2] != "alice"]
    assert found[1].summary == f"order order_id=1, line=2 in {db.schema}.lines"
    assert lines.columns == ["order_id", "line", "owner"]
    asked: list[Mapping[str, Any]] = [
        {"order_id": 1, "line": 2, "owner": f"{NS}-a"},
        {"order_id": 2, "line": 2},
    ]
    assert sorted(f.marker for f in lines.exists_many(asked)) == ["alice", f"{NS}-a"]
    assert lines.delete({"order_id": 1, "line": 2, "owner": f"{NS}-a"}) == "deleted"
    with pytest.raises(OwnershipError) as caught:
        lines.delete({"order_id": 2, "line": 2, "owner": f"{NS}-b"})
    assert str(caught.value) == (
        f"order {{'order_id': 2, 'line': 2}} in {db.schema}.lines no longer carries "
        f"'{NS}-b'; left alone"
    )
    gone = [
        {"order_id": 1, "line": 1, "owner": f"{NS}-a"},
        {"order_id": 3, "line": 1, "owner": f"{NS}-c"},
    ]
    assert lines.delete_many(gone) == 2
    assert db.rows("lines") == [(2, 1, f"{NS}-b"), (2, 2, "alice")]


def test_delete_many_sends_a_statement_per_batch(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.kinds.sql.DELETE_BATCH", 2)
    ids = add(db, *(f"{NS}-u{i}" for i in range(5)))
    kind = kind_of(db)
    sent: list[str] = []
    run = kind._run

    def counted(statement: Any, params: Any = ()) -> Any:
        sent.append(statement.as_string())
        return run(statement, params)

    monkeypatch.setattr(kind, "_run", counted)
    assert kind.delete_many([{"id": i, "owner": f"{NS}-u{n}"} for n, i in enumerate(ids)]) == 5
    assert len(sent) == 3 and all(text.startswith("DELETE FROM ") for text in sent)
    assert 'WHERE ("id", "owner") IN (' in sent[0]


def test_the_marker_of_ids_without_it_is_none(db: Db) -> None:
    kind = kind_of(db)
    assert kind.marker({"id": 1}) is None and kind.marker({"owner": 5}) == "5"


def test_a_c_collation_database_serves_like_with_a_plain_index(db: Db) -> None:
    name = f"c_{secrets.token_hex(4)}"
    db.connection.execute(f"CREATE DATABASE {name} LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    try:
        url = db.url.rsplit("/", 1)[0] + f"/{name}"
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("CREATE TABLE orders (id serial PRIMARY KEY, owner text)")
            other.execute("CREATE INDEX plain ON orders (owner)")
        spec = {"type": "sql", "url_variable": "C_DB_URL", "table": "orders", "key": ["id"]}
        import os

        os.environ["C_DB_URL"] = url
        kind = declared_kind("order", {**spec, "marker": "owner"}, profile(), Aws(profile()))
        assert isinstance(kind, SqlKind)
        assert kind.marker_index() == ("plain", True)
        kind.close()
    finally:
        os.environ.pop("C_DB_URL", None)
        db.connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_messages_show_host_port_and_database_only(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    kind = kind_of(db)
    assert (
        kind._where("postgresql://u:pw@127.0.0.1/shop")
        == f"${VARIABLE} (host 127.0.0.1, database shop)"
    )
    assert (
        kind._where("postgresql://u:pw@h:6000/x") == f"${VARIABLE} (host h, port 6000, database x)"
    )
    assert kind._where("not a url at all ===") == f"${VARIABLE}"


def test_doctor_rows_are_named_for_the_kind(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    db.run("CREATE INDEX plain_owner ON S.orders (owner)")
    rows = kind_of(db).checks()
    assert [(r.name, r.status) for r in rows] == [("kind order", OK), ("kind order marker", WARN)]
    assert rows[1].fix == f"CREATE INDEX ON {db.schema}.orders (owner text_pattern_ops)"
    assert rows[1].detail == (
        f"owner is indexed ({db.schema}.plain_owner), but not for LIKE 'prefix%' (its "
        f"collation is not C): finding a run's rows scans {db.schema}.orders"
    )
    db.run("CREATE INDEX good_owner ON S.orders (owner text_pattern_ops)")
    good = kind_of(db).checks()
    assert good[1] == StoreCheck("kind order marker", OK, f"owner indexed ({db.schema}.good_owner)")
    missing = kind_of(db, table=f"{db.schema}.gone")
    (row,) = missing.checks()
    where = kind_of(db)._where(db.url)
    assert row == StoreCheck(
        "kind order",
        FAIL,
        f"table {db.schema}.gone does not exist in {where}",
        "create it, or fix table under [t.kinds.order]",
    )
    monkeypatch.delenv(VARIABLE)
    (unset,) = kind_of(db).checks()
    assert unset == StoreCheck(
        "kind order",
        FAIL,
        "the database cannot be used",
        f"kind order: ${VARIABLE} is not set: export it with the database URL "
        "(postgresql://user:password@host:port/db)",
        unreachable=False,
    )


def test_the_first_of_several_plain_indexes_is_named(db: Db) -> None:
    db.run("CREATE INDEX first_owner ON S.orders (owner)")
    db.run("CREATE INDEX second_owner ON S.orders (owner DESC)")
    assert kind_of(db).marker_index() == (f"{db.schema}.first_owner", False)


def test_a_closed_connection_is_opened_again(db: Db) -> None:
    kind = kind_of(db)
    first = kind.connection
    kind.close()
    assert first.closed and kind._connection is None
    kind.close()  # twice is fine
    add(db, f"{NS}-a")
    assert [f.marker for f in kind.find(f"{NS}-")] == [f"{NS}-a"]
    assert kind.connection is not first and not kind.connection.closed


def test_a_sweeps_progress_knows_the_tables_size(db: Db) -> None:
    add(db, f"{NS}-a", "b", "c")
    db.run("ANALYZE S.orders")
    lines: list[str] = []
    kind_of(db).find("itest-", scan=ScanControl(progress=Progress(lines.append, every=0)))
    assert lines and lines[-1].startswith(f"sweep: {db.schema}.orders: scanned 1/3 items")
