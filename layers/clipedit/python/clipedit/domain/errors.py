"""Errors the domain and use cases raise, each with a stable code a user can look up."""

from __future__ import annotations

from clipedit.domain.provider_errors import ErrorKind


class ClipeditError(Exception):
    """Base class: ``code`` is stable and documented, ``message`` tells the user what to do."""

    code = "CLIPEDIT_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class SpecError(ClipeditError):
    """The edit request itself is unusable; the job is REJECTED before any money is spent."""

    code = "INVALID_SPEC"


class MediaRejected(ClipeditError):
    """The input clip breaks a provider limit (size, container, ...); the job is REJECTED."""

    code = "INVALID_MEDIA"


class ProviderError(ClipeditError):
    """The provider refused or failed a call.

    ``kind`` (see ``clipedit.domain.provider_errors``) says what the pipeline does about it:
    back off, retry with the circuit breaker counting, hold every job (account problems), or fail
    the job. ``retryable`` is the short form: trying the same call later can succeed.
    """

    code = "PROVIDER_ERROR"

    def __init__(
        self,
        message: str,
        *,
        provider_code: int | None = None,
        http_status: int | None = None,
        retryable: bool | None = None,
        kind: ErrorKind | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.provider_code = provider_code
        self.http_status = http_status
        if kind is None:
            kind = ErrorKind.TRANSIENT if retryable else ErrorKind.REJECTED
        self.kind = kind

    @property
    def retryable(self) -> bool:
        return self.kind.retryable


class RetryLater(ClipeditError):
    """Transient condition: leave the work where it is (e.g. the SQS message) and try again later,
    after ``delay_seconds`` when given (the message's visibility is shortened to it)."""

    code = "RETRY_LATER"

    def __init__(self, message: str, *, delay_seconds: int | None = None) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds


class ConfigError(ClipeditError):
    """The function's configuration is invalid; raised at cold start, never mid-job."""

    code = "CONFIG_ERROR"


class UrlRejected(ClipeditError):
    """A URL we did not build ourselves (a provider's result, a user's reference) breaks the fetch
    policy: scheme, host allowlist, credentials in the URL, a non-public address, too many redirects.
    Deterministic, so never retried; the message names the host, never the query string."""

    code = "URL_REJECTED"


class WebhookRejected(ClipeditError):
    """A provider webhook failed its authenticity checks (signature, timestamp, sender); the
    message says which, so a deployer can tell a forgery from a misconfiguration."""

    code = "WEBHOOK_REJECTED"
