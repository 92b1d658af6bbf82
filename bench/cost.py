"""Benchmark 5 - AWS cost per job, the provider excluded, from requests counted in a local run.

Two local runs of N jobs each (uploads 1.5 s apart, so each is its own SQS batch as at low
volume): the callback path, and the poller-only path (every callback dropped). During each run:

* every AWS API call made in the process is recorded (``botocore`` ``_make_api_call`` wrapped) with
  who made it: a Lambda invocation (submit / callback / poll, and whether it copied the output),
  the SQS event source mapping (the local dispatcher), or the benchmark's own client (not counted);
* every Lambda invocation is timed (``stack.runner.invoke`` wrapped) and its provider calls counted;
* state transitions are counted from each execution's history (every ``*StateEntered`` event plus
  every task retry, as Step Functions bills them);
* HTTP API requests are the callback gateway's requests; S3 -> SQS notifications and the
  provider's download of the input (a presigned GET) happen outside botocore and are added, one
  per job each.

DynamoDB capacity is computed from the items' sizes (WRU per 1 KB written, RRU per 4 KB read
strongly consistent, conditional failures charged, and the writes each global secondary index
receives: 2 when its key changes, 1 when a projected attribute does), with the tables' key schemas
and projections read from moto.

Pricing (us-east-1, public list prices, read on the date in PRICES_READ_ON; free tiers ignored) is
in ``PRICES``. Lambda durations measured locally are much shorter than on AWS (moto answers in
microseconds; Kling answers from Singapore), so the priced durations add ``--aws-call-ms`` per AWS
call and ``--kling-call-ms`` per provider call, and the invocation that copies the result adds the
time to move ``--output-mb`` at ``--copy-mb-per-s``; the output's multipart requests are priced
for that size too. The input's egress to the provider (data transfer out, per GB) is reported
separately: it is a function of the clip, not of clipedit.

Model: the poller's checks are the only part that grows with the provider's time P. A job gets
floor(P/I) + 1 poll cycles (on the callback path the last one is the check the callback wakes at P,
which copies; on the poller path the first check at or after P copies). A cycle is a park (the
finalize invocation that stores the task token the poller waits on; the wait times out after I or
is resumed by the callback), a check, and 3 transitions. Per job cost = fixed + (cycles - the
checks that did something) x (one no-op cycle), where the fixed part (everything else, including
checks that moved the job or copied the result) and the cost of one no-op cycle (park + check
invocations, their reads and writes, 3 transitions) come from the measured run.

``BEFORE_CALLBACK_PATH`` is the figure issue 15 quotes for the design before the callback ended the
wait (the callback copied the result, the poller looped on a Wait state, I = 60 s): quoted, not
measured in this run.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "clipedit" / "python"),
                str(Path(__file__).resolve().parents[1])]

from bench.common import (  # noqa: E402
    AwsCallRecorder,
    CopyTimer,
    InvocationTimer,
    LogSink,
    classify_invocation,
    dynamodb_item_size,
    local_stack,
    make_small_clip,
    row,
    say,
    template_facts,
    use_copy_render,
    write_result,
)

PRICES_READ_ON = "2026-11-24"
PRICES = {
    # AWS Lambda, arm64 (the template's architecture), first pricing tier.
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s_arm64": 0.0000133334,
    "lambda_gb_s_x86_64": 0.0000166667,
    # Step Functions Standard.
    "sfn_transition": 0.025 / 1000,
    # DynamoDB on-demand (after the November 2024 price cut).
    "ddb_wru": 0.625 / 1e6,
    "ddb_rru": 0.125 / 1e6,
    # S3 Standard requests.
    "s3_tier1": 0.005 / 1000,   # PUT, COPY, POST, LIST (and multipart create/part/complete)
    "s3_tier2": 0.0004 / 1000,  # GET, HEAD and the rest
    # SQS standard queue, per request (each 64 KB chunk of payload).
    "sqs_request": 0.40 / 1e6,
    # EventBridge custom events, per event (64 KB chunk).
    "events_custom": 1.00 / 1e6,
    # API Gateway HTTP API, first 300 M requests (per 512 KB).
    "http_api_request": 1.00 / 1e6,
    # Secrets Manager API calls; the secret itself is monthly.
    "secrets_api_call": 0.05 / 10000,
    "secret_month": 0.40,
    # X-Ray traces recorded (upper bound: every trace sampled).
    "xray_trace": 5.00 / 1e6,
    # CloudWatch Logs ingestion (standard class).
    "logs_gb": 0.50,
    # Data transfer out to the internet, first 10 TB/month (the provider fetching the input).
    "egress_gb": 0.09,
}
PRICE_SOURCES = {
    "Lambda": "aws.amazon.com/lambda/pricing (arm64 $0.0000133334 per GB-s, $0.20 per 1M requests)",
    "Step Functions": "aws.amazon.com/step-functions/pricing (Standard: $0.025 per 1,000 state transitions, retries included)",
    "DynamoDB": "aws.amazon.com/dynamodb/pricing/on-demand ($0.625 per 1M WRU, $0.125 per 1M RRU since Nov 2024)",
    "S3": "aws.amazon.com/s3/pricing (Standard: $0.005 per 1,000 PUT/COPY/POST/LIST, $0.0004 per 1,000 GET/HEAD)",
    "SQS": "aws.amazon.com/sqs/pricing ($0.40 per 1M standard requests, each 64 KB chunk a request)",
    "EventBridge": "aws.amazon.com/eventbridge/pricing ($1.00 per 1M custom events)",
    "HTTP API": "aws.amazon.com/api-gateway/pricing ($1.00 per 1M HTTP API requests, first 300M)",
    "Secrets Manager": "aws.amazon.com/secrets-manager/pricing ($0.40 per secret-month, $0.05 per 10,000 API calls)",
    "X-Ray": "aws.amazon.com/xray/pricing ($5.00 per 1M traces recorded)",
    "CloudWatch Logs": "aws.amazon.com/cloudwatch/pricing ($0.50 per GB ingested, standard class)",
    "Data transfer": "aws.amazon.com/ec2/pricing/on-demand (data transfer out to internet $0.09/GB, first 10 TB)",
}
# Monthly costs that do not depend on the number of jobs.
IDLE_SQS_REQUESTS_PER_MONTH = 5 * 3 * 60 * 24 * 30  # Lambda's SQS pollers: ~5 long polls (20 s) in flight
PLATFORM_LOG_BYTES_PER_INVOCATION = 350  # START, END, REPORT lines (with the X-Ray trace id)
S3_PART_SIZE = 8 * 1024 * 1024
PROMPT = "Give @Video1 a warm grade. Keep the subject, motion and camera identical."

BEFORE_CALLBACK_PATH = "$0.000421/job (13 transitions; issue 15, before: copy in the callback, I = 60 s)"
CALLBACK_PATH_TARGET = 0.00025
S3_FREE = ("Delete", "AbortMultipartUpload")
S3_TIER1 = ("Put", "Copy", "Post", "List", "Create", "Complete", "Upload", "Restore", "Select")


# --- what a run records ------------------------------------------------------------------------------


@dataclasses.dataclass
class RunRecord:
    path: str
    jobs: list[str]
    calls: list[dict[str, Any]]
    invocations: list[dict[str, Any]]
    transitions: dict[str, int]
    executions: dict[str, str]
    http_api_requests: int
    log_bytes: int
    memory_mb: dict[str, int]
    tables: dict[str, dict[str, Any]]
    provider_tasks: int
    clip_bytes: int
    settings: dict[str, Any]


def count_transitions(sfn: Any, execution_arn: str) -> int:
    events, token = [], None
    while True:
        kwargs = {"executionArn": execution_arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            break
    entered = sum(1 for e in events if e["type"].endswith("StateEntered"))
    scheduled = sum(1 for e in events if e["type"] in ("TaskScheduled", "LambdaFunctionScheduled"))
    task_states = sum(1 for e in events if e["type"] == "TaskStateEntered")
    return entered + max(0, scheduled - task_states)  # a retry is billed as a transition


def table_schemas(stack: Any, names: set[str]) -> dict[str, dict[str, Any]]:
    ddb = stack.client("dynamodb")
    schemas = {}
    for name in names:
        table = ddb.describe_table(TableName=name)["Table"]
        schemas[name] = {
            "key": [k["AttributeName"] for k in table["KeySchema"]],
            "indexes": [{"key": [k["AttributeName"] for k in gsi["KeySchema"]],
                         "projection": gsi.get("Projection", {}).get("ProjectionType", "ALL")}
                        for gsi in table.get("GlobalSecondaryIndexes", [])],
        }
    return schemas


def run_path(path: str, clip: Path, work: Path, args: argparse.Namespace, overrides: dict[str, str], sink: LogSink) -> RunRecord:
    from clipedit.adapters import kling
    from local.client import LocalClient

    facts = template_facts()
    knobs = dict(overrides, CLIPEDIT_EMULATOR_PROCESSING_SECONDS=str(args.processing_seconds))
    if path == "poller":
        knobs["CLIPEDIT_EMULATOR_DROP_CALLBACK_RATE"] = "1"
    holder: dict[str, Any] = {"timer": None, "recording": False}

    def actor() -> str:
        timer = holder["timer"]
        record = timer.current() if timer else None
        if record is not None:
            return f"invocation:{id(record)}"
        name = threading.current_thread().name
        if name.startswith("sqs-dispatch"):
            return "esm"
        if name == "MainThread":
            return "client"
        return f"other:{name.split(' ')[0]}"

    recorder = AwsCallRecorder(actor)
    provider_methods = {}
    for name, value in list(vars(kling.KlingProvider).items()):
        if not name.startswith("_") and callable(value) and not isinstance(value, (staticmethod, classmethod)):
            provider_methods[name] = value

            def wrapper(*a: Any, __f: Any = value, **k: Any) -> Any:
                timer = holder["timer"]
                record = timer.current() if timer else None
                if record is not None:
                    record["provider_calls"] = record.get("provider_calls", 0) + 1
                return __f(*a, **k)

            setattr(kling.KlingProvider, name, wrapper)
    copies = None
    try:
        if True:  # the log sink is installed once by main(): Powertools binds the first stdout it sees
            interval = local_interval(path, args)
            with local_stack(f"bench-cost-{path}", work / path, poll_interval_seconds=interval,
                             emulator_overrides=knobs) as stack:
                timer = InvocationTimer(stack, classify_invocation)
                holder["timer"] = timer
                copies = CopyTimer(timer)
                client = LocalClient(stack.info)
                # Warm the functions (a cold start is rare at any volume; it is measured by cold_start.py).
                warm = client.upload_clip(clip, "incoming/cost/warmup.mp4", {"prompt": PROMPT})
                client.wait_for_job(warm, timeout=120)
                wait_for_executions(stack, [warm], interval)
                time.sleep(1.5)
                # From here on, everything counts.
                first_call, first_invocation = len(recorder.calls), len(timer.records)
                log_bytes_before = sink.bytes
                gateway_before = stack.gateway.requests
                tasks_before = len(stack.emulator.tasks())
                jobs = []
                for i in range(args.jobs):
                    jobs.append(client.upload_clip(clip, f"incoming/cost/{path}-{i:03d}.mp4", {"prompt": PROMPT}))
                    time.sleep(1.5)
                for job_id in jobs:
                    job = client.wait_for_job(job_id, timeout=args.processing_seconds + 4 * interval + 120)
                    if job["status"] != "SUCCEEDED":
                        raise RuntimeError(f"{path}: job {job_id} ended {job['status']}: {job.get('error_message')}")
                executions = wait_for_executions(stack, jobs, interval)
                calls = recorder.calls[first_call:]
                invocations = timer.records[first_invocation:]
                sfn = stack.client("stepfunctions")
                transitions = {job: count_transitions(sfn, arn) for job, arn in executions.items()}
                http_api_requests = stack.gateway.requests - gateway_before
                log_bytes = sink.bytes - log_bytes_before
                tables = {c["params"].get("TableName") for c in calls if c["service"] == "dynamodb" and c["params"].get("TableName")}
                schemas = table_schemas(stack, tables)
                provider_tasks = len(stack.emulator.tasks()) - tasks_before
                memory = {stack.submit_function: facts["memory_mb"]["SubmitFunction"],
                          stack.finalize_function: facts["memory_mb"]["FinalizeFunction"]}
                status_by_execution = {job: sfn.describe_execution(executionArn=arn)["status"] for job, arn in executions.items()}
    finally:
        recorder.undo()
        if copies:
            copies.undo()
        for name, value in provider_methods.items():
            setattr(kling.KlingProvider, name, value)
    return RunRecord(
        path=path, jobs=jobs, calls=calls, invocations=invocations, transitions=transitions,
        executions=status_by_execution, http_api_requests=http_api_requests, log_bytes=log_bytes,
        memory_mb=memory, tables=schemas, provider_tasks=provider_tasks, clip_bytes=clip.stat().st_size,
        settings={"processing_seconds": args.processing_seconds, "poll_interval_seconds": interval,
                  "jobs": args.jobs},
    )


def local_interval(path: str, args: argparse.Namespace) -> int:
    """The callback path runs with the poll interval longer than the provider's time, as at the
    headline (P < I): the callback ends every wait, and what a job costs is measured, not modelled.
    The poller path needs checks to finish at all: the short interval."""
    if path == "callback":
        return args.callback_poll_interval or int(args.processing_seconds) + 10
    return args.poll_interval


def wait_for_executions(stack: Any, jobs: list[str], poll_interval: int) -> dict[str, str]:
    """Wait until each job's poller execution has ended (its transitions are then final)."""
    sfn = stack.client("stepfunctions")
    base = stack.info["state_machine_arn"].replace(":stateMachine:", ":execution:")
    arns = {job: f"{base}:{job}" for job in jobs}
    deadline = time.monotonic() + 3 * poll_interval + 60
    pending = dict(arns)
    while pending and time.monotonic() < deadline:
        for job, arn in list(pending.items()):
            if sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
                del pending[job]
        if pending:
            time.sleep(0.5)
    if pending:
        raise RuntimeError(f"{len(pending)} poller executions still running")
    return arns


