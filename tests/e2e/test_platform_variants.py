"""Platform variants end to end on the local stack, black-box: a clip goes in with framing fields and
comes back edited in the asked ratio, length and orientation, with its audio; the prepare step runs
only when the clip needs it, and the original is never touched."""

from __future__ import annotations

import inspect
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from local.media import probe
from tests.conftest import prepare_messages_come_back_after, set_knobs
from tests.media_fixtures import MediaFiles, rotated

GREEN, WHITE = (0, 230, 0), (250, 250, 250)


def write_clip(path: Path, *, width: int, height: int, seconds: float, fps: int = 24, audio: bool = True,
               moving_square: bool = False, corner_markers: bool = False) -> Path:
    """A grey clip (with a 440 Hz tone) and, on request, a white square that crosses the frame from
    left to right, or green markers in two opposite corners."""
    frames = round(seconds * fps)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "28"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        tone = out.add_stream("aac", rate=48000, layout="mono") if audio else None
        side = height // 5
        background = np.full((height, width, 3), 60, np.uint8)
        if corner_markers:
            background[:side, :side] = GREEN
            background[-side:, -side:] = GREEN
        still = None if moving_square else av.VideoFrame.from_ndarray(background, format="rgb24").reformat(format="yuv420p")
        for i in range(frames):
            frame = still  # a still picture is converted once: the 125 s clip is 3,000 frames
            if frame is None:
                image = background.copy()
                x = int((width - side) * i / max(1, frames - 1))
                image[(height - side) // 2:(height + side) // 2, x:x + side] = WHITE
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if tone is not None:
            total, done = round(seconds * 48000), 0
            while done < total:
                n = min(1024, total - done)
                t = (np.arange(done, done + n) / 48000.0).astype(np.float32)
                samples = (0.3 * np.sin(2 * np.pi * 440 * t)).reshape(1, -1).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 48000, done, Fraction(1, 48000)
                out.mux(tone.encode(frame))
                done += n
            out.mux(tone.encode(None))
    return path


def frames_rgb(path: Path, *, every: int = 1) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(video=0)) if i % every == 0]


def subject_pixels(frame: np.ndarray) -> int:
    """Pixels of the white square (red and green stay up whether or not a warm grade dropped the blue)."""
    return int(((frame[..., 0] > 220) & (frame[..., 1] > 220)).sum())


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("platform-clips")
    media = MediaFiles(root)
    portrait = write_clip(root / "portrait.mp4", width=720, height=1280, seconds=3.2)
    phone = root / "phone.mp4"  # coded landscape with a 90 degree display matrix, as phones write portrait
    phone.write_bytes(rotated(write_clip(root / "phone-coded.mp4", width=1280, height=720, seconds=3.2,
                                         corner_markers=True).read_bytes(), 90))
    return {
        "landscape": write_clip(root / "landscape.mp4", width=1280, height=720, seconds=3.2),
        "portrait": portrait,
        "markers": write_clip(root / "markers.mp4", width=1280, height=720, seconds=3.2, corner_markers=True),
        "moving": write_clip(root / "moving.mp4", width=1280, height=720, seconds=4.0, moving_square=True, audio=False),
        "nine": write_clip(root / "nine.mp4", width=1280, height=720, seconds=9.0),
        "four": write_clip(root / "four.mp4", width=1280, height=720, seconds=4.0),
        "phone": phone,
        "uhd_4k": media.uhd_4k, "low_res_480p": media.low_res_480p, "fps_90": media.fps_90,
    }


# Every result is the clip Kling received (`emulator_returns_inputs`): the tests judge exactly what
# prepare sent (size, frame rate, rotation, framing, audio), and no 1080x1920 re-encode runs.
pytestmark = pytest.mark.usefixtures("emulator_returns_inputs")


@pytest.fixture
def emulator_renders(emulator_returns_inputs):
    """Reference mode makes a new shot of its own size and length: those tests need the real render."""
    set_knobs(emulator_returns_inputs, render="grade")


def run(client, tmp_path, clip: Path, key: str, metadata: dict) -> tuple[dict, dict]:
    job_id = client.upload_clip(clip, key, {"prompt": "Give @Video1 a warm grade", "mode": "std", **metadata})
    job = client.wait_for_job(job_id, timeout=180)
    assert job["status"] == "SUCCEEDED", (job.get("error_code"), job.get("error_message"))
    local = client.download_output(job, tmp_path / f"{job_id}.mp4")
    return job, probe(local) | {"path": local}


