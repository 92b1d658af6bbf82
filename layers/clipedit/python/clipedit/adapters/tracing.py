"""X-Ray tracing for the handlers, paid for only where it runs.

Powertools' ``Tracer()`` imports the X-Ray SDK (~110 ms) and patches every library it knows at
construction, even where it then switches itself off (outside Lambda, in the local stack, in
tests). ``HandlerTracer`` decides first: where tracing is off the handler is returned untouched
and the SDK is never imported; where it is on (in Lambda with active tracing, as the template
deploys) the Powertools tracer is built on the first invocation, patching only the two libraries
the functions call out with (botocore, httpx), and the handler runs inside its segment from then
on. The first invocation pays for loading the SDK (`bench/cold_start.py` reports that figure).
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any, Callable

PATCHED_MODULES = ("botocore", "httpx")
_TRUE = {"1", "true", "yes", "on", "y", "t"}


def tracing_active(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """As Powertools decides: on in Lambda (``LAMBDA_TASK_ROOT``) unless disabled or emulated."""
    if environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in _TRUE:
        return False
    if environ.get("AWS_SAM_LOCAL") or environ.get("AWS_CHALICE_CLI_MODE"):
        return False
    return bool(environ.get("LAMBDA_TASK_ROOT"))


class HandlerTracer:
    def __init__(self, *, active: bool | None = None) -> None:
        self.active = tracing_active() if active is None else active
        self._lock = threading.Lock()
        self._traced: dict[Callable[..., Any], Callable[..., Any]] = {}

    def capture_lambda_handler(self, handler: Callable[..., Any] | None = None, *,
                               capture_response: bool = True) -> Any:
        """``@tracer.capture_lambda_handler`` or ``@tracer.capture_lambda_handler(capture_response=False)``."""
        if handler is None:
            return functools.partial(self.capture_lambda_handler, capture_response=capture_response)
        if not self.active:
            return handler

        @functools.wraps(handler)
        def traced(event: Any, context: Any) -> Any:
            return self._traced_handler(handler, capture_response)(event, context)

        return traced

    def _traced_handler(self, handler: Callable[..., Any], capture_response: bool) -> Callable[..., Any]:
        with self._lock:
            if handler not in self._traced:
                from aws_lambda_powertools import Tracer

                tracer = Tracer(patch_modules=PATCHED_MODULES)
                self._traced[handler] = tracer.capture_lambda_handler(handler, capture_response=capture_response)
            return self._traced[handler]
