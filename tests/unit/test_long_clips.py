"""Long clips on numbers: the long_clip / seam / overlap fields, the decision at submit (reject with
a priced hint, trim, segment, the cap), and the planner that chooses the parts."""

from __future__ import annotations

import pytest

from clipedit.domain.errors import MediaRejected, SpecError
from clipedit.domain.media import O3_LIMITS, VideoFacts
from clipedit.domain.prepare_plan import parse_framing, plan_prepare
from clipedit.domain.segments import (
    SegmentRequest,
    decide_long_clip,
    estimate_cost,
    part_framing,
    plan_segments,
    stitch_plan_from_record,
    stitch_plan_to_record,
)
from clipedit.usecases.intake import metadata_layer


def facts(**overrides) -> VideoFacts:
    base = dict(container="mp4", duration_seconds=25.0, width=1280, height=720, fps=24.0, video_codec="avc1",
                has_audio=True, size_bytes=5_000_000, bytes_read=1000)
    return VideoFacts(**{**base, **overrides})


def lengths(plan) -> list[float]:
    return [round(p.length, 3) for p in plan.parts]


# --- fields ---------------------------------------------------------------------------------------


def test_long_clip_fields_parse_and_keep_defaults_off_the_record():
    framing = parse_framing({"long_clip": "Segment", "seam": "crossfade", "overlap": "0.8"})
    assert (framing.long_clip, framing.seam, framing.overlap) == ("segment", "crossfade", 0.8)
    assert framing.to_record() == {"focus": "center", "normalize": True, "video_mode": "edit",
                                   "long_clip": "segment", "seam": "crossfade", "overlap": 0.8}
    assert parse_framing({"long_clip": "reject", "seam": "cut"}).is_default


@pytest.mark.parametrize("layer, code", [
    ({"long_clip": "split"}, "INVALID_LONG_CLIP"),
    ({"seam": "dissolve"}, "INVALID_SEAM"),
    ({"overlap": "lots"}, "INVALID_OVERLAP"),
    ({"overlap": 3}, "INVALID_OVERLAP"),
    ({"overlap": "nan"}, "INVALID_OVERLAP"),
    ({"overlap": True}, "INVALID_OVERLAP"),
    ({"long_clip": "segment", "video_mode": "reference", "aspect_ratio": "16:9"}, "LONG_CLIP_NOT_APPLICABLE"),
])
def test_bad_long_clip_fields_have_their_codes(layer, code):
    with pytest.raises(SpecError) as raised:
        parse_framing(layer)
    assert raised.value.code == code


def test_metadata_names_are_hyphenated():
    layer, _ = metadata_layer({"prompt": "p", "long-clip": "segment", "seam": "crossfade", "overlap": "1"})
    assert parse_framing(layer).long_clip == "segment" and parse_framing(layer).overlap == 1.0


# --- the planner ------------------------------------------------------------------------------------


def test_25_s_without_candidates_is_three_even_parts():
    plan = plan_segments(25.0)
    assert lengths(plan) == pytest.approx([8.333, 8.333, 8.334], abs=0.002)
    assert plan.seam == "cut" and plan.overlap == 0.0 and plan.duration == 25.0


def test_scene_cuts_win_over_keyframes_and_even_lengths():
    plan = plan_segments(25.0, scene_cuts=[7.0, 16.5], keyframes=[8.0, 16.0])
    assert plan.boundaries == (7.0, 16.5)
    plan = plan_segments(25.0, keyframes=[9.0, 18.0])
    assert plan.boundaries == (9.0, 18.0)


def test_candidates_that_would_make_a_short_or_long_part_are_not_used():
    # 1.0 would leave a 1 s part, 12.0 a 12 s one: neither is allowed; fewest parts still wins.
    plan = plan_segments(25.0, scene_cuts=[1.0, 12.0, 24.0])
    assert len(plan.parts) == 3
    assert all(3.0 - 1e-6 <= part.length <= 10.0 + 1e-6 for part in plan.parts)


@pytest.mark.parametrize("duration", [10.5, 13.0, 20.01, 31.0, 59.9, 120.0])
def test_every_part_is_3_to_10_s_and_they_tile_the_clip(duration):
    plan = plan_segments(duration, keyframes=[k * 2.0 for k in range(70)])
    assert all(3.0 - 1e-6 <= part.length <= 10.0 + 1e-6 for part in plan.parts)
    assert plan.parts[0].start == 0.0 and plan.parts[-1].end == round(duration, 3)
    for left, right, seam in zip(plan.parts, plan.parts[1:], plan.boundaries):
        assert left.end == right.start == seam


