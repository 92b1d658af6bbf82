"""The main scenarios for both providers, on the local stack: Kling's API and fal's queue API are
both emulated, and each job names its provider in its metadata (``provider: kling|fal``).

Happy path, dropped callbacks finished by the poller, a failed task, duplicate callbacks racing
the poller, forged callbacks (Kling: wrong token; fal: the right token but a bad signature, an old
timestamp, an unknown key, another user), and, for fal, queueing over the concurrency limit and
cancellation.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import set_knobs
from tests import web

PROMPT = "Give @Video1 a warm grade"


@dataclass
class Provider:
    name: str
    emulator: Any

    def tasks_for(self, job_id: str) -> list[dict[str, Any]]:
        # Both emulators record the callback URL they were given; ours names the job.
        return [t for t in self.emulator.tasks() if f"/{job_id}?" in (t.get("callback_url") or "")]


@pytest.fixture(params=["kling", "fal"])
def provider(request, stack):
    emulator = stack.emulator if request.param == "kling" else stack.fal_emulator
    original = emulator.settings
    yield Provider(request.param, emulator)
    emulator.settings = original


def upload(client, sample_clip, provider: Provider, key: str, **metadata: str) -> str:
    return client.upload_clip(sample_clip, f"incoming/{provider.name}/{key}",
                              {"prompt": PROMPT, "provider": provider.name, **metadata})


def test_happy_path(stack, client, provider, sample_clip):
    set_knobs(provider.emulator, processing_seconds=0.3)
    job_id = upload(client, sample_clip, provider, "happy/clip.mp4")
    job = client.wait_for_job(job_id)
    assert job["status"] == "SUCCEEDED" and job["provider"] == provider.name
    (task,) = provider.tasks_for(job_id)
    assert job["provider_task_id"] == task["task_id"]
    head = client.s3.head_object(Bucket=job["output_bucket"], Key=job["output_key"])
    assert head["ContentLength"] == job["output_size"] > 0
    if provider.name == "fal":
        assert task["endpoint"] == "fal-ai/kling-video/o3/pro/video-to-video/edit"
        assert task["request"]["prompt"] == PROMPT and task["request"]["keep_audio"] is True  # fal's own syntax
        assert set(job["provider_urls"]) == {"status_url", "response_url", "cancel_url"}
        assert job["provider_endpoint"] == task["endpoint"]
    else:
        assert task["request"]["prompt"] == "Give <<<video_1>>> a warm grade"


def test_dropped_callbacks_are_covered_by_the_poller(stack, client, provider, sample_clip):
    set_knobs(provider.emulator, processing_seconds=0.2, drop_callback_rate=1.0)
    dropped = provider.emulator.stats()["callbacks_dropped"]
    job_id = upload(client, sample_clip, provider, "nocallback/clip.mp4")
    job = client.wait_for_job(job_id)
    assert job["status"] == "SUCCEEDED" and job["finalized_by"] == "poller"
    assert provider.emulator.stats()["callbacks_dropped"] > dropped


def test_a_failed_task_fails_the_job_with_the_providers_reason(stack, client, provider, sample_clip):
    set_knobs(provider.emulator, processing_seconds=0.2, fail_rate=1.0)
    job_id = upload(client, sample_clip, provider, "fail/clip.mp4")
    job = client.wait_for_job(job_id)
    assert job["status"] == "FAILED" and "output_key" not in job
    expected = {"kling": "PROVIDER_TASK_FAILED", "fal": "FAL_CONTENT_POLICY"}[provider.name]
    assert job["error_code"] == expected and job["error_message"]
    if provider.name == "fal":
        assert "content policy" in job["error_message"] and "flagged" in job["error_message"]


def test_duplicate_callbacks_racing_the_poller_finalize_once(stack, client, provider, sample_clip):
    set_knobs(provider.emulator, processing_seconds=1.0, duplicate_callback_rate=1.0)
    job_id = upload(client, sample_clip, provider, "race/clip.mp4")
    job = client.wait_for_job(job_id)
    provider.emulator.wait_for_callbacks(timeout=30)
    (task,) = provider.tasks_for(job_id)
    # fal retries a webhook for up to 2 hours: a replay after the end changes nothing either.
    if provider.name == "fal":
        body = provider.emulator.webhook_body(task["task_id"])
        replay = lambda _: web.post(task["callback_url"], content=body,  # noqa: E731
                                      headers=provider.emulator.sign(body, task["task_id"]))
    else:
        replay = lambda _: web.post(task["callback_url"], json={"task_id": task["task_id"]})  # noqa: E731
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(replay, range(4)))
    assert [c.status_code for c in codes] == [200] * 4
    after = client.job(job_id)
    assert after["status"] == job["status"] == "SUCCEEDED" and after["updated_at"] == job["updated_at"]
    assert [h["status"] for h in after["status_history"]].count("SUCCEEDED") == 1
    prefix = f"edited/{provider.name}/race/"
    versions = client.s3.list_object_versions(Bucket=stack.info["outputs_bucket"], Prefix=prefix)
    assert len(versions.get("Versions", [])) == 1
    assert provider.emulator.stats()["callbacks_duplicated"] >= 1


def forgeries(provider: Provider, task: dict[str, Any]) -> tuple[list[tuple[str, dict[str, str], bytes, str]], list[str]]:
    """Callbacks that must be refused: [(what, headers, body, expected message fragment)], [URL each goes to]."""
    if provider.name == "kling":
        body = json.dumps({"task_id": task["task_id"], "task_status": "succeed"}).encode()
        base = task["callback_url"].split("?")[0]
        return [("wrong token", {}, body, "invalid callback token"),
                ("no token", {}, body, "invalid callback token")], [f"{base}?token=not-it", base]
    request_id = task["task_id"]
    lie = json.dumps({"request_id": request_id, "gateway_request_id": request_id, "status": "OK",
                      "payload": {"video": {"url": "https://evil.example/x.mp4"}}}).encode()
    sign = provider.emulator.sign
    attacker = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"attacker").digest())
    cases = [
        ("bad signature", sign(lie.replace(b"evil", b"nice"), request_id), lie, "does not verify"),
        ("old timestamp", sign(lie, request_id, timestamp=int(time.time()) - 600), lie, "in the past"),
        ("unknown key", sign(lie, request_id, key=attacker), lie, "any of fal's published keys"),
        ("another user", sign(lie, request_id, user_id="someone-else"), lie, "for fal user"),
        ("unsigned", {"Content-Type": "application/json"}, lie, "missing x-fal-webhook"),
    ]
    return cases, [task["callback_url"]] * len(cases)


def test_forged_callbacks_are_refused_and_change_nothing(stack, client, provider, sample_clip):
    set_knobs(provider.emulator, processing_seconds=30.0, drop_callback_rate=1.0)
    job_id = upload(client, sample_clip, provider, "forged/clip.mp4")
    before = client.wait_for_job(job_id, statuses={"PROCESSING"})
    (task,) = provider.tasks_for(job_id)
    cases, urls = forgeries(provider, task)
    for (what, headers, body, fragment), url in zip(cases, urls):
        answer = web.post(url, content=body, headers=headers)
        assert answer.status_code == 401, what
        assert fragment in answer.json()["message"], (what, answer.text)
    after = client.job(job_id)
    assert after["status"] == "PROCESSING" and after["status_history"] == before["status_history"]
    if provider.name == "fal":  # the token was right: the refusal is noted on the record, with its reason
        assert "missing x-fal-webhook" in after["callback_rejected"]  # the last forgery sent
    else:
        assert "callback_rejected" not in after  # wrong tokens write nothing
    assert "Contents" not in client.s3.list_objects_v2(Bucket=stack.info["outputs_bucket"],
                                                       Prefix=f"edited/{provider.name}/forged/")
    if provider.name == "fal":  # frees fal's slot now, not in 30 s: later tests cap fal at one request
        cancel(job_id)


def test_a_validly_signed_webhook_is_still_only_a_hint(stack, client, sample_clip):
    fal = stack.fal_emulator
    original = fal.settings
    try:
        set_knobs(fal, processing_seconds=30.0, drop_callback_rate=1.0)
        job_id = upload(client, sample_clip, Provider("fal", fal), "hint/clip.mp4")
        client.wait_for_job(job_id, statuses={"PROCESSING"})
        (task,) = Provider("fal", fal).tasks_for(job_id)
        lie = json.dumps({"request_id": task["task_id"], "status": "OK",
                          "payload": {"video": {"url": "https://evil.example/x.mp4"}}}).encode()
        answer = web.post(task["callback_url"], content=lie, headers=fal.sign(lie, task["task_id"]))
        assert answer.status_code == 200 and answer.json()["status"] == "PROCESSING"  # fal's status API says so
        cancel(job_id)  # frees the slot now, not in 30 s
    finally:
        fal.settings = original


def test_fal_queues_requests_over_its_concurrency_limit_instead_of_failing(stack, client, sample_clip):
    fal = stack.fal_emulator
    original = fal.settings
    try:
        set_knobs(fal, processing_seconds=0.5, concurrency=1)
        jobs = [upload(client, sample_clip, Provider("fal", fal), f"queue/{i}.mp4") for i in range(3)]
        finished = [client.wait_for_job(job_id, timeout=120) for job_id in jobs]
        assert [j["status"] for j in finished] == ["SUCCEEDED"] * 3
        assert fal.stats()["max_queued_observed"] >= 1  # someone waited IN_QUEUE, nobody was refused
    finally:
        fal.settings = original


def cancel(job_id: str):
    from clipedit.config import Settings
    from clipedit.wiring import Container

    # The stack's function environment is this process's: the use case exactly as a handler runs it.
    return Container(Settings.from_env()).cancel_job(job_id, reason="cancelled by the test")


@pytest.mark.parametrize("while_status", ["IN_QUEUE", "IN_PROGRESS"])
def test_cancelling_a_fal_job_cancels_its_request_and_a_late_webhook_does_not_revive_it(
        stack, client, sample_clip, while_status):
    fal = stack.fal_emulator
    original = fal.settings
    try:
        set_knobs(fal, processing_seconds=30.0, concurrency=1 if while_status == "IN_QUEUE" else 5)
        blocker = upload(client, sample_clip, Provider("fal", fal), f"cancel/blocker-{while_status}.mp4") \
            if while_status == "IN_QUEUE" else None
        if blocker:
            client.wait_for_job(blocker, statuses={"PROCESSING"})
        job_id = upload(client, sample_clip, Provider("fal", fal), f"cancel/{while_status}.mp4")
        client.wait_for_job(job_id, statuses={"SUBMITTED", "PROCESSING"})
        (task,) = Provider("fal", fal).tasks_for(job_id)
        assert fal.wait_for_status(task["task_id"], {while_status}, timeout=10)
        outcome = cancel(job_id)
        assert (outcome.status, outcome.provider_cancelled) == ("CANCELLED", True)
        final = fal.wait_for_status(task["task_id"], {"COMPLETED"}, timeout=10)
        assert final["cancel_requested"] and final["error_type"] == "client_cancelled"
        fal.wait_for_callbacks(timeout=10)  # fal's ERROR webhook for the cancelled request arrived
        job = client.job(job_id)
        assert job["status"] == "CANCELLED" and job["error_code"] == "CANCELLED"
        assert [h["status"] for h in job["status_history"]][-1] == "CANCELLED"
        if blocker:
            cancel(blocker)
    finally:
        fal.settings = original


def test_a_kling_job_already_with_kling_cannot_be_cancelled(stack, client, emulator, sample_clip):
    from clipedit.usecases.cancel import CancelRefused

    set_knobs(emulator, processing_seconds=30.0)
    job_id = upload(client, sample_clip, Provider("kling", emulator), "cancel/kling.mp4")
    client.wait_for_job(job_id, statuses={"SUBMITTED", "PROCESSING"})
    with pytest.raises(CancelRefused, match="not supported by provider kling"):
        cancel(job_id)
    assert client.job(job_id)["status"] in ("SUBMITTED", "PROCESSING")


def test_clipedit_cancel_cancels_a_fal_job_of_the_running_local_stack(stack, client, sample_clip):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    fal = stack.fal_emulator
    original = fal.settings
    try:
        set_knobs(fal, processing_seconds=30.0)
        job_id = upload(client, sample_clip, Provider("fal", fal), "cancel/tool.mp4")
        client.wait_for_job(job_id, statuses={"SUBMITTED", "PROCESSING"})
        # A clean environment: everything the command needs comes from the stack's local.json.
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
               "PYTHONPATH": f"{root / 'cli'}:{root / 'layers/clipedit/python'}",
               "CLIPEDIT_LOCAL_FILE": str(stack.info_path)}
        command = [sys.executable, "-m", "clipedit_cli", "cancel", job_id]
        run = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout)["status"] == "CANCELLED"
        assert client.job(job_id)["status"] == "CANCELLED"
        (task,) = Provider("fal", fal).tasks_for(job_id)
        assert task["cancel_requested"]  # the provider request was cancelled, not just our record
        again = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 5 and "JOB_ALREADY_FINISHED" in again.stderr
    finally:
        fal.settings = original


def test_no_fal_key_callback_token_or_presigned_url_in_logs_or_the_job_record(stack, client, sample_clip, caplog):
    import logging

    from local.stack import LOCAL_FAL_KEY

    fal = stack.fal_emulator
    original = fal.settings
    try:
        set_knobs(fal, processing_seconds=0.2)
        caplog.set_level(logging.INFO)
        job_id = upload(client, sample_clip, Provider("fal", fal), "sec/logs.mp4")
        job = client.wait_for_job(job_id)
        assert job["status"] == "SUCCEEDED"
        (task,) = Provider("fal", fal).tasks_for(job_id)
        token = task["callback_url"].split("token=", 1)[1]
        assert "X-Amz-Signature=" in task["video_url"]  # what must never be logged
        logged = "\n".join(repr(record.__dict__) for record in caplog.records)
        assert logged
        for text, where in ((logged, "logs"), (json.dumps(job), "job record")):
            assert token not in text and LOCAL_FAL_KEY not in text, where
            assert "X-Amz-Signature" not in text, where
    finally:
        fal.settings = original
