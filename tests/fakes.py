"""In-memory implementations of the ports, with the same conditional semantics as the adapters."""

from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Mapping

from clipedit.domain.backpressure import BreakerState
from clipedit.domain.errors import MediaRejected, ProviderError
from clipedit.domain.provider_errors import ErrorKind
from clipedit.domain.job import Job, JobStatus, ObjectRef, sources_of
from clipedit.ports import EditRequest, ObjectInfo, ProviderTask, TaskState


class FakeClock:
    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeSignal:
    """The poller's wait: records which task tokens were resumed (each at most once)."""

    def __init__(self) -> None:
        self.resumed: list[str] = []

    def resume(self, token: str) -> bool:
        if token in self.resumed:
            return False  # SendTaskSuccess on a used token: TaskTimedOut / InvalidToken
        self.resumed.append(token)
        return True


class FakeJobStore:
    def __init__(self) -> None:
        self.items: dict[str, Job] = {}
        self.lock = threading.Lock()

    def create(self, job: Job) -> bool:
        with self.lock:
            if job.job_id in self.items:
                return False
            self.items[job.job_id] = copy.deepcopy(job)
            return True

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            job = self.items.get(job_id)
            return copy.deepcopy(job) if job else None

    def transition(self, job_id, target, *, now, fields=None, require_no_lease=False, lease_owner=None):
        with self.lock:
            job = self.items.get(job_id)
            if job is None or job.status not in sources_of(target):
                return None
            lease_until = job.extra.get("finalize_lease_until")
            if require_no_lease and lease_until and lease_until >= now:
                return None
            if lease_owner is not None and job.extra.get("finalize_lease_owner") != lease_owner:
                return None
            if lease_owner is not None:
                job.extra.pop("finalize_lease_owner", None)
                job.extra.pop("finalize_lease_until", None)
            job.status = target
            job.updated_at = now
            job.status_history.append({"status": target.value, "at": now})
            for name, value in (fields or {}).items():
                if hasattr(job, name):
                    setattr(job, name, value)
                elif value is None:
                    job.extra.pop(name, None)  # None removes the attribute, as the adapter does
                else:
                    job.extra[name] = value
            return copy.deepcopy(job)

    def set_fields(self, job_id, *, expected, fields):
        with self.lock:
            job = self.items.get(job_id)
            if job is None or job.status != expected:
                return False
            for name, value in fields.items():
                if hasattr(job, name):
                    setattr(job, name, value)
                else:
                    job.extra[name] = value  # as the adapter reads it back: an attribute of its own
            return True

    def claim_until(self, job_id, name, *, expected, now, until):
        with self.lock:
            job = self.items.get(job_id)
            if job is None or job.status not in expected:
                return False
            current = job.extra.get(name)
            if current and current >= now:
                return False
            job.extra[name] = until
            return True

    def mark_running(self, job_id, fields, *, expect=None):
        with self.lock:
            job = self.items.get(job_id)
            if job is None or job.status not in (JobStatus.SUBMITTED, JobStatus.PROCESSING):
                return None
            if any(job.extra.get(name, getattr(job, name, None)) != value for name, value in (expect or {}).items()):
                return None
            for name, value in fields.items():
                if value is None:
                    job.extra.pop(name, None)
                else:
                    job.extra[name] = value
            return copy.deepcopy(job)

    def acquire_lease(self, job_id, *, owner, now, until):
        with self.lock:
            job = self.items.get(job_id)
            if job is None or job.status not in (JobStatus.SUBMITTED, JobStatus.PROCESSING):
                return False
            current = job.extra.get("finalize_lease_until")
            if current and current >= now:
                return False
            job.extra["finalize_lease_owner"] = owner
            job.extra["finalize_lease_until"] = until
            return True

    def release_lease(self, job_id, *, owner):
        with self.lock:
            job = self.items.get(job_id)
            if job and job.extra.get("finalize_lease_owner") == owner:
                job.extra.pop("finalize_lease_owner", None)
                job.extra.pop("finalize_lease_until", None)

    def claim_submission(self, job_id, *, owner, now, until):
        with self.lock:
            job = self.items.get(job_id)
            if job is None or job.status != JobStatus.QUEUED:
                return False
            current = job.extra.get("submit_claim_until")
            if current and current >= now:
                return False
            job.extra["submit_claim_owner"], job.extra["submit_claim_until"] = owner, until
            return True

    def release_submission(self, job_id, *, owner):
        with self.lock:
            job = self.items.get(job_id)
            if job and job.extra.get("submit_claim_owner") == owner:
                job.extra.pop("submit_claim_owner", None)
                job.extra.pop("submit_claim_until", None)

    def list_by_status(self, status, *, limit, since=None):
        with self.lock:
            found = sorted((j for j in self.items.values() if j.status == status
                            and (since is None or j.created_at >= since)), key=lambda j: j.created_at)
            return [copy.deepcopy(j) for j in found[:limit]]


