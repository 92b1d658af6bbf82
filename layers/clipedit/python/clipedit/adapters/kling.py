"""Kling's official API (``POST/GET /v1/videos/omni-video``), with its real auth.

Auth: a JWT (HS256, ``iss`` = access key, ``exp``/``nbf``) signed with the secret key, minted per
process and renewed well before its 30-minute lifetime ends; or a static ``api-key-kling-...`` key
sent as is. Errors are classified on Kling's ``code``, never on the HTTP status (429 is used both
for "slow down" and for "your account cannot pay").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx

from clipedit.domain.errors import ProviderError
from clipedit.domain.provider_errors import ErrorKind, http_status_kind, kling_rule
from clipedit.domain.prompt import to_kling_syntax
from clipedit.ports import EditRequest, ElementTask, ProviderTask, TaskState

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hs256_jwt(claims: dict[str, Any], secret: str) -> str:
    """Kling's documented token: header {"alg":"HS256","typ":"JWT"}, the claims, HMAC-SHA256 with
    the secret key (RFC 7519 compact form). Written out here because PyJWT imports cryptography,
    ~40 ms of every cold start, for a signature the standard library makes."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


MODEL_NAMES = {"o3": "kling-v3-omni", "o1": "kling-video-o1"}
TOKEN_LIFETIME_SECONDS = 1800
TOKEN_RENEW_AFTER_SECONDS = 1500  # re-mint 5 minutes early so a token never expires in flight

STATE_BY_STATUS = {
    "submitted": TaskState.QUEUED,
    "processing": TaskState.RUNNING,
    "succeed": TaskState.SUCCEEDED,
    "succeeded": TaskState.SUCCEEDED,  # tolerate the grammatical spelling, log-free
    "failed": TaskState.FAILED,
}


@dataclass(frozen=True)
class KlingCredentials:
    access_key: str | None = None
    secret_key: str | None = None
    api_key: str | None = None

    @classmethod
    def from_secret(cls, secret: dict[str, Any]) -> "KlingCredentials":
        api_key = (secret.get("api_key") or "").strip() or None
        access_key = (secret.get("access_key") or "").strip() or None
        secret_key = (secret.get("secret_key") or "").strip() or None
        if not api_key and not (access_key and secret_key):
            raise ProviderError(
                "the provider secret holds no Kling credentials: store "
                '{"access_key": "...", "secret_key": "..."} or {"api_key": "api-key-kling-..."}',
                kind=ErrorKind.ACCOUNT,
                code="PROVIDER_CREDENTIALS_MISSING",
            )
        return cls(access_key=access_key, secret_key=secret_key, api_key=api_key)


class KlingTokenSource:
    """Mints and caches the bearer token; thread-safe (the local stack shares one process)."""

    def __init__(self, credentials: Callable[[], KlingCredentials], clock: Callable[[], float] = time.time):
        self._credentials = credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._minted_at = 0.0

    def bearer(self) -> str:
        creds = self._credentials()
        if creds.api_key:
            return creds.api_key
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._minted_at > TOKEN_RENEW_AFTER_SECONDS:
                self._token = hs256_jwt(
                    {"iss": creds.access_key, "exp": int(now) + TOKEN_LIFETIME_SECONDS, "nbf": int(now) - 5},
                    creds.secret_key,
                )
                self._minted_at = now
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


