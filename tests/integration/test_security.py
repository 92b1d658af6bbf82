"""Security properties on the local stack: forged and replayed callbacks change nothing, and no
secret, token, JWT or presigned URL reaches a log line or a job record."""

from __future__ import annotations

import json
import logging
import re


from local.stack import LOCAL_SECRET_KEY
from tests.conftest import set_knobs
from tests import web


def provider_task(emulator, job_id):
    (task,) = [t for t in emulator.tasks() if t["external_task_id"] == job_id]
    return task


def test_a_token_for_one_job_does_not_open_another(stack, client, emulator, sample_clip):
    set_knobs(emulator, processing_seconds=30.0)
    a = client.upload_clip(sample_clip, "incoming/sec/a.mp4", {"prompt": "p"})
    b = client.upload_clip(sample_clip, "incoming/sec/b.mp4", {"prompt": "p"})
    client.wait_for_job(a, statuses={"PROCESSING"})
    before = client.wait_for_job(b, statuses={"PROCESSING"})
    token_a = provider_task(emulator, a)["callback_url"].split("token=", 1)[1]
    answer = web.post(f"{stack.info['callback_base_url']}/callbacks/kling/{b}?token={token_a}",
                        json={"task_id": provider_task(emulator, b)["task_id"], "task_status": "succeed"})
    assert answer.status_code == 401
    assert client.job(b)["status_history"] == before["status_history"]


def test_a_replayed_callback_after_success_changes_nothing(stack, client, emulator, sample_clip):
    set_knobs(emulator, processing_seconds=0.2)
    job_id = client.upload_clip(sample_clip, "incoming/sec/replay.mp4", {"prompt": "p"})
    done = client.wait_for_job(job_id)
    assert done["status"] == "SUCCEEDED"
    task = provider_task(emulator, job_id)
    for status in ("succeed", "failed", "processing"):
        answer = web.post(task["callback_url"], json={"task_id": task["task_id"], "task_status": status})
        assert answer.status_code == 200 and answer.json()["status"] == "SUCCEEDED"
    after = client.job(job_id)
    assert after["status_history"] == done["status_history"] and after["updated_at"] == done["updated_at"]
    versions = client.s3.list_object_versions(Bucket=stack.info["outputs_bucket"], Prefix="edited/sec/replay")
    assert len(versions["Versions"]) == 1


def test_an_oversized_callback_body_is_refused(stack, client, emulator, sample_clip):
    answer = web.post(f"{stack.info['callback_base_url']}/callbacks/kling/j-x?token=t", content=b"x" * 70_000)
    assert answer.status_code == 413


def test_no_secret_token_jwt_or_presigned_url_in_logs_or_job_records(stack, client, emulator, sample_clip, caplog):
    set_knobs(emulator, processing_seconds=0.2)
    caplog.set_level(logging.INFO)  # as a deployer who turns logging up would see it
    job_id = client.upload_clip(sample_clip, "incoming/sec/logs.mp4", {"prompt": "p"})
    job = client.wait_for_job(job_id)
    assert job["status"] == "SUCCEEDED"
    task = provider_task(emulator, job_id)
    token = task["callback_url"].split("token=", 1)[1]
    presigned = task["video_url"]
    assert "X-Amz-Signature=" in presigned  # what must never be logged
    logged = "\n".join(repr(record.__dict__) for record in caplog.records)
    assert logged, "the run produced no log records to check"
    record_text = json.dumps(job)
    for text, where in ((logged, "logs"), (record_text, "job record")):
        assert token not in text, where
        assert "X-Amz-Signature" not in text and "X-Amz-Credential" not in text, where
        assert LOCAL_SECRET_KEY not in text, where
        assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ", text), f"a JWT in the {where}"