def test_crossfade_windows_reach_half_the_overlap_past_each_seam_and_stay_within_limits():
    plan = plan_segments(29.9, seam="crossfade", overlap=0.5)
    assert plan.seam == "crossfade" and plan.overlap == 0.5
    assert len(plan.parts) == 4  # 3 x 10 s cores would leave no room for the overlaps
    for left, right, seam in zip(plan.parts, plan.parts[1:], plan.boundaries):
        assert left.end == pytest.approx(seam + 0.25) and right.start == pytest.approx(seam - 0.25)
    assert all(3.0 <= part.length <= 10.0 + 1e-6 for part in plan.parts)


def test_a_clip_that_fits_is_one_part():
    assert lengths(plan_segments(9.0)) == [9.0]


def test_the_plan_survives_the_job_record():
    plan = plan_segments(25.0, seam="crossfade", overlap=0.6, audio_offset=2.0, width=1280, height=720)
    assert stitch_plan_from_record(stitch_plan_to_record(plan)) == plan


def test_cost_is_each_part_rounded_to_the_second_at_the_mode_rate():
    plan = plan_segments(25.0)
    estimate = estimate_cost(plan, mode="pro")
    assert (estimate.parts, estimate.billed_seconds, estimate.units) == (3, 24, 28.8)  # 8.33 s bills 8 s
    crossfade = estimate_cost(plan_segments(25.0, seam="crossfade", overlap=1.0), mode="std")
    assert crossfade.billed_seconds == 27 and crossfade.units == 24.3


# --- the decision at submit --------------------------------------------------------------------------


def test_default_reject_names_the_choices_and_the_cost_of_segment():
    with pytest.raises(MediaRejected) as raised:
        decide_long_clip(facts(), parse_framing({}), O3_LIMITS, max_clip_seconds=120, mode="pro")
    assert raised.value.code == "CLIP_TOO_LONG"
    assert "long_clip: trim" in raised.value.message and "long_clip: segment" in raised.value.message
    assert "3 parts" in raised.value.message and "28.8 units" in raised.value.message


def test_trim_keeps_the_first_allowed_seconds_after_the_users_trim():
    framing = decide_long_clip(facts(), parse_framing({"long_clip": "trim", "trim": "2-24"}), O3_LIMITS,
                               max_clip_seconds=120, mode="pro")
    assert framing.trim == (2.0, 12.0)


def test_segment_returns_the_kept_stretch_and_parts_carry_the_parents_framing():
    framing = parse_framing({"long_clip": "segment", "trim": "2-24", "platform": "reels"})
    request = decide_long_clip(facts(), framing, O3_LIMITS, max_clip_seconds=120, mode="pro")
    assert request == SegmentRequest(2.0, 24.0)
    part = part_framing(framing, plan_segments(request.length).parts[1], trim_start=request.start)
    assert part.platform == "reels" and part.long_clip is None and part.trim[0] > 2.0


@pytest.mark.parametrize("duration, framing, code", [
    (130.0, {"long_clip": "segment"}, "CLIP_OVER_MAX_SECONDS"),
    # 3.005 s asked, the clip ends 0.045 s early: 2.96 s kept (a trim under 3 s is refused at intake)
    (25.03, {"long_clip": "segment", "trim": "22.07-25.075"}, "TRIM_TOO_SHORT"),
    (25.0, {"long_clip": "segment", "trim": "26-40"}, "TRIM_OUTSIDE_CLIP"),
])
def test_segment_refusals(duration, framing, code):
    with pytest.raises(MediaRejected) as raised:
        # What submit does: the decision, then the normal plan for what fits in one edit.
        decided = decide_long_clip(facts(duration_seconds=duration), parse_framing(framing), O3_LIMITS,
                                   max_clip_seconds=120, mode="pro")
        plan_prepare(facts(duration_seconds=duration), decided, O3_LIMITS)
    assert raised.value.code == code


def test_a_clip_that_fits_is_left_to_the_normal_plan():
    framing = parse_framing({"long_clip": "segment"})
    assert decide_long_clip(facts(duration_seconds=9.0), framing, O3_LIMITS, max_clip_seconds=120,
                            mode="pro") is framing


def test_manifests_presets_variants_and_batch_columns_carry_the_fields():
    from clipedit.domain.batch import parse_csv
    from clipedit.domain.manifest import merge_layers, parse_manifest, parse_preset

    preset = parse_preset({"long_clip": "segment", "seam": "crossfade"}, name="long")
    manifest = parse_manifest({"video_url": "clips/a.mp4", "prompt": "p", "overlap": 0.8,
                               "variants": [{"name": "cut", "seam": "cut"}]})
    variant = manifest["variants"][0]
    framing = parse_framing(merge_layers(preset, {k: v for k, v in manifest.items() if k != "variants"}, variant))
    assert (framing.long_clip, framing.seam, framing.overlap) == ("segment", None, 0.8)
    (row,) = parse_csv(["video_url,prompt,long_clip,seam,overlap", "clips/a.mp4,p,segment,crossfade,1.5"])
    assert row.error is None
    assert parse_framing(row.layer) == parse_framing({"long_clip": "segment", "seam": "crossfade", "overlap": 1.5})
