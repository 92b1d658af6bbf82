"""Helpers shared by the use cases: time formatting, job events, batch progress."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from clipedit.domain.job import Job, JobStatus, TERMINAL_STATUSES
from clipedit.ports import BatchStore, DocumentStore, EventPublisher, Metrics

JOB_EVENT_SOURCE = "clipedit.jobs"
JOB_EVENT_DETAIL_TYPE = "Job Status Changed"
BATCH_COMPLETED_DETAIL_TYPE = "Batch Completed"
PROVIDER_PAUSED_DETAIL_TYPE = "Provider Paused"
# Error codes that come from the provider (``KLING_1102`` = no balance, ...): counted by code.
PROVIDER_ERROR_PREFIXES = ("KLING_", "FAL_", "PROVIDER_")
log = logging.getLogger(__name__)
# Here rather than beside their main users (dispatch, submit) so that the use cases that only need
# these (retry, review, finalize) do not import the whole intake and submit chain (cold start).
MESSAGE_KIND = "clipedit"  # internal messages carry {"clipedit": "submit" | "expand", ...}


def hash_token(token: str) -> str:
    """Only a hash of the callback token is stored, so the job table never holds the secret."""
    return hashlib.sha256(token.encode()).hexdigest()


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one ``iso`` time to another (None when either is missing)."""
    if not start or not end:
        return None
    return (datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def iso(epoch_seconds: float) -> str:
    """ISO 8601 UTC with milliseconds; fixed width, so strings sort like times."""
    return (
        datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def job_event_detail(job: Job, previous_status: str | None) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "job_id": job.job_id,
        "status": job.status.value,
        "previous_status": previous_status,
        "input_bucket": job.input_bucket,
        "input_key": job.input_key,
        "provider": job.provider,
        "provider_task_id": job.provider_task_id,
        "updated_at": job.updated_at,
    }
    for name in ("output_bucket", "output_key", "output_size", "error_code", "error_message", "batch_id",
                 "batch_row", "variant", "tags"):
        value = getattr(job, name)
        if value is not None:
            detail[name] = value
    if job.extra.get("retry_of"):
        detail["retry_of"] = job.extra["retry_of"]
    for name in ("parent_id", "part_index", "parts_total", "parts_succeeded", "parts_failed"):
        if job.extra.get(name) is not None:  # long clips: a part names its parent; a parent its progress
            detail[name] = job.extra[name]
    return detail


def publish_status(events: EventPublisher, job: Job, previous_status: str | None) -> None:
    """Events notify; the job table is the record of truth. A failed publish is logged, never allowed
    to undo or repeat a status change that is already written."""
    try:
        events.publish(JOB_EVENT_DETAIL_TYPE, job_event_detail(job, previous_status))
    except Exception:
        log.exception("job event not published", extra={"job_id": job.job_id})


RESULTS_HEADER = ["row", "job_id", "status", "output_key", "error_code", "error"]


def results_key_for(batch_key: str) -> str:
    """``batches/spring.csv`` -> ``batches/spring.results.csv``: next to the batch it describes."""
    stem = batch_key.rsplit(".", 1)[0]
    return f"{stem}.results.csv"


class StatusRecorder:
    """Everything that follows a job's status change: the job event, and for batch rows the
    batch's counts, and once every row is terminal, the results file and a batch event."""

    def __init__(
        self,
        *,
        events: EventPublisher,
        batches: BatchStore | None = None,
        documents: DocumentStore | None = None,
        now: Callable[[], str],
        on_terminal: Callable[[Job], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._events = events
        self._batches = batches
        self._documents = documents
        self._now = now
        self._on_terminal = on_terminal
        self._metrics = metrics

    def __call__(self, job: Job, previous_status: str | None) -> None:
        publish_status(self._events, job, previous_status)
        self._measure(job)
        if job.batch_id and self._batches is not None:
            self._count(job, previous_status)
        if job.status in TERMINAL_STATUSES and self._on_terminal is not None:
            self._on_terminal(job)  # frees the job's provider slot and wakes a waiting job

    def provider_paused(self, provider: str, *, kind: str, code: str, reason: str, seconds: int) -> None:
        """The circuit breaker opened: one event per opening (alarms and notifications hang off it)."""
        try:
            self._events.publish(PROVIDER_PAUSED_DETAIL_TYPE, {
                "provider": provider, "kind": kind, "error_code": code, "reason": reason,
                "paused_seconds": seconds, "at": self._now()})
        except Exception:
            log.exception("provider paused event not published", extra={"provider": provider})

    def provider_refused(self, code: str) -> None:
        """A provider refusal that does not end the job (busy, 5xx, account): counted by code, so
        the balance alarm (KLING_1101/1102) fires while jobs wait instead of failing."""
        if self._metrics is None:
            return
        try:
            self._metrics.count("ProviderErrors", dimensions={"code": code})
        except Exception:
            log.exception("provider error metric not recorded", extra={"code": code})

    def created(self, job: Job) -> None:
        """A job record was just created (RECEIVED, or REJECTED at intake): its first event. Batch
        rows are already counted by the batch record they were created with."""
        publish_status(self._events, job, None)
        self._measure(job)

    def _measure(self, job: Job) -> None:
        """Metrics must never break a status change that is already written."""
        if self._metrics is None:
            return
        try:
            if job.status == JobStatus.SUBMITTED:
                latency = seconds_between(job.created_at, job.submitted_at)
                if latency is not None:
                    self._metrics.seconds("SubmitLatency", latency)
            if job.terminal:
                self._metrics.count("JobsFinished", dimensions={"status": job.status.value})
                elapsed = seconds_between(job.created_at, job.finished_at or job.updated_at)
                if elapsed is not None:
                    self._metrics.seconds("TimeToTerminal", elapsed, dimensions={"status": job.status.value})
                if job.error_code and job.error_code.startswith(PROVIDER_ERROR_PREFIXES):
                    self._metrics.count("ProviderErrors", dimensions={"code": job.error_code})
        except Exception:
            log.exception("job metrics not recorded", extra={"job_id": job.job_id})

    def _count(self, job: Job, previous_status: str | None) -> None:
        batch = self._batches.count_transition(job.batch_id, previous_status, job.status.value, now=self._now())
        if job.status in TERMINAL_STATUSES:
            self.complete_if_done(batch)

    def complete_if_done(self, batch: dict[str, Any]) -> None:
        counts = batch.get("counts") or {}
        terminal = sum(int(counts.get(status.value, 0)) for status in TERMINAL_STATUSES)
        if terminal < int(batch.get("total", 0)) or not batch.get("expanded"):
            return
        if batch.get("completed_at"):
            return
        # Results first, then the claim: COMPLETED always means the file exists. Two jobs finishing
        # at once may both write it (same content); only the claim's winner publishes the event.
        self._write_results(batch)
        if not self._batches.claim_completion(batch["batch_id"], now=self._now()):
            return
        try:
            self._events.publish(BATCH_COMPLETED_DETAIL_TYPE, {
                "batch_id": batch["batch_id"], "source_bucket": batch["source_bucket"],
                "source_key": batch["source_key"], "results_key": batch["results_key"],
                "total": int(batch["total"]), "counts": {k: int(v) for k, v in counts.items()},
            })
        except Exception:
            log.exception("batch event not published", extra={"batch_id": batch["batch_id"]})

    def _write_results(self, batch: dict[str, Any]) -> None:
        import csv
        import io

        def rows():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(RESULTS_HEADER)
            for job in self._batches.batch_jobs(batch["batch_id"]):
                writer.writerow([job.batch_row, job.job_id, job.status.value, job.output_key or "",
                                 job.error_code or "", job.error_message or ""])
                if buffer.tell() > 64 * 1024:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

        self._documents.put_text(batch["source_bucket"], batch["results_key"], rows(), content_type="text/csv")


def providers_by_name(providers: Mapping[str, Any] | None, provider: Any | None = None) -> Mapping[str, Any]:
    """The provider adapters by name, kept as given: the composition root passes a lazy registry,
    and copying it into a dict would build every adapter (and its HTTP client) at a cold start.
    ``provider`` (tests pass one adapter) is added under its name unless ``providers`` has it."""
    if provider is None:
        return providers if providers is not None else {}
    return {provider.name: provider, **dict(providers or {})}
