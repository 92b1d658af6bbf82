"""Where a long clip can be split well: its keyframes and its scene cuts, as seconds from its first frame.

The long-clip planner prefers part boundaries at a scene cut (a seam there is invisible: the picture
changes anyway) and then at a keyframe (the prepare step then starts a part on a clean picture, and
a seam there can be stream-copied when the parts keep the source's GOPs); even lengths otherwise.

Keyframes come from the packet index alone (demux, no decode). Scene cuts need every frame, but only
as a 40-px-wide grey thumbnail: each frame is decoded (loop filter skipped: analysis does not need
it), shrunk by swscale, and compared with the previous one as the mean absolute difference. A frame
is a cut when that difference is large in absolute terms, several times the recent typical
difference (so a fast pan is not a cut), and still there one frame later (so a flash is not a cut).
Memory is three thumbnails and a short window of recent differences, whatever the clip's length.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

import av
import av.error
import numpy as np

__all__ = ["CutCandidates", "find_cut_candidates", "CutAnalysisError"]

THUMB_WIDTH = 160  # swscale target (fast_bilinear) before 4x4 block averaging -> 40 px wide
BLOCK = 4
MIN_CUT_DIFFERENCE = 0.08  # mean |grey difference| / 255 a cut must reach
CUT_TO_BASELINE = 3.0  # ... and this many times the median difference of the frames before it
BASELINE_FRAMES = 12
PERSISTENCE = 0.5  # the next frame must still differ from the pre-cut frame by this share


class CutAnalysisError(Exception):
    """The clip could not be read for cut candidates."""


@dataclass(frozen=True)
class CutCandidates:
    duration: float  # seconds of video (first frame to the end of the last)
    fps: float
    keyframes: tuple[float, ...]  # sorted, seconds from the first frame (0.0 is normally one)
    scene_cuts: tuple[float, ...] = ()  # sorted: the first frame of each new shot
    scene_scores: tuple[float, ...] = ()  # the difference at each cut (0-1), same order


def find_cut_candidates(path: str, *, scenes: bool = True) -> CutCandidates:
    """Keyframes (always) and scene cuts (``scenes=True``: decodes the clip once) of ``path``."""
    try:
        with av.open(path) as inp:
            if not inp.streams.video:
                raise CutAnalysisError(f"no video track: {path}")
            vin = inp.streams.video[0]
            origin, keyframes, end = _keyframes(inp, vin)
            rate = vin.average_rate or vin.guessed_rate or vin.base_rate
            fps = float(rate) if rate else 0.0
        cuts: list[tuple[float, float]] = []
        if scenes:
            with av.open(path) as inp:
                cuts = _scene_cuts(inp, inp.streams.video[0], origin)
    except av.error.FFmpegError as exc:
        raise CutAnalysisError(f"could not read {path}: {exc}") from exc
    return CutCandidates(duration=round(end - origin, 4), fps=round(fps, 3),
                         keyframes=tuple(round(k - origin, 4) for k in keyframes),
                         scene_cuts=tuple(round(t, 4) for t, _ in cuts),
                         scene_scores=tuple(round(s, 4) for _, s in cuts))


def _keyframes(inp: av.container.InputContainer, vin: av.video.stream.VideoStream) -> tuple[float, list[float], float]:
    """(first frame time, keyframe times, end time) from the packets alone."""
    tb = vin.time_base
    first, end, keys = None, 0.0, []
    for packet in inp.demux(vin):
        if packet.pts is None:
            continue
        t = float(packet.pts * tb)
        first = t if first is None else min(first, t)
        end = max(end, float((packet.pts + (packet.duration or 0)) * tb))
        if packet.is_keyframe:
            keys.append(t)
    if first is None:
        raise CutAnalysisError("the video track has no frames")
    return first, sorted(keys), end


def _scene_cuts(inp: av.container.InputContainer, vin: av.video.stream.VideoStream, origin: float) -> list[tuple[float, float]]:
    vin.thread_type = "AUTO"
    vin.codec_context.options = {"skip_loop_filter": "all"}  # AVCodecContext option, read at open
    thumbs: deque[tuple[float, np.ndarray]] = deque(maxlen=4)  # c-2, c-1, c (judged), c+1
    recent: deque[float] = deque(maxlen=BASELINE_FRAMES)
    cuts: list[tuple[float, float]] = []
    size = None
    for frame in inp.decode(vin):
        if frame.pts is None:
            continue
        if size is None:
            height = max(BLOCK, round(frame.height * THUMB_WIDTH / frame.width) // BLOCK * BLOCK)
            size = (THUMB_WIDTH, height)
        grey = frame.reformat(width=size[0], height=size[1], format="gray", interpolation="FAST_BILINEAR").to_ndarray()
        small = grey.reshape(size[1] // BLOCK, BLOCK, size[0] // BLOCK, BLOCK).mean(axis=(1, 3), dtype=np.float32)
        thumbs.append((float(frame.pts * frame.time_base) - origin, small))
        if len(thumbs) >= 3:  # judge the frame before the newest (frame 1 first: frame 0 stands in for c-2)
            seen = list(thumbs)
            _judge((seen[-4] if len(seen) == 4 else seen[0], seen[-3], seen[-2]), seen[-1][1], recent, cuts)
    if len(thumbs) >= 2:  # the last frame: nothing after it to confirm, judge it against itself
        seen = list(thumbs)
        _judge((seen[-3] if len(seen) >= 3 else seen[0], seen[-2], seen[-1]), seen[-1][1], recent, cuts)
    return cuts


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean()) / 255


def _judge(window: tuple[tuple[float, np.ndarray], ...], after: np.ndarray, recent: deque[float],
           cuts: list[tuple[float, float]]) -> None:
    """Is the last frame of ``window`` (c-2, c-1, c) the first frame of a new shot? ``after`` is
    frame c+1. Records the change either way, for the baseline."""
    (_, earlier), (_, before), (t, image) = window
    change = _difference(image, before)
    baseline = statistics.median(recent) if recent else 0.0
    if change >= MIN_CUT_DIFFERENCE and change >= CUT_TO_BASELINE * baseline:
        lasting = _difference(after, before)  # not a one-frame flash at c
        settled = _difference(image, earlier)  # not the end of a one-frame flash at c-1
        if lasting >= PERSISTENCE * change and settled >= PERSISTENCE * change:
            cuts.append((t, change))
    recent.append(change)
