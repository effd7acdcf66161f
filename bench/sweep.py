"""Sweep throughput: 10,000 leaked items removed by the sweeper vs one guarded delete each.

Seeds the leftovers of a dead run five hours old — users with namespaced emails under the
test domain, each with a harness-written session token — straight into the sandbox's tables
with BatchWriteItem, then times ``harness.cleanup.sweeper.plan`` + ``execute`` (find by scan, guard
every marker, BatchWriteItem 25 per call). Seeds an equal set for a second dead run and
times the one-by-one path on it: the same find, then ``kind.delete`` through the guarded
deleter for every item (a conditional delete per user, its token, its notifications).
Usage: ``.venv/bin/python -m bench.sweep [--items N]``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta

from bench._common import REPO, emit, note, sandbox
from fixtures.kinds import MARKER
from harness.cleanup.journal import Resource
from harness.cleanup.sweeper import execute, plan
from harness.clients.aws import Aws
from harness.kinds import load_kinds
from harness.kinds.registry import load_profile
from harness.namespace import Namespace, RunId
from harness.safety.guards import Owner, guarded_deleter


def seed(aws: Aws, users_table: str, tokens_table: str, count: int) -> Namespace:
    """``count`` leaked items of a fresh dead run: half users, half their tokens."""
    namespace = Namespace(RunId.generate(datetime.now(UTC) - timedelta(hours=5)), "gw0")
    users = count - count // 2
    expires = int(time.time()) + 3600
    with (
        aws.table(users_table).batch_writer() as user_batch,
        aws.table(tokens_table).batch_writer() as token_batch,
    ):
        for i in range(users):
            uid = secrets.randbits(52)
            email = namespace.email(f"u{i}")
            user_batch.put_item(
                Item={"Uid": uid, "Email": email, "Name": "Leaked", "PasswordHash": "x"}
            )
            if i < count // 2:
                token_batch.put_item(
                    Item={
                        "Uid": uid,
                        "Token": secrets.token_urlsafe(8),
                        "TimeToLive": expires,
                        MARKER: str(namespace),
                    }
                )
    return namespace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="leaked items (10000)")
    args = parser.parse_args()
    with sandbox("sweep") as box:
        profile = load_profile("sandbox", REPO / "environments.toml", environ=box.exports)
        aws = Aws(profile)
        kinds = load_kinds(profile, aws)
        tables = (profile.setting("users_table"), profile.setting("tokens_table"))

        started = time.perf_counter()
        seed(aws, *tables, args.items)
        note(f"seeded {args.items} items in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        sweep = plan(kinds, older_than=3600, alive={})
        found = sweep.item_count
        deleted = sum(execute(kinds, sweep).values())
        batch_s = time.perf_counter() - started
        note(f"sweeper: {found} found, {deleted} deleted in {batch_s:.1f}s")

        seed(aws, *tables, args.items)
        started = time.perf_counter()
        sweep = plan(kinds, older_than=3600, alive={})
        found_single = sweep.item_count
        delete = guarded_deleter(kinds, Owner(run=None))
        for run in sweep.to_delete.values():
            for item in run.items:  # users first (plan order), then their tokens
                delete(Resource(seq=0, kind=item.kind, ids=dict(item.ids), state="created"))
        single_s = time.perf_counter() - started
        note(f"one by one: {found_single} found and deleted in {single_s:.1f}s")
        left = plan(kinds, older_than=0, alive={}).item_count
    if found != args.items or found_single != args.items or left:
        raise RuntimeError(f"found {found} and {found_single} of {args.items}; {left} left")
    emit("sweep_items", args.items)
    emit("sweep_batch_items_per_s", args.items / batch_s, ".0f")
    emit("sweep_single_items_per_s", args.items / single_s, ".0f")
    emit("sweep_batch_vs_single", single_s / batch_s, ".1f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
