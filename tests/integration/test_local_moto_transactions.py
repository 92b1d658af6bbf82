"""Transactions on the local stack's DynamoDB (local/moto_dynamodb_transactions.py).

The ClientRequestToken is honoured, as DynamoDB does: an identical call with a token that already
succeeded writes nothing again, and the token with other items is refused (moto alone applies every
call; the job store's batch counters rely on the token to count a retried change once). And a
one-item transaction runs without moto's backup copy of the whole table, failing as a transaction.
"""

from __future__ import annotations

import copy

import boto3
import moto.dynamodb.models as dynamodb_models
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



def test_a_one_item_transaction_copies_no_table_and_fails_as_a_transaction(ddb, monkeypatch):
    copies: list[object] = []
    real_deepcopy = copy.deepcopy

    def counting_deepcopy(value, memo=None):
        if isinstance(value, dynamodb_models.Table):  # moto's backup of a whole table
            copies.append(value)
        return real_deepcopy(value, memo)

    monkeypatch.setattr(dynamodb_models.copy, "deepcopy", counting_deepcopy)
    ddb.transact_write_items(TransactItems=add(2))
    assert count(ddb) == 2 and copies == []
    refused = add(1)
    refused[0]["Update"].update(ConditionExpression="n > :a", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    refused[0]["Update"]["ExpressionAttributeValues"][":a"] = {"N": "5"}
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as refusal:
        ddb.transact_write_items(TransactItems=refused)
    reasons = refusal.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["ConditionalCheckFailed"]
    assert reasons[0]["Item"]["n"] == {"N": "2"}
    assert count(ddb) == 2 and copies == []
    # Two items: moto's own path, backup and roll back included (the first update is undone).
    ddb.put_item(TableName=TABLE, Item={"k": {"S": "other"}, "n": {"N": "0"}})
    other = add(1)
    other[0]["Update"]["Key"] = {"k": {"S": "other"}}
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=other + refused)
    assert ddb.get_item(TableName=TABLE, Key={"k": {"S": "other"}}, ConsistentRead=True)["Item"]["n"] == {"N": "0"}
    assert count(ddb) == 2 and copies != []
