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
    """Make moto's S3 notifications carry ``versionId`` and ``sequencer``, and leave only once the
    request that wrote the object is done, as S3's do.

    moto leaves both fields out; the submit function names jobs after the object version, so without
    them the local stack would not behave like AWS for two uploads of identical bytes to one key.
    And moto sends ObjectCreated from inside ``put_object``, before the PUT handler sets the user
    metadata: a fast consumer's HEAD then saw no ``prompt`` and the job was REJECTED (seen in CI).
    """
    import itertools

    from moto.s3 import notifications
    from moto.s3.responses import S3Response

    original = notifications._get_s3_event
    original_send = notifications.send_event
    handlers = {name: getattr(S3Response, name) for name in ("key_response", "bucket_response")}
    held = threading.local()

    def send_event(*args: Any, **kwargs: Any) -> None:
        pending = getattr(held, "events", None)
        if pending is None:
            original_send(*args, **kwargs)
        else:
            pending.append((args, kwargs))

    def sending_when_done(handler: Callable[..., Any]) -> Callable[..., Any]:
        def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(held, "events", None) is not None:
                return handler(self, *args, **kwargs)
            held.events = []
            try:
                return handler(self, *args, **kwargs)
            finally:
                pending, held.events = held.events, None
                for event_args, event_kwargs in pending:
                    original_send(*event_args, **event_kwargs)
        return handle
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
    notifications.send_event = send_event  # type: ignore[assignment]
    for name, handler in handlers.items():
        setattr(S3Response, name, sending_when_done(handler))

    def undo() -> None:
        notifications._get_s3_event = original  # type: ignore[assignment]
        notifications.send_event = original_send  # type: ignore[assignment]
        for name, handler in handlers.items():
            setattr(S3Response, name, handler)

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

    The lock spans the whole request, not only the backend call: moto writes the answer's item
    (``to_json``) after the backend returned, and a write adding an attribute meanwhile made it
    answer 500 ("dictionary changed size during iteration"; seen in CI as a lost event, since
    botocore retried an update that had been applied and the retry's condition failed).
    """
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    names = ("put_item", "get_item", "update_item", "delete_item", "transact_write_items", "query", "scan")
    originals = {name: getattr(DynamoDBBackend, name) for name in names}
    original_call_action = DynamoHandler.call_action

    def atomic(method: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)

        return run

    for name, method in originals.items():
        setattr(DynamoDBBackend, name, atomic(method))
    DynamoHandler.call_action = atomic(original_call_action)  # type: ignore[method-assign]

    def undo() -> None:
        for name, method in originals.items():
            setattr(DynamoDBBackend, name, method)
        DynamoHandler.call_action = original_call_action  # type: ignore[method-assign]

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


def patch_moto_sqs_backlog() -> Callable[[], None]:
    """Make moto's SQS cost per call independent of the queue's backlog, as SQS's is.

    Measured (py-spy on ``bench/catalog.py``; ``tests/integration/test_local_sqs_backlog.py`` times
    the calls): moto 5.2.5 reads the clock (three ``datetime`` objects) twice per message for every
    scan of a queue, and scans it far more often than needed. ``ReceiveMessage`` checks each message
    it returns against the retention period by building all of ``Queue.attributes``, three times,
    and each build counts the visible, delayed and in-flight messages (three scans); ``SendMessage``
    builds the same attributes once per message to read ``ContentBasedDeduplication``; and
    ``DeleteMessage`` rebuilds the whole message list. With the 10,000 submit messages of a catalog
    in the intake queue that was ~0.2 s of CPU per message sent and ~0.6 s per message received
    (``bench/moto_backlog.py``, machine idle; patched: 0.02 ms and 0.15 ms), so the local stack
    slowed down as its backlog grew (the 10,000-row catalog did not finish in two hours).

    What changes, each with the result moto computed before:

    - ``Queue.messages`` and the approximate counts read the clock once per call (one instant for
      the whole scan) instead of twice per message;
    - the retention check reads the queue's ``MessageRetentionPeriod`` directly;
    - ``SendMessage`` / ``SendMessageBatch`` do not count messages they never report (the
      attributes they read are the queue's settings);
    - ``DeleteMessage`` removes the one message that holds (or held) the receipt handle in place,
      under the queue's lock. moto rebuilt the list and swapped it in without a lock, so a message
      added or deleted by another request during the rebuild could be lost or brought back; SQS
      has no such race, so this only removes a local-stack fault.

    Visibility, delays, receive counts, the DLQ redrive, the order messages are handed out in and
    the receipt-handle rules (an old handle deletes, a handle used twice is accepted) are moto's own
    code, unchanged.
    """
    from moto.core.utils import camelcase_to_underscores, unix_time, unix_time_millis
    from moto.sqs import models
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    Queue, Backend = models.Queue, models.SQSBackend
    counts = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed",
              "ApproximateNumberOfMessagesNotVisible")
    missing = [name for name in counts if name not in Queue.BASE_ATTRIBUTES]
    if missing:  # a moto whose attributes differ: leave it alone rather than guess
        raise RuntimeError(f"moto's SQS Queue no longer lists {missing}: review patch_moto_sqs_backlog")
    names = {attribute: camelcase_to_underscores(attribute)  # a regex per attribute per call in moto
             for attribute in (*Queue.BASE_ATTRIBUTES, *Queue.FIFO_ATTRIBUTES, *Queue.KMS_ATTRIBUTES)}
    settings_only = threading.local()  # set while SendMessage runs: the counts are never read there
    saved = {name: Queue.__dict__[name] for name in (
        "messages", "approximate_number_of_messages", "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible", "attributes", "delete_message")}
    saved_backend = {name: Backend.__dict__[name] for name in ("send_message", "is_message_valid_based_on_retention_period")}

    def messages(self: Any) -> list[Any]:
        now = unix_time_millis()  # Message.visible: now > visible_at; Message.delayed: now < delayed_until
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def approximate_number_of_messages(self: Any) -> int:
        return len(self.messages)

    def approximate_number_of_messages_delayed(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def approximate_number_of_messages_not_visible(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    def attributes(self: Any) -> dict[str, Any]:
        # moto's Queue.attributes, except that the message counts are left out while SendMessage runs
        skip = counts if getattr(settings_only, "depth", 0) else ()
        result: dict[str, Any] = {}
        for attribute in self.BASE_ATTRIBUTES:
            if attribute not in skip:
                result[attribute] = getattr(self, names[attribute])
        if self.fifo_queue:
            for attribute in self.FIFO_ATTRIBUTES:
                result[attribute] = getattr(self, names[attribute])
        if self.kms_master_key_id:
            for attribute in self.KMS_ATTRIBUTES:
                result[attribute] = getattr(self, names[attribute])
        if self.policy:
            result["Policy"] = self.policy
        if self.redrive_policy:
            result["RedrivePolicy"] = json.dumps(self.redrive_policy)
        for key in result:
            if isinstance(result[key], bool):
                result[key] = str(result[key]).lower()
        return result

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # already deleted: accepted again, as moto and SQS do
        with self._messages_lock:
            for index, message in enumerate(self._messages):
                if message.receipt_handle == receipt_handle or receipt_handle in message._old_receipt_handles:
                    del self._messages[index]
                    break
            else:
                raise ReceiptHandleIsInvalid()
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)

    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        settings_only.depth = getattr(settings_only, "depth", 0) + 1
        try:
            return saved_backend["send_message"](self, *args, **kwargs)
        finally:
            settings_only.depth -= 1

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = self.get_queue(queue_name).message_retention_period
        return not retention_period + message.sent_timestamp / 1000 <= unix_time()

    for name, function in (("messages", messages), ("approximate_number_of_messages", approximate_number_of_messages),
                           ("approximate_number_of_messages_delayed", approximate_number_of_messages_delayed),
                           ("approximate_number_of_messages_not_visible", approximate_number_of_messages_not_visible),
                           ("attributes", attributes)):
        setattr(Queue, name, property(function))
    Queue.delete_message = delete_message  # type: ignore[method-assign]
    Backend.send_message = send_message  # type: ignore[method-assign]
    Backend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]

    def undo() -> None:
        for name, value in saved.items():
            setattr(Queue, name, value)
        for name, value in saved_backend.items():
            setattr(Backend, name, value)

    return undo


def patch_moto_dynamodb_index_query() -> Callable[[], None]:
    """Make moto's Query on a global secondary index skip sorting the whole table.

    moto 5.2.5 answers a GSI ``Query`` by building a list of every item of the table, sorting it by
    primary key (``Table.all_items``, O(n log n) comparisons of Python objects), keeping the items
    whose index hash key matches, and sorting those again by the index's full key. The first sort is
    wasted: the second orders by (index hash, index range, table hash[, table range]), unique per
    item, so it decides the result alone. At every slot release the gate's hand-over queries
    ``by-status`` for QUEUED jobs, so with the 10,000 job records of a catalog each release paid for
    a sort of the whole table. Here, for a GSI query only, the items are listed unsorted and
    pre-filtered on the query's hash-key conditions with moto's own test (moto applies it again);
    the matches, their order, the limit, paging and projection are moto's.
    """
    from moto.dynamodb.models.table import Table

    pending = threading.local()  # (table, hash-key conditions) while a GSI query of that table runs
    original_query, original_all_items = Table.query, Table.all_items

    def all_items(self: Any) -> list[Any]:
        wanted = getattr(pending, "query", None)
        if wanted is None or wanted[0] is not self:
            return original_all_items(self)
        conditions = wanted[1]
        items = []
        for hash_set in self.items.values():
            for item in (hash_set.values() if self.range_key_attr else (hash_set,)):
                for name, expected in conditions:
                    value = item.attrs.get(name)
                    if expected.type == "S":  # a string's cast value is itself: the same test, cheaper
                        if value is None or value.type != "S" or value.value != expected.value:
                            break
                    elif not value or value != expected:  # moto's test in Table.query
                        break
                else:
                    items.append(item)
        return items

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[7] if len(args) > 7 else None)
        if not index_name:
            return original_query(self, *args, **kwargs)
        pending.query = (self, list(kwargs.get("hash_key_conditions") or []))
        try:
            return original_query(self, *args, **kwargs)
        finally:
            pending.query = None

    Table.query = query  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]

    def undo() -> None:
        Table.query = original_query  # type: ignore[method-assign]
        Table.all_items = original_all_items  # type: ignore[method-assign]

    return undo


def patch_moto_jsonpath_cache() -> Callable[[], None]:
    """Make moto parse each JSONPath once, not once per use (EventBridge targets, Step Functions).

    ``jsonpath_ng.ext.parse`` builds a new PLY lexer and parser (its tables included) on every
    call. moto 5.2.5 calls it for each input path of each EventBridge target (nine for the default
    input transformer) on every event, and for every path of every state the poller state machine
    evaluates. Measured with py-spy on ``bench/catalog.py`` (1,000 rows): ~10 % of the process's CPU
    in EventBridge and ~5 % in Step Functions, for ~5 events and ~10 states per job. A parsed
    expression is immutable (``find`` only reads), so the same string always gives an equal one:
    cached by string.
    """
    import functools

    import jsonpath_ng.ext
    from moto.stepfunctions.parser.asl.utils import json_path

    original, original_sfn = jsonpath_ng.ext.parse, json_path.parse
    cached = functools.lru_cache(maxsize=1024)(original)
    jsonpath_ng.ext.parse = cached  # moto.events imports it at each call
    json_path.parse = cached  # Step Functions imported it once

    def undo() -> None:
        jsonpath_ng.ext.parse = original
        json_path.parse = original_sfn

    return undo


def patch_moto_asl_parse_cache() -> Callable[[], None]:
    """Make moto's Step Functions parse a state machine's definition once, not once per execution.

    moto 5.2.5 (LocalStack's interpreter) runs the ANTLR parser over the whole definition at the
    start of every execution: ~10 ms each, 5.8 % of the local stack's GIL time in a 300-upload
    throughput run (py-spy ``--gil``), one execution per job. The program it builds keeps each
    execution's state in that execution's ``Environment``, not in its components (they only read
    their declarations), so executions of one definition can share it: cached by definition text.
    A definition that fails to parse raises each time (``lru_cache`` keeps no exceptions). The one
    thing a component sets on itself is its ``heap_key`` (a lazily drawn id naming its slot in an
    execution's heap, e.g. a retrier's attempt count); it is drawn at parse time, so concurrent
    executions cannot race to draw two.
    """
    import functools

    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    original = AmazonStateLanguageParser.__dict__["parse"]

    def draw_heap_keys(node: Any, seen: set[int]) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, EvalComponent):
            node.heap_key  # noqa: B018 - the property draws and keeps the id
        children = vars(node).values() if isinstance(node, Component) else (
            node.values() if isinstance(node, dict) else node if isinstance(node, (list, tuple)) else ())
        for child in children:
            draw_heap_keys(child, seen)

    @functools.lru_cache(maxsize=64)
    def parse(definition: str) -> Any:
        program, tree = original.__func__(definition)
        draw_heap_keys(program, set())
        return program, tree

    AmazonStateLanguageParser.parse = staticmethod(parse)

    def undo() -> None:
        AmazonStateLanguageParser.parse = original

    return undo


def patch_moto_backend_lookup() -> Callable[[], None]:
    """Make moto's per-request backend lookup a dict lookup once the account's backend exists.

    moto 5.2.5 takes a process-wide lock on every ``BackendDict[account_id]`` (several per request),
    lists the dict's keys and then tests ``self in BackendDict._instances`` with a Python ``__eq__``
    against every service's dict: 3.6 % of the local stack's GIL time in a 300-upload throughput
    run (py-spy ``--gil``, self time), and every request thread queues on that one lock. An account
    is added to a dict and the dict registered in one locked step, and moto's reset clears both, so
    an account already present means there is nothing to do.
    """
    from moto.core.base_backend import BackendDict

    original = BackendDict._create_account_specific_backend

    def create_unless_present(self: Any, account_id: str) -> None:
        if not dict.__contains__(self, account_id):
            original(self, account_id)

    BackendDict._create_account_specific_backend = create_unless_present  # type: ignore[method-assign]

    def undo() -> None:
        BackendDict._create_account_specific_backend = original  # type: ignore[method-assign]

    return undo


def patch_moto_sfn_lambda_client() -> Callable[[], None]:
    """Make moto's Step Functions reuse one Lambda client per region, not build one per task state.

    moto 5.2.5 calls ``boto_client_for`` for every Lambda task it runs (every poll of every job's
    poller), and that builds a new boto3 client: ~2.5 % of ``make chaos``'s GIL time (py-spy
    ``--gil``). The client it builds depends only on the region and service (fixed test keys, moto's
    port), and a boto3 client may be shared by threads once it is built.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    original = lambda_eval_utils.boto_client_for
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def shared_client(region: str, service: str, state_credentials: Any = None) -> Any:
        with lock:  # building a client is not thread-safe
            if (region, service) not in clients:
                clients[region, service] = original(region=region, service=service,
                                                    state_credentials=state_credentials)
            return clients[region, service]

    lambda_eval_utils.boto_client_for = shared_client

    def undo() -> None:
        lambda_eval_utils.boto_client_for = original

    return undo


def patch_moto_server_module_list() -> Callable[[], None]:
    """Make moto's server list its own service modules once, not at every request.

    To route a request, moto 5.2.5's ``DomainDispatcherApplication.get_backend_for_host`` asks
    ``moto.backends.list_of_moto_modules()``, which lists moto's package directory and stats every
    entry (~150) each time. py-spy on ``bench/catalog.py`` (1,000 rows): ~10 % of the process's CPU.
    The package does not change while the process runs: the list is read once.
    """
    from moto import backends

    original = backends.list_of_moto_modules
    modules = tuple(original())
    backends.list_of_moto_modules = lambda: iter(modules)  # type: ignore[assignment]

    def undo() -> None:
        backends.list_of_moto_modules = original  # type: ignore[assignment]

    return undo
