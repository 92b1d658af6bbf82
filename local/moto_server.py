"""moto's server with keep-alive connections.

moto's ``ThreadedMotoServer`` runs werkzeug's development server, which closes the connection after
every response: each AWS call of the local stack opened a TCP connection and started a server
thread, and a third of the stack's CPU was system time (py-spy over ``make chaos``). This server
answers on the same connection until the client closes it, which is what botocore's connection
pool expects. The WSGI application, its routing and the environ are moto's own (``MotoRequestHandler``
keeps S3 metadata headers with underscores); only the HTTP/1.1 framing differs: the request body is
read whole before the app runs, and the response goes out with its length, so nothing is left on the
connection for the next request to trip over.
"""

from __future__ import annotations

import io
import logging
import threading
import traceback
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

logger = logging.getLogger(__name__)
# No body on these, whatever the app says (RFC 9110 6.4.1).
_BODYLESS_STATUSES = {204, 304}


class KeepAliveRequestHandler(MotoRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # a response must not wait for the client's delayed ACK

    def setup(self) -> None:
        super().setup()
        self.server.connections_accepted += 1  # type: ignore[attr-defined]  # read by tests and benches

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        body = self._request_body(environ)
        # The app reads CONTENT_LENGTH bytes: a chunked request gets its decoded length here.
        environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        environ.pop("wsgi.input_terminated", None)
        environ.pop("HTTP_TRANSFER_ENCODING", None)  # werkzeug ignores CONTENT_LENGTH while it says chunked
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None  # the legacy write() callable: moto never uses it

        try:
            result = self.server.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                getattr(result, "close", lambda: None)()
        except Exception:  # what werkzeug's server does: log it, answer 500
            logger.error("moto failed on %s %s:\n%s", self.command, self.path, traceback.format_exc())
            started[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            body, self.close_connection = b"Internal Server Error", True
        self._respond(started[0], started[1], body)

    def _request_body(self, environ: dict[str, Any]) -> bytes:
        if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's dechunking stream ends at the last chunk
            return environ["wsgi.input"].read()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _respond(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        has_body = self.command != "HEAD" and int(code) not in _BODYLESS_STATUSES and int(code) >= 200
        for name, value in headers:
            lowered = name.lower()
            if lowered in ("connection", "transfer-encoding") or (lowered == "content-length" and has_body):
                continue  # the framing is ours (a HEAD keeps the app's length: the object's size)
            self.send_header(name, value)
        if has_body:
            self.send_header("Content-Length", str(len(body)))
        # Headers and body in one write (end_headers would send the headers alone).
        self._headers_buffer.extend([b"\r\n", body if has_body else b""])
        self.flush_headers()


class KeepAliveMotoServer:
    """moto on a local port in a daemon thread; the same surface as ``ThreadedMotoServer``."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server(ip_address, port, DomainDispatcherApplication(create_backend_app),
                                                   threaded=True, request_handler=KeepAliveRequestHandler)
        self._server.connections_accepted = 0  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def connections_accepted(self) -> int:
        return int(self._server.connections_accepted)  # type: ignore[attr-defined]

    def stop(self) -> None:
        # Open keep-alive connections end when their clients close them (their threads are daemons).
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
