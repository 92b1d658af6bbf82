"""Freeing a provider slot when a job ends, and handing it to the longest-waiting job (and, for a
long clip's part, waking its parent).

A job that found the gate full waits on a delayed queue message (up to a few minutes); when a slot
frees, the oldest QUEUED jobs get an immediate "wake" message, so slots do not sit idle. A wake
that loses the race is dropped: the job's own delayed message still exists.
"""

from __future__ import annotations

import logging

from clipedit.domain.job import Job, JobStatus
from clipedit.ports import JobStore, MessageQueue, ProviderGuard

WAKE_CANDIDATES = 2  # more than one, so a woken job that no longer needs the slot does not strand it
log = logging.getLogger(__name__)


def submit_message(job_id: str, *, attempt: int = 0, wake: bool = False) -> dict[str, object]:
    body: dict[str, object] = {"clipedit": "submit", "job_id": job_id}
    if attempt:
        body["attempt"] = attempt
    if wake:
        body["wake"] = True
    return body


class SlotRelease:
    def __init__(self, *, guard: ProviderGuard, jobs: JobStore, queue: MessageQueue | None) -> None:
        self._guard = guard
        self._jobs = jobs
        self._queue = queue

    def __call__(self, job: Job) -> None:
        parent = job.extra.get("parent_id")
        if parent and self._queue is not None:
            # A long clip's part ended: its parent counts its parts (and maybe asks for the stitch).
            # Sent after the part's end is written, so the last part's wake-up sees every end.
            self._queue.send_all([submit_message(str(parent), wake=True)])
        if not self._guard.release_slot(job.provider, job.job_id):
            return  # it never held one (rejected before the gate) or it was released already
        if self._queue is None:
            return
        try:
            waiting = [j for j in self._jobs.list_by_status(JobStatus.QUEUED, limit=WAKE_CANDIDATES)
                       if j.job_id != job.job_id]
            if waiting:
                self._queue.send_all([submit_message(j.job_id, wake=True) for j in waiting])
        except Exception:
            # The waiting jobs' own delayed messages still come back: a lost wake costs minutes, not jobs.
            log.exception("could not wake waiting jobs", extra={"job_id": job.job_id})
