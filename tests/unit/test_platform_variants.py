"""Platform variants on in-memory ports: the framing fields from every entry point, the plan the
submit step makes from the probed clip, the wait for the prepare step, and the provider call that
follows with the prepared clip (or with reference-mode fields)."""

from __future__ import annotations

import json

import pytest

from clipedit.adapters.fal import FalProvider, endpoint_for
from clipedit.adapters.kling import KlingProvider
from clipedit.domain.job import JobStatus
from clipedit.domain.media import O3_LIMITS, VideoFacts
from clipedit.domain.prepare_plan import parse_framing, plan_from_record, plan_prepare, plan_to_record
from clipedit.domain.errors import MediaRejected, SpecError
from clipedit.ports import EditRequest
from clipedit.usecases.prepare import PrepareClip, PrepareSettings
from tests.fakes import FakeFetcher
from tests.unit.test_submit import BUCKET, World

CLIP = "s3://inbox/incoming/clip.mp4?versionId=v1"


def facts(**overrides) -> VideoFacts:
    base = dict(container="mp4", duration_seconds=9.0, width=1920, height=1080, fps=30.0, video_codec="avc1",
                has_audio=True, size_bytes=5_000_000, bytes_read=1000)
    return VideoFacts(**{**base, **overrides})


class FakeTransformer:
    def __init__(self, fail: MediaRejected | None = None) -> None:
        self.plans = []
        self.fail = fail

    def prepare(self, source_path, target_path, plan):
        self.plans.append(plan)
        if self.fail:
            raise self.fail
        with open(source_path, "rb") as src, open(target_path, "wb") as dst:
            dst.write(b"prepared:" + src.read())
        return {"width": plan.output_width, "height": plan.output_height, "duration_seconds": 5.0}


