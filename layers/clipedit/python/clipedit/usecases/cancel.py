"""Cancel: stop a job that has not finished, and its provider request when the provider can.

- QUEUED (the provider was never called, or the call is in flight): cancelled here; if a submit
  was racing us, it sees CANCELLED when it records the task and cancels that at the provider.
- SUBMITTED / PROCESSING: the provider is asked first. fal cancels (a queued request never runs;
  a running one stops being billed); Kling's API has no cancel, so a Kling job the provider already
  has cannot be cancelled and the caller is told so. If the provider says the request already
  completed, the job is left to finish normally.
- A long clip's parent: the parent is cancelled, then every unfinished part as above; a part not
  yet sent is cancelled by submit when it sees the parent cancelled. Parts a provider without cancel
  already has finish and are billed; the outcome lists each part.
- Terminal jobs are left as they are. CANCELLED is terminal: finalize never moves a cancelled job
  again, so a late webhook or poll cannot bring it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from clipedit.domain.errors import ClipeditError
from clipedit.domain.job import TERMINAL_STATUSES, JobStatus
from clipedit.ports import CancellableProvider, Clock, EditProvider, JobStore
from clipedit.usecases.common import StatusRecorder, iso, providers_by_name

CANCELLED_CODE = "CANCELLED"
TERMINAL_VALUES = frozenset(status.value for status in TERMINAL_STATUSES)


class CancelRefused(ClipeditError):
    """The job cannot be cancelled (finished, unknown, or its provider has no cancel); ``message``
    says why and what to do."""

    code = "CANCEL_REFUSED"


@dataclass(frozen=True)
class CancelOutcome:
    job_id: str
    status: str  # the job's status after the call
    provider_cancelled: bool  # the provider confirmed it will not run (or bill) the request further
    detail: str = ""
    parts: tuple[dict[str, str], ...] = field(default=())  # a long clip's parts: job_id, status, detail

    def as_dict(self) -> dict[str, object]:
        shown: dict[str, object] = {"job_id": self.job_id, "status": self.status,
                                    "provider_cancelled": self.provider_cancelled, "detail": self.detail}
        if self.parts:
            shown["parts"] = [dict(part) for part in self.parts]
        return shown


class CancelJob:
    def __init__(self, *, jobs: JobStore, providers: Mapping[str, EditProvider], recorder: StatusRecorder,
                 clock: Clock) -> None:
        self._jobs = jobs
        self._providers = providers_by_name(providers)
        self._recorder = recorder
        self._clock = clock

    def __call__(self, job_id: str, *, reason: str = "cancelled on request") -> CancelOutcome:
        job = self._jobs.get(job_id)
        if job is None:
            raise CancelRefused(f"no job {job_id}", code="JOB_NOT_FOUND")
        if job.terminal:
            raise CancelRefused(f"job {job_id} is already {job.status.value}; only unfinished jobs can be cancelled",
                                code="JOB_ALREADY_FINISHED")
        if job.status == JobStatus.RECEIVED:
            raise CancelRefused(f"job {job_id} is still being checked (RECEIVED); try again in a moment",
                                code="JOB_NOT_READY")
        provider_cancelled = False
        if job.provider_task_id:
            provider = self._providers.get(job.provider)
            if not isinstance(provider, CancellableProvider):
                raise CancelRefused(
                    f"cancelling is not supported by provider {job.provider}: its API has no cancel, and task "
                    f"{job.provider_task_id} is already with it (the job will finish and be billed as usual)",
                    code="CANCEL_NOT_SUPPORTED",
                )
            answer = provider.cancel(job.provider_task_id, urls=job.provider_urls)
            if answer == "completed":
                raise CancelRefused(f"{job.provider} already completed request {job.provider_task_id}; the job "
                                    "finishes normally", code="JOB_ALREADY_FINISHED")
            provider_cancelled = answer == "cancelled"
        now = iso(self._clock.now())
        # require_no_lease: a finalize copying the result right now wins; the job then SUCCEEDS.
        updated = self._jobs.transition(job_id, JobStatus.CANCELLED, now=now, require_no_lease=True, fields={
            "error_code": CANCELLED_CODE, "error_message": reason, "finished_at": now})
        if updated is None:
            current = self._jobs.get(job_id)
            status = current.status.value if current else "UNKNOWN"
            raise CancelRefused(f"job {job_id} moved on to {status} while being cancelled", code="JOB_MOVED_ON")
        self._recorder(updated, job.status.value)
        if job.is_long_clip_parent:
            parts = tuple(self._cancel_part(part_id, job_id) for part_id in job.long_clip_part_ids)
            return CancelOutcome(job_id, updated.status.value, False, parts_summary(parts), parts)
        detail = "cancelled at the provider" if provider_cancelled else "cancelled before the provider ran it"
        return CancelOutcome(job_id, updated.status.value, provider_cancelled, detail)

    def _cancel_part(self, part_id: str, parent_id: str) -> dict[str, str]:
        """One part, as far as its provider allows; a refusal is reported, never raised."""
        try:
            outcome = self(part_id, reason=f"its long clip {parent_id} was cancelled")
            return {"job_id": part_id, "status": outcome.status, "detail": outcome.detail}
        except CancelRefused as refused:
            current = self._jobs.get(part_id)
            return {"job_id": part_id, "status": current.status.value if current else "UNKNOWN",
                    "detail": f"{refused.code}: {refused.message}"}


def parts_summary(parts: tuple[dict[str, str], ...]) -> str:
    cancelled = sum(1 for part in parts if part["status"] == JobStatus.CANCELLED.value)
    ended = sum(1 for part in parts if part["status"] in TERMINAL_VALUES) - cancelled
    unchecked = sum(1 for part in parts if part["status"] == JobStatus.RECEIVED.value)
    running = len(parts) - cancelled - ended - unchecked
    said = [f"{cancelled} of {len(parts)} parts cancelled"]
    if ended:
        said.append(f"{ended} had already ended")
    if unchecked:
        said.append(f"{unchecked} still being checked will be cancelled before they are sent")
    if running:
        said.append(f"{running} already with a provider that cannot cancel will finish and be billed")
    return "cancelled the long clip; " + ", ".join(said) if parts else "cancelled before its parts were planned"
