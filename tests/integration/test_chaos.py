"""Chaos: 200 uploads through the local stack while the provider and our own functions misbehave.

Faults (all seeded): 20 % of Kling API calls answer 5xx, 5 % of accepted creates lose their answer
(504 after the task was created), 5 % of tasks fail, 50 % of callbacks are dropped and 20 %
duplicated, 10 % of result copies crash the finalize process mid-copy (no cleanup runs, the lease
stays taken), and the provider accepts more tasks than our gate allows (12 vs 8), so only our gate
keeps concurrency down.

Four of the uploads are long clips (12 s, long_clip segment): each is a parent with two parts that
go through the same faults, and the stitch runs once per parent whose parts all succeeded.

Afterwards every invariant of the issue is checked against the emulator's own record, and the
figures are printed (`pytest -s tests/integration/test_chaos.py` shows them).
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from clipedit.domain.job import JobStatus, can_transition

JOBS = 200  # uploads
LONG_CLIPS = 4  # of which long clips (12 s -> 2 parts each)
GATE = 8
PROVIDER_LIMIT = 12  # above the gate: only our gate can keep the peak at GATE
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED"}
# What the wait loop reads of each job: whole status histories would be most of moto's CPU in this run.
PROGRESS = ("long_clip", "parts_total", "part_job_ids")

# Two minutes of a worker: `make test` starts it first (tests/conftest.py); `make chaos` runs it alone.
pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory):
    from local.stack import LocalOptions, LocalStack

    options = LocalOptions(
        state_dir=tmp_path_factory.mktemp("chaos-state"),
        name="chaos",
        poll_interval_seconds=1,
        job_deadline_seconds=600,
        visibility_timeout_seconds=5,
        submit_max_concurrency=8,
        emulator_overrides={
            "CLIPEDIT_EMULATOR_PROCESSING_SECONDS": "0.3",
            "CLIPEDIT_EMULATOR_RENDER": "copy",
            "CLIPEDIT_EMULATOR_CONCURRENCY": str(PROVIDER_LIMIT),
            "CLIPEDIT_EMULATOR_ERROR_RATE": "0.2",
            "CLIPEDIT_EMULATOR_LOST_RESPONSE_RATE": "0.05",
            "CLIPEDIT_EMULATOR_FAIL_RATE": "0.05",
            "CLIPEDIT_EMULATOR_DROP_CALLBACK_RATE": "0.5",
            "CLIPEDIT_EMULATOR_DUPLICATE_CALLBACK_RATE": "0.2",
            "CLIPEDIT_EMULATOR_SEED": "42",
        },
        parameter_overrides={"ProviderConcurrencyLimit": str(GATE)},
        # Short waits so the run takes a few minutes; the logic is the deployed one.
        function_environment={"RETRY_BASE_SECONDS": "1", "RETRY_MAX_SECONDS": "4", "GATE_RECHECK_SECONDS": "30",
                              "BREAKER_COOLDOWN_SECONDS": "2",
                              # Longer than any copy here takes, even on a loaded machine (as 360 s is in AWS).
                              "FINALIZE_LEASE_SECONDS": "8"},
        finalize_crash_rate=0.1,
        crash_seed=42,
    )
    with LocalStack(options) as running:
        yield running


def dead_letters(client, queue_url):
    """What went to the dead-letter queue and how often it was received: the failure's evidence."""
    found = client.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])
    return [(m["Body"][:300], m["Attributes"].get("ApproximateReceiveCount")) for m in found.get("Messages", [])]


def _all_jobs(client, prefix, only=()):
    from tests.integration.chaos_support import jobs_under

    return jobs_under(client, prefix, only)


def jobs_by_id(client, job_ids, only=()):
    from tests.integration.chaos_support import jobs_by_id

    return jobs_by_id(client, job_ids, only)