class FakeGuard:
    """The gate and breaker of DynamoProviderGuard, in memory."""

    def __init__(self) -> None:
        self.holders: dict[str, set[str]] = {}
        self.state: dict[str, BreakerState] = {}

    def acquire_slot(self, provider, job_id, *, limit):
        held = self.holders.setdefault(provider, set())
        if job_id in held or len(held) < limit:
            held.add(job_id)
            return True
        return False

    def transfer_slot(self, provider, from_job_id, to_job_id, *, limit):
        held = self.holders.setdefault(provider, set())
        if from_job_id in held and len(held) <= limit:
            held.add(to_job_id)
            return True
        return False

    def release_slot(self, provider, job_id):
        held = self.holders.setdefault(provider, set())
        if job_id in held:
            held.discard(job_id)
            return True
        return False

    def slot_holders(self, provider):
        return set(self.holders.get(provider, set()))

    def breaker(self, provider):
        return self.state.get(provider, BreakerState())

    def count_failure(self, provider):
        state = self.breaker(provider)
        self.state[provider] = replace(state, failures=state.failures + 1)
        return self.state[provider]

    def open_breaker(self, provider, *, now, until, reason):
        state = self.breaker(provider)
        if state.is_open(now):
            return False
        self.state[provider] = replace(state, open_until=until, reason=reason, opened=state.opened + 1)
        return True

    def reset_breaker(self, provider):
        self.state[provider] = BreakerState()


class FakeObjectStore:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.uploads: list[tuple[str, str]] = []
        self.max_chunk_seen = 0

    def put(self, bucket: str, key: str, body: bytes, metadata: Mapping[str, str] | None = None) -> None:
        self.objects[(bucket, key)] = {"body": body, "metadata": dict(metadata or {})}

    def head(self, ref: ObjectRef) -> ObjectInfo:
        obj = self.objects.get((ref.bucket, ref.key))
        if obj is None:
            raise MediaRejected("missing", code="CLIP_NOT_FOUND")
        return ObjectInfo(len(obj["body"]), obj["metadata"], "video/mp4", '"etag"', ref.version_id)

    def presign_get(self, ref: ObjectRef, ttl_seconds: int) -> str:
        return f"https://presigned.example/{ref.bucket}/{ref.key}?ttl={ttl_seconds}"

    def upload_stream(self, bucket, key, chunks: Iterable[bytes], *, content_type, metadata) -> int:
        data = bytearray()
        for chunk in chunks:
            self.max_chunk_seen = max(self.max_chunk_seen, len(chunk))
            data += chunk
        self.objects[(bucket, key)] = {"body": bytes(data), "metadata": dict(metadata)}
        self.uploads.append((bucket, key))
        return len(data)


