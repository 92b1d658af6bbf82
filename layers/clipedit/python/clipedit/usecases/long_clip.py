"""Long clips: one parent job, N part jobs, one stitch (docs/long-clips.md).

- Split (prepare function, it has PyAV and the clip): the parent was planned at submit
  (``prepare.split``); here the clip is decoded once for its cut candidates, the parts are planned
  (``plan_segments``), recorded on the parent, then created as ordinary jobs with deterministic
  ids (``<parent>-p01``, conditional puts) and sent to submit. Each part then takes the normal
  road: prepare (its trim window, the parent's framing) -> gate, breaker, backoff -> one provider
  task -> finalize.
- Fan-in (submit function): every part that ends wakes its parent (the recorder's end-of-job
  hook); the parent's step reads its parts (the records are the truth: counts are derived, never
  incremented) and, once all have ended, fails naming the failed part or claims the stitch with a
  conditional write, so exactly one stitch request is sent per claim period.
- Stitch (prepare function): downloads the edited parts and the source, `stitch_parts` lays the
  original soundtrack over them, the result goes to the outputs bucket and the parent SUCCEEDS.
  It holds the parent's finalize lease; a crash is retried by the queue, never re-editing a part.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Protocol, Sequence

from clipedit.domain.errors import MediaRejected, RetryLater
from clipedit.domain.job import Job, JobStatus, ObjectRef
from clipedit.domain.keys import output_key_for
from clipedit.domain.manifest import MediaRef, stored_ref
from clipedit.domain.prepare_plan import framing_from_record
from clipedit.domain.segments import (
    SegmentRequest,
    estimate_cost,
    part_framing,
    plan_parts,
    stitch_plan_from_record,
    stitch_plan_to_record,
)
from clipedit.domain.media import limits_for
from clipedit.domain.stitching import StitchPlan
from clipedit.ports import Clock, JobStore, MessageQueue, ObjectStore
from clipedit.usecases.backpressure import submit_message
from clipedit.usecases.common import StatusRecorder, iso

# Copied from the parent to each part: the edit and its inputs (not the batch, outputs or errors).
PART_FIELDS = ("input_bucket", "input_key", "input_version_id", "input_size", "provider", "model", "mode", "prompt",
               "keep_audio", "video_ref", "image_urls", "elements", "tags", "variant", "preset")
STITCH_MESSAGE = "stitch"
PARENT_RECHECK_SECONDS = 300  # backstop for a lost wake-up; the parts' ends wake the parent at once
STITCH_RESEND_SECONDS = 960  # longer than the prepare function's timeout: a live stitch is never doubled
STITCH_LEASE_SECONDS = 960
CHUNK_BYTES = 8 * 1024 * 1024


class LongClipMedia(Protocol):
    """The PyAV side (clipedit_media): cut candidates and the stitch."""

    def cut_candidates(self, path: str) -> tuple[list[float], list[float]]:
        """(scene cuts, keyframes) in seconds from the clip's start."""

    def stitch(self, part_paths: Sequence[str], source_path: str, target_path: str, plan: StitchPlan) -> dict[str, Any]:
        """The stitched clip's facts (duration_seconds, ...)."""


def is_parent(job: Job) -> bool:
    return job.is_long_clip_parent


def part_ids(job: Job) -> list[str]:
    return job.long_clip_part_ids


def part_job_id(parent_id: str, index: int) -> str:
    return f"{parent_id}-p{index + 1:02d}"


def part_output_key(parent_output_key: str, index: int) -> str:
    """``edited/shoot/clip.mp4`` -> ``edited/shoot/clip.parts/p01.mp4``: next to the result."""
    stem = posixpath.splitext(parent_output_key)[0]
    return f"{stem}.parts/p{index + 1:02d}.mp4"


def sum_units(values: Iterable[str | None]) -> str | None:
    total, seen = Decimal(0), False
    for value in values:
        try:
            total += Decimal(str(value))
            seen = True
        except (InvalidOperation, TypeError):
            continue
    return str(total.normalize()) if seen else None


