"""How the edited parts of a long clip become one video: the plan, as plain numbers.

A long clip is edited as parts (each a job of its own, 3-10 s, cut from the source with the same
framing). The planner (``clipedit.domain.segments``) chooses the parts; the media layer
(``clipedit_media.stitch``, PyAV) executes this plan. The plan is the whole contract between the
two: nothing else about the jobs reaches the media code.

Times are seconds on the source's timeline *after* the user's trim (0 = the first kept frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Seam = Literal["cut", "crossfade"]


@dataclass(frozen=True)
class PartWindow:
    """The stretch of the source one part was edited over (its edit input), overlap included."""

    index: int  # 0-based, in timeline order
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class StitchPlan:
    parts: tuple[PartWindow, ...]
    # The seam points between consecutive parts (len(parts) - 1 values, increasing). With ``cut``
    # part i fills [boundaries[i-1], boundaries[i]); with ``crossfade`` parts i and i+1 are blended
    # linearly over [boundary - overlap/2, boundary + overlap/2], which both their windows cover.
    boundaries: tuple[float, ...]
    duration: float  # the stitched output's length (the source's, after trim)
    seam: Seam = "cut"
    overlap: float = 0.0  # seconds of shared footage at each seam (0 for cut)
    fps: float = 24.0  # the output frame rate (the model's)
    width: int | None = None  # output size; None = the first part's
    height: int | None = None
    # The original soundtrack laid over the whole result: the source's audio from ``audio_offset``
    # (the user's trim start) for ``duration`` seconds. False = no audio track in the output.
    keep_audio: bool = True
    audio_offset: float = 0.0
