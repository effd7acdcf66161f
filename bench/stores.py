"""The residue check and the sweeper of the declared Cognito, S3 and PostgreSQL kinds, on an
empty store vs one holding ``--items`` foreign items.

One AWS emulator (moto in server mode, ``sandbox.emulator``) and one real PostgreSQL server
(``sandbox.postgres``), measured per store, twice: empty, then after seeding ``--items``
foreign items (users ``shopper-N`` in the pool, objects ``files/shopper-N/a.txt`` in the
versioned bucket, rows of ``owner = 'shopper-N'`` in an ``orders`` table indexed for prefix
``LIKE``). Each side: a run (its own namespace) creates ``--recorded`` items through the
store's own API and deletes them, then ``harness.cleanup.residue.check`` runs over what it
recorded — by key, plus the namespace-wide look of a kind whose ``find`` is cheap — median of
``--rounds``; ``residue_<store>_big_vs_empty`` is the ratio. Then on the big store the
sweeper: ``--leftovers`` items of a run dead five hours are added, ``sweeper.plan`` +
``execute`` over the kind (``sweep_<store>_items_per_s``: leftovers found and deleted per
second of plan and execute), and every foreign item is counted again (it must be untouched).
A store whose seeding would pass ``--seed-budget`` seconds is measured at the size seeded by
then (``<store>_items`` says which). Usage:
``.venv/bin/python -m bench.stores [--items N] [--leftovers N] [--stores cognito s3 sql]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from botocore.handlers import add_expect_header

from bench._common import emit, median, note
from harness.cleanup import sweeper
from harness.cleanup.journal import Resource
from harness.cleanup.residue import check as residue_check
from harness.clients.aws import Aws
from harness.config import Profile
from harness.kinds import Kind
from harness.kinds.dynamo import ScanControl
from harness.kinds.registry import declared_kind
from harness.namespace import Namespace, RunId
from harness.safety.guards import Owner
from sandbox.emulator import EmulatorProcess
from sandbox.postgres import PostgresServer

VARIABLE = "BENCH_ORDERS_DB_URL"
PASSWORD = "Bench-pass-1!"


class Store:
    """One store's seeding, a run's creates and deletes, and its kind."""

    name = ""

    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self.kind: Kind = self.make_kind()

    def make_kind(self) -> Kind:
        raise NotImplementedError

    def seed(self, start: int, stop: int) -> None:
        """Foreign items ``start``..``stop``."""
        raise NotImplementedError

    def create(self, marker: str) -> dict[str, Any]:
        raise NotImplementedError

    def delete(self, ids: dict[str, Any]) -> None:
        raise NotImplementedError

    def foreign(self) -> int:
        raise NotImplementedError


class Cognito(Store):
    name = "cognito"

    def make_kind(self) -> Kind:
        client = self.aws.cognito_idp
        self.pool = client.create_user_pool(PoolName="bench")["UserPool"]["Id"]
        spec = {"type": "cognito", "user_pool_id": self.pool, "marker": "username"}
        return declared_kind("member", spec, self.aws.profile, self.aws)

    def seed(self, start: int, stop: int) -> None:
        client = self.aws.cognito_idp
        for i in range(start, stop):
            client.admin_create_user(
                UserPoolId=self.pool, Username=f"shopper-{i}", MessageAction="SUPPRESS"
            )

    def create(self, marker: str) -> dict[str, Any]:
        self.aws.cognito_idp.admin_create_user(
            UserPoolId=self.pool, Username=marker, MessageAction="SUPPRESS"
        )
        return {"username": marker}

    def delete(self, ids: dict[str, Any]) -> None:
        self.aws.cognito_idp.admin_delete_user(UserPoolId=self.pool, Username=ids["username"])

    def foreign(self) -> int:
        pages = self.aws.cognito_idp.get_paginator("list_users").paginate(
            UserPoolId=self.pool, Filter='username ^= "shopper-"'
        )
        return sum(len(page["Users"]) for page in pages)


class S3(Store):
    name = "s3"

    def make_kind(self) -> Kind:
        client = self.aws.s3
        client.meta.events.unregister("before-call.s3", add_expect_header)  # the emulator
        client.create_bucket(Bucket="bench-files")
        client.put_bucket_versioning(
            Bucket="bench-files", VersioningConfiguration={"Status": "Enabled"}
        )
        spec = {"type": "s3", "bucket": "bench-files", "marker": "key", "prefix": "files/"}
        return declared_kind("upload", spec, self.aws.profile, self.aws)

    def seed(self, start: int, stop: int) -> None:
        for i in range(start, stop):
            self.aws.s3.put_object(Bucket="bench-files", Key=f"files/shopper-{i}/a.txt", Body=b"x")

    def create(self, marker: str) -> dict[str, Any]:
        key = f"files/{marker}/a.txt"
        self.aws.s3.put_object(Bucket="bench-files", Key=key, Body=b"x")
        return {"key": key}

    def delete(self, ids: dict[str, Any]) -> None:
        # the service's DELETE: a delete marker; the residue check finds the version
        self.aws.s3.delete_object(Bucket="bench-files", Key=ids["key"])
        versions = self.aws.s3.list_object_versions(Bucket="bench-files", Prefix=ids["key"])
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for what in ("Versions", "DeleteMarkers")
            for v in versions.get(what, [])
        ]
        self.aws.s3.delete_objects(Bucket="bench-files", Delete={"Objects": doomed})

    def foreign(self) -> int:
        # The current objects (a delete would show as a missing one: its delete marker hides
        # it); a versions listing would have the emulator copy every version for each page
        # of 1,000, quadratic at 100,000 objects (over 20 minutes).
        pages = self.aws.s3.get_paginator("list_objects_v2").paginate(
            Bucket="bench-files", Prefix="files/shopper-"
        )
        return sum(len(page.get("Contents", [])) for page in pages)


class Sql(Store):
    name = "sql"

    def make_kind(self) -> Kind:
        with psycopg.connect(os.environ[VARIABLE], autocommit=True) as connection:
            connection.execute(
                "CREATE TABLE orders (id bigserial PRIMARY KEY, owner text NOT NULL, item text)"
            )
            connection.execute("CREATE INDEX orders_owner ON orders (owner text_pattern_ops)")
        spec = {
            "type": "sql",
            "url_variable": VARIABLE,
            "table": "orders",
            "key": ["id"],
            "marker": "owner",
        }
        return declared_kind("order", spec, self.aws.profile, self.aws)

    def _run(self, statement: str, params: list[Any] | None = None) -> Any:
        with psycopg.connect(os.environ[VARIABLE], autocommit=True) as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchone() if cursor.description else None

    def seed(self, start: int, stop: int) -> None:
        self._run(
            "INSERT INTO orders (owner, item) SELECT 'shopper-' || n, 'pen' "
            "FROM generate_series(%s::int, %s::int) AS n",
            [start, stop - 1],
        )
        self._run("ANALYZE orders")

    def create(self, marker: str) -> dict[str, Any]:
        row = self._run("INSERT INTO orders (owner, item) VALUES (%s, 'x') RETURNING id", [marker])
        return {"id": row[0], "owner": marker}

    def delete(self, ids: dict[str, Any]) -> None:
        self._run("DELETE FROM orders WHERE id = %s", [ids["id"]])

    def foreign(self) -> int:
        return int(self._run("SELECT count(*) FROM orders WHERE owner LIKE 'shopper-%'")[0])


STORES: dict[str, type[Store]] = {"cognito": Cognito, "s3": S3, "sql": Sql}


#: AWS calls this process sent (every client of the bench's session counts them).
CALLS = [0]


def count_call(**_: Any) -> None:
    CALLS[0] += 1


def residue_seconds(store: Store, recorded: int, rounds: int) -> tuple[float, float, int]:
    """A run creates ``recorded`` items, deletes them, and its residue check runs: the median
    seconds, the median client CPU seconds (this process: what the harness spends, apart
    from the store's own work) and the AWS calls of one check."""
    namespace = Namespace(RunId.generate(), "gw0")
    resources = []
    for n in range(recorded):
        ids = store.create(namespace.name(f"r{n}"))
        store.delete(ids)
        resources.append(Resource(seq=n, kind=store.kind.name, ids=ids, state="created"))
    seconds, cpu, calls = [], [], 0
    for _ in range(rounds):
        started, cpu_started, calls_before = time.perf_counter(), time.process_time(), CALLS[0]
        result = residue_check(
            {store.kind.name: store.kind},
            f"{namespace.run}-",
            Owner(run=namespace.run),
            recorded=resources,
            settle=0.0,
        )
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        calls = CALLS[0] - calls_before
        if not result.clean:
            raise RuntimeError(f"{store.name}: residue found {result.leaked + result.unfinished}")
    return median(seconds), median(cpu), calls


def seed(store: Store, items: int, threads: int, budget: float) -> int:
    """Seed up to ``items`` foreign items in chunks from ``threads`` threads, within
    ``budget`` seconds; how many were seeded."""
    chunk = 1000
    started = time.monotonic()
    done = 0
    with ThreadPoolExecutor(threads) as pool:
        while done < items and time.monotonic() - started < budget:
            parts = [
                (s, min(s + chunk, items))
                for s in range(done, min(done + chunk * threads, items), chunk)
            ][:threads]
            parts = [(s, e) for s, e in parts if s < e]
            list(pool.map(lambda p: store.seed(*p), parts))
            done = parts[-1][1]
            note(f"{store.name}: {done} foreign items ({time.monotonic() - started:.0f}s)")
    return done


def sweep_figures(store: Store, leftovers: int) -> None:
    namespace = Namespace(RunId.generate(datetime.now(UTC) - timedelta(hours=5)), "gw0")
    for n in range(leftovers):
        store.create(namespace.name(f"l{n}"))
    kinds = {store.kind.name: store.kind}
    control = ScanControl()
    started = time.perf_counter()
    plan = sweeper.plan(kinds, older_than=3600, alive=set(), scan=control)
    found = sum(len(r.items) for r in plan.to_delete.values())
    deleted = sum(sweeper.execute(kinds, plan).values())
    seconds = time.perf_counter() - started
    if found != leftovers or deleted != leftovers:
        raise RuntimeError(f"{store.name}: found {found}, deleted {deleted} of {leftovers}")
    emit(f"sweep_{store.name}_leftovers", leftovers)
    emit(f"sweep_{store.name}_seconds", seconds, ".2f")
    emit(f"sweep_{store.name}_items_per_s", leftovers / seconds, ".0f")


@contextmanager
def environment() -> Iterator[Aws]:
    """The emulator and a PostgreSQL server, always stopped."""
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    emulator = EmulatorProcess("127.0.0.1", 0, dict(os.environ))
    postgres = PostgresServer()
    try:
        emulator.start()
        postgres.start()
        os.environ[VARIABLE] = postgres.create_database("bench")
        profile = Profile(
            name="bench", aws_region="us-east-1", aws_endpoint_url=emulator.url, protected=False
        )
        aws = Aws(profile)
        aws.session.events.register("before-call", count_call)  # before any client is made
        yield aws
    finally:
        postgres.stop()
        emulator.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="foreign items per store")
    parser.add_argument("--recorded", type=int, default=20, help="items a run records")
    parser.add_argument("--leftovers", type=int, default=1000, help="a dead run's items")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed-budget", type=float, default=600.0, help="seconds per store")
    parser.add_argument("--stores", nargs="*", default=list(STORES), choices=list(STORES))
    args = parser.parse_args()
    with environment() as aws:
        for name in args.stores:
            store = STORES[name](aws)
            empty, empty_cpu, empty_calls = residue_seconds(store, args.recorded, args.rounds)
            started = time.perf_counter()
            seeded = seed(store, args.items, args.threads, args.seed_budget)
            seed_s = time.perf_counter() - started
            big, big_cpu, big_calls = residue_seconds(store, args.recorded, args.rounds)
            emit(f"{name}_items", seeded)
            emit(f"{name}_seed_items_per_s", seeded / seed_s, ".0f")
            emit(f"residue_{name}_empty_seconds", empty, ".4f")
            emit(f"residue_{name}_big_seconds", big, ".4f")
            emit(f"residue_{name}_big_vs_empty", big / empty, ".2f")
            # what the harness itself spends: its CPU and its calls, whatever the store's size
            emit(f"residue_{name}_cpu_big_vs_empty", big_cpu / empty_cpu, ".2f")
            emit(f"residue_{name}_calls_empty", empty_calls)
            emit(f"residue_{name}_calls_big", big_calls)
            sweep_figures(store, args.leftovers)
            untouched = store.foreign()
            emit(f"sweep_{name}_foreign_untouched", f"{untouched}/{seeded}")
            if untouched != seeded:
                raise RuntimeError(f"{name}: {seeded - untouched} foreign item(s) were touched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