def test_a_landscape_clip_becomes_a_reel_with_its_audio(stack, client, clips, tmp_path):
    job, out = run(client, tmp_path, clips["landscape"], "incoming/pv/reel.mp4", {"platform": "reels"})
    assert (out["width"], out["height"]) == (1080, 1920) and out["has_audio"]
    assert job["prepare"]["status"] == "done" and job["prepare"]["key"].startswith("prepared/")
    assert job["prepare"]["plan"]["reframe"] == "crop"
    # The original is untouched; the prepared clip is a separate object under the prepared prefix.
    head = client.s3.head_object(Bucket=stack.info["inbox_bucket"], Key="incoming/pv/reel.mp4")
    assert head["ContentLength"] == clips["landscape"].stat().st_size
    client.s3.head_object(Bucket=job["prepare"]["bucket"], Key=job["prepare"]["key"])


def test_a_portrait_clip_becomes_a_youtube_video(client, clips, tmp_path):
    _, out = run(client, tmp_path, clips["portrait"], "incoming/pv/yt.mp4", {"platform": "youtube"})
    assert (out["width"], out["height"]) == (1920, 1080) and out["has_audio"]


def test_pad_keeps_the_whole_frame_visible(client, clips, tmp_path):
    _, out = run(client, tmp_path, clips["markers"], "incoming/pv/pad.mp4", {"platform": "square", "reframe": "pad"})
    assert (out["width"], out["height"]) == (1080, 1080)
    frame = frames_rgb(out["path"])[len(frames_rgb(out["path"])) // 2].astype(int)
    # The 1280x720 frame fits the width: 1080x608 in the middle, blurred bars above and below.
    top, bottom = (1080 - 608) // 2, (1080 + 608) // 2
    green = (frame[..., 1] - np.maximum(frame[..., 0], frame[..., 2])) > 60
    assert green[top + 10:top + 100, 10:100].mean() > 0.8  # the top-left marker, at the frame's corner
    assert green[bottom - 100:bottom - 10, -100:-10].mean() > 0.8  # the bottom-right one
    assert green[top + 10:top + 100, -100:-10].mean() < 0.1  # and no marker where there was none


def test_crop_cuts_the_sides_that_pad_keeps(client, clips, tmp_path):
    _, out = run(client, tmp_path, clips["markers"], "incoming/pv/crop.mp4", {"platform": "square"})
    frame = frames_rgb(out["path"])[10].astype(int)
    green = (frame[..., 1] - np.maximum(frame[..., 0], frame[..., 2])) > 60
    assert green.mean() < 0.01  # a centre crop of 720x720 leaves both corner markers out


def test_focus_auto_keeps_a_moving_subject_in_the_frame(client, clips, tmp_path):
    job, out = run(client, tmp_path, clips["moving"], "incoming/pv/auto.mp4", {"platform": "reels", "focus": "auto"})
    frames = frames_rgb(out["path"])
    # The square is 144 px in a 720 px frame: scaled to the 1920 px high output it is ~384 px wide.
    seen = [subject_pixels(f) > 0.5 * 384 * 384 for f in frames]
    assert sum(seen) / len(seen) >= 0.95, f"subject visible in {sum(seen)} of {len(seen)} frames"
    # With a centre crop the same subject is out of the window most of the time.
    _, centre = run(client, tmp_path, clips["moving"], "incoming/pv/centre.mp4", {"platform": "reels"})
    frames = frames_rgb(centre["path"])
    assert sum(subject_pixels(f) > 0.5 * 384 * 384 for f in frames) / len(frames) < 0.6


def test_trim_cuts_before_the_edit(client, clips, tmp_path):
    job, out = run(client, tmp_path, clips["nine"], "incoming/pv/trim.mp4", {"trim": "1-6"})
    assert out["duration_seconds"] == pytest.approx(5.0, abs=1 / 24 + 0.01) and out["has_audio"]
    assert (out["width"], out["height"]) == (1280, 720)


@pytest.mark.parametrize(("clip", "check"), [
    ("uhd_4k", lambda o: max(o["width"], o["height"]) <= 2160 and o["width"] > o["height"]),
    ("low_res_480p", lambda o: min(o["width"], o["height"]) >= 720),
    ("fps_90", lambda o: 24 <= o["fps"] <= 60),
    ("phone", lambda o: (o["width"], o["height"]) == (720, 1280)),
])
def test_clips_outside_the_limits_are_normalized_and_edited(client, clips, tmp_path, clip, check):
    job, out = run(client, tmp_path, clips[clip], f"incoming/pv/norm-{clip}.mp4", {})
    assert check(out), out
    assert job["prepare"]["plan"]["reasons"]


def test_a_rotated_phone_clip_comes_back_upright(client, clips, tmp_path):
    _, out = run(client, tmp_path, clips["phone"], "incoming/pv/phone.mp4", {})
    frame = frames_rgb(out["path"])[5].astype(int)
    green = (frame[..., 1] - np.maximum(frame[..., 0], frame[..., 2])) > 60
    # Markers were top-left and bottom-right of the coded frame; turned 90 degrees clockwise they
    # sit top-right and bottom-left of the upright one.
    assert green[10:80, -80:-10].mean() > 0.8 and green[-80:-10, 10:80].mean() > 0.8
    assert green[10:80, 10:80].mean() < 0.1


@pytest.mark.parametrize("provider", ["kling", "fal"])
def test_reference_mode_makes_a_new_square_shot_of_the_asked_length(client, clips, tmp_path, provider,
                                                                     emulator_renders):
    job, out = run(client, tmp_path, clips["four"], f"incoming/pv/ref-{provider}.mp4",
                   {"video-mode": "reference", "aspect-ratio": "1:1", "duration": "5", "provider": provider,
                    "prompt": "The next shot after @Video1, same camera move"})
    assert out["width"] == out["height"] and out["duration_seconds"] == pytest.approx(5.0, abs=0.1)
    assert job.get("prepare") is None  # the clip fits: no prepare step, no cost


def test_three_variants_from_one_manifest(stack, client, clips, tmp_path):
    client.s3.upload_file(str(clips["landscape"]), stack.info["inbox_bucket"], "media/pv/three.mp4")
    manifest = json.loads((Path(__file__).resolve().parents[2] / "examples/specs/platform-variants.json").read_text())
    manifest["video_url"] = "media/pv/three.mp4"
    client.s3.put_object(Bucket=stack.info["inbox_bucket"], Key="jobs/pv/three.json", Body=json.dumps(manifest).encode())
    jobs = client.wait_for_source("jobs/pv/three.json", timeout=240, expected=3)
    sizes = {}
    for job in jobs:
        assert job["status"] == "SUCCEEDED", (job["variant"], job.get("error_code"), job.get("error_message"))
        out = probe(client.download_output(job, tmp_path / f"{job['variant']}.mp4"))
        sizes[job["variant"]] = (out["width"], out["height"], out["has_audio"])
    assert sizes == {"reels": (1080, 1920, True), "youtube": (1920, 1080, True), "square": (1080, 1080, True)}
    assert sorted(j["output_key"] for j in jobs) == [
        "edited/media/pv/three.reels.mp4", "edited/media/pv/three.square.mp4", "edited/media/pv/three.youtube.mp4"]


def test_reframe_on_a_reference_job_is_refused_before_any_spend(client, clips):
    job_id = client.upload_clip(clips["four"], "incoming/pv/bad-ref.mp4",
                                {"prompt": "p", "video-mode": "reference", "aspect-ratio": "1:1", "reframe": "pad"})
    job = client.wait_for_job(job_id, timeout=30)
    assert (job["status"], job["error_code"]) == ("REJECTED", "REFRAME_NOT_APPLICABLE")


def test_a_trim_outside_the_clip_is_refused_before_any_spend(client, clips):
    job_id = client.upload_clip(clips["four"], "incoming/pv/bad-trim.mp4", {"prompt": "p", "trim": "2-7"})
    job = client.wait_for_job(job_id, timeout=30)
    assert (job["status"], job["error_code"]) == ("REJECTED", "TRIM_OUTSIDE_CLIP")


def test_a_crash_mid_prepare_is_retried_without_a_second_provider_task(stack, client, clips, tmp_path):
    from local.runtime import SimulatedCrash

    container = inspect.unwrap(stack.runner._handler(stack.prepare_function)).__globals__["container"]
    prepare = container.prepare_clip
    real, crashes = prepare._transformer, []

    class DiesOnce:
        def prepare(self, source_path, target_path, plan):
            if not crashes:
                crashes.append(source_path)
                Path(target_path).write_bytes(b"half a clip")  # what a killed process leaves behind
                raise SimulatedCrash("prepare killed mid-encode (test)")
            return real.prepare(source_path, target_path, plan)

    prepare._transformer = DiesOnce()
    try:
        with prepare_messages_come_back_after(stack, client.sqs, seconds=2):
            job, out = run(client, tmp_path, clips["landscape"], "incoming/pv/crash.mp4", {"platform": "square"})
    finally:
        prepare._transformer = real
    assert len(crashes) == 1 and (out["width"], out["height"]) == (1080, 1080)
    assert [t for t in stack.emulator.tasks() if t["external_task_id"] == job["job_id"]] != []
    assert len([t for t in stack.emulator.tasks() if t["external_task_id"] == job["job_id"]]) == 1