# --- counting and pricing ------------------------------------------------------------------------------


@dataclasses.dataclass
class Usage:
    """Billable quantities; ``add``-able, scalable."""

    lambda_requests: float = 0.0
    lambda_gb_s: float = 0.0
    sfn_transitions: float = 0.0
    ddb_wru: float = 0.0
    ddb_rru: float = 0.0
    s3_tier1: float = 0.0
    s3_tier2: float = 0.0
    sqs_requests: float = 0.0
    events: float = 0.0
    http_api_requests: float = 0.0
    secrets_calls: float = 0.0
    xray_traces: float = 0.0
    log_bytes: float = 0.0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)})

    def __sub__(self, other: "Usage") -> "Usage":
        return Usage(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in dataclasses.fields(self)})

    def scaled(self, factor: float) -> "Usage":
        return Usage(**{f.name: getattr(self, f.name) * factor for f in dataclasses.fields(self)})

    def dollars(self, architecture: str = "arm64") -> dict[str, float]:
        gb_s = PRICES["lambda_gb_s_arm64" if architecture == "arm64" else "lambda_gb_s_x86_64"]
        return {
            "Lambda requests": self.lambda_requests * PRICES["lambda_request"],
            "Lambda compute": self.lambda_gb_s * gb_s,
            "Step Functions transitions": self.sfn_transitions * PRICES["sfn_transition"],
            "DynamoDB writes": self.ddb_wru * PRICES["ddb_wru"],
            "DynamoDB reads": self.ddb_rru * PRICES["ddb_rru"],
            "S3 PUT/POST/LIST": self.s3_tier1 * PRICES["s3_tier1"],
            "S3 GET/HEAD": self.s3_tier2 * PRICES["s3_tier2"],
            "SQS requests": self.sqs_requests * PRICES["sqs_request"],
            "EventBridge events": self.events * PRICES["events_custom"],
            "HTTP API requests": self.http_api_requests * PRICES["http_api_request"],
            "Secrets Manager calls": self.secrets_calls * PRICES["secrets_api_call"],
            "X-Ray traces (all sampled)": self.xray_traces * PRICES["xray_trace"],
            "CloudWatch Logs": self.log_bytes / 1e9 * PRICES["logs_gb"],
        }

    def total(self, architecture: str = "arm64") -> float:
        return sum(self.dollars(architecture).values())


