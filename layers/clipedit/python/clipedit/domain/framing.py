"""What the prepare step does to a clip before the edit: the plan, as plain numbers.

The planner (``clipedit.domain.prepare_plan``) turns the probed facts and the user's framing fields
into a `PreparePlan`; the media layer (``clipedit_media``, PyAV) executes it frame by frame. The
plan is the whole contract between the two: nothing else about the job reaches the media code.

Geometry is in *display* pixels: the frame as a viewer sees it, after the clip's display-matrix
rotation is applied (a portrait phone clip coded 1920x1080 with rotation 90 is 1080x1920 here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Reframe = Literal["none", "crop", "pad"]
# "center", "auto" (follow the subject), or a fixed point as (x, y) fractions of the frame.
Focus = Literal["center", "auto"] | tuple[float, float]


@dataclass(frozen=True)
class PreparePlan:
    source_width: int  # display size of the source (after rotation)
    source_height: int
    output_width: int  # even numbers (H.264 4:2:0)
    output_height: int
    rotation_degrees: int = 0  # 0/90/180/270: the display rotation to bake into the pixels
    trim_start: float = 0.0  # seconds from the source's first frame
    trim_end: float | None = None  # seconds; None = to the end
    reframe: Reframe = "none"
    focus: Focus = "center"
    # crop: the window's size in source display pixels (its position comes from ``focus``);
    # none/pad: the whole source frame (pad letterboxes it onto a blurred, darkened copy of itself).
    crop_width: int | None = None
    crop_height: int | None = None
    fps: float | None = None  # output frame rate; None keeps the source's
    max_output_bytes: int | None = None  # the encoder's budget (size limit) for the whole file
    keep_audio: bool = True
    reasons: tuple[str, ...] = field(default_factory=tuple)  # human words: what is done and why

    @property
    def duration_hint(self) -> float | None:
        return None if self.trim_end is None else self.trim_end - self.trim_start


# ---------------------------------------------------------------------------------------------
# Geometry helpers shared by the planner and the media step (pure integer maths, display pixels)


def even(value: float, *, minimum: int = 2) -> int:
    """The nearest even integer at or below ``value`` (H.264 4:2:0 needs even sizes and offsets)."""
    return max(minimum, int(value) // 2 * 2)


def clamp_origin(centre: float, window: int, extent: int) -> int:
    """The window's even start offset that puts its centre nearest ``centre`` while staying inside
    ``[0, extent]``."""
    start = min(max(centre - window / 2, 0.0), float(extent - window))
    return min(even(start, minimum=0), extent - window)


def crop_origin(frame_width: int, frame_height: int, crop_width: int, crop_height: int,
                focus: Focus) -> tuple[int, int]:
    """Top-left of a fixed crop window: the frame centre for ``center``, or the point ``(x, y)``
    (fractions of the frame) as the window centre, clamped so the window stays inside the frame.
    ``auto`` starts at the centre; the media step moves it frame by frame."""
    fx, fy = (0.5, 0.5) if isinstance(focus, str) else focus
    return (clamp_origin(fx * frame_width, crop_width, frame_width),
            clamp_origin(fy * frame_height, crop_height, frame_height))


@dataclass(frozen=True)
class PadLayout:
    """Where the whole source frame sits on the output canvas (the rest is the blurred fill)."""

    width: int
    height: int
    x: int
    y: int


def pad_layout(source_width: int, source_height: int, output_width: int, output_height: int) -> PadLayout:
    """The source scaled to fit inside the output (aspect kept, even sizes), centred."""
    scale = min(output_width / source_width, output_height / source_height)
    width = min(even(round(source_width * scale)), output_width)
    height = min(even(round(source_height * scale)), output_height)
    return PadLayout(width, height, even((output_width - width) / 2, minimum=0),
                     even((output_height - height) / 2, minimum=0))
