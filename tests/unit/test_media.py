"""local.media: sample clips, the emulator's colour grade, and probing. Small clips keep this fast."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from local.media import MediaError, grade_video, make_sample_clip, probe


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
