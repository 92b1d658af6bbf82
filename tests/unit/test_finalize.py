"""Finalize use case: callbacks vs poller, claims, failures and deadlines, on in-memory ports."""

from __future__ import annotations

import threading

import pytest

from clipedit.domain.job import Job, JobStatus
from clipedit.ports import TaskState
from clipedit.usecases.common import StatusRecorder, iso
from clipedit.usecases.finalize import CallbackRejected, FinalizeJob, FinalizeSettings
from clipedit.usecases.submit import hash_token
from tests.fakes import (
    FakeClock,
    FakeEvents,
    FakeFetcher,
    FakeJobStore,
    FakeObjectStore,
    FakeProvider,
    FakeSignal,
)

RESULT_URL = "https://cdn.example/result.mp4"


@pytest.fixture
def world():
    jobs, storage, provider = FakeJobStore(), FakeObjectStore(), FakeProvider()
    fetcher, events, clock = FakeFetcher({RESULT_URL: bytes(range(256)) * 40}), FakeEvents(), FakeClock()
    finalize = FinalizeJob(
        jobs=jobs, storage=storage, provider=provider, fetcher=fetcher, clock=clock, signal=FakeSignal(),
        recorder=StatusRecorder(events=events, now=lambda: iso(clock.now())),
        settings=FinalizeSettings(outputs_bucket="outputs", incoming_prefix="incoming/", output_prefix="edited/"),
    )
    task = provider.submit(
        __import__("clipedit.ports", fromlist=["EditRequest"]).EditRequest(
            external_id="j-1", prompt="p", video_url="u", model="o3", mode="pro", keep_audio=True
        )
    )
    now = iso(clock.now())
    jobs.create(Job(
        job_id="j-1", status=JobStatus.SUBMITTED, input_bucket="inbox", input_key="incoming/a b/Clip é.MOV",
        created_at=now, updated_at=now, provider_task_id=task.task_id,
        callback_token_hash=hash_token("secret-token"), deadline_at=iso(clock.now() + 600),
    ))
    return finalize, jobs, storage, provider, fetcher, events, clock, task.task_id


def test_success_copies_the_output_and_records_it(world):
    finalize, jobs, storage, provider, fetcher, events, _, task_id = world
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL, duration_seconds=4.0, units="6")
    outcome = finalize.on_poll("j-1")
    assert outcome.terminal and outcome.status == "SUCCEEDED"
    job = jobs.get("j-1")
    assert (job.output_bucket, job.output_key) == ("outputs", "edited/a b/Clip é.mp4")
    assert job.output_size == 256 * 40 and job.output_duration_seconds == 4.0 and job.provider_units == "6"
    assert (job.cost_usd, job.cost_source) == (0.84, "provider_units")  # 6 Kling units at $0.14
    assert storage.objects[("outputs", "edited/a b/Clip é.mp4")]["body"] == bytes(range(256)) * 40
    assert "finalize_lease_owner" not in job.extra
    assert events.published[-1][1]["status"] == "SUCCEEDED"


def test_failed_task_records_the_providers_message(world):
    finalize, jobs, _, provider, *_rest, task_id = world
    provider.set_state(task_id, TaskState.FAILED, message="Failure to pass the risk control system")
    assert finalize.on_poll("j-1").status == "FAILED"
    job = jobs.get("j-1")
    assert job.error_code == "PROVIDER_TASK_FAILED"
    assert job.error_message == "Failure to pass the risk control system"


def test_running_task_moves_job_to_processing_and_stays_open(world):
    finalize, jobs, _, provider, *_rest, task_id = world
    provider.set_state(task_id, TaskState.RUNNING)
    outcome = finalize.on_poll("j-1")
    assert (outcome.status, outcome.terminal) == ("PROCESSING", False)
    assert finalize.on_poll("j-1").status == "PROCESSING"
    assert [h["status"] for h in jobs.get("j-1").status_history] == ["PROCESSING"]


def test_deadline_times_the_job_out(world):
    finalize, jobs, _, provider, _, _, clock, task_id = world
    provider.set_state(task_id, TaskState.RUNNING)
    clock.advance(601)
    outcome = finalize.on_poll("j-1")
    assert (outcome.status, outcome.terminal) == ("TIMED_OUT", True)
    assert jobs.get("j-1").error_code == "DEADLINE_EXCEEDED"


