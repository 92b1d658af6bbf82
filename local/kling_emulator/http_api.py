"""The HTTP surface: the server and handler, JWT auth (section 1.2), routing of the omni-video and
element endpoints, queries and lists, the result files, and the answers in Kling's envelope.

Choices where Kling's docs are silent (client code must branch on `code`, not on HTTP status):

* Unknown task id / external id: HTTP 404, code 1203 ("resource doesn't exist"), message
  "task not found: <id>".
* JWT whose `iss` is not the configured access key: HTTP 401, code 1000 ("auth failed"). A missing
  header is 1001; anything that is not exactly `Bearer <token>`, an undecodable token, a non-HS256
  token, a bad signature or missing numeric `exp`/`nbf` claims is 1002; `nbf` more than 5 s in the
  future is 1003; `exp` in the past is 1004.
* Request-structure problems (body not JSON, not an object, unknown top-level field such as
  `negative_prompt`) are HTTP 400 code 1200; value problems (missing/invalid field, duplicate
  `external_task_id`) are HTTP 400 code 1201 with a message naming the field.
* A method a path does not support is HTTP 404 code 1202; an unknown API path is 404 code 1203.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import shutil
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from local.kling_emulator.contract import (
    API_PATH,
    API_ROOTS,
    ELEMENTS_PATH,
    NBF_LEEWAY_SECONDS,
    RESULTS_PREFIX,
    ApiError,
    _invalid,
)

if TYPE_CHECKING:
    from local.kling_emulator.emulator import KlingEmulator

log = logging.getLogger("local.kling_emulator")  # one logger for the whole emulator, as before the split

MAX_REQUEST_BYTES = 32 * 1024 * 1024  # base64 images may be inlined


# ---------------------------------------------------------------------------------------------
# Auth (section 1.2): HS256 verified with hmac directly, so every failure maps to an exact code.


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _verify_hs256(token: str, secret: str) -> dict[str, Any]:
    invalid = ApiError(401, 1002, "Authorization is invalid: token cannot be decoded")
    parts = token.split(".")
    if len(parts) != 3:
        raise invalid
    try:
        header = _b64url_json(parts[0])
        claims = _b64url_json(parts[1])
        signature = base64.urlsafe_b64decode((parts[2] + "=" * (-len(parts[2]) % 4)).encode("ascii"))
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid from None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise ApiError(401, 1002, "Authorization is invalid: expected an HS256 JWT")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise ApiError(401, 1002, "Authorization is invalid: signature verification failed")
    return claims


# ---------------------------------------------------------------------------------------------
# HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: KlingEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API front end
    timeout = 30  # idle keep-alive connections must not pin handler threads forever
    server: _Server

    def do_GET(self) -> None:
        self.server.emulator._handle(self, "GET")

    def do_HEAD(self) -> None:
        self.server.emulator._handle(self, "HEAD")

    def do_POST(self) -> None:
        self.server.emulator._handle(self, "POST")

    def do_PUT(self) -> None:
        self.server.emulator._handle(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.emulator._handle(self, "PATCH")

    def do_DELETE(self) -> None:
        self.server.emulator._handle(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True  # we will not drain it; drop the connection after answering
            raise ApiError(400, 1200, "Invalid request parameters: body too large")
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def send_file(self, path: Path) -> None:
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command != "HEAD":
            with path.open("rb") as fh:  # streamed in chunks, never read whole
                shutil.copyfileobj(fh, self.wfile, 64 * 1024)


class HttpSurface:
    """Answers one HTTP request: auth, routing, the envelope; creates are handed to the lifecycle."""

    def _handle(self, req: _Handler, method: str) -> None:
        request_id = str(uuid.uuid4())
        path = urlsplit(req.path).path.rstrip("/") or "/"
        try:
            body = req.read_body()
            if path.startswith(RESULTS_PREFIX):
                self._serve_result(req, method, path)
                return
            root = next((r for r in API_ROOTS if path == r or path.startswith(r + "/")), None)
            if root is None:
                raise ApiError(404, 1203, f"resource not found: {path}")
            if self.settings.latency_seconds:
                self._stop.wait(self.settings.latency_seconds)  # a slow answer (woken early on stop)
            # Injected outage: answered before auth or any other work, like a failing front end.
            if self._chance(self.settings.error_rate):
                raise ApiError(500, 5000, "server internal error")
            self._authenticate(req.headers.get("Authorization"))
            status, data = self._route_api(method, root, path, urlsplit(req.path).query, body)
            if method == "POST" and path == API_PATH and self._chance(self.settings.lost_response_rate):
                with self._cond:
                    self._stats["responses_lost"] += 1
                raise ApiError(504, 5002, "internal timeout")  # the task was created all the same
            req.send_json(status, {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": data})
        except ApiError as err:
            with self._cond:
                counts = self._stats["rejected_by_code"]
                counts[err.code] = counts.get(err.code, 0) + 1
            req.send_json(err.http_status, {"code": err.code, "message": err.message, "request_id": request_id})
        except (BrokenPipeError, ConnectionResetError):
            pass  # client went away mid-answer
        except Exception:
            log.exception("emulator bug while handling %s %s", method, req.path)
            req.send_json(500, {"code": 5000, "message": "server internal error", "request_id": request_id})

    def _authenticate(self, header: str | None) -> None:
        if header is None or not header.strip():
            raise ApiError(401, 1001, "Authorization is empty")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token or token != token.strip() or " " in token:
            raise ApiError(401, 1002, "Authorization is invalid: expected 'Bearer <token>'")
        if self._api_key is not None and hmac.compare_digest(token.encode(), self._api_key.encode()):
            return
        claims = _verify_hs256(token, self._secret_key)
        if claims.get("iss") != self._access_key:
            raise ApiError(401, 1000, "Auth failed: unknown access key (iss)")
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (exp, nbf)):
            raise ApiError(401, 1002, "Authorization is invalid: exp and nbf claims are required")
        now = time.time()
        if nbf > now + NBF_LEEWAY_SECONDS:
            raise ApiError(401, 1003, "Authorization is not yet valid (nbf)")
        if exp <= now:
            raise ApiError(401, 1004, "Authorization has expired (exp)")

    def _route_api(self, method: str, root: str, path: str, query: str, body: bytes) -> tuple[int, Any]:
        if path == root:
            if method == "POST":
                return 200, self._create(body) if root == API_PATH else self._create_element(body)
            if method in ("GET", "HEAD"):
                # The list takes pageNum/pageSize only (Kling's docs): an external_task_id in the
                # query filters nothing, the first page comes back.
                params = {k: v[-1] for k, v in parse_qs(query).items()}
                return 200, self._list(root, params)
        else:
            ident = unquote(path[len(root) + 1 :])
            if "/" not in ident and method in ("GET", "HEAD"):
                # The path form falls back to external ids: which form Kling uses is unverified.
                return 200, self._query(root, task_id=ident, external_task_id=ident)
            if "/" in ident:
                raise ApiError(404, 1203, f"resource not found: {path}")
        raise ApiError(404, 1202, f"method {method} is not supported on {path}")

    def _registry_locked(self, root: str) -> tuple[dict[str, Any], dict[str, str], list[str]]:
        """(items by task_id, task_id by external id, creation order) of the API under `root`."""
        if root == ELEMENTS_PATH:
            return self._elements, self._elements_by_external, self._element_order
        return self._tasks, self._by_external, self._order

    def _query(
        self, root: str, *, task_id: str | None = None, external_task_id: str | None = None
    ) -> dict[str, Any]:
        with self._cond:  # built under the lock so the answer is one consistent state
            items, by_external, _ = self._registry_locked(root)
            if task_id is not None and task_id in items:
                return items[task_id].query_data()
            if external_task_id is not None and external_task_id in by_external:
                return items[by_external[external_task_id]].query_data()
        raise ApiError(404, 1203, f"task not found: {task_id or external_task_id}")

    def _list(self, root: str, params: dict[str, str]) -> list[dict[str, Any]]:
        page_num = self._int_param(params, "pageNum", 1, 1, 1000)
        page_size = self._int_param(params, "pageSize", 30, 1, 500)
        with self._cond:
            items, _, order = self._registry_locked(root)
            newest_first = [items[t] for t in reversed(order)]
            page = newest_first[(page_num - 1) * page_size : page_num * page_size]
            return [item.query_data() for item in page]

    @staticmethod
    def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
        raw = params.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise _invalid(name, f"must be an integer from {low} to {high}")
        return int(raw)

    @staticmethod
    def _json_object(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, 1200, "Invalid request parameters: body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, 1200, "Invalid request parameters: body must be a JSON object")
        return body

    def _serve_result(self, req: _Handler, method: str, path: str) -> None:
        if method not in ("GET", "HEAD"):
            raise ApiError(404, 1202, f"method {method} is not supported on {path}")
        name = path[len(RESULTS_PREFIX) :]
        task_id = name.removesuffix(".mp4")
        with self._cond:
            task = self._tasks.get(task_id)
            result = task.result_path if task is not None and task.status == "succeed" else None
        if result is None or name != f"{task_id}.mp4" or not result.exists():
            raise ApiError(404, 1203, f"resource not found: {path}")
        req.send_file(result)
