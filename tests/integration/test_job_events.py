"""Job events as a user's EventBridge rule sees them: one per status change, in order, each
matching the published JSON Schema (events/schemas/), for succeeded, failed, rejected and batch jobs."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import set_knobs

SCHEMAS = Path(__file__).resolve().parents[2] / "events" / "schemas"
PROMPT = {"prompt": "Give @Video1 a warm grade. Keep the motion identical.", "mode": "std"}


def schema(name: str) -> dict:
    document = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return document


@pytest.fixture(scope="module")
def subscriber(stack):
    """A queue behind a rule on the stack's bus: what a user wires for notifications."""
    sqs, events = stack.client("sqs"), stack.client("events")
    name = f"test-subscriber-{uuid.uuid4().hex[:8]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.info["event_bus_name"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["clipedit.jobs"]}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    received: list[dict] = []

    def collect(until, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while not until(received):
            assert time.monotonic() < deadline, f"events so far: {[e['detail'] for e in received]}"
            for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1).get("Messages", []):
                received.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return received

    return collect


def job_events(events: list[dict], job_id: str) -> list[dict]:
    """A job's events in the order its changes were written: by `updated_at`, as a subscriber orders
    them. Arrival order can differ: the submit and finalize functions publish one job's changes
    moments apart, and EventBridge does not promise order (seen here: PROCESSING before SUBMITTED)."""
    mine = [e for e in events if e["detail-type"] == "Job Status Changed" and e["detail"]["job_id"] == job_id]
    return sorted(mine, key=lambda e: e["detail"]["updated_at"])


def assert_one_event_per_change(events: list[dict], job: dict) -> None:
    mine = job_events(events, job["job_id"])
    history = [h["status"] for h in job["status_history"]]
    if history[:2] == ["RECEIVED", "REJECTED"] and len(mine) == 1:
        history = ["REJECTED"]  # refused at intake: created REJECTED in one write, so one event
    assert [e["detail"]["status"] for e in mine] == history
    assert [e["detail"]["previous_status"] for e in mine] == [None, *history[:-1]]
    validator = jsonschema.Draft202012Validator(schema("job-status-changed.schema.json"))
    for event in mine:
        assert event["source"] == "clipedit.jobs"
        validator.validate(event["detail"])


def test_a_succeeded_and_a_failed_job_publish_every_change(stack, client, emulator, subscriber, sample_clip):
    good = client.upload_clip(sample_clip, f"incoming/events/{uuid.uuid4().hex[:6]}.mp4", PROMPT)
    good_job = client.wait_for_job(good, timeout=60)
    set_knobs(emulator, fail_rate=1.0)
    bad = client.upload_clip(sample_clip, f"incoming/events/{uuid.uuid4().hex[:6]}.mp4", PROMPT)
    bad_job = client.wait_for_job(bad, timeout=60)
    set_knobs(emulator, fail_rate=0.0)
    assert (good_job["status"], bad_job["status"]) == ("SUCCEEDED", "FAILED")
    # As many events as status changes on each record (a fast failure may skip PROCESSING).
    events = subscriber(lambda got: len(job_events(got, good)) >= len(good_job["status_history"])
                        and len(job_events(got, bad)) >= len(bad_job["status_history"]))
    assert_one_event_per_change(events, good_job)
    assert_one_event_per_change(events, bad_job)
    final = job_events(events, good)[-1]["detail"]
    assert final["output_key"] == good_job["output_key"] and final["output_size"] == good_job["output_size"]
    assert job_events(events, bad)[-1]["detail"]["error_code"] == "PROVIDER_TASK_FAILED"


def test_a_rejected_upload_publishes_its_one_event(stack, client, subscriber, sample_clip):
    rejected = client.upload_clip(sample_clip, f"incoming/events/{uuid.uuid4().hex[:6]}.mp4", {})
    job = client.wait_for_job(rejected, timeout=30)
    events = subscriber(lambda got: len(job_events(got, rejected)) >= 1)
    assert job["status"] == "REJECTED"
    assert_one_event_per_change(events, job)


def test_batch_rows_publish_their_changes_and_the_batch_its_completion(stack, client, subscriber, sample_clip):
    run = uuid.uuid4().hex[:8]
    client.s3.upload_file(str(sample_clip), stack.info["inbox_bucket"], f"media/{run}/a.mp4")
    key = f"batches/events-{run}.csv"
    body = f"video_url,prompt,mode\nmedia/{run}/a.mp4,Warm up @Video1,std\nmedia/{run}/a.mp4,Warm up @Video1,ultra\n"
    version = client.s3.put_object(Bucket=stack.info["inbox_bucket"], Key=key, Body=body.encode())["VersionId"]
    from clipedit.domain.keys import job_id_for

    batch_id = "b-" + job_id_for(stack.info["inbox_bucket"], key, version)[2:]
    client.wait_for_batch(batch_id, timeout=60)
    events = subscriber(lambda got: any(e["detail-type"] == "Batch Completed" and e["detail"]["batch_id"] == batch_id
                                        for e in got))
    rows = client.jobs_for_source(key)
    assert [r["status"] for r in rows] == ["SUCCEEDED", "REJECTED"]
    for row in rows:
        assert_one_event_per_change(events, row)
        assert {e["detail"]["batch_id"] for e in job_events(events, row["job_id"])} == {batch_id}
    (completed,) = [e for e in events if e["detail-type"] == "Batch Completed" and e["detail"]["batch_id"] == batch_id]
    jsonschema.Draft202012Validator(schema("batch-completed.schema.json")).validate(completed["detail"])
    assert completed["detail"]["total"] == 2
