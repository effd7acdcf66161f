"""The emulator's DynamoDB transactions: no resurrection under concurrency, same answers.

Each side runs in a fresh interpreter (the patch changes moto's classes for the whole
process). ``stock`` is moto as released; ``patched`` is moto as the emulator child runs it
(``moto_speedups``, ``moto_bounds`` and ``moto_transactions`` installed), in-process behind
``mock_aws``; ``emulator`` is the emulator child itself, over HTTP.

The race: a user item is deleted by one thread while another runs the processor's
transaction shape (a ``ConditionCheck`` on that user that fails, then a ``Put`` in a second
table), both tables holding thousands of items. Stock moto copies both tables before the
transaction and puts the copies back when it fails, so a delete that lands while the second
table is being copied is undone: the user comes back. The deleter waits a random time within
one transaction's duration (measured on that side first), so its delete lands at every point
of the transaction.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

ITEMS = 3000  # per table
ROUNDS = 30

PRELUDE = textwrap.dedent(
    """
    import json, os, random, sys, threading, time
    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                      AWS_DEFAULT_REGION="us-east-1")
    side = sys.argv[1]
    if side == "patched":
        from harness.sandbox import moto_bounds, moto_speedups, moto_transactions
        moto_speedups.install()
        moto_bounds.install()
        moto_transactions.install()
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from moto import mock_aws

    if side == "emulator":
        from harness.sandbox.emulator import EmulatorProcess
        emulator = EmulatorProcess("127.0.0.1", 0, dict(os.environ))
        emulator.start()
        endpoint, mock = emulator.url, None
    else:
        emulator, endpoint, mock = None, None, mock_aws()
        mock.start()

    def client():
        return boto3.client("dynamodb", endpoint_url=endpoint,
                            config=Config(retries={"max_attempts": 1}))

    def answer(call, **kwargs):
        try:
            out = call(**kwargs)
        except ClientError as exc:
            out = {"Error": exc.response["Error"],
                   "CancellationReasons": exc.response.get("CancellationReasons")}
        out.pop("ResponseMetadata", None)
        return out

    def n(value): return {"N": str(value)}
    def s(value): return {"S": value}
    ddb = client()
    """
)

RACE = PRELUDE + textwrap.dedent(
    """
    ITEMS, ROUNDS = int(sys.argv[2]), int(sys.argv[3])
    # In-process, a request holds the interpreter lock until it is preempted (every 5 ms by
    # default): switch far more often, as a server's socket I/O does, so requests interleave.
    sys.setswitchinterval(0.0001)
    for name, keys in (("users", ["Uid"]), ("notes", ["Uid", "Id"])):
        ddb.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in zip(keys, ["HASH", "RANGE"])],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": t}
                                  for k, t in zip(keys, ["N", "S"])],
        )
    for start in range(0, ITEMS, 25):
        uids = range(10**6 + start, 10**6 + min(ITEMS, start + 25))
        ddb.batch_write_item(RequestItems={
            "users": [{"PutRequest": {"Item": {"Uid": n(u), "Email": s(f"{u}@x.test")}}}
                      for u in uids],
            "notes": [{"PutRequest": {"Item": {"Uid": n(u), "Id": s("welcome"),
                                               "Message": s("Welcome!")}}} for u in uids],
        })

    def welcome_if_still(uid, email, db):
        # the processor's put_welcome_if_user_exists; the email no longer matches
        return answer(db.transact_write_items, TransactItems=[
            {"ConditionCheck": {"TableName": "users", "Key": {"Uid": n(uid)},
                                "ConditionExpression": "Email = :e",
                                "ExpressionAttributeValues": {":e": s(email)}}},
            {"Put": {"TableName": "notes",
                     "Item": {"Uid": n(uid), "Id": s("welcome"), "Message": s("Welcome!")}}},
        ])

    ddb.put_item(TableName="users", Item={"Uid": n(1), "Email": s("now@x.test")})
    welcome_if_still(1, "then@x.test", ddb)  # warm-up
    durations = []
    for _ in range(5):
        started = time.perf_counter()
        welcome_if_still(1, "then@x.test", ddb)
        durations.append(time.perf_counter() - started)
    transaction_s = sorted(durations)[2]

    tx_db, delete_db = client(), client()
    resurrected = overlapped = 0
    transactions = []
    for uid in range(2, ROUNDS + 2):
        ddb.put_item(TableName="users", Item={"Uid": n(uid), "Email": s("now@x.test")})
        barrier, spans = threading.Barrier(2), {}

        def transact():
            barrier.wait()
            spans["tx"] = [time.perf_counter()]
            try:
                transactions.append(welcome_if_still(uid, "then@x.test", tx_db))
            except Exception as exc:  # stock moto may fail the copy outright
                transactions.append({"Raised": type(exc).__name__})
            spans["tx"].append(time.perf_counter())

        def delete():
            barrier.wait()
            time.sleep(random.uniform(0, transaction_s))
            spans["delete"] = [time.perf_counter()]
            delete_db.delete_item(TableName="users", Key={"Uid": n(uid)})
            spans["delete"].append(time.perf_counter())

        threads = [threading.Thread(target=transact), threading.Thread(target=delete)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        (tx_start, tx_end), (del_start, del_end) = spans["tx"], spans["delete"]
        overlapped += del_start < tx_end and tx_start < del_end
        resurrected += "Item" in ddb.get_item(TableName="users", Key={"Uid": n(uid)},
                                              ConsistentRead=True)
    print(json.dumps({
        "transaction_ms": round(transaction_s * 1000, 1),
        "resurrected": resurrected,
        "overlapped": overlapped,
        "transactions": transactions,
        "users": ddb.describe_table(TableName="users")["Table"]["ItemCount"],
    }))
    if emulator is not None:
        emulator.stop()
    """
)

SEMANTICS = PRELUDE + textwrap.dedent(
    """
    answers = []
    def record(label, call, **kwargs):
        answers.append([label, answer(call, **kwargs)])

    ddb.create_table(
        TableName="users", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "Uid", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Uid", "AttributeType": "N"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.create_table(
        TableName="notes", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "Uid", "KeyType": "HASH"},
                   {"AttributeName": "Id", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "Uid", "AttributeType": "N"},
                              {"AttributeName": "Id", "AttributeType": "S"},
                              {"AttributeName": "Kind", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by-kind",
                                 "KeySchema": [{"AttributeName": "Kind", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
    )
    for uid in range(1, 6):
        ddb.put_item(TableName="users", Item={"Uid": n(uid), "Email": s(f"{uid}@x.test"),
                                              "Logins": n(0), "Name": s("x")})
        for note in ("a", "b", "c"):
            ddb.put_item(TableName="notes", Item={"Uid": n(uid), "Id": s(note),
                                                  "Kind": s(note), "Text": s(f"{uid}{note}")})

    def tx(label, items, **kwargs):
        record(label, ddb.transact_write_items, TransactItems=items, **kwargs)
        record(label + ": users", ddb.scan, TableName="users")
        record(label + ": notes", ddb.scan, TableName="notes")

    put_note = lambda uid, note: {"Put": {"TableName": "notes", "Item": {
        "Uid": n(uid), "Id": s(note), "Kind": s(note), "Text": s("new")}}}
    check = lambda uid, email, **more: {"ConditionCheck": {
        "TableName": "users", "Key": {"Uid": n(uid)}, "ConditionExpression": "Email = :e",
        "ExpressionAttributeValues": {":e": s(email)}, **more}}
    bump = lambda uid, **more: {"Update": {
        "TableName": "users", "Key": {"Uid": n(uid)},
        "UpdateExpression": "SET Logins = Logins + :one",
        "ExpressionAttributeValues": {":one": n(1)}, **more}}
    delete = lambda uid, note, **more: {"Delete": {
        "TableName": "notes", "Key": {"Uid": n(uid), "Id": s(note)}, **more}}

    tx("all succeed", [check(1, "1@x.test"), put_note(1, "d"), bump(2), delete(3, "a"),
                       {"Put": {"TableName": "users", "Item": {"Uid": n(9), "Email": s("9@x")}}}])
    tx("a check fails: nothing applied",
       [put_note(4, "d"), check(1, "wrong@x.test"), bump(2), delete(5, "a"), delete(5, "b")])
    tx("a failed check returns the item",
       [bump(3), check(1, "wrong@x.test", ReturnValuesOnConditionCheckFailure="ALL_OLD")])
    tx("a put's condition fails", [delete(1, "a"), {"Put": {
        "TableName": "users", "Item": {"Uid": n(1), "Email": s("dup@x")},
        "ConditionExpression": "attribute_not_exists(Uid)"}}])
    tx("an update that creates, then a failed delete condition",
       [{"Update": {"TableName": "users", "Key": {"Uid": n(77)},
                    "UpdateExpression": "SET Logins = :one",
                    "ExpressionAttributeValues": {":one": n(1)}}},
        delete(2, "a", ConditionExpression="attribute_not_exists(Uid)")])
    tx("a write, then an update of an attribute that is not there", [delete(2, "a"), bump(77)])
    tx("an update's expression fails on the data",
       [delete(2, "b"), {"Update": {"TableName": "users", "Key": {"Uid": n(4)},
                                    "UpdateExpression": "SET Logins = Email + :one",
                                    "ExpressionAttributeValues": {":one": n(1)}}}])
    tx("a missing table", [delete(2, "c"), {"ConditionCheck": {
        "TableName": "nope", "Key": {"Uid": n(1)},
        "ConditionExpression": "attribute_exists(Uid)"}}])
    tx("two operations on one item", [put_note(2, "z"), bump(1), bump(1)])
    tx("the last note of a user, deleted, then cancelled",
       [delete(3, "b"), delete(3, "c"), delete(3, "d"), check(1, "wrong@x.test")])
    tx("more than 100 operations", [bump(uid) for uid in range(101)])

    # Query on a hash key, the path moto_transactions narrows to one bucket
    q = lambda label, **kwargs: record(label, ddb.query, **kwargs)
    for uid in (1, 2, 3, 4, 5, 42):
        q(f"notes of {uid}", TableName="notes", KeyConditionExpression="Uid = :u",
          ExpressionAttributeValues={":u": n(uid)})
    q("backwards, limited", TableName="notes", KeyConditionExpression="Uid = :u",
      ExpressionAttributeValues={":u": n(1)}, ScanIndexForward=False, Limit=2)
    q("next page", TableName="notes", KeyConditionExpression="Uid = :u",
      ExpressionAttributeValues={":u": n(1)}, ScanIndexForward=False, Limit=2,
      ExclusiveStartKey={"Uid": n(1), "Id": s("c")})
    q("range condition", TableName="notes",
      KeyConditionExpression="Uid = :u AND Id BETWEEN :a AND :b",
      ExpressionAttributeValues={":u": n(1), ":a": s("b"), ":b": s("d")})
    q("begins_with, filter, projection", TableName="notes",
      KeyConditionExpression="Uid = :u AND begins_with(Id, :p)", FilterExpression="#t <> :t",
      ProjectionExpression="Id, #t", ExpressionAttributeNames={"#t": "Text"},
      ExpressionAttributeValues={":u": n(5), ":p": s("a"), ":t": s("zzz")})
    q("count", TableName="notes", KeyConditionExpression="Uid = :u",
      ExpressionAttributeValues={":u": n(4)}, Select="COUNT")
    q("old KeyConditions", TableName="notes", KeyConditions={
        "Uid": {"ComparisonOperator": "EQ", "AttributeValueList": [n(2)]}})
    q("a string for a number key", TableName="notes", KeyConditionExpression="Uid = :u",
      ExpressionAttributeValues={":u": s("1")})
    q("users by hash", TableName="users", KeyConditionExpression="Uid = :u",
      ExpressionAttributeValues={":u": n(2)})
    q("users, a missing hash", TableName="users", KeyConditionExpression="Uid = :u",
      ExpressionAttributeValues={":u": n(404)})
    q("an index", TableName="notes", IndexName="by-kind", KeyConditionExpression="Kind = :k",
      ExpressionAttributeValues={":k": s("c")})

    from moto.dynamodb.models import dynamodb_backends
    shard = dynamodb_backends["123456789012"]["us-east-1"].tables["users"].stream_shard
    print(json.dumps({"answers": answers,
                      "stream_records": [r.record["eventName"] for r in shard.items]}))
    """
)


def _run(script: str, side: str, *args: Any) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, side, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


CANCELLED = {
    "Error": {
        "Code": "TransactionCanceledException",
        "Message": "Transaction cancelled, please refer cancellation reasons for specific "
        "reasons [ConditionalCheckFailed, None]",
    },
    "CancellationReasons": [
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
        {"Code": "None"},
    ],
}


def _report(side: str, result: dict[str, Any]) -> str:
    return (
        f"{side}: {result['resurrected']}/{ROUNDS} deleted users came back, "
        f"{result['overlapped']} deletes overlapped the transaction, "
        f"one transaction {result['transaction_ms']} ms"
    )


def test_stock_moto_resurrects_a_concurrently_deleted_item_and_the_patch_does_not() -> None:
    stock = _run(RACE, "stock", ITEMS, ROUNDS)
    patched = _run(RACE, "patched", ITEMS, ROUNDS)
    print(_report("stock", stock), _report("patched", patched), sep="\n")
    # the bug, reproduced: stock moto's restored copy overwrites the delete
    assert stock["resurrected"] >= 1, _report("stock", stock)
    # patched: every delete sticks, every transaction is cancelled as DynamoDB would
    assert patched["resurrected"] == 0, _report("patched", patched)
    assert patched["transactions"] == [CANCELLED] * ROUNDS
    assert patched["users"] == ITEMS + 1  # the seeded users and the warm-up's
    # and the race was run: deletes were sent while a transaction was in flight
    assert patched["overlapped"] >= ROUNDS // 10, _report("patched", patched)


def test_the_emulator_child_keeps_a_concurrent_delete() -> None:
    result = _run(RACE, "emulator", ITEMS, ROUNDS)
    print(_report("emulator", result))
    assert result["resurrected"] == 0, _report("emulator", result)
    assert result["transactions"] == [CANCELLED] * ROUNDS
    assert result["overlapped"] >= ROUNDS // 10, _report("emulator", result)


def test_transactions_and_queries_answer_as_stock_moto() -> None:
    stock = _run(SEMANTICS, "stock")
    patched = _run(SEMANTICS, "patched")
    answers = dict(stock["answers"])
    # the semantics themselves, on stock moto
    assert "Error" not in answers["all succeed"]
    assert {"Uid": {"N": "9"}, "Email": {"S": "9@x"}} in answers["all succeed: users"]["Items"]
    failed = answers["a check fails: nothing applied"]
    assert failed["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in failed["CancellationReasons"]] == [
        "None",
        "ConditionalCheckFailed",
        "None",
        "None",
        "None",
    ]
    assert answers["a check fails: nothing applied: users"] == answers["all succeed: users"]
    assert answers["a check fails: nothing applied: notes"] == answers["all succeed: notes"]
    created = answers["an update that creates, then a failed delete condition"]
    assert [r["Code"] for r in created["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    for label in (
        "an update that creates, then a failed delete condition",
        "a write, then an update of an attribute that is not there",
        "an update's expression fails on the data",
        "two operations on one item",
        "the last note of a user, deleted, then cancelled",
    ):
        code = answers[label]["Error"]["Code"]
        assert code in ("TransactionCanceledException", "ValidationException"), label
        assert answers[label + ": users"] == answers["all succeed: users"], label
        assert answers[label + ": notes"] == answers["all succeed: notes"], label
    assert answers["a failed check returns the item"]["CancellationReasons"][1]["Item"]["Uid"] == {
        "N": "1"
    }
    # and patched moto answers every call exactly as stock moto does
    for (label, expected), (same_label, got) in zip(
        stock["answers"], patched["answers"], strict=True
    ):
        assert (same_label, got) == (label, expected)
    # a cancelled transaction leaves no stream records of writes that never happened
    assert patched["stream_records"] == stock["stream_records"]
