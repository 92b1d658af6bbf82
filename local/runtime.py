"""Runs the real Lambda handlers in this process, as moto's Lambda would run them in Docker.

moto cannot start Lambda containers here, so its ``LambdaFunction._invoke_lambda`` is patched to
call the handler in-process. Every way moto invokes a function (direct invoke, Step Functions task)
then runs the real code. Handler exceptions are reported the way Lambda reports them
(``errorType``/``errorMessage``), so the state machine's Retry/Catch match on the class name.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from local.template import ROOT


@dataclass
class LambdaContext:
    """The attributes Powertools and the handlers read from Lambda's context object."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    invoked_function_arn: str
    aws_request_id: str
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class FunctionDefinition:
    name: str
    code_dir: Path
    handler: str  # "module.function"
    memory: int
    timeout: int
    arn: str = ""


class SimulatedCrash(BaseException):
    """The function's process dies mid-invocation (a timeout kill, out of memory). A BaseException,
    so the handler's own error handling (which only catches Exception) runs no cleanup, exactly as
    with a real crash: leases stay taken, multipart uploads stay open."""


class FunctionCrashed(Exception):
    """What the caller of a crashed invocation sees (Lambda reports a runtime exit)."""


class CrashingFetcher:
    """Wraps a finalize container's result fetcher: with probability ``rate`` (seeded), the copy
    dies after its first chunk, mid multipart upload. The local stack's finalize-crash knob."""

    def __init__(self, fetcher: Any, rate: float, seed: int) -> None:
        import random

        self._fetcher = fetcher
        self._rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.crashes = 0

    def open(self, url: str) -> Any:
        from contextlib import contextmanager

        with self._lock:
            crash = self._rng.random() < self._rate

        @contextmanager
        def opened() -> Any:
            with self._fetcher.open(url) as chunks:
                if not crash:
                    yield chunks
                    return

                def dying() -> Any:
                    for index, chunk in enumerate(chunks):
                        if index == 1:
                            with self._lock:
                                self.crashes += 1
                            raise SimulatedCrash("finalize crashed mid-copy (local knob)")
                        yield chunk
                    with self._lock:
                        self.crashes += 1
                    raise SimulatedCrash("finalize crashed at the end of the copy (local knob)")

                yield dying()

        return opened()


class FunctionRunner:
    """Loads each function's module once (a warm container) and invokes its handler."""

    def __init__(self) -> None:
        self._functions: dict[str, FunctionDefinition] = {}
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._lock = threading.Lock()
        self.invocations: dict[str, int] = {}
        self.crashes: dict[str, int] = {}
        # name -> called with the function's module once it is loaded (local knobs hook in here)
        self.on_load: dict[str, Callable[[ModuleType], None]] = {}

    def register(self, definition: FunctionDefinition) -> None:
        self._functions[definition.name] = definition

    def _handler(self, name: str) -> Callable[[Any, Any], Any]:
        with self._lock:
            if name not in self._handlers:
                definition = self._functions[name]
                module_name, _, function_name = definition.handler.rpartition(".")
                path = definition.code_dir / f"{module_name.replace('.', '/')}.py"
                spec = importlib.util.spec_from_file_location(f"clipedit_function_{name.replace('-', '_')}", path)
                assert spec and spec.loader, path
                module: ModuleType = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                if name in self.on_load:
                    self.on_load[name](module)
                self._handlers[name] = getattr(module, function_name)
            self.invocations[name] = self.invocations.get(name, 0) + 1
            return self._handlers[name]

    def invoke(self, name: str, event: Any) -> Any:
        definition = self._functions[name]
        context = LambdaContext(
            function_name=name,
            memory_limit_in_mb=definition.memory,
            timeout_seconds=definition.timeout,
            invoked_function_arn=definition.arn,
            aws_request_id=str(uuid.uuid4()),
        )
        handler = self._handler(name)
        try:
            return handler(event, context)
        except SimulatedCrash as crash:
            with self._lock:
                self.crashes[name] = self.crashes.get(name, 0) + 1
            raise FunctionCrashed(f"Runtime exited: {crash}") from None

    def knows(self, name: str) -> bool:
        return name in self._functions


