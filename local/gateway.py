"""The local stand-in for API Gateway's HTTP API: turns callback POSTs into payload-v2 events.

Only the route the template declares exists (``POST /callbacks/{provider}/{job_id}``); the
handler's answer (statusCode, headers, body) is relayed as the HTTP response.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

ROUTE = re.compile(r"^/callbacks/(?P<provider>[^/]+)/(?P<job_id>[^/]+)$")
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit


def http_api_event(method: str, raw_path: str, headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
    split = urlsplit(raw_path)
    match = ROUTE.match(split.path)
    if method != "POST" or not match:
        return None
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "POST /callbacks/{provider}/{job_id}",
        "rawPath": split.path,
        "rawQueryString": split.query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "queryStringParameters": query or None,
        "pathParameters": {k: unquote(v) for k, v in match.groupdict().items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("Host", "localhost"),
            "http": {"method": method, "path": split.path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": "POST /callbacks/{provider}/{job_id}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": body.decode("utf-8", errors="replace"),
        "isBase64Encoded": False,
    }


class CallbackGateway:
    def __init__(self, invoke: Callable[[dict[str, Any]], dict[str, Any]], host: str = "127.0.0.1", port: int = 0):
        self._invoke = invoke
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                gateway._serve(self)

            def do_GET(self) -> None:  # noqa: N802
                gateway._serve(self)

            def log_message(self, format: str, *args: Any) -> None:  # keep the demo output clean
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="callback-gateway", daemon=True)
        self.requests = 0

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        self.requests += 1
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(request, 413, {"message": "Request Entity Too Large"})
            return
        self._route(request, request.rfile.read(length) if length else b"")

    def _route(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        """The request (body read, size checked) to an event for the function."""
        event = http_api_event(request.command, request.path, dict(request.headers), body)
        if event is None:
            self._reply(request, 404, {"message": "Not Found"})
            return
        self._relay(request, event)

    def _relay(self, request: BaseHTTPRequestHandler, event: dict[str, Any]) -> None:
        """Invoke the function with the event; its answer (status, headers, body) is the response."""
        try:
            result = self._invoke(event)
        except Exception:  # API Gateway answers 500 when the integration fails (and Lambda logs it)
            logging.getLogger("clipedit.local.gateway").exception("callback handler failed")
            self._reply(request, 500, {"message": "Internal Server Error"})
            return
        status = int(result.get("statusCode", 200))
        payload = result.get("body", "")
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        request.send_response(status)
        for name, value in (result.get("headers") or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
