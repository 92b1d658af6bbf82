"""The interfaces the use cases depend on. Adapters implement them for AWS and Kling; unit tests
implement them in memory. Kept deliberately small."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Iterable, Iterator, Mapping, Protocol, runtime_checkable

from clipedit.domain.backpressure import BreakerState
from clipedit.domain.job import Job, JobStatus, ObjectRef


# --- job store -------------------------------------------------------------------------------


class JobStore(Protocol):
    """Every conditional write answers for this call: a write the store sent again (its answer was
    lost) and found already applied by its own first attempt counts as this call's, not a loss."""

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

    def set_fields(self, job_id: str, *, expected: JobStatus, fields: Mapping[str, Any]) -> bool:
        """Set fields without a status change, only while the job is in ``expected``."""

    def claim_until(self, job_id: str, name: str, *, expected: Iterable[JobStatus], now: str, until: str) -> bool:
        """Set the time field ``name`` to ``until`` only while the job is in one of ``expected`` and
        ``name`` is unset or past (``now``): True for exactly one caller per period (a long clip's
        stitch request)."""
    def mark_running(self, job_id: str, fields: Mapping[str, Any], *,
                     expect: Mapping[str, Any] | None = None) -> Job | None:
        """Set (value) or remove (None) fields while the job is SUBMITTED or PROCESSING and every
        ``expect`` field holds its value; returns the job as written, or None when not."""

    def acquire_lease(self, job_id: str, *, owner: str, now: str, until: str) -> bool:
        """Claim the right to finalize: True for exactly one caller while the lease is live."""

    def release_lease(self, job_id: str, *, owner: str) -> None: ...

    def claim_submission(self, job_id: str, *, owner: str, now: str, until: str) -> bool:
        """While QUEUED, let one submitter at a time call the provider (cleared by SUBMITTED)."""

    def release_submission(self, job_id: str, *, owner: str) -> None: ...

    def list_by_status(self, status: JobStatus, *, limit: int, since: str | None = None) -> list[Job]:
        """Jobs in ``status``, oldest first (an index query, never a scan)."""


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

    def download(self, ref: ObjectRef, path: str) -> int:
        """Stream the object (that exact version) into a local file; returns the byte count."""

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


class DocumentStore(Protocol):
    """Reads the small text documents users upload: manifests, presets, batch files."""

    def read_text(self, ref: ObjectRef, *, max_bytes: int) -> str | None:
        """The object's text (UTF-8), None if it does not exist; SpecError if over ``max_bytes``."""

    def iter_lines(self, ref: ObjectRef) -> Iterator[str]:
        """The object's lines, streamed (a 10,000-row batch is never held whole)."""

    def put_text(self, bucket: str, key: str, text_chunks: Iterable[str], *, content_type: str) -> None: ...


class MediaInspector(Protocol):
    """Facts about media read with ranged requests (never the whole clip)."""

    def video(self, ref: Any) -> Any:
        """VideoFacts, or MediaRejected."""

    def image(self, ref: Any) -> Any:
        """ImageFacts, or MediaRejected."""

    def content_hash(self, ref: Any) -> str:
        """SHA-256 of the bytes (for small images: element cache keys)."""


class MessageQueue(Protocol):
    def send_all(self, bodies: list[dict[str, Any]], *, delay_seconds: int = 0) -> None: ...


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
    element_ids: tuple[str, ...] = ()  # from the provider's element library (Kling direct)
    elements: tuple[InlineElement, ...] = ()  # sent inline (fal), when the provider takes them
    # "edit" (the clip is edited; output follows its length and ratio) or "reference" (the clip
    # guides a new shot of ``duration`` seconds in ``aspect_ratio``).
    video_mode: str = "edit"
    aspect_ratio: str | None = None
    duration: int | None = None
    shot_type: str | None = None


@dataclass(frozen=True)
class InlineElement:
    frontal_image_url: str
    reference_image_urls: tuple[str, ...]


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
    error_code: str | None = None  # a failed task's specific code (e.g. FAL_VALIDATION_ERROR), when known
    endpoint: str | None = None  # the provider endpoint the task runs on (fal's endpoint id)
    urls: dict[str, str] = field(default_factory=dict)  # fal: status_url, response_url, cancel_url


@dataclass(frozen=True)
class ElementTask:
    task_id: str
    state: TaskState
    element_id: str | None = None
    message: str | None = None


class EditProvider(Protocol):
    name: str
    # True when elements must be created in the provider's library first (Kling direct); False
    # when the edit call takes them inline (fal).
    needs_element_library: bool

    def submit(self, request: EditRequest) -> ProviderTask:
        """Create the task. Raises ProviderError (with ``retryable``) when refused."""

    def get_task(self, task_id: str, *, urls: Mapping[str, str] | None = None) -> ProviderTask:
        """The task's current state; ``urls`` are the ones its submit answer gave (fal), if any."""

    def find_by_external_id(self, external_id: str) -> ProviderTask | None:
        """The task created earlier with this external id, if any (idempotent resubmission)."""

    def create_element(self, *, external_id: str, frontal_url: str, reference_urls: list[str]) -> ElementTask: ...

    def get_element(self, task_id: str) -> ElementTask: ...


