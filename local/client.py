"""Small client helpers for the local stack: upload a clip, wait for its job, fetch the result.

Used by ``make demo`` and the e2e tests. Waiting is event-driven: it long-polls the local job-events
queue (fed by the stack's EventBridge rule) and re-reads the job record, the source of truth,
whenever something happened.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

from boto3.dynamodb.types import TypeDeserializer

from clipedit.adapters.dynamo_jobs import python_value
from clipedit.domain.keys import job_id_for

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "CANCELLED"}
_deserializer = TypeDeserializer()


class LocalClient:
    def __init__(self, info: Mapping[str, Any]) -> None:
        import boto3

        self.info = dict(info)
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=info["region"]
        )
        self.s3 = session.client("s3", endpoint_url=info["endpoint_url"])
        self.sqs = session.client("sqs", endpoint_url=info["endpoint_url"])
        self.dynamodb = session.client("dynamodb", endpoint_url=info["endpoint_url"])

    def upload_clip(self, path: Path | str, key: str, metadata: Mapping[str, str]) -> str:
        """Upload a clip into the inbox; returns the job id the pipeline will give it."""
        with open(path, "rb") as body:
            response = self.s3.put_object(
                Bucket=self.info["inbox_bucket"], Key=key, Body=body, Metadata=dict(metadata)
            )
        return job_id_for(self.info["inbox_bucket"], key, response["VersionId"])

    def job(self, job_id: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=self.info["jobs_table"], Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return {k: python_value(_deserializer.deserialize(v)) for k, v in item.items()}

    def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float = 120.0,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        statuses: set[str] = TERMINAL,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last_status = None
        while True:
            job = self.job(job_id)
            if job and job["status"] != last_status:
                last_status = job["status"]
                if on_change:
                    on_change(job)
            if job and job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {last_status} after {timeout:.0f} s")
            self.wait_for_any_event()

    def jobs_for_source(self, key: str) -> list[dict[str, Any]]:
        """Jobs made from one uploaded object (a clip, manifest or batch). A scan: demo and tests only."""
        items: list[dict[str, Any]] = []
        for page in self.dynamodb.get_paginator("scan").paginate(
            TableName=self.info["jobs_table"], FilterExpression="input_key = :k AND attribute_exists(#s)",
            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":k": {"S": key}},
        ):
            items += [{k: python_value(_deserializer.deserialize(v)) for k, v in item.items()} for item in page["Items"]]
        return sorted(items, key=lambda job: (job.get("batch_row") or 0, job.get("variant") or "", job["job_id"]))

    def wait_for_source(self, key: str, *, timeout: float = 120.0, expected: int | None = None,
                        on_change: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Wait until the object's jobs exist (``expected`` of them, when known) and are all terminal."""
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while True:
            jobs = self.jobs_for_source(key)
            for job in jobs:
                if seen.get(job["job_id"]) != job["status"]:
                    seen[job["job_id"]] = job["status"]
                    if on_change:
                        on_change(job)
            enough = len(jobs) >= expected if expected else bool(jobs)
            if enough and all(job["status"] in TERMINAL for job in jobs):
                return jobs
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs of {key} not all terminal after {timeout:.0f} s: {seen}")
            self.wait_for_any_event()

    def wait_for_batch(self, batch_id: str, *, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for the batch record to be COMPLETED (its results file is written just before)."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.dynamodb.get_item(TableName=self.info["jobs_table"], Key={"job_id": {"S": f"batch#{batch_id}"}},
                                          ConsistentRead=True).get("Item")
            batch = {k: python_value(_deserializer.deserialize(v)) for k, v in (item or {}).items()}
            if batch.get("batch_status") == "COMPLETED":
                return batch
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} not completed after {timeout:.0f} s: {batch.get('counts')}")
            self.wait_for_any_event()

    def wait_for_any_event(self) -> None:
        """Return when the stack publishes a job event (or after 1 s): what a wait loop awaits instead of sleeping."""
        messages = self.sqs.receive_message(
            QueueUrl=self.info["events_queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if messages:
            self.sqs.delete_message_batch(
                QueueUrl=self.info["events_queue_url"],
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def download_output(self, job: Mapping[str, Any], destination: Path) -> Path:
        destination.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(job["output_bucket"], job["output_key"], str(destination))
        return destination

