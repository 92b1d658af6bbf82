"""Typed configuration, read once from the environment at cold start and validated there.

A misconfigured function fails at init with every problem listed, never halfway through a job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlparse

from clipedit.domain.backpressure import BackpressureSettings
from clipedit.domain.errors import ConfigError
from clipedit.domain.pricing import PriceTable
from clipedit.domain.spec import Mode, Model, Provider
from clipedit.domain.url_policy import RESULT_HOSTS, UrlPolicy

FAL_QUEUE_BASE_URL = "https://queue.fal.run"
# fal's webhook keys, as fal's current webhook docs name them; the adapter also tries the older
# rest.alpha.fal.ai host when no key verifies (provider-apis.md, "Checked again").
FAL_JWKS_URL = "https://rest.fal.ai/.well-known/jwks.json"


# A poller execution writes about 13 history events per poll cycle (park, its timeout, the check,
# the choice); Step Functions stops an execution at 25,000. 1,500 cycles leave room for retries.
MAX_POLL_CYCLES = 1500


def poller_limits(poll_interval: int, deadline: int, execution_timeout: int) -> list[str]:
    """What the template's parameter bounds cannot say: the relations between them."""
    problems = []
    if poll_interval > 0 and deadline / poll_interval > MAX_POLL_CYCLES:
        problems.append(
            f"JOB_DEADLINE_SECONDS / POLL_INTERVAL_SECONDS is {deadline // poll_interval} poll cycles; a poller "
            f"execution passes Step Functions' 25,000 history events beyond {MAX_POLL_CYCLES}: raise the interval "
            f"to at least {-(-deadline // MAX_POLL_CYCLES)} s or shorten the deadline")
    if execution_timeout and execution_timeout <= deadline + poll_interval:
        problems.append(
            f"EXECUTION_TIMEOUT_SECONDS ({execution_timeout}) must exceed JOB_DEADLINE_SECONDS + POLL_INTERVAL_SECONDS "
            f"({deadline + poll_interval}), so the job deadline (TIMED_OUT on the job) fires before the hard stop")
    return problems


