"""clipedit_media.stitch_parts and find_cut_candidates on real clips made by PyAV: every output is
decoded again and checked frame by frame (which part, which of its frames, what mix) and sample by
sample (the source's tone throughout, its beep at the same instant)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from clipedit.domain.stitching import PartWindow, StitchPlan
from clipedit_media.cuts import CutAnalysisError, find_cut_candidates
from clipedit_media.stitch import StitchError, stitch_parts
from tests.media_fixtures import beep_onset
from tests.stitch_fixtures import (
    BEEP_LEVEL,
    TONE_LEVEL,
    audio_envelope,
    body_colour,
    read_barcode,
    write_part,
    write_scene_clip,
    write_source,
)

FPS = 24
RED, GREEN, BLUE = (200, 30, 30), (30, 200, 30), (30, 30, 200)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stitch")


@pytest.fixture(scope="module")
def source(clips: Path) -> Path:
    return write_source(clips / "source.mp4", seconds=6.0, beep_at=3.0)


def _plan(windows: list[tuple[float, float]], boundaries: tuple[float, ...], duration: float = 6.0,
          **kwargs: object) -> StitchPlan:
    parts = tuple(PartWindow(i, start, end) for i, (start, end) in enumerate(windows))
    return StitchPlan(parts=parts, boundaries=boundaries, duration=duration, **kwargs)  # type: ignore[arg-type]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as inp:
        return [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]


def _near(pixel: np.ndarray, colour: tuple[int, int, int], tol: float = 12) -> bool:
    return bool(np.all(np.abs(pixel - np.array(colour)) < tol))


def _assert_each_frame_from(frames: list[np.ndarray], plan: StitchPlan, colours: list[tuple[int, int, int]]) -> None:
    """Output frame n shows part i's frame at local time n/24 - start_i, for i the part that owns n/24."""
    edges = (0.0, *plan.boundaries, plan.duration)
    for n, image in enumerate(frames):
        t = n / FPS
        i = next(k for k in range(len(plan.parts)) if edges[k] <= t + 1e-9 < edges[k + 1])
        local = round((t - plan.parts[i].start) * FPS)
        assert _near(body_colour(image), colours[i]), (n, i, body_colour(image))
        assert read_barcode(image) == local, (n, i, read_barcode(image), local)


def _assert_source_sound(path: Path, duration: float, beep_at: float) -> None:
    envelope, start = audio_envelope(path)
    assert start == pytest.approx(0.0, abs=0.001)
    assert len(envelope) * 0.02 == pytest.approx(duration, abs=0.03)  # the track is as long as the picture
    steady = np.delete(envelope[:-1], np.s_[int(beep_at / 0.02) - 1: int((beep_at + 0.1) / 0.02) + 2])
    assert steady.min() > 0.75 * TONE_LEVEL  # the tone never drops out, not at the seams either
    assert steady.max() < 1.25 * TONE_LEVEL  # and no part's own audio (a 0.9 buzz) got in
    assert beep_onset(path, threshold=(TONE_LEVEL + BEEP_LEVEL) / 2) == pytest.approx(beep_at, abs=0.005)


def test_cut_on_keyframes_copies_the_parts_packets_frame_accurately(clips: Path, source: Path) -> None:
    # Part 1 was edited over [1, 4] (one second of lead-in): its stretch starts at its keyframe 24.
    parts = [write_part(clips / "copy-0.mp4", RED, seconds=2.0, gop=24, bframes=2, with_audio=True),
             write_part(clips / "copy-1.mp4", GREEN, seconds=3.0, gop=24, bframes=2, with_audio=True),
             write_part(clips / "copy-2.mp4", BLUE, seconds=2.0, gop=24, bframes=2, with_audio=True)]
    plan = _plan([(0, 2), (1, 4), (4, 6)], (2.0, 4.0))
    dst = clips / "copied.mp4"
    result = stitch_parts([str(p) for p in parts], str(source), str(dst), plan)
    assert result.video_copied, result.method
    assert (result.frames, result.width, result.height, result.audio) == (144, 320, 180, True)
    assert result.duration == pytest.approx(6.0, abs=1 / FPS)
    frames = _frames(dst)
    assert len(frames) == 144
    _assert_each_frame_from(frames, plan, [RED, GREEN, BLUE])
    _assert_source_sound(dst, 6.0, beep_at=3.0)