class Storage:
    """The fake object store, plus the download the prepare step needs."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def download(self, ref, path):
        body = self._store.objects[(ref.bucket, ref.key)]["body"]
        with open(path, "wb") as out:
            out.write(body)
        return len(body)


@pytest.fixture
def world():
    return World()


def prepare_step(world, transformer=None):
    return PrepareClip(jobs=world.jobs, storage=Storage(world.storage), fetcher=FakeFetcher(), queue=world.queue,
                       transformer=transformer or FakeTransformer(), recorder=world.submit_job._recorder,
                       clock=world.clock, settings=PrepareSettings(prepared_bucket=BUCKET))


# --- the fields, from every entry point -------------------------------------------------------


def test_metadata_fields_reach_the_job_record(world):
    (outcome,) = world.upload(metadata={"prompt": "p", "platform": "reels", "focus": "auto", "trim": "1-6"})
    job = world.jobs.get(outcome.job_id)
    assert job.framing == {"platform": "reels", "aspect_ratio": "9:16", "focus": "auto", "trim": "1-6",
                           "normalize": True, "video_mode": "edit"}


def test_manifest_variants_give_one_job_per_platform(world):
    world.storage.put(BUCKET, "incoming/clip.mp4", b"x" * 1000)
    manifest = {"video_url": "incoming/clip.mp4", "prompt": "Swap the background",
                "variants": [{"name": "reels", "platform": "reels"}, {"name": "youtube", "platform": "youtube"},
                             {"name": "square", "platform": "square", "reframe": "pad"}]}
    world.storage.put(BUCKET, "jobs/spec.json", json.dumps(manifest).encode())
    world.upload(key="jobs/spec.json", metadata=None, body=json.dumps(manifest).encode())
    jobs = sorted(world.jobs.items.values(), key=lambda j: j.variant)
    assert [(j.variant, j.framing["aspect_ratio"], j.framing.get("reframe")) for j in jobs] == [
        ("reels", "9:16", None), ("square", "1:1", "pad"), ("youtube", "16:9", None)]
    assert sorted(j.planned_output_key for j in jobs) == [
        "edited/incoming/clip.reels.mp4", "edited/incoming/clip.square.mp4", "edited/incoming/clip.youtube.mp4"]


@pytest.mark.parametrize(("metadata", "code"), [
    ({"platform": "vine"}, "UNKNOWN_PLATFORM"),
    ({"aspect-ratio": "4:3"}, "INVALID_ASPECT_RATIO"),
    ({"platform": "reels", "aspect-ratio": "16:9"}, "ASPECT_RATIO_CONFLICT"),
    ({"aspect-ratio": "9:16", "reframe": "stretch"}, "INVALID_REFRAME"),
    ({"aspect-ratio": "9:16", "focus": "1.2,0.5"}, "INVALID_FOCUS"),
    ({"aspect-ratio": "9:16", "focus": "left"}, "INVALID_FOCUS"),
    ({"trim": "2-4"}, "TRIM_TOO_SHORT"),
    ({"trim": "6-2"}, "INVALID_TRIM"),
    ({"trim": "soon"}, "INVALID_TRIM"),
    ({"normalize": "maybe"}, "INVALID_NORMALIZE"),
    ({"video-mode": "remix"}, "INVALID_VIDEO_MODE"),
    ({"video-mode": "reference", "aspect-ratio": "9:16", "reframe": "pad"}, "REFRAME_NOT_APPLICABLE"),
    ({"video-mode": "reference"}, "ASPECT_RATIO_REQUIRED"),  # Kling requires the ratio
    ({"video-mode": "reference", "aspect-ratio": "1:1", "duration": "12"}, "DURATION_OUT_OF_RANGE"),
    ({"video-mode": "reference", "aspect-ratio": "1:1", "shot-type": "customize"}, "SHOT_TYPE_NOT_SUPPORTED"),
    ({"duration": "5"}, "DURATION_NOT_APPLICABLE"),
    ({"reframe": "pad"}, "REFRAME_WITHOUT_RATIO"),
])
def test_bad_framing_is_rejected_before_any_spend(world, metadata, code):
    world.upload(metadata={"prompt": "p", **metadata})
    (job,) = world.jobs.items.values()
    assert (job.status, job.error_code) == (JobStatus.REJECTED, code)
    assert world.provider.requests == [] and world.prepare_queue.sent == []


def test_fal_allows_longer_reference_shots_and_auto_ratio():
    from clipedit.domain.prepare_plan import check_provider_framing

    check_provider_framing(parse_framing({"video_mode": "reference", "duration": "15"}), provider="fal", model="o3")
    with pytest.raises(SpecError) as refused:
        check_provider_framing(parse_framing({"video_mode": "reference", "duration": "16"}), provider="fal", model="o3")
    assert refused.value.code == "DURATION_OUT_OF_RANGE"
    with pytest.raises(SpecError) as refused:  # O1 stops at 10 s on fal too
        check_provider_framing(parse_framing({"video_mode": "reference", "duration": "15"}), provider="fal", model="o1")
    assert refused.value.code == "DURATION_OUT_OF_RANGE"


# --- the plan ---------------------------------------------------------------------------------


def test_a_clip_that_fits_and_asks_nothing_needs_no_prepare():
    assert plan_prepare(facts(), parse_framing({}), O3_LIMITS) is None


def test_reels_from_landscape_crops_a_9_16_window_and_scales_to_1080x1920():
    plan = plan_prepare(facts(), parse_framing({"platform": "reels"}), O3_LIMITS)
    assert (plan.reframe, plan.crop_width, plan.crop_height) == ("crop", 608, 1080)
    assert (plan.output_width, plan.output_height) == (1080, 1920)
    assert plan_from_record(json.loads(json.dumps(plan_to_record(plan)))) == plan  # survives the job record


def test_pad_keeps_the_whole_frame_on_a_canvas_of_the_asked_ratio():
    plan = plan_prepare(facts(width=1080, height=1920), parse_framing({"aspect_ratio": "1:1", "reframe": "pad"}), O3_LIMITS)
    assert plan.reframe == "pad" and plan.crop_width is None
    assert plan.output_width == plan.output_height and plan.output_height >= 1080


@pytest.mark.parametrize(("overrides", "expect"), [
    ({"width": 3840, "height": 2160}, lambda p: max(p.output_width, p.output_height) <= 2160),
    ({"width": 854, "height": 480}, lambda p: min(p.output_width, p.output_height) >= 720),
    ({"fps": 90.0}, lambda p: p.fps == 45.0),
    ({"fps": 120.0}, lambda p: p.fps == 60.0),
    ({"fps": 15.0}, lambda p: p.fps == 30.0),
    ({"width": 1080, "height": 1920, "rotation_degrees": 90}, lambda p: p.rotation_degrees == 90),
    ({"video_codec": "hvc1"}, lambda p: "re-encode hvc1 to H.264" in p.reasons),
    ({"size_bytes": 300_000_000}, lambda p: p.max_output_bytes <= 200_000_000),
])
def test_normalize_fixes_what_can_be_fixed(overrides, expect):
    plan = plan_prepare(facts(**overrides), parse_framing({}), O3_LIMITS)
    assert plan is not None and expect(plan), plan


@pytest.mark.parametrize(("overrides", "code"), [
    ({"width": 3840, "height": 2160}, "RESOLUTION_TOO_HIGH"),
    ({"width": 854, "height": 480}, "RESOLUTION_TOO_LOW"),
    ({"fps": 90.0}, "FPS_TOO_HIGH"),
    ({"width": 1080, "height": 1920, "rotation_degrees": 90}, "CLIP_ROTATED"),
])
def test_normalize_false_keeps_todays_rejections(overrides, code):
    with pytest.raises(MediaRejected) as rejected:
        plan_prepare(facts(**overrides), parse_framing({"normalize": False}), O3_LIMITS)
    assert rejected.value.code == code


@pytest.mark.parametrize(("framing", "overrides", "code"), [
    ({"trim": "8-12"}, {}, "TRIM_OUTSIDE_CLIP"),
    ({"trim": "10-14"}, {}, "TRIM_OUTSIDE_CLIP"),
    ({}, {"duration_seconds": 2.0}, "CLIP_TOO_SHORT"),
    ({}, {"duration_seconds": 25.0}, "CLIP_TOO_LONG"),
    ({"trim": "0-12"}, {"duration_seconds": 25.0}, "CLIP_TOO_LONG"),
])
def test_what_cannot_be_fixed_is_rejected_with_a_hint(framing, overrides, code):
    with pytest.raises(MediaRejected) as rejected:
        plan_prepare(facts(**overrides), parse_framing(framing), O3_LIMITS)
    assert rejected.value.code == code
    if code == "CLIP_TOO_LONG":
        assert "trim" in rejected.value.message


def test_a_long_clip_with_a_trim_inside_the_limits_is_prepared():
    plan = plan_prepare(facts(duration_seconds=25.0), parse_framing({"trim": "1-6"}), O3_LIMITS)
    assert (plan.trim_start, plan.trim_end) == (1.0, 6.0)


# --- the flow: submit -> prepare -> submit ----------------------------------------------------


def test_a_job_waits_for_its_prepared_clip_and_is_then_submitted_with_it(world):
    world.storage.put(BUCKET, "incoming/clip.mp4", b"original", {"prompt": "p", "platform": "reels"})
    (outcome,) = world.dispatch.upload(
        __import__("clipedit.domain.uploads", fromlist=["UploadedObject"]).UploadedObject(
            BUCKET, "incoming/clip.mp4", "v1", '"e"', "seq", 8))
    job = world.jobs.get(outcome.job_id)
    assert (outcome.status, job.status) == ("WAITING", JobStatus.QUEUED)
    assert job.prepare["status"] == "pending" and job.wait_reason.startswith("preparing the clip")
    assert world.prepare_queue.sent == [{"clipedit": "prepare", "job_id": job.job_id}]
    assert world.provider.requests == []
    # A redelivered submit message while the prepare runs does not ask for a second prepare.
    world.dispatch.message({"clipedit": "submit", "job_id": job.job_id, "attempt": 1})
    assert len(world.prepare_queue.sent) == 1

    transformer = FakeTransformer()
    world.queue.sent.clear()
    result = prepare_step(world, transformer)(job.job_id)
    assert result.status == "PREPARED"
    assert (transformer.plans[0].output_width, transformer.plans[0].output_height) == (1080, 1920)
    assert world.storage.objects[(BUCKET, f"prepared/{job.job_id}.mp4")]["body"] == b"prepared:original"
    assert world.storage.objects[(BUCKET, "incoming/clip.mp4")]["body"] == b"original"  # never touched
    assert world.queue.sent == [{"clipedit": "submit", "job_id": job.job_id, "wake": True}]

    world.drain()
    job = world.jobs.get(job.job_id)
    assert job.status == JobStatus.SUBMITTED
    (request,) = world.provider.requests
    assert request.video_url.startswith(f"https://presigned.example/{BUCKET}/prepared/{job.job_id}.mp4")
    assert job.prepare["facts"]["width"] == 1080 and job.prepare["key"] == f"prepared/{job.job_id}.mp4"


def test_a_clip_that_fails_to_decode_is_rejected_by_the_prepare_step(world):
    world.storage.put(BUCKET, "incoming/clip.mp4", b"garbage", {"prompt": "p", "platform": "square"})
    from clipedit.domain.uploads import UploadedObject
    (outcome,) = world.dispatch.upload(UploadedObject(BUCKET, "incoming/clip.mp4", "v1", '"e"', "seq", 7))
    result = prepare_step(world, FakeTransformer(MediaRejected("broken", code="CLIP_UNDECODABLE")))(outcome.job_id)
    job = world.jobs.get(outcome.job_id)
    assert (result.status, job.status, job.error_code) == ("REJECTED", JobStatus.REJECTED, "CLIP_UNDECODABLE")
    assert world.provider.requests == []


def test_a_prepare_message_for_a_finished_job_does_nothing(world):
    (outcome,) = world.upload(metadata={"prompt": "p"})
    assert prepare_step(world)(outcome.job_id).detail == "nothing to prepare"


# --- reference mode on the wire ---------------------------------------------------------------


def test_reference_mode_reaches_the_provider_without_a_prepare(world):
    (outcome,) = world.upload(metadata={"prompt": "Next shot of @Video1", "video-mode": "reference",
                                        "aspect-ratio": "1:1", "duration": "5"})
    (request,) = world.provider.requests
    assert (request.video_mode, request.aspect_ratio, request.duration) == ("reference", "1:1", 5)
    assert world.prepare_queue.sent == []


def test_kling_body_for_reference_mode():
    body = KlingProvider.create_body(EditRequest(external_id="j", prompt="Next shot of @Video1", video_url="https://v",
                                                 model="o3", mode="pro", keep_audio=True, video_mode="reference",
                                                 aspect_ratio="9:16", duration=5))
    assert body["video_list"][0]["refer_type"] == "feature"
    assert (body["aspect_ratio"], body["duration"]) == ("9:16", "5")
    edit = KlingProvider.create_body(EditRequest(external_id="j", prompt="p", video_url="https://v", model="o3",
                                                 mode="pro", keep_audio=True))
    assert edit["video_list"][0]["refer_type"] == "base" and "aspect_ratio" not in edit


def test_fal_reference_endpoint_and_body():
    assert endpoint_for("o3", "std", "reference") == "fal-ai/kling-video/o3/standard/video-to-video/reference"
    assert endpoint_for("o1", "pro", "reference") == "fal-ai/kling-video/o1/video-to-video/reference"
    body = FalProvider.create_body(EditRequest(external_id="j", prompt="p", video_url="https://v", model="o3",
                                               mode="pro", keep_audio=True, video_mode="reference", duration=12,
                                               shot_type="customize"))
    assert (body["aspect_ratio"], body["duration"], body["shot_type"]) == ("auto", "12", "customize")