class DynamoAccount:
    """DynamoDB capacity units from recorded calls, item sizes and the tables' indexes."""

    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        self.tables = tables
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def _key(self, table: str, item_or_key: dict[str, Any]) -> tuple[str, str]:
        names = self.tables.get(table, {}).get("key") or list(item_or_key)[:1]
        return table, json.dumps({n: item_or_key.get(n) for n in names}, sort_keys=True)

    def _index_writes(self, table: str, old: dict[str, Any] | None, new: dict[str, Any] | None, size: int) -> int:
        units = max(1, math.ceil(size / 1024))
        writes = 0
        for index in self.tables.get(table, {}).get("indexes", []):
            in_old = bool(old) and all(k in old for k in index["key"])
            in_new = bool(new) and all(k in new for k in index["key"])
            if not in_old and not in_new:
                continue
            key_changed = in_old != in_new or (in_old and any(old.get(k) != new.get(k) for k in index["key"]))  # type: ignore[union-attr]
            if key_changed:
                writes += units * (int(in_old) + int(in_new))  # delete the old entry, put the new one
            elif index["projection"] != "KEYS_ONLY" and old != new:
                writes += units
        return writes

    def charge(self, call: dict[str, Any]) -> tuple[float, float]:
        """(WRU, RRU) of one recorded call."""
        op, params, response = call["operation"], call["params"], call.get("response") or {}
        table = params.get("TableName", "")
        failed = call.get("error") == "ConditionalCheckFailedException"
        if op == "GetItem":
            item = response.get("Item")
            size = dynamodb_item_size(item) if item else 0
            if item:
                self.items[self._key(table, item)] = item
            return 0.0, max(1, math.ceil(size / 4096)) * (1.0 if params.get("ConsistentRead") else 0.5)
        if op in ("Query", "Scan"):
            size = sum(dynamodb_item_size(i) for i in response.get("Items", []))
            return 0.0, max(1, math.ceil(size / 4096)) * (1.0 if params.get("ConsistentRead") else 0.5)
        if op == "PutItem":
            item = params["Item"]
            key = self._key(table, item)
            old = self.items.get(key)
            size = max(dynamodb_item_size(item), dynamodb_item_size(old) if old else 0)
            units = max(1, math.ceil(size / 1024))
            if failed:
                return float(units), 0.0
            self.items[key] = item
            return float(units + self._index_writes(table, old, item, dynamodb_item_size(item))), 0.0
        if op in ("UpdateItem", "DeleteItem"):
            key = self._key(table, params["Key"])
            old = self.items.get(key)
            new = response.get("Attributes") if params.get("ReturnValues") == "ALL_NEW" else None
            old_size = dynamodb_item_size(old) if old else 0
            new_size = dynamodb_item_size(new) if new else old_size
            units = max(1, math.ceil(max(old_size, new_size) / 1024))
            if failed:
                return float(units), 0.0
            if op == "DeleteItem":
                self.items.pop(key, None)
                return float(units + self._index_writes(table, old, None, old_size)), 0.0
            if new is None:  # no returned item: assume the index key is unchanged (lease fields)
                new = dict(old or {}, _changed={"S": str(time.time())})
            self.items[key] = {k: v for k, v in new.items() if k != "_changed"}
            return float(units + self._index_writes(table, old, new, new_size)), 0.0
        if op in ("BatchWriteItem", "TransactWriteItems", "BatchGetItem", "TransactGetItems"):
            return 2.0, 2.0  # not used by clipedit today; a visible, conservative placeholder
        return 0.0, 0.0


