"""Retry: a job that ended badly (FAILED, TIMED_OUT, REJECTED) is run again as a NEW job.

The original record is never touched (its outcome stays on file). The new job carries the same
inputs and spec, ``retry_of`` (the job retried), ``retry_root`` (the first job of the chain) and
``retry_attempt``; its id is derived from the root and the attempt, so asking twice for the same
retry finds the job the first request created instead of making a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clipedit.domain.errors import ClipeditError
from clipedit.domain.job import Job, JobStatus
from clipedit.domain.keys import retry_job_id
from clipedit.ports import Clock, JobStore, MessageQueue
from clipedit.usecases.common import MESSAGE_KIND, StatusRecorder, iso
from clipedit.usecases.queries import NotFound

RETRYABLE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.REJECTED})
# What a retry reuses: the input and the resolved spec. Not the batch (the batch's counts and
# results describe its rows once), not provider ids, outputs or errors.
COPIED_FIELDS = ("input_bucket", "input_key", "input_version_id", "input_size", "provider", "model", "mode",
                 "prompt", "keep_audio", "video_ref", "image_urls", "elements", "planned_output_key", "tags",
                 "variant", "preset", "framing")
# A long clip's parent keeps its plan and the parts that succeeded (they are not paid for twice).
PARENT_FIELDS = ("long_clip", "stitch_plan", "parts_total", "estimated_seconds", "estimated_units")


class NotRetryable(ClipeditError):
    code = "NOT_RETRYABLE"


@dataclass(frozen=True)
class RetryOutcome:
    job_id: str
    retry_of: str
    attempt: int
    created: bool  # False when this retry had been asked for before

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "retry_of": self.retry_of, "attempt": self.attempt, "created": self.created}


class RetryJob:
    def __init__(self, *, jobs: JobStore, queue: MessageQueue, recorder: StatusRecorder, clock: Clock) -> None:
        self._jobs = jobs
        self._queue = queue
        self._recorder = recorder
        self._clock = clock

    def __call__(self, job_id: str) -> RetryOutcome:
        original = self._jobs.get(job_id)
        if original is None:
            raise NotFound(f"no job {job_id!r}")
        if original.status not in RETRYABLE_STATUSES:
            allowed = ", ".join(sorted(s.value for s in RETRYABLE_STATUSES))
            raise NotRetryable(f"job {job_id} is {original.status.value}; only {allowed} jobs can be retried")
        if not original.prompt:
            # Rejected before a spec existed (no prompt, unreadable manifest...): the same input
            # would be rejected again. The fix is in the upload itself.
            raise NotRetryable(
                f"job {job_id} was rejected before its edit was resolved ({original.error_code}: "
                f"{original.error_message}); fix the input and upload it again")
        root = str(original.extra.get("retry_root") or original.job_id)
        attempt = int(original.extra.get("retry_attempt") or 0) + 1
        new_id = retry_job_id(root, attempt)
        if original.extra.get("part_job_ids"):
            return self._retry_parent(original, new_id, root, attempt)
        now = iso(self._clock.now())
        job = Job(job_id=new_id, status=JobStatus.RECEIVED, created_at=now, updated_at=now,
                  input_bucket=original.input_bucket, input_key=original.input_key,
                  status_history=[{"status": JobStatus.RECEIVED.value, "at": now}],
                  extra={"retry_of": original.job_id, "retry_root": root, "retry_attempt": attempt})
        for name in COPIED_FIELDS:
            setattr(job, name, getattr(original, name))
        created = self._jobs.create(job)
        if created:
            self._recorder.created(job)
        current = job if created else self._jobs.get(new_id)
        if current is not None and current.status == JobStatus.RECEIVED:
            # Also when it existed: a first request that died between the two steps is completed
            # (submitting is idempotent on the job's status).
            self._queue.send_all([{MESSAGE_KIND: "submit", "job_id": new_id}])
        return RetryOutcome(new_id, original.job_id, attempt, created)

    def _copy(self, original: Job, new_id: str, status: JobStatus, extra: dict[str, Any]) -> Job:
        now = iso(self._clock.now())
        history = [{"status": s.value, "at": now} for s in
                   (JobStatus.RECEIVED, JobStatus.QUEUED, JobStatus.SUBMITTED)[:3 if status == JobStatus.SUBMITTED else 1]]
        job = Job(job_id=new_id, status=status, created_at=now, updated_at=now, input_bucket=original.input_bucket,
                  input_key=original.input_key, status_history=history, extra=extra)
        for name in COPIED_FIELDS:
            setattr(job, name, getattr(original, name))
        return job

    def _retry_parent(self, original: Job, new_id: str, root: str, attempt: int) -> RetryOutcome:
        """A long clip: a new parent over the same plan; parts that succeeded are reused as they are,
        the others are retried as new part jobs (each one new provider task); then the stitch."""
        part_ids: list[str] = []
        for index, old_id in enumerate(original.extra["part_job_ids"]):
            part = self._jobs.get(old_id)
            if part is not None and part.status == JobStatus.SUCCEEDED:
                part_ids.append(old_id)
                continue
            if part is None:
                raise NotRetryable(f"part {old_id} of {original.job_id} is missing; upload the clip again")
            part_root = str(part.extra.get("retry_root") or part.job_id)
            part_attempt = int(part.extra.get("retry_attempt") or 0) + 1
            new_part = self._copy(part, retry_job_id(part_root, part_attempt), JobStatus.RECEIVED, {
                "parent_id": new_id, "part_index": index, "parts_total": len(original.extra["part_job_ids"]),
                "retry_of": part.job_id, "retry_root": part_root, "retry_attempt": part_attempt})
            if self._jobs.create(new_part):
                self._recorder.created(new_part)
            part_ids.append(new_part.job_id)
        extra = {name: original.extra[name] for name in PARENT_FIELDS if original.extra.get(name) is not None}
        parent = self._copy(original, new_id, JobStatus.SUBMITTED, {
            **extra, "part_job_ids": part_ids, "retry_of": original.job_id, "retry_root": root,
            "retry_attempt": attempt})
        parent.prepare, parent.video_facts = original.prepare, original.video_facts
        parent.submitted_at = parent.created_at
        created = self._jobs.create(parent)
        if created:
            self._recorder.created(parent)
        # Also when it existed (a first request that died half way): RECEIVED parts are submitted
        # (idempotent on their status) and the parent looks at its parts (it may stitch at once).
        waiting = [job_id for job_id in part_ids if (self._jobs.get(job_id) or parent).status == JobStatus.RECEIVED]
        self._queue.send_all([{MESSAGE_KIND: "submit", "job_id": job_id} for job_id in waiting]
                             + [{MESSAGE_KIND: "submit", "job_id": new_id}])  # its re-checks chain on this one
        return RetryOutcome(new_id, original.job_id, attempt, created)
