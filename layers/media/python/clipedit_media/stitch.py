"""Execute a `StitchPlan`: the edited parts of a long clip -> one H.264/AAC MP4 of the source's length.

Picture. Output frame n shows output time t = n / fps. With ``cut`` seams part i fills
[b_{i-1}, b_i) and t is shown by the part's frame at local time t - part.start (the last frame
starting no later than half an output frame after it). With ``crossfade`` the two parts around a
seam b are mixed over [b - overlap/2, b + overlap/2): weight (t - (b - overlap/2)) / overlap for the
later part, linearly, on the YUV samples. Parts of another size are scaled to the output size.

Sound. The parts' audio is dropped; the source's own audio from ``plan.audio_offset`` for
``plan.duration`` is laid under the whole result (`clipedit_media.soundtrack`), so it is continuous
and in sync by construction.

Stream copy. When every seam is a cut on a closed-GOP keyframe of parts with equal codec
parameters (`clipedit_media.stitch_copy`), the parts' packets are copied with shifted timestamps:
no decode, no encode, and the same frames a re-encode would show. Otherwise everything is decoded,
mixed where needed, and encoded once with the prepare step's x264 settings.

Memory is bounded: at most two parts are open at once (both sides of a crossfade), each decoded
one frame ahead; nothing holds a part, and audio is encoded in step with the picture.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error
import numpy as np
from av.video.frame import VideoFrame

from clipedit.domain.framing import even
from clipedit.domain.stitching import StitchPlan
from clipedit_media.parts import PartFacts, PartReader, StitchError, scan_part
from clipedit_media.prepare import X264_OPTIONS
from clipedit_media.soundtrack import Soundtrack, source_has_audio
from clipedit_media.stitch_copy import CopyRun, plan_copy

__all__ = ["StitchError", "StitchedClip", "stitch_parts"]


@dataclass(frozen=True)
class StitchedClip:
    duration: float  # seconds of picture in the output
    frames: int
    fps: float
    width: int
    height: int
    size_bytes: int
    video_copied: bool  # True: the parts' packets were copied, no re-encode
    audio: bool  # True: the source's soundtrack is in the output
    method: str = ""  # why the video was copied or re-encoded, in words


def stitch_parts(part_paths: Sequence[str], source_path: str | None, dst_path: str, plan: StitchPlan) -> StitchedClip:
    """Write the stitched clip to ``dst_path`` (mp4, faststart). ``part_paths[i]`` is the edited
    part for ``plan.parts[i]``; ``source_path`` is the original upload (only its audio is read;
    None = no audio). Raises `StitchError` naming the part for a missing, undecodable or short part;
    `ValueError` for a plan that contradicts itself."""
    _check_plan(plan, len(part_paths))
    parts = [scan_part(i, str(path)) for i, path in enumerate(part_paths)]
    width = even(plan.width if plan.width else parts[0].width)
    height = even(plan.height if plan.height else parts[0].height)
    for part, (lo, hi) in zip(parts, _local_spans(plan)):
        if part.length < hi - 1 / plan.fps - 1e-6:  # one frame short is held (its last frame shown twice)
            raise StitchError(f"part {part.index} is {part.length:.3f} s long; its window needs {hi:.3f} s: {part.path}")
    with_audio = False
    if plan.keep_audio and source_path is not None:
        if not os.path.exists(source_path):
            raise StitchError(f"the source (for its audio) is missing: {source_path}")
        with_audio = source_has_audio(source_path)
    runs, why = plan_copy(parts, plan, width, height)
    try:
        with av.open(dst_path, "w", format="mp4", options={"movflags": "faststart"}) as out:
            if runs is not None:
                frames, duration = _copy(out, parts, runs, source_path if with_audio else None, plan)
            else:
                frames, duration = _reencode(out, parts, plan, width, height, source_path if with_audio else None)
    except av.error.FFmpegError as exc:
        _remove(dst_path)
        raise StitchError(f"could not stitch the parts: {exc}") from exc
    except BaseException:
        _remove(dst_path)
        raise
    return StitchedClip(duration=round(duration, 3), frames=frames, fps=round(float(plan.fps), 3), width=width,
                        height=height, size_bytes=os.path.getsize(dst_path), video_copied=runs is not None,
                        audio=with_audio, method=("copied: " if runs is not None else "re-encoded: ") + why)


def _check_plan(plan: StitchPlan, n_paths: int) -> None:
    n = len(plan.parts)
    if n == 0 or n_paths != n:
        raise ValueError(f"the plan has {n} parts but {n_paths} part files were given")
    if [p.index for p in plan.parts] != list(range(n)) or len(plan.boundaries) != n - 1:
        raise ValueError("plan parts must be indexed 0..n-1 in order, with n-1 boundaries")
    edges = (0.0, *plan.boundaries, plan.duration)
    if any(b <= a for a, b in zip(edges, edges[1:])) or plan.fps <= 0:
        raise ValueError(f"boundaries must increase strictly inside (0, {plan.duration}); fps > 0")
    if plan.seam == "crossfade" and plan.overlap <= 0:
        raise ValueError("a crossfade needs overlap > 0")
    half = 0.5 / plan.fps
    for part, (lo, hi) in zip(plan.parts, _local_spans(plan)):
        if lo < -half or part.start + hi > part.end + half:
            raise ValueError(f"part {part.index}'s window [{part.start}, {part.end}] does not cover its stretch "
                             f"[{part.start + lo:.3f}, {part.start + hi:.3f}]")


def _local_spans(plan: StitchPlan) -> list[tuple[float, float]]:
    """Each part's used stretch on its own local timeline (crossfade overlaps included)."""
    edges = (0.0, *plan.boundaries, plan.duration)
    fade = plan.overlap / 2 if plan.seam == "crossfade" else 0.0
    spans = []
    for i, part in enumerate(plan.parts):
        lo = edges[i] - (fade if i > 0 else 0.0)
        hi = edges[i + 1] + (fade if i < len(plan.parts) - 1 else 0.0)
        spans.append((lo - part.start, hi - part.start))
    return spans