def test_cut_off_keyframe_is_re_encoded_frame_accurately(clips: Path, source: Path) -> None:
    parts = [write_part(clips / "re-0.mp4", RED, seconds=2.0, gop=24),
             write_part(clips / "re-1.mp4", GREEN, seconds=2.5, gop=24),
             write_part(clips / "re-2.mp4", BLUE, seconds=2.0, gop=24)]
    plan = _plan([(0, 2), (1.5, 4), (4, 6)], (1.5, 4.0))  # part 0 stops mid-GOP
    dst = clips / "re-encoded.mp4"
    result = stitch_parts([str(p) for p in parts], str(source), str(dst), plan)
    assert not result.video_copied and "no keyframe" in result.method
    frames = _frames(dst)
    assert len(frames) == result.frames == 144
    _assert_each_frame_from(frames, plan, [RED, GREEN, BLUE])
    _assert_source_sound(dst, 6.0, beep_at=3.0)


def test_odd_length_is_kept_within_a_frame_and_the_trimmed_source_stays_in_sync(clips: Path) -> None:
    # The user trimmed 1.0 s off an 8 s source: the output's 0 is the source's 1.0, the beep (4.0) lands at 3.0.
    source = write_source(clips / "source-8s.mp4", seconds=8.0, beep_at=4.0)
    parts = [write_part(clips / "odd-0.mp4", RED, seconds=3.3), write_part(clips / "odd-1.mp4", GREEN, seconds=2.9)]
    plan = _plan([(0, 3.3), (3.3, 6.2)], (3.3,), duration=6.2, audio_offset=1.0)
    dst = clips / "odd.mp4"
    result = stitch_parts([str(p) for p in parts], str(source), str(dst), plan)
    assert abs(result.frames - 6.2 * FPS) <= 1 and len(_frames(dst)) == result.frames
    _assert_source_sound(dst, result.frames / FPS, beep_at=3.0)


def test_crossfade_mixes_the_parts_linearly_across_the_overlap_and_keeps_the_length(clips: Path, source: Path) -> None:
    parts = [write_part(clips / "xf-0.mp4", RED, seconds=2.5, gop=24),
             write_part(clips / "xf-1.mp4", GREEN, seconds=3.0, gop=24),
             write_part(clips / "xf-2.mp4", BLUE, seconds=2.5, gop=24)]
    plan = _plan([(0, 2.5), (1.5, 4.5), (3.5, 6)], (2.0, 4.0), seam="crossfade", overlap=0.5)
    dst = clips / "crossfade.mp4"
    result = stitch_parts([str(p) for p in parts], str(source), str(dst), plan)
    assert not result.video_copied and result.frames == 144
    frames = _frames(dst)
    assert len(frames) == 144
    assert _near(body_colour(frames[41]), RED) and _near(body_colour(frames[54]), GREEN)  # outside the overlap
    middle = (np.array(RED) + np.array(GREEN)) / 2
    assert np.all(np.abs(body_colour(frames[48]) - middle) < 12)  # t = 2.0, the seam: half and half
    greens = [body_colour(frames[n])[1] for n in range(42, 54)]  # t = 1.75 .. 2.2083: the overlap
    steps = np.diff(greens)
    assert np.all(steps > 0) and np.ptp(steps) < 6  # rising at an even pace: a linear blend
    assert _near(body_colour(frames[96]), (np.array(GREEN) + np.array(BLUE)) / 2)  # the second seam too
    assert read_barcode(frames[30]) == 30 and read_barcode(frames[60]) == round((60 / FPS - 1.5) * FPS)
    _assert_source_sound(dst, 6.0, beep_at=3.0)


