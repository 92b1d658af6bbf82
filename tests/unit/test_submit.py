"""Submit use case against in-memory ports: idempotency, rejection, provider errors."""

from __future__ import annotations

import pytest

from clipedit.domain.errors import ProviderError, RetryLater
from clipedit.domain.job import JobStatus
from clipedit.domain.spec import SpecDefaults
from clipedit.usecases.submit import SubmitClip, SubmitSettings, UploadedObject, hash_token
from tests.fakes import FakeClock, FakeEvents, FakeJobStore, FakeObjectStore, FakeProvider, FakeWorkflow

BUCKET = "inbox"


@pytest.fixture
def world():
    jobs, storage, provider = FakeJobStore(), FakeObjectStore(), FakeProvider()
    workflow, events, clock = FakeWorkflow(), FakeEvents(), FakeClock()
    tokens = iter(f"token-{i}" for i in range(100))
    submit = SubmitClip(
        jobs=jobs, storage=storage, provider=provider, workflow=workflow, events=events, clock=clock,
        settings=SubmitSettings(
            callback_base_url="https://api.example/", presign_ttl_seconds=900,
            poll_interval_seconds=30, job_deadline_seconds=3600, defaults=SpecDefaults(),
        ),
        new_token=lambda: next(tokens),
    )
    return submit, jobs, storage, provider, workflow, events


def upload(key="incoming/clip.mp4", version="v1", size=1000):
    return UploadedObject(BUCKET, key, version, '"e"', "seq", size)


def test_upload_with_prompt_is_submitted_once_with_a_poller(world):
    submit, jobs, storage, provider, workflow, events = world
    storage.put(BUCKET, "incoming/clip.mp4", b"x" * 1000, {"prompt": "Make it @Video1 at night", "mode": "std"})
    outcome = submit(upload())
    job = jobs.get(outcome.job_id)
    assert job.status == JobStatus.SUBMITTED
    assert job.provider_task_id in provider.tasks
    assert job.mode == "std" and job.model == "o3" and job.keep_audio is True
    assert workflow.started == {outcome.job_id: 30}
    request = provider.requests[0]
    assert request.external_id == outcome.job_id
    assert request.video_url.startswith("https://presigned.example/inbox/incoming/clip.mp4")
    assert request.callback_url == f"https://api.example/callbacks/kling/{outcome.job_id}?token=token-0"
    assert job.callback_token_hash == hash_token("token-0")  # only the hash is kept
    assert [h["status"] for h in job.status_history] == ["RECEIVED", "QUEUED", "SUBMITTED"]
    assert [d["status"] for _, d in events.published] == ["QUEUED", "SUBMITTED"]


def test_same_event_three_times_makes_one_job_and_one_task(world):
    submit, jobs, storage, provider, workflow, _ = world
    storage.put(BUCKET, "incoming/clip.mp4", b"x" * 10, {"prompt": "p"})
    ids = {submit(upload()).job_id for _ in range(3)}
    assert len(ids) == 1 and len(jobs.items) == 1
    assert len(provider.requests) == 1 and len(provider.tasks) == 1
    assert len(workflow.started) == 1


def test_new_version_at_same_key_is_a_new_job(world):
    submit, jobs, storage, provider, _, _ = world
    storage.put(BUCKET, "incoming/clip.mp4", b"x" * 10, {"prompt": "p"})
    first = submit(upload(version="v1")).job_id
    second = submit(upload(version="v2")).job_id
    assert first != second and len(provider.tasks) == 2


def test_missing_prompt_is_rejected_without_calling_the_provider(world):
    submit, jobs, storage, provider, workflow, events = world
    storage.put(BUCKET, "incoming/clip.mp4", b"x" * 10, {})
    job = jobs.get(submit(upload()).job_id)
    assert job.status == JobStatus.REJECTED
    assert job.error_code == "MISSING_PROMPT" and "x-amz-meta-prompt" in job.error_message
    assert provider.requests == [] and workflow.started == {}
    assert events.published[-1][1]["status"] == "REJECTED"


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ({"prompt": "p", "mode": "turbo"}, "INVALID_MODE"),
        ({"prompt": "p", "model": "o9"}, "INVALID_MODEL"),
        ({"prompt": "p", "keep-audio": "maybe"}, "INVALID_KEEP_AUDIO"),
        ({"prompt": "x" * 2501}, "PROMPT_TOO_LONG"),
        ({"prompt": "put @Image1 behind the subject"}, "UNKNOWN_REFERENCE"),
    ],
)
def test_bad_metadata_is_rejected_with_a_specific_code(world, metadata, code):
    submit, jobs, storage, provider, _, _ = world
    storage.put(BUCKET, "incoming/clip.mp4", b"x" * 10, metadata)
    job = jobs.get(submit(upload()).job_id)
    assert (job.status, job.error_code) == (JobStatus.REJECTED, code)
    assert provider.requests == []


def test_oversized_clip_is_rejected(world):
    submit, jobs, storage, _, _, _ = world
    storage.put(BUCKET, "incoming/clip.mp4", b"", {"prompt": "p"})
    storage.objects[(BUCKET, "incoming/clip.mp4")]["body"] = b"x" * (200 * 1024 * 1024 + 1)
    job = jobs.get(submit(upload()).job_id)
    assert job.error_code == "CLIP_TOO_LARGE"


def test_non_video_keys_are_ignored_and_any_case_is_accepted(world):
    submit, jobs, storage, _, _, _ = world
    assert submit(upload(key="incoming/notes.txt")).status == "IGNORED"
    storage.put(BUCKET, "incoming/CLIP.MOV", b"x", {"prompt": "p"})
    assert submit(upload(key="incoming/CLIP.MOV")).status == "SUBMITTED"


def test_retryable_provider_error_leaves_job_queued_and_asks_for_redelivery(world):
    submit, jobs, storage, provider, workflow, _ = world
    storage.put(BUCKET, "incoming/clip.mp4", b"x", {"prompt": "p"})
    provider.submit_errors.append(ProviderError("busy", provider_code=1303, retryable=True))
    with pytest.raises(RetryLater):
        submit(upload())
    (job,) = jobs.items.values()
    assert job.status == JobStatus.QUEUED and workflow.started == {}
    assert submit(upload()).status == "SUBMITTED"  # the redelivered message goes through
    assert len(provider.tasks) == 1


def test_deterministic_provider_error_fails_the_job_with_the_reason(world):
    submit, jobs, storage, provider, workflow, _ = world
    storage.put(BUCKET, "incoming/clip.mp4", b"x", {"prompt": "p"})
    provider.submit_errors.append(
        ProviderError("Kling error 1301: content security policy", provider_code=1301, retryable=False, code="KLING_1301")
    )
    job = jobs.get(submit(upload()).job_id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "KLING_1301")
    assert "content security" in job.error_message and workflow.started == {}


def test_task_created_by_a_lost_attempt_is_adopted_not_duplicated(world):
    submit, jobs, storage, provider, workflow, _ = world
    storage.put(BUCKET, "incoming/clip.mp4", b"x", {"prompt": "p"})
    outcome = submit(upload())
    # Simulate a crash between the provider call and the record: the job is QUEUED again.
    jobs.items[outcome.job_id].status = JobStatus.QUEUED
    jobs.items[outcome.job_id].provider_task_id = None
    again = submit(upload())
    assert again.status == "SUBMITTED" and len(provider.tasks) == 1
    assert jobs.get(outcome.job_id).provider_task_id in provider.tasks