@dataclass(frozen=True)
class Settings:
    jobs_table: str
    inbox_bucket: str
    outputs_bucket: str
    event_bus_name: str
    provider_secret_id: str
    kling_api_base_url: str
    default_provider: Provider = Provider.KLING  # for jobs that do not name one
    fal_queue_base_url: str = FAL_QUEUE_BASE_URL
    fal_jwks_url: str = FAL_JWKS_URL
    incoming_prefix: str = "incoming/"
    output_prefix: str = "edited/"
    default_model: Model = Model.O3
    default_mode: Mode = Mode.PRO
    poll_interval_seconds: int = 30
    job_deadline_seconds: int = 3600
    presign_ttl_seconds: int = 3600
    jobs_prefix: str = "jobs/"
    batches_prefix: str = "batches/"
    presets_prefix: str = "presets/"
    default_preset: str | None = None
    allowed_input_buckets: frozenset[str] = frozenset()
    intake_queue_url: str | None = None  # submit only (fan-out of manifests and batches)
    state_machine_arn: str | None = None  # submit only
    callback_base_url: str | None = None  # submit only
    secret_max_age_seconds: int = 300
    # Outbound fetches of URLs we did not build (SSRF guard, see clipedit.domain.url_policy):
    result_host_allowlist: tuple[str, ...] = RESULT_HOSTS  # provider result videos (Kling's and fal's CDNs)
    reference_host_allowlist: tuple[str, ...] = ()  # users' https references; empty = any public host
    allow_http_fetch: bool = False  # result URLs over plain http (the local emulator only)
    allow_private_network_fetch: bool = False  # result URLs on loopback/private addresses (local only)
    # Backpressure (see clipedit.domain.backpressure for what each one does):
    provider_concurrency_limit: int = 5
    retry_base_seconds: int = 2
    retry_max_seconds: int = 300
    gate_recheck_seconds: int = 120
    breaker_failure_threshold: int = 5
    breaker_cooldown_seconds: int = 60
    account_cooldown_seconds: int = 900
    max_queue_wait_seconds: int = 86400
    finalize_lease_seconds: int = 360  # longer than the finalize function's timeout
    max_receive_count: int = 5  # the intake queue's redrive maxReceiveCount (last try records why)
    dead_letter_queue_url: str | None = None  # operator commands only
    # The prepare step (reframe, trim, normalize): submit sends it work; it writes prepared clips
    # under the prefix in the inbox bucket (a lifecycle rule expires them).
    prepare_queue_url: str | None = None
    prepared_prefix: str = "prepared/"
    # Long clips: the longest clip edited in parts (long_clip segment).
    max_clip_seconds: int = 120
    # Wake-ups of gate-waiting jobs travel on their own queue so they never wait behind an upload
    # backlog on the intake queue (unset: they go on the intake queue).
    wake_queue_url: str | None = None
    # Prices per provider/model/mode per output second (clipedit.domain.pricing), list prices
    # unless the stack's PriceOverrides parameter (JSON) says otherwise.
    prices: PriceTable = field(default_factory=PriceTable)

    @property
    def backpressure(self) -> BackpressureSettings:
        return BackpressureSettings(
            concurrency_limit=self.provider_concurrency_limit,
            retry_base_seconds=self.retry_base_seconds,
            retry_max_seconds=self.retry_max_seconds,
            gate_recheck_seconds=self.gate_recheck_seconds,
            breaker_failure_threshold=self.breaker_failure_threshold,
            breaker_cooldown_seconds=self.breaker_cooldown_seconds,
            account_cooldown_seconds=self.account_cooldown_seconds,
            max_queue_wait_seconds=self.max_queue_wait_seconds,
        )

    @property
    def result_url_policy(self) -> UrlPolicy:
        return UrlPolicy(self.result_host_allowlist, allow_http=self.allow_http_fetch,
                         allow_private=self.allow_private_network_fetch)

    @property
    def reference_url_policy(self) -> UrlPolicy:
        # Users' URLs: https and public addresses only, whatever the local stack sets for results.
        return UrlPolicy(self.reference_host_allowlist)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                problems.append(f"{name} is required")
            return value

        def integer(name: str, default: int, minimum: int, maximum: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{name} must be an integer, got {raw!r}")
                return default
            if not minimum <= value <= maximum:
                problems.append(f"{name} must be between {minimum} and {maximum}, got {value}")
            return value

        def url(name: str, default: str | None) -> str | None:
            raw = env.get(name, "").strip() or default
            if raw is None:
                return None
            parsed = urlparse(raw)
            if parsed.scheme not in ("https", "http") or not parsed.netloc:
                problems.append(f"{name} must be an http(s) URL, got {raw!r}")
            return raw.rstrip("/")

        def choice(name: str, enum_type: type, default: object) -> object:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            try:
                return enum_type(raw)
            except ValueError:
                allowed = ", ".join(m.value for m in enum_type)
                problems.append(f"{name} must be one of {allowed}, got {raw!r}")
                return default

        def boolean(name: str, default: bool) -> bool:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            if raw in ("true", "1", "yes"):
                return True
            if raw in ("false", "0", "no"):
                return False
            problems.append(f"{name} must be true or false, got {raw!r}")
            return default

        def hosts(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
            entries = tuple(h.strip() for h in env.get(name, "").split(",") if h.strip()) or default
            try:
                return UrlPolicy(entries).allowed_hosts  # validated and normalized
            except ValueError as error:
                problems.append(f"{name}: {error}")
                return default

        def prefix(name: str, default: str) -> str:
            value = env.get(name, default)
            if value and not value.endswith("/"):
                problems.append(f"{name} must end with '/', got {value!r}")
            return value

        def price_table(name: str) -> PriceTable:
            try:
                return PriceTable.from_json(env.get(name, ""))
            except ConfigError as error:
                problems.append(error.message)
                return PriceTable()

        settings = cls(
            jobs_table=required("JOBS_TABLE"),
            inbox_bucket=required("INBOX_BUCKET"),
            outputs_bucket=required("OUTPUTS_BUCKET"),
            event_bus_name=required("EVENT_BUS_NAME"),
            provider_secret_id=required("PROVIDER_SECRET_ID"),
            kling_api_base_url=url("KLING_API_BASE_URL", "https://api-singapore.klingai.com") or "",
            default_provider=choice("DEFAULT_PROVIDER", Provider, Provider.KLING),  # type: ignore[arg-type]
            fal_queue_base_url=url("FAL_QUEUE_BASE_URL", FAL_QUEUE_BASE_URL) or "",
            fal_jwks_url=url("FAL_JWKS_URL", FAL_JWKS_URL) or "",
            incoming_prefix=prefix("INCOMING_PREFIX", "incoming/"),
            output_prefix=prefix("OUTPUT_PREFIX", "edited/"),
            default_model=choice("DEFAULT_MODEL", Model, Model.O3),  # type: ignore[arg-type]
            default_mode=choice("DEFAULT_MODE", Mode, Mode.PRO),  # type: ignore[arg-type]
            # >= 1: it is the poller's task-token timeout (Step Functions wants a positive integer).
            poll_interval_seconds=integer("POLL_INTERVAL_SECONDS", 30, 1, 3600),
            job_deadline_seconds=integer("JOB_DEADLINE_SECONDS", 3600, 1, 7 * 24 * 3600),
            presign_ttl_seconds=integer("PRESIGN_TTL_SECONDS", 3600, 60, 7 * 24 * 3600),
            jobs_prefix=prefix("JOBS_PREFIX", "jobs/"),
            batches_prefix=prefix("BATCHES_PREFIX", "batches/"),
            presets_prefix=prefix("PRESETS_PREFIX", "presets/"),
            default_preset=env.get("DEFAULT_PRESET", "").strip() or None,
            allowed_input_buckets=frozenset(b.strip() for b in env.get("ALLOWED_INPUT_BUCKETS", "").split(",") if b.strip()),
            intake_queue_url=env.get("INTAKE_QUEUE_URL", "").strip() or None,
            state_machine_arn=env.get("STATE_MACHINE_ARN", "").strip() or None,
            callback_base_url=url("CALLBACK_BASE_URL", None),
            secret_max_age_seconds=integer("SECRET_MAX_AGE_SECONDS", 300, 0, 86400),
            # Empty means the default list (the template passes "" when the parameter is cleared):
            # results are never fetched from "any host".
            result_host_allowlist=hosts("RESULT_HOST_ALLOWLIST", RESULT_HOSTS),
            reference_host_allowlist=hosts("REFERENCE_HOST_ALLOWLIST", ()),
            allow_http_fetch=boolean("ALLOW_HTTP_FETCH", False),
            allow_private_network_fetch=boolean("ALLOW_PRIVATE_NETWORK_FETCH", False),
            provider_concurrency_limit=integer("PROVIDER_CONCURRENCY_LIMIT", 5, 1, 1000),
            retry_base_seconds=integer("RETRY_BASE_SECONDS", 2, 1, 900),
            retry_max_seconds=integer("RETRY_MAX_SECONDS", 300, 1, 900),
            gate_recheck_seconds=integer("GATE_RECHECK_SECONDS", 120, 1, 900),
            breaker_failure_threshold=integer("BREAKER_FAILURE_THRESHOLD", 5, 1, 1000),
            breaker_cooldown_seconds=integer("BREAKER_COOLDOWN_SECONDS", 60, 1, 900),
            account_cooldown_seconds=integer("ACCOUNT_COOLDOWN_SECONDS", 900, 1, 900),
            max_queue_wait_seconds=integer("MAX_QUEUE_WAIT_SECONDS", 86400, 60, 14 * 86400),
            finalize_lease_seconds=integer("FINALIZE_LEASE_SECONDS", 360, 1, 3600),
            max_receive_count=integer("MAX_RECEIVE_COUNT", 5, 1, 1000),
            dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL", "").strip() or None,
            prepare_queue_url=env.get("PREPARE_QUEUE_URL", "").strip() or None,
            prepared_prefix=prefix("PREPARED_PREFIX", "prepared/"),
            max_clip_seconds=integer("MAX_CLIP_SECONDS", 120, 11, 600),
            wake_queue_url=env.get("WAKE_QUEUE_URL", "").strip() or None,
            prices=price_table("PRICE_OVERRIDES"),
        )
        problems += poller_limits(settings.poll_interval_seconds, settings.job_deadline_seconds,
                                  integer("EXECUTION_TIMEOUT_SECONDS", 0, 0, 365 * 86400))
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        return settings