def source_ref(job: Job) -> MediaRef:
    return stored_ref(job.video_ref) if job.video_ref else MediaRef(
        bucket=job.input_bucket, key=job.input_key, version_id=job.input_version_id)


@dataclass(frozen=True)
class LongClipSettings:
    outputs_bucket: str
    incoming_prefix: str
    output_prefix: str
    work_dir: str | None = None
    # Longer than the prepare function's timeout: a live stitch is never overtaken, a crashed one's
    # lease expires and the redelivered request stitches again.
    stitch_lease_seconds: int = STITCH_LEASE_SECONDS


@dataclass(frozen=True)
class LongClipOutcome:
    job_id: str
    status: str
    detail: str = ""


class _Base:
    def __init__(self, *, jobs: JobStore, storage: ObjectStore, queue: MessageQueue, recorder: StatusRecorder,
                 clock: Clock, settings: LongClipSettings) -> None:
        self._jobs = jobs
        self._storage = storage
        self._queue = queue  # the intake queue: part submissions and parent wake-ups
        self._recorder = recorder
        self._clock = clock
        self._settings = settings

    def _output_key(self, job: Job) -> str:
        return job.planned_output_key or output_key_for(job.input_key, incoming_prefix=self._settings.incoming_prefix,
                                                        output_prefix=self._settings.output_prefix)

    def _move(self, job: Job, target: JobStatus, **fields: Any) -> Job | None:
        updated = self._jobs.transition(job.job_id, target, now=iso(self._clock.now()), fields=fields)
        if updated is not None:
            self._recorder(updated, job.status.value)
        return updated


