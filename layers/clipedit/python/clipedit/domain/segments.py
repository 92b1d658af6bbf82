"""Long clips: what to do with a clip longer than the model edits, and where to cut it into parts.

Pure numbers, no media: the prepare step finds the cut candidates (scene cuts and keyframes, PyAV)
and hands them here; the plan it gets back (`StitchPlan`) is what the parts are edited over and
what the stitch step executes.

How parts are chosen (docs/long-clips.md):
- as few parts as the model's longest edit allows (each part is a provider task and a seam);
- every part 3-10 s (the model's limits), so never a part under 3 s;
- among the plans with that many parts, seams at scene cuts first (a cut hides a change in look),
  then at keyframes (the part starts where the source can be cut cleanly), then at even lengths;
- with ``crossfade`` each part's window reaches ``overlap / 2`` past each of its seams, and the
  window (not only the part's core) stays within 3-10 s.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping, Sequence

from clipedit.domain.errors import MediaRejected
from clipedit.domain.framing import PreparePlan
from clipedit.domain.media import MediaLimits, VideoFacts
from clipedit.domain.prepare_plan import DEFAULT_OVERLAP, Framing, _reject_unfixable, plan_prepare
from clipedit.domain.stitching import PartWindow, StitchPlan

MODEL_FPS = 24.0  # what the model returns; the stitched output's rate
GRID_SECONDS = 0.25  # where seams may fall when no candidate fits (a fallback, never preferred)
# Preference of a seam point, lower is better: a scene cut, a keyframe, an even split, the grid.
SCENE, KEYFRAME, EVEN, GRID = 0, 1, 2, 3
EPSILON = 1e-6
# Provider units per second of input video (Kling's published video-edit rates; the emulator bills
# the same). Each part is billed on its own length, rounded to the nearest second. A pricing table
# is being added elsewhere: `estimate_cost` is the one place that would read it.
EDIT_UNITS_PER_SECOND = {"std": 0.9, "pro": 1.2}
DEFAULT_MAX_CLIP_SECONDS = 120


@dataclass(frozen=True)
class CostEstimate:
    parts: int
    billed_seconds: int  # the parts' lengths, each rounded to the second (overlaps included)
    units: float  # Kling units at the job's mode

    def describe(self) -> str:
        return f"{self.parts} parts, {self.billed_seconds} s of editing, about {self.units:g} units"


@dataclass(frozen=True)
class SegmentRequest:
    """A clip to edit in parts: the kept stretch of the source (after the user's trim)."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def plan_segments(duration: float, *, scene_cuts: Sequence[float] = (), keyframes: Sequence[float] = (),
                  min_part: float = 3.0, max_part: float = 10.0, seam: str = "cut",
                  overlap: float = DEFAULT_OVERLAP, keep_audio: bool = True, audio_offset: float = 0.0,
                  width: int | None = None, height: int | None = None) -> StitchPlan:
    """The parts of a ``duration``-second clip. Candidate times are on the same timeline (0 = the
    first kept frame); those outside the clip are ignored."""
    shared = overlap if seam == "crossfade" else 0.0
    longest = max_part - shared  # a part's core plus its overlaps must still fit the model
    if duration <= max_part + EPSILON:
        cores = [0.0, duration]
    else:
        cores = _best_boundaries(duration, min_part, longest, scene_cuts, keyframes)
    boundaries = tuple(round(b, 3) for b in cores[1:-1])
    edges = (0.0, *boundaries, round(duration, 3))
    parts = tuple(
        PartWindow(index, round(max(0.0, edges[index] - shared / 2) if index else 0.0, 3),
                   round(min(duration, edges[index + 1] + shared / 2), 3) if index < len(edges) - 2 else round(duration, 3))
        for index in range(len(edges) - 1))
    return StitchPlan(parts=parts, boundaries=boundaries, duration=round(duration, 3),
                      seam="crossfade" if shared else "cut", overlap=shared, fps=MODEL_FPS, width=width,
                      height=height, keep_audio=keep_audio, audio_offset=round(audio_offset, 3))


