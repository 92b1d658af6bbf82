"""What the submit function does with each intake message: an S3 upload goes through intake, then
its jobs are submitted (inline when there is one, fanned out through the queue when there are
several); the queue's own messages expand a batch chunk or submit one job.

A job that must wait (gate full, provider throttling or paused, elements being created) gets a new
delayed message carrying its attempt number, and the current one is acknowledged. Waiting therefore
never counts towards the queue's maxReceiveCount: only real failures lead to the DLQ.
"""

from __future__ import annotations

from typing import Any, Mapping

from clipedit.domain.errors import RetryLater, SpecError
from clipedit.domain.uploads import UploadedObject
from clipedit.ports import MessageQueue
from clipedit.usecases.backpressure import submit_message
from clipedit.usecases.common import MESSAGE_KIND  # defined in common; still importable from here
from clipedit.usecases.intake import Intake
from clipedit.usecases.submit import SubmitJob, SubmitOutcome


class IntakeDispatcher:
    def __init__(self, *, intake: Intake, submit_job: SubmitJob, queue: MessageQueue) -> None:
        self._intake = intake
        self._submit_job = submit_job
        self._queue = queue

    def upload(self, upload: UploadedObject) -> list[SubmitOutcome]:
        result = self._intake.upload(upload)
        if result.kind == "ignored":
            return [SubmitOutcome(None, "IGNORED", result.detail)]
        return self._submit(result.job_ids) or [SubmitOutcome(None, result.kind.upper(), result.detail)]

    def message(self, body: Mapping[str, Any]) -> list[SubmitOutcome]:
        kind = body.get(MESSAGE_KIND)
        if kind == "submit":
            return [self._submit_one(str(body["job_id"]), attempt=int(body.get("attempt") or 0),
                                     wake=bool(body.get("wake")))]
        if kind == "expand":
            ids = self._intake.expand_chunk(body)
            self._queue.send_all([submit_message(job_id) for job_id in ids])
            return [SubmitOutcome(None, "EXPANDED", f"{len(ids)} jobs queued")]
        raise SpecError(f"unknown internal message kind {kind!r}", code="INVALID_MESSAGE")

    def _submit(self, job_ids: list[str]) -> list[SubmitOutcome]:
        if len(job_ids) == 1:
            return [self._submit_one(job_ids[0])]  # the common case: no extra hop, no extra latency
        self._queue.send_all([submit_message(job_id) for job_id in job_ids])
        return [SubmitOutcome(job_id, "RECEIVED", "queued for submission") for job_id in job_ids]

    def _submit_one(self, job_id: str, *, attempt: int = 0, wake: bool = False) -> SubmitOutcome:
        try:
            return self._submit_job(job_id, attempt=attempt)
        except RetryLater as wait:
            if wait.delay_seconds is None:
                raise  # not a planned wait: the message comes back after its visibility timeout
            if not wake:
                # The new message is sent before this one is acknowledged: a crash in between
                # leaves two, never none (a duplicate submit message is harmless).
                self._queue.send_all([submit_message(job_id, attempt=attempt + 1)], delay_seconds=wait.delay_seconds)
            return SubmitOutcome(job_id, "WAITING", f"{wait.message} (next try in {wait.delay_seconds} s)")