def usage_of_calls(calls: list[dict[str, Any]]) -> Usage:
    """Billable requests of recorded calls (DynamoDB units precomputed in call order by ``DynamoAccount``)."""
    usage = Usage()
    for call in calls:
        service, op = call["service"], call["operation"]
        if service == "dynamodb":
            usage.ddb_wru += call.get("wru", 0.0)
            usage.ddb_rru += call.get("rru", 0.0)
        elif service == "s3":
            if op.startswith(S3_FREE):
                continue
            if op.startswith(S3_TIER1):
                usage.s3_tier1 += 1
            else:
                usage.s3_tier2 += 1
        elif service == "sqs":
            if call["actor"] == "esm" and op == "ReceiveMessage" and not (call.get("response") or {}).get("Messages"):
                continue  # an empty long poll: idle cost, priced per month
            usage.sqs_requests += 1
        elif service == "events" and op == "PutEvents":
            usage.events += len(call["params"].get("Entries", []))
        elif service == "secretsmanager":
            usage.secrets_calls += 1
        # stepfunctions API calls are free (transitions are billed); lambda Invoke calls made by the
        # state machine are the invocations themselves, counted from the runner.
    return usage


WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")


def invocation_kind(record: dict[str, Any], calls: list[dict[str, Any]]) -> str:
    if record["kind"] == "poll":
        if record["copied"]:
            return "poll-copy"
        if any(c["service"] == "dynamodb" and c["operation"] in WRITES for c in calls):
            return "poll-advance"  # e.g. SUBMITTED -> PROCESSING: once per job, not per check
        return "poll-check"
    if record["kind"] == "callback":
        return "callback-copy" if record["copied"] else "callback-other"
    return record["kind"]


