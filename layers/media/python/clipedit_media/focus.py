"""``focus: auto``: a crop window that follows the subject, smoothed so it never jitters.

Everything here is pure numpy over small grayscale frames (the media step hands in each output
frame downscaled to `ANALYSIS_WIDTH` px wide), so it is testable on numbers without video.

The subject is the region of strongest motion (frame difference above the compression noise),
weighted by local contrast so a flat lighting change counts less than a textured moving thing. The
saliency is summed into a profile along each axis the window can move on; the target is the window
placement that holds the most of it. A camera-operator controller then moves the window:

* a **dead zone** with hysteresis: a still window starts moving only when the target is more than
  `DEAD_ZONE_FRACTION` of the window's size from its centre, then glides until it is nearly on
  target and stops (a still or fidgeting subject causes no oscillation);
* while moving it closes `GAIN` of the remaining error per frame (no overshoot: each step is
  smaller than the error), and **never more than `MAX_STEP_FRACTION` of the frame per frame**;
* with no motion in a frame the profile is held, so a subject that stops keeps its window.

The design is causal (one decode, no lookahead buffer): an analysis pass over the whole clip would
decode the source twice, and decoding alone measured ~50 % of the `ffmpeg` command line's whole
crop+scale+encode time for a 4K clip (see docs/platform-variants-media.md), while a lookahead
buffer costs ~12 MB of RAM per buffered 4K frame. With a subject slower than the step bound the
causal window keeps it inside; the tests measure that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

ANALYSIS_WIDTH = 160  # px: frames are analysed at this width (height keeps the aspect)
MAX_STEP_FRACTION = 0.02  # the bound: the window moves at most 2 % of the frame extent per frame
DEAD_ZONE_FRACTION = 0.10  # of the window extent: no move while the target is this close
GAIN = 0.25  # share of the error closed in one frame while moving (no overshoot: < 1)
SETTLE_FRACTION = 0.2  # a moving window stops this close to the target (share of the dead zone)
NOISE_LEVEL = 6  # grey levels: frame differences up to this are compression noise, not motion
MIN_MOTION_SHARE = 0.001  # share of analysis pixels that must move for a frame to count as motion
TIE_SHARE = 0.98  # placements within 2 % of the best count as equal: the nearest one wins


def analysis_size(width: int, height: int) -> tuple[int, int]:
    """The small frame size the analysis runs at (even, at least 2x2)."""
    w = min(ANALYSIS_WIDTH, width)
    h = max(2, round(height * w / width) // 2 * 2)
    return w, h


def saliency(previous: np.ndarray | None, current: np.ndarray) -> np.ndarray | None:
    """Per-pixel saliency of ``current`` (2-D uint8 grey): motion above the noise, weighted by local
    contrast. ``None`` when nothing moved (the caller then holds what it had)."""
    cur = current.astype(np.int16)
    if previous is None:
        return None
    motion = np.maximum(np.abs(cur - previous.astype(np.int16)) - NOISE_LEVEL, 0).astype(np.float32)
    if np.count_nonzero(motion) < MIN_MOTION_SHARE * motion.size:
        return None
    gx = np.abs(np.diff(cur, axis=1, append=cur[:, -1:]))
    gy = np.abs(np.diff(cur, axis=0, append=cur[-1:, :]))
    contrast = (gx + gy).astype(np.float32)
    peak = float(contrast.max())
    weight = 0.5 + (contrast / peak if peak > 0 else 0.0)
    return motion * weight


def contrast_map(current: np.ndarray) -> np.ndarray:
    """Local contrast alone: where to start before anything has moved."""
    cur = current.astype(np.int16)
    gx = np.abs(np.diff(cur, axis=1, append=cur[:, -1:]))
    gy = np.abs(np.diff(cur, axis=0, append=cur[-1:, :]))
    return (gx + gy).astype(np.float32)


def best_centre(profile: np.ndarray, window: float, previous: float | None = None) -> float:
    """Where (in profile cells) to centre a ``window``-cell window: the placement holding the most
    of ``profile`` (among near-equal placements, the one nearest ``previous``: no flip-flopping
    between two equal subjects), then the saliency centroid inside it, so a subject smaller than
    the window sits in its middle rather than at whichever edge first contains it."""
    n = len(profile)
    w = max(1, min(n, round(window)))
    sums = np.convolve(profile, np.ones(w, np.float32), mode="valid")  # sums[i]: cells i..i+w-1
    best = float(sums.max())
    if best <= 0:
        return previous if previous is not None else n / 2
    starts = np.flatnonzero(sums >= TIE_SHARE * best)
    if previous is None:
        start = int(np.argmax(sums))
    else:
        start = int(starts[np.argmin(np.abs(starts + w / 2 - previous))])
    inside = profile[start:start + w]
    return float(start + np.dot(inside, np.arange(w) + 0.5) / inside.sum())


@dataclass
class AxisFollower:
    """The controller for one axis, in source pixels. ``centre`` is the window's current centre.

    Hysteresis: a still window starts moving only when the target leaves the dead zone, and then
    moves until it is within `SETTLE_FRACTION` of the dead zone of the target, so a subject that
    fidgets inside the dead zone never nudges it."""

    extent: int  # frame size along the axis
    window: int  # window size along the axis
    centre: float
    moving: bool = False

    def __post_init__(self) -> None:
        self.max_step = MAX_STEP_FRACTION * self.extent
        self.dead_zone = DEAD_ZONE_FRACTION * self.window
        self.centre = self._clamp(self.centre)

    def _clamp(self, centre: float) -> float:
        return min(max(centre, self.window / 2), self.extent - self.window / 2)

    def step(self, target: float) -> float:
        goal = self._clamp(target)
        error = goal - self.centre
        # At the frame's edge the window cannot overshoot, so no dead zone: go all the way (a
        # subject leaving the frame would otherwise sit a dead zone outside the window).
        at_edge = goal != target
        start, settle = (1.0, 1.0) if at_edge else (self.dead_zone, SETTLE_FRACTION * self.dead_zone)
        if not self.moving and abs(error) > start:
            self.moving = True
        if self.moving and abs(error) <= settle:
            self.moving = False
        if self.moving and at_edge and abs(error) <= 4:
            self.centre = goal  # the edge is a hard stop: land on it instead of creeping forever
        elif self.moving:
            move = min(GAIN * abs(error), self.max_step)
            self.centre = self._clamp(self.centre + (move if error > 0 else -move))
        return self.centre


def follow(targets: Iterable[float], extent: int, window: int, start: float | None = None) -> list[float]:
    """The window centres a stream of target centres produces (pure: numbers in, numbers out)."""
    out: list[float] = []
    follower: AxisFollower | None = None
    for target in targets:
        if follower is None:
            follower = AxisFollower(extent, window, target if start is None else start)
            out.append(follower.centre)
            continue
        out.append(follower.step(target))
    return out


class FocusTracker:
    """Causal auto focus for one clip: feed each output frame's small grey copy, get the crop
    window's top-left in source display pixels."""

    def __init__(self, frame_width: int, frame_height: int, crop_width: int, crop_height: int) -> None:
        self.frame = (frame_width, frame_height)
        self.crop = (crop_width, crop_height)
        self._previous: np.ndarray | None = None
        self._profiles: tuple[np.ndarray, np.ndarray] | None = None
        self._followers: tuple[AxisFollower, AxisFollower] | None = None

    def update(self, small: np.ndarray) -> tuple[int, int]:
        """``small``: the frame as 2-D uint8 grey at `analysis_size`. Returns (x, y), even."""
        h, w = small.shape
        sx, sy = w / self.frame[0], h / self.frame[1]  # source px -> analysis cells
        sal = saliency(self._previous, small)
        self._previous = small
        if sal is not None:
            self._profiles = (sal.sum(axis=0), sal.sum(axis=1))
        if self._profiles is not None:
            profiles = self._profiles
        else:  # nothing has moved yet: start on the strongest contrast
            con = contrast_map(small)
            profiles = (con.sum(axis=0), con.sum(axis=1))
        followers = self._followers
        previous = (None, None) if followers is None else (followers[0].centre * sx, followers[1].centre * sy)
        tx = best_centre(profiles[0], self.crop[0] * sx, previous[0]) / sx
        ty = best_centre(profiles[1], self.crop[1] * sy, previous[1]) / sy
        if followers is None:
            self._followers = (AxisFollower(self.frame[0], self.crop[0], tx),
                               AxisFollower(self.frame[1], self.crop[1], ty))
        else:
            followers[0].step(tx)
            followers[1].step(ty)
        fx, fy = self._followers  # type: ignore[misc]
        return _origin(fx.centre, self.crop[0], self.frame[0]), _origin(fy.centre, self.crop[1], self.frame[1])


def _origin(centre: float, window: int, extent: int) -> int:
    start = min(max(round(centre - window / 2), 0), extent - window)
    return start // 2 * 2


def window_path(frames: Sequence[np.ndarray], frame_width: int, frame_height: int,
                crop_width: int, crop_height: int) -> list[tuple[int, int]]:
    """The crop window's top-left for each frame of a sequence of small grey frames (pure)."""
    tracker = FocusTracker(frame_width, frame_height, crop_width, crop_height)
    return [tracker.update(frame) for frame in frames]
