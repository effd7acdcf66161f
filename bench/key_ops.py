"""Key-operation latency of the sandbox's emulator with 100 vs 100,000 items in the tables.

Starts the emulator child exactly as the sandbox runs it (``harness.sandbox.emulator``, with
its moto patches), creates two pairs of tables shaped like the service's — users (hash key
``Uid``) and notifications (``Uid`` + ``NotificationId``) — and seeds one pair with
``--small`` items a table, the other with ``--big`` (BatchWriteItem over HTTP, 25 items a
call: 2 x 100,000 take ~35 s on an idle 2-core machine, ~100 s at a load average of 10;
moto's ImportTable from S3 was no faster). It then times the key operations the service makes,
each against both sizes, in ``--rounds`` rounds of ``--calls`` calls alternating between the
sizes call by call (so a burst of load from another process slows both alike):

- ``get_item``: GetItem of a user;
- ``query``: Query of one user's notifications by hash key;
- ``transact``: the processor's TransactWriteItems (ConditionCheck on the user, Put of the
  welcome notification);
- ``put_item`` / ``delete_item``: PutItem of a user, then DeleteItem of it.

Requests go over one keep-alive connection with the standard library's ``http.client`` and
hand-written DynamoDB JSON (the emulator does not check signatures), so the latencies are
the emulator's, not boto3's (~1 ms of client CPU a call). Prints, per operation, the median
latency at each size and their ratio, and ``key_op_latency_100k_vs_100``: the largest of the
ratios (target ≤ 1.5: a key operation costs the same on any table size, as on DynamoDB).
Stops the emulator when it ends. Usage: ``.venv/bin/python -m bench.key_ops [--big N]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from harness.sandbox.emulator import EmulatorProcess

from bench._common import emit, load_average, note

REGION = "us-east-1"
HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    # moto reads the region from the credential scope and does not check the signature
    "Authorization": f"AWS4-HMAC-SHA256 Credential=bench/20260101/{REGION}/dynamodb/"
    "aws4_request, SignedHeaders=host;x-amz-target, Signature=0",
}
OPERATIONS = ("get_item", "query", "transact", "put_item", "delete_item")


class Dynamo:
    """DynamoDB's JSON protocol over one keep-alive connection."""

    def __init__(self, url: str) -> None:
        host, port = url.rsplit("//", 1)[1].split(":")
        self.connection = http.client.HTTPConnection(host, int(port))

    def __call__(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {**HEADERS, "X-Amz-Target": f"DynamoDB_20120810.{action}"}
        self.connection.request("POST", "/", body=json.dumps(body), headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{action} -> {response.status} {data[:300]!r}")
        answer: dict[str, Any] = json.loads(data) if data else {}
        return answer

    def close(self) -> None:
        self.connection.close()


def n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def s(value: str) -> dict[str, str]:
    return {"S": value}


def user(uid: int) -> dict[str, Any]:
    return {
        "Uid": n(uid),
        "Email": s(f"user-{uid}@example.test"),
        "Name": s("Someone"),
        "PasswordHash": s("scrypt$1024$8$1$c2FsdA==$aGFzaA=="),
        "CreatedAt": s("2026-01-01T00:00:00Z"),
    }


def welcome(uid: int) -> dict[str, Any]:
    return {
        "Uid": n(uid),
        "NotificationId": s("welcome"),
        "Kind": s("welcome"),
        "Message": s("Welcome, Someone!"),
        "CreatedAt": s("2026-01-01T00:00:00Z"),
    }


def create_tables(db: Dynamo, prefix: str) -> tuple[str, str]:
    users, notes = f"{prefix}-users", f"{prefix}-notifications"
    db(
        "CreateTable",
        {
            "TableName": users,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "Uid", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "Uid", "AttributeType": "N"}],
        },
    )
    db(
        "CreateTable",
        {
            "TableName": notes,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [
                {"AttributeName": "Uid", "KeyType": "HASH"},
                {"AttributeName": "NotificationId", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "Uid", "AttributeType": "N"},
                {"AttributeName": "NotificationId", "AttributeType": "S"},
            ],
        },
    )
    return users, notes


