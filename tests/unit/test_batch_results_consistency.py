"""The results file reads a batch's rows from the by-batch index, which DynamoDB keeps only
eventually consistent: a row that ended just before the batch completed may still show its
previous status there. ``DynamoBatchStore.batch_jobs`` must report the table's own record for it.
(moto's indexes are always up to date, so the lag is simulated by a client whose index answers
with an older copy of one row.)"""

from __future__ import annotations

import copy

import pytest

from clipedit.adapters.dynamo_jobs import BY_BATCH_INDEX, DynamoBatchStore, DynamoJobStore
from clipedit.domain.job import Job, JobStatus

TABLE = "results-consistency-jobs"  # a name no local stack uses
NOW = "2026-12-05T09:00:00Z"


@pytest.fixture
def ddb(moto_dynamodb):
    moto_dynamodb.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"},
                              {"AttributeName": "batch_id", "AttributeType": "S"},
                              {"AttributeName": "batch_row", "AttributeType": "N"}],
        GlobalSecondaryIndexes=[{"IndexName": BY_BATCH_INDEX, "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "batch_id", "KeyType": "HASH"},
                                               {"AttributeName": "batch_row", "KeyType": "RANGE"}]}],
    )
    return moto_dynamodb


class LaggingIndex:
    """A DynamoDB client whose by-batch index still shows ``stale_job``'s PROCESSING copy."""

    def __init__(self, client, stale_job: str) -> None:
        self._client, self._stale_job = client, stale_job

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_paginator(self, operation: str):
        real = self._client.get_paginator(operation)
        stale_job = self._stale_job

        class Paginator:
            def paginate(self, **kwargs):
                for page in real.paginate(**kwargs):
                    page = copy.deepcopy(page)
                    for item in page["Items"]:
                        if kwargs.get("IndexName") == BY_BATCH_INDEX and item["job_id"]["S"] == stale_job:
                            item["status"] = {"S": "PROCESSING"}
                            item.pop("output_key", None)
                    yield page

        return Paginator()


def row_job(row: int, status: JobStatus, **fields) -> Job:
    return Job(job_id=f"j-{row}", status=status, input_bucket="inbox", input_key="batches/b.csv", created_at=NOW,
               updated_at=NOW, batch_id="b-1", batch_row=row, **fields)


def test_a_row_the_index_still_shows_running_is_reported_as_the_table_has_it(ddb):
    jobs = DynamoJobStore(TABLE, ddb)
    jobs.create(row_job(1, JobStatus.SUCCEEDED, output_key="edited/catalog/SKU-1.mp4"))
    jobs.create(row_job(2, JobStatus.SUCCEEDED, output_key="edited/catalog/SKU-2.mp4"))
    lagging = DynamoBatchStore(TABLE, LaggingIndex(ddb, stale_job="j-2"))
    assert [(j.batch_row, j.status, j.output_key) for j in lagging.batch_jobs("b-1")] == [
        (1, JobStatus.SUCCEEDED, "edited/catalog/SKU-1.mp4"), (2, JobStatus.SUCCEEDED, "edited/catalog/SKU-2.mp4")]


def test_a_row_still_running_in_the_table_is_reported_running(ddb):
    jobs = DynamoJobStore(TABLE, ddb)
    jobs.create(row_job(1, JobStatus.SUCCEEDED, output_key="edited/catalog/SKU-1.mp4"))
    jobs.create(row_job(2, JobStatus.PROCESSING))
    assert [(j.batch_row, j.status) for j in DynamoBatchStore(TABLE, ddb).batch_jobs("b-1")] == [
        (1, JobStatus.SUCCEEDED), (2, JobStatus.PROCESSING)]
