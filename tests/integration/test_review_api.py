"""POST /jobs/{job_id}/review on the local stack, driven with a real-shaped HTTP API v2 event (IAM
authorizer context): the review lands on the record with the caller as reviewer, a Job Reviewed
event matching its schema is published, and every bad request changes nothing."""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path

import jsonschema
import pytest

from clipedit.adapters.dynamo_jobs import DynamoJobStore
from clipedit.domain.job import Job, JobStatus
from tests import web

ROOT = Path(__file__).resolve().parents[2]
ALICE = "arn:aws:sts::123456789012:assumed-role/clipedit-operators/alice"


@pytest.fixture(scope="module")
def store(stack):
    return DynamoJobStore(stack.info["jobs_table"], stack.client("dynamodb"))


def seed(store, status: JobStatus) -> Job:
    job_id = "j-" + uuid.uuid4().hex
    now = "2026-12-05T05:00:00.000Z"
    job = Job(job_id=job_id, status=status, input_bucket="inbox", input_key=f"incoming/review/{job_id}.mp4",
              created_at=now, updated_at=now, prompt="Warm @Video1", mode="std", provider="kling",
              output_bucket="outputs" if status == JobStatus.SUCCEEDED else None,
              output_key=f"edited/review/{job_id}.mp4" if status == JobStatus.SUCCEEDED else None,
              status_history=[{"status": status.value, "at": now}])
    store.create(job)
    return job


@pytest.fixture(scope="module")
def reviewed_events(stack):
    sqs, events = stack.client("sqs"), stack.client("events")
    name = f"test-reviews-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.info["event_bus_name"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"detail-type": ["Job Reviewed"]}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    def wait_for(job_id: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                event = json.loads(message["Body"])
                if event["detail"]["job_id"] == job_id:
                    return event
        raise AssertionError(f"no Job Reviewed event for {job_id}")

    return wait_for


def review_event(job_id: str, body: str) -> dict:
    event = json.loads((ROOT / "events" / "http-status-post-review.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/jobs/{job_id}/review"
    event["pathParameters"] = {"job_id": job_id}
    event["body"] = body
    return event


def call(stack, event: dict) -> tuple[int, dict]:
    response = stack.runner.invoke(stack.status_function, event)
    return response["statusCode"], json.loads(response["body"])


def test_a_review_is_recorded_with_the_caller_and_announced(stack, store, reviewed_events):
    job = seed(store, JobStatus.SUCCEEDED)
    status, body = call(stack, review_event(job.job_id, json.dumps(
        {"review_status": "rejected", "review_note": "The logo is warped in the last second."})))
    assert status == 200, body
    assert (body["review_status"], body["review_note"], body["reviewed_by"]) == (
        "rejected", "The logo is warped in the last second.", ALICE)
    record = store.get(job.job_id)
    assert record.review_status == "rejected" and record.reviewed_by == ALICE and record.reviewed_at
    event = reviewed_events(job.job_id)
    assert event["source"] == "clipedit.jobs" and event["detail-type"] == "Job Reviewed"
    schema = json.loads((ROOT / "events" / "schemas" / "job-reviewed.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(event["detail"])
    assert event["detail"]["review_status"] == "rejected" and event["detail"]["reviewed_by"] == ALICE

    # A later review replaces the verdict; without a note, the old note goes.
    status, body = call(stack, review_event(job.job_id, json.dumps({"review_status": "approved"})))
    assert status == 200 and body["review_status"] == "approved" and "review_note" not in body
    assert store.get(job.job_id).review_note is None


@pytest.mark.parametrize("body, status, code", [
    ("{not json", 400, "INVALID_JSON"),
    (json.dumps({"review_status": "maybe"}), 400, "INVALID_REVIEW"),
    (json.dumps({"review_status": "approved", "stars": 5}), 400, "INVALID_REVIEW"),
    (json.dumps(["approved"]), 400, "INVALID_REVIEW"),
    (json.dumps({"review_status": "rejected", "review_note": "x" * 2001}), 400, "REVIEW_NOTE_TOO_LONG"),
    (json.dumps({"review_status": "rejected", "review_note": "x" * 20000}), 413, "REVIEW_TOO_LARGE"),
])
def test_a_bad_review_is_refused_with_its_code_and_changes_nothing(stack, store, body, status, code):
    job = seed(store, JobStatus.SUCCEEDED)
    answer_status, answer = call(stack, review_event(job.job_id, body))
    assert (answer_status, answer["code"]) == (status, code), answer
    assert answer["message"]
    assert store.get(job.job_id).review_status is None


def test_only_an_existing_succeeded_job_can_be_reviewed(stack, store):
    status, answer = call(stack, review_event("j-" + "0" * 32, json.dumps({"review_status": "approved"})))
    assert (status, answer["code"]) == (404, "NOT_FOUND")
    failed = seed(store, JobStatus.FAILED)
    status, answer = call(stack, review_event(failed.job_id, json.dumps({"review_status": "approved"})))
    assert (status, answer["code"]) == (409, "NOT_REVIEWABLE") and "FAILED" in answer["message"]
    assert store.get(failed.job_id).review_status is None


def test_the_review_route_is_signed_like_the_others(stack, store):
    from tests.integration.test_status_api import signed_request

    job = seed(store, JobStatus.SUCCEEDED)
    url = f"{stack.info['status_api_url']}/jobs/{job.job_id}/review"
    body = json.dumps({"review_status": "approved"}).encode()
    response = signed_request("POST", url, body=body)
    assert response.status_code == 200 and response.json()["review_status"] == "approved"
    assert response.json()["reviewed_by"].startswith("arn:aws:")
    assert web.post(url, content=body, timeout=30).status_code == 403
