"""The local stack's moto patches for large backlogs (``local.runtime``) keep SQS's, DynamoDB's and
EventBridge's contract: visibility, delays, receive counts, the DLQ redrive, the order messages are
handed out in, receipt handles, content-based deduplication, the approximate counts; a GSI query's
matches, order, limit and paging; each event delivered with its own content. Each test goes through
the stack's moto server (the patches are installed process-wide by the stack), so it fails if a
patch changes what moto answers. The last SQS test times the calls with a backlog: without the
patch one receive costs seconds there.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import boto3
import pytest


@pytest.fixture
def sqs(stack):
    return boto3.client("sqs", endpoint_url=stack.info["endpoint_url"], region_name=stack.info["region"])


@pytest.fixture
def queue(sqs):
    url = sqs.create_queue(QueueName=f"backlog-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


def _counts(sqs, url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            int(attributes["ApproximateNumberOfMessagesDelayed"]))


def _send(sqs, url, bodies, **extra):
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": body, **extra} for i, body in enumerate(bodies[start:start + 10])])


def test_messages_come_out_in_order_and_the_counts_follow_visibility_and_delay(sqs, queue):
    _send(sqs, queue, [f"m{i:02d}" for i in range(25)])
    sqs.send_message(QueueUrl=queue, MessageBody="late", DelaySeconds=2)
    assert _counts(sqs, queue) == (25, 0, 1)
    got = []
    for _ in range(3):
        got += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
    assert [m["Body"] for m in got] == [f"m{i:02d}" for i in range(25)]  # moto's order, unchanged
    assert _counts(sqs, queue) == (0, 25, 1)
    assert sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []) == []  # the delayed one waits
    time.sleep(2.2)
    late = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    assert [m["Body"] for m in late] == ["late"]
    sqs.delete_message_batch(QueueUrl=queue, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got[:10])])
    assert _counts(sqs, queue) == (0, 16, 0)


def test_a_message_not_deleted_comes_back_counted_and_any_of_its_handles_deletes_it(sqs, queue):
    sqs.send_message(QueueUrl=queue, MessageBody="keep")
    sqs.send_message(QueueUrl=queue, MessageBody="other")
    first = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=1, AttributeNames=["All"])["Messages"][0]
    assert first["Body"] == "keep" and first["Attributes"]["ApproximateReceiveCount"] == "1"
    time.sleep(1.2)
    again = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=30, AttributeNames=["All"])["Messages"][0]
    assert again["Body"] == "keep" and again["Attributes"]["ApproximateReceiveCount"] == "2"
    assert again["ReceiptHandle"] != first["ReceiptHandle"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"])  # an older handle still deletes
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=again["ReceiptHandle"])  # deleting twice is accepted
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=queue, ReceiptHandle="not-a-handle")
    rest = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    assert [m["Body"] for m in rest] == ["other"]  # only the one message went


def test_the_redrive_moves_a_message_to_the_dead_letter_queue_after_max_receives(sqs):
    dlq = sqs.create_queue(QueueName=f"backlog-dlq-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source = sqs.create_queue(QueueName=f"backlog-src-{uuid.uuid4().hex[:12]}", Attributes={
        "VisibilityTimeout": "1", "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})})["QueueUrl"]
    try:
        sqs.send_message(QueueUrl=source, MessageBody="poison")
        for _ in range(2):
            assert [m["Body"] for m in sqs.receive_message(QueueUrl=source)["Messages"]] == ["poison"]
            time.sleep(1.2)
        assert sqs.receive_message(QueueUrl=source).get("Messages", []) == []
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq)["Messages"]] == ["poison"]
    finally:
        sqs.delete_queue(QueueUrl=source)
        sqs.delete_queue(QueueUrl=dlq)


def test_a_fifo_queue_still_deduplicates_by_content(sqs):
    url = sqs.create_queue(QueueName=f"backlog-{uuid.uuid4().hex[:12]}.fifo",
                           Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    try:
        for _ in range(3):
            sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
        sqs.send_message(QueueUrl=url, MessageBody="different", MessageGroupId="g")
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ContentBasedDeduplication"] == "true" and attributes["ApproximateNumberOfMessages"] == "2"
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_concurrent_sends_and_deletes_lose_nothing(sqs, queue, stack):
    """moto rebuilt the message list on every delete without a lock: a message sent meanwhile could vanish."""
    _send(sqs, queue, [f"old-{i}" for i in range(300)])
    received = []
    while len(received) < 300:
        received += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
    senders = [boto3.client("sqs", endpoint_url=stack.info["endpoint_url"], region_name=stack.info["region"]) for _ in range(2)]

    def send(client, tag):
        _send(client, queue, [f"new-{tag}-{i}" for i in range(150)])

    def delete():
        for start in range(0, len(received), 10):
            sqs.delete_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received[start:start + 10])])

    threads = [threading.Thread(target=send, args=(c, t)) for t, c in enumerate(senders)] + [threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _counts(sqs, queue) == (300, 0, 0)


def test_a_backlog_does_not_slow_each_call_down(sqs, queue):
    _send(sqs, queue, ["x" * 100] * 3000)
    started = time.perf_counter()
    for _ in range(20):
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
        sqs.delete_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        sqs.send_message(QueueUrl=queue, MessageBody="y")
    elapsed = time.perf_counter() - started
    # Unpatched moto 5.2.5 takes seconds per receive of 10 here (bench/moto_backlog.py, idle: 0.64 s at 1,000
    # messages queued, 6.2 s at 10,000); patched, ~1.5 ms.
    assert elapsed < 10, f"20 receive/delete/send rounds with 3,000 messages queued took {elapsed:.1f} s"
    assert _counts(sqs, queue)[0] == 3000 - 200 + 20


# --- DynamoDB: a query on a global secondary index ---------------------------------------------------


@pytest.fixture
def table(stack):
    ddb = boto3.client("dynamodb", endpoint_url=stack.info["endpoint_url"], region_name=stack.info["region"])
    name = f"gsi-{uuid.uuid4().hex[:12]}"
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in
                              (("id", "S"), ("status", "S"), ("created_at", "S"), ("group", "N"), ("row", "N"))],
        GlobalSecondaryIndexes=[
            {"IndexName": "by-status", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "created_at", "KeyType": "RANGE"}]},
            {"IndexName": "by-group", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "group", "KeyType": "HASH"}, {"AttributeName": "row", "KeyType": "RANGE"}]},
        ])
    for i in range(60):
        item = {"id": {"S": f"j{(i * 37) % 60:03d}"}, "status": {"S": ("QUEUED", "SUCCEEDED", "RECEIVED")[i % 3]},
                "group": {"N": str(i % 2)}, "row": {"N": str(60 - i)}}
        if i % 10 != 9:  # some items lack the range key: a GSI leaves them out
            item["created_at"] = {"S": f"2026-01-01T00:{i:02d}"}
        ddb.put_item(TableName=name, Item=item)
    ddb.put_item(TableName=name, Item={"id": {"S": "batch#x"}, "total": {"N": "3"}})  # in neither index
    yield ddb, name
    ddb.delete_table(TableName=name)


def _query_all(ddb, **kwargs):
    items, pages, start = [], 0, None
    while True:
        page = ddb.query(**kwargs, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        pages += 1
        start = page.get("LastEvaluatedKey")
        if not start:
            return items, pages


def test_a_gsi_query_returns_the_matches_in_index_order_with_limit_and_paging(table):
    ddb, name = table
    expected = sorted(f"2026-01-01T00:{i:02d}" for i in range(60) if i % 3 == 0 and i % 10 != 9)
    for forward in (True, False):
        items, pages = _query_all(ddb, TableName=name, IndexName="by-status", KeyConditionExpression="#s = :s",
                                  ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "QUEUED"}},
                                  Limit=4, ScanIndexForward=forward)
        assert [i["created_at"]["S"] for i in items] == (expected if forward else expected[::-1])
        assert len(expected) == 18 and pages == 5 and all(i["status"]["S"] == "QUEUED" for i in items)
    since, _ = _query_all(ddb, TableName=name, IndexName="by-status",
                          KeyConditionExpression="#s = :s AND created_at >= :t", ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":s": {"S": "QUEUED"}, ":t": {"S": "2026-01-01T00:30"}})
    assert [i["created_at"]["S"] for i in since] == [t for t in expected if t >= "2026-01-01T00:30"]
    # A number hash key matches by value ("1" and "1.0" are one number), ordered by the number range key.
    by_group, _ = _query_all(ddb, TableName=name, IndexName="by-group", KeyConditionExpression="#g = :g",
                             ExpressionAttributeNames={"#g": "group"}, ExpressionAttributeValues={":g": {"N": "1.0"}})
    assert [int(i["row"]["N"]) for i in by_group] == sorted(60 - i for i in range(60) if i % 2 == 1)


def test_a_table_query_and_a_scan_are_unchanged(table):
    ddb, name = table
    assert [i["id"]["S"] for i in ddb.query(TableName=name, KeyConditionExpression="id = :i",
                                            ExpressionAttributeValues={":i": {"S": "j007"}})["Items"]] == ["j007"]
    scanned = [i["id"]["S"] for i in ddb.scan(TableName=name)["Items"]]
    assert scanned == sorted(scanned) and len(scanned) == 61  # moto's scan order: by hash key


# --- EventBridge: each event delivered with its own content ------------------------------------------


def test_each_event_reaches_its_target_with_its_own_detail(stack, sqs):
    events = boto3.client("events", endpoint_url=stack.info["endpoint_url"], region_name=stack.info["region"])
    tag = uuid.uuid4().hex[:12]
    url = sqs.create_queue(QueueName=f"backlog-events-{tag}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"backlog-{tag}", EventPattern=json.dumps({"source": [f"test.{tag}"]}))
    events.put_targets(Rule=f"backlog-{tag}", Targets=[{"Id": "q", "Arn": arn}])
    try:
        events.put_events(Entries=[{"Source": f"test.{tag}", "DetailType": f"t{i}", "Detail": json.dumps({"n": i})}
                                   for i in range(5)])
        got = []
        while len(got) < 5:
            got += [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                                       WaitTimeSeconds=1).get("Messages", [])]
        assert sorted((e["detail-type"], e["detail"]["n"], e["source"]) for e in got) == \
            [(f"t{i}", i, f"test.{tag}") for i in range(5)]
    finally:
        events.remove_targets(Rule=f"backlog-{tag}", Ids=["q"])
        events.delete_rule(Name=f"backlog-{tag}")
        sqs.delete_queue(QueueUrl=url)


def test_moto_still_knows_its_service_modules(stack):
    """The module list is read once: it must be the one moto computes from its package."""
    import os

    import moto
    from moto import backends

    path = os.path.dirname(moto.__file__)
    assert list(backends.list_of_moto_modules()) == [
        name for name in sorted(os.listdir(path)) if os.path.isdir(os.path.join(path, name)) and not name.startswith("__")]


def test_a_parsed_json_path_is_shared_and_still_finds_each_documents_values(stack):
    from jsonpath_ng.ext import parse
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    assert parse("$.detail.n") is parse("$.detail.n")
    assert [extract_json("$.detail.n", {"detail": {"n": n}}) for n in range(3)] == [0, 1, 2]
