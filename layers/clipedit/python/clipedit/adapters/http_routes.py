"""Route dispatch for API Gateway HTTP API events (payload format 2.0), for the status API.

Why not Powertools' ``event_handler``: importing it loads every resolver it has (REST, ALB, AppSync,
Bedrock, ...), asyncio and the OpenAPI models, ~25 ms of every status API cold start, for the five
routes below. This keeps the part of its behaviour the status API relies on, and answers alike:

- ``@routes.get("/jobs/<job_id>")``: a ``<name>`` segment matches the characters Powertools
  accepts (no ``/``), passed as a keyword argument, not URL-decoded; routes without parameters are
  tried first, then in the order they were declared; the method is compared in upper case; the
  path is ``rawPath`` without the stage prefix (a stage other than ``$default``);
- a route returns a ``Response``, or a dict (200, compact JSON; a ``Decimal`` becomes a string);
- ``@routes.exception_handler(Error)`` handles that class and its subclasses; ``@routes.not_found``
  answers a request that no route matches (method or path); anything unhandled is raised;
- the answer: ``statusCode``, ``body``, ``isBase64Encoded``, ``headers`` (``Content-Type``), ``cookies``.
"""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

# Powertools' pattern for a path parameter (RFC 3986 unreserved and sub-delims, and what API
# Gateway passes through unencoded); a parameter never spans a "/".
_PARAMETER_CHARS = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"
JSON = "application/json"


class Response:
    def __init__(self, status_code: int, content_type: str | None = None, body: Any = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})
        if content_type:
            self.headers.setdefault("Content-Type", content_type)


class RouteNotFound(Exception):
    """No route for the request's method and path (what ``not_found`` handlers receive)."""


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # DynamoDB numbers: as strings, like Powertools' encoder
        return float("nan") if value.is_nan() else str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class HttpRequest:
    """The current request, read from the raw event."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        self.raw_event = event
        context = event.get("requestContext") or {}
        self.method = str((context.get("http") or {}).get("method", "")).upper()
        self.request_id = context.get("requestId", "")
        path = event.get("rawPath") or "/"
        stage = context.get("stage", "$default")
        self.path = path[len("/" + stage):] if stage != "$default" else path

    @property
    def query_string_parameters(self) -> dict[str, str]:
        return self.raw_event.get("queryStringParameters") or {}

    @property
    def decoded_body(self) -> str | None:
        body = self.raw_event.get("body")
        if self.raw_event.get("isBase64Encoded") and body:
            return base64.b64decode(body.encode()).decode()
        return body


class HttpRoutes:
    def __init__(self) -> None:
        # Routes without parameters are tried first, as Powertools does: a literal segment wins.
        self._static: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = []
        self._dynamic: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = []
        self._handlers: dict[type[BaseException], Callable[[Any], Any]] = {}
        self.current_event = HttpRequest({})  # the request being answered, for the route functions

    def route(self, rule: str, method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            pattern = re.compile("^" + re.sub(r"<(\w+)>", lambda name: f"(?P<{name[1]}>{_PARAMETER_CHARS})", rule) + "$")
            (self._dynamic if "<" in rule else self._static).append((method.upper(), pattern, func))
            return func

        return register

    def get(self, rule: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route(rule, "GET")

    def post(self, rule: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route(rule, "POST")

    def exception_handler(self, classes: type[BaseException] | Iterable[type[BaseException]]
                          ) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
        def register(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
            for cls in (classes if isinstance(classes, Iterable) else [classes]):
                self._handlers[cls] = func
            return func

        return register

    def not_found(self, func: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return self.exception_handler(RouteNotFound)(func)

    def resolve(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        self.current_event = request = HttpRequest(event)
        return self._answer(self._dispatch(request))

    def _dispatch(self, request: HttpRequest) -> Response:
        for method, pattern, func in self._static + self._dynamic:
            match = pattern.match(request.path) if method == request.method else None
            if match:
                try:
                    result = func(**match.groupdict())
                except Exception as error:
                    return self._handled(error)
                return result if isinstance(result, Response) else Response(200, JSON, result)
        return self._handled(RouteNotFound(f"{request.method} {request.path}"))

    def _handled(self, error: Exception) -> Response:
        for cls in type(error).__mro__:
            if cls in self._handlers:
                return self._handlers[cls](error)
        raise error  # the runtime records it, as it did with Powertools' resolver

    @staticmethod
    def _answer(response: Response) -> dict[str, Any]:
        body = response.body
        if str(response.headers.get("Content-Type", "")).startswith(JSON) and not isinstance(body, str):
            body = json.dumps(body, separators=(",", ":"), default=_json_default)
        encoded = isinstance(body, bytes)
        return {"statusCode": response.status_code,
                "body": base64.b64encode(body).decode() if encoded else body,
                "isBase64Encoded": encoded,
                "headers": response.headers,
                "cookies": []}
