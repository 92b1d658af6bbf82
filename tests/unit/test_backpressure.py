"""Backpressure on in-memory ports: the concurrency gate, backoff through delayed messages, the
circuit breaker, lost answers, and the queue wait limit. Waits never raise out of the dispatcher:
they become a delayed message, so they never count towards the DLQ's maxReceiveCount."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clipedit.domain.backpressure import BackpressureSettings, BreakerState, backoff_seconds, breaker_cooldown
from clipedit.domain.errors import ProviderError
from clipedit.domain.job import JobStatus
from clipedit.domain.provider_errors import ErrorKind, KLING_ERRORS, kling_rule
from clipedit.ports import TaskState
from tests.unit.test_submit import World

SETTINGS = BackpressureSettings(concurrency_limit=2, breaker_failure_threshold=3, breaker_cooldown_seconds=60,
                                account_cooldown_seconds=900, max_queue_wait_seconds=3600)


def upload(world, name):
    return world.upload(key=f"incoming/{name}.mp4", metadata={"prompt": "p"})[0]


def finish(world, job_id, state=TaskState.FAILED):
    """End a job the way finalize does, through a recorded terminal transition."""
    job = world.jobs.get(job_id)
    updated = world.jobs.transition(job_id, JobStatus.FAILED, now="2026-01-01T00:00:00.000Z", fields={})
    world.submit_job._recorder(updated, job.status.value)


def test_the_gate_holds_jobs_beyond_the_limit_and_a_finished_job_wakes_the_oldest():
    world = World(backpressure=SETTINGS)
    first, second = upload(world, "a"), upload(world, "b")
    world.clock.advance(1)
    third = upload(world, "c")
    assert [first.status, second.status, third.status] == ["SUBMITTED", "SUBMITTED", "WAITING"]
    assert len(world.provider.tasks) == 2
    job = world.jobs.get(third.job_id)
    assert job.status == JobStatus.QUEUED and "slots" in job.wait_reason
    assert world.queue.sent == [{"clipedit": "submit", "job_id": third.job_id, "attempt": 1}]
    assert world.queue.delays[0] >= 60  # a gate wait is long: a freed slot wakes the job sooner
    world.queue.sent.clear()
    finish(world, first.job_id)
    # The freed slot is handed to the waiting job at once, then the job is woken to use it.
    assert world.guard.slot_holders("kling") == {second.job_id, third.job_id}
    assert world.queue.sent == [{"clipedit": "submit", "job_id": third.job_id, "wake": True}]
    world.drain()
    assert world.jobs.get(third.job_id).status == JobStatus.SUBMITTED
    assert world.guard.slot_holders("kling") == {second.job_id, third.job_id}


def test_a_new_upload_cannot_take_a_slot_handed_to_a_waiting_job():
    world = World(backpressure=SETTINGS)
    first, second = upload(world, "a"), upload(world, "b")
    world.clock.advance(1)
    waiting = upload(world, "c")
    assert waiting.status == "WAITING"
    world.queue.sent.clear()
    finish(world, first.job_id)
    world.clock.advance(1)
    newcomer = upload(world, "d")  # arrives before the wake is delivered (it was behind an upload backlog)
    assert newcomer.status == "WAITING"
    (woken,) = world.dispatch.message({"clipedit": "submit", "job_id": waiting.job_id, "wake": True})
    assert woken.status == "SUBMITTED"
    assert world.jobs.get(waiting.job_id).status == JobStatus.SUBMITTED
    assert world.jobs.get(newcomer.job_id).status == JobStatus.QUEUED
    assert world.guard.slot_holders("kling") == {second.job_id, waiting.job_id}


def test_a_newcomer_submitting_while_the_heir_is_looked_up_finds_the_gate_full():
    # The race the 1,000-upload run lost: the lookup of the oldest waiting job takes a while (a
    # query), and an upload submitted inline in that window used to take the slot just freed.
    world = World(backpressure=SETTINGS)
    first, second = upload(world, "a"), upload(world, "b")
    world.clock.advance(1)
    waiting = upload(world, "c")
    world.clock.advance(1)
    lookup, raced = world.jobs.list_by_status, []

    def slow_lookup(status, **kwargs):
        found = lookup(status, **kwargs)
        if not raced:
            raced.append(upload(world, "d"))  # a newcomer, submitted inline during the lookup
        return found

    world.jobs.list_by_status = slow_lookup
    finish(world, first.job_id)
    assert raced[0].status == "WAITING"
    assert world.guard.slot_holders("kling") == {second.job_id, waiting.job_id}
    (woken,) = world.dispatch.message({"clipedit": "submit", "job_id": waiting.job_id, "wake": True})
    assert woken.status == "SUBMITTED"


def test_a_job_that_never_held_a_slot_hands_nothing_over():
    world = World(backpressure=SETTINGS)
    upload(world, "a"), upload(world, "b")
    world.clock.advance(1)
    waiting = upload(world, "c")
    world.queue.sent.clear()
    finish(world, waiting.job_id)  # it ends (say, cancelled) while still waiting: it held no slot
    assert waiting.job_id not in world.guard.slot_holders("kling") and world.queue.sent == []


def test_only_a_job_waiting_on_the_gate_is_handed_a_slot():
    world = World(backpressure=SETTINGS)
    first, _second = upload(world, "a"), upload(world, "b")
    world.clock.advance(1)
    other = upload(world, "c")
    # This job waits for something else (say, elements being created): it must not hold a slot.
    world.jobs.set_fields(other.job_id, expected=JobStatus.QUEUED, fields={"wait_reason": "1 element(s) still being created"})
    finish(world, first.job_id)
    assert other.job_id not in world.guard.slot_holders("kling")


def test_a_wake_that_finds_the_gate_full_is_dropped_not_multiplied():
    world = World(backpressure=SETTINGS)
    upload(world, "a"), upload(world, "b")
    waiting = upload(world, "c")
    world.queue.sent.clear()
    (outcome,) = world.dispatch.message({"clipedit": "submit", "job_id": waiting.job_id, "wake": True})
    assert outcome.status == "WAITING" and world.queue.sent == []  # its own delayed message still exists


def test_a_transient_streak_opens_the_breaker_and_later_jobs_wait_without_calling_the_provider():
    world = World(backpressure=replace(SETTINGS, concurrency_limit=10))
    for _ in range(3):
        world.provider.submit_errors.append(ProviderError("Kling error 5000", provider_code=5000,
                                                          kind=ErrorKind.TRANSIENT, code="KLING_5000"))
    outcomes = [upload(world, name) for name in "abc"]
    assert [o.status for o in outcomes] == ["WAITING"] * 3
    assert world.guard.breaker("kling").is_open(world.clock.now())
    paused = [e for e in world.events.published if e[0] == "Provider Paused"]
    assert len(paused) == 1 and paused[0][1]["paused_seconds"] == 60
    calls = len(world.provider.requests)
    fourth = upload(world, "d")
    assert fourth.status == "WAITING" and len(world.provider.requests) == calls  # not even tried
    assert "paused" in world.jobs.get(fourth.job_id).wait_reason
    # After the cool-down the next try goes through and closes the breaker.
    world.clock.advance(61)
    world.queue.sent.clear()
    world.dispatch.message({"clipedit": "submit", "job_id": fourth.job_id, "attempt": 1})
    assert world.jobs.get(fourth.job_id).status == JobStatus.SUBMITTED
    assert world.guard.breaker("kling") == BreakerState()


@pytest.mark.parametrize("code", [1101, 1102, 1000])
def test_an_account_problem_pauses_every_job_at_once_and_fails_none(code):
    world = World(backpressure=SETTINGS)
    world.provider.submit_errors.append(ProviderError(f"Kling error {code}", provider_code=code,
                                                      kind=kling_rule(code).kind, code=f"KLING_{code}"))
    outcome = upload(world, "a")
    job = world.jobs.get(outcome.job_id)
    assert outcome.status == "WAITING" and job.status == JobStatus.QUEUED and job.error_code is None
    assert world.queue.delays == [900]  # no retries burnt: the next look is after the cool-down
    (paused,) = [e[1] for e in world.events.published if e[0] == "Provider Paused"]
    assert (paused["kind"], paused["error_code"]) == ("account", f"KLING_{code}")


def test_a_lost_answer_is_looked_up_before_submitting_again():
    world = World(backpressure=SETTINGS)
    world.provider.lost_answers = 1
    outcome = upload(world, "a")
    assert outcome.status == "WAITING" and len(world.provider.tasks) == 1  # created, answer lost
    world.drain()
    job = world.jobs.get(outcome.job_id)
    assert job.status == JobStatus.SUBMITTED and len(world.provider.tasks) == 1
    assert len(world.provider.requests) == 1  # adopted by lookup: no second create call at all
    assert job.provider_task_id in world.provider.tasks


def test_a_job_that_cannot_be_submitted_within_the_queue_wait_limit_times_out():
    world = World(backpressure=SETTINGS)
    upload(world, "a"), upload(world, "b")
    waiting = upload(world, "c")
    world.clock.advance(3601)
    world.queue.sent.clear()
    world.dispatch.message({"clipedit": "submit", "job_id": waiting.job_id, "attempt": 5})
    job = world.jobs.get(waiting.job_id)
    assert (job.status, job.error_code) == (JobStatus.TIMED_OUT, "PROVIDER_BUSY_TOO_LONG")
    assert "slots" in job.error_message and world.queue.sent == []


def test_a_rejected_request_fails_at_once_and_frees_its_slot():
    world = World(backpressure=SETTINGS)
    world.provider.submit_errors.append(ProviderError("Kling error 1301: content", provider_code=1301,
                                                      kind=ErrorKind.REJECTED, code="KLING_1301"))
    outcome = upload(world, "a")
    assert world.jobs.get(outcome.job_id).status == JobStatus.FAILED
    assert world.guard.slot_holders("kling") == set() and world.queue.sent == []


def test_backoff_grows_is_capped_and_is_reproducible():
    delays = [backoff_seconds(a, base=2, cap=300, key="job-1") for a in range(12)]
    assert delays == [backoff_seconds(a, base=2, cap=300, key="job-1") for a in range(12)]
    assert all(2 ** a // 2 * 2 / 2 <= d <= 2 * 2 ** a for a, d in enumerate(delays[:7]))
    assert max(delays) <= 300 and delays[-1] >= 150
    assert delays != [backoff_seconds(a, base=2, cap=300, key="job-2") for a in range(12)]  # jobs spread out


def test_the_breaker_cool_down_doubles_while_failures_continue():
    settings = BackpressureSettings(breaker_failure_threshold=2, breaker_cooldown_seconds=60,
                                    breaker_max_cooldown_seconds=200)
    assert breaker_cooldown(BreakerState(failures=1), ErrorKind.TRANSIENT, settings) is None
    assert breaker_cooldown(BreakerState(failures=2), ErrorKind.TRANSIENT, settings) == 60
    assert breaker_cooldown(BreakerState(failures=3, opened=1), ErrorKind.TRANSIENT, settings) == 120
    assert breaker_cooldown(BreakerState(failures=9, opened=5), ErrorKind.TRANSIENT, settings) == 200
    assert breaker_cooldown(BreakerState(failures=9), ErrorKind.THROTTLED, settings) is None


def test_every_documented_kling_code_has_exactly_one_handling():
    documented = {1000, 1001, 1002, 1003, 1004, 1100, 1101, 1102, 1103, 1200, 1201, 1202, 1203, 1300, 1301,
                  1302, 1303, 1304, 5000, 5001, 5002}
    assert set(KLING_ERRORS) == documented
    assert {c for c, r in KLING_ERRORS.items() if r.kind is ErrorKind.THROTTLED} == {1302, 1303}
    assert {c for c, r in KLING_ERRORS.items() if r.kind is ErrorKind.ACCOUNT} >= {1101, 1102}


def test_the_published_event_schemas_know_every_status_and_the_paused_event():
    import json
    from pathlib import Path

    import jsonschema

    schemas = Path(__file__).resolve().parents[2] / "events" / "schemas"
    job = json.loads((schemas / "job-status-changed.schema.json").read_text())
    statuses = {s.value for s in JobStatus}
    assert set(job["$defs"]["status"]["enum"]) == statuses
    batch = json.loads((schemas / "batch-completed.schema.json").read_text())
    assert set(batch["properties"]["counts"]["propertyNames"]["enum"]) == statuses

    world = World(backpressure=replace(SETTINGS, concurrency_limit=10))
    world.provider.submit_errors.append(ProviderError("Kling error 1102: pack used up", provider_code=1102,
                                                      kind=ErrorKind.ACCOUNT, code="KLING_1102"))
    upload(world, "a")
    (paused,) = [detail for kind, detail in world.events.published if kind == "Provider Paused"]
    validator = jsonschema.Draft202012Validator(json.loads((schemas / "provider-paused.schema.json").read_text()))
    validator.validate(paused)
