"""The emulator's bounds on moto: deleted data is let go, and answers do not change.

Each side runs in a fresh interpreter (the patch changes moto's classes for the whole
process): the same workload — items written, read, queried and deleted in a table with a
sort key (as notifications are), messages published through SNS to SQS, received and
deleted — with and without ``moto_bounds.install()``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from harness.sandbox.moto_bounds import SENT_NOTIFICATIONS_KEPT

USERS = 150

WORKLOAD = textwrap.dedent(
    """
    import gc, json, os, sys, weakref
    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                      AWS_DEFAULT_REGION="us-east-1")
    if sys.argv[1] == "patched":
        from harness.sandbox import moto_bounds
        moto_bounds.install()
    import boto3
    from moto import mock_aws
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.sns.models import sns_backends

    USERS = int(sys.argv[2])
    answers = []
    with mock_aws():
        ddb = boto3.client("dynamodb")
        sns = boto3.client("sns")
        sqs = boto3.client("sqs")
        ddb.create_table(
            TableName="notes", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "Uid", "KeyType": "HASH"},
                       {"AttributeName": "Id", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "Uid", "AttributeType": "N"},
                                  {"AttributeName": "Id", "AttributeType": "S"}],
        )
        topic = sns.create_topic(Name="events")["TopicArn"]
        queue = sqs.create_queue(QueueName="events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs",
                      Endpoint=arn["Attributes"]["QueueArn"],
                      Attributes={"RawMessageDelivery": "true"})
        key = lambda uid, note: {"Uid": {"N": str(uid)}, "Id": {"S": note}}
        for uid in range(USERS):
            for note in ("welcome", "digest"):
                ddb.put_item(TableName="notes", Item={**key(uid, note), "Text": {"S": note}})
            answers.append(ddb.get_item(TableName="notes", Key=key(uid, "welcome"))["Item"])
            answers.append(ddb.get_item(TableName="notes", Key=key(uid + 10**6, "x")).get("Item"))
            sns.publish(TopicArn=topic, Message=json.dumps({"uid": uid}))
        table = dynamodb_backends["123456789012"]["us-east-1"].tables["notes"]
        probe = weakref.ref(table.get_item(DynamoType({"N": "7"}), DynamoType({"S": "welcome"})))
        received = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
            if not batch.get("Messages"):
                break
            for message in batch["Messages"]:
                received.append(json.loads(message["Body"])["uid"])
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        for uid in range(USERS):
            ddb.delete_item(TableName="notes", Key=key(uid, "welcome"))
            if uid % 2:  # odd users keep their digest
                continue
            ddb.delete_item(TableName="notes", Key=key(uid, "digest"))
            ddb.delete_item(TableName="notes", Key=key(uid, "never-there"))
        for uid in (0, 1, 2, 3):
            page = ddb.query(TableName="notes", KeyConditionExpression="Uid = :u",
                             ExpressionAttributeValues={":u": {"N": str(uid)}})
            answers.append(page["Items"])
        answers.append(ddb.scan(TableName="notes")["Count"])
        answers.append(sorted(received))
        gc.collect()
        print(json.dumps({
            "answers": answers,
            "deleted_item_alive": probe() is not None,
            "items_tracked": len(Item.instances_tracked),
            "hash_buckets": len(table.items),
            "sent_kept": len(sns_backends["123456789012"]["us-east-1"]
                             .topics[topic].sent_notifications),
        }))
    """
)


def _run(side: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD, side, str(USERS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_deleted_data_is_let_go_and_answers_are_unchanged() -> None:
    stock, patched = _run("stock"), _run("patched")
    live_users = USERS // 2  # the odd users still hold their digest
    # stock moto keeps every item, every published message and a bucket per key it saw
    assert stock["deleted_item_alive"] and stock["items_tracked"] >= USERS
    assert stock["sent_kept"] == USERS
    assert stock["hash_buckets"] == 2 * USERS  # read misses of uid + 10**6 added buckets too
    # patched: a deleted item is garbage, nothing is tracked, the topic keeps a bounded
    # tail, and only hash keys that still hold items keep a bucket
    assert not patched["deleted_item_alive"]
    assert patched["items_tracked"] == 0
    assert patched["sent_kept"] == SENT_NOTIFICATIONS_KEPT
    assert patched["hash_buckets"] == live_users
    # and every answer is the same
    assert patched["answers"] == stock["answers"]
    assert patched["answers"][-2] == live_users
    assert patched["answers"][-1] == list(range(USERS))
