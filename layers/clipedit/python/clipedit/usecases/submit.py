"""Submit: an uploaded clip becomes one job and at most one provider task.

Idempotent by construction: the job id is derived from the object version, the job record is
created with a conditional put, and every later step resumes from what the record says was done.
Redelivering the same S3 event therefore never creates a second job or a second provider task.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from typing import Callable
from urllib.parse import quote

from clipedit.domain.errors import MediaRejected, ProviderError, RetryLater, SpecError
from clipedit.domain.job import Job, JobStatus, ObjectRef
from clipedit.domain.keys import is_video_key, job_id_for
from clipedit.domain.spec import EditSpec, SpecDefaults, spec_from_metadata
from clipedit.ports import (
    Clock,
    EditProvider,
    EditRequest,
    EventPublisher,
    JobStore,
    ObjectStore,
    Workflow,
)
from clipedit.usecases.common import iso, publish_status

MAX_INPUT_BYTES = 200 * 1024 * 1024  # provider limit for the input clip


@dataclass(frozen=True)
class SubmitSettings:
    callback_base_url: str | None
    presign_ttl_seconds: int
    poll_interval_seconds: int
    job_deadline_seconds: int
    defaults: SpecDefaults


@dataclass(frozen=True)
class UploadedObject:
    """What an S3 ObjectCreated notification tells us about one upload."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    sequencer: str | None
    size: int | None

    @property
    def version(self) -> str:
        # A versioned bucket names every upload; otherwise ETag + sequencer still tell two uploads
        # of the same key apart while a redelivered event keeps both.
        return self.version_id or f"{self.etag}:{self.sequencer}"


@dataclass(frozen=True)
class SubmitOutcome:
    job_id: str | None
    status: str
    detail: str = ""


def hash_token(token: str) -> str:
    """Only a hash of the callback token is stored, so the job table never holds the secret."""
    return hashlib.sha256(token.encode()).hexdigest()


class SubmitClip:
    def __init__(
        self,
        *,
        jobs: JobStore,
        storage: ObjectStore,
        provider: EditProvider,
        workflow: Workflow,
        events: EventPublisher,
        clock: Clock,
        settings: SubmitSettings,
        new_token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:
        self._jobs = jobs
        self._storage = storage
        self._provider = provider
        self._workflow = workflow
        self._events = events
        self._clock = clock
        self._settings = settings
        self._new_token = new_token

    def __call__(self, upload: UploadedObject) -> SubmitOutcome:
        if not is_video_key(upload.key):
            return SubmitOutcome(None, "IGNORED", "not an .mp4/.mov key")
        if upload.version_id is None and upload.sequencer is None:
            # An event without a version or sequencer (some S3-compatible stores): ask S3 for the
            # version instead of naming the job after the ETag alone.
            upload = replace(upload, version_id=self._storage.head(ObjectRef(upload.bucket, upload.key)).version_id)
        job_id = job_id_for(upload.bucket, upload.key, upload.version)
        job = self._receive(job_id, upload)
        if job.status == JobStatus.RECEIVED:
            job = self._validate(job)
        if job.status == JobStatus.QUEUED:
            job = self._submit_to_provider(job)
        if job.status in (JobStatus.SUBMITTED, JobStatus.PROCESSING):
            # Named after the job: a redelivered message finds the execution already there.
            self._workflow.start_poller(
                job.job_id, poll_interval_seconds=self._settings.poll_interval_seconds
            )
        return SubmitOutcome(job.job_id, job.status.value)

    # --- steps ------------------------------------------------------------------------------

    def _receive(self, job_id: str, upload: UploadedObject) -> Job:
        now = iso(self._clock.now())
        job = Job(
            job_id=job_id,
            status=JobStatus.RECEIVED,
            input_bucket=upload.bucket,
            input_key=upload.key,
            input_version_id=upload.version_id,
            input_size=upload.size,
            provider=self._provider.name,
            created_at=now,
            updated_at=now,
            status_history=[{"status": JobStatus.RECEIVED.value, "at": now}],
        )
        if self._jobs.create(job):
            return job
        existing = self._jobs.get(job_id)
        if existing is None:  # pragma: no cover - created then deleted between two calls
            raise RetryLater(f"job {job_id} vanished while being created")
        return existing

    def _validate(self, job: Job) -> Job:
        try:
            info = self._storage.head(job.input)
            spec = spec_from_metadata(info.metadata, self._settings.defaults)
            if info.size > MAX_INPUT_BYTES:
                raise MediaRejected(
                    f"the clip is {info.size / 1e6:.1f} MB; the provider accepts at most 200 MB",
                    code="CLIP_TOO_LARGE",
                )
            if info.size == 0:
                raise MediaRejected("the clip is empty (0 bytes)", code="EMPTY_CLIP")
        except (SpecError, MediaRejected) as problem:
            return self._move(
                job,
                JobStatus.REJECTED,
                error_code=problem.code,
                error_message=problem.message,
                finished_at=iso(self._clock.now()),
            )
        return self._move(
            job,
            JobStatus.QUEUED,
            prompt=spec.prompt,
            mode=spec.mode.value,
            model=spec.model.value,
            keep_audio=spec.keep_audio,
            input_size=info.size,
        )

    def _submit_to_provider(self, job: Job) -> Job:
        token = self._new_token()
        request = EditRequest(
            external_id=job.job_id,
            prompt=job.prompt or "",
            video_url=self._storage.presign_get(job.input, self._settings.presign_ttl_seconds),
            model=job.model or self._settings.defaults.model.value,
            mode=job.mode or self._settings.defaults.mode.value,
            keep_audio=True if job.keep_audio is None else job.keep_audio,
            callback_url=self._callback_url(job.job_id, token),
        )
        try:
            task = self._provider.submit(request)
        except ProviderError as error:
            if error.retryable:
                # Leave the job QUEUED and the message on the queue: SQS redelivers it later.
                raise RetryLater(f"provider busy or unavailable: {error.message}") from error
            if error.provider_code == 1201 and "already exists" in error.message.lower():
                # An earlier attempt created the task but we never recorded it: adopt it.
                task = self._provider.find_by_external_id(job.job_id)
                if task is None:
                    raise RetryLater("provider says the task exists but cannot find it yet") from error
                # The token of that attempt is lost; the poller finishes this job instead.
                token = ""
            else:
                return self._move(
                    job,
                    JobStatus.FAILED,
                    error_code=error.code,
                    error_message=error.message,
                    finished_at=iso(self._clock.now()),
                )
        now = self._clock.now()
        return self._move(
            job,
            JobStatus.SUBMITTED,
            provider_task_id=task.task_id,
            callback_token_hash=hash_token(token) if token else None,
            submitted_at=iso(now),
            deadline_at=iso(now + self._settings.job_deadline_seconds),
        )

    # --- helpers ----------------------------------------------------------------------------

    def _callback_url(self, job_id: str, token: str) -> str | None:
        base = self._settings.callback_base_url
        if not base:
            return None
        return f"{base.rstrip('/')}/callbacks/{self._provider.name}/{quote(job_id)}?token={quote(token)}"

    def _move(self, job: Job, target: JobStatus, **fields: object) -> Job:
        updated = self._jobs.transition(
            job.job_id, target, now=iso(self._clock.now()), fields=fields
        )
        if updated is None:
            # Someone else moved the job first (a concurrent delivery): carry on from its state.
            current = self._jobs.get(job.job_id)
            if current is None:  # pragma: no cover
                raise RetryLater(f"job {job.job_id} disappeared")
            return current
        publish_status(self._events, updated, job.status.value)
        return updated
