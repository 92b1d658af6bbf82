"""Prepare step (issue 12): ``prepare_clip`` vs the ``ffmpeg`` command line, same run, same work.

Two cases: a 10 s 3840x2160 30 fps clip -> reels (1080x1920) with ``focus: auto``, and a 10 s
1920x1080 30 fps clip -> reels with a centre crop. The baseline is ``ffmpeg`` doing the same crop
(the centre window: it cannot follow a subject), scale and libx264 encode (same preset and crf).
Each run is a fresh subprocess, timed wall-clock, with its peak RSS (the child's own VmHWM); runs
alternate (ffmpeg, prepare, ffmpeg, prepare...) so load on the machine hits both alike, and the
ratio is median(prepare) / median(ffmpeg). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "clipedit" / "python"),
                str(Path(__file__).resolve().parents[1] / "layers" / "media" / "python"),
                str(Path(__file__).resolve().parents[1])]

from bench.common import ROOT, child_env, median, row, say, write_result  # noqa: E402

MEDIA_LAYER = ROOT / "layers" / "media" / "python"

_CHILD = """
import sys, time
from clipedit.domain.framing import PreparePlan
from clipedit_media.prepare import prepare_clip
src, dst, focus, w, h, cw = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])
plan = PreparePlan(w, h, 1080, 1920, reframe="crop", focus=focus, crop_width=cw, crop_height=h)
t = time.perf_counter()
r = prepare_clip(src, dst, plan)
# VmHWM, not ru_maxrss: Linux carries the parent's peak across fork+exec into ru_maxrss
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(time.perf_counter() - t, hwm, r.frames, r.crop_x_range)
"""


def make_clip(path: Path, width: int, height: int, seconds: float = 10.0, fps: int = 30) -> Path:
    """A textured background with a striped subject crossing it (so x264 has real detail to code
    and ``focus: auto`` has something to follow), encoded quickly (ultrafast, crf 23)."""
    import av
    import numpy as np

    rng = np.random.default_rng(1)
    small = rng.integers(40, 200, (height // 40, width // 40, 3), dtype=np.uint8)
    bg = av.VideoFrame.from_ndarray(small, format="rgb24").reformat(width=width, height=height,
                                                                   interpolation="BICUBIC").to_ndarray()
    bg = np.clip(bg.astype(np.int16) + rng.integers(-12, 13, bg.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    r = height // 6
    yy, xx = np.ogrid[-r:r, -r:r]
    disc = (xx * xx + yy * yy) < r * r
    stripes = ((np.arange(2 * r) // 8) % 2 * 200 + 30).astype(np.uint8)[None, :, None]
    n = round(seconds * fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            image = bg.copy()
            cx, cy = int(r + (width - 2 * r) * i / (n - 1)), height // 2 + int(height / 10 * np.sin(i / fps * 2))
            patch = image[cy - r:cy + r, cx - r:cx + r]
            patch[disc] = np.broadcast_to(stripes, patch.shape)[disc]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def run_ffmpeg(src: Path, dst: Path, width: int, height: int, cw: int) -> tuple[float, int]:
    from clipedit_media.prepare import X264_OPTIONS

    x = (width - cw) // 2 // 2 * 2
    args = ["ffmpeg", "-y", "-v", "error", "-i", str(src), "-vf", f"crop={cw}:{height}:{x}:0,scale=1080:1920",
            "-c:v", "libx264", "-preset", X264_OPTIONS["preset"], "-crf", X264_OPTIONS["crf"], "-pix_fmt", "yuv420p",
            "-an", "-movflags", "+faststart", str(dst)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(args, check=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, after if after > before else -1  # ru_maxrss of children is the max over all


def run_prepare(src: Path, dst: Path, focus: str, width: int, height: int, cw: int) -> tuple[float, int, str]:
    env = child_env()
    env["PYTHONPATH"] = str(MEDIA_LAYER) + ":" + env["PYTHONPATH"]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(dst), focus, str(width), str(height), str(cw)],
                          env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started  # spawn + import included: what a run costs
    inner, rss_kb, frames, crop = proc.stdout.split(maxsplit=3)
    return seconds, int(rss_kb), f"{frames} frames, crop x {crop.strip()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="2 s clips, one round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        say("ffmpeg is not installed (apt-get install -y ffmpeg): no baseline")
        return 1
    seconds, rounds = (2.0, 1) if args.quick else (10.0, args.rounds)
    cases = [("4K 30 fps -> reels, focus auto", 3840, 2160, "auto"),
             ("1080p 30 fps -> reels, centre crop", 1920, 1080, "center")]
    rows, details, notes = [], {}, []
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        work = Path(tmp)
        for label, width, height, focus in cases:
            say(f"making a {seconds:.0f} s {width}x{height} clip ...")
            src = make_clip(work / f"src-{width}.mp4", width, height, seconds)
            cw = round(height * 9 / 16) // 2 * 2
            ff_times, py_times, py_rss, ff_rss, info = [], [], [], [], ""
            for i in range(rounds):
                t, rss = run_ffmpeg(src, work / "ff.mp4", width, height, cw)
                ff_times.append(t)
                ff_rss.append(rss)
                t, rss, info = run_prepare(src, work / "py.mp4", focus, width, height, cw)
                py_times.append(t)
                py_rss.append(rss)
                say(f"  round {i + 1}: ffmpeg {ff_times[-1]:.2f} s, prepare {py_times[-1]:.2f} s, "
                    f"prepare peak RSS {rss / 1024:.0f} MB")
            ratio = median(py_times) / median(ff_times)
            rows.append(row(f"prepare {label}", f"{median(py_times):.2f} s", f"ffmpeg {median(ff_times):.2f} s",
                            ratio, "<= 1.3", ratio <= 1.3))
            peak = max(py_rss) / 1024
            rows.append(row(f"prepare {label}: peak RSS", f"{peak:.0f} MB",
                            f"ffmpeg {max(ff_rss) / 1024:.0f} MB" if max(ff_rss) > 0 else "-", None,
                            "< 400 MB" if width == 3840 else "-", peak < 400 if width == 3840 else None))
            details[label] = {"prepare_s": py_times, "ffmpeg_s": ff_times, "prepare_rss_kb": py_rss,
                              "ffmpeg_rss_kb": ff_rss, "output": info}
    notes.append(f"{rounds} alternating round(s) per case, medians; prepare time includes the child's "
                 "interpreter start and imports; the ffmpeg baseline crops the centre (it cannot follow a subject)")
    write_result(args.json, "prepare", rows, details, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
