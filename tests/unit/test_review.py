"""Reviews and new edits from finished ones, on in-memory ports: parse_review's codes, ReviewJob's
record and event, Try again and Promote to pro as new linked jobs that never overwrite an output."""

from __future__ import annotations

import pytest

from clipedit.domain.errors import SpecError
from clipedit.domain.review import InvalidReview, ReviewStatus, parse_review
from clipedit.usecases.common import StatusRecorder, iso
from clipedit.usecases.queries import NotFound
from clipedit.usecases.review import ReviewJob, ReviseJob, NotReviewable
from tests.unit.test_submit import World

PROMPT = {"prompt": "Make @Video1 look like a watercolour painting. Keep the motion identical.", "mode": "std"}


def succeeded_job(world: World) -> str:
    (outcome,) = world.upload(metadata=PROMPT)
    job = world.jobs.get(outcome.job_id)
    world.jobs.items[job.job_id].status = job.status.__class__("SUCCEEDED")
    world.jobs.items[job.job_id].output_key = "edited/clip.mp4"
    return job.job_id


def revise(world: World) -> ReviseJob:
    recorder = StatusRecorder(events=world.events, now=lambda: iso(world.clock.now()))
    return ReviseJob(jobs=world.jobs, queue=world.queue, recorder=recorder, clock=world.clock)


@pytest.mark.parametrize("document, code", [
    ({"review_status": "fine"}, "INVALID_REVIEW"),
    ({}, "INVALID_REVIEW"),
    ({"review_status": "approved", "note": "x"}, "INVALID_REVIEW"),
    ({"review_status": "rejected", "review_note": 3}, "INVALID_REVIEW"),
    ({"review_status": "rejected", "review_note": "y" * 2001}, "REVIEW_NOTE_TOO_LONG"),
    ("approved", "INVALID_REVIEW"),
])
def test_parse_review_names_what_is_wrong(document, code):
    with pytest.raises(InvalidReview) as caught:
        parse_review(document)
    assert caught.value.code == code


def test_parse_review_accepts_either_verdict_and_trims_the_note():
    assert parse_review({"review_status": "Approved"}).status is ReviewStatus.APPROVED
    review = parse_review({"review_status": "rejected", "review_note": "  warped logo  "})
    assert (review.status, review.note) == (ReviewStatus.REJECTED, "warped logo")


def test_review_records_the_verdict_and_publishes_one_event():
    world = World()
    job_id = succeeded_job(world)
    job = ReviewJob(jobs=world.jobs, events=world.events, clock=world.clock)(
        job_id, parse_review({"review_status": "approved", "review_note": "good"}), reviewer="arn:aws:iam::1:user/bo")
    assert (job.review_status, job.review_note, job.reviewed_by) == ("approved", "good", "arn:aws:iam::1:user/bo")
    assert world.jobs.get(job_id).review_status == "approved"
    detail_type, detail = world.events.published[-1]
    assert detail_type == "Job Reviewed" and detail["job_id"] == job_id and detail["review_status"] == "approved"


def test_a_job_without_an_output_cannot_be_reviewed():
    world = World()
    (outcome,) = world.upload(metadata=PROMPT)
    review = ReviewJob(jobs=world.jobs, events=world.events, clock=world.clock)
    with pytest.raises(NotReviewable):
        review(outcome.job_id, parse_review({"review_status": "approved"}), reviewer="me")
    with pytest.raises(NotFound):
        review("j-" + "f" * 32, parse_review({"review_status": "approved"}), reviewer="me")


def test_try_again_makes_one_linked_job_per_change_with_its_own_output_key():
    world = World()
    job_id = succeeded_job(world)
    first = revise(world)(job_id, prompt="Make @Video1 look like an oil painting.")
    again = revise(world)(job_id, prompt="Make @Video1 look like an oil painting.")
    other = revise(world)(job_id, mode="pro")
    assert first.created and not again.created and first.job_id == again.job_id and other.job_id != first.job_id
    new = world.jobs.get(first.job_id)
    assert new.extra["retry_of"] == job_id and new.prompt.startswith("Make @Video1 look like an oil")
    assert new.mode == "std" and new.status.value == "RECEIVED"
    assert new.planned_output_key == f"edited/clip.{first.job_id[2:14]}.mp4"  # never over edited/clip.mp4
    assert [m["job_id"] for m in world.queue.sent[-3:] if m.get("job_id")][-1] == other.job_id


def test_promote_to_pro_keeps_the_spec_and_refuses_a_pro_job():
    world = World()
    job_id = succeeded_job(world)
    promoted = revise(world).promote(job_id)
    new = world.jobs.get(promoted.job_id)
    assert new.mode == "pro" and new.prompt == PROMPT["prompt"] and new.extra["revision"] == "promote"
    world.jobs.items[promoted.job_id].status = new.status.__class__("SUCCEEDED")
    with pytest.raises(NotReviewable, match="already a pro"):
        revise(world).promote(promoted.job_id)


@pytest.mark.parametrize("change, code", [
    ({"prompt": "   "}, "MISSING_PROMPT"),
    ({"prompt": "x" * 2501}, "PROMPT_TOO_LONG"),
    ({"prompt": "Put @Image1 on @Video1"}, "UNKNOWN_REFERENCE"),
    ({"mode": "ultra"}, "INVALID_MODE"),
])
def test_try_again_refuses_a_bad_change(change, code):
    world = World()
    job_id = succeeded_job(world)
    with pytest.raises(SpecError) as caught:
        revise(world)(job_id, **change)
    assert caught.value.code == code
