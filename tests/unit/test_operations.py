"""Operating the pipeline on in-memory ports: retry, job events for every status change, metrics,
manifest job ids known at submission, time filters."""

from __future__ import annotations

import json

import pytest

from clipedit.domain.errors import ProviderError, SpecError
from clipedit.domain.job import JobStatus
from clipedit.domain.spec import SpecDefaults
from clipedit.usecases.common import StatusRecorder, iso
from clipedit.domain.uploads import UploadedObject
from clipedit.usecases.queries import InvalidQuery, NotFound, parse_since, public_job
from clipedit.usecases.retry import NotRetryable, RetryJob
from clipedit.usecases.submit_manifest import SubmitManifest
from tests.fakes import FakeEvents
from tests.unit.test_submit import BUCKET, World

PROMPT = {"prompt": "Make @Video1 look like a watercolour painting. Keep the motion identical."}


class RecordingMetrics:
    def __init__(self) -> None:
        self.points: list[tuple[str, float, dict[str, str]]] = []

    def count(self, name, *, dimensions=None, value=1):
        self.points.append((name, value, dict(dimensions or {})))

    def seconds(self, name, value, *, dimensions=None):
        self.points.append((name, value, dict(dimensions or {})))


def failed_job(world: World, code: int = 1301) -> str:
    world.provider.submit_errors.append(ProviderError("Kling error: content policy", provider_code=code,
                                                      retryable=False, code=f"KLING_{code}"))
    (outcome,) = world.upload(metadata=PROMPT)
    assert outcome.status == "FAILED"
    return outcome.job_id


def retry_use_case(world: World) -> RetryJob:
    recorder = StatusRecorder(events=world.events, now=lambda: iso(world.clock.now()))
    return RetryJob(jobs=world.jobs, queue=world.queue, recorder=recorder, clock=world.clock)


@pytest.fixture
def world():
    return World()


def test_every_status_change_publishes_one_event_in_order(world):
    (outcome,) = world.upload(metadata=PROMPT)
    job = world.jobs.get(outcome.job_id)
    published = [(d["status"], d["previous_status"]) for t, d in world.events.published if t == "Job Status Changed"]
    history = [h["status"] for h in job.status_history]
    assert [s for s, _ in published] == history == ["RECEIVED", "QUEUED", "SUBMITTED"]
    assert [p for _, p in published] == [None, "RECEIVED", "QUEUED"]


def test_retry_creates_a_new_linked_job_once_and_leaves_the_original_alone(world):
    original_id = failed_job(world)
    before = public_job(world.jobs.get(original_id))
    retry = retry_use_case(world)

    first = retry(original_id)
    again = retry(original_id)

    assert first.created and not again.created
    assert first.job_id == again.job_id != original_id and first.attempt == 1
    assert public_job(world.jobs.get(original_id)) == before
    new = world.jobs.get(first.job_id)
    assert new.status == JobStatus.RECEIVED
    assert (new.prompt, new.input_key, new.input_version_id) == (before["prompt"], before["input_key"],
                                                                  before["input_version_id"])
    assert new.extra == {"retry_of": original_id, "retry_root": original_id, "retry_attempt": 1}
    assert new.error_code is None and new.provider_task_id is None
    # Submitted through the intake queue; asking again re-sends (idempotent) rather than duplicating jobs.
    assert world.queue.sent == [{"clipedit": "submit", "job_id": first.job_id}] * 2
    world.drain()
    assert world.jobs.get(first.job_id).status == JobStatus.SUBMITTED
    assert [r.external_id for r in world.provider.requests] == [original_id, first.job_id]


def test_a_retry_of_a_retry_is_the_next_attempt_of_the_same_root(world):
    original_id = failed_job(world)
    retry = retry_use_case(world)
    first = retry(original_id)
    world.jobs.transition(first.job_id, JobStatus.FAILED, now=iso(world.clock.now()))
    second = retry(first.job_id)
    assert second.attempt == 2 and second.job_id not in (first.job_id, original_id)
    assert world.jobs.get(second.job_id).extra["retry_root"] == original_id


def test_only_failed_like_jobs_with_a_resolved_edit_can_be_retried(world):
    retry = retry_use_case(world)
    (running,) = world.upload(metadata=PROMPT)
    with pytest.raises(NotRetryable, match="SUBMITTED; only FAILED, REJECTED, TIMED_OUT"):
        retry(running.job_id)
    world.upload(key="incoming/other.mp4", metadata={})
    (rejected,) = [j for j in world.jobs.items.values() if j.status == JobStatus.REJECTED]
    assert rejected.error_code == "MISSING_PROMPT"
    with pytest.raises(NotRetryable, match="MISSING_PROMPT.*upload it again"):
        retry(rejected.job_id)
    with pytest.raises(NotFound):
        retry("j-missing")


