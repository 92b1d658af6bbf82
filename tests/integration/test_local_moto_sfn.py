"""Two of the local stack's moto patches for a loaded stack keep moto's contract.

``patch_moto_asl_parse_cache``: executions of one definition share the parsed program, not their
state. Each execution here branches on its own input and retries a failing task on its own attempt
count, all at once; and the definition is parsed once, not once per execution.
``patch_moto_backend_lookup``: the first lookup of an account still creates and registers its
backend.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

ROLE = "arn:aws:iam::123456789012:role/sfn"
DEFINITION = {
    "StartAt": "Which",
    "States": {
        "Which": {"Type": "Choice", "Default": "Small",
                  "Choices": [{"Variable": "$.n", "NumericGreaterThan": 2, "Next": "Big"}]},
        "Small": {"Type": "Pass", "Parameters": {"size": "small", "n.$": "$.n"}, "ResultPath": "$.verdict",
                  "Next": "Flaky"},
        "Big": {"Type": "Pass", "Parameters": {"size": "big", "n.$": "$.n"}, "ResultPath": "$.verdict",
                "Next": "Flaky"},
        # A Lambda that does not exist fails every attempt: the retrier counts attempts per execution.
        "Flaky": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                  "Parameters": {"FunctionName": "no-such-function", "Payload": {}},
                  "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 1,
                             "BackoffRate": 1.0}],
                  "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Done"}],
                  "Next": "Done"},
        "Done": {"Type": "Pass", "End": True},
    },
}


@pytest.fixture
def sfn(stack):
    return boto3.client("stepfunctions", endpoint_url=stack.info["endpoint_url"], region_name=stack.info["region"])


def _finish(sfn, arn):
    deadline = time.monotonic() + 60  # a bound for slow machines: each run takes ~1 s
    while True:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"{arn} still RUNNING"
        time.sleep(0.1)  # moto offers no way to await an execution


def test_executions_of_one_definition_keep_their_own_state_and_share_one_parse(sfn):
    definition = json.dumps({**DEFINITION, "Comment": uuid.uuid4().hex})  # a definition no other test parsed
    before = AmazonStateLanguageParser.parse.cache_info()
    machine = sfn.create_state_machine(name=f"m-{uuid.uuid4().hex[:8]}", definition=definition,
                                       roleArn=ROLE)["stateMachineArn"]

    def run(n):
        arn = sfn.start_execution(stateMachineArn=machine, name=f"run-{n}", input=json.dumps({"n": n}))["executionArn"]
        return arn, _finish(sfn, arn)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(run, range(6)))

    for n, (arn, described) in enumerate(results):
        assert described["status"] == "SUCCEEDED"
        output = json.loads(described["output"])
        assert output["n"] == n and output["verdict"] == {"size": "big" if n > 2 else "small", "n": n}
        assert output["error"]["Error"]  # caught after the retry
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        scheduled = [e for e in events if e["type"] == "TaskScheduled"]
        assert len(scheduled) == 2  # the first attempt and one retry, for this execution alone
    after = AmazonStateLanguageParser.parse.cache_info()
    assert after.misses - before.misses == 1  # create_state_machine's validation parsed it
    assert after.hits - before.hits >= 6  # the executions reused it


def test_a_backend_lookup_creates_and_registers_an_accounts_backend_once(stack):
    """``patch_moto_backend_lookup``: the lock-free path must not skip what the first lookup does."""
    from moto.core.base_backend import BackendDict
    from moto.sqs.models import SQSBackend

    backends = BackendDict(SQSBackend, "sqs")
    try:
        first = backends["210987654321"]
        assert backends in BackendDict._instances  # so moto's reset will clear it
        assert backends["210987654321"] is first and list(backends) == ["210987654321"]
        assert first["us-east-1"].account_id == "210987654321"
    finally:
        BackendDict._instances.remove(backends)