def test_parts_of_another_size_are_scaled_to_the_output(clips: Path, source: Path) -> None:
    parts = [write_part(clips / "size-0.mp4", RED, seconds=2.0, gop=24),
             write_part(clips / "size-1.mp4", GREEN, seconds=2.0, gop=24, width=480, height=270),
             write_part(clips / "size-2.mp4", BLUE, seconds=2.0, gop=24)]
    plan = _plan([(0, 2), (2, 4), (4, 6)], (2.0, 4.0))
    dst = clips / "scaled.mp4"
    result = stitch_parts([str(p) for p in parts], str(source), str(dst), plan)
    assert not result.video_copied and "differ" in result.method
    frames = _frames(dst)
    assert {f.shape for f in frames} == {(180, 320, 3)}
    _assert_each_frame_from(frames, plan, [RED, GREEN, BLUE])  # the barcode survives the scaling


def test_parts_encoded_differently_are_re_encoded_not_copied(clips: Path) -> None:
    # Same size and GOP, another crf: x264's picture parameter set (in the extradata) differs, so one
    # track header cannot describe both parts' packets.
    parts = [write_part(clips / "crf-0.mp4", RED, seconds=2.0, gop=24),
             write_part(clips / "crf-1.mp4", GREEN, seconds=2.0, gop=24, crf=40)]
    plan = _plan([(0, 2), (2, 4)], (2.0,), duration=4.0)
    result = stitch_parts([str(p) for p in parts], None, str(clips / "crf.mp4"), plan)
    assert not result.video_copied and "codec parameters differ" in result.method
    _assert_each_frame_from(_frames(clips / "crf.mp4"), plan, [RED, GREEN])


def test_a_part_at_another_frame_rate_is_resampled_to_the_plans(clips: Path) -> None:
    parts = [write_part(clips / "rate-0.mp4", RED, seconds=2.0, gop=24),
             write_part(clips / "rate-1.mp4", GREEN, seconds=2.0, fps=30)]
    plan = _plan([(0, 2), (2, 4)], (2.0,), duration=4.0)
    dst = clips / "rate.mp4"
    result = stitch_parts([str(p) for p in parts], None, str(dst), plan)
    assert not result.video_copied  # another time base and rate: never one copied track
    frames = _frames(dst)
    assert len(frames) == result.frames == 96
    # output frame n (t = n/24) shows the 30 fps part's last frame starting by t + half an output frame
    shown = [read_barcode(f) for f in frames[48:]]
    assert shown == [int(((n / FPS - 2.0) + 0.5 / FPS) * 30 + 1e-9) for n in range(48, 96)]


def test_an_output_size_in_the_plan_scales_every_part(clips: Path) -> None:
    parts = [write_part(clips / "big-0.mp4", RED, seconds=2.0, gop=24), write_part(clips / "big-1.mp4", GREEN, seconds=2.0, gop=24)]
    plan = _plan([(0, 2), (2, 4)], (2.0,), duration=4.0, width=640, height=360, keep_audio=False)
    dst = clips / "big.mp4"
    result = stitch_parts([str(p) for p in parts], None, str(dst), plan)
    assert (result.width, result.height, result.video_copied, result.audio) == (640, 360, False, False)
    frames = _frames(dst)
    assert frames[0].shape == (360, 640, 3) and _near(body_colour(frames[60]), GREEN)
    with av.open(str(dst)) as inp:
        assert not inp.streams.audio


def test_keep_audio_false_writes_no_audio_track(clips: Path, source: Path) -> None:
    parts = [write_part(clips / "mute-0.mp4", RED, seconds=3.0, gop=24), write_part(clips / "mute-1.mp4", GREEN, seconds=3.0, gop=24)]
    dst = clips / "mute.mp4"
    result = stitch_parts([str(p) for p in parts], str(source), str(dst), _plan([(0, 3), (3, 6)], (3.0,), keep_audio=False))
    assert result.video_copied and not result.audio
    with av.open(str(dst)) as inp:
        assert not inp.streams.audio and inp.streams.video[0].frames == 144


def test_a_missing_part_is_named_and_leaves_no_output(clips: Path, source: Path) -> None:
    parts = [write_part(clips / "miss-0.mp4", RED, seconds=3.0), clips / "never-made.mp4"]
    dst = clips / "missing.mp4"
    with pytest.raises(StitchError, match=r"part 1 is missing: .*never-made\.mp4"):
        stitch_parts([str(p) for p in parts], str(source), str(dst), _plan([(0, 3), (3, 6)], (3.0,)))
    assert not dst.exists()


