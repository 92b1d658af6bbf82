"""Finalize: bring a submitted job to its end, from a provider callback or from the poller.

The callback body is never trusted: it only says "look now". The task is re-fetched from the
provider. The callback answers at once: when the task is done it records ``provider_done_at`` (a
conditional write) and resumes the poller's wait (the task token the poller parked on the job);
the poller's next step copies the result. The copy runs under a conditional lease, so two checks
(or a check and a duplicate callback) can never both finalize one job.

The poller's wait is a Step Functions ``.waitForTaskToken`` task whose timeout is the poll
interval (``park``): the callback ends it at once; with no callback it times out into a check.
Either write (the token, the done mark) returns the item as written, so whichever lands second
sees the other and resumes the wait: a callback is never lost between the two.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass, field
from typing import Mapping

from clipedit.domain.errors import ClipeditError, ProviderError, UrlRejected, WebhookRejected
from clipedit.domain.job import Job, JobStatus
from clipedit.domain.keys import output_key_for
from clipedit.domain.pricing import PriceTable
from clipedit.ports import (
    CallbackVerifier,
    Clock,
    EditProvider,
    JobStore,
    MediaFetcher,
    ObjectStore,
    PollerSignal,
    ProviderTask,
    TaskState,
)
from clipedit.usecases.common import StatusRecorder, hash_token, iso, providers_by_name

# Longer than the finalize function's timeout, so a live finalize is never overtaken, while a
# crashed one's claim expires and the next poll can take the job over.
FINALIZE_LEASE_SECONDS = 360
PROVIDER_DONE = "provider_done_at"  # set by a verified callback that found the task finished
WAIT_TOKEN = "poll_wait_token"  # the Step Functions task token the poller is waiting on
# Set by a callback that arrived before submit recorded the task id (the provider finished before
# the SUBMITTED write) and found, by our external id, the task ended: the poller's first park then
# checks at once instead of waiting a whole poll interval.
EARLY_DONE = "provider_done_before_submitted_at"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinalizeSettings:
    outputs_bucket: str
    incoming_prefix: str
    output_prefix: str
    lease_seconds: int = FINALIZE_LEASE_SECONDS
    prices: PriceTable = field(default_factory=PriceTable)


@dataclass(frozen=True)
class FinalizeOutcome:
    job_id: str
    status: str
    terminal: bool

    def as_dict(self) -> dict[str, object]:
        return {"job_id": self.job_id, "status": self.status, "terminal": self.terminal}


class JobNotFound(ClipeditError):
    code = "JOB_NOT_FOUND"


class CallbackRejected(ClipeditError):
    """Wrong or missing token, or no such job: the same answer either way."""

    code = "CALLBACK_REJECTED"


class TaskMismatch(ClipeditError):
    """The provider's task does not belong to this job; nothing is changed."""

    code = "TASK_MISMATCH"