def test_two_hundred_jobs_under_faults_end_exactly_once(chaos_stack, sample_clip, tmp_path):
    from local.client import LocalClient
    from local.media import make_sample_clip

    client = LocalClient(chaos_stack.info)
    emulator = chaos_stack.emulator
    long_clip = tmp_path / "long.mp4"
    make_sample_clip(long_clip, seconds=12.0, width=1280, height=720, fps=24, with_audio=True, seed=11)
    started = time.monotonic()
    job_ids = [client.upload_clip(long_clip if i % (JOBS // LONG_CLIPS) == 0 else sample_clip,
                                  f"incoming/chaos/clip-{i:03d}.mp4",
                                  {"prompt": f"Make clip {i} look like a watercolour painting. Keep the motion.",
                                   "long-clip": "segment"})
               for i in range(JOBS)]
    assert len(set(job_ids)) == JOBS

    deadline = time.monotonic() + 900  # a bound for slow machines, not a timing check
    ended: set[str] = set()  # a job's end is final: only the others are read again
    watching = set(job_ids)
    while True:
        for job_id, job in jobs_by_id(client, watching, only=PROGRESS).items():
            watching.update(job.get("part_job_ids") or ())  # a long clip's parts, once it is split
            if job["status"] in TERMINAL:
                ended.add(job_id)
        watching -= ended
        if not watching:
            break
        assert time.monotonic() < deadline, f"{len(watching)} jobs not terminal after 900 s"
        # Read again after the next events, at most once a second: each read takes moto's table lock.
        next_read = time.monotonic() + 1
        while time.monotonic() < next_read:
            client.wait_for_any_event()
    elapsed = time.monotonic() - started
    jobs = _all_jobs(client, "incoming/chaos/")  # now every attribute, for the checks below
    statuses = Counter(job["status"] for job in jobs.values())
    emulator.wait_for_callbacks(timeout=30)

    tasks = emulator.tasks()
    stats = emulator.stats()
    task_by_job = {t["external_task_id"]: t for t in tasks}
    per_job = Counter(t["external_task_id"] for t in tasks)
    s3 = client.s3
    versions = [v for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=chaos_stack.info["outputs_bucket"]) for v in page.get("Versions", [])]
    open_uploads = s3.list_multipart_uploads(Bucket=chaos_stack.info["outputs_bucket"]).get("Uploads", [])
    dlq = client.sqs.get_queue_attributes(QueueUrl=chaos_stack.info["dead_letter_queue_url"],
                                          AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    crashes = chaos_stack.runner.crashes.get(chaos_stack.finalize_function, 0)
    succeeded = {j for j, job in jobs.items() if job["status"] == "SUCCEEDED"}

    figures = {
        "jobs": JOBS, "seconds": round(elapsed, 1), "jobs_per_second": round(JOBS / elapsed, 2),
        "statuses": dict(statuses),
        "provider_tasks": len(tasks), "max_tasks_per_job": max(per_job.values()),
        "peak_concurrent_tasks": stats["max_concurrent_observed"], "gate": GATE,
        "provider_5xx_injected": stats["rejected_by_code"].get(5000, 0),
        "provider_1303": stats["rejected_by_code"].get(1303, 0),
        "duplicate_creates_refused_1201": stats["rejected_by_code"].get(1201, 0),
        "responses_lost": stats["responses_lost"],
        "callbacks_sent": stats["callbacks_sent"], "callbacks_dropped": stats["callbacks_dropped"],
        "callbacks_duplicated": stats["callbacks_duplicated"], "callbacks_refused": stats["callbacks_failed"],
        "finalized_by": dict(Counter(job.get("finalized_by") for job in jobs.values())),
        "finalize_crashes": crashes, "open_multipart_uploads": len(open_uploads),
        "output_object_versions": len(versions), "dead_letter_messages": int(dlq["ApproximateNumberOfMessages"]),
    }
    print("\nchaos figures: " + json.dumps(figures, indent=2))

    # Every job terminal and consistent with the emulator's own record; a long clip's parent has no
    # task of its own: it SUCCEEDED only with every part, else FAILED naming the failed part.
    parents = {j: job for j, job in jobs.items() if job.get("long_clip")}
    parts = {j: job for j, job in jobs.items() if job.get("parent_id")}
    figures.update(long_clip_parents=dict(Counter(job["status"] for job in parents.values())), parts=len(parts))
    print("long clips: " + json.dumps({"parents": figures["long_clip_parents"], "parts": len(parts)}))
    assert set(jobs) - set(parts) == set(job_ids) and len(parents) == LONG_CLIPS
    for parent_id, parent in parents.items():
        assert parent["status"] in ("SUCCEEDED", "FAILED") and parent_id not in task_by_job, parent
        own = [parts[p] for p in parent["part_job_ids"]]
        assert len(own) == parent["parts_total"] == 2 and {p["parent_id"] for p in own} == {parent_id}
        if parent["status"] == "SUCCEEDED":
            assert all(p["status"] == "SUCCEEDED" for p in own)
        else:
            (failed, *_) = [p for p in own if p["status"] != "SUCCEEDED"]
            assert parent["error_code"] == "PART_FAILED" and failed["job_id"] in parent["error_message"], parent
    for job_id, job in jobs.items():
        if job_id in parents:
            continue
        task = task_by_job.get(job_id)
        if job["status"] == "SUCCEEDED":
            assert task and task["status"] == "succeed", job_id
            assert job["provider_task_id"] == task["task_id"]
        elif job["status"] == "FAILED":
            assert task and task["status"] == "failed" and job["error_code"] == "PROVIDER_TASK_FAILED", job
            assert job["error_message"] == task["status_msg"]
        else:
            pytest.fail(f"{job_id} ended {job['status']}: {job.get('error_code')} {job.get('error_message')}")
    # Exactly one provider task per job (a part is a job; a parent is not edited itself), and no
    # task that is not a job's.
    edited = set(jobs) - set(parents)
    assert len(tasks) == len(edited) and set(per_job) == edited and max(per_job.values()) == 1
    # Exactly one output object (one version: nothing overwritten) per SUCCEEDED job.
    assert len(versions) == len(succeeded)
    owners = Counter(s3.head_object(Bucket=chaos_stack.info["outputs_bucket"], Key=v["Key"],
                                    VersionId=v["VersionId"])["Metadata"]["job-id"] for v in versions)
    assert set(owners) == succeeded and max(owners.values()) == 1
    # No status ever moved backwards, and each job ended exactly once.
    for job in jobs.values():
        path = [entry["status"] for entry in job["status_history"]]
        assert path[0] == "RECEIVED" and all(can_transition(JobStatus(a), JobStatus(b)) for a, b in zip(path, path[1:])), path
        assert sum(status in TERMINAL for status in path) == 1, path
    # The gate held: the provider would have accepted more.
    assert stats["max_concurrent_observed"] <= GATE and stats["rejected_by_code"].get(1303, 0) == 0
    # The faults really happened (or the run proves nothing).
    assert figures["provider_5xx_injected"] > 20 and stats["responses_lost"] > 0 and crashes > 0
    assert stats["callbacks_dropped"] > 20 and stats["callbacks_duplicated"] > 5
    assert 0 < statuses["FAILED"] < 30
    # Nothing lost: no message went to the DLQ; crashed copies left only invisible parts.
    assert figures["dead_letter_messages"] == 0, dead_letters(client, chaos_stack.info["dead_letter_queue_url"])
    assert len(open_uploads) <= crashes
