"""In-memory implementations of the ports, with the same conditional semantics as the adapters."""

from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Mapping

from clipedit.domain.errors import MediaRejected, ProviderError
from clipedit.domain.job import Job, JobStatus, ObjectRef, sources_of
from clipedit.ports import EditRequest, ObjectInfo, ProviderTask, TaskState


class FakeClock:
    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


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
                setattr(job, name, value)
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
    name: str = "kling"
    tasks: dict[str, ProviderTask] = field(default_factory=dict)
    requests: list[EditRequest] = field(default_factory=list)
    submit_errors: list[ProviderError] = field(default_factory=list)
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
        return task

    def get_task(self, task_id: str) -> ProviderTask:
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