def patch_moto_lambda(runner: FunctionRunner) -> Callable[[], None]:
    """Route moto's Lambda invocations to ``runner``; returns a function that undoes the patch."""
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction._invoke_lambda

    def _invoke_in_process(self: Any, event: str | None = None) -> tuple[str, bool, str]:
        if not runner.knows(self.function_name):
            return original(self, event)
        payload = event if isinstance(event, dict) else (json.loads(event) if event else {})
        try:
            result = runner.invoke(self.function_name, payload)
        except Exception as error:  # reported as Lambda does, for Retry/Catch on the class name
            body = {"errorType": type(error).__name__, "errorMessage": str(error),
                    "stackTrace": traceback.format_exception(error)[-3:]}
            return json.dumps(body), True, ""
        return json.dumps(result), False, ""

    LambdaFunction._invoke_lambda = _invoke_in_process  # type: ignore[method-assign]

    def undo() -> None:
        LambdaFunction._invoke_lambda = original  # type: ignore[method-assign]

    return undo


def function_definition(template: dict[str, Any], logical_id: str, name: str) -> FunctionDefinition:
    from local.template import function_spec

    spec = function_spec(template, logical_id)
    return FunctionDefinition(
        name=name,
        code_dir=ROOT / spec["code_uri"],
        handler=spec["handler"],
        memory=int(spec["memory"]),
        timeout=int(spec["timeout"]),
    )


def patch_moto_s3_events() -> Callable[[], None]:
    """Make moto's S3 notifications carry ``versionId`` and ``sequencer`` as S3's do.

    moto leaves both out; the submit function names jobs after the object version, so without them
    the local stack would not behave like AWS for two uploads of identical bytes to one key.
    """
    import itertools

    from moto.s3 import notifications

    original = notifications._get_s3_event
    sequence = itertools.count(1)

    def _get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original(event_name, bucket, key, notification_id)
        obj = event["Records"][0]["s3"]["object"]
        version_id = getattr(key, "version_id", None)
        if version_id and version_id != "null":
            obj["versionId"] = version_id
        obj["sequencer"] = f"{next(sequence):016X}"
        return event

    notifications._get_s3_event = _get_s3_event  # type: ignore[assignment]

    def undo() -> None:
        notifications._get_s3_event = original  # type: ignore[assignment]

    return undo


def patch_moto_dynamodb_atomic() -> Callable[[], None]:
    """Make moto's DynamoDB item operations atomic, as DynamoDB's are.

    moto's server answers requests on many threads and checks a ``ConditionExpression`` and then
    applies the update without a lock, so two concurrent conditional writes to one item can both
    pass their check (measured: 3 rounds in 100 of eight racing ``status IN (RECEIVED)`` updates
    had two winners). DynamoDB serialises the writes to an item, and every exactly-once rule here
    (one QUEUED move, one claim, one finalize) relies on that: without this patch a loaded local
    stack could record a job QUEUED twice. One lock around every item read and write of the backend
    restores the guarantee; moto is bound by one interpreter lock anyway, so little is lost.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    names = ("put_item", "get_item", "update_item", "delete_item", "transact_write_items", "query", "scan")
    originals = {name: getattr(DynamoDBBackend, name) for name in names}

    def atomic(method: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)

        return run

    for name, method in originals.items():
        setattr(DynamoDBBackend, name, atomic(method))

    def undo() -> None:
        for name, method in originals.items():
            setattr(DynamoDBBackend, name, method)

    return undo


def patch_moto_task_token_wait(seconds: float = 0.01) -> Callable[[], None]:
    """Make moto notice SendTaskSuccess at once, as Step Functions does.

    moto's ``.waitForTaskToken`` task checks for the callback's outcome every 0.5 s, so every wait
    the provider's callback ends would last up to half a second longer than on AWS (where the
    execution resumes on SendTaskSuccess). The check itself is unchanged: only its period.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback

    original = state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK
    state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = seconds  # type: ignore[misc]

    def undo() -> None:
        state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = original  # type: ignore[misc]

    return undo