def test_metrics_follow_status_changes():
    metrics, events = RecordingMetrics(), FakeEvents()
    recorder = StatusRecorder(events=events, now=lambda: "2026-11-24T10:00:10.000Z", metrics=metrics)
    world = World()
    (outcome,) = world.upload(metadata=PROMPT)
    job = world.jobs.get(outcome.job_id)
    job.submitted_at = "2026-11-24T10:00:02.500Z"
    job.created_at = "2026-11-24T10:00:00.000Z"
    recorder(job, "QUEUED")
    job.status, job.finished_at = JobStatus.FAILED, "2026-11-24T10:03:00.000Z"
    job.error_code = "KLING_1102"
    recorder(job, "SUBMITTED")
    assert metrics.points == [
        ("SubmitLatency", 2.5, {}),
        ("JobsFinished", 1, {"status": "FAILED"}),
        ("TimeToTerminal", 180.0, {"status": "FAILED"}),
        ("ProviderErrors", 1, {"code": "KLING_1102"}),
    ]


class FakeWriter:
    def __init__(self, store):
        self.store, self.versions = store, 0

    def put_manifest(self, bucket, key, text):
        self.versions += 1
        self.store.put(bucket, key, text.encode())
        return f"v{self.versions}"


def test_submitted_manifest_job_ids_are_the_ids_intake_creates(world):
    writer = FakeWriter(world.storage)
    submit = SubmitManifest(writer=writer, inbox_bucket=BUCKET, jobs_prefix="jobs/", allowed_buckets=frozenset(),
                            defaults=SpecDefaults())
    world.storage.put(BUCKET, "media/clip.mp4", b"x" * 1000)
    document = [
        {"video_url": "media/clip.mp4", **PROMPT},
        {"video_url": "media/clip.mp4", **PROMPT, "variants": [{"name": "draft", "mode": "std"}, {"name": "final"}]},
    ]
    submitted = submit(document, name="req-1")
    assert submitted.key == "jobs/api/req-1.json" and len(submitted.job_ids) == 3
    world.dispatch.upload(UploadedObject(BUCKET, submitted.key, submitted.version_id, '"e"', "seq", 100))
    world.drain()
    assert set(submitted.job_ids) == set(world.jobs.items)


@pytest.mark.parametrize("document, code", [
    ({"video_url": "media/clip.mp4", "prompt": "x", "colour": "red"}, "UNKNOWN_FIELD"),
    ({"prompt": "Edit @Video1"}, "MISSING_VIDEO"),
    ({"video_url": "file:///etc/passwd", "prompt": "Edit @Video1"}, "INVALID_URL"),
    ([], "INVALID_MANIFEST"),
])
def test_a_bad_manifest_is_refused_before_it_is_stored(world, document, code):
    writer = FakeWriter(world.storage)
    submit = SubmitManifest(writer=writer, inbox_bucket=BUCKET, jobs_prefix="jobs/", allowed_buckets=frozenset(),
                            defaults=SpecDefaults())
    with pytest.raises(SpecError) as error:
        submit(document, name="req")
    assert error.value.code == code
    assert writer.versions == 0 and not world.storage.objects


def test_since_accepts_times_and_look_backs():
    now = 1_795_515_312.0  # 2026-11-24T10:15:12Z
    assert parse_since("2h", now=now) == "2026-11-24T08:15:12.000Z"
    assert parse_since("7d", now=now) == "2026-11-17T10:15:12.000Z"
    assert parse_since("2026-11-24", now=now) == "2026-11-24T00:00:00.000Z"
    assert parse_since("2026-11-24T10:00:00+02:00", now=now) == "2026-11-24T08:00:00.000Z"
    assert parse_since(None, now=now) is None
    with pytest.raises(InvalidQuery, match="look-back like 30m"):
        parse_since("yesterday", now=now)


def test_public_job_hides_the_callback_secret_hash(world):
    (outcome,) = world.upload(metadata=PROMPT)
    view = public_job(world.jobs.get(outcome.job_id))
    assert "callback_token_hash" not in json.dumps(view)
    assert view["status"] == "SUBMITTED" and view["job_id"] == outcome.job_id
