"""Small helpers shared by the use cases: time formatting and job events."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from clipedit.domain.job import Job
from clipedit.ports import EventPublisher

JOB_EVENT_SOURCE = "clipedit.jobs"
JOB_EVENT_DETAIL_TYPE = "Job Status Changed"


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
    for name in ("output_bucket", "output_key", "output_size", "error_code", "error_message"):
        value = getattr(job, name)
        if value is not None:
            detail[name] = value
    return detail


def publish_status(events: EventPublisher, job: Job, previous_status: str | None) -> None:
    """Events notify; the job table is the record of truth. A failed publish is logged, never allowed
    to undo or repeat a status change that is already written."""
    try:
        events.publish(JOB_EVENT_DETAIL_TYPE, job_event_detail(job, previous_status))
    except Exception:
        logging.getLogger(__name__).exception("job event not published", extra={"job_id": job.job_id})
