"""Cancel a job: ``python -m tools.cancel (--stack NAME | --local [--info PATH]) JOB_ID [--reason TEXT]``.

Runs the ``CancelJob`` use case with the configuration of a deployed stack (read from its
CloudFormation outputs and parameters, with your AWS credentials) or of the running local stack
(``.clipedit/local.json``). Prints the outcome as JSON; exit 0 when the job is CANCELLED, 1 when
the cancel was refused (the reason is printed), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _stack_environment(stack_name: str) -> dict[str, str]:
    import boto3

    (stack,) = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return {
        "JOBS_TABLE": outputs["JobsTableName"], "INBOX_BUCKET": outputs["InboxBucketName"],
        "OUTPUTS_BUCKET": outputs["OutputsBucketName"], "EVENT_BUS_NAME": outputs["EventBusName"],
        "PROVIDER_SECRET_ID": outputs["ProviderSecretArn"],
        "KLING_API_BASE_URL": params.get("KlingApiBaseUrl", ""), "FAL_QUEUE_BASE_URL": params.get("FalQueueBaseUrl", ""),
        "DEFAULT_PROVIDER": params.get("DefaultProvider", ""),
    }


def _local_environment(info_path: Path) -> dict[str, str]:
    info: dict[str, Any] = json.loads(info_path.read_text())
    return {
        "AWS_ENDPOINT_URL": info["endpoint_url"], "AWS_DEFAULT_REGION": info["region"],
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "JOBS_TABLE": info["jobs_table"], "INBOX_BUCKET": info["inbox_bucket"],
        "OUTPUTS_BUCKET": info["outputs_bucket"], "EVENT_BUS_NAME": info["event_bus_name"],
        "PROVIDER_SECRET_ID": info["provider_secret_arn"], "KLING_API_BASE_URL": info["provider_url"],
        "FAL_QUEUE_BASE_URL": info["fal_url"], "DEFAULT_PROVIDER": info.get("default_provider", "kling"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed clipedit stack's name")
    where.add_argument("--local", action="store_true", help="the running local stack (make local)")
    parser.add_argument("--info", type=Path, default=ROOT / ".clipedit" / "local.json")
    parser.add_argument("--reason", default="cancelled on request")
    parser.add_argument("job_id")
    args = parser.parse_args(argv)

    environment = _stack_environment(args.stack) if args.stack else _local_environment(args.info)
    os.environ.update({k: v for k, v in environment.items() if v})

    from clipedit.config import Settings
    from clipedit.usecases.cancel import CancelRefused
    from clipedit.wiring import Container

    try:
        outcome = Container(Settings.from_env()).cancel_job(args.job_id, reason=args.reason)
    except CancelRefused as refused:
        print(json.dumps({"job_id": args.job_id, "refused": refused.code, "message": refused.message}))
        return 1
    print(json.dumps(outcome.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
