"""What the submit function does with each intake message: an S3 upload goes through intake, then
its jobs are submitted (inline when there is one, fanned out through the queue when there are
several); the queue's own messages expand a batch chunk or submit one job."""

from __future__ import annotations

from typing import Any, Mapping

from clipedit.domain.errors import SpecError
from clipedit.ports import MessageQueue
from clipedit.usecases.intake import Intake, UploadedObject
from clipedit.usecases.submit import SubmitJob, SubmitOutcome

MESSAGE_KIND = "clipedit"  # internal messages carry {"clipedit": "submit" | "expand", ...}


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
            return [self._submit_job(str(body["job_id"]))]
        if kind == "expand":
            ids = self._intake.expand_chunk(body)
            self._queue.send_all([{MESSAGE_KIND: "submit", "job_id": job_id} for job_id in ids])
            return [SubmitOutcome(None, "EXPANDED", f"{len(ids)} jobs queued")]
        raise SpecError(f"unknown internal message kind {kind!r}", code="INVALID_MESSAGE")

    def _submit(self, job_ids: list[str]) -> list[SubmitOutcome]:
        if len(job_ids) == 1:
            return [self._submit_job(job_ids[0])]  # the common case: no extra hop, no extra latency
        self._queue.send_all([{MESSAGE_KIND: "submit", "job_id": job_id} for job_id in job_ids])
        return [SubmitOutcome(job_id, "RECEIVED", "queued for submission") for job_id in job_ids]