def invocation_usage(record: dict[str, Any], calls: list[dict[str, Any]], memory_mb: int, args: argparse.Namespace,
                     log_bytes: float) -> tuple[Usage, float]:
    """Usage of one invocation and its duration as priced (measured + the AWS latency allowance)."""
    usage = usage_of_calls(calls)
    aws_calls = len(calls)
    seconds = record["seconds"] + aws_calls * args.aws_call_ms / 1000 + record.get("provider_calls", 0) * args.kling_call_ms / 1000
    if record["copied"]:
        seconds += args.output_mb / args.copy_mb_per_s
        # The result's multipart upload priced for the assumed size (create + parts + complete).
        measured_parts = sum(1 for c in calls if c["service"] == "s3" and c["operation"] == "UploadPart")
        usage.s3_tier1 += math.ceil(args.output_mb * 1e6 / S3_PART_SIZE) - measured_parts
    usage.lambda_requests += 1
    usage.lambda_gb_s += math.ceil(seconds * 1000) / 1000 * memory_mb / 1024
    usage.log_bytes += log_bytes + PLATFORM_LOG_BYTES_PER_INVOCATION
    return usage, seconds


def analyse(run: RunRecord, args: argparse.Namespace) -> dict[str, Any]:
    n = len(run.jobs)
    ddb = DynamoAccount(run.tables)
    for call in run.calls:  # in the order they were made: each write is priced against the item before it
        if call["service"] == "dynamodb":
            call["wru"], call["rru"] = ddb.charge(call)
    by_actor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in run.calls:
        by_actor[call["actor"]].append(call)
    log_per_invocation = run.log_bytes / max(1, len(run.invocations))
    kinds: dict[str, list[tuple[Usage, float]]] = defaultdict(list)
    for record in run.invocations:
        calls = by_actor.get(f"invocation:{id(record)}", [])
        usage, seconds = invocation_usage(record, calls, run.memory_mb[record["function"]], args, log_per_invocation)
        kinds[invocation_kind(record, calls)].append((usage, seconds))
    outside = usage_of_calls(by_actor.get("esm", []))  # the event source mapping's receives/deletes
    outside.sqs_requests += n  # S3 -> SQS: one notification per upload
    outside.s3_tier2 += run.provider_tasks  # the provider downloads the input (presigned GET)
    outside.http_api_requests += run.http_api_requests
    # X-Ray, every trace sampled: one per SQS-triggered submit invocation, one per callback
    # invocation (HTTP APIs do not trace; Lambda starts the trace), one per poller execution.
    outside.xray_traces += sum(len(kinds.get(k, [])) for k in ("submit", "callback-copy", "callback-other")) + len(run.transitions)
    transitions = float(sum(run.transitions.values()))
    total = outside + Usage(sfn_transitions=transitions)
    for entries in kinds.values():
        for usage, _ in entries:
            total = total + usage
    checks = kinds.get("poll-check", [])
    parks = kinds.get("park", [])
    # One no-op poll cycle: the park (token written, the wait times out), the check, 3 transitions
    # (WaitForProvider, CheckJob, IsTerminal). A job's last park (resumed by the callback, or timed
    # out into the check that copies) stays in the fixed part.
    one_park = sum((u for u, _ in parks), Usage()).scaled(1 / len(parks)) if parks else Usage()
    one_check = (sum((u for u, _ in checks), Usage()).scaled(1 / len(checks)) if checks else Usage()) + one_park \
        + Usage(sfn_transitions=3)
    per_job = total.scaled(1 / n)
    checks_per_job = len(checks) / n
    fixed = per_job - one_check.scaled(checks_per_job)
    # Poll invocations that did something (advanced the job, copied the result) stay in the fixed part.
    other_polls_per_job = sum(len(kinds.get(k, [])) for k in ("poll-advance", "poll-copy", "expire")) / n
    other_kinds = {k: {"count": len(v), "per_job": round(len(v) / n, 3),
                       "priced_ms_mean": round(sum(s for _, s in v) / len(v) * 1000, 1)} for k, v in kinds.items() if v}
    operations = Counter(f"{c['service']}:{c['operation']}" for c in run.calls
                         if c["actor"].startswith("invocation:") or (c["actor"] == "esm" and not (
                             c["operation"] == "ReceiveMessage" and not (c.get("response") or {}).get("Messages"))))
    return {
        "path": run.path, "jobs": n, "per_job": per_job, "fixed": fixed, "one_check": one_check,
        "checks_per_job": checks_per_job, "other_polls_per_job": other_polls_per_job, "transitions_per_job": transitions / n,
        "invocations": other_kinds,
        "aws_calls_per_job": {k: round(v / n, 2) for k, v in sorted(operations.items())},
        "http_api_per_job": run.http_api_requests / n, "log_bytes_per_job": run.log_bytes / n,
        "executions": Counter(run.executions.values()),
    }