def seed(db: Dynamo, users: str, notes: str, count: int) -> None:
    """Users 1..count, each with a welcome notification: BatchWriteItem, 25 items a call."""
    for table, make in ((users, user), (notes, welcome)):
        for start in range(1, count + 1, 25):
            batch = [
                {"PutRequest": {"Item": make(uid)}}
                for uid in range(start, min(count + 1, start + 25))
            ]
            left = db("BatchWriteItem", {"RequestItems": {table: batch}}).get("UnprocessedItems")
            if left:
                raise RuntimeError(f"BatchWriteItem left items unprocessed: {len(left)}")


class Side:
    """One pair of tables and the calls timed against it."""

    def __init__(self, db: Dynamo, users: str, notes: str, count: int, seed_value: int) -> None:
        self.db, self.users, self.notes, self.count = db, users, notes, count
        self.random = random.Random(seed_value)
        self.next_new_uid = count + 1
        self.latencies: dict[str, list[float]] = {op: [] for op in OPERATIONS}

    def existing(self) -> int:
        return self.random.randint(1, self.count)

    def timed(self, op: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        answer = self.db(action, body)
        self.latencies[op].append(time.perf_counter() - started)
        return answer

    def get_item(self) -> None:
        key = {"Uid": n(self.existing())}
        if "Item" not in self.timed("get_item", "GetItem", {"TableName": self.users, "Key": key}):
            raise RuntimeError("GetItem found nothing")

    def query(self) -> None:
        body = {
            "TableName": self.notes,
            "KeyConditionExpression": "Uid = :u",
            "ExpressionAttributeValues": {":u": n(self.existing())},
            "ConsistentRead": True,
        }
        if self.timed("query", "Query", body)["Count"] != 1:
            raise RuntimeError("Query did not find the one notification")

    def transact(self) -> None:
        uid = self.existing()
        items = [
            {
                "ConditionCheck": {
                    "TableName": self.users,
                    "Key": {"Uid": n(uid)},
                    "ConditionExpression": "Email = :e",
                    "ExpressionAttributeValues": {":e": s(f"user-{uid}@example.test")},
                }
            },
            {"Put": {"TableName": self.notes, "Item": welcome(uid)}},
        ]
        self.timed("transact", "TransactWriteItems", {"TransactItems": items})

    def put_then_delete(self) -> None:
        uid, self.next_new_uid = self.next_new_uid, self.next_new_uid + 1
        self.timed("put_item", "PutItem", {"TableName": self.users, "Item": user(uid)})
        self.timed("delete_item", "DeleteItem", {"TableName": self.users, "Key": {"Uid": n(uid)}})

    def calls(self) -> list[Callable[[], None]]:
        return [self.get_item, self.query, self.transact, self.put_then_delete]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100, help="items a table, small (100)")
    parser.add_argument("--big", type=int, default=100_000, help="items a table, big (100000)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (7)")
    parser.add_argument("--calls", type=int, default=100, help="calls per op, round, side (100)")
    args = parser.parse_args()

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    emulator = EmulatorProcess("127.0.0.1", 0, env)
    emulator.start()
    db = Dynamo(emulator.url)
    try:
        sides: list[Side] = []
        for label, count in (("small", args.small), ("big", args.big)):
            users, notes = create_tables(db, label)
            started = time.perf_counter()
            seed(db, users, notes, count)
            note(f"seeded 2 x {count} items in {time.perf_counter() - started:.1f}s")
            sides.append(Side(db, users, notes, count, seed_value=len(sides)))
        small, big = sides
        load_before = load_average()
        for side in sides:  # warm-up: first-use imports and caches
            for call in side.calls():
                call()
            side.latencies = {op: [] for op in OPERATIONS}
        for _ in range(args.rounds):
            for small_call, big_call in zip(small.calls(), big.calls(), strict=True):
                for _ in range(args.calls):  # call by call, so both sizes see the same load
                    small_call()
                    big_call()
        emit("key_op_items_small", args.small)
        emit("key_op_items_big", args.big)
        emit("key_op_calls_per_op_and_size", args.rounds * args.calls)
        emit("key_op_load_average_before", load_before, ".2f")
        ratios = []
        for op in OPERATIONS:
            small_ms = statistics.median(small.latencies[op]) * 1000
            big_ms = statistics.median(big.latencies[op]) * 1000
            ratios.append(big_ms / small_ms)
            emit(f"key_op_{op}_ms_small", small_ms, ".3f")
            emit(f"key_op_{op}_ms_big", big_ms, ".3f")
            emit(f"key_op_{op}_big_vs_small", ratios[-1], ".2f")
        emit("key_op_latency_100k_vs_100", max(ratios), ".2f")
    finally:
        db.close()
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
