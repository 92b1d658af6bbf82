"""Stitch step (issue 13): ``stitch_parts`` vs the ``ffmpeg`` command line, same run, same job.

A 60 s 1920x1080 24 fps result from 6 edited parts (each edited over its 10 s plus 0.25 s of shared
footage at every seam, so 10.25-10.5 s long, textured and moving, a different tint each, with an
IDR frame forced at each seam as an encoder that keeps GOPs at the seams would write), and the
original 60 s source with a tone. Three jobs, each timed against the ffmpeg command line that does
the same work:

- ``cut, stream copy``: seams on the parts' keyframes -> ``stitch_parts`` copies the packets;
  baseline: the concat demuxer with ``inpoint``/``outpoint`` per part, ``-c:v copy``.
- ``cut, re-encode``: seams an eighth of a second off the keyframes -> decode + x264; baseline: the
  concat demuxer with the same in/out points, libx264 with the prepare step's preset and crf.
- ``crossfade 0.5 s``: baseline: a filter graph of the trimmed parts through ``xfade=fade`` (a
  linear blend, as ours), same x264 settings.

Every job lays the source's audio (AAC 128 kb/s, ``-ss``/``-t`` on the source in ffmpeg's case)
under the picture and writes a faststart MP4. Each run is a fresh subprocess timed wall-clock from
the parent; runs alternate (ffmpeg, stitch, ffmpeg, stitch, ...) and the ratio is median(stitch) /
median(ffmpeg). Peak RSS: the stitch child's own VmHWM; ffmpeg's from GNU time's %M (wait4
rusage of that process alone). CPU time (user + sys) is recorded too: it moves less than wall
time when other work shares the machine. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
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
WIDTH, HEIGHT, FPS = 1920, 1080, 24
LEAD = 0.25  # seconds of shared footage on each side of a seam
TINTS = [(40, 0, 0), (0, 40, 0), (0, 0, 40), (40, 40, 0), (0, 40, 40), (40, 0, 40), (20, 20, 20)]

_CHILD = """
import json, resource, sys, time
from clipedit.domain.stitching import PartWindow, StitchPlan
from clipedit_media.stitch import stitch_parts
spec = json.loads(sys.argv[1])
plan = StitchPlan(parts=tuple(PartWindow(*p) for p in spec["parts"]), boundaries=tuple(spec["boundaries"]),
                  duration=spec["duration"], seam=spec["seam"], overlap=spec["overlap"], fps=spec["fps"])
t = time.perf_counter()
r = stitch_parts(spec["paths"], spec["source"], spec["dst"], plan)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t, "hwm_kb": hwm, "cpu_s": use.ru_utime + use.ru_stime, "frames": r.frames, "copied": r.video_copied,
                  "duration": r.duration, "method": r.method}))
