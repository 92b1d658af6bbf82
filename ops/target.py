"""Which stack a command talks to: a deployed one (its CloudFormation outputs) or the local stack
(``.clipedit/local.json``, written by ``make local``). Either way the result is the environment the
functions themselves run with, so commands reuse the functions' own wiring."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LOCAL_STATE = Path(".clipedit/local.json")

# CloudFormation output -> function environment variable.
OUTPUT_ENV = {
    "JobsTableName": "JOBS_TABLE",
    "InboxBucketName": "INBOX_BUCKET",
    "OutputsBucketName": "OUTPUTS_BUCKET",
    "EventBusName": "EVENT_BUS_NAME",
    "ProviderSecretArn": "PROVIDER_SECRET_ID",
    "IntakeQueueUrl": "INTAKE_QUEUE_URL",
    "DeadLetterQueueUrl": "DEAD_LETTER_QUEUE_URL",
    "StateMachineArn": "STATE_MACHINE_ARN",
}


class TargetError(Exception):
    """The stack cannot be found or reached; the message says what to do."""


def deployed_environment(stack_name: str, region: str | None) -> dict[str, str]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cloudformation = boto3.client("cloudformation", region_name=region)
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:
        raise TargetError(f"stack {stack_name!r}: {error.response['Error'].get('Message', error)}") from None
    except BotoCoreError as error:
        raise TargetError(f"cannot reach AWS ({error}); check your credentials and region") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    missing = [key for key in OUTPUT_ENV if key not in outputs]
    if missing:
        raise TargetError(f"stack {stack_name!r} lacks outputs {', '.join(missing)}: is it a clipedit stack?")
    env = {variable: outputs[key] for key, variable in OUTPUT_ENV.items()}
    if params.get("KlingApiBaseUrl"):
        env["KLING_API_BASE_URL"] = params["KlingApiBaseUrl"]
    if params.get("ProviderConcurrencyLimit"):
        env["PROVIDER_CONCURRENCY_LIMIT"] = params["ProviderConcurrencyLimit"]
    if region:
        env["AWS_DEFAULT_REGION"] = region
    return env


def local_environment(state_file: Path = LOCAL_STATE) -> dict[str, str]:
    if not state_file.exists():
        raise TargetError(f"no local stack: {state_file} does not exist (start one with `make local`)")
    info: dict[str, Any] = json.loads(state_file.read_text())
    pid = info.get("pid")
    if pid and not _alive(int(pid)):
        raise TargetError(f"the local stack in {state_file} is not running (pid {pid}); start it with `make local`")
    return {
        "JOBS_TABLE": info["jobs_table"], "INBOX_BUCKET": info["inbox_bucket"],
        "OUTPUTS_BUCKET": info["outputs_bucket"], "EVENT_BUS_NAME": info["event_bus_name"],
        "PROVIDER_SECRET_ID": info["provider_secret_arn"], "INTAKE_QUEUE_URL": info["intake_queue_url"],
        "DEAD_LETTER_QUEUE_URL": info["dead_letter_queue_url"], "STATE_MACHINE_ARN": info["state_machine_arn"],
        "KLING_API_BASE_URL": info["provider_url"], "AWS_ENDPOINT_URL": info["endpoint_url"],
        "AWS_DEFAULT_REGION": info["region"], "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "RESULT_HOST_ALLOWLIST": "127.0.0.1", "ALLOW_HTTP_FETCH": "true", "ALLOW_PRIVATE_NETWORK_FETCH": "true",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