class SplitLongClip(_Base):
    """The parent's prepare request: decode for cut candidates, plan, create the parts."""

    def __init__(self, *, media: LongClipMedia, fetch_source: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._media = media
        self._fetch_source = fetch_source  # (job, path) -> None: the clip into a local file

    def __call__(self, parent: Job) -> LongClipOutcome:
        split = (parent.prepare or {}).get("split") or {}
        plan_record = parent.extra.get("stitch_plan")
        if plan_record is None:
            try:
                plan_record = stitch_plan_to_record(self._plan(parent, split))
            except MediaRejected as problem:
                now = iso(self._clock.now())
                self._move(parent, JobStatus.REJECTED, error_code=problem.code, error_message=problem.message,
                           finished_at=now, wait_reason=None, next_attempt_at=None)
                return LongClipOutcome(parent.job_id, "REJECTED", problem.code)
            estimate = estimate_cost(stitch_plan_from_record(plan_record), mode=parent.mode or "pro")
            ids = [part_job_id(parent.job_id, p["index"]) for p in plan_record["parts"]]
            # Recorded before any part exists: a second delivery reuses this plan, never another.
            if not self._jobs.set_fields(parent.job_id, expected=JobStatus.QUEUED, fields={
                    "stitch_plan": plan_record, "part_job_ids": ids, "parts_total": len(ids),
                    "estimated_seconds": estimate.billed_seconds, "estimated_units": str(estimate.units)}):
                return LongClipOutcome(parent.job_id, "MOVED", "the parent left QUEUED while it was planned")
            parent = self._jobs.get(parent.job_id) or parent
        plan = stitch_plan_from_record(plan_record)
        created = self._create_parts(parent, plan, trim_start=float(split.get("start") or 0.0))
        self._queue.send_all([submit_message(job_id) for job_id in part_ids(parent)])
        moved = self._move(parent, JobStatus.SUBMITTED, submitted_at=iso(self._clock.now()),
                           prepare={**(parent.prepare or {}), "status": "done"}, wait_reason=None,
                           next_attempt_at=None)
        if moved is not None:
            self._queue.send_all([submit_message(parent.job_id, wake=True)])  # a part may have ended already
        return LongClipOutcome(parent.job_id, "SPLIT", f"{len(plan.parts)} parts ({created} new)")

    def _plan(self, parent: Job, split: dict[str, Any]) -> StitchPlan:
        with tempfile.TemporaryDirectory(prefix="clipedit-", dir=self._settings.work_dir) as work:
            source = os.path.join(work, "source")
            self._fetch_source(parent, source)
            scene_cuts, keyframes = self._media.cut_candidates(source)
        return plan_parts(SegmentRequest(float(split["start"]), float(split["end"])), framing_from_record(parent.framing),
                          limits_for(parent.model or "o3"), scene_cuts=scene_cuts, keyframes=keyframes,
                          keep_audio=parent.keep_audio is not False)

    def _create_parts(self, parent: Job, plan: StitchPlan, *, trim_start: float) -> int:
        framing = framing_from_record(parent.framing)
        parent_key = self._output_key(parent)
        now = iso(self._clock.now())
        created = 0
        for window in plan.parts:
            part = Job(job_id=part_job_id(parent.job_id, window.index), status=JobStatus.RECEIVED,
                       input_bucket=parent.input_bucket, input_key=parent.input_key, created_at=now, updated_at=now,
                       status_history=[{"status": JobStatus.RECEIVED.value, "at": now}],
                       extra={"parent_id": parent.job_id, "part_index": window.index,
                              "parts_total": len(plan.parts)})
            for name in PART_FIELDS:
                setattr(part, name, getattr(parent, name))
            part.framing = part_framing(framing, window, trim_start=trim_start).to_record()
            part.planned_output_key = part_output_key(parent_key, window.index)
            if self._jobs.create(part):
                created += 1
                self._recorder.created(part)
        return created


class ParentProgress(_Base):
    """A parent in SUBMITTED/PROCESSING, woken by one of its parts (or the backstop)."""

    def __init__(self, *, stitch_requests: MessageQueue | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stitch_requests = stitch_requests

    def __call__(self, parent: Job) -> Job:
        parts = [self._jobs.get(job_id) for job_id in part_ids(parent)]
        missing = [job_id for job_id, part in zip(part_ids(parent), parts) if part is None]
        if missing:
            raise RetryLater(f"part {missing[0]} does not exist yet", delay_seconds=PARENT_RECHECK_SECONDS)
        ended = [p for p in parts if p is not None and p.terminal]
        succeeded = [p for p in ended if p.status == JobStatus.SUCCEEDED]
        failed = [p for p in ended if p.status != JobStatus.SUCCEEDED]
        progress = {"parts_succeeded": len(succeeded), "parts_failed": len(failed),
                    "provider_units": sum_units(p.provider_units for p in succeeded)}
        if parent.status == JobStatus.SUBMITTED and ended:
            parent = self._move(parent, JobStatus.PROCESSING, **progress) or self._jobs.get(parent.job_id) or parent
        elif any(parent.extra.get(k) != v for k, v in progress.items() if k != "provider_units"):
            self._jobs.set_fields(parent.job_id, expected=parent.status, fields=progress)
        if parent.terminal:
            return parent
        if len(ended) < len(parts):
            raise RetryLater(f"{len(ended)} of {len(parts)} parts done", delay_seconds=PARENT_RECHECK_SECONDS)
        if failed:
            first = sorted(failed, key=lambda p: int(p.extra.get("part_index") or 0))[0]
            index = int(first.extra.get("part_index") or 0) + 1
            return self._move(parent, JobStatus.FAILED, **progress, error_code="PART_FAILED",
                              finished_at=iso(self._clock.now()),
                              error_message=(f"part {index} of {len(parts)} ({first.job_id}) ended "
                                             f"{first.status.value}: {first.error_code}: {first.error_message}")
                              ) or self._jobs.get(parent.job_id) or parent
        return self._request_stitch(parent)

    def _request_stitch(self, parent: Job) -> Job:
        if self._stitch_requests is None:
            return self._move(parent, JobStatus.FAILED, error_code="STITCH_NOT_CONFIGURED",
                              finished_at=iso(self._clock.now()),
                              error_message="the parts are edited but this stack has no stitch step configured"
                              ) or parent
        now = self._clock.now()
        # The conditional write that makes the last part's wake-up (and only it) ask for the stitch;
        # after STITCH_RESEND_SECONDS without a result it may be asked again (a lost message).
        if self._jobs.claim_until(parent.job_id, "stitch_requested_until", expected=(parent.status,),
                                  now=iso(now), until=iso(now + STITCH_RESEND_SECONDS)):
            self._stitch_requests.send_all([{"clipedit": STITCH_MESSAGE, "job_id": parent.job_id}])
        raise RetryLater("stitching the parts", delay_seconds=PARENT_RECHECK_SECONDS)


class StitchLongClip(_Base):
    """The stitch request (prepare function): the edited parts and the source become the result."""

    def __init__(self, *, media: LongClipMedia, fetch_source: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._media = media
        self._fetch_source = fetch_source

    def __call__(self, parent_id: str) -> LongClipOutcome:
        parent = self._jobs.get(parent_id)
        if parent is None or parent.status not in (JobStatus.SUBMITTED, JobStatus.PROCESSING):
            return LongClipOutcome(parent_id, parent.status.value if parent else "MISSING", "nothing to stitch")
        parts = [self._jobs.get(job_id) for job_id in part_ids(parent)]
        if any(p is None or p.status != JobStatus.SUCCEEDED for p in parts):
            return LongClipOutcome(parent_id, parent.status.value, "not every part has succeeded")
        owner = uuid.uuid4().hex
        now = self._clock.now()
        if not self._jobs.acquire_lease(parent_id, owner=owner, now=iso(now),
                                        until=iso(now + self._settings.stitch_lease_seconds)):
            raise RetryLater("another stitch of this clip is running")  # the message comes back later
        try:
            key, size, facts = self._stitch(parent, parts)  # type: ignore[arg-type]
        except MediaRejected as problem:
            now_iso = iso(self._clock.now())
            failed = self._jobs.transition(parent_id, JobStatus.FAILED, now=now_iso, lease_owner=owner, fields={
                "error_code": problem.code, "error_message": problem.message, "finished_at": now_iso})
            if failed is not None:
                self._recorder(failed, parent.status.value)
            return LongClipOutcome(parent_id, "FAILED", problem.code)
        except Exception:
            # An error we can see: the next delivery may stitch at once. A crash runs no cleanup;
            # then the lease expiring lets the redelivered request take over.
            self._jobs.release_lease(parent_id, owner=owner)
            raise
        now_iso = iso(self._clock.now())
        updated = self._jobs.transition(parent_id, JobStatus.SUCCEEDED, now=now_iso, lease_owner=owner, fields={
            "output_bucket": self._settings.outputs_bucket, "output_key": key, "output_size": size,
            "output_duration_seconds": facts.get("duration_seconds"), "finished_at": now_iso,
            "parts_succeeded": len(parts), "parts_failed": 0, "finalized_by": "stitch",
            "provider_units": sum_units(p.provider_units for p in parts)})  # type: ignore[union-attr]
        if updated is None:  # pragma: no cover - the lease expired mid-stitch
            return LongClipOutcome(parent_id, "MOVED", "the parent changed while it was stitched")
        self._recorder(updated, parent.status.value)
        return LongClipOutcome(parent_id, "SUCCEEDED", key)

    def _stitch(self, parent: Job, parts: list[Job]) -> tuple[str, int, dict[str, Any]]:
        plan = stitch_plan_from_record(parent.extra["stitch_plan"])
        key = self._output_key(parent)
        with tempfile.TemporaryDirectory(prefix="clipedit-", dir=self._settings.work_dir) as work:
            paths = []
            for part in parts:
                path = os.path.join(work, f"part{len(paths):02d}.mp4")
                self._storage.download(ObjectRef(part.output_bucket or self._settings.outputs_bucket,
                                                 part.output_key or ""), path)
                paths.append(path)
            source, target = os.path.join(work, "source"), os.path.join(work, "stitched.mp4")
            self._fetch_source(parent, source)
            facts = self._media.stitch(paths, source, target, plan)
            size = self._storage.upload_stream(self._settings.outputs_bucket, key, _chunks(target),
                                               content_type="video/mp4", metadata={"job-id": parent.job_id})
        return key, size, facts


def _chunks(path: str) -> Iterable[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            yield chunk
