"""clipedit_media.prepare_clip on real clips made by PyAV: every output is decoded again and
checked by its pixels, samples and boxes (sizes, where markers land, when the beep sounds)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from clipedit.adapters.range_readers import BytesRangeReader
from clipedit.domain.framing import PreparePlan, pad_layout
from clipedit.domain.media import probe_video
from clipedit_media.focus import MAX_STEP_FRACTION
from clipedit_media.prepare import PrepareError, prepare_clip
from tests.media_fixtures import (
    CORNER_COLOURS,
    beep_onset,
    decoded_frames,
    subject_left,
    top_level_types,
    write_flat_clip,
    write_noise_clip,
    write_prepare_clip,
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prepare")


def _colour_at(frame: np.ndarray, x: int, y: int, colour: tuple[int, int, int], tol: int = 60) -> bool:
    return bool(np.all(np.abs(frame[y, x].astype(int) - colour) < tol))


def _probe(path: Path):
    return probe_video(BytesRangeReader(path.read_bytes()))


def test_centre_crop_16_9_to_9_16_with_audio(clips: Path) -> None:
    src = write_prepare_clip(clips / "corners.mp4", corners=True, fps=24)
    dst = clips / "centre.mp4"
    result = prepare_clip(str(src), str(dst), PreparePlan(640, 360, 180, 320, reframe="crop", crop_width=202, crop_height=360))
    facts = _probe(dst)
    assert (facts.width, facts.height, facts.video_codec, facts.rotation_degrees) == (180, 320, "avc1", 0)
    assert facts.has_audio and result.has_audio
    assert abs(facts.duration_seconds - 3.2) <= 1 / 24 + 0.03
    assert top_level_types(dst.read_bytes()).index(b"moov") < top_level_types(dst.read_bytes()).index(b"mdat")  # faststart
    assert result.crop_x_range == (218, 218)  # (640 - 202) / 2 = 219 -> even
    first = decoded_frames(dst)[0]
    assert not any(_colour_at(first, x, y, c) for (x, y), c in zip([(4, 4), (175, 4), (4, 315), (175, 315)], CORNER_COLOURS.values()))


def test_fixed_focus_puts_the_window_on_the_point(clips: Path) -> None:
    src = write_prepare_clip(clips / "corners-fixed.mp4", corners=True, with_audio=False)
    dst = clips / "fixed.mp4"
    result = prepare_clip(str(src), str(dst), PreparePlan(640, 360, 180, 320, reframe="crop", focus=(0.95, 0.5),
                                                          crop_width=202, crop_height=360))
    assert result.crop_x_range == (438, 438)  # clamped at the right edge
    first = decoded_frames(dst)[0]
    assert _colour_at(first, 175, 4, CORNER_COLOURS["tr"]) and _colour_at(first, 175, 315, CORNER_COLOURS["br"])
    assert not result.has_audio


def test_pad_keeps_the_whole_frame_and_fills_the_bars_with_a_dark_blur(clips: Path) -> None:
    src = write_prepare_clip(clips / "corners-pad.mp4", corners=True, with_audio=False)
    dst = clips / "pad.mp4"
    result = prepare_clip(str(src), str(dst), PreparePlan(640, 360, 360, 640, reframe="pad"))
    assert (result.width, result.height) == (360, 640)
    frame = decoded_frames(dst)[0]
    box = pad_layout(640, 360, 360, 640)
    inset = 6  # corner markers are 45 source px = 25 output px: look a few px inside each corner
    corners = {"tl": (box.x + inset, box.y + inset), "tr": (box.x + box.width - inset, box.y + inset),
               "bl": (box.x + inset, box.y + box.height - inset),
               "br": (box.x + box.width - inset, box.y + box.height - inset)}
    for name, (x, y) in corners.items():
        assert _colour_at(frame, x, y, CORNER_COLOURS[name]), name
    bar = frame[: box.y - 4].astype(float)  # the band above the picture
    picture = frame[box.y: box.y + box.height].astype(float)
    assert 10 < bar.mean() < picture.mean()  # not black, darker than the picture
    assert bar.std() < picture.std()  # blurred


@pytest.mark.parametrize(("rotation", "red_corner"), [(90, "tr"), (180, "br"), (270, "bl")])
def test_rotation_is_baked_into_the_pixels(clips: Path, rotation: int, red_corner: str) -> None:
    src = write_prepare_clip(clips / f"rot{rotation}.mp4", corners=True, display_rotation=rotation,
                             width=320, height=180, with_audio=False)
    facts = _probe(src)
    assert facts.rotation_degrees == rotation  # what the planner reads and hands over
    dst = clips / f"upright{rotation}.mp4"
    prepare_clip(str(src), str(dst), PreparePlan(facts.width, facts.height, facts.width, facts.height,
                                                 rotation_degrees=rotation))
    out = _probe(dst)
    assert (out.width, out.height, out.rotation_degrees) == (facts.width, facts.height, 0)
    with av.open(str(dst)) as container:
        frame = next(container.decode(video=0))
        assert frame.rotation == 0  # no display matrix left for a player to apply again
        image = frame.to_ndarray(format="rgb24")
    h, w = image.shape[:2]
    spots = {"tl": (4, 4), "tr": (w - 5, 4), "bl": (4, h - 5), "br": (w - 5, h - 5)}
    assert _colour_at(image, *spots[red_corner], CORNER_COLOURS["tl"])


def test_trim_is_frame_accurate_and_keeps_audio_in_sync(clips: Path) -> None:
    src = write_prepare_clip(clips / "beep.mp4", seconds=9.0, width=320, height=180, fps=24, beep_at=4.0)
    assert beep_onset(src) == pytest.approx(4.0, abs=0.005)
    dst = clips / "trimmed.mp4"
    result = prepare_clip(str(src), str(dst), PreparePlan(320, 180, 320, 180, trim_start=1.0, trim_end=6.0))
    assert abs(result.duration_seconds - 5.0) <= 1 / 24
    assert abs(_probe(dst).duration_seconds - 5.0) <= 1 / 24 + 0.03
    assert beep_onset(dst) == pytest.approx(3.0, abs=0.01)
    frames = decoded_frames(dst)
    flash = [i for i, f in enumerate(frames) if f.mean() > 240]
    assert flash == [72]  # 3.0 s x 24 fps: the picture and the sound still coincide


def test_trim_without_audio_when_keep_audio_is_false(clips: Path) -> None:
    src = write_prepare_clip(clips / "beep-noaudio.mp4", seconds=4.0, width=320, height=180, beep_at=2.0)
    dst = clips / "silent.mp4"
    result = prepare_clip(str(src), str(dst), PreparePlan(320, 180, 320, 180, trim_start=0.5, keep_audio=False))
    assert not result.has_audio and not _probe(dst).has_audio
    assert abs(result.duration_seconds - 3.5) <= 1 / 24


@pytest.mark.parametrize(("fps_in", "fps_out"), [(90, 30), (90, 60), (15, 24)])
def test_frame_rate_is_converted(clips: Path, fps_in: int, fps_out: int) -> None:
    src = write_flat_clip(clips / f"flat{fps_in}.mp4", seconds=3.2, width=320, height=180, fps=fps_in)
    dst = clips / f"fps{fps_in}-{fps_out}.mp4"
    result = prepare_clip(str(src), str(dst), PreparePlan(320, 180, 320, 180, fps=fps_out))
    facts = _probe(dst)
    assert facts.fps == pytest.approx(fps_out, abs=0.05)
    assert abs(result.frames - 3.2 * fps_out) <= 1
    assert abs(facts.duration_seconds - 3.2) <= 1 / fps_out + 0.03


def test_size_cap_brings_a_heavy_clip_under_the_budget(clips: Path) -> None:
    src = write_noise_clip(clips / "noise.mp4", seconds=3.0)
    uncapped, capped = clips / "uncapped.mp4", clips / "capped.mp4"
    plan = PreparePlan(1280, 720, 1280, 720)
    free = prepare_clip(str(src), str(uncapped), plan)
    budget = 1_500_000
    assert free.size_bytes > 2 * budget  # random pixels at crf 18: the cap has real work to do
    result = prepare_clip(str(src), str(capped), PreparePlan(1280, 720, 1280, 720, max_output_bytes=budget))
    assert result.size_bytes == capped.stat().st_size <= budget


def test_size_cap_that_cannot_be_met_is_refused_and_leaves_no_file(clips: Path) -> None:
    src = write_flat_clip(clips / "flat-small.mp4", seconds=3.0, width=320, height=180, fps=24)
    dst = clips / "never.mp4"
    with pytest.raises(PrepareError, match="too small"):
        prepare_clip(str(src), str(dst), PreparePlan(320, 180, 320, 180, max_output_bytes=20_000))
    assert not dst.exists()


def test_not_a_video_is_a_prepare_error(clips: Path) -> None:
    src = clips / "notes.mp4"
    src.write_text("not a video\n" * 50)
    with pytest.raises(PrepareError):
        prepare_clip(str(src), str(clips / "notes-out.mp4"), PreparePlan(320, 180, 320, 180))


def test_4k_clip_to_reels(clips: Path) -> None:
    src = write_flat_clip(clips / "4k.mp4", seconds=1.0, width=3840, height=2160, fps=24)
    dst = clips / "4k-reels.mp4"
    result = prepare_clip(str(src), str(dst), PreparePlan(3840, 2160, 1080, 1920, reframe="crop",
                                                          crop_width=1214, crop_height=2160))
    facts = _probe(dst)
    assert (facts.width, facts.height) == (1080, 1920) and result.frames == 24


@pytest.mark.parametrize("motion", ["cross", "still"])
def test_auto_focus_keeps_the_subject_in_the_window_smoothly(clips: Path, motion: str) -> None:
    seconds, fps, width, size = 3.2, 30, 640, 90
    src = write_prepare_clip(clips / f"subject-{motion}.mp4", seconds=seconds, fps=fps, subject=motion, subject_size=size)
    dst = clips / f"auto-{motion}.mp4"
    result = prepare_clip(str(src), str(dst), PreparePlan(640, 360, 180, 320, reframe="crop", focus="auto",
                                                          crop_width=202, crop_height=360))
    frames = decoded_frames(dst)
    assert len(frames) == round(seconds * fps)
    # The subject is saturated green: count its pixels in each output frame against its full area.
    full = (size * 180 / 202) ** 2
    green = [int(((f[..., 1].astype(int) - np.maximum(f[..., 0], f[..., 2])) > 60).sum()) for f in frames]
    inside = [g >= 0.9 * full for g in green]
    assert sum(inside) / len(frames) >= 0.95, green
    assert result.max_crop_step <= MAX_STEP_FRACTION * width + 2  # the bound (+ even-pixel rounding)
    if motion == "still":
        lo, hi = result.crop_x_range
        assert lo == hi  # no drift, no oscillation
        left = subject_left(0, seconds=seconds, width=width, size=size, motion=motion)
        assert lo <= left and left + size <= lo + 202
    else:
        lo, hi = result.crop_x_range
        assert lo == 0 and hi == width - 202  # it followed the subject from one edge to the other