def test_result_after_the_deadline_still_wins(world):
    finalize, _, _, provider, _, _, clock, task_id = world
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL)
    clock.advance(10_000)
    assert finalize.on_poll("j-1").status == "SUCCEEDED"


@pytest.mark.parametrize("token", [None, "", "wrong", "secret-token "])
def test_callback_with_a_bad_token_changes_nothing(world, token):
    finalize, jobs, _, provider, *_rest, task_id = world
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL)
    with pytest.raises(CallbackRejected):
        finalize.on_callback("j-1", token)
    assert jobs.get("j-1").status == JobStatus.SUBMITTED and provider.get_calls == 0


def test_callback_for_unknown_job_is_rejected_like_a_bad_token(world):
    finalize, *_ = world
    with pytest.raises(CallbackRejected, match="invalid callback token"):
        finalize.on_callback("j-nope", "secret-token")


def test_callback_refetches_the_task_instead_of_trusting_the_body(world):
    finalize, jobs, _, provider, *_rest, task_id = world
    provider.set_state(task_id, TaskState.RUNNING)  # the body may say "succeed"; the provider says no
    outcome = finalize.on_callback("j-1", "secret-token")
    assert outcome.status == "PROCESSING" and provider.get_calls == 1


def test_racing_finalizers_copy_once(world):
    finalize, jobs, storage, provider, fetcher, *_rest, task_id = world
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL)
    barrier = threading.Barrier(4)
    results = []

    def run(kind):
        barrier.wait()
        results.append(finalize.on_callback("j-1", "secret-token") if kind else finalize.on_poll("j-1"))

    threads = [threading.Thread(target=run, args=(i % 2,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert storage.uploads == [("outputs", "edited/a b/Clip é.mp4")]
    assert jobs.get("j-1").status == JobStatus.SUCCEEDED
    assert [h["status"] for h in jobs.get("j-1").status_history] == ["SUCCEEDED"]


def test_failed_copy_releases_the_claim_so_the_next_poll_retries(world):
    finalize, jobs, storage, provider, fetcher, *_rest, task_id = world
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL)
    fetcher.fail_with = ConnectionError("reset mid-copy")
    with pytest.raises(ConnectionError):
        finalize.on_poll("j-1")
    assert jobs.get("j-1").status == JobStatus.SUBMITTED and storage.uploads == []
    fetcher.fail_with = None
    assert finalize.on_poll("j-1").status == "SUCCEEDED"


def test_terminal_job_is_not_touched_again(world):
    finalize, jobs, _, provider, *_rest, task_id = world
    provider.set_state(task_id, TaskState.FAILED, message="nope")
    finalize.on_poll("j-1")
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL)  # a stale contradiction
    assert finalize.on_poll("j-1").status == "FAILED"


def test_expire_ends_a_stuck_job(world):
    finalize, jobs, *_ = world
    assert finalize.expire("j-1", "gave up").status == "TIMED_OUT"
    assert jobs.get("j-1").error_code == "POLLER_GAVE_UP"


def test_the_record_says_which_door_finished_the_job(world):
    finalize, jobs, _, provider, *_rest, task_id = world
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL)
    assert finalize.on_callback("j-1", "secret-token").status == "SUBMITTED"
    assert finalize.on_poll("j-1").status == "SUCCEEDED"  # the check the callback woke copies
    assert jobs.get("j-1").finalized_by == "callback"


# --- the callback answers without copying; the poller's wait ends at once -----------------------------


def _signal(finalize: FinalizeJob) -> FakeSignal:
    return finalize._signal  # type: ignore[attr-defined,return-value]


def test_callback_notes_provider_done_and_copies_nothing(world):
    finalize, jobs, storage, provider, fetcher, *_rest, task_id = world
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL)
    outcome = finalize.on_callback("j-1", "secret-token")
    assert (outcome.status, outcome.terminal) == ("SUBMITTED", False)
    assert storage.uploads == [] and fetcher.opened == []
    assert jobs.get("j-1").extra["provider_done_at"] == iso(world[6].now())


def test_callback_after_the_poller_parked_resumes_its_wait(world):
    finalize, jobs, _, provider, *_rest, task_id = world
    finalize.park("j-1", "token-1")
    assert _signal(finalize).resumed == []  # nothing to check yet: the wait runs its interval
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL)
    finalize.on_callback("j-1", "secret-token")
    assert _signal(finalize).resumed == ["token-1"]