class FinalizeJob:
    def __init__(
        self,
        *,
        jobs: JobStore,
        storage: ObjectStore,
        provider: EditProvider | None = None,
        fetcher: MediaFetcher,
        recorder: StatusRecorder,
        clock: Clock,
        settings: FinalizeSettings,
        providers: Mapping[str, EditProvider] | None = None,
        verifiers: Mapping[str, CallbackVerifier] | None = None,
        signal: PollerSignal | None = None,
    ) -> None:
        self._signal = signal
        self._jobs = jobs
        self._storage = storage
        # Each job names its provider; a provider that signs its callbacks (fal) has a verifier.
        self._providers = providers_by_name(providers, provider)
        self._verifiers = verifiers if verifiers is not None else {}  # built on first use, per provider
        self._fetcher = fetcher
        self._recorder = recorder
        self._clock = clock
        self._settings = settings

    @property
    def provider_names(self) -> frozenset[str]:
        return frozenset(self._providers)

    # --- entry points -----------------------------------------------------------------------

    def on_callback(self, job_id: str, token: str | None, *, provider: str | None = None,
                    headers: Mapping[str, str] | None = None, body: bytes = b"") -> FinalizeOutcome:
        job = self._jobs.get(job_id)
        expected = job.callback_token_hash if job else None
        presented = hash_token(token or "")
        # Compare even when the job is missing so timing does not reveal which job ids exist.
        valid = hmac.compare_digest(presented, expected or hash_token(uuid.uuid4().hex))
        if job is None or not expected or not token or not valid:
            raise CallbackRejected("invalid callback token")
        if provider is not None and provider != job.provider:
            raise CallbackRejected("invalid callback token")  # the job's URL names its own provider
        verifier = self._verifiers.get(job.provider)
        if verifier is not None:
            # Token and signature both: the token binds the URL to the job, the signature proves
            # the provider sent it. WebhookRejected says which check failed.
            try:
                verifier.verify(headers or {}, body, task_id=job.provider_task_id)
            except WebhookRejected as rejected:
                if not job.terminal:  # only token holders get here: safe to note on the record
                    self._jobs.set_fields(job.job_id, expected=job.status, fields={
                        "callback_rejected": f"{iso(self._clock.now())} {rejected.message}"})
                raise
        if job.status == JobStatus.QUEUED and not job.provider_task_id:
            if self._note_early_done(job):
                return self._outcome(job)
            job = self._jobs.get(job_id) or job  # the SUBMITTED write landed meanwhile: as usual
        # No copy on the request path: note "provider done", wake the poller, answer.
        outcome = self._advance(job, source="callback", copy=False)
        if outcome.terminal:  # failed at the provider, or past the deadline: end the wait too
            self._wake(self._jobs.get(job_id))
        return outcome

    def park(self, job_id: str, token: str) -> FinalizeOutcome:
        """The poller waits on ``token`` (timeout: the poll interval). Resumed at once when there
        is nothing to wait for: the job ended, or a callback already found the task done."""
        if not token:
            raise ValueError("park needs the poller's task token")  # the state machine then checks at once
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        parked = None if job.terminal else self._jobs.mark_running(job_id, {WAIT_TOKEN: token})
        latest = parked or self._jobs.get(job_id) or job
        if latest.terminal or (parked is not None and (parked.extra.get(PROVIDER_DONE) or parked.extra.get(EARLY_DONE))):
            self._resume(token)
        return self._outcome(latest)

    def on_poll(self, job_id: str) -> FinalizeOutcome:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        marks = {name: job.extra[name] for name in (PROVIDER_DONE, EARLY_DONE) if job.extra.get(name)}
        done_mark = bool(marks)
        try:
            # Woken by a callback: the callback's door finishes the job (the copy runs here).
            outcome = self._advance(job, source="callback" if done_mark else "poller")
        except ProviderError as error:
            if not error.retryable:
                raise
            # A provider hiccup (5xx, timeout, a CDN error mid-copy) is not the job's end: the next
            # poll looks again, and the job deadline still bounds the wait.
            log.warning("provider unavailable during a poll", extra={"job_id": job_id, "error": error.message})
            outcome = self._outcome(self._jobs.get(job_id) or job)
        if done_mark and not outcome.terminal:
            # The copy did not finish (CDN error, another copier's lease): the next park waits a
            # full interval instead of resuming at once. Only this mark: a newer callback's stays.
            for name, value in marks.items():
                self._jobs.mark_running(job_id, {name: None}, expect={name: value})
        return outcome

    def expire(self, job_id: str, reason: str) -> FinalizeOutcome:
        """The poller gave up (finalize kept failing): end the job rather than leave it stuck."""
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        if job.terminal:
            return self._outcome(job)
        return self._end(job, JobStatus.TIMED_OUT, "POLLER_GAVE_UP", reason, source="poller")

    def end(self, job_id: str, target: JobStatus, code: str, message: str, *, source: str) -> FinalizeOutcome:
        """End a running job for a reason found outside a check (the reconcile command)."""
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        if job.terminal:
            return self._outcome(job)
        return self._end(job, target, code, message, source=source)

    # --- the state machine of one check -------------------------------------------------------

    def _advance(self, job: Job, *, source: str, copy: bool = True) -> FinalizeOutcome:
        if job.terminal or not job.provider_task_id:
            return self._outcome(job)  # a CANCELLED job stays cancelled, whatever arrives late
        provider = self._providers.get(job.provider)
        if provider is None:
            raise JobNotFound(f"job {job.job_id} names provider {job.provider!r}, which this stack does not have")
        task = provider.get_task(job.provider_task_id, urls=job.provider_urls)
        if task.external_id and task.external_id != job.job_id:
            raise TaskMismatch(
                f"provider task {task.task_id} belongs to {task.external_id}, not {job.job_id}"
            )
        if task.state == TaskState.SUCCEEDED:
            return self._succeed(job, task, source) if copy else self._note_done(job)
        if task.state == TaskState.FAILED:
            message = task.message or "the provider reported the task as failed without a reason"
            return self._end(job, JobStatus.FAILED, task.error_code or "PROVIDER_TASK_FAILED", message, source=source)
        if self._past_deadline(job):
            return self._end(
                job,
                JobStatus.TIMED_OUT,
                "DEADLINE_EXCEEDED",
                f"the provider did not finish task {job.provider_task_id} before {job.deadline_at}",
                source=source,
            )
        if task.state == TaskState.RUNNING and job.status == JobStatus.SUBMITTED:
            moved = self._jobs.transition(
                job.job_id, JobStatus.PROCESSING, now=iso(self._clock.now())
            )
            if moved is not None:
                self._recorder(moved, job.status.value)
                job = moved
        return self._outcome(job)

    def _note_early_done(self, job: Job) -> bool:
        """A callback for a QUEUED job with no task id yet: submit's create call answered but its
        SUBMITTED write has not landed (bench/catalog.py, 0.05 s of processing: such a row waited
        the whole 300 s poll interval). True if handled here: the task, looked up by our external
        id, still runs (nothing to note) or ended (noted for the first park). False if the job
        moved on meanwhile: the caller reads it again."""
        provider = self._providers.get(job.provider)
        try:
            task = provider.find_by_external_id(job.job_id) if provider is not None else None
        except ProviderError:
            return True  # a provider hiccup: the poll interval still backs the wait up
        if task is None or task.state not in (TaskState.SUCCEEDED, TaskState.FAILED):
            return True  # nothing to note (fal keeps no external id: its poll interval backs this up)
        return self._jobs.set_fields(job.job_id, expected=job.status, fields={EARLY_DONE: iso(self._clock.now())})

    def _note_done(self, job: Job) -> FinalizeOutcome:
        noted = self._jobs.mark_running(job.job_id, {PROVIDER_DONE: iso(self._clock.now())})
        if noted is None:  # ended meanwhile (cancelled, finalized by a check)
            return self._outcome(self._jobs.get(job.job_id) or job)
        self._wake(noted)
        return self._outcome(noted)

    def _wake(self, job: Job | None) -> None:
        token = job.extra.get(WAIT_TOKEN) if job else None
        if token:
            self._resume(str(token))

    def _resume(self, token: str) -> None:
        if self._signal is None:
            return
        try:
            self._signal.resume(token)
        except Exception as error:  # noqa: BLE001 - the poll interval backs up a failed resume
            log.warning("could not resume the poller; it checks at its next interval",
                        extra={"error": type(error).__name__})

    def _succeed(self, job: Job, task: ProviderTask, source: str) -> FinalizeOutcome:
        if not task.video_url:
            return self._end(
                job, JobStatus.FAILED, "PROVIDER_NO_OUTPUT", "the provider reported success but no video URL",
                source=source,
            )
        owner = uuid.uuid4().hex
        now = self._clock.now()
        if not self._jobs.acquire_lease(
            job.job_id, owner=owner, now=iso(now), until=iso(now + self._settings.lease_seconds)
        ):
            # Someone else is finalizing (or just did): report where the job stands.
            return self._outcome(self._jobs.get(job.job_id) or job)
        output_key = job.planned_output_key or output_key_for(
            job.input_key,
            incoming_prefix=self._settings.incoming_prefix,
            output_prefix=self._settings.output_prefix,
        )
        try:
            with self._fetcher.open(task.video_url) as chunks:
                size = self._storage.upload_stream(
                    self._settings.outputs_bucket,
                    output_key,
                    chunks,
                    content_type="video/mp4",
                    metadata={"job-id": job.job_id, "provider-task-id": task.task_id},
                )
        except (UrlRejected, ProviderError) as error:
            self._jobs.release_lease(job.job_id, owner=owner)
            if isinstance(error, ProviderError) and error.retryable:
                raise  # 5xx/429 from the CDN: the next check copies again
            # Refused by the fetch policy, too large, 4xx: fetching again cannot succeed.
            return self._end(job, JobStatus.FAILED, error.code, error.message, source=source)
        except Exception:
            # An error we can see: let the next check retry at once. A crash (timeout, out of
            # memory) runs no cleanup at all; the lease expiring lets the poller take over then.
            self._jobs.release_lease(job.job_id, owner=owner)
            raise
        cost = self._settings.prices.actual(
            provider=job.provider, model=job.model or "o3", mode=job.mode or "pro",
            seconds=task.duration_seconds or (job.video_facts or {}).get("duration_seconds"),
            provider_units=task.units)
        updated = self._jobs.transition(
            job.job_id,
            JobStatus.SUCCEEDED,
            now=iso(self._clock.now()),
            lease_owner=owner,
            fields={
                "output_bucket": self._settings.outputs_bucket,
                "output_key": output_key,
                "output_size": size,
                "output_duration_seconds": task.duration_seconds,
                "provider_units": task.units,
                "cost_usd": cost.usd if cost else None,
                "cost_source": cost.source if cost else None,
                "finished_at": iso(self._clock.now()),
                "finalized_by": source,
            },
        )
        if updated is None:  # pragma: no cover - only if the lease expired mid-copy
            return self._outcome(self._jobs.get(job.job_id) or job)
        self._recorder(updated, job.status.value)
        return self._outcome(updated)

    def _end(self, job: Job, target: JobStatus, code: str, message: str, *, source: str) -> FinalizeOutcome:
        updated = self._jobs.transition(
            job.job_id,
            target,
            now=iso(self._clock.now()),
            require_no_lease=True,
            fields={"error_code": code, "error_message": message, "finished_at": iso(self._clock.now()),
                    "finalized_by": source},
        )
        if updated is None:
            return self._outcome(self._jobs.get(job.job_id) or job)
        self._recorder(updated, job.status.value)
        return self._outcome(updated)

    def _past_deadline(self, job: Job) -> bool:
        return bool(job.deadline_at) and iso(self._clock.now()) > str(job.deadline_at)

    @staticmethod
    def _outcome(job: Job) -> FinalizeOutcome:
        return FinalizeOutcome(job.job_id, job.status.value, job.terminal)
