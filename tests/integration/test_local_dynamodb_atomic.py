"""The local stack's DynamoDB serialises conditional writes to one item, as DynamoDB does.

moto alone lets two racing ``status IN (RECEIVED)`` updates both win now and then; every
exactly-once rule of the pipeline (one QUEUED move, one claim, one finalize) relies on exactly one
winning. This races eight writers per item through the stack's moto server, with moto's window
between checking the condition and applying the update widened on purpose (a 5 ms pause after the
check), so that without the stack's lock the race is lost every time rather than now and then.
"""

from __future__ import annotations

import threading

import time

import boto3
import moto.dynamodb.models as dynamodb_models

WRITERS = 8
ROUNDS = 10


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
