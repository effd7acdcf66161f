"""Kinds declared in a SQL table (PostgreSQL, through psycopg 3): rows tests create, found and
deleted with no code.

```toml
[local.kinds.order]
type = "sql"
url_variable = "ORDERS_DB_URL" # the URL, with its credentials, only from this variable
table = "orders"               # or "schema.table"
key = ["id"]                   # the primary key's columns
marker = "owner"               # the column whose value carries the run namespace
```

(``url_secret = "<Secrets Manager secret id>"`` instead of ``url_variable``: the URL, or an
RDS-style JSON secret, read with ``GetSecretValue``.) The URL never comes from the profiles
file, and is never printed: errors name the variable, the host, the port and the database.

Owns finding (``WHERE marker LIKE 'prefix%'``, paged by the primary key for the sweeper;
cheap — O(what it finds) — when an index on the marker serves a prefix ``LIKE``: a
``text_pattern_ops`` index, or a "C" collation, which ``doctor`` checks), telling what exists
by key (``WHERE (key) IN (…)``, 500 keys a statement), what belongs to a resource
(:func:`~harness.namespace.belongs`), and deleting with the gate's condition in the statement
(``DELETE … WHERE key = … AND marker = …``, in a transaction; 1,000 rows a statement for the
sweeper). On a protected profile its connection is read-only twice over: the session's
``default_transaction_read_only``, and a refusal of every statement that is not a
``SELECT`` before it is sent (:func:`harness.safety.protect.check_sql`). It never inserts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from harness.cleanup.ledger import OwnershipError
from harness.errors import ConfigError, TargetError
from harness.kinds.base import Found, Outcome
from harness.kinds.stores import FAIL, OK, WARN, StoreCheck, StoreKind, paged
from harness.namespace import belongs
from harness.safety.protect import check_sql

if TYPE_CHECKING:
    from harness.clients.aws import Aws
    from harness.config import Profile
    from harness.kinds.dynamo import ScanControl

#: Keys per ``IN (…)`` lookup, rows per ``DELETE`` statement, matches per sweep page.
LOOKUP_BATCH = 500
DELETE_BATCH = 1000
PAGE = 1000
#: Operator classes (and collations) with which a btree serves ``LIKE 'prefix%'``.
PATTERN_OPCLASSES = ("text_pattern_ops", "varchar_pattern_ops", "bpchar_pattern_ops")
C_COLLATIONS = ("C", "POSIX")
#: Every statement the kind sends: ``{name}`` is a quoted identifier or a composed piece,
#: ``%s`` a value sent apart from the text (the gate's condition never spliced into SQL).
STATEMENTS = {
    "select": "SELECT {columns} FROM {table} WHERE {where}",
    "like": "{marker} LIKE %s ESCAPE '\\'",
    "after": "{like} AND {key} > {values}",
    "page": "{select} ORDER BY {order} LIMIT {limit}",
    "in": "{key} IN ({values})",
    "equal": "{column} = %s",
    "delete": "DELETE FROM {table} WHERE {where}",
    "delete_in": "DELETE FROM {table} WHERE {key} IN ({values})",
    "estimate": (
        "SELECT coalesce(max(reltuples), 0)::bigint FROM pg_class WHERE oid = to_regclass(%s)"
    ),
    "count": "SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 10001) s",
    "exists": "SELECT to_regclass(%s)",
    "collation": "SELECT datcollate FROM pg_database WHERE datname = current_database()",
    "index": """
