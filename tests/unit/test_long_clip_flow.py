"""Long clips on in-memory ports: a segmented upload becomes a parent and its parts, each part takes
the normal road to one provider task, the last part to end asks for the stitch exactly once, a
failed part fails the parent by name, and the stitch runs the plan over the parts' outputs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from clipedit.domain.errors import RetryLater
from clipedit.domain.job import JobStatus
from clipedit.domain.prepare_plan import framing_from_record
from clipedit.domain.stitching import StitchPlan
from clipedit.usecases.long_clip import (
    LongClipSettings,
    ParentProgress,
    SplitLongClip,
    StitchLongClip,
    part_job_id,
)
from clipedit.usecases.cancel import CancelJob
from clipedit.usecases.retry import RetryJob
from tests.unit.test_platform_variants import Storage, prepare_step
from tests.unit.test_providers_and_cancel import FakeFal
from tests.unit.test_submit import BUCKET, World

CLIP = "incoming/long.mp4"
OUTPUTS = "outputs"


class FakeLongClipMedia:
    """A test double behind the media port: fixed cut candidates; the stitch records its plan."""

    def __init__(self, scene_cuts=(), keyframes=()) -> None:
        self.candidates = (list(scene_cuts), list(keyframes))
        self.stitched: list[tuple[list[bytes], bytes, StitchPlan]] = []

    def cut_candidates(self, path):
        return self.candidates

    def stitch(self, part_paths, source_path, target_path, plan):
        bodies = [open(p, "rb").read() for p in part_paths]
        self.stitched.append((bodies, open(source_path, "rb").read(), plan))
        with open(target_path, "wb") as out:
            out.write(b"stitched:" + b"|".join(bodies))
        return {"duration_seconds": plan.duration, "width": 1280, "height": 720}


class LongWorld(World):
    def __init__(self, media=None, provider=None):
        super().__init__(provider=provider)
        self.media = media or FakeLongClipMedia()
        self.storage_with_download = Storage(self.storage)
        self.prepare = prepare_step(self)
        recorder = self.submit_job._recorder
        common = dict(jobs=self.jobs, storage=self.storage_with_download, queue=self.queue, recorder=recorder,
                      clock=self.clock, settings=LongClipSettings(outputs_bucket=OUTPUTS, incoming_prefix="incoming/",
                                                                  output_prefix="edited/"))
        self.prepare._split = SplitLongClip(media=self.media, fetch_source=self.prepare.download_source, **common)
        self.stitch = StitchLongClip(media=self.media, fetch_source=self.prepare.download_source, **common)
        self.submit_job._parents = ParentProgress(stitch_requests=self.prepare_queue, **common)

    def run_prepare_queue(self):
        while self.prepare_queue.sent:
            body = self.prepare_queue.sent.pop(0)
            if body.get("clipedit") == "stitch":
                self.stitch(body["job_id"])
            else:
                self.prepare(body["job_id"])

    def drain(self):
        """Deliver the intake queue's immediate messages; delayed ones (backstop re-checks) are
        dropped, so every step here must be driven by a wake-up, never by a timer."""
        while self.queue.sent:
            body, delay = self.queue.sent.pop(0), self.queue.delays.pop(0)
            if not delay:
                self.dispatch.message(body)

    def settle(self):
        while self.queue.sent or self.prepare_queue.sent:
            self.drain()
            self.run_prepare_queue()

    def end_part(self, job_id, status=JobStatus.SUCCEEDED, **fields):
        """What finalize does when the provider is done: the output in the outputs bucket, the end recorded."""
        part = self.jobs.get(job_id)
        if status == JobStatus.SUCCEEDED:
            self.storage.put(OUTPUTS, part.planned_output_key, f"edited {job_id}".encode())
            fields = {"output_bucket": OUTPUTS, "output_key": part.planned_output_key, "provider_units": "9.6", **fields}
        updated = self.jobs.transition(job_id, status, now="2026-01-01T00:00:00.000Z", fields=fields)
        self.submit_job._recorder(updated, part.status.value)


def upload_long(world, duration=25.0, **metadata):
    world.inspector.videos[f"s3://{BUCKET}/{CLIP}?versionId=v1"] = {"duration_seconds": duration}
    (outcome,) = world.upload(CLIP, metadata={"prompt": "Give @Video1 a warm grade", "long-clip": "segment",
                                              **metadata}, body=b"source-clip")
    return outcome.job_id


@pytest.fixture
def world():
    return LongWorld()


def test_a_25_s_clip_becomes_a_parent_with_three_parts_each_one_provider_task(world):
    parent_id = upload_long(world)
    parent = world.jobs.get(parent_id)
    assert parent.status == JobStatus.QUEUED
    # The estimate is on the record before anything is spent (even parts: 3 x 8.33 s -> 24 s billed).
    assert (parent.extra["parts_total"], parent.extra["estimated_seconds"], parent.extra["estimated_units"]) == (3, 24, "28.8")
    assert world.provider.requests == []
    world.settle()
    parent = world.jobs.get(parent_id)
    assert parent.status == JobStatus.SUBMITTED and parent.extra["part_job_ids"] == [
        part_job_id(parent_id, i) for i in range(3)]
    parts = [world.jobs.get(i) for i in parent.extra["part_job_ids"]]
    assert [framing_from_record(p.framing).trim for p in parts] == [(0.0, 8.333), (8.333, 16.667), (16.667, 25.0)]
    assert all(p.status == JobStatus.SUBMITTED and p.extra["parent_id"] == parent_id for p in parts)
    assert [p.planned_output_key for p in parts] == [f"edited/long.parts/p0{i}.mp4" for i in (1, 2, 3)]
    assert sorted(r.external_id for r in world.provider.requests) == sorted(p.job_id for p in parts)

    for part in parts:
        world.end_part(part.job_id)
        world.settle()
    parent = world.jobs.get(parent_id)
    assert parent.status == JobStatus.SUCCEEDED, (parent.error_code, parent.error_message)
    assert parent.output_key == "edited/long.mp4" and parent.provider_units == "28.8"
    assert (parent.extra["parts_succeeded"], parent.extra["parts_failed"]) == (3, 0)
    (bodies, source, plan), = world.media.stitched
    assert bodies == [f"edited {p.job_id}".encode() for p in parts] and source == b"source-clip"
    assert plan.duration == 25.0 and plan.keep_audio and len(world.provider.requests) == 3
    statuses = [d["status"] for _, d in world.events.published if d["job_id"] == parent_id]
    assert statuses == ["RECEIVED", "QUEUED", "SUBMITTED", "PROCESSING", "SUCCEEDED"]
    parent_events = [d for _, d in world.events.published if d["job_id"] == parent_id]
    assert [(d.get("parts_succeeded"), d.get("parts_total")) for d in parent_events[-2:]] == [(1, 3), (3, 3)]
    assert {d.get("parent_id") for _, d in world.events.published if d["job_id"] in {p.job_id for p in parts}} == {parent_id}
    schema = json.loads((Path(__file__).resolve().parents[2] / "events" / "schemas"
                         / "job-status-changed.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for kind, detail in world.events.published:
        validator.validate(detail)  # parents' and parts' events keep to the published schema


def test_cut_points_come_from_the_decoded_clip_on_the_trimmed_timeline():
    world = LongWorld(FakeLongClipMedia(scene_cuts=[9.0, 18.5], keyframes=[4.0]))
    parent_id = upload_long(world, duration=30.0, trim="2-27")
    world.settle()
    parent = world.jobs.get(parent_id)
    assert parent.extra["stitch_plan"]["boundaries"] == [7.0, 16.5]  # 9 and 18.5 s of the source
    assert parent.extra["stitch_plan"]["audio_offset"] == 2.0
    trims = [framing_from_record(world.jobs.get(i).framing).trim for i in parent.extra["part_job_ids"]]
    assert trims == [(2.0, 9.0), (9.0, 18.5), (18.5, 27.0)]


def test_the_last_part_to_end_asks_for_the_stitch_once_even_when_every_wake_sees_it(world):
    parent_id = upload_long(world)
    world.settle()
    ids = world.jobs.get(parent_id).extra["part_job_ids"]
    for job_id in ids:
        world.end_part(job_id)
    wakes = [m for m in world.queue.sent if m.get("job_id") == parent_id]
    assert len(wakes) == 3
    world.drain()  # three wake-ups, each sees all parts done: one claim wins
    assert [m for m in world.prepare_queue.sent if m.get("clipedit") == "stitch"] == [
        {"clipedit": "stitch", "job_id": parent_id}]


def test_a_failed_part_fails_the_parent_naming_it_and_nothing_is_stitched(world):
    parent_id = upload_long(world)
    world.settle()
    first, second, third = world.jobs.get(parent_id).extra["part_job_ids"]
    world.end_part(first)
    world.end_part(second, JobStatus.FAILED, error_code="KLING_1301", error_message="content refused")
    world.settle()
    assert world.jobs.get(parent_id).status == JobStatus.PROCESSING  # the third is still running
    world.end_part(third)
    world.settle()
    parent = world.jobs.get(parent_id)
    assert parent.status == JobStatus.FAILED and parent.error_code == "PART_FAILED"
    assert f"part 2 of 3 ({second})" in parent.error_message and "KLING_1301: content refused" in parent.error_message
    assert (parent.extra["parts_succeeded"], parent.extra["parts_failed"]) == (2, 1)
    assert world.media.stitched == []


def test_the_same_upload_delivered_three_times_makes_one_parent_and_three_parts(world):
    ids = {upload_long(world) for _ in range(3)}
    world.settle()
    world.prepare(ids.copy().pop())  # a redelivered split request changes nothing
    assert len(ids) == 1
    assert len([j for j in world.jobs.items.values() if j.extra.get("parent_id")]) == 3
    assert len(world.provider.requests) == 3


def test_a_stitch_that_crashes_is_retried_without_touching_the_parts(world):
    parent_id = upload_long(world)
    world.settle()
    for job_id in world.jobs.get(parent_id).extra["part_job_ids"]:
        world.end_part(job_id)
    world.drain()
    stitch = world.prepare_queue.sent.pop(0)
    real = world.media.stitch

    class Killed(BaseException):  # a process killed mid-stitch runs no cleanup: the lease stays
        pass

    world.media.stitch = lambda *a: (_ for _ in ()).throw(Killed())
    with pytest.raises(Killed):
        world.stitch(stitch["job_id"])
    world.media.stitch = real
    with pytest.raises(RetryLater):  # delivered again at once: the dead stitch's lease still holds
        world.stitch(stitch["job_id"])
    world.clock.advance(world.stitch._settings.stitch_lease_seconds + 1)
    assert world.stitch(stitch["job_id"]).status == "SUCCEEDED"  # delivered again after the lease
    assert len(world.provider.requests) == 3


@pytest.mark.parametrize("metadata, duration, code", [
    ({}, 25.0, "CLIP_TOO_LONG"),
    ({"long-clip": "segment"}, 130.0, "CLIP_OVER_MAX_SECONDS"),
    ({"long-clip": "split"}, 25.0, "INVALID_LONG_CLIP"),
    ({"seam": "wipe"}, 25.0, "INVALID_SEAM"),
    ({"overlap": "9"}, 25.0, "INVALID_OVERLAP"),
])
def test_bad_input_is_rejected_with_its_code_before_any_spend(world, metadata, duration, code):
    world.inspector.videos[f"s3://{BUCKET}/{CLIP}?versionId=v1"] = {"duration_seconds": duration}
    world.upload(CLIP, metadata={"prompt": "p", "long-clip": "reject", **metadata}, body=b"x")
    world.settle()
    (job,) = world.jobs.items.values()  # rejected at intake (the fields) or at submit (the probe)
    assert (job.status, job.error_code) == (JobStatus.REJECTED, code)
    assert world.provider.requests == [] and len(world.jobs.items) == 1


def test_retrying_a_failed_parent_reruns_only_the_failed_part_then_stitches(world):
    parent_id = upload_long(world)
    world.settle()
    first, second, third = world.jobs.get(parent_id).extra["part_job_ids"]
    world.end_part(first)
    world.end_part(second, JobStatus.FAILED, error_code="PROVIDER_TASK_FAILED", error_message="risk control")
    world.end_part(third)
    world.settle()
    assert world.jobs.get(parent_id).status == JobStatus.FAILED
    retry = RetryJob(jobs=world.jobs, queue=world.queue, recorder=world.submit_job._recorder, clock=world.clock)
    outcome = retry(parent_id)
    assert retry(parent_id).job_id == outcome.job_id and outcome.created  # asked twice: one new parent
    world.settle()
    new_parent = world.jobs.get(outcome.job_id)
    ids = new_parent.extra["part_job_ids"]
    assert ids[0] == first and ids[2] == third and ids[1] not in (first, second, third)
    assert len(world.provider.requests) == 4  # the three first tries and the retried part, nothing else
    world.end_part(ids[1])
    world.settle()
    new_parent = world.jobs.get(outcome.job_id)
    assert new_parent.status == JobStatus.SUCCEEDED and new_parent.extra["retry_of"] == parent_id
    assert world.jobs.get(parent_id).status == JobStatus.FAILED  # the original stays on file
    assert world.jobs.get(ids[1]).extra["retry_of"] == second


def test_reconcile_wakes_a_stale_parent_instead_of_finalizing_it(world):
    from tests.unit.test_reconcile import reconcile_for

    parent_id = upload_long(world)
    world.settle()
    for job_id in world.jobs.get(parent_id).extra["part_job_ids"]:
        world.end_part(job_id)
    world.queue.sent.clear()  # every wake-up of the parent is lost
    world.queue.delays.clear()
    world.clock.advance(3600)
    findings = [f for f in reconcile_for(world).run(repair=True) if f.job_id == parent_id]
    assert len(findings) == 1 and findings[0].repaired and "long clip" in findings[0].problem
    world.queue.delays[:] = [0] * len(world.queue.sent)  # deliver the repair's message now
    world.settle()
    assert world.jobs.get(parent_id).status == JobStatus.SUCCEEDED


def cancel_job(world):
    return CancelJob(jobs=world.jobs, providers={world.provider.name: world.provider},
                     recorder=world.submit_job._recorder, clock=world.clock)


def test_cancelling_a_parent_cancels_its_parts_at_a_provider_that_can(tmp_path):
    world = LongWorld(provider=FakeFal())
    parent_id = upload_long(world, provider="fal")
    world.settle()
    ids = world.jobs.get(parent_id).extra["part_job_ids"]
    world.end_part(ids[0])
    world.settle()

    outcome = cancel_job(world)(parent_id).as_dict()

    assert outcome["status"] == "CANCELLED"
    assert [(p["job_id"], p["status"]) for p in outcome["parts"]] == [
        (ids[0], "SUCCEEDED"), (ids[1], "CANCELLED"), (ids[2], "CANCELLED")]
    assert outcome["detail"] == "cancelled the long clip; 2 of 3 parts cancelled, 1 had already ended"
    assert len(world.provider.cancels) == 2
    world.settle()
    assert world.jobs.get(parent_id).status == JobStatus.CANCELLED and world.media.stitched == []


def test_a_parent_cancelled_at_kling_says_which_parts_will_still_be_billed(world):
    parent_id = upload_long(world)
    world.settle()

    outcome = cancel_job(world)(parent_id)

    assert outcome.status == "CANCELLED"
    assert {p["status"] for p in outcome.parts} == {"SUBMITTED"}
    assert all(p["detail"].startswith("CANCEL_NOT_SUPPORTED:") for p in outcome.parts)
    assert outcome.detail.endswith("3 already with a provider that cannot cancel will finish and be billed")
    for job_id in world.jobs.get(parent_id).extra["part_job_ids"]:
        world.end_part(job_id)
    world.settle()
    assert world.jobs.get(parent_id).status == JobStatus.CANCELLED and world.media.stitched == []


def test_parts_not_yet_sent_when_the_parent_is_cancelled_never_reach_the_provider(world):
    parent_id = upload_long(world)
    world.drain()
    world.run_prepare_queue()  # the split: three parts exist, their submit messages are queued
    ids = world.jobs.get(parent_id).extra["part_job_ids"]
    assert [world.jobs.get(i).status for i in ids] == [JobStatus.RECEIVED] * 3

    outcome = cancel_job(world)(parent_id)
    assert "3 still being checked will be cancelled before they are sent" in outcome.detail
    world.settle()

    assert world.provider.requests == []
    parts = [world.jobs.get(i) for i in ids]
    assert {p.status for p in parts} == {JobStatus.CANCELLED}
    assert parts[0].error_message == f"its long clip {parent_id} was cancelled before this part was sent"