# --- backpressure (shared by every submit function instance) ----------------------------------


class ProviderGuard(Protocol):
    """Per-provider state shared by all submitters: the concurrency gate's slot holders and the
    circuit breaker's counters. Every operation is one atomic conditional write."""

    def acquire_slot(self, provider: str, job_id: str, *, limit: int) -> bool:
        """Take a slot for the job (idempotent: a holder acquires again); False when all are taken."""

    def release_slot(self, provider: str, job_id: str) -> bool:
        """Free the job's slot; True if it held one."""

    def transfer_slot(self, provider: str, from_job_id: str, to_job_id: str, *, limit: int) -> bool:
        """Make ``to_job_id`` a holder while ``from_job_id`` still holds its slot (the caller then
        releases it); False when ``from_job_id`` holds none or the gate stays over ``limit`` (an
        adapter may wait a moment for another ending job's hand-over to finish first)."""

    def slot_holders(self, provider: str) -> set[str]: ...

    def breaker(self, provider: str) -> BreakerState: ...

    def count_failure(self, provider: str) -> BreakerState:
        """One more consecutive failure; returns the updated state."""

    def open_breaker(self, provider: str, *, now: float, until: float, reason: str) -> bool:
        """Open until ``until`` unless it is already open; True if this call opened it."""

    def reset_breaker(self, provider: str) -> None:
        """A success: close the breaker and forget the streak."""


@runtime_checkable
class CancellableProvider(Protocol):
    """An optional capability: providers whose API can cancel a task (fal; Kling's cannot)."""

    name: str

    def cancel(self, task_id: str, *, urls: Mapping[str, str] | None = None) -> str:
        """Ask the provider to cancel; returns ``cancelled`` (it will not run or bill further),
        ``completed`` (too late: it already finished) or ``unknown`` (the provider has no such task)."""


class CallbackVerifier(Protocol):
    """Checks that a callback really comes from the provider (fal signs its webhooks)."""

    def verify(self, headers: Mapping[str, str], body: bytes, *, task_id: str | None) -> None:
        """Return if authentic; raise WebhookRejected (domain.errors) with the specific reason."""


# --- workflow, events, clock, tokens ----------------------------------------------------------


class Workflow(Protocol):
    def start_poller(self, job_id: str, *, poll_interval_seconds: int) -> bool:
        """Start the poller execution named after the job; False if it already existed."""


class PollerSignal(Protocol):
    """Ends the poller's wait for one job at once (a Step Functions task token)."""

    def resume(self, token: str) -> bool:
        """True if the waiting poller was resumed; False if that wait is already over."""


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""


# --- batches and the element cache (same table as the jobs) -------------------------------------


class BatchStore(Protocol):
    def create_batch(self, batch: Mapping[str, Any]) -> bool:
        """Insert the batch record unless it exists; True if this call created it."""

    def get_batch(self, batch_id: str) -> dict[str, Any] | None: ...

    def count_transition(self, batch_id: str, previous: str | None, current: str, *, now: str) -> dict[str, Any]:
        """Move one job's count from ``previous`` to ``current``; returns the updated record."""

    def mark_chunk_expanded(self, batch_id: str, chunk: int, *, now: str) -> dict[str, Any] | None:
        """Record that a chunk's jobs exist (idempotent); returns the record, flagged ``expanded``
        once every chunk is done."""

    def claim_completion(self, batch_id: str, *, now: str) -> bool:
        """True for exactly one caller once every row is terminal."""

    def batch_jobs(self, batch_id: str) -> Iterator[Job]:
        """The batch's jobs in row order (an index query, never a scan)."""


class ElementCache(Protocol):
    def get(self, content_hash: str) -> dict[str, Any] | None: ...

    def claim(self, content_hash: str, *, task_id: str, now: str) -> bool:
        """Record that this caller is creating the element; False if someone already is/did."""

    def complete(self, content_hash: str, *, element_id: str, now: str) -> None: ...

    def forget(self, content_hash: str) -> None:
        """Drop a failed creation so the next job tries again."""


# --- reading jobs back (status API, CLI) -------------------------------------------------------


class JobIndex(Protocol):
    """Jobs through the table's indexes, newest first by status, row order by batch; never a scan.

    ``start`` is where a previous page stopped (the last job it returned), None for the first page;
    the second value returned is the same kind of position, None when nothing is left."""

    def by_status(self, status: JobStatus, *, since: str | None, limit: int,
                  start: Mapping[str, str] | None) -> tuple[list[Job], dict[str, str] | None]: ...

    def by_batch(self, batch_id: str, *, status: JobStatus | None, limit: int,
                 start: Mapping[str, Any] | None) -> tuple[list[Job], dict[str, Any] | None]: ...


class ManifestWriter(Protocol):
    def put_manifest(self, bucket: str, key: str, text: str) -> str | None:
        """Store a manifest in the inbox (which starts its jobs); returns the new object version."""


class Metrics(Protocol):
    """What the use cases measure; CloudWatch (EMF) in Lambda, a list in the tests."""

    def count(self, name: str, *, dimensions: Mapping[str, str] | None = None, value: float = 1) -> None: ...

    def seconds(self, name: str, value: float, *, dimensions: Mapping[str, str] | None = None) -> None: ...