def test_an_undecodable_part_is_named(clips: Path, source: Path) -> None:
    junk = clips / "junk.mp4"
    junk.write_text("not a video\n" * 100)
    parts = [junk, write_part(clips / "junk-1.mp4", GREEN, seconds=3.0)]
    with pytest.raises(StitchError, match=r"part 0 is not a readable video"):
        stitch_parts([str(p) for p in parts], str(source), str(clips / "junk-out.mp4"), _plan([(0, 3), (3, 6)], (3.0,)))


def test_a_part_shorter_than_its_window_is_named(clips: Path, source: Path) -> None:
    parts = [write_part(clips / "short-0.mp4", RED, seconds=3.0), write_part(clips / "short-1.mp4", GREEN, seconds=2.0)]
    dst = clips / "short.mp4"
    with pytest.raises(StitchError, match=r"part 1 is 2\.000 s long; its window needs 3\.000 s"):
        stitch_parts([str(p) for p in parts], str(source), str(dst), _plan([(0, 3), (3, 6)], (3.0,)))
    assert not dst.exists()


def test_a_part_short_by_less_than_a_frame_holds_its_last_frame(clips: Path) -> None:
    parts = [write_part(clips / "hold-0.mp4", RED, seconds=3.0), write_part(clips / "hold-1.mp4", GREEN, seconds=3.0 - 1 / FPS)]
    dst = clips / "hold.mp4"
    result = stitch_parts([str(p) for p in parts], None, str(dst), _plan([(0, 3), (3, 6)], (3.0,)))
    frames = _frames(dst)
    assert result.frames == len(frames) == 144
    assert read_barcode(frames[-1]) == read_barcode(frames[-2]) == 70  # 71 frames: the last one shown twice


def test_a_plan_that_contradicts_itself_is_a_value_error(clips: Path) -> None:
    part = write_part(clips / "plan-0.mp4", RED, seconds=3.0)
    with pytest.raises(ValueError, match="does not cover"):
        stitch_parts([str(part), str(part)], None, str(clips / "plan.mp4"), _plan([(0, 3), (3.5, 6)], (3.0,)))
    with pytest.raises(ValueError, match="2 parts but 1"):
        stitch_parts([str(part)], None, str(clips / "plan.mp4"), _plan([(0, 3), (3, 6)], (3.0,)))


# ---------------------------------------------------------------------------------------------
# Cut candidates


def test_a_hard_scene_change_is_found_within_a_frame_and_a_flash_is_not(clips: Path) -> None:
    path = write_scene_clip(clips / "scenes.mp4", seconds=4.0, cut_at=2.5, fps=30, gop=30, flash_at=1.0)
    found = find_cut_candidates(str(path))
    assert len(found.scene_cuts) == 1, found
    assert found.scene_cuts[0] == pytest.approx(2.5, abs=1 / 30)
    assert found.scene_scores[0] > 0.08
    assert found.keyframes == pytest.approx((0.0, 1.0, 2.0, 3.0), abs=1e-3)  # the GOP of 30 at 30 fps
    assert (found.duration, found.fps) == (pytest.approx(4.0, abs=1e-3), 30.0)


def test_a_steady_pan_has_no_scene_cut(clips: Path) -> None:
    path = write_scene_clip(clips / "pan.mp4", seconds=3.0, cut_at=99.0, fps=30)
    assert find_cut_candidates(str(path)).scene_cuts == ()


def test_keyframes_alone_need_no_decode(clips: Path) -> None:
    path = write_part(clips / "gop.mp4", RED, seconds=5.0, gop=48)
    found = find_cut_candidates(str(path), scenes=False)
    assert found.keyframes == pytest.approx((0.0, 2.0, 4.0), abs=1e-3)
    assert found.scene_cuts == () and found.fps == 24.0


def test_not_a_video_is_a_cut_analysis_error(clips: Path) -> None:
    junk = clips / "junk-cuts.mp4"
    junk.write_text("nothing here\n" * 50)
    with pytest.raises(CutAnalysisError):
        find_cut_candidates(str(junk))
