"""Freeing a provider slot when a job ends, and handing it to the longest-waiting job (and, for a
long clip's part, waking its parent).

A job that found the gate full waits on a delayed queue message (up to a few minutes). When a slot
frees, it is handed over: while the ending job still holds it, the oldest job waiting on that
provider's gate is added as a holder (a transfer: the gate is never seen with a free slot in
between), then the ending job lets go, and the heir and the next oldest QUEUED job get an
immediate "wake" message. Without the
hand-over a new upload submitted inline would take the freed slot first, the woken job would find
the gate full again and wait out its delayed message (the 1,000-upload load run measured slot free
-> next waiting job SUBMITTED at p95 125 s that way). A wake that loses the race is dropped: the
job's own delayed message still exists. A job given a slot it no longer needs (cancelled, ended)
frees it again when it ends; the reconcile command frees slots of finished jobs.
"""

from __future__ import annotations

import logging

from clipedit.domain.job import Job, JobStatus
from clipedit.ports import JobStore, MessageQueue, ProviderGuard

WAKE_CANDIDATES = 2  # more than one, so a woken job that no longer needs the slot does not strand it
HANDOVER_CANDIDATES = 10  # the oldest QUEUED jobs looked at for one waiting on the gate
GATE_FULL = "provider slots are in use"


def gate_full_reason(limit: int) -> str:
    """The wait reason a job records when the gate is full (SlotRelease looks for it)."""
    return f"all {limit} {GATE_FULL}"
log = logging.getLogger(__name__)


def submit_message(job_id: str, *, attempt: int = 0, wake: bool = False) -> dict[str, object]:
    body: dict[str, object] = {"clipedit": "submit", "job_id": job_id}
    if attempt:
        body["attempt"] = attempt
    if wake:
        body["wake"] = True
    return body


class SlotRelease:
    def __init__(self, *, guard: ProviderGuard, jobs: JobStore, queue: MessageQueue | None,
                 limit: int | None = None) -> None:
        self._guard = guard
        self._jobs = jobs
        self._queue = queue
        self._limit = limit  # the gate's size; None: wake only, no hand-over

    def __call__(self, job: Job) -> None:
        parent = job.extra.get("parent_id")
        if parent and self._queue is not None:
            # A long clip's part ended: its parent counts its parts (and maybe asks for the stitch).
            # Sent after the part's end is written, so the last part's wake-up sees every end.
            self._queue.send_all([submit_message(str(parent), wake=True)])
        holders = self._guard.slot_holders(job.provider)
        if job.job_id not in holders:
            return  # it never held one (rejected before the gate) or it was released already
        waiting: list[Job] = []
        heir: Job | None = None
        try:
            if self._queue is not None:
                # Looked up while this job still holds its slot: a newcomer submitting meanwhile
                # finds the gate full, so the slot cannot be taken between the release and the
                # hand-over (the lookup is a query: slow enough for that race to be won often).
                queued = [j for j in self._jobs.list_by_status(JobStatus.QUEUED, limit=HANDOVER_CANDIDATES)
                          if j.job_id != job.job_id]
                waiting = queued[:WAKE_CANDIDATES]
                heir = self._hand_over(job, queued, holders)
                if heir is not None and heir not in waiting:
                    waiting = [heir, *waiting[:WAKE_CANDIDATES - 1]]
        except Exception:
            # The waiting jobs' own delayed messages still come back: a lost wake costs minutes, not jobs.
            log.exception("could not hand the slot over", extra={"job_id": job.job_id})
        if not self._guard.release_slot(job.provider, job.job_id) and heir is None:
            return  # released concurrently (a duplicate end): that call woke the waiting jobs
        try:
            if waiting and self._queue is not None:
                self._queue.send_all([submit_message(j.job_id, wake=True) for j in waiting])
        except Exception:
            log.exception("could not wake waiting jobs", extra={"job_id": job.job_id})

    def _hand_over(self, job: Job, queued: list[Job], holders: set[str]) -> Job | None:
        """Move the ending job's slot to the oldest job waiting on this provider's gate, if any:
        one conditional write that holds only while the ending job still has its slot."""
        if self._limit is None:
            return None
        for candidate in queued:
            if (candidate.provider == job.provider and candidate.job_id not in holders
                    and GATE_FULL in (candidate.wait_reason or "")):
                moved = self._guard.transfer_slot(job.provider, job.job_id, candidate.job_id, limit=self._limit)
                return candidate if moved else None
        return None
