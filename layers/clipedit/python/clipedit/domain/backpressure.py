"""Backpressure rules: how long a job waits, and when the circuit breaker opens and closes.

Pure decisions; the shared state (gate holders, breaker counters) lives behind the
``ProviderGuard`` port. Waits are delays on a queue message, never a sleeping function.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from clipedit.domain.provider_errors import ErrorKind

SQS_MAX_DELAY_SECONDS = 900


@dataclass(frozen=True)
class BackpressureSettings:
    concurrency_limit: int = 5  # provider tasks in flight at once (the account's limit)
    retry_base_seconds: int = 2  # first backoff after a throttle or a transient error (Kling: >= 1 s)
    retry_max_seconds: int = 300  # backoff cap
    gate_recheck_seconds: int = 120  # a job behind a full gate looks again after this (a freed slot wakes it sooner)
    breaker_failure_threshold: int = 5  # consecutive transient failures that open the breaker
    breaker_cooldown_seconds: int = 60  # first open period; doubles while failures continue
    breaker_max_cooldown_seconds: int = 900
    account_cooldown_seconds: int = 900  # balance/credential problems: re-check every 15 minutes
    max_queue_wait_seconds: int = 86400  # a job not submitted within this is TIMED_OUT
    submit_lease_seconds: int = 60  # longer than one provider call (API read timeout 20 s)


def backoff_seconds(attempt: int, *, base: int, cap: int, key: str) -> int:
    """Exponential backoff with "equal jitter": between half and all of ``base * 2**attempt``,
    capped. The jitter is derived from ``key`` and the attempt, so runs are reproducible while
    jobs that failed together spread out."""
    ceiling = min(cap, base * (2 ** min(attempt, 20)), SQS_MAX_DELAY_SECONDS)
    digest = hashlib.sha256(f"{key}:{attempt}".encode()).digest()
    fraction = int.from_bytes(digest[:4], "big") / 2**32
    return max(1, int(ceiling / 2 + fraction * ceiling / 2))


@dataclass(frozen=True)
class BreakerState:
    failures: int = 0  # consecutive transient failures (reset by any success)
    open_until: float = 0.0  # epoch seconds; closed when in the past
    reason: str | None = None
    opened: int = 0  # times opened since the last success (drives the cool-down doubling)

    def is_open(self, now: float) -> bool:
        return now < self.open_until

    def seconds_left(self, now: float) -> int:
        return max(1, int(self.open_until - now + 0.999))


def breaker_cooldown(state: BreakerState, kind: ErrorKind, settings: BackpressureSettings) -> int | None:
    """Seconds to open the breaker for after a failure of ``kind`` (``state`` already counts it),
    or None to leave it closed."""
    if kind is ErrorKind.ACCOUNT:
        return settings.account_cooldown_seconds
    if kind is ErrorKind.TRANSIENT and state.failures >= settings.breaker_failure_threshold:
        return min(settings.breaker_max_cooldown_seconds, settings.breaker_cooldown_seconds * 2 ** min(state.opened, 10))
    return None
