"""Intake + submit on in-memory ports: idempotency, rejection before any spend, provider errors."""

from __future__ import annotations

import pytest

from clipedit.domain.errors import MediaRejected, ProviderError, RetryLater
from clipedit.domain.provider_errors import ErrorKind
from clipedit.domain.job import JobStatus
from clipedit.domain.spec import SpecDefaults
from clipedit.usecases.common import StatusRecorder, iso
from clipedit.usecases.dispatch import IntakeDispatcher
from clipedit.domain.uploads import UploadedObject
from clipedit.usecases.intake import Intake, IntakeSettings
from clipedit.usecases.submit import SubmitJob, SubmitSettings, hash_token
from clipedit.domain.backpressure import BackpressureSettings
from clipedit.usecases.backpressure import SlotRelease
from tests.fakes import (
    FakeBatchStore, FakeClock, FakeDocuments, FakeElementCache, FakeEvents, FakeGuard, FakeInspector, FakeJobStore,
    FakeObjectStore, FakeProvider, FakeQueue, FakeWorkflow,
)

BUCKET = "inbox"


class World:
    def __init__(self, provider=None, default_preset=None, backpressure=None):
        self.jobs, self.storage = FakeJobStore(), FakeObjectStore()
        self.provider = provider or FakeProvider()
        self.workflow, self.events, self.clock = FakeWorkflow(), FakeEvents(), FakeClock()
        self.queue, self.inspector, self.elements = FakeQueue(), FakeInspector(), FakeElementCache()
        self.prepare_queue = FakeQueue()
        self.documents, self.batches = FakeDocuments(self.storage), FakeBatchStore(self.jobs)
        self.guard = FakeGuard()
        recorder = StatusRecorder(events=self.events, batches=self.batches, documents=self.documents,
                                  now=lambda: iso(self.clock.now()),
                                  on_terminal=SlotRelease(guard=self.guard, jobs=self.jobs, queue=self.queue,
                                                          limit=(backpressure or BackpressureSettings()).concurrency_limit))
        tokens = iter(f"token-{i}" for i in range(1000))
        self.intake = Intake(
            jobs=self.jobs, batches=self.batches, documents=self.documents, queue=self.queue,
            head_metadata=lambda ref: self.storage.head(ref).metadata, clock=self.clock,
            settings=IntakeSettings(inbox_bucket=BUCKET, default_preset=default_preset, defaults=SpecDefaults()),
            provider_name=self.provider.name, recorder=recorder,
        )
        self.submit_job = SubmitJob(
            jobs=self.jobs, storage=self.storage, inspector=self.inspector, provider=self.provider,
            elements=self.elements, workflow=self.workflow, recorder=recorder, clock=self.clock,
            settings=SubmitSettings(callback_base_url="https://api.example/", presign_ttl_seconds=900,
                                    poll_interval_seconds=30, job_deadline_seconds=3600),
            guard=self.guard, backpressure=backpressure or BackpressureSettings(),
            new_token=lambda: next(tokens), prepare_requests=self.prepare_queue,
        )
        self.dispatch = IntakeDispatcher(intake=self.intake, submit_job=self.submit_job, queue=self.queue)

    def upload(self, key="incoming/clip.mp4", version="v1", metadata=None, body=b"x" * 1000):
        if metadata is not None:
            self.storage.put(BUCKET, key, body, metadata)
        return self.dispatch.upload(UploadedObject(BUCKET, key, version, '"e"', "seq", len(body)))

    def drain(self):
        """Deliver the queue's own messages, as SQS would."""
        while self.queue.sent:
            self.dispatch.message(self.queue.sent.pop(0))


@pytest.fixture
def world():
    return World()


def test_upload_with_prompt_is_submitted_once_with_a_poller(world):
    (outcome,) = world.upload(metadata={"prompt": "Make it @Video1 at night", "mode": "std"})
    job = world.jobs.get(outcome.job_id)
    assert job.status == JobStatus.SUBMITTED
    assert job.provider_task_id in world.provider.tasks
    assert job.mode == "std" and job.model == "o3" and job.keep_audio is True
    assert job.video_facts["width"] == 1280 and job.planned_output_key == "edited/clip.mp4"
    assert world.workflow.started == {outcome.job_id: 30}
    request = world.provider.requests[0]
    assert request.external_id == outcome.job_id
    assert request.video_url.startswith("https://presigned.example/inbox/incoming/clip.mp4")
    assert request.callback_url == f"https://api.example/callbacks/kling/{outcome.job_id}?token=token-0"
    assert job.callback_token_hash == hash_token("token-0")  # only the hash is kept
    assert [h["status"] for h in job.status_history] == ["RECEIVED", "QUEUED", "SUBMITTED"]
    assert [d["status"] for _, d in world.events.published] == ["RECEIVED", "QUEUED", "SUBMITTED"]


def test_same_event_three_times_makes_one_job_and_one_task(world):
    ids = {world.upload(metadata={"prompt": "p"})[0].job_id for _ in range(3)}
    assert len(ids) == 1 and len(world.jobs.items) == 1
    assert len(world.provider.requests) == 1 and len(world.provider.tasks) == 1
    assert len(world.workflow.started) == 1


