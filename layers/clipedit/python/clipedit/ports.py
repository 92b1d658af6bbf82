"""The interfaces the use cases depend on. Adapters implement them for AWS and Kling; unit tests
implement them in memory. Kept deliberately small."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Iterable, Iterator, Mapping, Protocol

from clipedit.domain.job import Job, JobStatus, ObjectRef


# --- job store -------------------------------------------------------------------------------


class JobStore(Protocol):
    def create(self, job: Job) -> bool:
        """Insert the job unless one with its id exists; True if this call created it."""

    def get(self, job_id: str) -> Job | None: ...

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        now: str,
        fields: Mapping[str, Any] | None = None,
        require_no_lease: bool = False,
        lease_owner: str | None = None,
    ) -> Job | None:
        """Move the job to ``target`` only from a status allowed by the lifecycle (and, when asked,
        only if no live finalize lease is held, or only by the lease's owner). Returns the updated
        job, or None when the condition failed (someone else moved it first)."""

    def acquire_lease(self, job_id: str, *, owner: str, now: str, until: str) -> bool:
        """Claim the right to finalize: True for exactly one caller while the lease is live."""

    def release_lease(self, job_id: str, *, owner: str) -> None: ...


# --- object storage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    metadata: Mapping[str, str]
    content_type: str | None
    etag: str | None
    version_id: str | None


class ObjectStore(Protocol):
    def head(self, ref: ObjectRef) -> ObjectInfo: ...

    def presign_get(self, ref: ObjectRef, ttl_seconds: int) -> str: ...

    def upload_stream(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> int:
        """Stream ``chunks`` into one object with bounded memory; the object becomes visible only
        when complete (nothing partial on failure). Returns the byte count."""


class MediaFetcher(Protocol):
    def open(self, url: str) -> AbstractContextManager[Iterator[bytes]]:
        """Stream a provider result URL as byte chunks."""


# --- provider ---------------------------------------------------------------------------------


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED)


@dataclass(frozen=True)
class EditRequest:
    """A provider-neutral edit: prompt in canonical ``@Video1``/``@ImageN`` syntax."""

    external_id: str
    prompt: str
    video_url: str
    model: str
    mode: str
    keep_audio: bool
    callback_url: str | None = None
    image_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProviderTask:
    task_id: str
    state: TaskState
    external_id: str | None = None
    message: str | None = None
    video_url: str | None = None
    duration_seconds: float | None = None
    units: str | None = None
    raw_status: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class EditProvider(Protocol):
    name: str

    def submit(self, request: EditRequest) -> ProviderTask:
        """Create the task. Raises ProviderError (with ``retryable``) when refused."""

    def get_task(self, task_id: str) -> ProviderTask: ...

    def find_by_external_id(self, external_id: str) -> ProviderTask | None:
        """The task created earlier with this external id, if any (idempotent resubmission)."""


# --- workflow, events, clock, tokens ----------------------------------------------------------


class Workflow(Protocol):
    def start_poller(self, job_id: str, *, poll_interval_seconds: int) -> bool:
        """Start the poller execution named after the job; False if it already existed."""


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