"""


def windows(parts: int, length: float) -> list[tuple[float, float]]:
    total = parts * length
    return [(max(0.0, i * length - LEAD), min(total, (i + 1) * length + LEAD)) for i in range(parts)]


def make_part(path: Path, index: int, start: float, end: float, seams: list[float]) -> Path:
    """A textured, panning picture with a moving disc and the part's tint; IDR frames at ``seams``
    (source times) so a cut there can be stream-copied."""
    import av
    import numpy as np
    from av.video.frame import PictureType

    rng = np.random.default_rng(index)
    small = rng.integers(40, 190, (HEIGHT // 40, WIDTH // 20, 3), dtype=np.uint8)
    bg = av.VideoFrame.from_ndarray(small, format="rgb24").reformat(width=WIDTH * 2, height=HEIGHT,
                                                                   interpolation="BICUBIC").to_ndarray()
    bg = np.clip(bg.astype(np.int16) + np.array(TINTS[index % len(TINTS)], np.int16), 0, 255).astype(np.uint8)
    r = HEIGHT // 6
    yy, xx = np.ogrid[-r:r, -r:r]
    disc = (xx * xx + yy * yy) < r * r
    n = round((end - start) * FPS)
    forced = {round((s - start) * FPS) for s in seams if start < s < end}
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(n):
            t = start + i / FPS  # the source time this frame shows: parts agree where they overlap
            k = round(t * FPS)
            shift = (k * 4) % WIDTH
            image = np.ascontiguousarray(bg[:, shift:shift + WIDTH])
            cx, cy = int(r + (WIDTH - 2 * r) * (k % 240) / 239), HEIGHT // 2
            image[cy - r:cy + r, cx - r:cx + r][disc] = 230
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            if i in forced:
                frame.pict_type = PictureType.I  # libx264 makes it an IDR (closed GOPs)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def make_source(path: Path, seconds: float) -> Path:
    """The original upload: a flat 1080p picture (only its audio is used) and a 440 Hz tone."""
    import av
    import numpy as np
    from fractions import Fraction

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "40"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = out.add_stream("aac", rate=48_000, layout="stereo")
        frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), 90, np.uint8), format="rgb24").reformat(format="yuv420p")
        for i in range(round(seconds * FPS)):
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        for start in range(0, round(seconds * 48_000), 1024):
            tone = (0.2 * np.sin(2 * np.pi * 440 * (start + np.arange(1024)) / 48_000)).astype(np.float32)
            block = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            block.sample_rate, block.pts, block.time_base = 48_000, start, Fraction(1, 48_000)
            out.mux(audio.encode(block))
        out.mux(audio.encode(None))
    return path


def ffmpeg_args(job: str, parts: list[Path], spans: list[tuple[float, float]], source: Path, duration: float,
                boundaries: list[float], work: Path, dst: Path) -> list[str]:
    from clipedit_media.prepare import X264_OPTIONS

    x264 = ["-c:v", "libx264", "-preset", X264_OPTIONS["preset"], "-crf", X264_OPTIONS["crf"], "-pix_fmt", "yuv420p"]
    tail = ["-c:a", "aac", "-b:a", "128k", "-t", f"{duration}", "-movflags", "+faststart", str(dst)]
    audio_in = ["-ss", "0", "-t", f"{duration}", "-i", str(source)]
    if job == "crossfade":
        inputs, chain, label = [], [], "[0:v]"
        for i, (part, (lo, hi)) in enumerate(zip(parts, spans)):
            inputs += ["-ss", f"{lo:.4f}", "-to", f"{hi:.4f}", "-i", str(part)]
        for k, b in enumerate(boundaries, start=1):
            out = "[v]" if k == len(boundaries) else f"[x{k}]"
            chain.append(f"{label}[{k}:v]xfade=transition=fade:duration={2 * LEAD}:offset={b - LEAD:.4f}{out}")
            label = out
        return ["ffmpeg", "-y", "-v", "error", *inputs, *audio_in, "-filter_complex", ";".join(chain),
                "-map", "[v]", "-map", f"{len(parts)}:a", *x264, *tail]
    listing = work / f"concat-{job}.txt"
    listing.write_text("".join(f"file '{p}'\ninpoint {lo:.4f}\noutpoint {hi:.4f}\n" for p, (lo, hi) in zip(parts, spans)))
    video = ["-c:v", "copy"] if job == "copy" else x264
    return ["ffmpeg", "-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), *audio_in,
            "-map", "0:v", "-map", "1:a", *video, *tail]


def run_ffmpeg(args: list[str], work: Path) -> tuple[float, int, float]:
    """(wall seconds, peak RSS KB, CPU seconds user+sys) of one ffmpeg run."""
    report = work / "time.txt"
    started = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(report), *args], check=True)
    rss, user, system = report.read_text().split()[-3:]
    return time.perf_counter() - started, int(rss), float(user) + float(system)


def run_stitch(spec: dict[str, object]) -> tuple[float, int, dict[str, object]]:
    import json

    env = child_env()
    env["PYTHONPATH"] = str(MEDIA_LAYER) + ":" + env["PYTHONPATH"]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started  # spawn + import included: what a run costs
    facts = json.loads(proc.stdout)
    return seconds, facts["hwm_kb"], facts


def frames_of(path: Path) -> int:
    import av

    with av.open(str(path)) as inp:
        return sum(1 for _ in inp.demux(inp.streams.video[0]) if _.pts is not None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="3 parts of 2 s, one round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", default="copy,reencode,crossfade", help="comma-separated subset of copy,reencode,crossfade")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        say("ffmpeg is not installed (apt-get install -y ffmpeg): no baseline")
        return 1
    n_parts, length, rounds = (3, 2.0, 1) if args.quick else (6, 10.0, args.rounds)
    duration = n_parts * length
    spans_abs = windows(n_parts, length)
    on_keys = [length * i for i in range(1, n_parts)]
    jobs = [("copy", "cut, stream copy", "cut", on_keys),
            ("reencode", "cut, re-encode", "cut", [b + 0.125 for b in on_keys]),
            ("crossfade", "crossfade 0.5 s", "crossfade", on_keys)]
    jobs = [job for job in jobs if job[0] in args.jobs.split(",")]
    rows, details = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-stitch-") as tmp:
        work = Path(tmp)
        say(f"making {n_parts} parts of {length:.0f} s (+{LEAD} s at each seam), {WIDTH}x{HEIGHT} {FPS} fps, and the source ...")
        made = time.perf_counter()
        parts = [make_part(work / f"part-{i}.mp4", i, lo, hi, on_keys) for i, (lo, hi) in enumerate(spans_abs)]
        source = make_source(work / "source.mp4", duration)
        say(f"  made in {time.perf_counter() - made:.0f} s")
        for key, label, seam, boundaries in jobs:
            edges = [0.0, *boundaries, duration]
            fade = LEAD if seam == "crossfade" else 0.0
            local = [(max(0.0, edges[i] - fade) - spans_abs[i][0], min(duration, edges[i + 1] + fade) - spans_abs[i][0])
                     for i in range(n_parts)]
            spec = {"parts": [[i, lo, hi] for i, (lo, hi) in enumerate(spans_abs)], "boundaries": boundaries,
                    "duration": duration, "seam": seam, "overlap": 2 * LEAD if seam == "crossfade" else 0.0,
                    "fps": FPS, "paths": [str(p) for p in parts], "source": str(source), "dst": str(work / "ours.mp4")}
            args_ff = ffmpeg_args(key, parts, local, source, duration, boundaries, work, work / "ff.mp4")
            ff_t, ff_rss, ff_cpu, py_t, py_rss, py_cpu, facts = [], [], [], [], [], [], {}
            for i in range(rounds):
                t, rss, cpu = run_ffmpeg(args_ff, work)
                ff_t.append(t)
                ff_rss.append(rss)
                ff_cpu.append(cpu)
                t, rss, facts = run_stitch(spec)
                py_t.append(t)
                py_rss.append(rss)
                py_cpu.append(facts["cpu_s"])
                say(f"  {label} round {i + 1}: ffmpeg {ff_t[-1]:.2f} s (CPU {ff_cpu[-1]:.1f} s, {ff_rss[-1] / 1024:.0f} MB), "
                    f"stitch {py_t[-1]:.2f} s (CPU {py_cpu[-1]:.1f} s, {rss / 1024:.0f} MB), copied={facts['copied']}")
            ff_frames, our_frames = frames_of(work / "ff.mp4"), frames_of(work / "ours.mp4")
            ratio = median(py_t) / median(ff_t)
            rows.append(row(f"stitch {duration:.0f} s 1080p, {label}", f"{median(py_t):.2f} s",
                            f"ffmpeg {median(ff_t):.2f} s", ratio, "<= 1.3", ratio <= 1.3))
            cpu_ratio = median(py_cpu) / median(ff_cpu)
            rows.append(row(f"stitch {duration:.0f} s 1080p, {label}: CPU time", f"{median(py_cpu):.1f} s",
                            f"ffmpeg {median(ff_cpu):.1f} s", cpu_ratio, "-", None))
            rows.append(row(f"stitch {duration:.0f} s 1080p, {label}: peak RSS", f"{max(py_rss) / 1024:.0f} MB",
                            f"ffmpeg {max(ff_rss) / 1024:.0f} MB", None, "< 400 MB", max(py_rss) / 1024 < 400))
            details[label] = {"stitch_s": py_t, "ffmpeg_s": ff_t, "stitch_cpu_s": py_cpu, "ffmpeg_cpu_s": ff_cpu, "stitch_rss_kb": py_rss, "ffmpeg_rss_kb": ff_rss,
                              "stitch": facts, "frames": {"stitch": our_frames, "ffmpeg": ff_frames,
                                                          "expected": round(duration * FPS)}}
            say(f"  frames: stitch {our_frames}, ffmpeg {ff_frames}, expected {round(duration * FPS)}; {facts['method']}")
    notes = [f"{rounds} alternating round(s) per job, medians; stitch time includes the child's interpreter "
             "start and imports; both write the source's audio as AAC 128 kb/s and a faststart MP4",
             "CPU time (user + sys, all threads) is less sensitive than wall time to other load on the machine",
             "ffmpeg is the system's command line, PyAV bundles its own FFmpeg and libx264 builds: same settings, "
             "not the same binaries"]
    write_result(args.json, "stitch", rows, details, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