def test_park_after_the_callback_resumes_at_once(world):
    finalize, jobs, _, provider, *_rest, task_id = world
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL)
    finalize.on_callback("j-1", "secret-token")  # no token parked yet: nothing resumed
    assert _signal(finalize).resumed == []
    finalize.park("j-1", "token-2")
    assert _signal(finalize).resumed == ["token-2"]


def _queued_with_a_task_in_flight(world, state: TaskState) -> str:
    """j-2: submit stored its callback token and created the task, but its SUBMITTED write (with
    the task id) has not landed yet; the task is already in ``state`` at the provider."""
    finalize, jobs, _, provider, *_rest, clock, _task = world
    task = provider.submit(__import__("clipedit.ports", fromlist=["EditRequest"]).EditRequest(
        external_id="j-2", prompt="p", video_url="u", model="o3", mode="pro", keep_audio=True))
    provider.set_state(task.task_id, state, video_url=RESULT_URL)
    now = iso(clock.now())
    jobs.create(Job(job_id="j-2", status=JobStatus.QUEUED, input_bucket="inbox", input_key="incoming/b.mp4",
                    created_at=now, updated_at=now, callback_token_hash=hash_token("token-j2"),
                    deadline_at=iso(clock.now() + 600)))
    return task.task_id


def _submitted_write_lands(jobs, task_id: str, now: str) -> None:
    assert jobs.transition("j-2", JobStatus.SUBMITTED, now=now, fields={"provider_task_id": task_id}) is not None


def test_a_callback_that_beats_the_submitted_write_ends_the_first_wait_at_once(world):
    finalize, jobs, *_rest, clock, _ = world
    task_id = _queued_with_a_task_in_flight(world, TaskState.SUCCEEDED)
    outcome = finalize.on_callback("j-2", "token-j2")  # the provider finished before submit wrote SUBMITTED
    assert outcome.status == "QUEUED" and _signal(finalize).resumed == []
    _submitted_write_lands(jobs, task_id, iso(clock.now()))
    finalize.park("j-2", "token-5")
    assert _signal(finalize).resumed == ["token-5"]  # not a whole poll interval
    assert finalize.on_poll("j-2").status == "SUCCEEDED"
    job = jobs.get("j-2")
    assert job.finalized_by == "callback"


def test_an_early_callback_for_a_running_task_leaves_the_wait_to_its_interval(world):
    finalize, jobs, *_rest, clock, _ = world
    task_id = _queued_with_a_task_in_flight(world, TaskState.RUNNING)
    finalize.on_callback("j-2", "token-j2")  # the "submitted" status callback, sent at creation
    _submitted_write_lands(jobs, task_id, iso(clock.now()))
    finalize.park("j-2", "token-6")
    assert _signal(finalize).resumed == []


def test_park_on_a_finished_job_resumes_at_once(world):
    finalize, *_ = world
    finalize.expire("j-1", "gave up")
    finalize.park("j-1", "token-3")
    assert _signal(finalize).resumed == ["token-3"]


def test_callback_reporting_a_failed_task_ends_the_job_and_the_wait(world):
    finalize, jobs, _, provider, *_rest, task_id = world
    finalize.park("j-1", "token-4")
    provider.set_state(task_id, TaskState.FAILED, message="risk control")
    outcome = finalize.on_callback("j-1", "secret-token")
    assert (outcome.status, outcome.terminal) == ("FAILED", True)
    assert _signal(finalize).resumed == ["token-4"]


def test_a_copy_that_fails_after_the_callback_waits_a_full_interval_next_time(world):
    finalize, jobs, storage, provider, fetcher, *_rest, task_id = world
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url=RESULT_URL)
    finalize.on_callback("j-1", "secret-token")
    fetcher.fail_with = __import__("clipedit.domain.errors", fromlist=["ProviderError"]).ProviderError(
        "CDN 503", retryable=True, code="PROVIDER_UNAVAILABLE")
    assert finalize.on_poll("j-1").terminal is False
    assert "provider_done_at" not in jobs.get("j-1").extra  # else the next park would spin
    finalize.park("j-1", "token-5")
    assert _signal(finalize).resumed == []
    fetcher.fail_with = None
    assert finalize.on_poll("j-1").status == "SUCCEEDED"


def test_a_park_without_a_token_is_refused_so_the_poller_checks_at_once(world):
    finalize, *_ = world
    with pytest.raises(ValueError, match="task token"):
        finalize.park("j-1", "")
    assert _signal(finalize).resumed == []