SELECT i.indexrelid::regclass::text, opc.opcname, coalesce(col.collname, '')
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
JOIN pg_opclass opc ON opc.oid = i.indclass[0]
LEFT JOIN pg_collation col ON col.oid = i.indcollation[0]
WHERE i.indrelid = to_regclass(%s) AND a.attname = %s AND i.indpred IS NULL
ORDER BY i.indexrelid
""",
    "tuple": "({items})",
}
COMMA = ", "
AND = " AND "
#: The connection's own guard on a protected profile (PostgreSQL refuses every write).
READ_ONLY_OPTIONS = "-c default_transaction_read_only=on"
#: The URL's parts a message may show (never the user or the password).
SHOWN_PARTS = (("host", "host"), ("port", "port"), ("dbname", "database"))
#: An RDS-style JSON secret's fields, as connection parameters.
SECRET_FIELDS = {
    "host": "host",
    "port": "port",
    "username": "user",
    "password": "password",
    "dbname": "dbname",
}
#: Words of a refused connection that mean the URL is wrong (exit 8), not the server down.
CONFIG_WORDS = ("password", "role", "does not exist")


def _statement(name: str, **parts: Any) -> Any:
    """``STATEMENTS[name]`` with its pieces: quoted identifiers or composed SQL."""
    from psycopg import sql

    return sql.SQL(STATEMENTS[name]).format(**parts)


def _joined(separator: str, pieces: Any) -> Any:
    from psycopg import sql

    return sql.SQL(separator).join(list(pieces))


def _identifier(name: str) -> Any:
    """A name (``schema.table`` allowed) as a quoted identifier."""
    from psycopg import sql

    return sql.Identifier(*name.split("."))


def _plain(value: Any) -> Any:
    """A column's value as the journal keeps it (JSON): numbers and text as they are, the
    rest (uuid, dates) as text, which PostgreSQL reads back as the column's type."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _like(prefix: str) -> str:
    """``prefix%`` with LIKE's own wildcards in ``prefix`` taken literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class SqlKind(StoreKind):
    """One ``[profile.kinds.NAME]`` with ``type = "sql"``."""

    store = "sql"

    def __init__(
        self,
        name: str,
        profile: Profile,
        aws: Aws,
        *,
        table: str,
        key: list[str],
        marker: str,
        url_variable: str,
        url_secret: str,
        sweep_order: int,
    ) -> None:
        super().__init__(name, profile, aws, sweep_order=sweep_order)
        self.table_name = table
        self.key = key
        self.marker_attribute = marker
        self.columns = list(dict.fromkeys([*key, marker]))
        self.url_variable = url_variable
        self.url_secret = url_secret
        self.read_only = aws.read_only
        self._connection: Any = None
        self._index: tuple[str, bool] | None = None

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any], profile: Profile, aws: Aws) -> SqlKind:
        key = spec["key"]
        return cls(
            name,
            profile,
            aws,
            table=str(spec["table"]),
            key=[key] if isinstance(key, str) else list(key),
            marker=str(spec["marker"]),
            url_variable=str(spec.get("url_variable", "")),
            url_secret=str(spec.get("url_secret", "")),
            sweep_order=int(spec.get("sweep_order", 50)),
        )

    # --- the connection ---------------------------------------------------------------

    @property
    def source(self) -> str:
        """Where the URL comes from, for messages (never the URL)."""
        if self.url_variable:
            return f"${self.url_variable}"
        return f"the secret {self.url_secret}"

    def url(self) -> str:
        """The database URL, from the variable or the secret; ConfigError naming the fix."""
        if self.url_variable:
            url = os.environ.get(self.url_variable)
            if not url:
                raise ConfigError(
                    f"kind {self.name}: ${self.url_variable} is not set: export it with the "
                    f"database URL (postgresql://user:password@host:port/db)"
                )
            return url
        secret = self.aws.secretsmanager.get_secret_value(SecretId=self.url_secret)
        text = str(secret["SecretString"])
        try:
            fields = json.loads(text)
        except ValueError:
            return text
        if not isinstance(fields, dict):
            return text
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            **{name: str(fields[k]) for k, name in SECRET_FIELDS.items() if k in fields}
        )

    def _where(self, url: str) -> str:
        """Host, port and database of ``url`` (never its user or password)."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            parts = conninfo_to_dict(url)
        except Exception:
            return self.source
        shown = COMMA.join(f"{label} {parts[k]}" for k, label in SHOWN_PARTS if k in parts)
        return f"{self.source} ({shown})"

    @property
    def connection(self) -> Any:
        """One connection per kind (autocommit; each change in an explicit transaction); on a
        protected profile every transaction is read-only."""
        if self._connection is not None and not self._connection.closed:
            return self._connection
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                f"kind {self.name} is a SQL kind: pip install 'env-harness[sql]' (psycopg 3)"
            ) from None
        url = self.url()
        options = READ_ONLY_OPTIONS if self.read_only else None
        try:
            self._connection = psycopg.connect(
                url, autocommit=True, connect_timeout=5, options=options
            )
        except psycopg.OperationalError as error:
            reason = (str(error).strip().splitlines() or ["refused"])[-1]
            if any(word in reason for word in CONFIG_WORDS):
                raise ConfigError(
                    f"kind {self.name}: the database {self._where(url)} refused the "
                    f"connection ({reason}): fix the URL in {self.source}"
                ) from None
            raise TargetError(
                f"kind {self.name}: cannot reach the database {self._where(url)} ({reason}): "
                f"is it up? fix {self.source}"
            ) from None
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _run(self, statement: Any, params: Sequence[Any] = ()) -> Any:
        """Execute one statement — refused before it is sent on a protected profile unless
        it is a SELECT."""
        connection = self.connection
        if self.read_only:
            check_sql(self.profile.name, statement.as_string())
        return connection.execute(statement, list(params))

    # --- SQL pieces -------------------------------------------------------------------

    def _tuple(self, names: list[str]) -> Any:
        return _statement("tuple", items=_joined(COMMA, map(_identifier, names)))

    def _placeholders(self, rows: int, width: int) -> Any:
        from psycopg import sql

        one = _statement("tuple", items=_joined(COMMA, [sql.Placeholder()] * width))
        return _joined(COMMA, [one] * rows)

    def _select(self, where: Any) -> Any:
        return _statement(
            "select",
            columns=_joined(COMMA, map(_identifier, self.columns)),
            table=_identifier(self.table_name),
            where=where,
        )

    def _found(self, row: Sequence[Any]) -> Found:
        ids = {c: _plain(row[i]) for i, c in enumerate(self.columns)}
        shown = COMMA.join(f"{k}={ids[k]}" for k in self.key)
        return Found(
            self.name,
            ids,
            f"{self.name} {shown} in {self.table_name}",
            marker=str(ids[self.marker_attribute]),
        )

    def _full_key(self, ids: Mapping[str, Any]) -> list[Any] | None:
        if all(ids.get(k) is not None for k in self.key):
            return [ids[k] for k in self.key]
        return None

    # --- finding ----------------------------------------------------------------------

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        value = ids.get(self.marker_attribute)
        return None if value is None else str(value)

    def _marker_like(self, prefix: str) -> tuple[Any, list[Any]]:
        return _statement("like", marker=_identifier(self.marker_attribute)), [_like(prefix)]

    def find(self, prefix: str, scan: ScanControl | None = None) -> list[Found]:
        """Rows whose marker starts with ``prefix`` (``WHERE marker LIKE 'prefix%'``), in
        pages of 1,000 ordered by the primary key: each page is a checkpoint the sweeper
        resumes from."""
        from psycopg import sql

        like, params = self._marker_like(prefix)
        order = _joined(COMMA, map(_identifier, self.key))

        def fetch(token: Any) -> tuple[list[dict[str, Any]], Any, int]:
            where, values = like, list(params)
            if token is not None:
                where = _statement(
                    "after",
                    like=like,
                    key=self._tuple(self.key),
                    values=self._placeholders(1, len(self.key)),
                )
                values += list(token)
            statement = _statement(
                "page", select=self._select(where), order=order, limit=sql.Literal(PAGE)
            )
            rows = self._run(statement, values).fetchall()
            items = [self._found(row).ids for row in rows]
            following = [items[-1][k] for k in self.key] if len(rows) == PAGE else None
            return items, following, len(rows)

        items = paged(
            fetch,
            store=self.table_name,
            scope=f"{self.marker_attribute}\0{prefix}",
            scan=scan,
            total=self._estimated,
        )
        return [self._found([i[c] for c in self.columns]) for i in items]

    def related(self, owner_marker: str) -> list[Found]:
        """Rows whose marker belongs to ``owner_marker``: equal, or continued after a
        separator — never a look-alike's (``LIKE`` also finds ``…-ann1`` for ``…-ann``)."""
        like, params = self._marker_like(owner_marker)
        rows = self._run(self._select(like), params).fetchall()
        found = [self._found(row) for row in rows]
        return [f for f in found if belongs(f.marker, owner_marker)]

    def exists_many(self, ids: list[Mapping[str, Any]]) -> list[Found]:
        """Recorded rows by key, 500 keys a ``SELECT … WHERE (key) IN (…)``; rows recorded
        without their key (a lost create answer) by their marker."""
        keyed = list({repr(k): k for one in ids if (k := self._full_key(one))}.values())
        found = [f for one in ids if self._full_key(one) is None for f in self._same(one)]
        for start in range(0, len(keyed), LOOKUP_BATCH):
            batch = keyed[start : start + LOOKUP_BATCH]
            where = _statement(
                "in",
                key=self._tuple(self.key),
                values=self._placeholders(len(batch), len(self.key)),
            )
            rows = self._run(self._select(where), [v for key in batch for v in key]).fetchall()
            found += [self._found(row) for row in rows]
        return found

    def _same(self, ids: Mapping[str, Any]) -> list[Found]:
        marker = self.marker(ids)
        return [f for f in self.related(marker) if f.marker == marker] if marker else []

    def exists(self, ids: Mapping[str, Any]) -> Found | None:
        found = self.exists_many([ids])
        return found[0] if found else None

    # --- deleting ---------------------------------------------------------------------

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        """``DELETE … WHERE key = … AND marker = …`` in a transaction: the gate's condition
        in the statement. A row still there under another marker is left, and said."""
        marker = self.marker(ids)
        key = self._full_key(ids)
        names = [*self.key, self.marker_attribute] if key is not None else [self.marker_attribute]
        where = _joined(AND, (_statement("equal", column=_identifier(n)) for n in names))
        statement = _statement("delete", table=_identifier(self.table_name), where=where)
        with self.connection.transaction():
            if self._run(statement, [*(key or []), marker]).rowcount:
                return "deleted"
            if key is None:  # only the marker was known: every row carrying exactly it
                return "absent"
            wanted = {k: ids[k] for k in self.key}
            still = self.exists_many([wanted])
        if still:
            raise OwnershipError(
                f"{self.name} {wanted} in {self.table_name} no longer carries {marker!r}; "
                f"left alone"
            )
        return "absent"

    def delete_many(self, ids: list[dict[str, Any]]) -> int:
        """Rows the gate has checked: ``DELETE … WHERE (key, marker) IN (…)``, 1,000 a
        statement, each in its own transaction."""
        rows = [[*key, self.marker(one)] for one in ids if (key := self._full_key(one))]
        unique = list({repr(r): r for r in rows}.values())
        names = [*self.key, self.marker_attribute]
        deleted = 0
        for start in range(0, len(unique), DELETE_BATCH):
            batch = unique[start : start + DELETE_BATCH]
            statement = _statement(
                "delete_in",
                table=_identifier(self.table_name),
                key=self._tuple(names),
                values=self._placeholders(len(batch), len(names)),
            )
            with self.connection.transaction():
                deleted += self._run(statement, [v for row in batch for v in row]).rowcount
        return deleted

    # --- the marker's index, sizes, doctor ------------------------------------------------

    def marker_index(self) -> tuple[str, bool]:
        """(an index whose first column is the marker, or ""; whether it serves a prefix
        LIKE): asked of the catalog once."""
        if self._index is None:
            rows = self._run(
                _statement("index"), [self.table_name, self.marker_attribute]
            ).fetchall()
            (collation,) = self._run(_statement("collation")).fetchone()
            c_database = collation in C_COLLATIONS
            best = ("", False)
            for name, opclass, collname in rows:
                serves = opclass in PATTERN_OPCLASSES or collname in C_COLLATIONS
                serves = serves or (c_database and collname == "default")
                if serves or not best[0]:
                    best = (str(name), serves)
                if serves:
                    break
            self._index = best
        return self._index

    @property
    def find_is_cheap(self) -> bool:  # type: ignore[override]
        """A prefix LIKE answered by an index: the residue check may look every run."""
        return self.marker_index()[1]

    @property
    def related_by_key(self) -> bool:  # type: ignore[override]
        return self.marker_index()[1]

    def _estimated(self) -> int:
        (estimate,) = self._run(_statement("estimate"), [self.table_name]).fetchone()
        return max(int(estimate), 0)

    def store_sizes(self) -> list[tuple[str, int]]:
        """The table's row count as the planner knows it; counted (up to 10,001) when the
        table was never analysed."""
        estimate = self._estimated()
        if estimate == 0:
            statement = _statement("count", table=_identifier(self.table_name))
            estimate = int(self._run(statement).fetchone()[0])
        return [(self.table_name, estimate)]

    def checks(self) -> list[StoreCheck]:
        name = f"kind {self.name}"
        try:
            (exists,) = self._run(_statement("exists"), [self.table_name]).fetchone()
        except (ConfigError, TargetError) as error:
            return [
                StoreCheck(
                    name,
                    FAIL,
                    "the database cannot be used",
                    str(error),
                    unreachable=isinstance(error, TargetError),
                )
            ]
        if exists is None:
            return [
                StoreCheck(
                    name,
                    FAIL,
                    f"table {self.table_name} does not exist in {self._where(self.url())}",
                    f"create it, or fix table under [{self.profile.name}.kinds.{self.name}]",
                )
            ]
        rows = [StoreCheck(name, OK, f"table {self.table_name} (~{self._estimated()} rows)")]
        index, serves = self.marker_index()
        column = self.marker_attribute
        fix = f"CREATE INDEX ON {self.table_name} ({column} text_pattern_ops)"
        if serves:
            rows.append(StoreCheck(f"{name} marker", OK, f"{column} indexed ({index})"))
        elif index:
            rows.append(
                StoreCheck(
                    f"{name} marker",
                    WARN,
                    f"{column} is indexed ({index}), but not for LIKE 'prefix%' (its collation "
                    f"is not C): finding a run's rows scans {self.table_name}",
                    fix,
                )
            )
        else:
            rows.append(
                StoreCheck(
                    f"{name} marker",
                    WARN,
                    f"no index on {column}: finding a run's rows scans {self.table_name}",
                    fix,
                )
            )
        return rows
