"""OperatorPolicy grants what each `clipedit` operator command calls (issue 15).

Each command runs through the real CLI against the local stack while every AWS call made in this
process is recorded (botocore's ``_make_api_call``). Each call is turned into the IAM action it
needs and the resource it touches (the template's logical id), and OperatorPolicy, read from
template.yaml, must have an Allow statement with that action naming that resource.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from local.template import ROOT, load_template

# botocore operation -> IAM action, where the names differ (S3 authorises by object verb).
S3_ACTIONS = {
    "HeadObject": "s3:GetObject", "GetObject": "s3:GetObject", "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload", "ListObjectsV2": "s3:ListBucket", "HeadBucket": "s3:ListBucket",
    "GetBucketVersioning": "s3:GetBucketVersioning", "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
}
PREFIX = {"stepfunctions": "states"}
BATCH_OPERATIONS = {"DeleteMessageBatch": "DeleteMessage", "SendMessageBatch": "SendMessage",
                    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}  # SQS authorises the batch by the single verb
FREE = {("sts", "GetCallerIdentity")}  # needs no permission


@contextmanager
def recorded_calls() -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    from botocore.client import BaseClient

    calls: list[tuple[str, str, dict[str, Any]]] = []
    original, me = BaseClient._make_api_call, threading.get_ident()

    def record(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if threading.get_ident() == me:  # the CLI runs in this thread; the stack's handlers do not
            calls.append((client.meta.service_model.service_name, operation, params))
        return original(client, operation, params)

    BaseClient._make_api_call = record  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]


def _resource(service: str, params: dict[str, Any], info: dict[str, Any]) -> str | None:
    """The logical id (and index marker) of what a call touches."""
    if service == "dynamodb":
        return "JobsTable" + ("/index/" if params.get("IndexName") else "")
    if service == "s3" and "Bucket" in params:
        return {info["inbox_bucket"]: "InboxBucket", info["outputs_bucket"]: "OutputsBucket"}.get(params["Bucket"])
    if service == "sqs" and "QueueUrl" in params:
        return {info["intake_queue_url"]: "IntakeQueue", info["dead_letter_queue_url"]: "IntakeDeadLetterQueue"}.get(
            params["QueueUrl"])
    if service == "secretsmanager":
        return "ProviderSecret"
    if service == "events":
        return "JobEventsBus"
    return None


def _granted(action: str, resource: str | None) -> bool:
    statements = load_template()["Resources"]["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    for statement in statements:
        if isinstance(statement, dict) and "Fn::If" in statement:
            statement = statement["Fn::If"][2]  # without a customer key
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        text = json.dumps(statement.get("Resource"))
        if action in actions and (resource is None or (resource.split("/")[0] in text and (
                ("/index/" in resource) == ("/index/" in text)))):
            return True
    return False


@pytest.fixture
def operator(stack):
    from typer.testing import CliRunner

    from clipedit_cli.app import app

    def run(*argv: str) -> tuple[int, list[tuple[str, str, dict[str, Any]]]]:
        with recorded_calls() as calls:
            result = CliRunner().invoke(app, ["--local-file", str(stack.info_path), *argv])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result.exit_code, calls

    return run


def _missing(calls: list[tuple[str, str, dict[str, Any]]], info: dict[str, Any]) -> list[tuple[str, str | None]]:
    missing = []
    for service, operation, params in calls:
        if (service, operation) in FREE:
            continue
        action = S3_ACTIONS.get(operation, f"s3:{operation}") if service == "s3" else \
            f"{PREFIX.get(service, service)}:{BATCH_OPERATIONS.get(operation, operation)}"
        resource = _resource(service, params, info)
        if not _granted(action, resource):
            missing.append((action, resource))
    return sorted(set(missing), key=str)


def test_every_operator_command_is_covered_by_the_operator_policy(stack, client, emulator, sample_clip, operator):
    from tests.conftest import set_knobs

    info = stack.info
    set_knobs(emulator, processing_seconds=0.2)
    done = client.upload_clip(sample_clip, "incoming/operator/done.mp4", {"prompt": "Make it snow."})
    client.wait_for_job(done)
    stack.fal_emulator.settings = __import__("dataclasses").replace(stack.fal_emulator.settings, processing_seconds=60.0)
    # fal: its API can cancel a task in flight (Kling's cannot), so `cancel` goes all the way.
    running = client.upload_clip(sample_clip, "incoming/operator/running.mp4", {"prompt": "Make it rain.", "provider": "fal"})
    client.wait_for_job(running, statuses={"SUBMITTED", "PROCESSING"})
    # A dead letter the intake ignores once redriven (S3's test event): the shared stack stays clean.
    test_event = json.loads((ROOT / "events" / "sqs-s3-test-event.json").read_text())["Records"][0]["body"]
    client.sqs.send_message(QueueUrl=info["dead_letter_queue_url"], MessageBody=test_event)

    found: dict[str, list[tuple[str, str | None]]] = {}
    for command in (["status", done], ["list"], ["download", done, "--to", str(sample_clip.parent)],
                    ["cancel", running], ["reconcile", "--repair"], ["dlq", "list"], ["dlq", "redrive"], ["doctor"]):
        _, calls = operator(*command)
        assert calls, command  # the command did reach AWS
        found[" ".join(command[:2] if command[0] == "dlq" else command[:1])] = _missing(calls, info)
    missing = {command: missing for command, missing in found.items() if missing}
    assert missing == {}, json.dumps(missing, indent=1)
