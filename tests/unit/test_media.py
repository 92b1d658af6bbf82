"""local.media: sample clips and images, the emulator's colour grade and overlays, and probing.

Small clips keep this fast."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from local.media import MediaError, grade_video, make_sample_clip, make_sample_image, probe, probe_image


@pytest.fixture(scope="module")
def clip_30fps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """320x240, 2 s at 30 fps with audio: grading must re-time it to 24 fps at the same length."""
    path = tmp_path_factory.mktemp("media") / "src.mp4"
    make_sample_clip(path, seconds=2.0, width=320, height=240, fps=30, with_audio=True, seed=1)
    return path


def test_sample_clip_probes_to_requested_shape(clip_30fps: Path) -> None:
    info = probe(clip_30fps)
    assert (info["width"], info["height"]) == (320, 240)
    assert info["duration_seconds"] == pytest.approx(2.0, abs=0.05)
    assert info["fps"] == pytest.approx(30.0)
    assert info["has_audio"] is True
    assert info["video_codec"] == "h264"
    assert len(info["mean_rgb"]) == 3


def test_sample_clip_without_audio_as_mov(tmp_path: Path) -> None:
    path = tmp_path / "clip.mov"
    make_sample_clip(path, seconds=1.0, width=160, height=120, fps=24, with_audio=False)
    assert path.read_bytes()[4:12] == b"ftypqt  "  # QuickTime container chosen by suffix
    info = probe(path)
    assert info["has_audio"] is False
    assert (info["width"], info["height"], info["fps"]) == (160, 120, 24.0)


def test_sample_clip_is_deterministic_and_moves(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    make_sample_clip(a, seconds=1.0, width=160, height=120, with_audio=False, seed=7)
    make_sample_clip(b, seconds=1.0, width=160, height=120, with_audio=False, seed=7)
    make_sample_clip(c, seconds=2.0, width=160, height=120, with_audio=False, seed=7)
    assert a.read_bytes() == b.read_bytes()
    # The middle frame of a longer clip is a later moment: the picture has changed.
    assert probe(a)["mean_rgb"] != probe(c)["mean_rgb"]


def test_sample_clip_rejects_odd_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        make_sample_clip(tmp_path / "odd.mp4", width=321, height=240)


def test_grade_is_visible_and_keeps_timing_and_audio(clip_30fps: Path, tmp_path: Path) -> None:
    out = tmp_path / "graded.mp4"
    facts = grade_video(clip_30fps, out, keep_audio=True)
    before, after = probe(clip_30fps), probe(out)

    assert facts == {"duration_seconds": 2.0, "frames": 48, "width": 320, "height": 240, "has_audio": True}
    assert after["fps"] == pytest.approx(24.0)
    assert after["duration_seconds"] == pytest.approx(before["duration_seconds"], abs=0.1)
    assert (after["width"], after["height"]) == (320, 240)
    assert after["has_audio"] is True
    # "warm": clearly more red, clearly less blue.
    assert after["mean_rgb"][0] > before["mean_rgb"][0] + 15
    assert after["mean_rgb"][2] < before["mean_rgb"][2] - 15


def test_grade_drops_audio_when_asked_and_reads_file_objects(clip_30fps: Path, tmp_path: Path) -> None:
    out = tmp_path / "silent.mp4"
    with clip_30fps.open("rb") as fh:
        facts = grade_video(fh, out, keep_audio=False, look="cool")
    info = probe(out)
    assert facts["has_audio"] is False and info["has_audio"] is False
    assert info["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    assert info["mean_rgb"][2] > probe(clip_30fps)["mean_rgb"][2]  # "cool" pushes blue up


def test_grade_without_source_audio_has_no_audio(tmp_path: Path) -> None:
    src, out = tmp_path / "mute.mp4", tmp_path / "out.mp4"
    make_sample_clip(src, seconds=1.0, width=160, height=120, with_audio=False)
    assert grade_video(src, out, keep_audio=True)["has_audio"] is False
    assert probe(out)["has_audio"] is False


def test_grade_rejects_unknown_look(clip_30fps: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown look"):
        grade_video(clip_30fps, tmp_path / "x.mp4", keep_audio=False, look="sepia-ish")


def test_garbage_named_mp4_raises_media_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01not a video at all" * 512)
    with pytest.raises(MediaError):
        probe(garbage)
    with pytest.raises(MediaError):
        grade_video(garbage, tmp_path / "out.mp4", keep_audio=True)
    assert not (tmp_path / "out.mp4").exists()  # no half-written output left behind
    with pytest.raises(MediaError):
        grade_video(io.BytesIO(b""), tmp_path / "out2.mp4", keep_audio=False)


def test_missing_file_raises_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        probe(tmp_path / "nope.mp4")


# ---------------------------------------------------------------------------------------------
# Reference images: sample images, image probing, overlays


def _frame_rgb(path: Path, index: int) -> np.ndarray:
    """The `index`-th decoded frame of a clip as an RGB array."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(container.streams.video[0])):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} has fewer than {index + 1} frames")


def _mean_rgb(pixels: np.ndarray) -> list[float]:
    return [float(v) for v in pixels.reshape(-1, 3).mean(axis=0)]


