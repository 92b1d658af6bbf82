"""Benchmark 7 - callback response time for a 1 GB result, against the copy on the request path.

What runs: the real finalize handler (``functions/finalize/app.py``, its module-level container
built from the template's environment) in this process, against moto in server mode in its own
process (DynamoDB, S3, Step Functions, EventBridge, SQS) and a local HTTP server that streams the
provider's result (deterministic bytes, 1 GB by default, so no disk is needed). The provider
adapter is replaced by a stub whose ``get_task`` answers "succeed" with that result URL at once:
the provider's own latency (one GET, ~300 ms from us-east-1 to Kling's Singapore API, the cost
benchmark's allowance) is not in these figures, in either column.

* figure: the callback door (an API Gateway v2 event with the job's token, as the HTTP API sends
  it). Each sample is a fresh SUBMITTED job whose poller has parked a task token; the handler
  checks the token, re-fetches the task, records ``provider_done_at`` with a conditional write and
  resumes the wait (SendTaskSuccess; moto answers that the made-up token is unknown, which the
  handler treats as "that wait already ended"). Checked per sample: 200, the done mark on the
  record, no output object.
* baseline: what the callback did before this change, measured in the same run on the same
  handler: the check that copies the result (the poller door; the code the old callback ran:
  re-fetch, lease, stream 1 GB from HTTP into S3 multipart, record SUCCEEDED).

Prints ``callback response p99 (1 GB result): N ms`` next to the baseline.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "clipedit" / "python"),
                str(Path(__file__).resolve().parents[1])]

from bench.common import ROOT, median, percentile, row, say, template_function_env, write_result  # noqa: E402
from bench.output_copy import BUCKET, BlobServer, MotoServer, label, parse_size  # noqa: E402

TARGET_MS = 1000.0
TOKEN = "bench-callback-token"


class ResultReadyProvider:
    """The provider adapter's surface the finalize use case calls: every task is done, its result
    at ``url``."""

    name = "kling"
    needs_element_library = True

    def __init__(self, url: str) -> None:
        self.url = url

    def get_task(self, task_id: str, *, urls: Any = None) -> Any:
        from clipedit.ports import ProviderTask, TaskState

        return ProviderTask(task_id=task_id, state=TaskState.SUCCEEDED, external_id=task_id.removeprefix("t-"),
                            video_url=self.url, duration_seconds=5.0, units="6", raw_status="succeed")


def configure(endpoint: str) -> dict[str, str]:
    env = template_function_env("FinalizeFunction")
    env.update({
        "AWS_ENDPOINT_URL": endpoint, "OUTPUTS_BUCKET": BUCKET, "JOBS_TABLE": "bench-callback-jobs",
        "EVENT_BUS_NAME": "bench-callback-events",
        # As the local stack sets them: the result is served over http from 127.0.0.1 here.
        "RESULT_HOST_ALLOWLIST": "127.0.0.1", "ALLOW_HTTP_FETCH": "true", "ALLOW_PRIVATE_NETWORK_FETCH": "true",
        "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
    })
    os.environ.update(env)
    return env


def create_resources(env: dict[str, str]) -> None:
    import boto3

    from local.template import load_template

    table = load_template()["Resources"]["JobsTable"]["Properties"]
    boto3.client("dynamodb").create_table(
        TableName=env["JOBS_TABLE"], AttributeDefinitions=table["AttributeDefinitions"], KeySchema=table["KeySchema"],
        GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"], BillingMode="PAY_PER_REQUEST")
    boto3.client("events").create_event_bus(Name=env["EVENT_BUS_NAME"])
    boto3.client("sqs").create_queue(QueueName=env["INTAKE_QUEUE_URL"].rsplit("/", 1)[-1])


def load_handler(url: str) -> Any:
    path = ROOT / "functions" / "finalize" / "app.py"
    spec = importlib.util.spec_from_file_location("clipedit_bench_finalize_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.container.__dict__["kling"] = ResultReadyProvider(url)  # the one stand-in: the provider
    return module


class Context:
    function_name = "clipedit-finalize"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:clipedit-finalize"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


def new_job(module: Any) -> str:
    from clipedit.domain.job import Job, JobStatus
    from clipedit.usecases.common import iso
    from clipedit.usecases.submit import hash_token

    job_id = f"j-{uuid.uuid4().hex}"
    now = time.time()
    jobs = module.container.jobs
    jobs.create(Job(job_id=job_id, status=JobStatus.SUBMITTED, input_bucket="inbox", input_key=f"incoming/bench/{job_id}.mp4",
                    created_at=iso(now), updated_at=iso(now), provider="kling", provider_task_id=f"t-{job_id}",
                    callback_token_hash=hash_token(TOKEN), deadline_at=iso(now + 3600)))
    # The poller has parked: a task token of realistic length is on the record, so the callback resumes it.
    jobs.mark_running(job_id, {"poll_wait_token": "AQB" + uuid.uuid4().hex * 16})
    return job_id


def callback_event(job_id: str) -> dict[str, Any]:
    event = json.loads((ROOT / "events" / "http-callback-kling.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/callbacks/kling/{job_id}"
    event["pathParameters"] = {"provider": "kling", "job_id": job_id}
    event["queryStringParameters"] = {"token": TOKEN}
    event["rawQueryString"] = f"token={TOKEN}"
    return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="30 callbacks, 1 baseline copy")
    parser.add_argument("--size", default="1GB", help="result size (default 1GB)")
    parser.add_argument("--callbacks", type=int, help="callback samples (default 200)")
    parser.add_argument("--copies", type=int, help="baseline samples (default 3)")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    n_callbacks = args.callbacks or (30 if args.quick else 200)
    n_copies = args.copies or (1 if args.quick else 3)
    notes: list[str] = []

    with MotoServer() as moto, BlobServer() as blobs:
        moto.reset()
        env = configure(moto.endpoint)
        create_resources(env)
        module = load_handler(blobs.url(size))
        s3, jobs = moto.client(), module.container.jobs

        # Warm-up: imports and connections (cold starts are measured by cold_start.py).
        module.lambda_handler(callback_event(new_job(module)), Context())

        callback_ms = []
        for _ in range(n_callbacks):
            job_id = new_job(module)
            started = time.perf_counter()
            response = module.lambda_handler(callback_event(job_id), Context())
            callback_ms.append((time.perf_counter() - started) * 1000)
            job = jobs.get(job_id)
            if response["statusCode"] != 200 or "provider_done_at" not in job.extra or job.output_key:
                raise SystemExit(f"callback for {job_id} answered {response} with the record {job}")
        objects = s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0)
        if objects:
            raise SystemExit(f"the callbacks wrote {objects} objects: the copy ran on the request path")
        say(f"callback: {n_callbacks} responses, p50 {median(callback_ms):.1f} ms, p99 {percentile(callback_ms, 99):.1f} ms")

        copy_ms = []
        for i in range(n_copies):
            job_id = new_job(module)
            started = time.perf_counter()
            outcome = module.lambda_handler({"job_id": job_id, "source": "poller"}, Context())
            copy_ms.append((time.perf_counter() - started) * 1000)
            job = jobs.get(job_id)
            if outcome.get("status") != "SUCCEEDED" or job.output_size != size:
                raise SystemExit(f"baseline copy for {job_id} ended {outcome} ({job.output_size} bytes)")
            s3.delete_object(Bucket=BUCKET, Key=job.output_key)  # moto holds objects in memory
            say(f"copy on the request path {i + 1}/{n_copies}: {copy_ms[-1]:.0f} ms")

    p99 = percentile(callback_ms, 99)
    before = percentile(copy_ms, 99) if len(copy_ms) > 1 else copy_ms[0]
    print(f"callback response p99 ({label(size)} result): {p99:.0f} ms "
          f"(before, the copy on the request path: {before:,.0f} ms; {before / p99:,.0f}x)", flush=True)
    notes.append(f"p50 {median(callback_ms):.1f} ms over {n_callbacks} callbacks; baseline median "
                 f"{median(copy_ms):,.0f} ms over {n_copies} copies of {label(size)}")
    notes.append("provider re-fetch stubbed (answers at once): add one provider GET (~300 ms to Kling Singapore) to both columns")
    rows = [row(f"7 callback response p99 ({label(size)} result)", f"{p99:.0f} ms",
                f"copy on the request path (before): {before:,.0f} ms", p99 / before, f"< {TARGET_MS:,.0f} ms", p99 < TARGET_MS)]
    write_result(args.json, "callback", rows, {"callback_ms": callback_ms, "copy_ms": copy_ms, "size": size}, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
