"""Reconcile: find jobs whose record and the provider disagree, or that nothing is moving any more,
and (when asked) repair them through the normal paths.

Read through indexes only (jobs by status), never a scan. Every repair reuses an idempotent path:
a stuck QUEUED/RECEIVED job gets a fresh submit message (which looks its task up before creating
one), a finished-at-the-provider job is finalized exactly as the poller would, and a provider slot
held by a finished job is freed. Running it twice, or while the pipeline runs, is harmless.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from clipedit.domain.errors import ProviderError
from clipedit.domain.job import Job, JobStatus
from clipedit.ports import Clock, EditProvider, JobStore, MessageQueue, ProviderGuard
from clipedit.usecases.backpressure import submit_message
from clipedit.usecases.common import iso
from clipedit.usecases.finalize import FinalizeJob

WAITING_STATUSES = (JobStatus.RECEIVED, JobStatus.QUEUED)
RUNNING_STATUSES = (JobStatus.SUBMITTED, JobStatus.PROCESSING)


@dataclass(frozen=True)
class Finding:
    job_id: str
    status: str  # what the record says
    provider: str | None  # what the provider says (None: not asked / no task)
    problem: str
    repair: str
    repaired: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Reconcile:
    def __init__(self, *, jobs: JobStore, providers: Mapping[str, EditProvider], guard: ProviderGuard,
                 finalize: FinalizeJob, queue: MessageQueue, clock: Clock) -> None:
        self._jobs = jobs
        self._providers = providers
        self._guard = guard
        self._finalize = finalize
        self._queue = queue
        self._clock = clock

    def run(self, *, repair: bool, stale_after_seconds: int = 900, limit: int = 1000) -> list[Finding]:
        """``stale_after_seconds``: how long a job may sit without a write before it counts as stuck
        (longer than any planned wait, so jobs that are merely waiting are left alone)."""
        stale_before = iso(self._clock.now() - stale_after_seconds)
        findings: list[Finding] = []
        for status in RUNNING_STATUSES:
            for job in self._jobs.list_by_status(status, limit=limit):
                finding = self._running(job, stale_before)
                if finding:
                    findings.append(self._apply(finding, job, repair))
        for status in WAITING_STATUSES:
            for job in self._jobs.list_by_status(status, limit=limit):
                finding = self._waiting(job, stale_before)
                if finding:
                    findings.append(self._apply(finding, job, repair))
        findings += self._slots(repair)
        return findings

    # --- checks ------------------------------------------------------------------------------

    def _running(self, job: Job, stale_before: str) -> Finding | None:
        if job.updated_at > stale_before:
            return None  # moving: leave it to the callback and the poller
        if job.extra.get("long_clip"):  # a long clip's parent has no provider task: its parts do
            return Finding(job.job_id, job.status.value, None,
                           f"a long clip waiting for its parts or its stitch since {job.updated_at}",
                           "queue a submit message (the parent counts its parts; asks for a due stitch)")
        if not job.provider_task_id:
            return Finding(job.job_id, job.status.value, None, "running without a provider task id",
                           "finalize now (records the failure or the deadline)")
        try:
            task = self._providers[job.provider].get_task(job.provider_task_id, urls=job.provider_urls)
        except ProviderError as error:
            if error.retryable:
                return Finding(job.job_id, job.status.value, None, f"could not ask the provider: {error.message}",
                               "none (run again later)")
            return Finding(job.job_id, job.status.value, f"error {error.code}",
                           f"the provider does not know task {job.provider_task_id}", "finalize now")
        if task.state.terminal:
            return Finding(job.job_id, job.status.value, task.raw_status or task.state.value,
                           "the provider finished but the record did not", "finalize now (copy the output, record it)")
        if job.deadline_at and iso(self._clock.now()) > job.deadline_at:
            return Finding(job.job_id, job.status.value, task.raw_status or task.state.value,
                           f"past its deadline {job.deadline_at}", "finalize now (records TIMED_OUT)")
        return None

    def _waiting(self, job: Job, stale_before: str) -> Finding | None:
        last_move = max(job.updated_at, job.next_attempt_at or "")
        if last_move > stale_before:
            return None  # a retry is scheduled, or the job just arrived
        found = None
        if job.status == JobStatus.QUEUED and job.submit_attempts:
            try:
                task = self._providers[job.provider].find_by_external_id(job.job_id)
            except ProviderError as error:
                return Finding(job.job_id, job.status.value, None, f"could not ask the provider: {error.message}",
                               "none (run again later)")
            found = f"task {task.task_id} {task.raw_status or task.state.value}" if task else "no task"
        problem = (f"{job.status.value} with no retry scheduled since {last_move}"
                   + (f"; the provider has {found}" if found and found != "no task" else ""))
        return Finding(job.job_id, job.status.value, found, problem,
                       "queue a submit message (adopts an existing task, never creates a second)")

    def _slots(self, repair: bool) -> list[Finding]:
        findings = []
        for provider, job_id in sorted((p, j) for p in self._providers for j in self._guard.slot_holders(p)):
            job = self._jobs.get(job_id)
            if job is not None and not job.terminal:
                continue
            finding = Finding(job_id, job.status.value if job else "MISSING", None,
                              f"holds a {provider} slot but is finished", "free the slot")
            if repair:
                self._guard.release_slot(provider, job_id)
                finding = Finding(**{**finding.as_dict(), "repaired": True})
            findings.append(finding)
        return findings

    # --- repairs -----------------------------------------------------------------------------

    def _apply(self, finding: Finding, job: Job, repair: bool) -> Finding:
        if not repair or finding.repair.startswith("none"):
            return finding
        if job.status in RUNNING_STATUSES and job.extra.get("long_clip"):
            self._queue.send_all([submit_message(job.job_id, attempt=1)])
        elif job.status in RUNNING_STATUSES:
            if finding.provider and finding.provider.startswith("error "):
                self._finalize.end(job.job_id, JobStatus.FAILED, "PROVIDER_TASK_MISSING",
                                   f"the provider has no task {job.provider_task_id}", source="reconcile")
            else:
                outcome = self._finalize.on_poll(job.job_id)
                if not outcome.terminal and job.deadline_at and iso(self._clock.now()) > job.deadline_at:
                    self._finalize.expire(job.job_id, "reconcile: past the deadline")
        else:
            self._queue.send_all([submit_message(job.job_id, attempt=1)])
        return Finding(**{**finding.as_dict(), "repaired": True})


def summarize(findings: list[Finding]) -> dict[str, Any]:
    return {"findings": len(findings), "repaired": sum(f.repaired for f in findings),
            "by_status": {s: sum(f.status == s for f in findings) for s in sorted({f.status for f in findings})}}

