"""The PyAV side of long clips (clipedit_media: cut candidates, the stitch) behind the use case's
port. Imported only by the prepare function, the one function with the media layer attached."""

from __future__ import annotations

from typing import Any, Sequence

from clipedit.domain.errors import MediaRejected
from clipedit.domain.stitching import StitchPlan


def _times(candidates: Any, name: str) -> list[float]:
    value = candidates.get(name) if isinstance(candidates, dict) else getattr(candidates, name, None)
    return sorted(float(t) for t in value or ())


class PyAVLongClipMedia:
    def cut_candidates(self, path: str) -> tuple[list[float], list[float]]:
        from clipedit_media.cuts import CutAnalysisError, find_cut_candidates

        try:
            candidates = find_cut_candidates(path)
        except CutAnalysisError as error:
            raise MediaRejected(f"the clip could not be decoded for its cut points: {error}",
                                code="CLIP_UNDECODABLE") from error
        return _times(candidates, "scene_cuts"), _times(candidates, "keyframes")

    def stitch(self, part_paths: Sequence[str], source_path: str, target_path: str, plan: StitchPlan) -> dict[str, Any]:
        from dataclasses import asdict

        from clipedit_media.stitch import StitchError, stitch_parts

        try:
            result = stitch_parts(list(part_paths), source_path, target_path, plan)
        except (StitchError, ValueError) as error:
            # A part missing, undecodable or too short, or a plan the parts contradict: stitching
            # again cannot help, so the parent fails with the reason instead of the request retrying.
            raise MediaRejected(str(error), code="STITCH_FAILED") from error
        return {**asdict(result), "duration_seconds": result.duration}