class KlingProvider:
    name = "kling"
    needs_element_library = True  # omni-video takes element ids, created beforehand

    def __init__(self, base_url: str, tokens: KlingTokenSource, client: httpx.Client) -> None:
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        self._client = client

    # --- port ---------------------------------------------------------------------------------

    def submit(self, request: EditRequest) -> ProviderTask:
        body = self.create_body(request)
        data = self._call("POST", "/v1/videos/omni-video", json=body)
        return self._task(data)

    def get_task(self, task_id: str, *, urls: Any = None) -> ProviderTask:  # urls: fal's; Kling needs the id only
        return self._task(self._call("GET", f"/v1/videos/omni-video/{task_id}"))

    def find_by_external_id(self, external_id: str) -> ProviderTask | None:
        # Kling's documented form: the query path takes "either task_id or external_task_id". The
        # list endpoint has no external-id filter (pageNum/pageSize only, 30 tasks a page): never
        # used to find a task.
        try:
            data = self._call("GET", f"/v1/videos/omni-video/{external_id}")
        except ProviderError as error:
            if error.retryable:
                raise
            return None
        task = self._task(data) if data else None
        if task is not None and task.external_id not in (None, "", external_id):
            return None  # a task whose *id* happens to equal the string is not ours
        return task

    def create_element(self, *, external_id: str, frontal_url: str, reference_urls: list[str]) -> ElementTask:
        """``POST /v1/general/advanced-custom-elements`` (an async task, like an edit)."""
        body = {
            "element_name": external_id[:20],
            "element_description": "clipedit element",
            "reference_type": "image_refer",
            "element_image_list": {
                "frontal_image": frontal_url,
                "refer_images": [{"image_url": url} for url in reference_urls],
            },
            "external_task_id": external_id,
        }
        return self._element_task(self._call("POST", "/v1/general/advanced-custom-elements", json=body))

    def get_element(self, task_id: str) -> ElementTask:
        """By task id or by external_task_id: the query path takes either (Kling's Element API)."""
        return self._element_task(self._call("GET", f"/v1/general/advanced-custom-elements/{task_id}"))

    @staticmethod
    def _element_task(data: Any) -> ElementTask:
        if not isinstance(data, dict) or not data.get("task_id"):
            raise ProviderError("Kling's answer has no element task", retryable=True, code="PROVIDER_BAD_RESPONSE")
        status = str(data.get("task_status", "")).lower()
        elements = ((data.get("task_result") or {}).get("elements")) or []
        element_id = elements[0].get("element_id") if elements else None
        return ElementTask(
            task_id=str(data["task_id"]),
            state=STATE_BY_STATUS.get(status, TaskState.RUNNING),
            element_id=str(element_id) if element_id not in (None, "") else None,
            message=data.get("task_status_msg") or None,
        )

    # --- request shaping ----------------------------------------------------------------------

    @staticmethod
    def create_body(request: EditRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model_name": MODEL_NAMES.get(request.model, request.model),
            "mode": request.mode,
            "prompt": to_kling_syntax(request.prompt),
            "video_list": [
                {
                    "video_url": request.video_url,
                    # "base" = edit this video; "feature" = the video guides a new shot (reference mode)
                    "refer_type": "feature" if request.video_mode == "reference" else "base",
                    "keep_original_sound": "yes" if request.keep_audio else "no",
                }
            ],
            "external_task_id": request.external_id,
        }
        if request.video_mode == "reference":
            # Kling requires the ratio here (no "auto"); duration is a string of whole seconds.
            body["aspect_ratio"] = request.aspect_ratio
            if request.duration is not None:
                body["duration"] = str(request.duration)
        if request.image_urls:
            body["image_list"] = [{"image_url": url} for url in request.image_urls]
        if request.element_ids:
            # Kling documents element_id as a long; ids are kept as strings everywhere else.
            body["element_list"] = [{"element_id": int(e) if str(e).isdigit() else e} for e in request.element_ids]
        if request.callback_url:
            body["callback_url"] = request.callback_url
        return body

    # --- transport ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._tokens.bearer()}", "Content-Type": "application/json"}
            try:
                response = self._client.request(method, f"{self._base}{path}", headers=headers, **kwargs)
            except httpx.TimeoutException as error:
                raise ProviderError(
                    f"Kling did not answer {method} {path} in time", retryable=True, code="PROVIDER_TIMEOUT"
                ) from error
            except httpx.TransportError as error:
                raise ProviderError(
                    f"cannot reach Kling: {type(error).__name__}", retryable=True, code="PROVIDER_UNREACHABLE"
                ) from error
            try:
                payload = response.json()
            except ValueError:
                raise ProviderError(
                    f"Kling answered HTTP {response.status_code} without JSON",
                    http_status=response.status_code,
                    kind=http_status_kind(response.status_code),
                    code="PROVIDER_BAD_RESPONSE",
                ) from None
            code = payload.get("code") if isinstance(payload, dict) else None
            if code == 0:
                return payload.get("data")
            if code in (1003, 1004) and attempt == 1:
                self._tokens.invalidate()  # clock skew or an expired token: re-mint once
                continue
            raise self._error(code, payload, response.status_code)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _error(code: Any, payload: Any, http_status: int) -> ProviderError:
        message = str(payload.get("message", "")) if isinstance(payload, dict) else ""
        if not isinstance(code, int):
            return ProviderError(
                f"Kling answered HTTP {http_status} without a code",
                http_status=http_status,
                kind=http_status_kind(http_status),
                code="PROVIDER_BAD_RESPONSE",
            )
        rule = kling_rule(code)
        # Kling's own message first (it names the bad field), then what it means for the user.
        text = f"Kling error {code}: {message}".strip()
        if rule.kind is ErrorKind.ACCOUNT:
            text += f" ({rule.meaning})"
        return ProviderError(text, provider_code=code, http_status=http_status, kind=rule.kind, code=f"KLING_{code}")

    @staticmethod
    def _task(data: Any) -> ProviderTask:
        if not isinstance(data, dict) or not data.get("task_id"):
            raise ProviderError(
                "Kling's answer has no task", retryable=True, code="PROVIDER_BAD_RESPONSE"
            )
        status = str(data.get("task_status", "")).lower()
        videos = ((data.get("task_result") or {}).get("videos")) or []
        video = videos[0] if videos else {}
        duration = video.get("duration")
        try:
            duration_seconds = float(duration) if duration not in (None, "") else None
        except (TypeError, ValueError):
            duration_seconds = None
        return ProviderTask(
            task_id=str(data["task_id"]),
            state=STATE_BY_STATUS.get(status, TaskState.RUNNING),
            external_id=(data.get("task_info") or {}).get("external_task_id"),
            message=data.get("task_status_msg") or None,
            video_url=video.get("url") or video.get("watermark_url"),
            duration_seconds=duration_seconds,
            units=str(data["final_unit_deduction"]) if data.get("final_unit_deduction") not in (None, "") else None,
            raw_status=status,
        )
