"""Reconcile on in-memory ports: the provider's answers it cannot act on are reported, not guessed."""

from __future__ import annotations

from clipedit.domain.errors import ProviderError
from clipedit.domain.job import JobStatus
from clipedit.domain.provider_errors import ErrorKind
from clipedit.usecases.backpressure import SlotRelease
from clipedit.usecases.common import StatusRecorder, iso
from clipedit.usecases.finalize import FinalizeJob, FinalizeSettings
from clipedit.usecases.reconcile import Reconcile
from tests.fakes import FakeFetcher, FakeObjectStore
from tests.unit.test_submit import World


def stuck_submitted_job(world):
    (outcome,) = world.upload(metadata={"prompt": "p"})
    world.clock.advance(3600)  # untouched for an hour
    return world.jobs.get(outcome.job_id)


def reconcile_for(world):
    finalize = FinalizeJob(jobs=world.jobs, storage=FakeObjectStore(), provider=world.provider,
                           fetcher=FakeFetcher({}), clock=world.clock,
                           recorder=StatusRecorder(events=world.events, now=lambda: iso(world.clock.now()),
                                                   on_terminal=SlotRelease(guard=world.guard, jobs=world.jobs,
                                                                           queue=world.queue)),
                           settings=FinalizeSettings(outputs_bucket="out", incoming_prefix="incoming/",
                                                     output_prefix="edited/"))
    return Reconcile(jobs=world.jobs, providers={"kling": world.provider}, guard=world.guard, finalize=finalize,
                     queue=world.queue, clock=world.clock)


def test_a_provider_that_cannot_answer_is_reported_and_nothing_is_changed():
    world = World()
    job = stuck_submitted_job(world)

    def unavailable(task_id, *, urls=None):
        raise ProviderError("Kling error 5000: busy", kind=ErrorKind.TRANSIENT, code="KLING_5000")

    world.provider.get_task = unavailable
    (finding,) = reconcile_for(world).run(repair=True)
    assert finding.problem.startswith("could not ask the provider") and finding.repair.startswith("none")
    assert not finding.repaired and world.jobs.get(job.job_id).status == JobStatus.SUBMITTED


def test_a_task_the_provider_does_not_know_fails_the_job_with_a_specific_code():
    world = World()
    job = stuck_submitted_job(world)

    def unknown(task_id, *, urls=None):
        raise ProviderError("Kling error 1203: task not found", provider_code=1203, kind=ErrorKind.REJECTED,
                            code="KLING_1203")

    world.provider.get_task = unknown
    (finding,) = reconcile_for(world).run(repair=False)
    assert finding.provider == "error KLING_1203" and not finding.repaired
    assert world.jobs.get(job.job_id).status == JobStatus.SUBMITTED  # a report changes nothing
    (finding,) = reconcile_for(world).run(repair=True)
    assert finding.repaired
    job = world.jobs.get(job.job_id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "PROVIDER_TASK_MISSING")
    assert job.finalized_by == "reconcile"
    assert world.guard.slot_holders("kling") == set()  # its slot is free again


def test_a_job_that_is_merely_moving_is_left_alone():
    world = World()
    stuck_submitted_job(world)
    assert reconcile_for(world).run(repair=True, stale_after_seconds=7200) == []
