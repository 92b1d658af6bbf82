"""The provider gate's slot transfer on DynamoDB (a moto server): the heir gets in only while the
ending job still holds its slot, so no newcomer can take the slot in between."""

from __future__ import annotations

from clipedit.adapters.dynamo_jobs import DynamoProviderGuard


def gate(client) -> DynamoProviderGuard:
    client.create_table(TableName="gate-test-jobs", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}])
    return DynamoProviderGuard("gate-test-jobs", client)


def test_a_slot_moves_to_the_heir_and_a_newcomer_finds_the_gate_full(moto_dynamodb):
    guard = gate(moto_dynamodb)
    assert guard.acquire_slot("kling", "j-a", limit=2) and guard.acquire_slot("kling", "j-b", limit=2)
    assert guard.transfer_slot("kling", "j-a", "j-heir", limit=2)
    assert not guard.acquire_slot("kling", "j-newcomer", limit=2)  # over the limit until j-a lets go
    assert guard.release_slot("kling", "j-a")
    assert guard.slot_holders("kling") == {"j-b", "j-heir"}
    assert not guard.acquire_slot("kling", "j-newcomer", limit=2)


def test_no_transfer_from_a_job_without_a_slot_or_past_the_limit(moto_dynamodb):
    guard = gate(moto_dynamodb)
    assert guard.acquire_slot("kling", "j-a", limit=1)
    assert not guard.transfer_slot("kling", "j-stranger", "j-heir", limit=1)
    assert guard.transfer_slot("kling", "j-a", "j-heir", limit=1)
    # Two jobs ending at once: the second transfer would put the gate two over; it wakes instead.
    assert not guard.transfer_slot("kling", "j-a", "j-second-heir", limit=1)
    assert guard.slot_holders("kling") == {"j-a", "j-heir"}
