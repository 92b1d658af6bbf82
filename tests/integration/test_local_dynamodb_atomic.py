"""The local stack's DynamoDB serialises conditional writes to one item, as DynamoDB does.

moto alone lets two racing ``status IN (RECEIVED)`` updates both win now and then; every
exactly-once rule of the pipeline (one QUEUED move, one claim, one finalize) relies on exactly one
winning. This races eight writers per item through the stack's moto server, with moto's window
between checking the condition and applying the update widened on purpose (a 5 ms pause after the
check), so that without the stack's lock the race is lost every time rather than now and then.
The second test does the same for answers: a read's item must not change while moto writes it out.
"""

from __future__ import annotations

import threading
import time

import boto3
from botocore.config import Config
import moto.dynamodb.models as dynamodb_models

WRITERS = 8
ROUNDS = 10
ADDED = 12


class _SlowCheck:
    """A parsed condition that pauses after it is evaluated: the update follows the check late."""

    def __init__(self, condition):
        self._condition = condition

    def expr(self, item):
        passed = self._condition.expr(item)
        time.sleep(0.005)
        return passed


def _widen_the_race(monkeypatch):
    make_parser = dynamodb_models.create_condition_expression_parser

    class _Parser:
        def __init__(self, *args):
            self._parser = make_parser(*args)

        def parse(self):
            return _SlowCheck(self._parser.parse())

    monkeypatch.setattr(dynamodb_models, "create_condition_expression_parser", _Parser)


def test_racing_conditional_updates_have_exactly_one_winner(stack, monkeypatch):
    _widen_the_race(monkeypatch)
    endpoint = stack.info["endpoint_url"]
    admin = boto3.client("dynamodb", endpoint_url=endpoint, region_name=stack.info["region"])
    table = "race-check"
    admin.create_table(TableName=table, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                       BillingMode="PAY_PER_REQUEST")
    writers = [boto3.client("dynamodb", endpoint_url=endpoint, region_name=stack.info["region"])
               for _ in range(WRITERS)]
    winners_per_round = []
    for round_number in range(ROUNDS):
        key = {"k": {"S": f"job-{round_number}"}}
        admin.put_item(TableName=table, Item={**key, "status": {"S": "RECEIVED"}})
        start = threading.Barrier(WRITERS)
        wins: list[int] = []

        def write(index: int) -> None:
            start.wait()
            try:
                writers[index].update_item(
                    TableName=table, Key=key, ConditionExpression="#s IN (:from)",
                    UpdateExpression="SET #s = :to, history = list_append(if_not_exists(history, :none), :entry)",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":from": {"S": "RECEIVED"}, ":to": {"S": "QUEUED"},
                                               ":none": {"L": []}, ":entry": {"L": [{"S": "QUEUED"}]}})
                wins.append(index)
            except writers[index].exceptions.ConditionalCheckFailedException:
                pass

        threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        history = admin.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["history"]["L"]
        winners_per_round.append((len(wins), len(history)))
    admin.delete_table(TableName=table)
    assert all(result == (1, 1) for result in winners_per_round), [r for r in winners_per_round if r != (1, 1)]


class _SlowItems(dict):
    """An item's attributes that are walked slowly: a write can land in the middle of a read."""

    def items(self):
        for key in dict.keys(self):  # a dict that changes size under this walk raises, as moto's own does
            yield key, self[key]
            time.sleep(0.001)


def test_reads_of_an_item_never_see_it_change_under_them(stack, monkeypatch):
    """moto writes an answer's item (``to_json``) after its backend call returned, outside the
    stack's item lock: a write adding an attribute meanwhile made moto answer 500 ("dictionary
    changed size during iteration"). Seen in CI as a lost PROCESSING event: the update had been
    applied, botocore retried the 500, and the retry's condition failed. Each reader and writer
    here makes one attempt (no retries), so a 500 fails the test: two writers add attributes to one
    item while a reader reads it."""
    monkeypatch.setattr(dynamodb_models.dynamo_type, "LimitedSizeDict", _SlowItems)
    endpoint = stack.info["endpoint_url"]
    once = Config(retries={"total_max_attempts": 1})
    admin = boto3.client("dynamodb", endpoint_url=endpoint, region_name=stack.info["region"])
    table = "read-while-write"
    admin.create_table(TableName=table, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                       BillingMode="PAY_PER_REQUEST")
    key = {"k": {"S": "job"}}
    admin.put_item(TableName=table, Item={**key, **{f"seed{i}": {"N": str(i)} for i in range(10)}})
    writes_done = threading.Event()
    failures: list[str] = []

    def write(name: str) -> None:
        writer = boto3.client("dynamodb", endpoint_url=endpoint, region_name=stack.info["region"], config=once)
        try:
            for n in range(ADDED):  # each adds an attribute: the item's dict grows
                writer.update_item(TableName=table, Key=key, UpdateExpression="SET #a = :v",
                                   ExpressionAttributeNames={"#a": f"{name}{n}"},
                                   ExpressionAttributeValues={":v": {"N": str(n)}}, ReturnValues="ALL_NEW")
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            failures.append(f"write: {error}")

    def read() -> None:
        reader = boto3.client("dynamodb", endpoint_url=endpoint, region_name=stack.info["region"], config=once)
        try:
            while not writes_done.is_set():
                reader.get_item(TableName=table, Key=key)
        except Exception as error:  # noqa: BLE001
            failures.append(f"read: {error}")

    names = ("a", "b")
    writers = [threading.Thread(target=write, args=(name,)) for name in names]
    reader = threading.Thread(target=read)
    for thread in [*writers, reader]:
        thread.start()
    for thread in writers:
        thread.join()
    writes_done.set()
    reader.join()
    item = admin.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    admin.delete_table(TableName=table)
    assert failures == []
    for name in names:
        assert sorted(int(item[f"{name}{n}"]["N"]) for n in range(ADDED)) == list(range(ADDED))
