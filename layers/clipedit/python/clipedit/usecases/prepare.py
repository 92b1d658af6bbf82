"""Prepare: make a QUEUED job's clip fit the model and the spec (reframe, trim, normalize) before
the provider sees it.

The submit step planned the work (``job.prepare.plan``) and asked for it with a message; this step
streams the clip into local storage, runs the plan through the media transformer (PyAV, in its own
layer), writes the prepared clip to a derived key and wakes the job. The original is only read.

Exactly once where it costs: the provider task is created only after ``prepare.status`` is
``done``, so a crash here (or a duplicate message) at worst prepares the clip again into the same
key; it never creates a second provider task.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from clipedit.domain.errors import MediaRejected
from clipedit.domain.framing import PreparePlan
from clipedit.domain.job import Job, JobStatus, ObjectRef
from clipedit.domain.manifest import MediaRef, stored_ref
from clipedit.domain.prepare_plan import plan_from_record
from clipedit.ports import Clock, JobStore, MediaFetcher, MessageQueue, ObjectStore
from clipedit.usecases.backpressure import submit_message
from clipedit.usecases.common import StatusRecorder, iso

CHUNK_BYTES = 8 * 1024 * 1024


class ClipTransformer(Protocol):
    def prepare(self, source_path: str, target_path: str, plan: PreparePlan) -> dict[str, Any]:
        """Run the plan; the prepared clip's facts (width, height, duration_seconds, fps, ...).
        Raises MediaRejected when the clip cannot be decoded."""


@dataclass(frozen=True)
class PrepareSettings:
    prepared_bucket: str
    prepared_prefix: str = "prepared/"
    work_dir: str | None = None  # /tmp on Lambda (ephemeral storage sized in the template)


@dataclass(frozen=True)
class PrepareOutcome:
    job_id: str
    status: str
    detail: str = ""


def prepared_key(prefix: str, job_id: str) -> str:
    return f"{prefix}{job_id}.mp4"


class PrepareClip:
    def __init__(self, *, jobs: JobStore, storage: ObjectStore, fetcher: MediaFetcher,
                 transformer: ClipTransformer, queue: MessageQueue, recorder: StatusRecorder, clock: Clock,
                 settings: PrepareSettings, split: Callable[[Job], Any] | None = None) -> None:
        self._split = split  # a long clip's parent: plan its parts and create them (usecases.long_clip)
        self._jobs = jobs
        self._storage = storage
        self._fetcher = fetcher
        self._transformer = transformer
        self._queue = queue
        self._recorder = recorder
        self._clock = clock
        self._settings = settings

    def __call__(self, job_id: str) -> PrepareOutcome:
        job = self._jobs.get(job_id)
        if job is None or job.status != JobStatus.QUEUED or not job.prepare:
            return PrepareOutcome(job_id, job.status.value if job else "MISSING", "nothing to prepare")
        if job.prepare.get("status") == "done":
            self._queue.send_all([submit_message(job_id, wake=True)])  # a lost wake-up is sent again
            return PrepareOutcome(job_id, "PREPARED", "already prepared")
        if job.prepare.get("split"):
            if self._split is None:
                raise RuntimeError("this prepare function cannot split long clips")
            outcome = self._split(job)
            return PrepareOutcome(job_id, outcome.status, outcome.detail)
        plan = plan_from_record(job.prepare["plan"])
        key = prepared_key(self._settings.prepared_prefix, job_id)
        with tempfile.TemporaryDirectory(prefix="clipedit-", dir=self._settings.work_dir) as work:
            source, target = os.path.join(work, "source"), os.path.join(work, "prepared.mp4")
            self.download_source(job, source)
            try:
                facts = self._transformer.prepare(source, target, plan)
            except MediaRejected as problem:
                return self._reject(job, problem)
            size = self._storage.upload_stream(self._settings.prepared_bucket, key, _chunks(target),
                                               content_type="video/mp4", metadata={"job-id": job_id})
        done = {**job.prepare, "status": "done", "bucket": self._settings.prepared_bucket, "key": key,
                "size_bytes": size, "prepared_at": iso(self._clock.now()),
                "facts": {k: v for k, v in facts.items() if v is not None}}
        if not self._jobs.set_fields(job_id, expected=JobStatus.QUEUED, fields={"prepare": done}):
            return PrepareOutcome(job_id, "MOVED", "the job left QUEUED while its clip was prepared")
        # The wake-up skips the backstop delay: the job is submitted as soon as its clip is ready.
        self._queue.send_all([submit_message(job_id, wake=True)])
        return PrepareOutcome(job_id, "PREPARED", key)

    def download_source(self, job: Job, path: str) -> None:
        """The job's clip (an inbox object version or the user's https URL) into a local file."""
        ref = stored_ref(job.video_ref) if job.video_ref else MediaRef(
            bucket=job.input_bucket, key=job.input_key, version_id=job.input_version_id)
        if not ref.url:
            self._storage.download(ObjectRef(ref.bucket or "", ref.key or "", ref.version_id), path)
            return
        # The user's https URL: fetched under the reference URL policy (public https hosts only).
        with self._fetcher.open(ref.url) as chunks, open(path, "wb") as out:
            for chunk in chunks:
                out.write(chunk)

    def _reject(self, job: Job, problem: MediaRejected) -> PrepareOutcome:
        now = iso(self._clock.now())
        updated = self._jobs.transition(job.job_id, JobStatus.REJECTED, now=now, fields={
            "error_code": problem.code, "error_message": problem.message, "finished_at": now,
            "wait_reason": None, "next_attempt_at": None})
        if updated is not None:
            self._recorder(updated, job.status.value)
        return PrepareOutcome(job.job_id, "REJECTED", problem.code)


def _chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            yield chunk
