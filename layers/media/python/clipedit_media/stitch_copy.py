"""When the stitched video can be the parts' own packets (no re-encode), and which packets.

A cut seam can be stream-copied only when the result is exactly what a re-encode would show:

- every part has the same codec parameters (codec, size = the output size, pixel format, extradata,
  time base) and the plan's frame rate, so one track header describes them all;
- in each part, the frame nearest the start of its stretch is a keyframe, and the stretch ends at a
  keyframe or at the part's end, so a run of whole GOPs is copied;
- those GOPs are closed (the copied packets show exactly the frames of the stretch: no B-frame
  reaches into a neighbouring GOP), and the shifted timestamps still decode in order.

Otherwise `plan_copy` returns None with the reason, and the caller re-encodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from clipedit.domain.stitching import StitchPlan
from clipedit_media.parts import PartFacts

__all__ = ["CopyRun", "plan_copy", "stretches"]

_RATE_TOLERANCE = 0.001  # relative difference in frame rate still treated as equal


@dataclass(frozen=True)
class CopyRun:
    """Copy ``part``'s packets [first, stop) (decode order), adding ``shift`` ticks of its time base."""

    part: int
    first: int
    stop: int
    shift: int


def stretches(plan: StitchPlan) -> list[tuple[float, float]]:
    """Each part's share of the output timeline with cut seams: [b_{i-1}, b_i)."""
    edges = (0.0, *plan.boundaries, plan.duration)
    return list(zip(edges, edges[1:]))


def plan_copy(parts: list[PartFacts], plan: StitchPlan, width: int, height: int) -> tuple[list[CopyRun] | None, str]:
    """The packet runs to copy, or (None, why not)."""
    if plan.seam != "cut":
        return None, "crossfade seams are blended (re-encoded)"
    first = parts[0]
    for part in parts:
        if part.copy_key != first.copy_key:
            return None, f"part {part.index}'s codec parameters differ from part 0's"
        if abs(part.fps - plan.fps) > _RATE_TOLERANCE * plan.fps:
            return None, f"part {part.index} is {part.fps:g} fps, the output {plan.fps:g} fps"
    if (first.width, first.height) != (width, height):
        return None, f"the parts are {first.width}x{first.height}, the output {width}x{height}"
    half = 0.5 / plan.fps
    runs: list[CopyRun] = []
    for part, window, (start, end) in zip(parts, plan.parts, stretches(plan)):
        run, why = _run(part, start - window.start, end - window.start, start, half)
        if run is None:
            return None, why
        runs.append(run)
    frames = sum(r.stop - r.first for r in runs)
    if abs(frames - round(plan.duration * plan.fps)) > 1:
        return None, f"the copied GOPs hold {frames} frames, not {round(plan.duration * plan.fps)}"
    if not _decodes_in_order(parts, runs):
        return None, "the shifted timestamps would not decode in order"
    return runs, "every seam falls on a keyframe of closed GOPs with equal codec parameters"


def _run(part: PartFacts, lo: float, hi: float, out_start: float, half: float) -> tuple[CopyRun | None, str]:
    """The whole GOPs of ``part`` covering local [lo, hi), placed at output time ``out_start``."""
    packets = part.packets
    by_time = sorted(range(len(packets)), key=lambda k: packets[k].pts)
    times = [part.local(packets[k].pts) for k in by_time]
    if times[-1] + 2 * half < hi - half:
        return None, f"part {part.index} is shorter than its stretch"  # the re-encode names it precisely
    a = min(range(len(times)), key=lambda k: abs(times[k] - lo))
    if abs(times[a] - lo) > half or not packets[by_time[a]].key:
        return None, f"part {part.index} has no keyframe at its seam ({lo:.3f} s)"
    b = next((k for k in range(len(times)) if times[k] >= hi - half), len(times))
    if b < len(times) and not packets[by_time[b]].key:
        return None, f"part {part.index} has no keyframe at its end seam ({hi:.3f} s)"
    first = by_time[a]
    stop = by_time[b] if b < len(times) else len(packets)
    if stop <= first:
        return None, f"part {part.index}'s keyframes are out of decode order"
    copied = {packets[k].pts for k in range(first, stop)}
    shown = {packets[by_time[k]].pts for k in range(a, b)}
    if copied != shown:
        return None, f"part {part.index}'s GOPs are open at a seam"
    shift = round(out_start / part.time_base) - packets[first].pts  # the keyframe lands on out_start
    return CopyRun(part.index, first, stop, shift), ""


def _decodes_in_order(parts: list[PartFacts], runs: list[CopyRun]) -> bool:
    last_dts = None
    for run in runs:
        for p in parts[run.part].packets[run.first:run.stop]:
            dts, pts = p.dts + run.shift, p.pts + run.shift
            if dts > pts or (last_dts is not None and dts <= last_dts):
                return False
            last_dts = dts
    return True