def _best_boundaries(duration: float, shortest: float, longest: float, scene_cuts: Sequence[float],
                     keyframes: Sequence[float]) -> list[float]:
    """0, the seams, ``duration``: fewest parts, then the best-kind seams, then the most even lengths
    (a shortest path over candidate points, each step one part of ``shortest``-``longest`` s)."""
    count = math.ceil(duration / longest - EPSILON)
    kinds: dict[float, int] = {}

    def offer(time: float, kind: int) -> None:
        time = round(time, 3)
        if shortest - EPSILON <= time <= duration - shortest + EPSILON:
            kinds[time] = min(kind, kinds.get(time, kind))

    for step in range(1, int(duration / GRID_SECONDS) + 1):
        offer(step * GRID_SECONDS, GRID)
    for index in range(1, count):
        offer(duration * index / count, EVEN)
    for time in keyframes:
        offer(float(time), KEYFRAME)
    for time in scene_cuts:
        offer(float(time), SCENE)
    points = [0.0, *sorted(kinds), duration]
    kind_at = [0, *(kinds[p] for p in points[1:-1]), 0]
    # best[j] = (parts, summed seam kinds, summed squared lengths) of the best path from 0 to points[j]
    best: list[tuple[int, int, float] | None] = [None] * len(points)
    came_from = [0] * len(points)
    best[0] = (0, 0, 0.0)
    for j in range(1, len(points)):
        low = bisect.bisect_left(points, points[j] - longest - EPSILON)
        high = bisect.bisect_right(points, points[j] - shortest + EPSILON)
        for i in range(low, min(high, j)):
            if best[i] is None:
                continue
            length = points[j] - points[i]
            parts, kinds_sum, squares = best[i]  # type: ignore[misc]
            candidate = (parts + 1, kinds_sum + kind_at[j], squares + length * length)
            if best[j] is None or candidate < best[j]:  # type: ignore[operator]
                best[j], came_from[j] = candidate, i
    if best[-1] is None:  # pragma: no cover - the grid always offers a path for duration >= shortest
        raise ValueError(f"no way to cut {duration} s into parts of {shortest}-{longest} s")
    path = [len(points) - 1]
    while path[-1] != 0:
        path.append(came_from[path[-1]])
    return [points[i] for i in reversed(path)]


def estimate_cost(plan: StitchPlan, *, mode: str) -> CostEstimate:
    seconds = sum(max(1, round(part.length)) for part in plan.parts)
    return CostEstimate(parts=len(plan.parts), billed_seconds=seconds,
                        units=round(seconds * EDIT_UNITS_PER_SECOND.get(mode, EDIT_UNITS_PER_SECOND["pro"]), 2))


# --- the decision at submit: reject, trim, or edit in parts --------------------------------------


def part_limits(limits: MediaLimits) -> tuple[float, float]:
    """The shortest and longest part in whole seconds (the limits carry a rounding tolerance)."""
    return float(math.ceil(limits.min_seconds - 0.1)), float(math.floor(limits.max_seconds + 1e-9))


def kept_range(facts: VideoFacts, framing: Framing) -> tuple[float, float]:
    start, end = framing.trim if framing.trim else (0.0, facts.duration_seconds)
    return start, min(end, facts.duration_seconds)


