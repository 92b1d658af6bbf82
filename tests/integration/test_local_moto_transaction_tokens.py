"""The local stack's DynamoDB honours TransactWriteItems' ClientRequestToken, as DynamoDB does:
an identical call with a token that already succeeded writes nothing again, and the token with
other items is refused. (moto alone applies every call; the job store's batch counters rely on
the token to count a retried change once.)"""

from __future__ import annotations

import boto3
import pytest

TABLE = "token-check"


@pytest.fixture
def ddb(stack):
    client = boto3.client("dynamodb", endpoint_url=stack.info["endpoint_url"], region_name=stack.info["region"])
    client.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")
    client.put_item(TableName=TABLE, Item={"k": {"S": "counter"}, "n": {"N": "0"}})
    yield client
    client.delete_table(TableName=TABLE)


def add(amount: int) -> list[dict]:
    return [{"Update": {"TableName": TABLE, "Key": {"k": {"S": "counter"}}, "UpdateExpression": "ADD n :a",
                        "ExpressionAttributeValues": {":a": {"N": str(amount)}}}}]


def count(ddb) -> int:
    return int(ddb.get_item(TableName=TABLE, Key={"k": {"S": "counter"}}, ConsistentRead=True)["Item"]["n"]["N"])


def test_a_repeated_token_writes_once_and_a_reused_one_is_refused(ddb):
    ddb.transact_write_items(TransactItems=add(1), ClientRequestToken="count-1")
    ddb.transact_write_items(TransactItems=add(1), ClientRequestToken="count-1")  # the SDK's retry
    assert count(ddb) == 1
    with pytest.raises(ddb.exceptions.IdempotentParameterMismatchException):
        ddb.transact_write_items(TransactItems=add(5), ClientRequestToken="count-1")
    assert count(ddb) == 1
    ddb.transact_write_items(TransactItems=add(1), ClientRequestToken="count-2")  # a new call
    ddb.transact_write_items(TransactItems=add(1))  # the SDK fills in a fresh token of its own
    assert count(ddb) == 3

