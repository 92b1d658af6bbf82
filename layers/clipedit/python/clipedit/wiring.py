"""Composition root: builds each use case from settings and AWS/HTTP adapters, lazily and once.

Clients are created on first use, and each use case's module is imported by the property that
builds it, so a function imports only the use cases it runs (cold start).
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Mapping

from clipedit.config import Settings
from clipedit.domain.errors import ConfigError
from clipedit.domain.spec import SpecDefaults
from clipedit.ports import Metrics
from clipedit.usecases.common import StatusRecorder, iso

if TYPE_CHECKING:  # the use cases are imported where they are built (see the module docstring)
    from clipedit.usecases.cancel import CancelJob
    from clipedit.usecases.dispatch import IntakeDispatcher
    from clipedit.usecases.finalize import FinalizeJob
    from clipedit.usecases.intake import Intake
    from clipedit.usecases.queries import JobQueries
    from clipedit.usecases.retry import RetryJob
    from clipedit.usecases.submit import SubmitJob
    from clipedit.usecases.submit_manifest import SubmitManifest

# Kling answers create/query in well under a second; a result download may take longer per chunk.
API_TIMEOUT = {"connect": 5.0, "read": 20.0, "write": 20.0, "pool": 5.0}
DOWNLOAD_TIMEOUT = {"connect": 5.0, "read": 60.0, "write": 60.0, "pool": 5.0}


def _s3v4_config() -> Any:
    from botocore.config import Config

    return Config(signature_version="s3v4")


class SystemClock:
    def now(self) -> float:
        return time.time()


class Container:
    def __init__(self, settings: Settings, *, metrics: Metrics | None = None,
                 client_factory: Callable[..., Any] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        # The command line passes its own (a profile, or the local stack's endpoint); functions
        # use the default credentials chain.
        self._client_factory = client_factory
        self._clients: dict[str, Any] = {}

    # --- AWS clients --------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        """One client per service, shared by every adapter (a boto3 client costs ~10-40 ms to build
        at a cold start, and clients are thread-safe)."""
        if service not in self._clients:
            # SigV4 for S3 so presigned URLs work in every region.
            kwargs = {"config": _s3v4_config()} if service == "s3" else {}
            if self._client_factory is not None:
                self._clients[service] = self._client_factory(service, **kwargs)
            else:
                import boto3  # imported here so handler import time stays small

                self._clients[service] = boto3.client(service, **kwargs)
        return self._clients[service]

    @cached_property
    def jobs(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.dynamo_jobs import DynamoJobStore

        return DynamoJobStore(self.settings.jobs_table, self._client("dynamodb"))

    @cached_property
    def storage(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.s3_storage import S3ObjectStore

        return S3ObjectStore(self._client("s3"))

    @cached_property
    def events(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.aws_workflow import EventBridgePublisher

        return EventBridgePublisher(self._client("events"), self.settings.event_bus_name)

    @cached_property
    def workflow(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.aws_workflow import StepFunctionsWorkflow

        if not self.settings.state_machine_arn:
            raise ConfigError("STATE_MACHINE_ARN is required by the submit function")
        return StepFunctionsWorkflow(self._client("stepfunctions"), self.settings.state_machine_arn)

    # --- provider -----------------------------------------------------------------------------

    @cached_property
    def _secrets(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.secrets import SecretCache

        return SecretCache(self._client("secretsmanager"))

    def _provider_secret(self) -> dict[str, Any]:
        # Cached for max_age so a rotated key is picked up without a redeploy; never logged.
        value = self._secrets.get_json(self.settings.provider_secret_id, max_age=self.settings.secret_max_age_seconds)
        if not isinstance(value, dict):
            raise ConfigError("the provider secret must be a JSON object")
        return value

    @cached_property
    def _api_client(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.provider_http import api_client

        return api_client()  # shared by the provider adapters: one connection pool, one SSL context

    @cached_property
    def kling(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.kling import KlingCredentials, KlingProvider, KlingTokenSource

        tokens = KlingTokenSource(lambda: KlingCredentials.from_secret(self._provider_secret()))
        return KlingProvider(self.settings.kling_api_base_url, tokens, self._api_client)

    @cached_property
    def fal(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.fal import FalCredentials, FalProvider

        return FalProvider(lambda: FalCredentials.from_secret(self._provider_secret()), self._api_client,
                           self.settings.fal_queue_base_url)

    @cached_property
    def fal_webhooks(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.fal import FalCredentials
        from clipedit.adapters.fal_webhooks import FalJwks, FalWebhookVerifier

        return FalWebhookVerifier(FalJwks(self.settings.fal_jwks_url, self._api_client),
                                  lambda: FalCredentials.from_secret(self._provider_secret()).user_id)

    @property
    def providers(self) -> "ProviderRegistry":
        """The adapters by name; each job names its own (``provider`` on the job)."""
        return ProviderRegistry({"kling": lambda: self.kling, "fal": lambda: self.fal})

    @property
    def provider(self):  # type: ignore[no-untyped-def]
        """The default provider's adapter (jobs that do not name one)."""
        return self.providers[self.settings.default_provider.value]

    @cached_property
    def fetcher(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.http_fetch import HttpMediaFetcher
        from clipedit.adapters.safe_http import safe_client

        # The result URL is the provider's: only its CDN hosts, public addresses, checked redirects.
        return HttpMediaFetcher(safe_client(self.settings.result_url_policy, DOWNLOAD_TIMEOUT))

    @cached_property
    def batches(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.dynamo_jobs import DynamoBatchStore

        return DynamoBatchStore(self.settings.jobs_table, self._client("dynamodb"))

    @cached_property
    def element_cache(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.dynamo_jobs import DynamoElementCache

        return DynamoElementCache(self.settings.jobs_table, self._client("dynamodb"))

    @cached_property
    def documents(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.s3_documents import S3Documents

        return S3Documents(self._client("s3"))

    @cached_property
    def queue(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.s3_documents import SqsQueue

        if not self.settings.intake_queue_url:
            raise ConfigError("INTAKE_QUEUE_URL is required by the submit function")
        return SqsQueue(self._client("sqs"), self.settings.intake_queue_url)

    @cached_property
    def wake_queue(self):  # type: ignore[no-untyped-def]
        """Where a freed slot wakes the oldest waiting jobs: the wake queue (its own event source on
        the submit function, so a wake never queues behind uploads), else the intake queue."""
        from clipedit.adapters.s3_documents import SqsQueue

        url = self.settings.wake_queue_url or self.settings.intake_queue_url
        return SqsQueue(self._client("sqs"), url) if url else None

    @cached_property
    def inspector(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.media_inspector import RangeMediaInspector
        from clipedit.adapters.safe_http import safe_client

        # https references are the user's URLs: https, public addresses, the reference allowlist.
        return RangeMediaInspector(self._client("s3"), safe_client(self.settings.reference_url_policy, API_TIMEOUT))

    @cached_property
    def guard(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.dynamo_jobs import DynamoProviderGuard

        return DynamoProviderGuard(self.settings.jobs_table, self._client("dynamodb"))

    @cached_property
    def dead_letters(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.dead_letters import DeadLetters

        return DeadLetters(sqs=self._client("sqs"), dynamodb=self._client("dynamodb"),
                           dlq_url=self.settings.dead_letter_queue_url, queue_url=self.settings.intake_queue_url,
                           jobs_table=self.settings.jobs_table)

    @cached_property
    def reconcile(self):  # type: ignore[no-untyped-def]
        from clipedit.usecases.reconcile import Reconcile

        return Reconcile(jobs=self.jobs, providers=self.providers, guard=self.guard, finalize=self.finalize_job,
                         queue=self.queue, clock=SystemClock())

    @cached_property
    def recorder(self) -> StatusRecorder:
        from clipedit.usecases.backpressure import SlotRelease

        clock = SystemClock()
        release = SlotRelease(guard=self.guard, jobs=self.jobs, queue=self.wake_queue,
                              limit=self.settings.provider_concurrency_limit)
        return StatusRecorder(events=self.events, batches=self.batches, documents=self.documents,
                              now=lambda: iso(clock.now()), on_terminal=release, metrics=self.metrics)

    # --- use cases ----------------------------------------------------------------------------

    @cached_property
    def intake(self) -> Intake:
        from clipedit.usecases.intake import Intake, IntakeSettings

        s = self.settings
        return Intake(
            jobs=self.jobs,
            batches=self.batches,
            documents=self.documents,
            queue=self.queue,
            head_metadata=lambda ref: self.storage.head(ref).metadata,
            clock=SystemClock(),
            settings=IntakeSettings(
                inbox_bucket=s.inbox_bucket, incoming_prefix=s.incoming_prefix, jobs_prefix=s.jobs_prefix,
                batches_prefix=s.batches_prefix, presets_prefix=s.presets_prefix, output_prefix=s.output_prefix,
                default_preset=s.default_preset, allowed_buckets=s.allowed_input_buckets,
                defaults=SpecDefaults(mode=s.default_mode, model=s.default_model, provider=s.default_provider),
            ),
            provider_name=s.default_provider.value,
            recorder=self.recorder,
        )

    @cached_property
    def submit_job(self) -> SubmitJob:
        from clipedit.usecases.submit import SubmitJob, SubmitSettings

        s = self.settings
        return SubmitJob(
            jobs=self.jobs,
            storage=self.storage,
            inspector=self.inspector,
            providers=self.providers,
            elements=self.element_cache,
            workflow=self.workflow,
            recorder=self.recorder,
            clock=SystemClock(),
            settings=SubmitSettings(
                callback_base_url=s.callback_base_url,
                presign_ttl_seconds=s.presign_ttl_seconds,
                poll_interval_seconds=s.poll_interval_seconds,
                job_deadline_seconds=s.job_deadline_seconds,
                max_clip_seconds=s.max_clip_seconds,
            ),
            guard=self.guard,
            backpressure=s.backpressure,
            prepare_requests=self.prepare_queue,
            parents=lambda job: self.parent_progress(job),
        )

    @cached_property
    def prepare_queue(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.s3_documents import SqsQueue

        return SqsQueue(self._client("sqs"), self.settings.prepare_queue_url) if self.settings.prepare_queue_url else None

    @cached_property
    def prepare_clip(self):  # type: ignore[no-untyped-def]
        # Only the prepare function builds this: it alone has the media layer (PyAV) attached.
        from clipedit.usecases.prepare import PrepareClip, PrepareSettings
        from clipedit_media.transformer import PyAVTransformer

        def reference_fetcher():  # type: ignore[no-untyped-def]
            from clipedit.adapters.http_fetch import HttpMediaFetcher
            from clipedit.adapters.safe_http import safe_client

            return HttpMediaFetcher(safe_client(self.settings.reference_url_policy, DOWNLOAD_TIMEOUT))

        return PrepareClip(
            jobs=self.jobs, storage=self.storage, queue=self.queue, recorder=self.recorder, clock=SystemClock(),
            # Most clips are in S3: httpx and the CA bundle are loaded by the first https reference.
            fetcher=LazyMediaFetcher(reference_fetcher),
            transformer=PyAVTransformer(),
            settings=PrepareSettings(prepared_bucket=self.settings.inbox_bucket,
                                     prepared_prefix=self.settings.prepared_prefix),
            split=lambda job: self.split_long_clip(job),
        )

    def _long_clip_parts(self) -> dict[str, Any]:
        from clipedit.usecases.long_clip import LongClipSettings

        s = self.settings
        return dict(jobs=self.jobs, storage=self.storage, queue=self.queue, recorder=self.recorder,
                    clock=SystemClock(), settings=LongClipSettings(outputs_bucket=s.outputs_bucket,
                                                                  incoming_prefix=s.incoming_prefix,
                                                                  output_prefix=s.output_prefix))

    @cached_property
    def split_long_clip(self):  # type: ignore[no-untyped-def]
        # Prepare function only (PyAV): the parent's clip is decoded for its cut points.
        from clipedit.adapters.long_clip_media import PyAVLongClipMedia
        from clipedit.usecases.long_clip import SplitLongClip

        return SplitLongClip(media=PyAVLongClipMedia(), fetch_source=self.prepare_clip.download_source,
                             **self._long_clip_parts())

    @cached_property
    def stitch_long_clip(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.long_clip_media import PyAVLongClipMedia
        from clipedit.usecases.long_clip import StitchLongClip

        return StitchLongClip(media=PyAVLongClipMedia(), fetch_source=self.prepare_clip.download_source,
                              **self._long_clip_parts())

    @cached_property
    def parent_progress(self):  # type: ignore[no-untyped-def]
        from clipedit.usecases.long_clip import ParentProgress

        return ParentProgress(stitch_requests=self.prepare_queue, **self._long_clip_parts())

    @cached_property
    def dispatcher(self) -> IntakeDispatcher:
        from clipedit.usecases.dispatch import IntakeDispatcher

        return IntakeDispatcher(intake=self.intake, submit_job=self.submit_job, queue=self.queue)

    @cached_property
    def finalize_job(self) -> FinalizeJob:
        from clipedit.usecases.finalize import FinalizeJob, FinalizeSettings

        s = self.settings
        return FinalizeJob(
            jobs=self.jobs,
            storage=self.storage,
            providers=self.providers,
            verifiers=ProviderRegistry({"fal": lambda: self.fal_webhooks}),
            fetcher=self.fetcher,
            recorder=self.recorder,
            clock=SystemClock(),
            settings=FinalizeSettings(
                outputs_bucket=s.outputs_bucket,
                incoming_prefix=s.incoming_prefix,
                output_prefix=s.output_prefix,
                lease_seconds=s.finalize_lease_seconds,
                prices=s.prices,
            ),
            signal=self.poller_signal,
        )

    @cached_property
    def poller_signal(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.aws_workflow import StepFunctionsSignal

        return StepFunctionsSignal(lambda: self._client("stepfunctions"))

    @cached_property
    def cancel_job(self) -> CancelJob:
        from clipedit.usecases.cancel import CancelJob

        return CancelJob(jobs=self.jobs, providers=self.providers, recorder=self.recorder, clock=SystemClock())


    # --- reading back, retrying, submitting manifests (status API and command line) -----------

    @cached_property
    def job_index(self):  # type: ignore[no-untyped-def]
        from clipedit.adapters.dynamo_jobs import DynamoJobIndex

        return DynamoJobIndex(self.settings.jobs_table, self._client("dynamodb"))

    @cached_property
    def queries(self) -> JobQueries:
        from clipedit.usecases.queries import JobQueries

        return JobQueries(jobs=self.jobs, index=self.job_index, batches=self.batches, now=SystemClock().now)

    @cached_property
    def retry_job(self) -> RetryJob:
        from clipedit.usecases.retry import RetryJob

        return RetryJob(jobs=self.jobs, queue=self.queue, recorder=self.recorder, clock=SystemClock())

    @cached_property
    def review_job(self):  # type: ignore[no-untyped-def]
        from clipedit.usecases.review import ReviewJob

        return ReviewJob(jobs=self.jobs, events=self.events, clock=SystemClock())

    @cached_property
    def revise_job(self):  # type: ignore[no-untyped-def]
        from clipedit.usecases.review import ReviseJob

        return ReviseJob(jobs=self.jobs, queue=self.queue, recorder=self.recorder, clock=SystemClock())

    @cached_property
    def plan_batch(self):  # type: ignore[no-untyped-def]
        from clipedit.usecases.plan import PlanBatch

        return PlanBatch(intake=self.intake, inspector=self.inspector, prices=self.settings.prices,
                         inbox_bucket=self.settings.inbox_bucket, max_clip_seconds=self.settings.max_clip_seconds)

    @cached_property
    def submit_manifest(self) -> SubmitManifest:
        from clipedit.usecases.submit_manifest import SubmitManifest

        s = self.settings
        return SubmitManifest(writer=self.documents, inbox_bucket=s.inbox_bucket, jobs_prefix=s.jobs_prefix,
                              allowed_buckets=s.allowed_input_buckets,
                              defaults=SpecDefaults(mode=s.default_mode, model=s.default_model,
                                                    provider=s.default_provider))


class LazyMediaFetcher:
    """A MediaFetcher built on its first download (the ``build`` callable), not at cold start."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._fetcher: Any = None

    def open(self, url: str) -> Any:
        if self._fetcher is None:
            self._fetcher = self._build()
        return self._fetcher.open(url)


class ProviderRegistry(Mapping[str, Any]):
    """Name -> adapter, each built on first use (a Kling-only stack never builds the fal client)."""

    def __init__(self, factories: dict[str, Any]) -> None:
        self._factories = factories
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = self._factories[name]()  # KeyError for an unknown name, as a dict
        return self._built[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)
