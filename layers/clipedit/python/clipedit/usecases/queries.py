"""Reading jobs and batches back: one job, pages of jobs by status/time or by batch, one batch.

Shared by the status API and the command line, so both answer the same way. Every list is served
by an index (by-status, by-batch); a page position travels as an opaque cursor that is bound to
the filters it was made for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from clipedit.domain.errors import ClipeditError
from clipedit.domain.job import Job, JobStatus, TERMINAL_STATUSES
from clipedit.ports import BatchStore, JobIndex, JobStore
from clipedit.usecases.common import iso

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# Never shown outside the table: the callback secret's hash and the finalize lease.
PRIVATE_FIELDS = frozenset({"callback_token_hash", "finalize_lease_owner", "finalize_lease_until"})
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class NotFound(ClipeditError):
    code = "NOT_FOUND"


class InvalidQuery(ClipeditError):
    code = "INVALID_QUERY"


def public_job(job: Job) -> dict[str, Any]:
    """The job as users see it (API, CLI, JSON output): every field that is set, no secrets."""
    fields: dict[str, Any] = {}
    for name, value in vars(job).items():
        if name == "extra":
            continue
        if value is None or name in PRIVATE_FIELDS:
            continue
        fields[name] = value.value if isinstance(value, JobStatus) else value
    for name, value in job.extra.items():
        if value is not None and name not in PRIVATE_FIELDS:
            fields[name] = value
    return fields


def public_batch(batch: dict[str, Any]) -> dict[str, Any]:
    counts = {k: int(v) for k, v in (batch.get("counts") or {}).items() if int(v)}
    total = int(batch.get("total", 0))
    terminal = sum(counts.get(s.value, 0) for s in TERMINAL_STATUSES)
    view = {k: v for k, v in batch.items() if k not in ("job_id", "chunks_done", "chunks_total", "counts")}
    return {**view, "total": total, "counts": counts, "terminal": terminal,
            "done": batch.get("batch_status") == "COMPLETED"}


def parse_since(value: str | None, *, now: float) -> str | None:
    """``2026-11-24``, ``2026-11-24T10:00:00Z`` or a look-back like ``90m``, ``2h``, ``7d`` -> ISO UTC."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    match = _DURATION.match(text.lower())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return iso(now - delta.total_seconds())
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidQuery(f"since must be an ISO 8601 time (2026-11-24T10:00:00Z) or a look-back "
                           f"like 30m, 2h, 7d; got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return iso(parsed.timestamp())


def parse_status(value: str | None) -> JobStatus | None:
    if value is None or not value.strip():
        return None
    try:
        return JobStatus(value.strip().upper())
    except ValueError:
        allowed = ", ".join(s.value for s in JobStatus)
        raise InvalidQuery(f"status must be one of {allowed}; got {value!r}") from None


REVIEW_FILTERS = ("approved", "rejected", "unreviewed")


def parse_review_filter(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text not in REVIEW_FILTERS:
        raise InvalidQuery(f"review_status must be one of {', '.join(REVIEW_FILTERS)}; got {value!r}")
    return text


def parse_limit(value: str | int | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE_SIZE
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise InvalidQuery(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}; got {value!r}") from None
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"limit must be from 1 to {MAX_PAGE_SIZE}; got {limit}")
    return limit


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"jobs": [public_job(j) for j in self.jobs], "next": self.next_cursor}


def _status_position(job: Job) -> dict[str, str]:
    return {"job_id": job.job_id, "status": job.status.value, "created_at": job.created_at}


class JobQueries:
    def __init__(self, *, jobs: JobStore, index: JobIndex, batches: BatchStore, now: Callable[[], float]) -> None:
        self._jobs = jobs
        self._index = index
        self._batches = batches
        self._now = now

    def job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id) if job_id.startswith("j-") else None
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def batch(self, batch_id: str) -> dict[str, Any]:
        batch = self._batches.get_batch(batch_id) if batch_id.startswith("b-") else None
        if batch is None:
            raise NotFound(f"no batch {batch_id!r}")
        return public_batch(batch)

    def list(self, *, status: str | None = None, batch: str | None = None, since: str | None = None,
             limit: str | int | None = None, cursor: str | None = None, review_status: str | None = None) -> JobPage:
        """``review_status`` (approved, rejected, unreviewed) narrows SUCCEEDED jobs; it is not an
        index, so its pages are the index's pages filtered and may come back short (follow ``next``)."""
        review = parse_review_filter(review_status)
        if review is None:
            return self._list(status=status, batch=batch, since=since, limit=limit, cursor=cursor)
        if status and parse_status(status) != JobStatus.SUCCEEDED:
            raise InvalidQuery("review_status filters SUCCEEDED jobs (only they can be reviewed); drop status or use "
                               "SUCCEEDED")
        page = self._list(status=JobStatus.SUCCEEDED.value, batch=batch, since=since, limit=limit, cursor=cursor)
        wanted = None if review == "unreviewed" else review
        return JobPage([j for j in page.jobs if j.review_status == wanted], page.next_cursor)

    def _list(self, *, status: str | None, batch: str | None, since: str | None, limit: str | int | None,
              cursor: str | None) -> JobPage:
        wanted = parse_status(status)
        page_size = parse_limit(limit)
        since_iso = parse_since(since, now=self._now())
        if batch:
            if since_iso:
                raise InvalidQuery("since cannot be combined with batch (a batch lists its rows in order)")
            filters = {"batch": batch, "status": wanted.value if wanted else None}
            return self._batch_page(batch, wanted, page_size, self._decode(cursor, filters), filters)
        # Since is part of the filters, once resolved: a cursor stays valid while ``2h`` moves on.
        filters = {"status": wanted.value if wanted else None, "since": since_iso}
        if cursor:
            position = self._decode(cursor, filters)
            since_iso = position.get("since", since_iso)
            filters["since"] = since_iso
        else:
            position = {}
        statuses = [wanted] if wanted else list(JobStatus)
        return self._status_page(statuses, since_iso, page_size, position.get("at", {}), filters)

    # --- pages --------------------------------------------------------------------------------

    def _status_page(self, statuses: list[JobStatus], since: str | None, limit: int,
                     positions: dict[str, Any], filters: dict[str, Any]) -> JobPage:
        """Newest first across statuses: one page from each status's partition, merged by time.
        A status's position moves to the last job of it that made it into this page."""
        candidates: list[tuple[Job, str]] = []
        exhausted: dict[str, bool] = {}
        for status in statuses:
            position = positions.get(status.value, "start")
            if position == "done":
                continue
            jobs, last = self._index.by_status(status, since=since, limit=limit,
                                               start=None if position == "start" else position)
            exhausted[status.value] = last is None
            candidates += [(job, status.value) for job in jobs]
        candidates.sort(key=lambda pair: (pair[0].created_at, pair[0].job_id), reverse=True)
        taken = candidates[:limit]
        new_positions = dict(positions)
        for status in exhausted:
            mine = [job for job, s in taken if s == status]
            offered = sum(1 for _, s in candidates if s == status)
            if mine and len(mine) == offered and exhausted[status]:
                new_positions[status] = "done"
            elif mine:
                new_positions[status] = _status_position(mine[-1])
            elif offered == 0:
                new_positions[status] = "done"
        more = any(new_positions.get(s.value, "start") != "done" for s in statuses)
        cursor = self._encode({"at": new_positions, "since": since}, filters) if more else None
        return JobPage([job for job, _ in taken], cursor)

    def _batch_page(self, batch_id: str, status: JobStatus | None, limit: int, position: dict[str, Any],
                    filters: dict[str, Any]) -> JobPage:
        jobs: list[Job] = []
        start = position.get("at")
        while True:
            page, start = self._index.by_batch(batch_id, status=status, limit=limit - len(jobs), start=start)
            jobs += page
            # With a status filter a page may come back short: keep reading this batch's partition.
            if len(jobs) >= limit or start is None:
                break
        cursor = self._encode({"at": start}, filters) if start is not None else None
        return JobPage(jobs, cursor)

    # --- cursors ------------------------------------------------------------------------------

    @staticmethod
    def _fingerprint(filters: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:12]

    def _encode(self, position: dict[str, Any], filters: dict[str, Any]) -> str:
        payload = {"f": self._fingerprint({k: v for k, v in filters.items() if k != "since"}), **position}
        return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")

    def _decode(self, cursor: str | None, filters: dict[str, Any]) -> dict[str, Any]:
        if not cursor:
            return {}
        try:
            payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            assert isinstance(payload, dict)
        except Exception:
            raise InvalidQuery("the page cursor is not one this API returned; start again without it") from None
        if payload.get("f") != self._fingerprint({k: v for k, v in filters.items() if k != "since"}):
            raise InvalidQuery("the page cursor belongs to other filters; repeat the filters it came with")
        return payload