def modelled(analysis: dict[str, Any], provider_s: float, interval_s: float) -> Usage:
    """Per-job usage when the provider takes ``provider_s`` and the poller waits ``interval_s``:
    floor(P/I) + 1 poll invocations, of which those that advance or copy are in the fixed part."""
    polls = math.floor(provider_s / interval_s) + 1
    return analysis["fixed"] + analysis["one_check"].scaled(max(0.0, polls - analysis["other_polls_per_job"]))


def money(value: float) -> str:
    return f"${value:.6f}" if value < 0.01 else f"${value:,.2f}"


def main(argv: list[str] | None = None) -> int:
    facts = template_facts()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="3 jobs per path")
    parser.add_argument("--jobs", type=int, help="jobs per path (default 10)")
    parser.add_argument("--processing-seconds", type=float, default=8.0,
                        help="local provider time T (default 8: several no-op checks per job at I=2)")
    parser.add_argument("--poll-interval", type=int, default=2, help="local poll interval of the poller path (default 2)")
    parser.add_argument("--callback-poll-interval", type=int,
                        help="local poll interval of the callback path (default: the processing time + 10 s)")
    parser.add_argument("--provider-seconds", type=float, default=180.0,
                        help="provider time P of the headline figure (default 180 s: Kling takes minutes)")
    parser.add_argument("--template-interval", type=int, default=facts["poll_interval_seconds"],
                        help=f"poll interval I of the headline figure (default: the template's {facts['poll_interval_seconds']} s)")
    parser.add_argument("--aws-call-ms", type=float, default=15.0, help="priced latency per AWS API call on AWS")
    parser.add_argument("--kling-call-ms", type=float, default=300.0, help="priced latency per Kling API call (us-east-1 -> Singapore)")
    parser.add_argument("--output-mb", type=float, default=20.0, help="assumed result size (a 10 s 1080p clip)")
    parser.add_argument("--input-mb", type=float, default=20.0, help="assumed input size (for the egress line)")
    parser.add_argument("--copy-mb-per-s", type=float, default=20.0, help="assumed provider CDN -> Lambda -> S3 rate")
    args = parser.parse_args(argv)
    args.jobs = args.jobs or (3 if args.quick else 10)

    notes: list[str] = []
    overrides = {"CLIPEDIT_EMULATOR_CONCURRENCY": "50", "CLIPEDIT_EMULATOR_SEED": "1"}
    notes.append(use_copy_render(overrides))
    work = Path(tempfile.mkdtemp(prefix="clipedit-bench-cost-"))
    atexit.register(shutil.rmtree, work, True)  # the clip and the stacks' state files
    clip = make_small_clip(work / "clip.mp4")
    analyses = {}
    sink = LogSink()
    for path in ("callback", "poller"):
        say(f"cost: {path} path, {args.jobs} jobs (T={args.processing_seconds:g} s, I={local_interval(path, args)} s locally)")
        with sink.installed():
            run = run_path(path, clip, work, args, overrides, sink)
        analyses[path] = analyse(run, args)
        a = analyses[path]
        say(f"  measured: {money(a['per_job'].total(facts['architectures'][0]))}/job, {a['checks_per_job']:.1f} no-op checks/job, "
            f"{a['transitions_per_job']:.1f} transitions/job; invocations {a['invocations']}")

    for path, other in (("callback", "poller"), ("poller", "callback")):
        if analyses[path]["checks_per_job"] == 0 and analyses[other]["checks_per_job"] > 0:
            analyses[path]["one_check"] = analyses[other]["one_check"]  # the same invocation, measured on the other path
            notes.append(f"{path} path: no no-op check happened locally; one check priced as measured on the {other} path")
    arch = facts["architectures"][0]
    P, I = args.provider_seconds, args.template_interval
    rows = []
    headline = {}
    for path in ("callback", "poller"):
        usage = modelled(analyses[path], P, I)
        headline[path] = usage
        cost = usage.total(arch)
        if path == "callback":
            say(f"cost per job, callback path: {money(cost)} (P={P:g} s, I={I} s; before: {BEFORE_CALLBACK_PATH})")
        rows.append(row(
            f"5 cost per job, {path} path (P={P:g} s, I={I} s)",
            f"{money(cost)}/job ({usage.sfn_transitions:.0f} transitions = {money(usage.dollars(arch)['Step Functions transitions'])})",
            (f"before: {BEFORE_CALLBACK_PATH}; " if path == "callback" else "")
            + f"measured locally (T={args.processing_seconds:g} s, I={local_interval(path, args)} s): {money(analyses[path]['per_job'].total(arch))}",
            None, f"<= ${CALLBACK_PATH_TARGET} (callback path)" if path == "callback" else "(no target)",
            cost <= CALLBACK_PATH_TARGET if path == "callback" else None,
        ))
    fixed_month = PRICES["secret_month"] + IDLE_SQS_REQUESTS_PER_MONTH * PRICES["sqs_request"]
    for volume in (1_000, 10_000, 100_000):
        rows.append(row(
            f"5 cost per month, {volume:,} jobs (P={P:g} s, I={I} s)",
            f"callback {money(headline['callback'].total(arch) * volume + fixed_month)}, poller-only "
            f"{money(headline['poller'].total(arch) * volume + fixed_month)}",
            f"incl. {money(fixed_month)} fixed (secret, idle SQS polling)", None, "-", None,
        ))
    grid = {}
    for path in ("callback", "poller"):
        grid[path] = {f"I={interval}s": {f"P={p}s": round(modelled(analyses[path], p, interval).total(arch), 6)
                                         for p in (60, 120, 180, 300, 600)}
                      for interval in sorted({15, 30, 60, 120, I})}
    egress = args.input_mb / 1000 * PRICES["egress_gb"]
    notes.append(f"prices: us-east-1 list prices read on {PRICES_READ_ON}, free tiers ignored; Lambda {arch} at the template's memory "
                 f"({facts['memory_mb']})")
    notes.append(f"not included: the provider's download of the input is data transfer out: {args.input_mb:g} MB x $0.09/GB = "
                 f"{money(egress)}/job (first 100 GB/month free); storage of clips, outputs and job records")
    for path in ("callback", "poller"):
        breakdown = headline[path].dollars(arch)
        top = sorted(breakdown.items(), key=lambda kv: -kv[1])[:6]
        notes.append(f"{path} path at P={P:g} s, I={I} s: " + ", ".join(f"{k} {money(v)}" for k, v in top))
        notes.append(f"{path} path $/job by poll interval and provider time: {json.dumps(grid[path])}")
    details = {
        "prices": PRICES, "price_sources": PRICE_SOURCES, "prices_read_on": PRICES_READ_ON,
        "assumptions": {"aws_call_ms": args.aws_call_ms, "kling_call_ms": args.kling_call_ms, "output_mb": args.output_mb,
                        "input_mb": args.input_mb, "copy_mb_per_s": args.copy_mb_per_s,
                        "idle_sqs_requests_per_month": IDLE_SQS_REQUESTS_PER_MONTH,
                        "platform_log_bytes_per_invocation": PLATFORM_LOG_BYTES_PER_INVOCATION},
        "template": facts, "headline": {"provider_seconds": P, "poll_interval_seconds": I},
        "fixed_per_month": fixed_month, "egress_per_job": egress, "grid": grid,
        "paths": {path: {
            "measured_per_job": dataclasses.asdict(a["per_job"]),
            "measured_dollars_per_job": a["per_job"].dollars(arch),
            "fixed_per_job": dataclasses.asdict(a["fixed"]),
            "one_check": dataclasses.asdict(a["one_check"]),
            "checks_per_job_measured": a["checks_per_job"],
            "transitions_per_job_measured": a["transitions_per_job"],
            "invocations": a["invocations"],
            "aws_calls_per_job": a["aws_calls_per_job"],
            "http_api_per_job": a["http_api_per_job"],
            "log_bytes_per_job": a["log_bytes_per_job"],
            "headline_usage": dataclasses.asdict(headline[path]),
            "headline_dollars": headline[path].dollars(arch),
        } for path, a in analyses.items()},
    }
    write_result(args.json, "cost", rows, details, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
