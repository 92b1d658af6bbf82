"""The pipeline's guarantees, on moto (server mode) running the template's resources and the real
state machine, with the real handlers in-process and the Kling emulator over loopback.

Each test drives one public door (an S3 upload, a redelivered SQS message, an HTTP callback) and
checks what a user would see: the job record, the output bucket, the provider's own task list.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote_plus


from tests.conftest import set_knobs
from tests import web

EVENTS = Path(__file__).resolve().parents[1].parent / "events"


def provider_tasks_for(emulator, job_id):
    return [t for t in emulator.tasks() if t["external_task_id"] == job_id]


def s3_notification(bucket: str, key: str, version_id: str, size: int) -> str:
    """The S3 ObjectCreated message as S3 sends it to SQS (from the events/ fixture, key URL-encoded)."""
    sqs_event = json.loads((EVENTS / "sqs-s3-put.json").read_text())
    message = json.loads(sqs_event["Records"][0]["body"])
    record = message["Records"][0]
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    record["s3"]["object"].update(key=quote_plus(key, safe="/"), versionId=version_id, size=size)
    return json.dumps(message)


def test_the_same_s3_event_delivered_three_times_makes_one_job_and_one_task(stack, client, emulator, sample_clip):
    set_knobs(emulator, processing_seconds=1.0)
    key = "incoming/dup/clip.mp4"
    with open(sample_clip, "rb") as body:
        put = client.s3.put_object(Bucket=stack.info["inbox_bucket"], Key=key, Body=body,
                                   Metadata={"prompt": "Make @Video1 warmer"})
    body = s3_notification(stack.info["inbox_bucket"], key, put["VersionId"], sample_clip.stat().st_size)
    for _ in range(2):  # S3 already sent one; SQS at-least-once delivery sends two more
        client.sqs.send_message(QueueUrl=stack.info["intake_queue_url"], MessageBody=body)
    from clipedit.domain.keys import job_id_for

    job_id = job_id_for(stack.info["inbox_bucket"], key, put["VersionId"])
    job = client.wait_for_job(job_id)
    assert job["status"] == "SUCCEEDED"
    assert len(provider_tasks_for(emulator, job_id)) == 1
    items = client.dynamodb.scan(TableName=stack.info["jobs_table"],
                                 FilterExpression="input_key = :k",
                                 ExpressionAttributeValues={":k": {"S": key}})["Items"]
    assert len(items) == 1
    executions = stack.client("stepfunctions").list_executions(stateMachineArn=stack.info["state_machine_arn"])
    assert [e["name"] for e in executions["executions"]].count(job_id) == 1


def test_a_callback_with_a_wrong_token_is_refused_and_changes_nothing(stack, client, emulator, sample_clip):
    set_knobs(emulator, processing_seconds=30.0)  # keep the task running while we poke at it
    job_id = client.upload_clip(sample_clip, "incoming/forged/clip.mp4", {"prompt": "p"})
    before = client.wait_for_job(job_id, statuses={"PROCESSING"})
    (task,) = provider_tasks_for(emulator, job_id)
    body = json.dumps({"task_id": task["task_id"], "task_status": "succeed"})
    base = stack.info["callback_base_url"]
    answers = [
        web.post(f"{base}/callbacks/kling/{job_id}?token=not-the-token", content=body),
        web.post(f"{base}/callbacks/kling/{job_id}", content=body),
        web.post(f"{base}/callbacks/kling/j-does-not-exist?token=x", content=body),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert len({a.text for a in answers}) == 1  # an unknown job looks exactly like a wrong token
    after = client.job(job_id)
    assert after["status"] == before["status"] == "PROCESSING"
    assert after["status_history"] == before["status_history"]


def test_a_callback_whose_body_lies_is_checked_against_the_provider(stack, client, emulator, sample_clip):
    set_knobs(emulator, processing_seconds=30.0, drop_callback_rate=1.0)
    job_id = client.upload_clip(sample_clip, "incoming/liar/clip.mp4", {"prompt": "p"})
    client.wait_for_job(job_id, statuses={"PROCESSING"})
    (task,) = provider_tasks_for(emulator, job_id)
    lie = {"task_id": task["task_id"], "task_status": "succeed",
           "task_result": {"videos": [{"id": "x", "url": "https://evil.example/x.mp4", "duration": "3"}]}}
    answer = web.post(task["callback_url"], json=lie)  # the real token, a false body
    assert answer.status_code == 200 and answer.json()["status"] == "PROCESSING"
    assert client.job(job_id)["status"] == "PROCESSING"
    assert "Contents" not in client.s3.list_objects_v2(Bucket=stack.info["outputs_bucket"], Prefix="edited/liar/")


def test_duplicate_callbacks_racing_the_poller_finalize_once(stack, client, emulator, sample_clip):
    set_knobs(emulator, processing_seconds=1.5, duplicate_callback_rate=1.0)
    key = "incoming/race/clip.mp4"
    job_id = client.upload_clip(sample_clip, key, {"prompt": "p"})
    client.wait_for_job(job_id, statuses={"PROCESSING", "SUCCEEDED"})
    task = provider_tasks_for(emulator, job_id)[0]
    # The moment the task succeeds, hammer the callback route while the emulator's own (duplicated)
    # callbacks and the poller race for the same job.
    emulator.wait_for_status(task["task_id"], {"succeed"}, timeout=60)
    barrier = threading.Barrier(6)

    def fire(_):
        barrier.wait()
        return web.post(task["callback_url"], json={"task_id": task["task_id"], "task_status": "succeed"}).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(fire, range(6)))
    job = client.wait_for_job(job_id)
    assert set(codes) <= {200, 500} and job["status"] == "SUCCEEDED"
    versions = client.s3.list_object_versions(Bucket=stack.info["outputs_bucket"], Prefix="edited/race/")
    assert len(versions.get("Versions", [])) == 1  # one copy, ever, even counting overwritten versions
    assert [h["status"] for h in job["status_history"]].count("SUCCEEDED") == 1


def test_a_failed_provider_task_fails_the_job_with_its_message(stack, client, emulator, sample_clip):
    set_knobs(emulator, processing_seconds=0.2, fail_rate=1.0)
    job_id = client.upload_clip(sample_clip, "incoming/fail/clip.mp4", {"prompt": "p"})
    job = client.wait_for_job(job_id)
    (task,) = provider_tasks_for(emulator, job_id)
    assert job["status"] == "FAILED" and job["error_code"] == "PROVIDER_TASK_FAILED"
    assert job["error_message"] == task["status_msg"] and job["error_message"]
    assert "output_key" not in job


def test_callbacks_never_arriving_are_covered_by_the_poller(stack, client, emulator, sample_clip):
    set_knobs(emulator, processing_seconds=0.2, drop_callback_rate=1.0)
    job_id = client.upload_clip(sample_clip, "incoming/nocallback/clip.mp4", {"prompt": "p"})
    job = client.wait_for_job(job_id)
    assert job["status"] == "SUCCEEDED" and job["finalized_by"] == "poller"
    assert emulator.stats()["callbacks_dropped"] >= 2


def test_a_clip_without_a_prompt_is_rejected_before_the_provider_is_called(stack, client, emulator, sample_clip):
    job_id = client.upload_clip(sample_clip, "incoming/noprompt/clip.mp4", {})
    job = client.wait_for_job(job_id)
    assert job["status"] == "REJECTED" and job["error_code"] == "MISSING_PROMPT"
    assert provider_tasks_for(emulator, job_id) == []
    # The original clip is untouched.
    head = client.s3.head_object(Bucket=stack.info["inbox_bucket"], Key="incoming/noprompt/clip.mp4")
    assert head["ContentLength"] == sample_clip.stat().st_size


def test_non_video_uploads_are_ignored(stack, client, emulator):
    client.s3.put_object(Bucket=stack.info["inbox_bucket"], Key="incoming/notes.txt", Body=b"not a clip")
    version = client.s3.head_object(Bucket=stack.info["inbox_bucket"], Key="incoming/notes.txt")["VersionId"]
    event = json.loads((EVENTS / "sqs-s3-put.json").read_text())
    event["Records"][0]["body"] = s3_notification(stack.info["inbox_bucket"], "incoming/notes.txt", version, 10)
    result = stack.runner.invoke(stack.submit_function, event)
    assert result == {"batchItemFailures": []}
    items = client.dynamodb.scan(TableName=stack.info["jobs_table"], FilterExpression="input_key = :a",
                                 ExpressionAttributeValues={":a": {"S": "incoming/notes.txt"}})["Items"]
    assert items == []


def test_a_malformed_message_is_reported_as_a_batch_item_failure(stack):
    event = json.loads((EVENTS / "sqs-s3-put.json").read_text())
    event["Records"][0]["body"] = "{not json"
    result = stack.runner.invoke(stack.submit_function, event)
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
