"""The job: one edit of one input clip, and its one-way lifecycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    RECEIVED = "RECEIVED"  # the upload was seen and a job record exists
    REJECTED = "REJECTED"  # the request or the clip is unusable; the provider was never called
    QUEUED = "QUEUED"  # validated, waiting to be sent to the provider
    SUBMITTED = "SUBMITTED"  # the provider accepted the task
    PROCESSING = "PROCESSING"  # the provider reports it is working on it
    SUCCEEDED = "SUCCEEDED"  # the edited clip is in the outputs bucket
    FAILED = "FAILED"  # the provider failed the task or refused it for good
    TIMED_OUT = "TIMED_OUT"  # no result before the job's deadline
    CANCELLED = "CANCELLED"  # cancelled on request (and at the provider, when it had the task)

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.REJECTED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.CANCELLED}
)

# Forward-only lifecycle. Every write names the statuses it may start from, so a stale or duplicate
# writer (a late callback, a redelivered message) can never move a job backwards.
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.RECEIVED: frozenset({JobStatus.QUEUED, JobStatus.REJECTED, JobStatus.FAILED}),
    # QUEUED -> TIMED_OUT: the provider stayed busy or unavailable past the queue wait limit.
    JobStatus.QUEUED: frozenset(
        {JobStatus.SUBMITTED, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.TIMED_OUT, JobStatus.CANCELLED}
    ),
    JobStatus.SUBMITTED: frozenset(
        {JobStatus.PROCESSING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.CANCELLED}
    ),
    JobStatus.PROCESSING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.CANCELLED}
    ),
}


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """The statuses a job may be in for a move to ``target`` to be legal."""
    return frozenset(src for src, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in ALLOWED_TRANSITIONS.get(current, frozenset())


@dataclass(frozen=True)
class ObjectRef:
    """One version of one S3 object."""

    bucket: str
    key: str
    version_id: str | None = None


@dataclass
class Job:
    job_id: str
    status: JobStatus
    input_bucket: str
    input_key: str
    created_at: str
    updated_at: str
    input_version_id: str | None = None
    input_size: int | None = None
    provider: str = "kling"
    model: str | None = None
    mode: str | None = None
    prompt: str | None = None
    keep_audio: bool | None = None
    provider_task_id: str | None = None
    # fal: the endpoint id the request went to and the queue URLs its submit answer gave
    # (status_url, response_url, cancel_url); fal asks clients to keep these rather than build them.
    provider_endpoint: str | None = None
    provider_urls: dict[str, str] | None = None
    # The last signed callback refused although its token was right (time and reason): a fal key
    # rotation, a wrong fal_user_id or a clock far off shows up here, not only in the logs.
    callback_rejected: str | None = None
    callback_token_hash: str | None = None
    deadline_at: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    finalized_by: str | None = None  # "callback" or "poller": which door finished the job
    output_bucket: str | None = None
    output_key: str | None = None
    output_size: int | None = None
    output_duration_seconds: float | None = None
    provider_units: str | None = None
    # What the edit cost in USD, and where the figure comes from (clipedit.domain.pricing).
    cost_usd: float | None = None
    cost_source: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    # While QUEUED: why the job is waiting and when it is tried next (backpressure, elements), and
    # how many provider submissions were attempted (after one, the task is looked up first).
    wait_reason: str | None = None
    next_attempt_at: str | None = None
    submit_attempts: int | None = None
    # What to edit and with what (issue "specs"): the video may differ from the uploaded object
    # (a manifest or a batch row names it); references are stored as s3:// or https:// strings.
    video_ref: str | None = None
    image_urls: list[str] | None = None
    elements: list[dict[str, Any]] | None = None
    element_ids: list[str] | None = None
    planned_output_key: str | None = None
    tags: dict[str, str] | None = None
    variant: str | None = None
    preset: str | None = None
    batch_id: str | None = None
    batch_row: int | None = None
    video_facts: dict[str, Any] | None = None
    # Platform variants: the framing fields as asked (platform, aspect_ratio, reframe, focus, trim,
    # normalize, video_mode, duration, shot_type), and what the prepare step did to the clip
    # before the edit (the plan, its status, the prepared clip's key and facts).
    framing: dict[str, Any] | None = None
    prepare: dict[str, Any] | None = None
    # A person's verdict on the output (clipedit.domain.review): approved or rejected, why, when, who.
    review_status: str | None = None
    review_note: str | None = None
    reviewed_at: str | None = None
    reviewed_by: str | None = None
    status_history: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    @property
    def input(self) -> ObjectRef:
        return ObjectRef(self.input_bucket, self.input_key, self.input_version_id)

    @property
    def is_long_clip_parent(self) -> bool:
        return bool(self.extra.get("long_clip"))

    @property
    def long_clip_part_ids(self) -> list[str]:
        """A long clip's parts, once planned (empty for any other job)."""
        return list(self.extra.get("part_job_ids") or [])
