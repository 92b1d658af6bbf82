"""moto's server with keep-alive connections.

moto's ``ThreadedMotoServer`` runs werkzeug's development server, which closes the connection after
every response: each AWS call of the local stack opened a TCP connection and started a server
thread, and a third of the stack's CPU was system time (py-spy over ``make chaos``). This server
answers on the same connection until the client closes it, which is what botocore's connection
pool expects. The WSGI application, its routing and the environ are moto's own (``MotoRequestHandler``
keeps S3 metadata headers with underscores); only the HTTP/1.1 framing differs: the request body is
read whole before the app runs, and the response goes out with its length, so nothing is left on the
connection for the next request to trip over.

``answer_in_process`` goes one step further for the clients of this process: their requests reach
the same app on the calling thread, with the environ the handler would build and the answer framed
as it would be sent, and no socket, server thread or HTTP parsing in between.
"""

from __future__ import annotations

import http.client
import io
import logging
import threading
import traceback
from typing import TYPE_CHECKING, Any, Callable, NamedTuple
from urllib.parse import urlsplit

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse

logger = logging.getLogger(__name__)
# No body on these, whatever the app says (RFC 9110 6.4.1).
_BODYLESS_STATUSES = {204, 304}


class AppAnswer(NamedTuple):
    status: str  # "200 OK"
    headers: list[tuple[str, str]]
    body: bytes
    crashed: bool  # the app raised: the connection is closed after the 500


def call_app(app: Any, environ: dict[str, Any], body: bytes) -> AppAnswer:
    """Run moto's WSGI app on one whole request body."""
    # The app reads CONTENT_LENGTH bytes: a chunked request gets its decoded length here.
    environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    environ.pop("wsgi.input_terminated", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)  # werkzeug ignores CONTENT_LENGTH while it says chunked
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return lambda data: None  # the legacy write() callable: moto never uses it

    try:
        result = app(environ, start_response)
        try:
            answer = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
    except Exception:  # what werkzeug's server does: log it, answer 500
        logger.error("moto failed on %s %s:\n%s", environ.get("REQUEST_METHOD"), environ.get("RAW_URI"),
                     traceback.format_exc())
        return AppAnswer("500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")], b"Internal Server Error", True)
    return AppAnswer(started[0], started[1], answer, False)


def framed(method: str, answer: AppAnswer) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """(code, reason, headers, body) as they go on the wire: the framing headers are ours, and no
    body where HTTP has none (a HEAD keeps the app's Content-Length: the object's size)."""
    code_text, _, reason = answer.status.partition(" ")
    code = int(code_text)
    has_body = method != "HEAD" and code not in _BODYLESS_STATUSES and code >= 200
    headers = [(name, value) for name, value in answer.headers
               if name.lower() not in ("connection", "transfer-encoding")
               and not (name.lower() == "content-length" and has_body)]
    if has_body:
        headers.append(("Content-Length", str(len(answer.body))))
    return code, reason, headers, answer.body if has_body else b""


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
        answer = call_app(self.server.app, environ, self._request_body(environ))
        self.close_connection = self.close_connection or answer.crashed
        self._respond(*framed(self.command, answer))

    def _request_body(self, environ: dict[str, Any]) -> bytes:
        if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's dechunking stream ends at the last chunk
            return environ["wsgi.input"].read()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _respond(self, code: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(code, reason)
        for name, value in headers:
            self.send_header(name, value)
        # Headers and body in one write (end_headers would send the headers alone).
        self._headers_buffer.extend([b"\r\n", body])
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

    def answer(self, request: "AWSPreparedRequest") -> "AWSResponse":
        """A botocore request answered by the app on the calling thread: the request the socket
        would carry (same environ, built by the same handler code), the response it would send."""
        from botocore.awsrequest import AWSResponse
        from moto.core.botocore_stubber import MockRawResponse

        body = _body_bytes(request.body)
        parts = urlsplit(request.url)
        headers = http.client.HTTPMessage()
        headers["Host"] = parts.netloc  # what http.client adds on the wire
        if body or request.method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        for name, value in request.headers.items():
            if name.lower() not in ("host", "content-length"):
                headers[name] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        handler = KeepAliveRequestHandler.__new__(KeepAliveRequestHandler)  # no socket: make_environ only
        handler.server, handler.command, handler.request_version = self._server, request.method, "HTTP/1.1"
        handler.path = parts.path + (f"?{parts.query}" if parts.query else "")
        handler.headers, handler.client_address, handler.connection = headers, ("127.0.0.1", 0), None
        handler.rfile = io.BytesIO(body)
        answer = call_app(self._server.app, handler.make_environ(), body)
        code, _, answer_headers, answer_body = framed(request.method, answer)
        return AWSResponse(request.url, code, answer_headers, MockRawResponse(answer_body))

    def answer_in_process(self) -> Callable[[], None]:
        """Have every botocore client of this process that targets this server skip the socket: its
        requests go straight to the app (see ``answer``). Clients of other processes, and HTTP
        clients (presigned URLs), still use the port. Returns the undo."""
        _install_direct_send()
        ip_address, port = self.get_host_and_port()
        # moto's Step Functions reaches Lambda at localhost:MOTO_PORT; everything else at the address.
        hosts = {f"http://{ip_address}:{port}", f"http://localhost:{port}"}
        _IN_PROCESS.update(dict.fromkeys(hosts, self))

        def undo() -> None:
            for host in hosts:
                _IN_PROCESS.pop(host, None)

        return undo


# Endpoint host URL ("http://127.0.0.1:port") -> the server answering its clients in process.
_IN_PROCESS: dict[str, KeepAliveMotoServer] = {}
_install_lock = threading.Lock()


def _install_direct_send() -> None:
    from botocore.endpoint import Endpoint

    with _install_lock:
        if getattr(Endpoint._send, "in_process", False):
            return
        socket_send = Endpoint._send

        def send(endpoint: Any, request: Any) -> Any:
            server = _IN_PROCESS.get(endpoint.host)
            return server.answer(request) if server else socket_send(endpoint, request)

        send.in_process = True  # type: ignore[attr-defined]
        Endpoint._send = send


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):  # a file or botocore's stream wrapper; botocore rewinds it on a retry
        return body.read()
    return b"".join(body)
