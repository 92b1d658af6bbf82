"""The PyAV side of long clips (clipedit_media: cut candidates, the stitch) behind the use case's
port. Imported only by the prepare function, the one function with the media layer attached."""

from __future__ import annotations

from typing import Any, Sequence

from clipedit.domain.stitching import StitchPlan


def _times(candidates: Any, name: str) -> list[float]:
    value = candidates.get(name) if isinstance(candidates, dict) else getattr(candidates, name, None)
    return sorted(float(t) for t in value or ())


class PyAVLongClipMedia:
    def cut_candidates(self, path: str) -> tuple[list[float], list[float]]:
        from clipedit_media.cuts import find_cut_candidates

        candidates = find_cut_candidates(path)
        return _times(candidates, "scene_cuts"), _times(candidates, "keyframes")

    def stitch(self, part_paths: Sequence[str], source_path: str, target_path: str, plan: StitchPlan) -> dict[str, Any]:
        from dataclasses import asdict, is_dataclass

        from clipedit_media.stitch import stitch_parts

        result = stitch_parts(list(part_paths), source_path, target_path, plan)
        facts = asdict(result) if is_dataclass(result) else dict(result or {})
        return {k: v for k, v in facts.items() if isinstance(v, (int, float, str, bool)) or v is None}
