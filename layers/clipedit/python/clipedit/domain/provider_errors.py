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
    meaning: str  # what the user should know or do; shown in docs/reference/codes.md


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


@dataclass(frozen=True)
class FalRule:
    kind: ErrorKind
    code: str  # the job's error_code
    reason: str  # what the user is told (fal's own detail is appended)

    @property
    def retryable(self) -> bool:
        return self.kind.retryable


# fal's failure shapes -> retryable or deterministic, with what the user reads. ONE table:
# - request (infrastructure) error types, body {"detail": str, "error_type": ...} and the
#   X-Fal-Error-Type header (fal docs "Request Error Types"); fal has already retried these up to
#   10 times on new runners, and does not bill 5xx;
# - model validation error types, the ``type`` of each entry of a 422 {"detail": [...]} (fal docs
#   "Model API errors"): the input is wrong, sending it again cannot succeed;
# - HTTP statuses without an error type (submit, status, cancel calls).
FAL_ERRORS: dict[str, FalFailure] = {
    # request error types
    "request_timeout": FalRule(ErrorKind.TRANSIENT, "FAL_REQUEST_TIMEOUT", "fal stopped the request: it ran past its time limit"),
    "startup_timeout": FalRule(ErrorKind.TRANSIENT, "FAL_STARTUP_TIMEOUT", "no fal runner started in time"),
    "runner_scheduling_failure": FalRule(ErrorKind.TRANSIENT, "FAL_NO_RUNNER", "fal could not allocate a runner"),
    "runner_connection_timeout": FalRule(ErrorKind.TRANSIENT, "FAL_RUNNER_ERROR", "fal lost the connection to its runner"),
    "runner_disconnected": FalRule(ErrorKind.TRANSIENT, "FAL_RUNNER_ERROR", "fal's runner disconnected while editing"),
    "runner_connection_refused": FalRule(ErrorKind.TRANSIENT, "FAL_RUNNER_ERROR", "fal's runner refused the connection"),
    "runner_connection_error": FalRule(ErrorKind.TRANSIENT, "FAL_RUNNER_ERROR", "fal could not talk to its runner"),
    "runner_incomplete_response": FalRule(ErrorKind.TRANSIENT, "FAL_RUNNER_ERROR", "fal's runner gave an incomplete answer"),
    "runner_server_error": FalRule(ErrorKind.TRANSIENT, "FAL_RUNNER_ERROR", "fal's runner failed with a server error"),
    "internal_error": FalRule(ErrorKind.TRANSIENT, "FAL_INTERNAL_ERROR", "fal failed internally"),
    "client_cancelled": FalRule(ErrorKind.REJECTED, "FAL_CANCELLED", "the request was cancelled at fal"),
    "client_disconnected": FalRule(ErrorKind.TRANSIENT, "FAL_RUNNER_ERROR", "fal dropped the request"),
    "bad_request": FalRule(ErrorKind.REJECTED, "FAL_BAD_REQUEST", "fal refused the request as malformed"),
    # model validation error types (422 detail[].type)
    "content_policy_violation": FalRule(ErrorKind.REJECTED, "FAL_CONTENT_POLICY",
                                           "the prompt or media was refused by the content policy"),
    "file_download_error": FalRule(ErrorKind.REJECTED, "FAL_INPUT_UNREADABLE",
                                      "fal could not download an input (fetch within 30 s, public URL)"),
    "image_load_error": FalRule(ErrorKind.REJECTED, "FAL_INPUT_UNREADABLE", "fal could not read a reference image"),
    "image_too_small": FalRule(ErrorKind.REJECTED, "FAL_INPUT_REJECTED", "a reference image is too small"),
    "image_too_large": FalRule(ErrorKind.REJECTED, "FAL_INPUT_REJECTED", "a reference image is too large"),
    "file_too_large": FalRule(ErrorKind.REJECTED, "FAL_INPUT_REJECTED", "an input file is too large"),
    "unsupported_video_format": FalRule(ErrorKind.REJECTED, "FAL_INPUT_REJECTED", "the clip's format is not supported"),
    "unsupported_image_format": FalRule(ErrorKind.REJECTED, "FAL_INPUT_REJECTED", "a reference image's format is not supported"),
    "video_duration_too_long": FalRule(ErrorKind.REJECTED, "FAL_INPUT_REJECTED", "the clip is too long (3-10 s)"),
    "video_duration_too_short": FalRule(ErrorKind.REJECTED, "FAL_INPUT_REJECTED", "the clip is too short (3-10 s)"),
    "generation_timeout": FalRule(ErrorKind.TRANSIENT, "FAL_GENERATION_TIMEOUT", "the edit took too long at fal"),
    "downstream_service_error": FalRule(ErrorKind.TRANSIENT, "FAL_DOWNSTREAM_ERROR", "fal's upstream model service failed"),
    "downstream_service_unavailable": FalRule(ErrorKind.TRANSIENT, "FAL_DOWNSTREAM_ERROR",
                                                 "fal's upstream model service is unavailable"),
    "internal_server_error": FalRule(ErrorKind.TRANSIENT, "FAL_INTERNAL_ERROR", "fal's model failed internally"),
}
FAL_VALIDATION_FAILURE = FalRule(ErrorKind.REJECTED, "FAL_VALIDATION_ERROR", "fal refused the input")  # other 422 types
FAL_HTTP_FAILURES: dict[int, FalFailure] = {
    400: FalRule(ErrorKind.REJECTED, "FAL_BAD_REQUEST", "fal refused the request as malformed"),
    401: FalRule(ErrorKind.ACCOUNT, "FAL_AUTH", "fal refused the key: check fal_key in the provider secret"),
    403: FalRule(ErrorKind.ACCOUNT, "FAL_FORBIDDEN", "fal refused access: check the key's scope and the account's balance"),
    404: FalRule(ErrorKind.REJECTED, "FAL_NOT_FOUND", "fal does not know this endpoint or request"),
    422: FAL_VALIDATION_FAILURE,
    429: FalRule(ErrorKind.THROTTLED, "FAL_RATE_LIMITED", "fal asked us to slow down"),
}
FAL_SERVER_FAILURE = FalRule(ErrorKind.TRANSIENT, "FAL_SERVER_ERROR", "fal answered with a server error")


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