def test_sample_images_probe_as_png_and_jpeg(clip_30fps: Path) -> None:
    png = make_sample_image(width=320, height=240, rgb=(255, 0, 0))
    jpeg = make_sample_image(width=400, height=300, rgb=(0, 0, 255), format="jpeg")
    assert png.startswith(b"\x89PNG") and jpeg.startswith(b"\xff\xd8")
    assert probe_image(png) == {"format": "png", "width": 320, "height": 240}
    assert probe_image(jpeg) == {"format": "jpeg", "width": 400, "height": 300}
    # A video is decodable but is no jpg/png: probe_image names its codec so callers can reject it.
    assert probe_image(clip_30fps.read_bytes())["format"] == "h264"
    for garbage in (b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"not an image at all" * 50):
        with pytest.raises(MediaError):
            probe_image(garbage)
    with pytest.raises(ValueError, match="even"):
        make_sample_image(width=301, height=300)


def test_probe_without_decode_reads_headers_only(clip_30fps: Path) -> None:
    full, headers = probe(clip_30fps), probe(clip_30fps, decode=False)
    assert "mean_rgb" not in headers
    assert headers == {k: v for k, v in full.items() if k != "mean_rgb"}


def test_overlays_are_pasted_bottom_left_in_order_and_keep_their_colour(clip_30fps: Path, tmp_path: Path) -> None:
    red = make_sample_image(width=320, height=320, rgb=(255, 0, 0))
    blue = make_sample_image(width=400, height=300, rgb=(0, 0, 255), format="jpeg")  # 4:3 -> a wider tile
    with_refs, without = tmp_path / "refs.mp4", tmp_path / "plain.mp4"
    grade_video(clip_30fps, with_refs, keep_audio=False, overlays=[red, blue])
    grade_video(clip_30fps, without, keep_audio=False)

    # 240 px frame: tiles are 40 px high (1/6), 4 px margins -> rows 196-236; red 40 px wide from x=4,
    # then blue 53 px wide from x=48. Sample each tile's centre, away from chroma-subsampled edges.
    red_box = (slice(204, 228), slice(12, 36))
    blue_box = (slice(204, 228), slice(58, 92))
    for index in (0, 47):  # first and last frame: every frame carries the thumbnails
        frame = _frame_rgb(with_refs, index)
        assert _mean_rgb(frame[red_box]) == pytest.approx([255, 0, 0], abs=25)
        assert _mean_rgb(frame[blue_box]) == pytest.approx([0, 0, 255], abs=25)
        plain = _frame_rgb(without, index)
        assert _mean_rgb(plain[red_box]) != pytest.approx([255, 0, 0], abs=60)
        assert _mean_rgb(plain[blue_box]) != pytest.approx([0, 0, 255], abs=60)
    # Above the thumbnail row the picture is the ordinary grade.
    above = (slice(100, 140), slice(12, 92))
    assert _mean_rgb(_frame_rgb(with_refs, 0)[above]) == pytest.approx(_mean_rgb(_frame_rgb(without, 0)[above]), abs=3)


def test_overflowing_overlays_are_clipped_and_bad_overlays_fail_cleanly(clip_30fps: Path, tmp_path: Path) -> None:
    wide = make_sample_image(width=600, height=300, rgb=(0, 255, 0))  # 2:1 -> 80 px tiles on a 320 px frame
    out = tmp_path / "crowded.mp4"
    # Tiles start at x = 4, 88, 172, 256: the 4th runs past x = 320 and is clipped, the 5th has no room.
    facts = grade_video(clip_30fps, out, keep_audio=False, overlays=[wide] * 5)
    assert (facts["width"], facts["height"]) == (320, 240)
    frame = _frame_rgb(out, 0)
    assert _mean_rgb(frame[204:228, 264:316]) == pytest.approx([0, 255, 0], abs=25)  # 4th tile, up to the edge

    bad = tmp_path / "bad.mp4"
    with pytest.raises(MediaError, match="overlay 1"):
        grade_video(clip_30fps, bad, keep_audio=False, overlays=[wide, b"not an image" * 40])
    assert not bad.exists()


@pytest.mark.parametrize("look", ["warm", "cool"])
def test_grade_applies_each_looks_levels(look: str, tmp_path: Path) -> None:
    # A flat grey clip: every output channel must sit where the look's curve puts the input's level
    # (y = (x * gain + offset - 0.5) * contrast + 0.5), within the yuv420p round trip's rounding.
    from tests.media_fixtures import write_flat_clip

    src = write_flat_clip(tmp_path / "grey.mp4", seconds=1.0, width=320, height=240, fps=24)
    grade_video(src, tmp_path / "out.mp4", keep_audio=False, look=look)
    before, after = probe(src)["mean_rgb"], probe(tmp_path / "out.mp4")["mean_rgb"]
    curves = {"warm": ((1.15, 0.06), (1.0, 0.01), (0.78, -0.02), 1.15),
              "cool": ((0.80, -0.02), (1.0, 0.0), (1.15, 0.06), 1.10)}[look]
    contrast = curves[3]
    for level, (gain, offset), graded in zip(before, curves[:3], after):
        expected = min(1.0, max(0.0, (level / 255 * gain + offset - 0.5) * contrast + 0.5)) * 255
        assert graded == pytest.approx(expected, abs=3)
