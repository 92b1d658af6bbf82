"""fal.ai's hosted Kling O3/O1 video-to-video edit, through fal's queue API, with its real auth.

- Auth: ``Authorization: Key <fal_key>`` (the key from fal's dashboard, ``key_id:key_secret``).
- Submit: ``POST {queue}/{endpoint_id}?fal_webhook=<our callback URL>``; the tier (standard/pro)
  and model (O3/O1) are chosen by the endpoint id, not by a body field. The answer's
  ``request_id`` and its ``status_url``/``response_url``/``cancel_url`` are kept on the job: fal has
  no idempotency key, and says to use these URLs rather than build them (they name the app,
  ``fal-ai/kling-video``, not the endpoint).
- Status: ``IN_QUEUE`` -> ``IN_PROGRESS`` -> ``COMPLETED``. A failed request also ends
  ``COMPLETED``; its result then answers with an error (``error_type`` / ``X-Fal-Error-Type`` for
  infrastructure failures, a 422 ``detail`` list for model validation). ``FAILED``/``CANCELED``
  are accepted too (some schemas list them).
- Cancel: ``PUT cancel_url``.

Facts and confidence marks: provider-apis.md section 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import httpx

from clipedit.adapters.provider_http import json_body, send
from clipedit.domain.errors import ProviderError
from clipedit.domain.prompt import to_fal_syntax
from clipedit.domain.provider_errors import FAL_ERRORS, ErrorKind
from clipedit.domain.provider_errors import FAL_HTTP_FAILURES as HTTP_FAILURES
from clipedit.domain.provider_errors import FAL_SERVER_FAILURE as SERVER_FAILURE
from clipedit.domain.provider_errors import FAL_VALIDATION_FAILURE as VALIDATION_FAILURE
from clipedit.domain.provider_errors import FalRule as FalFailure
from clipedit.ports import EditRequest, ElementTask, ProviderTask, TaskState

QUEUE_BASE_URL = "https://queue.fal.run"
APP_ID = "fal-ai/kling-video"  # what fal's status/result/cancel URLs are built on
ENDPOINTS: dict[tuple[str, str], str] = {
    ("o3", "std"): "fal-ai/kling-video/o3/standard/video-to-video/edit",
    ("o3", "pro"): "fal-ai/kling-video/o3/pro/video-to-video/edit",
    ("o1", "std"): "fal-ai/kling-video/o1/standard/video-to-video/edit",
    ("o1", "pro"): "fal-ai/kling-video/o1/video-to-video/edit",  # fal's O1 pro edit has no tier segment
}
STATE_BY_STATUS = {
    "IN_QUEUE": TaskState.QUEUED,
    "IN_PROGRESS": TaskState.RUNNING,
    "COMPLETED": TaskState.SUCCEEDED,  # until the result says otherwise
    "FAILED": TaskState.FAILED,
    "ERROR": TaskState.FAILED,
    "CANCELED": TaskState.FAILED,
    "CANCELLED": TaskState.FAILED,
}




def endpoint_for(model: str, mode: str, video_mode: str = "edit") -> str:
    try:
        endpoint = ENDPOINTS[(model, mode)]
        # Reference mode lives beside each edit endpoint: .../video-to-video/reference.
        return endpoint.removesuffix("/edit") + "/reference" if video_mode == "reference" else endpoint
    except KeyError:
        raise ProviderError(f"fal has no edit endpoint for model {model!r} in mode {mode!r}",
                            retryable=False, code="FAL_NO_ENDPOINT") from None


def classify(status: int, payload: Any, header_type: str | None) -> tuple[FalFailure, str]:
    """(the table's entry, fal's own words) for one failed answer."""
    detail = payload.get("detail") if isinstance(payload, dict) else None
    error_type = header_type or (payload.get("error_type") if isinstance(payload, dict) else None)
    if isinstance(detail, list) and detail:  # model validation: a list of typed problems
        first = detail[0] if isinstance(detail[0], dict) else {}
        where = ".".join(str(p) for p in first.get("loc", []) if p != "body")
        words = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []) if p != 'body') or 'input'}: {d.get('msg', '')}".strip()
            for d in detail[:3] if isinstance(d, dict)
        )
        failure = FAL_ERRORS.get(str(first.get("type") or error_type or ""), VALIDATION_FAILURE)
        return failure, words or where
    words = detail if isinstance(detail, str) else (payload.get("error") if isinstance(payload, dict) else "") or ""
    if error_type and error_type in FAL_ERRORS:
        return FAL_ERRORS[error_type], str(words)
    if error_type:  # a type we have not met: trust the status class, keep fal's words
        return (SERVER_FAILURE if status >= 500 else HTTP_FAILURES.get(status, VALIDATION_FAILURE)), f"{error_type}: {words}"
    return (SERVER_FAILURE if status >= 500 else HTTP_FAILURES.get(status, FalFailure(
        ErrorKind.REJECTED, f"FAL_HTTP_{status}", f"fal answered HTTP {status}"))), str(words)


@dataclass(frozen=True)
class FalCredentials:
    key: str
    user_id: str | None = None  # the fal user id webhooks must be sent for

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any]) -> "FalCredentials":
        key = str(secret.get("fal_key") or "").strip()
        if not key:
            raise ProviderError(
                'the provider secret holds no fal key: add "fal_key": "<key_id>:<key_secret>" '
                '(and "fal_user_id") to it',
                kind=ErrorKind.ACCOUNT, code="PROVIDER_CREDENTIALS_MISSING",
            )
        return cls(key=key, user_id=str(secret.get("fal_user_id") or "").strip() or None)


class FalProvider:
    name = "fal"
    needs_element_library = False  # elements go inline: frontal_image_url + reference_image_urls

    def __init__(self, credentials: Any, client: httpx.Client, base_url: str = QUEUE_BASE_URL) -> None:
        self._credentials = credentials  # () -> FalCredentials, read per call (rotation-safe)
        self._client = client
        self._base = base_url.rstrip("/")

    # --- port ---------------------------------------------------------------------------------

    def submit(self, request: EditRequest) -> ProviderTask:
        endpoint = endpoint_for(request.model, request.mode, request.video_mode)
        params = {"fal_webhook": request.callback_url} if request.callback_url else None
        response = self._call("POST", f"{self._base}/{endpoint}", json=self.create_body(request), params=params)
        data = json_body(response)
        if not isinstance(data, dict) or not data.get("request_id"):
            raise ProviderError("fal's submit answer has no request_id", retryable=True, code="PROVIDER_BAD_RESPONSE")
        request_id = str(data["request_id"])
        urls = {name: str(data[name]) for name in ("status_url", "response_url", "cancel_url") if data.get(name)}
        return ProviderTask(task_id=request_id, state=TaskState.QUEUED, raw_status=str(data.get("status") or "IN_QUEUE"),
                            endpoint=endpoint, urls=urls or self._built_urls(request_id))

    def get_task(self, task_id: str, *, urls: Mapping[str, str] | None = None) -> ProviderTask:
        urls = {**self._built_urls(task_id), **(urls or {})}
        response = self._call("GET", urls["status_url"])
        data = json_body(response)
        status = str((data or {}).get("status", "")).upper() if isinstance(data, dict) else ""
        state = STATE_BY_STATUS.get(status)
        if state is None:
            raise ProviderError(f"fal answered an unknown status {status!r}", retryable=True,
                                code="PROVIDER_BAD_RESPONSE")
        if state == TaskState.FAILED:
            failure, words = classify(500, data, data.get("error_type"))
            if status.startswith("CANCEL"):
                failure, words = FAL_ERRORS["client_cancelled"], ""
            return self._failed(task_id, status, failure, words)
        if state != TaskState.SUCCEEDED:
            return ProviderTask(task_id=task_id, state=state, raw_status=status, urls=urls)
        if not (data.get("error") or data.get("error_type")):
            return self._result(task_id, urls)
        # fal ends a failed request COMPLETED too, and its status body can say so itself: the job
        # fails whatever the result endpoint answers (its own failure shape, when it has one, is
        # the more specific; a result or a hiccup there does not overrule the status).
        try:
            answered = self._result(task_id, urls)
        except ProviderError:
            answered = None
        if answered is not None and answered.state == TaskState.FAILED:
            return answered
        failure, words = classify(500, data, data.get("error_type"))
        return self._failed(task_id, status, failure, words)

    def find_by_external_id(self, external_id: str) -> ProviderTask | None:
        return None  # fal has no client idempotency key: the request id is stored before acking

    def create_element(self, *, external_id: str, frontal_url: str, reference_urls: list[str]) -> ElementTask:
        raise ProviderError("fal takes elements inline; there is no element library to create them in",
                            retryable=False, code="PROVIDER_UNSUPPORTED")

    def get_element(self, task_id: str) -> ElementTask:
        raise ProviderError("fal has no element library", retryable=False, code="PROVIDER_UNSUPPORTED")

    def cancel(self, task_id: str, *, urls: Mapping[str, str] | None = None) -> str:
        urls = {**self._built_urls(task_id), **(urls or {})}
        response = send(self._client, "fal", "PUT", urls["cancel_url"], headers=self._headers())
        data = json_body(response)
        status = str((data or {}).get("status", "")).upper() if isinstance(data, dict) else ""
        if status == "ALREADY_COMPLETED":
            return "completed"
        if status == "NOT_FOUND" or response.status_code == 404:
            return "unknown"
        if response.is_success:  # CANCELLATION_REQUESTED (queued: never runs) or OK
            return "cancelled"
        raise self._error(response)

    # --- request shaping ----------------------------------------------------------------------

    @staticmethod
    def create_body(request: EditRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": to_fal_syntax(request.prompt),  # @video1 -> @Video1: fal's exact form
            "video_url": request.video_url,
            # Always explicit: the default differs (true on O3, false on O1).
            "keep_audio": request.keep_audio,
        }
        if request.video_mode == "reference":
            body["aspect_ratio"] = request.aspect_ratio or "auto"
            if request.duration is not None:
                body["duration"] = str(request.duration)
            if request.shot_type:
                body["shot_type"] = request.shot_type
        if request.image_urls:
            body["image_urls"] = list(request.image_urls)
        if request.elements:
            body["elements"] = [
                {"frontal_image_url": e.frontal_image_url, "reference_image_urls": list(e.reference_image_urls)}
                for e in request.elements
            ]
        return body

    # --- answers ------------------------------------------------------------------------------

    def _result(self, task_id: str, urls: dict[str, str]) -> ProviderTask:
        response = send(self._client, "fal", "GET", urls["response_url"], headers=self._headers())
        data = json_body(response)
        header_type = response.headers.get("x-fal-error-type")
        if response.is_success and isinstance(data, dict) and not header_type:
            video = data.get("video") if isinstance(data.get("video"), dict) else {}
            if not video.get("url"):
                return self._failed(task_id, "COMPLETED", FalFailure(ErrorKind.REJECTED, "PROVIDER_NO_OUTPUT",
                                                                     "fal completed the request without a video"), "")
            return ProviderTask(task_id=task_id, state=TaskState.SUCCEEDED, raw_status="COMPLETED", urls=urls,
                                video_url=str(video["url"]),
                                extra={"file_size": video.get("file_size"), "content_type": video.get("content_type")})
        # A failed request says so in fal's shapes: an error type (header or body) or a 422 detail
        # list. Anything else (a 5xx page, "still in progress" just after COMPLETED) is our fetch
        # hiccuping, not the request failing: the next check tries again.
        has_shape = header_type or (isinstance(data, dict) and (
            data.get("error_type") or isinstance(data.get("detail"), list)))
        if not has_shape:
            raise ProviderError(f"fetching fal's result answered HTTP {response.status_code}", retryable=True,
                                http_status=response.status_code, code="FAL_RESULT_UNAVAILABLE")
        failure, words = classify(response.status_code, data, header_type)
        return self._failed(task_id, "COMPLETED", failure, words)

    @staticmethod
    def _failed(task_id: str, status: str, failure: FalFailure, words: str) -> ProviderTask:
        message = f"{failure.reason}: {words}" if words else failure.reason
        return ProviderTask(task_id=task_id, state=TaskState.FAILED, raw_status=status, message=message[:1000],
                            error_code=failure.code, extra={"retryable": failure.retryable})

    # --- transport ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._credentials().key}"}

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = send(self._client, "fal", method, url, headers=self._headers(), **kwargs)
        if not response.is_success:
            raise self._error(response)
        return response

    @staticmethod
    def _error(response: httpx.Response) -> ProviderError:
        failure, words = classify(response.status_code, json_body(response), response.headers.get("x-fal-error-type"))
        message = f"{failure.reason}: {words}" if words else failure.reason
        return ProviderError(f"fal: {message}"[:1000], http_status=response.status_code, kind=failure.kind,
                             code=failure.code)

    def _built_urls(self, request_id: str) -> dict[str, str]:
        # Only a fallback for a job recorded without the URLs fal gave us; fal's docs prefer those.
        root = f"{self._base}/{APP_ID}/requests/{request_id}"
        return {"status_url": f"{root}/status", "response_url": root, "cancel_url": f"{root}/cancel"}
