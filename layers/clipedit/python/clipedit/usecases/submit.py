"""Submit: a RECEIVED job is checked, then becomes at most one provider task.

Money is spent only on valid work: the clip and every reference image are probed with ranged
reads against the model's limits before the provider is called. Idempotent by construction: every
step resumes from what the job record says was done, and the provider's ``external_task_id`` is
the job id, so a redelivered message never creates a second task.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NoReturn
from urllib.parse import quote

from clipedit.domain.backpressure import SQS_MAX_DELAY_SECONDS, BackpressureSettings, backoff_seconds, breaker_cooldown
from clipedit.domain.errors import MediaRejected, ProviderError, RetryLater, SpecError
from clipedit.domain.provider_errors import ErrorKind
from clipedit.domain.job import Job, JobStatus, ObjectRef
from clipedit.domain.manifest import MediaRef, stored_ref  # stored_ref: also importable from here
from clipedit.domain.media import check_image, check_size_before_probe, limits_for
from clipedit.domain.prepare_plan import framing_from_record, plan_prepare, plan_to_record
from clipedit.domain.segments import (
    DEFAULT_MAX_CLIP_SECONDS,
    SegmentRequest,
    check_first_part,
    decide_long_clip,
    estimate_cost,
    plan_parts,
)
from clipedit.ports import (
    CancellableProvider,
    Clock,
    EditProvider,
    EditRequest,
    ElementCache,
    InlineElement,
    JobStore,
    MediaInspector,
    MessageQueue,
    ObjectStore,
    ProviderGuard,
    ProviderTask,
    TaskState,
    Workflow,
)
from clipedit.usecases.backpressure import gate_full_reason
from clipedit.usecases.common import StatusRecorder, hash_token, iso, providers_by_name  # hash_token: also importable from here

ELEMENT_RECHECK_SECONDS = 10  # how soon a job waiting for its elements is looked at again
# A job waiting for its prepared clip is woken by the prepare step when the clip is ready; this is
# the backstop recheck, and how long a prepare request is left alone before it is sent again
# (longer than the prepare function's timeout, so a slow prepare is never run twice).
PREPARE_RECHECK_SECONDS = 300
PREPARE_RESEND_SECONDS = 960


@dataclass(frozen=True)
class SubmitSettings:
    callback_base_url: str | None
    presign_ttl_seconds: int
    poll_interval_seconds: int
    job_deadline_seconds: int
    # Where prepared clips go (a derived key per job; a lifecycle rule expires them).
    prepared_bucket: str | None = None
    # Long clips: the longest clip edited in parts (MaxClipSeconds).
    max_clip_seconds: int = DEFAULT_MAX_CLIP_SECONDS


@dataclass(frozen=True)
class SubmitOutcome:
    job_id: str | None
    status: str
    detail: str = ""


def all_images(job: Job) -> list[str]:
    images = list(job.image_urls or [])
    for element in job.elements or []:
        images += [element["frontal"], *element["references"]]
    return images


@dataclass(frozen=True)
class CheckedMedia:
    """What the checks before any money is spent found: the clip's facts, and either the prepare
    plan its framing needs (or None), or, for a long clip edited in parts, the segment request."""
    facts: Any
    framing: Any
    limits: Any
    plan: Any = None
    segment: SegmentRequest | None = None

    @property
    def billed_seconds(self) -> float:
        """The output seconds the provider bills: every part (overlaps included) of a long clip,
        ``duration`` in reference mode, the clip after a trim otherwise."""
        if self.segment is not None:
            return float(estimate_cost(plan_parts(self.segment, self.framing, self.limits), mode="pro").billed_seconds)
        if getattr(self.framing, "video_mode", None) == "reference" and getattr(self.framing, "duration", None):
            return float(self.framing.duration)
        if self.plan is not None and self.plan.duration_hint is not None:
            return float(self.plan.duration_hint)
        return float(self.facts.duration_seconds)


def check_media(inspector: MediaInspector, job: Job, *, max_clip_seconds: int) -> CheckedMedia:
    """The checks made before any money is spent: a ranged-read probe of the clip against the
    model's limits, the long-clip decision, the prepare plan its framing needs, every reference
    image. Raises MediaRejected / SpecError with the code users see. Shared by submit and by
    ``clipedit batch --plan``, so a plan judges a row as the pipeline will."""
    limits = limits_for(job.model or "o3")
    video = stored_ref(job.video_ref) if job.video_ref else MediaRef(
        bucket=job.input_bucket, key=job.input_key, version_id=job.input_version_id)
    if job.input_size and not job.video_ref:
        check_size_before_probe(job.input_size, limits)  # a 5 GB upload is refused unread
    facts = inspector.video(video)
    framing = framing_from_record(job.framing)
    decided = decide_long_clip(facts, framing, limits, max_clip_seconds=max_clip_seconds, mode=job.mode or "pro")
    if isinstance(decided, SegmentRequest):
        check_first_part(facts, framing, limits, decided, keep_audio=job.keep_audio is not False)
        checked = CheckedMedia(facts, framing, limits, segment=decided)
    else:
        checked = CheckedMedia(facts, decided, limits,
                               plan=plan_prepare(facts, decided, limits, keep_audio=job.keep_audio is not False))
    for image in all_images(job):
        try:
            check_image(inspector.image(stored_ref(image)), limits)
        except MediaRejected as problem:
            # Name the reference without its query string: a signed URL must not reach the record.
            where = image.split("?", 1)[0] if image.startswith("https://") else image
            raise MediaRejected(f"{where}: {problem.message}", code=problem.code) from None
    return checked


class SubmitJob:
    def __init__(
        self,
        *,
        jobs: JobStore,
        storage: ObjectStore,
        inspector: MediaInspector,
        provider: EditProvider | None = None,
        elements: ElementCache,
        workflow: Workflow,
        recorder: StatusRecorder,
        clock: Clock,
        settings: SubmitSettings,
        guard: ProviderGuard,
        backpressure: BackpressureSettings = BackpressureSettings(),
        new_token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        providers: Mapping[str, EditProvider] | None = None,
        prepare_requests: MessageQueue | None = None,
        parents: Callable[[Job], Job] | None = None,
    ) -> None:
        self._prepare_requests = prepare_requests
        self._parents = parents  # a long clip's parent job: counts its parts, asks for the stitch
        self._guard = guard
        self._backpressure = backpressure
        self._jobs = jobs
        self._storage = storage
        self._inspector = inspector
        # Each job names its provider (kling or fal); one adapter per name.
        self._providers = providers_by_name(providers, provider)
        self._elements = elements
        self._workflow = workflow
        self._recorder = recorder
        self._clock = clock
        self._settings = settings
        self._new_token = new_token

    def __call__(self, job_id: str, *, attempt: int = 0) -> SubmitOutcome:
        """``attempt`` counts the job's earlier waits (it drives the backoff)."""
        job = self._jobs.get(job_id)
        if job is None:
            raise RetryLater(f"job {job_id} does not exist yet")
        if job.status == JobStatus.RECEIVED:
            job = self._validate_media(job)
        if job.status == JobStatus.QUEUED and job.extra.get("parent_id"):
            job = self._unless_parent_cancelled(job)
        if job.status == JobStatus.QUEUED and self._needs_prepared_clip(job):
            job = self._request_prepare(job)
        if job.status == JobStatus.QUEUED:
            job = self._submit_to_provider(job, attempt)
        if job.status in (JobStatus.SUBMITTED, JobStatus.PROCESSING) and job.extra.get("long_clip"):
            if self._parents is None:
                raise RetryLater("long-clip parents are not handled by this function")
            job = self._parents(job)  # raises RetryLater while its parts run or the stitch does
        elif job.status in (JobStatus.SUBMITTED, JobStatus.PROCESSING):
            # Named after the job: a redelivered message finds the execution already there.
            self._workflow.start_poller(job.job_id, poll_interval_seconds=self._settings.poll_interval_seconds)
        return SubmitOutcome(job.job_id, job.status.value, job.error_code or "")

    def _unless_parent_cancelled(self, part: Job) -> Job:
        """A long clip's part whose parent was cancelled is never prepared or sent (nor billed)."""
        parent = self._jobs.get(str(part.extra["parent_id"]))
        if parent is None or parent.status != JobStatus.CANCELLED:
            return part
        return self._move(part, JobStatus.CANCELLED, error_code="CANCELLED", finished_at=iso(self._clock.now()),
                          error_message=f"its long clip {parent.job_id} was cancelled before this part was sent")

    def _provider_for(self, job: Job) -> EditProvider:
        provider = self._providers.get(job.provider)
        if provider is None:
            raise ProviderError(f"provider {job.provider!r} is not configured in this stack",
                                retryable=False, code="PROVIDER_NOT_CONFIGURED")
        return provider

    # --- checks before any money is spent ----------------------------------------------------

    def _validate_media(self, job: Job) -> Job:
        try:
            checked = check_media(self._inspector, job, max_clip_seconds=self._settings.max_clip_seconds)
        except (MediaRejected, SpecError) as problem:
            return self._move(job, JobStatus.REJECTED, error_code=problem.code, error_message=problem.message,
                              finished_at=iso(self._clock.now()))
        facts = checked.facts
        prepare = {"status": "pending", "plan": plan_to_record(checked.plan)} if checked.plan else None
        long_clip: dict[str, object] = {}
        if checked.segment is not None:
            prepare, long_clip = self._segment_fields(job, checked.segment, checked.framing, checked.limits)
        return self._move(job, JobStatus.QUEUED, input_size=job.input_size, prepare=prepare, **long_clip, video_facts={
            "container": facts.container, "duration_seconds": round(facts.duration_seconds, 3),
            "width": facts.width, "height": facts.height, "fps": round(facts.fps, 3),
            "has_audio": facts.has_audio, "size_bytes": facts.size_bytes, "codec": facts.video_codec,
            "rotation_degrees": facts.rotation_degrees})

    @staticmethod
    def _segment_fields(job: Job, request: SegmentRequest, framing: Any, limits: Any) -> tuple[dict, dict]:
        """A long clip edited in parts: the prepare step plans the parts (it decodes the clip for
        cut points); the estimate here (even parts) is on the record before anything is spent."""
        estimate = estimate_cost(plan_parts(request, framing, limits), mode=job.mode or "pro")
        prepare = {"status": "pending", "split": {"start": round(request.start, 3), "end": round(request.end, 3)},
                   "plan": {"reasons": [f"split {request.length:.2f} s into {estimate.parts} parts"]}}
        return prepare, {"long_clip": "segment", "parts_total": estimate.parts,
                         "estimated_seconds": estimate.billed_seconds, "estimated_units": str(estimate.units)}

    # --- the prepare step (reframe, trim, normalize) ------------------------------------------

    @staticmethod
    def _needs_prepared_clip(job: Job) -> bool:
        return bool(job.prepare) and job.prepare.get("status") != "done"

    def _request_prepare(self, job: Job) -> Job:
        """Ask the prepare function for the clip and wait like an element wait: no function sleeps;
        the prepare step wakes the job when the clip is ready (a backstop message rechecks)."""
        if self._prepare_requests is None:
            return self._move(job, JobStatus.FAILED, error_code="PREPARE_NOT_CONFIGURED", finished_at=iso(self._clock.now()),
                              error_message="the clip needs preparing but this stack has no prepare step configured")
        now = self._clock.now()
        requested = (job.prepare or {}).get("requested_at")
        if not requested or iso(now - PREPARE_RESEND_SECONDS) > requested:
            prepare = {**(job.prepare or {}), "requested_at": iso(now)}
            if self._jobs.set_fields(job.job_id, expected=JobStatus.QUEUED, fields={"prepare": prepare}):
                self._prepare_requests.send_all([{"clipedit": "prepare", "job_id": job.job_id}])
        self._wait(job, "preparing the clip (" + "; ".join((job.prepare or {}).get("plan", {}).get("reasons", [])) + ")",
                   PREPARE_RECHECK_SECONDS)

    @staticmethod
    def _all_images(job: Job) -> list[str]:
        return all_images(job)

    # --- elements (Kling's library) -----------------------------------------------------------

    def _element_ids(self, job: Job) -> list[str]:
        """Element ids for the job, creating each element once per distinct set of images."""
        provider = self._provider_for(job)
        if not job.elements or not provider.needs_element_library:
            return []
        ids: list[str] = []
        pending = 0
        for element in job.elements:
            refs = [element["frontal"], *element["references"]]
            content = hashlib.sha256("\n".join(self._inspector.content_hash(stored_ref(r)) for r in refs).encode()).hexdigest()
            element_id = self._element(content, refs, provider)
            if element_id is None:
                pending += 1
            else:
                ids.append(element_id)
        if pending:
            self._wait(job, f"{pending} element(s) still being created", ELEMENT_RECHECK_SECONDS)
        return ids

    def _element(self, content: str, refs: list[str], provider: EditProvider) -> str | None:
        now = iso(self._clock.now())
        cached = self._elements.get(content)
        if cached and cached.get("element_id"):
            return str(cached["element_id"])
        if cached and cached.get("task_id"):
            task = provider.get_element(cached["task_id"])
            if task.state == TaskState.SUCCEEDED and task.element_id:
                self._elements.complete(content, element_id=task.element_id, now=now)
                return task.element_id
            if task.state == TaskState.FAILED:
                self._elements.forget(content)
                raise ProviderError(f"creating the element failed: {task.message or 'no reason given'}",
                                    retryable=False, code="ELEMENT_FAILED")
            return None
        urls = [self._url_for(stored_ref(r)) for r in refs]
        external_id = f"e-{content[:40]}"  # fixed per image set: Kling keeps it unique per account
        try:
            task = provider.create_element(external_id=external_id, frontal_url=urls[0], reference_urls=urls[1:])
        except ProviderError as error:
            if not (error.provider_code == 1201 and "exist" in error.message.lower()):
                raise
            # Created before: by a job running now, or by one that crashed before recording it.
            # Adopt that task (read by its external id) instead of waiting for a record that may
            # never come.
            task = provider.get_element(external_id)
        self._elements.claim(content, task_id=task.task_id, now=now)
        if task.state == TaskState.SUCCEEDED and task.element_id:
            self._elements.complete(content, element_id=task.element_id, now=now)
            return task.element_id
        return None

    # --- the provider call --------------------------------------------------------------------

    def _url_for(self, ref: MediaRef) -> str:
        if ref.url:
            return ref.url
        return self._storage.presign_get(ObjectRef(ref.bucket or "", ref.key or "", ref.version_id),
                                         self._settings.presign_ttl_seconds)

    def _submit_to_provider(self, job: Job, attempt: int) -> Job:
        """Breaker, elements, gate, then at most one provider task. Every wait raises RetryLater with
        a delay (the message comes back then); nothing here sleeps."""
        now = self._clock.now()
        bp = self._backpressure
        if job.created_at and iso(now - bp.max_queue_wait_seconds) > job.created_at:
            return self._move(job, JobStatus.TIMED_OUT, error_code="PROVIDER_BUSY_TOO_LONG", finished_at=iso(now),
                              error_message=f"not submitted within {bp.max_queue_wait_seconds} s: "
                                            f"{job.wait_reason or 'the provider stayed busy or unavailable'}",
                              wait_reason=None, next_attempt_at=None)
        try:
            adapter = self._provider_for(job)
        except ProviderError as error:
            return self._provider_failed(job, error, attempt)
        provider = adapter.name
        breaker = self._guard.breaker(provider)
        if breaker.is_open(now):
            self._wait(job, f"provider {provider} paused: {breaker.reason}", breaker.seconds_left(now))
        try:
            element_ids = self._element_ids(job)
        except ProviderError as error:
            return self._provider_failed(job, error, attempt)
        if not self._guard.acquire_slot(provider, job.job_id, limit=bp.concurrency_limit):
            self._wait(job, gate_full_reason(bp.concurrency_limit),
                       backoff_seconds(attempt, base=bp.gate_recheck_seconds, cap=bp.gate_recheck_seconds * 4,
                                       key=job.job_id))
        owner = uuid.uuid4().hex
        if not self._jobs.claim_submission(job.job_id, owner=owner, now=iso(now),
                                           until=iso(now + bp.submit_lease_seconds)):
            current = self._jobs.get(job.job_id) or job
            if current.status != JobStatus.QUEUED:
                return current  # another delivery submitted it meanwhile
            raise RetryLater("another delivery is submitting this job", delay_seconds=bp.submit_lease_seconds)
        try:
            task = self._existing_task(job, adapter) if job.submit_attempts else None
            if task is None:
                task = self._create_task(job, element_ids, adapter)
        except ProviderError as error:
            self._jobs.release_submission(job.job_id, owner=owner)
            return self._provider_failed(job, error, attempt)
        if task is None:  # the claim was lost to a concurrent status change
            return self._jobs.get(job.job_id) or job
        if breaker.failures or breaker.opened:
            self._guard.reset_breaker(provider)
        now = self._clock.now()
        # Written before the SQS message is acknowledged: fal has no idempotency key, so the
        # request id and its URLs are all that stop a redelivery from paying twice.
        moved = self._move(
            job,
            JobStatus.SUBMITTED,
            provider_task_id=task.task_id,
            provider_endpoint=task.endpoint,
            provider_urls=task.urls or None,
            element_ids=element_ids or None,
            submitted_at=iso(now),
            deadline_at=iso(now + self._settings.job_deadline_seconds),
            wait_reason=None,
            next_attempt_at=None,
            submit_claim_owner=None,
            submit_claim_until=None,
        )
        if moved.status == JobStatus.CANCELLED and isinstance(adapter, CancellableProvider):
            # Cancelled while the provider call was in flight: do not let the orphan run (and bill).
            adapter.cancel(task.task_id, urls=task.urls)
        return moved

    @staticmethod
    def _existing_task(job: Job, adapter: EditProvider) -> ProviderTask | None:
        """An earlier attempt may have created the task and lost the answer (a timeout, a 5xx after
        the fact): look it up by our idempotency key before creating another (Kling; fal has no
        such key and answers None)."""
        return adapter.find_by_external_id(job.job_id)

    def _create_task(self, job: Job, element_ids: list[str], adapter: EditProvider) -> ProviderTask | None:
        token = self._new_token()
        # The token's hash is stored before the provider is called: its first callback may arrive
        # before the SUBMITTED write and must not be turned away (measured in 1 % of jobs under load).
        # The attempt is counted first too, so a crash or a lost answer leads to a lookup next time.
        if not self._jobs.set_fields(job.job_id, expected=JobStatus.QUEUED,
                                     fields={"callback_token_hash": hash_token(token),
                                             "submit_attempts": (job.submit_attempts or 0) + 1}):
            return None
        if job.prepare and job.prepare.get("status") == "done":
            video = MediaRef(bucket=job.prepare["bucket"], key=job.prepare["key"])
        else:
            video = stored_ref(job.video_ref) if job.video_ref else MediaRef(
                bucket=job.input_bucket, key=job.input_key, version_id=job.input_version_id)
        framing = job.framing or {}
        request = EditRequest(
            external_id=job.job_id,
            prompt=job.prompt or "",
            video_url=self._url_for(video),
            model=job.model or "o3",
            mode=job.mode or "pro",
            keep_audio=True if job.keep_audio is None else job.keep_audio,
            callback_url=self._callback_url(job.job_id, token, adapter.name),
            image_urls=tuple(self._url_for(stored_ref(u)) for u in job.image_urls or []),
            element_ids=tuple(element_ids),
            elements=self._inline_elements(job, adapter),
            video_mode=framing.get("video_mode", "edit"),
            aspect_ratio=framing.get("aspect_ratio") if framing.get("video_mode") == "reference" else None,
            duration=framing.get("duration") if framing.get("video_mode") == "reference" else None,
            shot_type=framing.get("shot_type"),
        )
        try:
            return adapter.submit(request)
        except ProviderError as error:
            if error.provider_code == 1201 and "already exists" in error.message.lower():
                # An earlier attempt created the task but we never recorded it: adopt it. That
                # attempt's token is lost (its callbacks get 401); the poller finishes the job.
                task = adapter.find_by_external_id(job.job_id)
                if task is None:
                    raise ProviderError("the provider says the task exists but cannot find it yet",
                                        kind=ErrorKind.TRANSIENT, code="PROVIDER_INCONSISTENT") from error
                return task
            raise

    def _provider_failed(self, job: Job, error: ProviderError, attempt: int) -> Job:
        """One handling per error kind (clipedit.domain.provider_errors)."""
        provider = job.provider
        bp = self._backpressure
        now = self._clock.now()
        if error.kind is ErrorKind.REJECTED:
            return self._move(job, JobStatus.FAILED, error_code=error.code, error_message=error.message,
                              finished_at=iso(now), wait_reason=None, next_attempt_at=None)
        self._recorder.provider_refused(error.code)
        if error.kind is ErrorKind.THROTTLED:
            self._wait(job, f"provider {provider} throttled: {error.message}",
                       backoff_seconds(attempt, base=bp.retry_base_seconds, cap=bp.retry_max_seconds, key=job.job_id))
        state = self._guard.count_failure(provider)
        cooldown = breaker_cooldown(state, error.kind, bp)
        if cooldown is not None and self._guard.open_breaker(provider, now=now, until=now + cooldown,
                                                             reason=error.message):
            self._recorder.provider_paused(provider, kind=error.kind.value, code=error.code, reason=error.message,
                                           seconds=cooldown)
        if cooldown is not None:
            self._wait(job, f"provider {provider} paused: {error.message}", cooldown)
        self._wait(job, f"provider {provider} unavailable: {error.message}",
                   backoff_seconds(attempt, base=bp.retry_base_seconds, cap=bp.retry_max_seconds, key=job.job_id))
        raise AssertionError("unreachable")  # pragma: no cover - _wait always raises

    def _wait(self, job: Job, reason: str, delay_seconds: int) -> NoReturn:
        """Record why the job waits (users see it on the record) and hand the wait to the queue."""
        delay_seconds = max(1, min(SQS_MAX_DELAY_SECONDS, int(delay_seconds)))
        self._jobs.set_fields(job.job_id, expected=JobStatus.QUEUED, fields={
            "wait_reason": reason, "next_attempt_at": iso(self._clock.now() + delay_seconds)})
        raise RetryLater(reason, delay_seconds=delay_seconds)

    def _inline_elements(self, job: Job, provider: EditProvider) -> tuple[InlineElement, ...]:
        if provider.needs_element_library or not job.elements:
            return ()
        return tuple(
            InlineElement(self._url_for(stored_ref(e["frontal"])),
                          tuple(self._url_for(stored_ref(r)) for r in e["references"]))
            for e in job.elements
        )

    # --- helpers ------------------------------------------------------------------------------

    def _callback_url(self, job_id: str, token: str, provider: str) -> str | None:
        base = self._settings.callback_base_url
        if not base:
            return None
        return f"{base.rstrip('/')}/callbacks/{quote(provider)}/{quote(job_id)}?token={quote(token)}"

    def _move(self, job: Job, target: JobStatus, **fields: object) -> Job:
        updated = self._jobs.transition(job.job_id, target, now=iso(self._clock.now()), fields=fields)
        if updated is None:
            # Someone else moved the job first (a concurrent delivery): carry on from its state.
            current = self._jobs.get(job.job_id)
            if current is None:  # pragma: no cover
                raise RetryLater(f"job {job.job_id} disappeared")
            return current
        self._recorder(updated, job.status.value)
        return updated
