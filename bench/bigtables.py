"""A run's cost against a big environment vs an empty one, and the sweeper on a big table.

One sandbox, measured twice: empty, then after seeding ``--items`` foreign items into each
of the service's tables (users, their tokens, their notifications: what a staging
environment holds), with BatchWriteItem from parallel threads. Each side measures:

- the residue check of a run (``harness.cleanup.residue.check``) over ``--users`` users the
  run signed up, logged in and deleted through the API, with the scan limit at its default
  and the table sizes preflight read at the run's start (as ``harness run`` passes them),
  after the service's consumer drained (as the run's controller does), median of 3;
- the whole ``harness run --suite smoke`` against that sandbox (median of ``--smoke-runs``);
- ``DELETE /users/{uid}`` latency of the reference service, median over ``--users`` users.

Then on the big sandbox the sweeper: ``--leftovers`` users of a run dead five hours are
added to the users table; ``plan`` + ``execute`` of the user kind without a budget, and a
scan of the same table with a budget of half the unbudgeted rate (``--max-rate``
semantics: items read per second). Last, ``sweep_segments_speedup``: a declared kind's table
of ``--segment-items`` items behind ``tests/faultproxy.py`` adding 20 ms to every request,
scanned with 4 segments vs 1 (pages of 100 items, so requests, not the emulator, dominate).

Ratios come from one run, side by side. Usage:
``.venv/bin/python -m bench.bigtables [--items N] [--leftovers N] [--users N]``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench._common import (
    NO_DEV_PLUGINS,
    REPO,
    emit,
    harness_environ,
    median,
    note,
    run,
    sandbox,
)
from fixtures.kinds import UserKind
from harness.cleanup import sweeper
from harness.cleanup.journal import Resource
from harness.cleanup.residue import check as residue_check
from harness.clients.aws import Aws
from harness.events.quiescence import wait_for_quiescence
from harness.kinds import Kind, load_kinds
from harness.kinds.declared import DeclaredKind
from harness.kinds.dynamo import ScanControl
from harness.kinds.registry import load_profile
from harness.namespace import Namespace, RunId
from harness.safety import preflight
from harness.safety.guards import Owner
from tests.faultproxy import FaultPlan, FaultProxy

PASSWORD = "bench-pass-1"


def seed_foreign(aws: Aws, count: int, threads: int = 4) -> float:
    """``count`` foreign users, tokens and notifications (one of each per uid)."""
    profile = aws.profile
    names = [profile.setting(n) for n in ("users_table", "tokens_table", "notifications_table")]
    client = aws.dynamodb_client  # the resource's client: plain Python values, thread-safe
    started = time.perf_counter()

    def chunk(part: range) -> None:
        for start in range(part.start, part.stop, 25):
            batch = range(start, min(start + 25, part.stop))
            items: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
            for i in batch:
                uid = 10**15 + i
                email = f"staff{i}@corp.example.com"
                items[names[0]].append({"Uid": uid, "Email": email, "Name": "Staff member"})
                items[names[1]].append({"Uid": uid, "Token": "t" * 40, "TimeToLive": 4102444800})
                items[names[2]].append(
                    {"Uid": uid, "NotificationId": "welcome", "Email": email, "Kind": "welcome"}
                )
            for table, rows in items.items():
                pending = {table: [{"PutRequest": {"Item": row}} for row in rows]}
                while pending:
                    pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")

    step = -(-count // threads)
    parts = [range(i, min(i + step, count)) for i in range(0, count, step)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(chunk, parts))
    return time.perf_counter() - started


class Side:
    """One sandbox state's figures."""

    def __init__(self, box_env: dict[str, str], aws: Aws, kinds: dict[str, Kind]) -> None:
        self.env = box_env
        self.aws = aws
        self.kinds = kinds
        self.base = box_env["HARNESS_BASE_URL"]
        self.queue = box_env["HARNESS_PROCESSOR_QUEUE_URL"]
        self.sizes: dict[str, int] = {}

    def preflight(self) -> None:
        """What a run does at start-up: one DescribeTable per table; the residue check's
        size rule reuses the item counts, as ``harness run`` passes them on."""
        self.sizes = preflight.check_aws(self.aws.profile, self.aws, self.kinds)

    def drain(self) -> None:
        try:
            wait_for_quiescence(self.aws.sqs, self.queue, timeout=300)
        except Exception as error:  # a figure is still worth having; say why it may be off
            note(f"the processor's queue did not drain: {type(error).__name__}: {error}")

    def signed_up(self, namespace: Namespace, n: int) -> tuple[requests.Session, dict[str, Any]]:
        api = requests.Session()
        api.headers["X-Harness-Run"] = str(namespace.run)
        email = namespace.email(f"b{n}")
        created = api.post(
            f"{self.base}/users", json={"email": email, "name": "Bench", "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
        uid = int(created.json()["uid"])
        login = api.post(f"{self.base}/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return api, {"uid": uid, "email": email, "token": login.json()["token"]}

    def delete_latency_and_residue(self, users: int) -> tuple[float, float, int]:
        """(median ms of DELETE /users/{uid}, median s of the run's residue check, deletes
        that did not answer 204)."""
        namespace = Namespace(RunId.generate(), "gw0")
        self.preflight()
        latencies, recorded, failed = [], [], 0
        for n in range(users):
            api, user = self.signed_up(namespace, n)
            self.drain()  # the welcome notification is written: the delete removes it too
            headers = {"uid": str(user["uid"]), "token": user["token"]}
            started = time.perf_counter()
            gone = api.delete(f"{self.base}/users/{user['uid']}", headers=headers)
            latencies.append(time.perf_counter() - started)
            if gone.status_code != 204:
                failed += 1
                note(f"DELETE /users/{user['uid']} answered {gone.status_code}: {gone.text}")
            ids = {"uid": user["uid"], "email": user["email"]}
            recorded.append(Resource(seq=n, kind="user", ids=ids, state="deleted"))
        self.drain()
        seconds = []
        leaked = 0
        for _ in range(3):
            started = time.perf_counter()
            result = residue_check(
                self.kinds,
                f"{namespace.run}-",
                Owner(run=namespace.run),
                recorded=recorded,
                settle=3.0,
                sizes=self.sizes,
            )
            seconds.append(time.perf_counter() - started)
            leaked += len(result.leaked)
        if leaked:
            note(f"residue check found {leaked} leaked item(s) (see the moto transaction issue)")
        return median(latencies) * 1000, median(seconds), failed

    def smoke(self, runs: int, work: Path) -> tuple[float, int]:
        env = harness_environ(
            self.env, work / "state", HARNESS_CONFIG=str(REPO / "environments.toml")
        )
        seconds, failures = [], 0
        for number in range(runs):
            self.drain()
            report = work / f"smoke-{secrets.token_hex(3)}.json"
            command = [sys.executable, "-m", "harness", "run", "--suite", "smoke"]
            command += ["--report", str(report), "--", "-p", "no:cacheprovider", *NO_DEV_PLUGINS]
            timed = run(command, env, REPO)
            if timed.returncode != 0:
                failures += 1
                tail = "\n".join((timed.stdout + timed.stderr).splitlines()[-6:])
                note(f"smoke run {number + 1} exited {timed.returncode}:\n{tail}")
            seconds.append(timed.seconds)
            note(f"smoke run {number + 1}: {timed.seconds:.2f}s")
        return median(seconds), failures


def seed_leftovers(aws: Aws, count: int) -> str:
    namespace = Namespace(RunId.generate(datetime.now(UTC) - timedelta(hours=5)), "gw0")
    users = aws.table(aws.profile.setting("users_table"))
    with users.batch_writer() as batch:
        for i in range(count):
            batch.put_item(
                Item={"Uid": 2 * 10**15 + i, "Email": namespace.email(f"l{i}"), "Name": "Left"}
            )
    return str(namespace.run)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def sweep_figures(aws: Aws, kinds: dict[str, Kind], leftovers: int) -> None:
    run_id = seed_leftovers(aws, leftovers)
    users = {"user": kinds["user"]}
    free = ScanControl()
    plan, plan_s = timed(lambda: sweeper.plan(users, older_than=3600, alive={}, scan=free))
    found = len(plan.to_delete[run_id].items) if run_id in plan.to_delete else 0
    deleted, delete_s = timed(lambda: sum(sweeper.execute(users, plan).values()))
    note(f"sweep: scanned {free.scanned} in {plan_s:.1f}s, deleted {deleted} in {delete_s:.1f}s")
    if found != leftovers or deleted != leftovers:
        raise RuntimeError(f"found {found}, deleted {deleted} of {leftovers} leftovers")
    rate = free.scanned / plan_s
    emit("sweep_table_items", free.scanned)
    emit("sweep_leftovers", leftovers)
    emit("sweep_items_per_s", rate, ".0f")
    emit("sweep_leftovers_per_s", leftovers / (plan_s + delete_s), ".0f")
    budget = max(100.0, round(rate / 2, -2))
    limited = sweeper.scan_control(max_rate=(budget, "items"))
    _, limited_s = timed(lambda: sweeper.plan(users, older_than=3600, alive={}, scan=limited))
    emit("sweep_budget_items_per_s", budget, ".0f")
    emit("sweep_items_per_s_budgeted", limited.scanned / limited_s, ".0f")
    emit("sweep_budget_ratio", limited.scanned / limited_s / budget, ".3f")


def segments_speedup(box_env: dict[str, str], items: int, delay: float) -> None:
    with FaultProxy(box_env["HARNESS_AWS_ENDPOINT_URL"], FaultPlan(delay=delay)) as proxy:
        env = {**box_env, "HARNESS_AWS_ENDPOINT_URL": proxy.url}
        profile = load_profile("sandbox", REPO / "environments.toml", environ=env)
        aws = Aws(profile)
        client = aws.dynamodb_client
        client.create_table(
            TableName="bench-segments",
            KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dead = Namespace(RunId.generate(datetime.now(UTC) - timedelta(hours=5)), "gw0")
        with aws.table("bench-segments").batch_writer() as batch:
            for i in range(items):
                owner = f"{dead}-n{i}" if i % 10 == 0 else f"someone-{i}"
                batch.put_item(Item={"Id": f"{i:08d}", "Owner": owner, "Body": "x" * 100})
        kind = DeclaredKind(
            "note", profile, aws, table="bench-segments", key=["Id"], marker="Owner"
        )
        kinds: dict[str, Kind] = {"note": kind}
        figures = {}
        for segments in (1, 4):
            control = ScanControl(segments=segments, page_size=100)
            started = time.perf_counter()
            plan = sweeper.plan(kinds, older_than=3600, alive={}, scan=control)
            seconds = time.perf_counter() - started
            found = sum(len(r.items) for r in plan.to_delete.values())
            note(f"{segments} segment(s): {control.calls} calls, {found} found, {seconds:.2f}s")
            figures[segments] = seconds
    emit("sweep_segments_items", items)
    emit("sweep_segments_1_seconds", figures[1], ".2f")
    emit("sweep_segments_4_seconds", figures[4], ".2f")
    emit("sweep_segments_speedup", figures[1] / figures[4], ".2f")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="foreign items per table")
    parser.add_argument("--leftovers", type=int, default=10_000, help="leftovers to sweep")
    parser.add_argument("--users", type=int, default=5, help="users per residue/delete sample")
    parser.add_argument("--smoke-runs", type=int, default=3, help="smoke runs per side (3)")
    parser.add_argument("--segment-items", type=int, default=5000, help="segments table size")
    parser.add_argument("--delay", type=float, default=0.02, help="added per request (0.02)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="env-harness-bigtables-"))
    with sandbox("bigtables") as box:
        profile = load_profile("sandbox", REPO / "environments.toml", environ=box.exports)
        aws = Aws(profile)
        kinds = load_kinds(profile, aws)
        assert isinstance(kinds["user"], UserKind)
        side = Side(box.exports, aws, kinds)
        empty_delete_ms, empty_residue_s, empty_delete_fail = side.delete_latency_and_residue(
            args.users
        )
        empty_smoke_s, empty_fail = side.smoke(args.smoke_runs, work)
        note(f"empty: delete {empty_delete_ms:.1f}ms, residue {empty_residue_s:.3f}s")
        seed_s = seed_foreign(aws, args.items)
        note(f"seeded {args.items} foreign items in each of 3 tables in {seed_s:.0f}s")
        big_delete_ms, big_residue_s, big_delete_fail = side.delete_latency_and_residue(args.users)
        big_smoke_s, big_fail = side.smoke(args.smoke_runs, work)
        note(f"big: delete {big_delete_ms:.1f}ms, residue {big_residue_s:.3f}s")
        emit("bigtables_items_per_table", args.items)
        emit("bigtables_seed_items_per_s", 3 * args.items / seed_s, ".0f")
        emit("residue_empty_seconds", empty_residue_s, ".3f")
        emit("residue_big_seconds", big_residue_s, ".3f")
        emit("residue_big_vs_empty", big_residue_s / empty_residue_s, ".2f")
        emit("smoke_empty_seconds", empty_smoke_s, ".2f")
        emit("smoke_big_seconds", big_smoke_s, ".2f")
        emit("smoke_big_vs_empty", big_smoke_s / empty_smoke_s, ".2f")
        emit("smoke_failed_runs_empty_big", f"{empty_fail}/{big_fail}")
        emit("delete_user_empty_ms", empty_delete_ms, ".1f")
        emit("delete_user_big_ms", big_delete_ms, ".1f")
        emit("delete_user_big_vs_empty", big_delete_ms / empty_delete_ms, ".2f")
        emit("delete_user_failed_empty_big", f"{empty_delete_fail}/{big_delete_fail}")
        sweep_figures(aws, kinds, args.leftovers)
        segments_speedup(box.exports, args.segment_items, args.delay)
    return 0


if __name__ == "__main__":
    sys.exit(main())
