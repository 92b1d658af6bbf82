"""A job write whose answer is lost after it landed is still the writer's own.

DynamoDB may apply a write and still answer 500 (or the answer times out); botocore then sends it
again, and the retry of a conditional write is refused by the state its own first attempt made.
The job store must tell that apart from losing to another writer: a lost answer to a status change
meant the change's event was never published (seen on the local stack in CI), a lost answer to a
lease left the job to wait for the lease to expire. Here the moto server applies the first attempt
and botocore is handed a 500 instead of its answer; the retry then meets the written state.
"""

from __future__ import annotations

import httpx
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from clipedit.adapters.dynamo_jobs import DynamoBatchStore, DynamoJobStore
from clipedit.domain.job import Job, JobStatus

TABLE = "lost-answer-jobs"  # a name no local stack uses
NOW = "2026-12-06T23:00:00Z"
LATER = "2026-12-06T23:05:00Z"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object):
        yield self._data


class LoseAnswers:
    """Sends the next ``count`` calls of ``operation`` to the server itself and answers botocore with
    a DynamoDB 500, as if the reply had been lost on the way back."""

    def __init__(self, client) -> None:
        self.lost: list[str] = []
        self._pending: dict[str, int] = {}
        client.meta.events.register_first("before-send.dynamodb", self._send)

    def next(self, operation: str, count: int = 1) -> None:
        self._pending[operation] = count

    def _send(self, request, **_):
        target = request.headers.get("X-Amz-Target", b"")
        operation = (target.decode() if isinstance(target, bytes) else target).rpartition(".")[2]
        if not self._pending.get(operation):
            return None
        self._pending[operation] -= 1
        applied = httpx.post(request.url, headers=dict(request.headers), content=request.body)
        self.lost.append(f"{operation} {applied.status_code}")
        body = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}'
        return AWSResponse(request.url, 500, {"Content-Type": "application/x-amz-json-1.0"}, _Body(body))


@pytest.fixture
def store(moto_dynamodb):
    moto_dynamodb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                               KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
                               AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}])
    return DynamoJobStore(TABLE, moto_dynamodb), LoseAnswers(moto_dynamodb)


def job(status: JobStatus = JobStatus.RECEIVED, **fields) -> Job:
    return Job(job_id="j-lost", status=status, input_bucket="inbox", input_key="media/a.mp4", created_at=NOW,
               updated_at=NOW, **fields)


def test_a_create_whose_answer_was_lost_is_still_a_create(store):
    jobs, lose = store
    lose.next("PutItem")
    assert jobs.create(job()) is True
    assert lose.lost == ["PutItem 200"]  # the first attempt was applied
    assert jobs.create(job()) is False  # a second upload event for the same job is still refused
    assert "write_token" not in jobs.get("j-lost").extra  # the store's bookkeeping stays out of the job


def test_a_status_change_whose_answer_was_lost_is_the_writers_change(store):
    jobs, lose = store
    jobs.create(job())
    lose.next("UpdateItem")
    moved = jobs.transition("j-lost", JobStatus.QUEUED, now=LATER, fields={"wait_reason": "gate full"})
    assert lose.lost == ["UpdateItem 200"]
    assert moved is not None and moved.status == JobStatus.QUEUED and moved.wait_reason == "gate full"
    assert [h["status"] for h in moved.status_history] == ["QUEUED"]  # applied once, not twice
    assert "write_token" not in moved.extra
    # Another writer's change of the same kind is still refused: it was not theirs.
    assert jobs.transition("j-lost", JobStatus.QUEUED, now=LATER) is None


def test_a_running_update_whose_answer_was_lost_is_the_writers_update(store):
    jobs, lose = store
    jobs.create(job(JobStatus.SUBMITTED, provider_task_id="t-1"))
    lose.next("UpdateItem")
    updated = jobs.mark_running("j-lost", {"provider_task_id": "t-2"}, expect={"provider_task_id": "t-1"})
    assert lose.lost == ["UpdateItem 200"]
    assert updated is not None and updated.provider_task_id == "t-2"
    assert jobs.mark_running("j-lost", {"provider_task_id": "t-3"}, expect={"provider_task_id": "t-1"}) is None


def test_a_lease_or_claim_whose_answer_was_lost_is_held_by_its_writer(store):
    jobs, lose = store
    jobs.create(job(JobStatus.SUBMITTED))
    lose.next("UpdateItem")
    assert jobs.acquire_lease("j-lost", owner="finalize-1", now=NOW, until=LATER) is True
    assert jobs.acquire_lease("j-lost", owner="finalize-2", now=NOW, until=LATER) is False
    jobs.create(Job(job_id="j-queued", status=JobStatus.QUEUED, input_bucket="inbox", input_key="media/b.mp4",
                    created_at=NOW, updated_at=NOW))
    lose.next("UpdateItem")
    assert jobs.claim_submission("j-queued", owner="submit-1", now=NOW, until=LATER) is True
    assert jobs.claim_submission("j-queued", owner="submit-2", now=NOW, until=LATER) is False
    assert lose.lost == ["UpdateItem 200", "UpdateItem 200"]


def test_an_error_that_is_not_a_refusal_still_reaches_the_caller(moto_dynamodb):
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        DynamoJobStore("no-such-table", moto_dynamodb).transition("j-lost", JobStatus.QUEUED, now=LATER)


def test_a_batch_count_whose_answer_was_lost_counts_once(store, moto_dynamodb):
    """A counter is not conditional: only the transaction's client token keeps a retried ADD from
    counting twice (which could complete a batch before its last row). The moto server here gets
    the local stack's token patch, as the stack installs it."""
    from local.moto_dynamodb_transactions import patch_moto_transaction_tokens

    undo = patch_moto_transaction_tokens()
    try:
        _, lose = store
        batches = DynamoBatchStore(TABLE, moto_dynamodb)
        assert batches.create_batch({"batch_id": "b-lost", "total": 2, "counts": {}})
        batches.count_transition("b-lost", None, "RECEIVED", now=NOW)
        lose.next("TransactWriteItems")
        batch = batches.count_transition("b-lost", "RECEIVED", "QUEUED", now=LATER)
        assert lose.lost == ["TransactWriteItems 200"]
        assert batch["counts"] == {"RECEIVED": 0, "QUEUED": 1}
        assert batches.get_batch("b-lost")["counts"] == {"RECEIVED": 0, "QUEUED": 1}
    finally:
        undo()


def test_a_batch_completion_whose_answer_was_lost_is_claimed_once(store, moto_dynamodb):
    _, lose = store
    batches = DynamoBatchStore(TABLE, moto_dynamodb)
    assert batches.create_batch({"batch_id": "b-done", "total": 1, "counts": {}})
    lose.next("UpdateItem")
    assert batches.claim_completion("b-done", now=LATER) is True  # its Batch Completed event is sent
    assert lose.lost == ["UpdateItem 200"]
    assert batches.claim_completion("b-done", now=LATER) is False  # another finisher's claim is not
    assert "write_token" not in batches.get_batch("b-done")
