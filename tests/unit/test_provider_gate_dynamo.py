"""The provider gate's slot transfer on DynamoDB (a moto server): the heir gets in only while the
ending job still holds its slot, so no newcomer can take the slot in between."""

from __future__ import annotations

from clipedit.adapters.dynamo_jobs import DynamoProviderGuard


def gate(client, pause=lambda seconds: None) -> DynamoProviderGuard:
    client.create_table(TableName="gate-test-jobs", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}])
    return DynamoProviderGuard("gate-test-jobs", client, pause=pause)


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


def test_two_jobs_ending_together_both_hand_their_slots_over(moto_dynamodb):
    # j-a's hand-over is written, its release not yet: j-b's hand-over finds the gate one over the
    # limit, waits, and gets through once j-a's release lands (the pause stands in for that moment).
    pauses: list[float] = []

    def release_a_meanwhile(seconds: float) -> None:
        pauses.append(seconds)
        assert guard.release_slot("kling", "j-a")

    guard = gate(moto_dynamodb, pause=release_a_meanwhile)
    assert guard.acquire_slot("kling", "j-a", limit=2) and guard.acquire_slot("kling", "j-b", limit=2)
    assert guard.transfer_slot("kling", "j-a", "j-heir-1", limit=2)
    assert guard.transfer_slot("kling", "j-b", "j-heir-2", limit=2)
    assert len(pauses) == 1
    assert guard.release_slot("kling", "j-b")
    assert guard.slot_holders("kling") == {"j-heir-1", "j-heir-2"}


def test_a_duplicate_end_hands_over_once_and_gives_up_after_its_retries(moto_dynamodb):
    pauses: list[float] = []
    guard = gate(moto_dynamodb, pause=pauses.append)
    assert guard.acquire_slot("kling", "j-a", limit=1)
    assert guard.transfer_slot("kling", "j-a", "j-heir", limit=1)
    assert not guard.transfer_slot("kling", "j-a", "j-second-heir", limit=1)  # still one over: no second heir
    assert pauses == list(DynamoProviderGuard.HANDOVER_RETRY_PAUSES)
    assert guard.release_slot("kling", "j-a")
    assert not guard.transfer_slot("kling", "j-a", "j-third-heir", limit=1)  # its slot is gone: at once
    assert len(pauses) == len(DynamoProviderGuard.HANDOVER_RETRY_PAUSES)
    assert guard.slot_holders("kling") == {"j-heir"}
