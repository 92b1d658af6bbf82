"""Local emulator of fal.ai's queue API for the Kling O3/O1 video-to-video edit endpoints.

It follows provider-apis.md section 2 so the fal adapter runs offline against fal's wire format:

* ``POST /{endpoint_id}[?fal_webhook=<url>]`` with ``Authorization: Key <key>`` queues a request on one
  of the four edit endpoints (``fal-ai/kling-video/o3/{standard,pro}/video-to-video/edit``,
  ``fal-ai/kling-video/o1/standard/video-to-video/edit``, ``fal-ai/kling-video/o1/video-to-video/edit``)
  and answers ``request_id``, ``gateway_request_id``, ``status: IN_QUEUE``, ``queue_position`` and the
  ``status_url``/``response_url``/``cancel_url``, built on the app id ``fal-ai/kling-video`` (not the
  endpoint path), as fal does.
* Queue semantics: at most ``concurrency`` requests are ``IN_PROGRESS`` per account; the rest wait
  ``IN_QUEUE`` in order (fal never refuses for concurrency). ``GET .../requests/{id}/status`` answers
  202 while queued or running, 200 once ``COMPLETED``.
* ``GET .../requests/{id}`` returns the result (``{"video": {url, content_type, file_name, file_size}}``)
  or, for a failed request, fal's failure shapes: 422 ``{"detail": [{loc, msg, type}]}`` for model
  validation (bad input, content policy) and ``{"detail": str, "error_type": ...}`` with the
  ``X-Fal-Error-Type`` header for infrastructure failures. Still running: 400.
* ``PUT .../requests/{id}/cancel``: 202 ``CANCELLATION_REQUESTED`` (a queued request never runs, a
  running one stops), 400 ``ALREADY_COMPLETED``, 404 ``NOT_FOUND``.
* Webhooks: on completion the body ``{request_id, gateway_request_id, status: OK|ERROR, payload[, error]}``
  is POSTed to ``fal_webhook``, signed with Ed25519 as fal signs (headers ``X-Fal-Webhook-Request-Id``,
  ``-User-Id``, ``-Timestamp``, ``-Signature`` = hex signature over
  ``"{request_id}\\n{user_id}\\n{timestamp}\\n{sha256_hex(body)}"``) with a local key pair derived from the
  seed; ``GET /.well-known/jwks.json`` publishes its public key (OKP/Ed25519, base64url ``x``). A
  delivery answered non-2xx, or not answered within 15 s (fal's delivery timeout), is retried (fal: 10
  times over ~2 h; here ``WEBHOOK_ATTEMPTS`` quickly). A failed request's ``COMPLETED`` status carries
  ``error`` and ``error_type`` when it has an error type (fal's status shape for failed requests).
* ``GET /files/{id}.mp4`` serves results without auth (fal's media CDN).

The edit itself is the Kling emulator's (same model, same input limits, same PyAV colour grade with
reference thumbnails): its download, limit checks and rendering are imported, not copied. Fault knobs
are the Kling emulator's ``EmulatorSettings`` (``CLIPEDIT_EMULATOR_*``): ``processing_seconds``,
``concurrency`` (here: how many run at once; the rest queue), ``fail_rate`` (requests that end with a
422 ``content_policy_violation``), ``error_rate`` (API calls answered 500), ``drop_callback_rate`` /
``duplicate_callback_rate`` (webhooks never sent / sent twice), ``seed``, ``render``.

Emulator choices where fal's docs are silent: a wrong or missing key is 401 ``{"detail": ...}``; a
body field the edit schema does not have is 422 ``extra_forbidden`` (catches client typos); a
cancelled request ends ``COMPLETED`` with a ``client_cancelled`` error and its webhook says ERROR.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

import httpx
from clipedit.adapters.tls import shared_ssl_context
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from local import media
from local.kling_emulator import (
    callback_copies,
    seeded_chance,
    stop_workers,
    MAX_PROMPT_CHARS,
    MAX_REFERENCES_WITH_VIDEO,
    RENDER_WORKERS,
    EmulatorSettings,
    KlingEmulator,
    _check_input_limits,
    _is_http_url,
    _Server,
    downloads_client,
)

__all__ = ["FalEmulator", "EDIT_ENDPOINTS"]

log = logging.getLogger(__name__)

APP_ID = "fal-ai/kling-video"
EDIT_ENDPOINTS = {
    "fal-ai/kling-video/o3/standard/video-to-video/edit": ("o3", "standard"),
    "fal-ai/kling-video/o3/pro/video-to-video/edit": ("o3", "pro"),
    "fal-ai/kling-video/o1/standard/video-to-video/edit": ("o1", "standard"),
    "fal-ai/kling-video/o1/video-to-video/edit": ("o1", "pro"),
}
# Video-reference mode: the clip guides a new shot (aspect_ratio auto/16:9/9:16/1:1, duration).
REFERENCE_ENDPOINTS = {endpoint.removesuffix("/edit") + "/reference": kind for endpoint, kind in EDIT_ENDPOINTS.items()}
ENDPOINTS = {**EDIT_ENDPOINTS, **REFERENCE_ENDPOINTS}
EDIT_FIELDS = frozenset({"prompt", "video_url", "image_urls", "elements", "keep_audio", "shot_type"})
O1_FIELDS = EDIT_FIELDS - {"shot_type"}
REFERENCE_FIELDS = EDIT_FIELDS | {"aspect_ratio", "duration"}
REFERENCE_DURATIONS = {"o3": (3, 15), "o1": (3, 10)}  # seconds, as strings on the wire
REFERENCE_SIZES = {("16:9", "standard"): (1280, 720), ("9:16", "standard"): (720, 1280), ("1:1", "standard"): (720, 720),
                   ("16:9", "pro"): (1920, 1080), ("9:16", "pro"): (1080, 1920), ("1:1", "pro"): (1080, 1080)}
WEBHOOK_ATTEMPTS = 3
WEBHOOK_RETRY_SECONDS = 0.2
WEBHOOK_TIMEOUT_SECONDS = 15.0  # fal gives a delivery 15 s, then retries it


class FalApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], error_type: str | None = None) -> None:
        super().__init__(str(body))
        self.status, self.body, self.error_type = status, body, error_type


def _validation(loc: str, msg: str, kind: str) -> FalApiError:
    return FalApiError(422, {"detail": [{"loc": ["body", *loc.split(".")], "msg": msg, "type": kind}]})


@dataclass
class _Request:
    request_id: str
    endpoint: str
    body: dict[str, Any]
    webhook_url: str | None
    planned_failure: bool
    created_at: float
    status: str = "IN_QUEUE"
    cancel_requested: bool = False
    result: dict[str, Any] | None = None
    error: FalApiError | None = None
    result_path: Path | None = None
    input_duration: float | None = None
    started_at: float | None = None
    finished_at: float | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "task_id": self.request_id, "request_id": self.request_id, "endpoint": self.endpoint,
            "status": self.status, "request": json.loads(json.dumps(self.body)),
            "prompt": self.body.get("prompt"), "video_url": self.body.get("video_url"),
            "image_urls": list(self.body.get("image_urls") or []), "elements": list(self.body.get("elements") or []),
            "keep_audio": self.body.get("keep_audio"), "callback_url": self.webhook_url,
            "webhook_url": self.webhook_url, "cancel_requested": self.cancel_requested,
            "error_type": (self.error.error_type or self._detail_type()) if self.error else None,
            "status_msg": json.dumps(self.error.body) if self.error else "",
            "result": self.result, "created_at": self.created_at,
        }

    def _detail_type(self) -> str | None:
        detail = self.error.body.get("detail") if self.error else None
        return detail[0].get("type") if isinstance(detail, list) and detail else None


class FalEmulator:
    """One fal account (key + user id) serving the Kling edit endpoints over loopback.

    Observability for tests, thread-safe: ``tasks()``, ``stats()``, ``wait_for_status()``,
    ``wait_for_callbacks()``; ``sign()`` makes webhook headers (with another key or timestamp to
    forge one); ``jwks_url``.
    """

    # The input handling is the Kling emulator's (same model and limits): shared, not copied.
    _download = KlingEmulator._download
    _download_bytes = KlingEmulator._download_bytes
    _fetch_image = KlingEmulator._fetch_image

    def __init__(self, key: str, user_id: str, settings: EmulatorSettings | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, webhook_timeout_seconds: float = WEBHOOK_TIMEOUT_SECONDS) -> None:
        import random

        self.key, self.user_id = key, user_id
        self.settings = settings or EmulatorSettings()
        self._rng = random.Random(self.settings.seed)
        seed = hashlib.sha256(f"fal-emulator-webhook-key-{self.settings.seed}".encode()).digest()
        self.signing_key = Ed25519PrivateKey.from_private_bytes(seed)  # fixed per seed: reproducible runs
        self._address = (host, port)
        self._cond = threading.Condition()
        self._requests: dict[str, _Request] = {}
        self._order: list[str] = []
        self._waiting: deque[str] = deque()
        self._active = 0
        self._callbacks_pending = 0
        self._stats: dict[str, Any] = {"creates_accepted": 0, "max_concurrent_observed": 0, "max_queued_observed": 0,
                                       "callbacks_sent": 0, "callbacks_dropped": 0, "callbacks_duplicated": 0,
                                       "callbacks_failed": 0, "cancels": 0, "errors_injected": 0}
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._render_pool = ThreadPoolExecutor(RENDER_WORKERS, thread_name_prefix="fal-render")
        self._webhook_pool = ThreadPoolExecutor(4, thread_name_prefix="fal-webhook")
        # A receiver slower than fal's delivery timeout counts as a failed delivery and is retried.
        self._http = httpx.Client(timeout=webhook_timeout_seconds, verify=shared_ssl_context())
        self._downloads = downloads_client()  # used by the Kling emulator's download methods above
        self._work_dir: Path | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "FalEmulator":
        import tempfile

        self._work_dir = Path(tempfile.mkdtemp(prefix="fal-emulator-"))
        self._server = _Server(self._address, self)  # type: ignore[arg-type]  # it only calls _handle
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="fal-http", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        import shutil

        if self._stop.is_set():
            return
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        stop_workers(self._render_pool, self._threads, self._webhook_pool)
        self._http.close()
        self._downloads.close()
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> "FalEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "emulator not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    # -- observability ------------------------------------------------------------------------

    def tasks(self) -> list[dict[str, Any]]:
        with self._cond:
            return [self._requests[r].snapshot() for r in self._order]

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return dict(self._stats, active=self._active, queued=len(self._waiting))

    def wait_for_status(self, request_id: str, statuses: str | Iterable[str], timeout: float = 10.0) -> dict[str, Any]:
        wanted = {statuses} if isinstance(statuses, str) else set(statuses)
        with self._cond:
            request = self._requests[request_id]
            if not self._cond.wait_for(lambda: request.status in wanted, timeout):
                raise TimeoutError(f"request {request_id} is {request.status}, not {sorted(wanted)}")
            return request.snapshot()

    def wait_for_callbacks(self, timeout: float = 10.0) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: self._callbacks_pending == 0, timeout):
                raise TimeoutError(f"{self._callbacks_pending} webhook(s) still pending")
        return self.stats()

    def jwks(self) -> dict[str, Any]:
        import base64

        raw = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": hashlib.sha256(raw).hexdigest()[:16],
                          "use": "sig", "alg": "EdDSA"}]}

    def sign(self, body: bytes, request_id: str, *, timestamp: int | None = None, key: Ed25519PrivateKey | None = None,
             user_id: str | None = None) -> dict[str, str]:
        """fal's webhook headers for ``body``; tests pass another key, timestamp or user to forge one."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        user_id = self.user_id if user_id is None else user_id
        message = f"{request_id}\n{user_id}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()
        return {"Content-Type": "application/json", "X-Fal-Webhook-Request-Id": request_id,
                "X-Fal-Webhook-User-Id": user_id, "X-Fal-Webhook-Timestamp": str(timestamp),
                "X-Fal-Webhook-Signature": (key or self.signing_key).sign(message).hex()}

    def webhook_body(self, request_id: str) -> bytes:
        with self._cond:
            return self._webhook_body_locked(self._requests[request_id])

    # -- HTTP ---------------------------------------------------------------------------------

    def _handle(self, req: Any, method: str) -> None:
        split = urlsplit(req.path)
        path = split.path.rstrip("/") or "/"
        try:
            length = int(req.headers.get("Content-Length") or 0)
            raw = req.rfile.read(length) if length > 0 else b""
            if path == "/.well-known/jwks.json" and method == "GET":
                return self._send(req, 200, self.jwks())
            if path.startswith("/files/") and method in ("GET", "HEAD"):
                return self._serve_file(req, path)
            if self._chance(self.settings.error_rate):
                with self._cond:
                    self._stats["errors_injected"] += 1
                raise FalApiError(500, {"detail": "Internal Server Error"})
            self._authenticate(req.headers.get("Authorization"))
            endpoint = path.lstrip("/")
            if method == "POST" and endpoint in ENDPOINTS:
                webhook = parse_qs(split.query).get("fal_webhook", [None])[-1]
                return self._send(req, 200, self._submit(endpoint, raw, webhook))
            prefix = f"/{APP_ID}/requests/"
            if path.startswith(prefix):
                rest = path[len(prefix):].split("/")
                if len(rest) == 2 and rest[1] == "status" and method == "GET":
                    return self._status(req, rest[0])
                if len(rest) == 1 and method == "GET":
                    return self._result(req, rest[0])
                if len(rest) == 2 and rest[1] == "cancel" and method == "PUT":
                    return self._cancel(req, rest[0])
            raise FalApiError(404, {"detail": f"Path {path} not found"})
        except FalApiError as error:
            headers = {"X-Fal-Error-Type": error.error_type} if error.error_type else {}
            self._send(req, error.status, error.body, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            log.exception("fal emulator bug on %s %s", method, req.path)
            self._send(req, 500, {"detail": "Internal Server Error"})

    def _authenticate(self, header: str | None) -> None:
        import hmac

        scheme, _, key = (header or "").partition(" ")
        if scheme != "Key" or not key:
            raise FalApiError(401, {"detail": "Authentication is required: send 'Authorization: Key <FAL_KEY>'"})
        if not hmac.compare_digest(key.encode(), self.key.encode()):
            raise FalApiError(401, {"detail": "Invalid key"})

    @staticmethod
    def _send(req: Any, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(payload).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            req.send_header(name, value)
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(raw)

    def _serve_file(self, req: Any, path: str) -> None:
        request_id = path[len("/files/"):].removesuffix(".mp4")
        with self._cond:
            request = self._requests.get(request_id)
            result = request.result_path if request is not None and request.result else None
        if result is None or not result.exists():
            raise FalApiError(404, {"detail": "File not found"})
        req.send_file(result)

    # -- the queue API ------------------------------------------------------------------------

    def _urls(self, request_id: str) -> dict[str, str]:
        root = f"{self.base_url}/{APP_ID}/requests/{request_id}"
        return {"status_url": f"{root}/status", "response_url": root, "cancel_url": f"{root}/cancel"}

    def _submit(self, endpoint: str, raw: bytes, webhook: str | None) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise _validation("", "Input should be a valid JSON object", "json_invalid") from None
        if not isinstance(body, dict):
            raise _validation("", "Input should be a valid dictionary", "dict_type")
        self._validate(endpoint, body)
        if webhook is not None and not _is_http_url(webhook):
            raise FalApiError(400, {"detail": "fal_webhook must be an http(s) URL"})
        with self._cond:
            request_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            request = _Request(request_id, endpoint, body, webhook, self._chance_locked(self.settings.fail_rate),
                               time.time())
            self._requests[request_id] = request
            self._order.append(request_id)
            self._waiting.append(request_id)
            self._stats["creates_accepted"] += 1
            position = len(self._waiting) - 1
            self._dispatch_locked()
            self._stats["max_queued_observed"] = max(self._stats["max_queued_observed"], len(self._waiting))
        return {"status": "IN_QUEUE", "request_id": request_id, "gateway_request_id": request_id,
                "queue_position": position, "logs": None, "metrics": {}, **self._urls(request_id)}

    @staticmethod
    def _validate(endpoint: str, body: dict[str, Any]) -> None:
        model = ENDPOINTS[endpoint][0]
        reference = endpoint in REFERENCE_ENDPOINTS
        allowed = O1_FIELDS if model == "o1" else EDIT_FIELDS
        if reference:
            allowed = REFERENCE_FIELDS - ({"shot_type"} if model == "o1" else set())
        for name in sorted(set(body) - allowed):
            raise _validation(name, "Extra inputs are not permitted", "extra_forbidden")
        if reference and body.get("aspect_ratio", "auto") not in ("auto", "16:9", "9:16", "1:1"):
            raise _validation("aspect_ratio", "Input should be 'auto', '16:9', '9:16' or '1:1'", "enum")
        if reference and body.get("duration") is not None:
            low, high = REFERENCE_DURATIONS[model]
            duration = body["duration"]
            if not isinstance(duration, str) or not duration.isdigit() or not low <= int(duration) <= high:
                raise _validation("duration", f"Input should be one of '{low}'..'{high}'", "enum")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _validation("prompt", "Field required", "missing")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise _validation("prompt", f"String should have at most {MAX_PROMPT_CHARS} characters", "string_too_long")
        if not _is_http_url(body.get("video_url")):
            raise _validation("video_url", "Field required: an http(s) URL of the video", "missing")
        images = body.get("image_urls") or []
        elements = body.get("elements") or []
        if not isinstance(images, list) or not all(_is_http_url(u) for u in images):
            raise _validation("image_urls", "Input should be a list of URLs", "list_type")
        if not isinstance(elements, list):
            raise _validation("elements", "Input should be a valid list", "list_type")
        for i, element in enumerate(elements):
            refs = element.get("reference_image_urls") if isinstance(element, dict) else None
            if not isinstance(element, dict) or not _is_http_url(element.get("frontal_image_url")):
                raise _validation(f"elements.{i}.frontal_image_url", "Field required", "missing")
            if set(element) - {"frontal_image_url", "reference_image_urls"}:
                raise _validation(f"elements.{i}", "Extra inputs are not permitted", "extra_forbidden")
            if not isinstance(refs, list) or not 1 <= len(refs) <= 3 or not all(_is_http_url(u) for u in refs):
                raise _validation(f"elements.{i}.reference_image_urls", "List should have 1 to 3 URLs", "too_short")
        if len(images) + len(elements) > MAX_REFERENCES_WITH_VIDEO:
            raise _validation("image_urls", "elements + images must be at most 4 with a video", "value_error")
        if "keep_audio" in body and not isinstance(body["keep_audio"], bool):
            raise _validation("keep_audio", "Input should be a valid boolean", "bool_type")

    def _status(self, req: Any, request_id: str) -> None:
        with self._cond:
            request = self._requests.get(request_id)
            if request is None:
                raise FalApiError(404, {"detail": f"Request {request_id} not found"})
            answer: dict[str, Any] = {"status": request.status, "request_id": request_id, "logs": None,
                                      **self._urls(request_id)}
            if request.status == "IN_QUEUE":
                answer["queue_position"] = self._waiting.index(request_id) if request_id in self._waiting else 0
            answer["metrics"] = ({"inference_time": round(request.finished_at - request.started_at, 3)}
                                 if request.finished_at and request.started_at else {})
            if request.status == "COMPLETED" and request.error is not None and request.error.error_type:
                # A failed request says so in its COMPLETED status too (fal: error, error_type).
                detail = request.error.body.get("detail")
                answer.update(error=detail if isinstance(detail, str) else f"Invalid status code: {request.error.status}",
                              error_type=request.error.error_type)
        self._send(req, 200 if answer["status"] == "COMPLETED" else 202, answer)

    def _result(self, req: Any, request_id: str) -> None:
        with self._cond:
            request = self._requests.get(request_id)
            if request is None:
                raise FalApiError(404, {"detail": f"Request {request_id} not found"})
            if request.status != "COMPLETED":
                raise FalApiError(400, {"detail": "Request is still in progress"})
            if request.error is not None:
                raise request.error
            result = dict(request.result or {})
        self._send(req, 200, result)

    def _cancel(self, req: Any, request_id: str) -> None:
        with self._cond:
            request = self._requests.get(request_id)
            if request is None:
                return self._send(req, 404, {"status": "NOT_FOUND"})
            if request.status == "COMPLETED":
                return self._send(req, 400, {"status": "ALREADY_COMPLETED"})
            request.cancel_requested = True
            self._stats["cancels"] += 1
            if request_id in self._waiting:  # never started: it ends now, no slot was used
                self._waiting.remove(request_id)
                self._complete_locked(request, error=self._cancelled())
            self._cond.notify_all()
        self._send(req, 202, {"status": "CANCELLATION_REQUESTED"})

    @staticmethod
    def _cancelled() -> FalApiError:
        return FalApiError(400, {"detail": "Request was cancelled", "error_type": "client_cancelled"}, "client_cancelled")

    # -- running requests ---------------------------------------------------------------------

    def _dispatch_locked(self) -> None:
        """Start queued requests while slots are free (fal queues over the limit, never refuses)."""
        while self._waiting and self._active < self.settings.concurrency and not self._stop.is_set():
            request = self._requests[self._waiting.popleft()]
            request.status, request.started_at = "IN_PROGRESS", time.time()
            self._active += 1
            self._stats["max_concurrent_observed"] = max(self._stats["max_concurrent_observed"], self._active)
            thread = threading.Thread(target=self._run, args=(request,), name=f"fal-{request.request_id[:8]}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
            self._cond.notify_all()

    def _run(self, request: _Request) -> None:
        assert self._work_dir is not None
        src = self._work_dir / f"{request.request_id}.src"
        try:
            with self._cond:  # the "model time", cut short by a cancel or a stop
                self._cond.wait_for(lambda: request.cancel_requested or self._stop.is_set(),
                                    self.settings.processing_seconds)
            if self._stop.is_set():
                return
            if request.cancel_requested:
                return self._finish(request, error=self._cancelled())
            if request.planned_failure:
                return self._finish(request, error=_validation(
                    "prompt", "The content could not be processed because it contained material flagged by a "
                    "content checker", "content_policy_violation"))
            problem = self._download(request.body["video_url"], src)
            facts = None
            if problem is None:
                try:
                    facts = media.probe(src, decode=self.settings.render == "grade")
                    problem = _check_input_limits(facts)
                except media.MediaError:
                    problem = "invalid video: the file could not be decoded as video"
            if problem is not None or facts is None:
                kind = "file_download_error" if "download" in (problem or "") else (
                    "video_duration_too_long" if "duration" in (problem or "") and facts and
                    facts["duration_seconds"] > 10 else "video_duration_too_short" if "duration" in (problem or "")
                    else "invalid_video")
                return self._finish(request, error=_validation("video_url", problem or "invalid video", kind))
            request.input_duration = facts["duration_seconds"]
            overlays, problem = self._references(request)
            if problem is not None:
                return self._finish(request, error=_validation("image_urls", problem, "image_load_error"))
            self._render(request, src, overlays)
        except Exception:
            log.exception("fal emulator bug in request %s", request.request_id)
            self._finish(request, error=FalApiError(500, {"detail": "Internal Server Error",
                                                          "error_type": "internal_error"}, "internal_error"))
        finally:
            src.unlink(missing_ok=True)

    def _references(self, request: _Request) -> tuple[list[bytes], str | None]:
        refs = [(u, f"image_urls[{i}]") for i, u in enumerate(request.body.get("image_urls") or [])]
        for i, element in enumerate(request.body.get("elements") or []):
            refs.append((element["frontal_image_url"], f"elements[{i}].frontal_image_url"))
            refs += [(u, f"elements[{i}].reference_image_urls[{j}]") for j, u in enumerate(element["reference_image_urls"])]
        overlays = []
        for url, label in refs:
            data, problem = self._fetch_image(url, label)
            if problem is not None or data is None:
                return [], problem or "invalid image"
            if not label.startswith("elements") or label.endswith("frontal_image_url"):
                overlays.append(data)  # images, then each element's frontal image, as the Kling emulator
        return overlays, None

    def _render(self, request: _Request, src: Path, overlays: list[bytes]) -> None:
        assert self._work_dir is not None
        dst = self._work_dir / f"{request.request_id}.mp4"
        model, tier = ENDPOINTS[request.endpoint]
        o3 = model == "o3"
        size = duration = None
        if request.endpoint in REFERENCE_ENDPOINTS:  # a new shot: the asked ratio and length
            ratio = request.body.get("aspect_ratio") or "auto"
            size = None if ratio == "auto" else REFERENCE_SIZES[(ratio, tier)]
            duration = float(request.body.get("duration") or "5")
        keep_audio = request.body.get("keep_audio", o3)  # fal's defaults: true on O3, false on O1
        if self.settings.render == "copy":
            src.replace(dst)
        else:
            try:
                self._render_pool.submit(media.grade_video, src, dst, keep_audio=keep_audio, overlays=overlays,
                                         size=size, duration=duration).result()
            except (CancelledError, RuntimeError):
                if self._stop.is_set():
                    return
                raise
        url = f"{self.base_url}/files/{request.request_id}.mp4"
        result = {"video": {"url": url, "content_type": "video/mp4", "file_name": "output.mp4",
                            "file_size": dst.stat().st_size}}
        request.result_path = dst
        self._finish(request, result=result)

    def _finish(self, request: _Request, *, result: dict[str, Any] | None = None, error: FalApiError | None = None) -> None:
        with self._cond:
            if request.status == "COMPLETED":
                return
            self._active -= 1
            if request.cancel_requested and error is None:
                error, result = self._cancelled(), None  # cancelled while rendering: no result
            self._complete_locked(request, result=result, error=error)
            self._dispatch_locked()  # a slot is free: the next queued request starts

    def _complete_locked(self, request: _Request, *, result: dict[str, Any] | None = None,
                         error: FalApiError | None = None) -> None:
        request.status, request.result, request.error, request.finished_at = "COMPLETED", result, error, time.time()
        self._cond.notify_all()
        self._queue_webhook_locked(request)

    # -- webhooks -----------------------------------------------------------------------------

    def _webhook_body_locked(self, request: _Request) -> bytes:
        body: dict[str, Any] = {"request_id": request.request_id, "gateway_request_id": request.request_id}
        if request.error is None:
            body.update(status="OK", payload=request.result)
        else:
            body.update(status="ERROR", error=f"Invalid status code: {request.error.status}", payload=request.error.body)
        return json.dumps(body).encode()

    def _queue_webhook_locked(self, request: _Request) -> None:
        if request.webhook_url is None or self._stop.is_set():
            return
        copies = callback_copies(self._rng, self.settings, self._stats)
        if not copies:
            return
        body = self._webhook_body_locked(request)
        self._callbacks_pending += copies
        for _ in range(copies):
            self._webhook_pool.submit(self._deliver, request.webhook_url, request.request_id, body)

    def _deliver(self, url: str, request_id: str, body: bytes) -> None:
        try:
            for attempt in range(WEBHOOK_ATTEMPTS):
                if self._stop.is_set():
                    return
                with self._cond:
                    self._stats["callbacks_sent"] += 1
                try:
                    # Signed per attempt, as fal does: a retry carries a fresh timestamp.
                    ok = self._http.post(url, content=body, headers=self.sign(body, request_id)).is_success
                except httpx.HTTPError:
                    ok = False
                if ok:
                    return
                with self._cond:
                    self._stats["callbacks_failed"] += 1
                self._stop.wait(WEBHOOK_RETRY_SECONDS * (attempt + 1))
        finally:
            with self._cond:
                self._callbacks_pending -= 1
                self._cond.notify_all()

    # -- randomness ---------------------------------------------------------------------------

    def _chance(self, rate: float) -> bool:
        with self._cond:
            return self._chance_locked(rate)

    def _chance_locked(self, rate: float) -> bool:
        return seeded_chance(self._rng, rate)