def test_new_version_at_same_key_is_a_new_job(world):
    first = world.upload(metadata={"prompt": "p"}, version="v1")[0].job_id
    second = world.upload(metadata={"prompt": "p"}, version="v2")[0].job_id
    assert first != second and len(world.provider.tasks) == 2


def test_missing_prompt_is_rejected_without_calling_the_provider(world):
    world.upload(metadata={})
    (job,) = world.jobs.items.values()
    assert job.status == JobStatus.REJECTED
    assert job.error_code == "MISSING_PROMPT" and "x-amz-meta-prompt" in job.error_message
    assert world.provider.requests == [] and world.workflow.started == {}
    assert world.events.published[-1][1]["status"] == "REJECTED"


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ({"prompt": "p", "mode": "turbo"}, "INVALID_MODE"),
        ({"prompt": "p", "model": "o9"}, "INVALID_MODEL"),
        ({"prompt": "p", "keep-audio": "maybe"}, "INVALID_KEEP_AUDIO"),
        ({"prompt": "x" * 2501}, "PROMPT_TOO_LONG"),
        ({"prompt": "put @Image1 behind the subject"}, "UNKNOWN_REFERENCE"),
        ({"prompt": "p", "preset": "nope"}, "UNKNOWN_PRESET"),
        ({"prompt": "p", "spec": "specs/missing.json"}, "REFERENCE_UNREADABLE"),
    ],
)
def test_bad_metadata_is_rejected_with_a_specific_code(world, metadata, code):
    world.upload(metadata=metadata)
    (job,) = world.jobs.items.values()
    assert (job.status, job.error_code) == (JobStatus.REJECTED, code)
    assert world.provider.requests == []


@pytest.mark.parametrize(
    ("facts", "code"),
    [({"size_bytes": 200 * 1024 * 1024 + 1}, "CLIP_TOO_LARGE"), ({"duration_seconds": 2.0}, "CLIP_TOO_SHORT"),
     ({"width": 854, "height": 480}, "RESOLUTION_TOO_LOW"), ({"fps": 90.0}, "FPS_TOO_HIGH"),
     (MediaRejected("not a video", code="NOT_A_VIDEO"), "NOT_A_VIDEO")],
)
def test_media_outside_the_limits_is_rejected_before_the_provider(world, facts, code):
    world.inspector.videos["s3://inbox/incoming/clip.mp4?versionId=v1"] = facts
    world.upload(metadata={"prompt": "p", "normalize": "false"})
    (job,) = world.jobs.items.values()
    assert (job.status, job.error_code) == (JobStatus.REJECTED, code)
    assert world.provider.requests == []


def test_non_video_keys_are_ignored_and_any_case_is_accepted(world):
    assert world.upload(key="incoming/notes.txt")[0].status == "IGNORED"
    assert world.upload(key="incoming/CLIP.MOV", metadata={"prompt": "p"})[0].status == "SUBMITTED"


def test_retryable_provider_error_leaves_job_queued_and_queues_a_delayed_retry(world):
    world.provider.submit_errors.append(ProviderError("busy", provider_code=1303, kind=ErrorKind.THROTTLED))
    (outcome,) = world.upload(metadata={"prompt": "p"})
    (job,) = world.jobs.items.values()
    assert outcome.status == "WAITING" and job.status == JobStatus.QUEUED and world.workflow.started == {}
    assert "throttled" in job.wait_reason and job.next_attempt_at > job.created_at
    assert world.queue.sent == [{"clipedit": "submit", "job_id": job.job_id, "attempt": 1}]
    assert 1 <= world.queue.delays[0] <= 2  # the first backoff: base 2 s with jitter
    world.drain()  # the delayed message comes back and goes through
    job = world.jobs.get(job.job_id)
    assert job.status == JobStatus.SUBMITTED and len(world.provider.tasks) == 1
    assert job.wait_reason is None


def test_deterministic_provider_error_fails_the_job_with_the_reason(world):
    world.provider.submit_errors.append(
        ProviderError("Kling error 1301: content security policy", provider_code=1301, retryable=False, code="KLING_1301"))
    (outcome,) = world.upload(metadata={"prompt": "p"})
    job = world.jobs.get(outcome.job_id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "KLING_1301")
    assert "content security" in job.error_message and world.workflow.started == {}


def test_task_created_by_a_lost_attempt_is_adopted_not_duplicated(world):
    (outcome,) = world.upload(metadata={"prompt": "p"})
    # Simulate a crash between the provider call and the record: the job is QUEUED again.
    world.jobs.items[outcome.job_id].status = JobStatus.QUEUED
    world.jobs.items[outcome.job_id].provider_task_id = None
    assert world.upload()[0].status == "SUBMITTED" and len(world.provider.tasks) == 1
    assert world.jobs.get(outcome.job_id).provider_task_id in world.provider.tasks


def test_the_callback_token_is_valid_before_kling_is_even_called():
    """Kling's first callback can beat the SUBMITTED write; its token must already be accepted."""
    seen = {}

    class EagerProvider(FakeProvider):
        def submit(self, request):
            token = request.callback_url.split("token=", 1)[1]
            seen["stored"] = world.jobs.get(request.external_id).callback_token_hash
            seen["expected"] = hash_token(token)
            return super().submit(request)

    world = World(provider=EagerProvider())
    world.upload(metadata={"prompt": "p"})
    assert seen["stored"] == seen["expected"]
