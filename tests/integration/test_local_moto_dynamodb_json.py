"""The local stack's DynamoDB answers (json.dumps, see local/moto_dynamodb_json.py) parse to exactly
what moto's own serializer gives, for every item operation the project uses and every attribute
type, binary ones included; table descriptions (datetimes) still go through moto's serializer."""

from __future__ import annotations

import json as fast_json

import boto3
import pytest

from local.moto_dynamodb_json import patch_moto_dynamodb_json
from local.moto_server import KeepAliveMotoServer

ITEM = {"job_id": {"S": "j-1"}, "status": {"S": "QUEUED"}, "attempts": {"N": "3"}, "ratio": {"N": "0.25"},
        "flags": {"SS": ["a", "b"]}, "sizes": {"NS": ["1", "2.5"]}, "keep_audio": {"BOOL": True},
        "note": {"NULL": True}, "thumb": {"B": b"\x00\x01binary"}, "chunks": {"BS": [b"x", b"y"]},
        "status_history": {"L": [{"M": {"status": {"S": "RECEIVED"}, "at": {"S": "2026-12-06T05:00:00Z"}}},
                                 {"M": {"status": {"S": "QUEUED"}, "at": {"S": "2026-12-06T05:00:01Z"}}}]},
        "extra": {"M": {"variant": {"S": "reels"}, "nested": {"L": [{"N": "1"}, {"S": "é ü 🎬"}]}}}}


@pytest.fixture(scope="module")
def dynamodb(monkeypatch_module):
    server = KeepAliveMotoServer("127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield boto3.client("dynamodb", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _calls(client, table):
    client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"},
                                              {"AttributeName": "status", "AttributeType": "S"}],
                        GlobalSecondaryIndexes=[{"IndexName": "by_status", "Projection": {"ProjectionType": "ALL"},
                                                 "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}]}])
    answers = [
        client.put_item(TableName=table, Item=ITEM, ReturnConsumedCapacity="TOTAL"),
        client.put_item(TableName=table, Item={**ITEM, "attempts": {"N": "4"}}, ReturnValues="ALL_OLD"),
        client.get_item(TableName=table, Key={"job_id": {"S": "j-1"}}, ConsistentRead=True),
        client.get_item(TableName=table, Key={"job_id": {"S": "none"}}),
        client.get_item(TableName=table, Key={"job_id": {"S": "j-1"}}, ProjectionExpression="#s, extra.variant",
                        ExpressionAttributeNames={"#s": "status"}),
        client.update_item(TableName=table, Key={"job_id": {"S": "j-1"}}, ReturnValues="ALL_NEW",
                           UpdateExpression="SET #s = :s, status_history = list_append(status_history, :h)",
                           ExpressionAttributeNames={"#s": "status"},
                           ExpressionAttributeValues={":s": {"S": "SUBMITTED"},
                                                      ":h": {"L": [{"M": {"status": {"S": "SUBMITTED"}}}]}}),
        client.query(TableName=table, IndexName="by_status", KeyConditionExpression="#s = :s",
                     ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "SUBMITTED"}}),
        client.scan(TableName=table, ProjectionExpression="job_id, attempts", Limit=5),
        client.batch_get_item(RequestItems={table: {"Keys": [{"job_id": {"S": "j-1"}}, {"job_id": {"S": "x"}}]}}),
        client.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": {"job_id": {"S": "j-2"}}}}]),
        client.delete_item(TableName=table, Key={"job_id": {"S": "j-2"}}, ReturnValues="ALL_OLD"),
    ]
    description = client.describe_table(TableName=table)["Table"]
    client.delete_table(TableName=table)
    for answer in answers:
        answer.pop("ResponseMetadata")
    return answers, description


def test_every_item_answer_parses_the_same_with_and_without_the_patch(dynamodb, monkeypatch):
    import local.moto_dynamodb_json as fast

    by_moto, _ = _calls(dynamodb, "answers")
    written = []
    monkeypatch.setattr(fast, "json", type("Spy", (), {"dumps": staticmethod(
        lambda value: written.append(fast_json.dumps(value)) or written[-1])}))
    undo = patch_moto_dynamodb_json()
    try:
        patched, description = _calls(dynamodb, "answers")
    finally:
        undo()
    assert patched == by_moto
    assert len(written) >= 5  # the answers without binary values took the fast path
    assert patched[2]["Item"]["thumb"] == {"B": b"\x00\x01binary"}  # binary: moto's serializer, base64
    assert description["TableName"] == "answers" and description["CreationDateTime"].year >= 2026