# ---------------------------------------------------------------------------------------------
# Re-encode: decode the parts in turn (two at a crossfade), mix, encode once


def _reencode(out: av.container.OutputContainer, parts: list[PartFacts], plan: StitchPlan, width: int,
              height: int, source_path: str | None) -> tuple[int, float]:
    rate = Fraction(plan.fps).limit_denominator(1001)
    vout = out.add_stream("libx264", rate=rate, options=dict(X264_OPTIONS))
    vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
    track = Soundtrack(source_path, out, plan.audio_offset, plan.duration) if source_path else None
    spans = _local_spans(plan)
    readers: dict[int, PartReader] = {}
    slack = 0.5 / float(rate)
    total = round(plan.duration * rate)
    try:
        for n in range(total):
            t = float(n / rate)
            i, j, weight = _sources(plan, t)
            for k in [k for k in readers if k < i]:
                readers.pop(k).close()
            for k in (i, j):
                if k is not None and k not in readers:
                    readers[k] = PartReader(parts[k], width, height, slack, seek_to=max(0.0, spans[k][0]))
            frame = readers[i].frame_at(t - plan.parts[i].start)
            if j is not None:
                frame = _mix(frame, readers[j].frame_at(t - plan.parts[j].start), weight)
            frame.pts, frame.time_base = n, 1 / rate
            out.mux(vout.encode(frame))
            if track is not None:
                track.write_until(float((n + 1) / rate))
        out.mux(vout.encode(None))
        if track is not None:
            track.finish()
            track = None
    finally:
        for reader in readers.values():
            reader.close()
        if track is not None:
            track.close()
    return total, float(total / rate)


def _sources(plan: StitchPlan, t: float) -> tuple[int, int | None, float]:
    """(part, second part to mix in or None, the second part's weight) for output time t."""
    if plan.seam == "crossfade":
        half = plan.overlap / 2
        for k, b in enumerate(plan.boundaries):
            if b - half <= t < b + half:
                return k, k + 1, (t - (b - half)) / plan.overlap
    return bisect.bisect_right(plan.boundaries, t), None, 0.0


def _mix(a: VideoFrame, b: VideoFrame, weight: float) -> VideoFrame:
    """Linear blend of two yuv420p frames of one size, in integer maths (weight of ``b`` in 1/256)."""
    k = round(weight * 256)
    if k <= 0:
        return a
    if k >= 256:
        return b
    mixed = (a.to_ndarray().astype(np.uint16) * (256 - k) + b.to_ndarray().astype(np.uint16) * k + 128) >> 8
    return VideoFrame.from_ndarray(mixed.astype(np.uint8), format="yuv420p")


# ---------------------------------------------------------------------------------------------
# Stream copy: the parts' own packets, timestamps shifted onto the output timeline


def _copy(out: av.container.OutputContainer, parts: list[PartFacts], runs: list[CopyRun],
          source_path: str | None, plan: StitchPlan) -> tuple[int, float]:
    with av.open(parts[0].path) as template:
        vout = out.add_stream_from_template(template.streams.video[0])
    track = Soundtrack(source_path, out, plan.audio_offset, plan.duration) if source_path else None
    frames, end = 0, 0.0
    try:
        for run in runs:
            part = parts[run.part]
            with av.open(part.path) as inp:
                vin = inp.streams.video[0]
                packets = (p for p in inp.demux(vin) if p.pts is not None)
                for k, packet in enumerate(packets):
                    if k >= run.stop:
                        break
                    if k < run.first:
                        continue
                    pts, dts = packet.pts + run.shift, (packet.dts if packet.dts is not None else packet.pts) + run.shift
                    packet.stream = vout
                    packet.pts, packet.dts, packet.time_base = pts, dts, part.time_base
                    end = max(end, float((pts + (packet.duration or 0)) * part.time_base))
                    out.mux(packet)
                    frames += 1
                    if track is not None:
                        track.write_until(float(dts * part.time_base))
        if track is not None:
            track.finish()
            track = None
    finally:
        if track is not None:
            track.close()
    return frames, end


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
