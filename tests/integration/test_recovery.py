"""Stuck work on the local stack: ``clipedit reconcile`` finds jobs whose record and the provider
disagree and repairs them through the normal paths; the dead-letter queue keeps each message's
reason, and ``clipedit dlq list|redrive`` shows and sends it back. The command runs in-process
against the stack's state file, as a user's terminal would."""

from __future__ import annotations

import json
import os
import time

import pytest

from clipedit.domain.job import Job, JobStatus
from clipedit.usecases.common import iso
from tests.conftest import set_knobs


@pytest.fixture
def container(stack):
    """The functions' own wiring, for arranging states (and reading slots) in the tests."""
    from clipedit.config import Settings
    from clipedit.wiring import Container

    return Container(Settings.from_env(dict(os.environ)))


@pytest.fixture
def ops(stack):
    """``clipedit --local-file <the stack's> ARGS --json``: returns (exit code, parsed JSON)."""
    from typer.testing import CliRunner

    from clipedit_cli.app import app

    def run(*argv):
        *command, last = argv
        result = CliRunner().invoke(app, ["--local-file", str(stack.info_path), *argv, "--json"])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result.exit_code, json.loads(result.stdout)

    return run


def backdate(client, job_id, seconds):
    """Make a job look untouched for ``seconds`` (what a crashed function leaves behind)."""
    old = iso(time.time() - seconds)
    client.dynamodb.update_item(TableName=client.info["jobs_table"], Key={"job_id": {"S": job_id}},
                                UpdateExpression="SET updated_at = :t, created_at = :t",
                                ExpressionAttributeValues={":t": {"S": old}})


def no_slot_holders(client, container, timeout=120):
    """Wait until no job holds a provider slot: a job that ends with a slot wakes the oldest QUEUED
    jobs, and a woken lost job would be submitted before the reconcile under test could find it.
    Jobs that earlier tests on this worker left PROCESSING end within seconds (measured: up to 20 s)."""
    deadline = time.monotonic() + timeout
    while holders := {p: container.guard.slot_holders(p) for p in ("kling", "fal") if container.guard.slot_holders(p)}:
        assert time.monotonic() < deadline, f"jobs of earlier tests still hold provider slots: {holders}"
        client.wait_for_any_event()  # a job ending publishes its status change


def queued_job(client, container, sample_clip, key, *, attempts=0):
    """A QUEUED job whose submit message was lost (as after a crash between two writes)."""
    from clipedit.adapters.dynamo_jobs import DynamoJobStore

    no_slot_holders(client, container)
    upload = client.s3.put_object(Bucket=client.info["inbox_bucket"], Key=key, Body=sample_clip.read_bytes())
    job_id = f"j-recovery-{key.rsplit('/', 1)[-1].split('.')[0]}"
    old = iso(time.time() - 3600)
    DynamoJobStore(client.info["jobs_table"], client.dynamodb).create(Job(
        job_id=job_id, status=JobStatus.QUEUED, input_bucket=client.info["inbox_bucket"], input_key=key,
        input_version_id=upload["VersionId"], created_at=old, updated_at=old, prompt="Make it a sunset.",
        mode="std", model="o3", keep_audio=True, submit_attempts=attempts or None,
        planned_output_key=f"edited/recovery/{job_id}.mp4"))
    return job_id


def test_a_job_whose_poller_died_after_the_provider_finished_is_finalized(stack, client, emulator, sample_clip,
                                                                           container, ops):
    # 3 s of processing: the poller (polling every second) cannot finish the job before it is stopped.
    set_knobs(emulator, processing_seconds=3.0, drop_callback_rate=1.0)
    job_id = client.upload_clip(sample_clip, "incoming/recovery/poller-died.mp4", {"prompt": "Make it snow."})
    job = client.wait_for_job(job_id, statuses={"SUBMITTED", "PROCESSING"})
    sfn = stack.client("stepfunctions")
    arn = stack.info["state_machine_arn"].replace(":stateMachine:", ":execution:") + f":{job_id}"
    # Submit starts the poller just after it writes SUBMITTED: on a busy machine the test gets here first.
    deadline = time.monotonic() + 15
    while arn not in {e["executionArn"] for e in sfn.list_executions(stateMachineArn=stack.info["state_machine_arn"])["executions"]}:
        assert time.monotonic() < deadline, "the poller never started"
        time.sleep(0.05)
    sfn.stop_execution(executionArn=arn, cause="test: the poller died")
    # Step Functions reports ABORTED at once. moto's worker notices the stop only when its task-token
    # wait ends, and then reports the interrupted wait as a States.Runtime failure (FAILED): either
    # way the poller is dead, which is what this test needs.
    deadline = time.monotonic() + 15
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sfn.describe_execution(executionArn=arn)["status"] in ("ABORTED", "FAILED")
    assert client.job(job_id)["status"] in ("SUBMITTED", "PROCESSING")  # stopped before it finished the job
    emulator.wait_for_status(job["provider_task_id"], "succeed", timeout=30)
    backdate(client, job_id, 3600)

    code, report = ops("reconcile")
    assert code == 7  # found, not repaired
    (finding,) = [f for f in report["findings"] if f["job_id"] == job_id]
    assert finding["problem"] == "the provider finished but the record did not" and finding["provider"] == "succeed"
    assert client.job(job_id)["status"] in ("SUBMITTED", "PROCESSING")  # a report changes nothing

    code, report = ops("reconcile", "--repair")
    assert [f["repaired"] for f in report["findings"] if f["job_id"] == job_id] == [True]
    job = client.job(job_id)
    assert (job["status"], job["finalized_by"]) == ("SUCCEEDED", "poller")
    assert client.s3.head_object(Bucket=job["output_bucket"], Key=job["output_key"])["ContentLength"] > 0