@dataclass
class FakeProvider:
    needs_element_library = False
    name: str = "kling"
    tasks: dict[str, ProviderTask] = field(default_factory=dict)
    requests: list[EditRequest] = field(default_factory=list)
    submit_errors: list[ProviderError] = field(default_factory=list)
    lost_answers: int = 0  # creates that succeed but answer a timeout (the ambiguous case)
    get_calls: int = 0

    def submit(self, request: EditRequest) -> ProviderTask:
        self.requests.append(request)
        if self.submit_errors:
            raise self.submit_errors.pop(0)
        if any(t.external_id == request.external_id for t in self.tasks.values()):
            raise ProviderError(
                f"Kling error 1201: External_task_id {request.external_id} already exists",
                provider_code=1201,
                http_status=400,
                retryable=False,
                code="KLING_1201",
            )
        task = ProviderTask(task_id=str(800000000000000000 + len(self.tasks)), state=TaskState.QUEUED,
                            external_id=request.external_id)
        self.tasks[task.task_id] = task
        if self.lost_answers:
            self.lost_answers -= 1
            raise ProviderError("Kling did not answer in time", kind=ErrorKind.TRANSIENT, code="PROVIDER_TIMEOUT")
        return task

    def get_task(self, task_id: str, *, urls: Mapping[str, str] | None = None) -> ProviderTask:
        self.get_calls += 1
        return self.tasks[task_id]

    def find_by_external_id(self, external_id: str) -> ProviderTask | None:
        return next((t for t in self.tasks.values() if t.external_id == external_id), None)

    def set_state(self, task_id: str, state: TaskState, **kwargs: Any) -> None:
        self.tasks[task_id] = replace(self.tasks[task_id], state=state, **kwargs)


class FakeFetcher:
    def __init__(self, payloads: dict[str, bytes] | None = None, chunk: int = 1000) -> None:
        self.payloads = payloads or {}
        self.chunk = chunk
        self.opened: list[str] = []
        self.fail_with: BaseException | None = None

    @contextmanager
    def open(self, url: str) -> Iterator[Iterator[bytes]]:
        self.opened.append(url)
        data = self.payloads[url]

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(data), self.chunk):
                if self.fail_with is not None and start > 0:
                    raise self.fail_with
                yield data[start : start + self.chunk]

        yield chunks()


class FakeWorkflow:
    def __init__(self) -> None:
        self.started: dict[str, int] = {}
        self.start_calls = 0

    def start_poller(self, job_id: str, *, poll_interval_seconds: int) -> bool:
        self.start_calls += 1
        if job_id in self.started:
            return False
        self.started[job_id] = poll_interval_seconds
        return True


class FakeEvents:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        self.published.append((detail_type, dict(detail)))


# --- spec issue: documents, queue, media facts, batches, elements --------------------------------

import hashlib as _hashlib  # noqa: E402

from clipedit.domain.errors import SpecError  # noqa: E402
from clipedit.domain.media import ImageFacts, VideoFacts  # noqa: E402
from clipedit.ports import ElementTask  # noqa: E402

GOOD_VIDEO = dict(container="mp4", duration_seconds=5.0, width=1280, height=720, fps=24.0, video_codec="avc1",
                  has_audio=True, size_bytes=4_000_000, bytes_read=40_000)
GOOD_IMAGE = dict(format="png", width=512, height=512, size_bytes=20_000)


class FakeDocuments:
    def __init__(self, store: FakeObjectStore) -> None:
        self.store = store

    def read_text(self, ref, *, max_bytes):
        obj = self.store.objects.get((ref.bucket, ref.key))
        if obj is None:
            return None
        if len(obj["body"]) > max_bytes:
            raise SpecError("too large", code="MANIFEST_TOO_LARGE")
        return obj["body"].decode()

    def iter_lines(self, ref):
        return iter(self.store.objects[(ref.bucket, ref.key)]["body"].decode().splitlines(keepends=True))

    def put_text(self, bucket, key, text_chunks, *, content_type):
        self.store.put(bucket, key, "".join(text_chunks).encode())


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.delays: list[int] = []  # the delay of each sent message, in order

    def send_all(self, bodies, *, delay_seconds=0):
        self.sent.extend(bodies)
        self.delays.extend([delay_seconds] * len(bodies))


