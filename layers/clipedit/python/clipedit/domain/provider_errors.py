"""What each provider error means for the pipeline: one table, read by every adapter.

A provider answer is one of four kinds, and each kind has exactly one handling:

- ``THROTTLED``: slow down (rate or concurrency limit). The job waits in QUEUED and is tried again
  after an exponential backoff; the circuit breaker is not involved (the provider is healthy).
- ``TRANSIENT``: the provider hiccuped (5xx, timeout, unreachable, a malformed answer). The job waits
  and is tried again with backoff; a streak of these opens the circuit breaker.
- ``ACCOUNT``: nothing will succeed until a human acts (credentials, balance, access, IP allowlist).
  The breaker opens at once for a long cool-down, an alarm event is published, and jobs wait in
  QUEUED instead of burning retries or failing one by one.
- ``REJECTED``: this request can never succeed (invalid parameters, content policy). The job fails
  at once with the provider's own reason.

Unknown codes: 5xxx is TRANSIENT, anything else REJECTED (never retried blindly for hours).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorKind(StrEnum):
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    ACCOUNT = "account"
    REJECTED = "rejected"

    @property
    def retryable(self) -> bool:
        return self in (ErrorKind.THROTTLED, ErrorKind.TRANSIENT)


@dataclass(frozen=True)
class ErrorRule:
    kind: ErrorKind
    meaning: str  # what the user should know or do; shown in the README table


# Kling's documented codes (provider-apis.md 1.8). 1003/1004 are retried once inside the adapter
# with a re-minted token before they ever reach this table; if they persist, the clock is off.
KLING_ERRORS: dict[int, ErrorRule] = {
    1000: ErrorRule(ErrorKind.ACCOUNT, "authentication failed: check the access/secret key in the provider secret"),
    1001: ErrorRule(ErrorKind.ACCOUNT, "no Authorization header was sent: check the provider secret"),
    1002: ErrorRule(ErrorKind.ACCOUNT, "the Authorization header is invalid: check the provider secret"),
    1003: ErrorRule(ErrorKind.TRANSIENT, "token not yet valid after a re-mint: the function's clock is ahead"),
    1004: ErrorRule(ErrorKind.TRANSIENT, "token expired after a re-mint: the function's clock is behind"),
    1100: ErrorRule(ErrorKind.ACCOUNT, "the Kling account has a problem: contact Kling"),
    1101: ErrorRule(ErrorKind.ACCOUNT, "the Kling account is in arrears: top it up"),
    1102: ErrorRule(ErrorKind.ACCOUNT, "the resource pack is used up or expired: buy or renew one"),
    1103: ErrorRule(ErrorKind.ACCOUNT, "the account has no access to this API or model"),
    1200: ErrorRule(ErrorKind.REJECTED, "invalid request parameters"),
    1201: ErrorRule(ErrorKind.REJECTED, "invalid parameter value (see the message)"),
    1202: ErrorRule(ErrorKind.REJECTED, "wrong HTTP method"),
    1203: ErrorRule(ErrorKind.REJECTED, "the resource (model, task) does not exist"),
    1300: ErrorRule(ErrorKind.REJECTED, "Kling's platform policy refused the request"),
    1301: ErrorRule(ErrorKind.REJECTED, "Kling's content security policy refused the input: change the input"),
    1302: ErrorRule(ErrorKind.THROTTLED, "requests are too fast: backing off"),
    1303: ErrorRule(ErrorKind.THROTTLED, "over the account's concurrency limit: backing off"),
    1304: ErrorRule(ErrorKind.ACCOUNT, "the IP allowlist refused this caller: update it or contact Kling"),
    5000: ErrorRule(ErrorKind.TRANSIENT, "Kling internal error"),
    5001: ErrorRule(ErrorKind.TRANSIENT, "Kling is temporarily unavailable (maintenance)"),
    5002: ErrorRule(ErrorKind.TRANSIENT, "Kling timed out internally (backlog)"),
}

# Failures of the call itself, whatever the provider (our codes).
TRANSPORT_ERRORS: dict[str, ErrorRule] = {
    "PROVIDER_TIMEOUT": ErrorRule(ErrorKind.TRANSIENT, "no answer in time; the task may exist, so it is looked up first"),
    "PROVIDER_UNREACHABLE": ErrorRule(ErrorKind.TRANSIENT, "connection failed"),
    "PROVIDER_BAD_RESPONSE": ErrorRule(ErrorKind.TRANSIENT, "an answer that is not the documented shape"),
}


def kling_rule(code: int) -> ErrorRule:
    rule = KLING_ERRORS.get(code)
    if rule is not None:
        return rule
    if 5000 <= code < 6000:
        return ErrorRule(ErrorKind.TRANSIENT, "undocumented Kling server error")
    return ErrorRule(ErrorKind.REJECTED, "undocumented Kling error")


def http_status_kind(status: int) -> ErrorKind:
    """For answers with no provider code at all: only the HTTP status is left to go on."""
    if status in (408, 425, 429) or status >= 500:
        return ErrorKind.THROTTLED if status == 429 else ErrorKind.TRANSIENT
    if status in (401, 402, 403):
        return ErrorKind.ACCOUNT
    return ErrorKind.REJECTED