def test_a_queued_job_whose_message_was_lost_is_resubmitted_once(stack, client, emulator, sample_clip, container, ops):
    set_knobs(emulator, processing_seconds=0.2)
    job_id = queued_job(client, container, sample_clip, "incoming/recovery/lost-message.mp4")
    code, report = ops("reconcile", "--repair")
    (finding,) = [f for f in report["findings"] if f["job_id"] == job_id]
    assert finding["repaired"] and "no retry scheduled" in finding["problem"]
    assert client.wait_for_job(job_id, timeout=60)["status"] == "SUCCEEDED"
    assert [t["external_task_id"] for t in emulator.tasks()].count(job_id) == 1


def test_a_queued_job_whose_task_exists_is_adopted_not_submitted_again(stack, client, emulator, sample_clip,
                                                                       container, ops):
    set_knobs(emulator, processing_seconds=0.2)
    job_id = queued_job(client, container, sample_clip, "incoming/recovery/lost-answer.mp4", attempts=1)
    # The lost attempt: the provider has the task, our record never learnt it.
    from clipedit.ports import EditRequest

    url = container.storage.presign_get(Job(job_id, JobStatus.QUEUED, client.info["inbox_bucket"],
                                            "incoming/recovery/lost-answer.mp4", "", "").input, 3600)
    container.provider.submit(EditRequest(external_id=job_id, prompt="Make it a sunset.", video_url=url, model="o3",
                                          mode="std", keep_audio=True))
    code, report = ops("reconcile", "--repair")
    (finding,) = [f for f in report["findings"] if f["job_id"] == job_id]
    assert finding["provider"].startswith("task ") and "the provider has task" in finding["problem"]
    job = client.wait_for_job(job_id, timeout=60)
    assert job["status"] == "SUCCEEDED"
    assert [t["external_task_id"] for t in emulator.tasks()].count(job_id) == 1  # adopted, not duplicated


def test_a_slot_held_by_a_finished_job_is_freed(stack, client, container, ops):
    container.guard.acquire_slot("kling", "j-finished-long-ago", limit=1000)
    code, report = ops("reconcile", "--repair")
    findings = report["findings"]
    assert {"job_id": "j-finished-long-ago", "status": "MISSING", "provider": None,
            "problem": "holds a kling slot but is finished", "repair": "free the slot", "repaired": True} in findings
    assert "j-finished-long-ago" not in container.guard.slot_holders("kling")


def test_a_dead_letter_keeps_its_reason_and_is_redriven(stack, client, emulator, sample_clip, container, ops):
    set_knobs(emulator, processing_seconds=0.2)
    sqs = client.sqs
    # A submit message for a job that does not exist yet fails every receive, then dead-letters.
    sqs.send_message(QueueUrl=stack.info["intake_queue_url"],
                     MessageBody=json.dumps({"clipedit": "submit", "job_id": "j-recovery-late"}))
    def dead_letters() -> int:
        return int(sqs.get_queue_attributes(QueueUrl=stack.info["dead_letter_queue_url"],
                                            AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                                                "ApproximateNumberOfMessages"])

    deadline = time.monotonic() + 60
    while dead_letters() == 0:
        assert time.monotonic() < deadline, "the message never reached the DLQ"
        time.sleep(0.5)  # SQS offers no event for "moved to the DLQ": a bounded poll
    code, letters = ops("dlq", "list")
    assert code == 7
    (letter,) = [d for d in letters if d["about"] == "submit j-recovery-late"]
    assert "j-recovery-late does not exist yet" in letter["reason"] and letter["receive_count"] >= 5

    job_id = queued_job(client, container, sample_clip, "incoming/recovery/late.mp4")  # the job now exists
    assert job_id == "j-recovery-late"
    code, moved = ops("dlq", "redrive")
    assert code == 0 and moved["redriven"] >= 1
    assert client.wait_for_job(job_id, timeout=60)["status"] == "SUCCEEDED"
    code, letters = ops("dlq", "list")
    assert [d for d in letters if d["about"] == "submit j-recovery-late"] == []
