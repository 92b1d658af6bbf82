"""Review a finished edit, and make a new edit from one: try again with another prompt or mode,
or promote a ``std`` draft to ``pro``. Shared by the status API, the command line and the review
page, so each of them records the same fields and publishes the same event."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from clipedit.domain.errors import ClipeditError, SpecError
from clipedit.domain.job import Job, JobStatus
from clipedit.domain.prompt import check_references
from clipedit.domain.review import Review
from clipedit.domain.spec import MAX_PROMPT_CHARS, Mode
from clipedit.ports import Clock, EventPublisher, JobStore, MessageQueue
from clipedit.usecases.common import MESSAGE_KIND, StatusRecorder, iso
from clipedit.usecases.queries import NotFound
from clipedit.usecases.retry import COPIED_FIELDS

log = logging.getLogger(__name__)
JOB_REVIEWED_DETAIL_TYPE = "Job Reviewed"
MAX_REVIEWER_CHARS = 256


class NotReviewable(ClipeditError):
    code = "NOT_REVIEWABLE"


def review_event_detail(job: Job) -> dict[str, Any]:
    detail = {"job_id": job.job_id, "review_status": job.review_status, "reviewed_at": job.reviewed_at,
              "reviewed_by": job.reviewed_by, "status": job.status.value, "provider": job.provider,
              "mode": job.mode, "output_bucket": job.output_bucket, "output_key": job.output_key,
              "batch_id": job.batch_id, "batch_row": job.batch_row, "review_note": job.review_note,
              "tags": job.tags}
    return {k: v for k, v in detail.items() if v is not None}


class ReviewJob:
    def __init__(self, *, jobs: JobStore, events: EventPublisher, clock: Clock) -> None:
        self._jobs = jobs
        self._events = events
        self._clock = clock

    def __call__(self, job_id: str, review: Review, *, reviewer: str) -> Job:
        job = self._jobs.get(job_id) if job_id.startswith("j-") else None
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if job.status != JobStatus.SUCCEEDED:
            raise NotReviewable(f"job {job_id} is {job.status.value}; only a SUCCEEDED job has an edited clip to review")
        fields = {"review_status": review.status.value, "review_note": review.note,
                  "reviewed_at": iso(self._clock.now()), "reviewed_by": reviewer[:MAX_REVIEWER_CHARS]}
        if not self._jobs.set_fields(job_id, expected=JobStatus.SUCCEEDED, fields=fields):
            raise NotReviewable(f"job {job_id} changed while it was being reviewed; look at it again")
        for name, value in fields.items():
            setattr(job, name, value)
        try:
            self._events.publish(JOB_REVIEWED_DETAIL_TYPE, review_event_detail(job))
        except Exception:  # the record is the truth; an event is a notification
            log.exception("job reviewed event not published", extra={"job_id": job_id})
        return job


@dataclass(frozen=True)
class Revision:
    job_id: str
    revision_of: str
    mode: str
    prompt: str
    created: bool

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "retry_of": self.revision_of, "mode": self.mode, "prompt": self.prompt,
                "created": self.created}


class ReviseJob:
    """A new job from a finished one, with the same inputs and spec except the prompt and/or mode:
    **Try again** (any finished job, edited prompt or mode) and **Promote to pro** (mode ``pro``).
    The new job records ``retry_of``; its id is derived from the original and the change, so
    asking twice for the same change finds the first job instead of paying twice. Its output goes
    to its own key, so the original's output is never overwritten."""

    def __init__(self, *, jobs: JobStore, queue: MessageQueue, recorder: StatusRecorder, clock: Clock) -> None:
        self._jobs = jobs
        self._queue = queue
        self._recorder = recorder
        self._clock = clock

    def __call__(self, job_id: str, *, prompt: str | None = None, mode: str | None = None,
                 how: str = "try_again") -> Revision:
        original = self._jobs.get(job_id) if job_id.startswith("j-") else None
        if original is None:
            raise NotFound(f"no job {job_id!r}")
        if not original.terminal:
            raise NotReviewable(f"job {job_id} is {original.status.value}; wait for it to finish first")
        if not original.prompt:
            raise NotReviewable(f"job {job_id} was rejected before its edit was resolved ({original.error_code}); "
                                "fix the input and upload it again")
        new_prompt = (prompt if prompt is not None else original.prompt).strip()
        if not new_prompt:
            raise SpecError("the prompt is empty", code="MISSING_PROMPT")
        if len(new_prompt) > MAX_PROMPT_CHARS:
            raise SpecError(f"the prompt is {len(new_prompt)} characters; at most {MAX_PROMPT_CHARS}",
                            code="PROMPT_TOO_LONG")
        check_references(new_prompt, image_count=len(original.image_urls or []),
                         element_count=len(original.elements or []))
        new_mode = (mode or original.mode or "pro").strip().lower()
        if new_mode not in {m.value for m in Mode}:
            raise SpecError(f"mode must be std or pro; got {mode!r}", code="INVALID_MODE")
        change = hashlib.sha256(f"{original.job_id}\n{new_mode}\n{new_prompt}".encode()).hexdigest()[:32]
        new_id = f"j-{change}"
        now = iso(self._clock.now())
        job = Job(job_id=new_id, status=JobStatus.RECEIVED, created_at=now, updated_at=now,
                  input_bucket=original.input_bucket, input_key=original.input_key,
                  status_history=[{"status": JobStatus.RECEIVED.value, "at": now}],
                  extra={"retry_of": original.job_id, "revision": how})
        for name in COPIED_FIELDS:
            setattr(job, name, getattr(original, name))
        job.framing = original.framing
        job.prompt, job.mode = new_prompt, new_mode
        job.planned_output_key = _revision_output_key(original, new_id)
        created = self._jobs.create(job)
        if created:
            self._recorder.created(job)
        current = job if created else self._jobs.get(new_id)
        if current is not None and current.status == JobStatus.RECEIVED:
            self._queue.send_all([{MESSAGE_KIND: "submit", "job_id": new_id}])
        return Revision(new_id, original.job_id, new_mode, new_prompt, created)

    def promote(self, job_id: str) -> Revision:
        """The same spec in ``pro`` mode: the std-draft-then-pro workflow the model's docs recommend."""
        original = self._jobs.get(job_id) if job_id.startswith("j-") else None
        if original is not None and (original.mode or "pro") == Mode.PRO.value:
            raise NotReviewable(f"job {job_id} is already a pro edit; use Try again to change it")
        return self(job_id, mode=Mode.PRO.value, how="promote")


def _revision_output_key(original: Job, new_id: str) -> str | None:
    """``edited/a/clip.mp4`` -> ``edited/a/clip.<new id>.mp4``: next to the original, never over it."""
    key = original.output_key or original.planned_output_key
    if not key:
        return None  # the pipeline derives one from the input key, as for the original
    path = PurePosixPath(key)
    return str(path.with_name(f"{path.stem}.{new_id[2:14]}{path.suffix or '.mp4'}"))
