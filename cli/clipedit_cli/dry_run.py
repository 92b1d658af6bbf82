"""`clipedit submit --dry-run`: what the stack would do with a local clip, without sending anything.

The same checks and the same planner as the stack (the probe, the long-clip decision, the parts at
scene cuts or keyframes found with PyAV, the cost estimate); nothing is uploaded or submitted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from clipedit.domain.errors import MediaRejected, SpecError
from clipedit.domain.media import limits_for, probe_video
from clipedit.domain.prepare_plan import parse_framing, plan_prepare
from clipedit.domain.segments import (
    DEFAULT_MAX_CLIP_SECONDS,
    SegmentRequest,
    decide_long_clip,
    estimate_cost,
    kept_range,
    plan_parts,
)
from clipedit.domain.stitching import PartWindow, StitchPlan


class FileRangeReader:
    """Random access to a local file (the probe reads a few blocks, not the whole clip)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.size = os.path.getsize(path)

    def read(self, offset: int, length: int) -> bytes:
        with open(self._path, "rb") as source:
            source.seek(offset)
            return source.read(length)


def _cut_candidates(path: Path) -> tuple[list[float], list[float], str]:
    try:
        from clipedit_media.cuts import find_cut_candidates
    except ImportError:  # the media layer is not installed with this command line: even lengths
        return [], [], "even lengths (PyAV not available here)"
    found = find_cut_candidates(str(path))
    return list(found.scene_cuts), list(found.keyframes), "scene cuts and keyframes"


def dry_run(path: Path, document: Mapping[str, Any], *,
            max_clip_seconds: int = DEFAULT_MAX_CLIP_SECONDS) -> dict[str, Any]:
    """The plan as a JSON-able map; ``error_code``/``error_message`` when the stack would reject it."""
    mode, model = str(document.get("mode") or "pro"), str(document.get("model") or "o3")
    result: dict[str, Any] = {"clip": str(path), "submitted": False}
    try:
        framing = parse_framing(document)
        limits = limits_for(model)
        facts = probe_video(FileRangeReader(path))
        start, end = kept_range(facts, framing)
        result.update(duration_seconds=round(facts.duration_seconds, 3), kept_seconds=round(end - start, 3))
        decided = decide_long_clip(facts, framing, limits, max_clip_seconds=max_clip_seconds, mode=mode)
        keep_audio = document.get("keep_audio") is not False
        if isinstance(decided, SegmentRequest):
            scene_cuts, keyframes, found = _cut_candidates(path)
            plan = plan_parts(decided, framing, limits, scene_cuts=scene_cuts, keyframes=keyframes,
                              keep_audio=keep_audio)
            result["cut_points_from"] = found
        else:
            plan_prepare(facts, decided, limits, keep_audio=keep_audio)  # the same rejections as the stack
            trim = decided.trim or (0.0, facts.duration_seconds)
            length = min(trim[1], facts.duration_seconds) - trim[0]
            plan = StitchPlan(parts=(PartWindow(0, 0.0, round(length, 3)),), boundaries=(), duration=round(length, 3))
    except (SpecError, MediaRejected) as problem:
        return {**result, "error_code": problem.code, "error_message": problem.message}
    estimate = estimate_cost(plan, mode=mode)
    return {**result, "long_clip": framing.long_clip or "reject", "seam": plan.seam, "overlap": plan.overlap,
            "parts": [{"part": p.index + 1, "start": p.start, "end": p.end, "seconds": round(p.length, 3)}
                      for p in plan.parts],
            "boundaries": list(plan.boundaries),
            "estimate": {"parts": estimate.parts, "billed_seconds": estimate.billed_seconds,
                         "units": estimate.units, "mode": mode}}