class FakeInspector:
    """Facts per reference (str(ref)); unknown references are valid media."""

    def __init__(self) -> None:
        self.videos: dict[str, Any] = {}
        self.images: dict[str, Any] = {}
        self.probed: list[str] = []

    def video(self, ref):
        self.probed.append(str(ref))
        value = self.videos.get(str(ref), {})
        if isinstance(value, Exception):
            raise value
        return VideoFacts(**{**GOOD_VIDEO, **value})

    def image(self, ref):
        self.probed.append(str(ref))
        value = self.images.get(str(ref), {})
        if isinstance(value, Exception):
            raise value
        return ImageFacts(**{**GOOD_IMAGE, **value})

    def content_hash(self, ref):
        return _hashlib.sha256(str(ref).encode()).hexdigest()


class FakeBatchStore:
    def __init__(self, jobs: FakeJobStore) -> None:
        self.jobs = jobs
        self.batches: dict[str, dict[str, Any]] = {}

    def create_batch(self, batch):
        if batch["batch_id"] in self.batches:
            return False
        self.batches[batch["batch_id"]] = copy.deepcopy(dict(batch))
        return True

    def get_batch(self, batch_id):
        return copy.deepcopy(self.batches.get(batch_id))

    def count_transition(self, batch_id, previous, current, *, now):
        counts = self.batches[batch_id]["counts"]
        counts[current] = counts.get(current, 0) + 1
        if previous:
            counts[previous] = counts.get(previous, 0) - 1
        return copy.deepcopy(self.batches[batch_id])

    def mark_chunk_expanded(self, batch_id, chunk, *, now):
        batch = self.batches.get(batch_id)
        if batch is None:
            return None
        batch.setdefault("chunks_done", set()).add(chunk)
        if len(batch["chunks_done"]) >= batch["chunks_total"]:
            batch["expanded"] = True
        return copy.deepcopy(batch)

    def claim_completion(self, batch_id, *, now):
        if self.batches[batch_id].get("completed_at"):
            return False
        self.batches[batch_id]["completed_at"] = now
        return True

    def batch_jobs(self, batch_id):
        return iter(sorted((j for j in self.jobs.items.values() if j.batch_id == batch_id), key=lambda j: j.batch_row))


class FakeElementCache:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def get(self, content_hash):
        return copy.deepcopy(self.items.get(content_hash))

    def claim(self, content_hash, *, task_id, now):
        if self.items.get(content_hash, {}).get("task_id"):
            return False
        self.items[content_hash] = {"task_id": task_id}
        return True

    def complete(self, content_hash, *, element_id, now):
        self.items[content_hash]["element_id"] = element_id

    def forget(self, content_hash):
        self.items.pop(content_hash, None)


class FakeElementProvider(FakeProvider):
    """A provider with an element library whose element tasks finish when told to."""

    needs_element_library = True

    def __init__(self) -> None:
        super().__init__()
        self.element_tasks: dict[str, ElementTask] = {}

    def create_element(self, *, external_id, frontal_url, reference_urls):
        if any(t.task_id.endswith(external_id) for t in self.element_tasks.values()):
            raise ProviderError("External_task_id already exists", provider_code=1201, retryable=False)
        task = ElementTask(task_id=f"el-{len(self.element_tasks)}-{external_id}", state=TaskState.QUEUED)
        self.element_tasks[task.task_id] = task
        return task

    def get_element(self, task_id):
        if task_id in self.element_tasks:
            return self.element_tasks[task_id]
        # Kling's query path takes an external_task_id as well (the element's fixed external id).
        return next(t for t in self.element_tasks.values() if t.task_id.endswith(f"-{task_id}"))

    def finish_elements(self):
        for task_id, task in list(self.element_tasks.items()):
            self.element_tasks[task_id] = ElementTask(task_id, TaskState.SUCCEEDED, element_id=str(9000 + len(task_id)))