def decide_long_clip(facts: VideoFacts, framing: Framing, limits: MediaLimits, *, max_clip_seconds: float,
                     mode: str) -> Framing | SegmentRequest:
    """The framing to plan the edit with (the user's, or the user's cut to the model's length with
    ``long_clip: trim``), or a `SegmentRequest` when the clip is edited in parts.

    Raises `MediaRejected`: CLIP_TOO_LONG (the default, ``reject``; the message names ``trim`` and
    ``segment`` with the estimated cost of ``segment``) or CLIP_OVER_MAX_SECONDS."""
    start, end = kept_range(facts, framing)
    length = end - start
    if length <= limits.max_seconds:
        return framing
    # The trim and length checks that do not depend on the model's longest edit come first.
    _reject_unfixable(facts, framing, replace(limits, max_seconds=math.inf), length)
    if framing.long_clip == "trim":
        return replace(framing, trim=(start, start + part_limits(limits)[1]))
    over_cap = length > max_clip_seconds
    if framing.long_clip == "segment":
        if over_cap:
            raise MediaRejected(
                f"the clip is {length:.2f} s long; this stack edits clips of at most {max_clip_seconds:g} s in parts "
                f"(MaxClipSeconds). Set trim to edit a part of it", code="CLIP_OVER_MAX_SECONDS")
        return SegmentRequest(start, end)
    if over_cap:
        hint = (f"set long_clip: trim to edit its first {limits.max_seconds:g} s (segment takes clips of up to "
                f"{max_clip_seconds:g} s; trim it first)")
    else:
        shortest, longest = part_limits(limits)
        plan = plan_segments(length, min_part=shortest, max_part=longest,
                             seam=framing.seam or "cut", overlap=framing.overlap or DEFAULT_OVERLAP)
        hint = (f"set long_clip: trim to edit its first {limits.max_seconds:g} s, or long_clip: segment to edit "
                f"it in parts and stitch them back (estimated {estimate_cost(plan, mode=mode).describe()})")
    raise MediaRejected(f"the clip is {length:.2f} s long; the model edits at most {limits.max_seconds:g} s. "
                        f"{hint[0].upper()}{hint[1:]}", code="CLIP_TOO_LONG")


def plan_parts(request: SegmentRequest, framing: Framing, limits: MediaLimits, *, scene_cuts: Sequence[float] = (),
               keyframes: Sequence[float] = (), keep_audio: bool = True) -> StitchPlan:
    """The parts of a segmented clip; candidate times are the source's (the user's trim is applied)."""
    shortest, longest = part_limits(limits)

    def on_timeline(times: Sequence[float]) -> list[float]:
        return [t - request.start for t in times if request.start < t < request.end]

    return plan_segments(request.length, scene_cuts=on_timeline(scene_cuts), keyframes=on_timeline(keyframes),
                         min_part=shortest, max_part=longest, seam=framing.seam or "cut",
                         overlap=framing.overlap or DEFAULT_OVERLAP, keep_audio=keep_audio, audio_offset=request.start)


def part_framing(framing: Framing, window: PartWindow, *, trim_start: float) -> Framing:
    """A part's framing: the parent's (same reframe, focus, platform) over the part's window."""
    return replace(framing, trim=(round(trim_start + window.start, 3), round(trim_start + window.end, 3)),
                   long_clip=None, seam=None, overlap=None)


def check_first_part(facts: VideoFacts, framing: Framing, limits: MediaLimits, request: SegmentRequest,
                     *, keep_audio: bool) -> PreparePlan | None:
    """Everything but the length checked before any part exists: a clip that one part cannot be
    made of (unfixable size, rotation with normalize off, ...) is rejected on the parent, unpaid."""
    first = PartWindow(0, 0.0, min(request.length, part_limits(limits)[1]))
    return plan_prepare(facts, part_framing(framing, first, trim_start=request.start), limits, keep_audio=keep_audio)


# --- the plan on the job record ------------------------------------------------------------------


def stitch_plan_to_record(plan: StitchPlan) -> dict[str, Any]:
    record = {k: v for k, v in asdict(plan).items() if v is not None}
    record["parts"] = [{"index": p.index, "start": p.start, "end": p.end} for p in plan.parts]
    record["boundaries"] = list(plan.boundaries)
    return record


def stitch_plan_from_record(record: Mapping[str, Any]) -> StitchPlan:
    fields = {k: v for k, v in record.items() if k in StitchPlan.__dataclass_fields__}
    fields["parts"] = tuple(PartWindow(int(p["index"]), float(p["start"]), float(p["end"])) for p in record["parts"])
    fields["boundaries"] = tuple(float(b) for b in record.get("boundaries") or ())
    for name in ("duration", "overlap", "fps", "audio_offset"):
        if name in fields:
            fields[name] = float(fields[name])
    for name in ("width", "height"):
        if fields.get(name) is not None:
            fields[name] = int(fields[name])
    return StitchPlan(**fields)
