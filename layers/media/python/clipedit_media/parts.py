"""The edited parts of a long clip, as the stitch step sees them: facts from a packet scan, and a
reader that hands out the part's frame for any local time, decoding forward one frame at a time.

A part's local time 0 is its first frame (the prepare step cut the part's input from the source at
``PartWindow.start``, and the model keeps timing), so source time t is local time t - start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error
from av.video.frame import VideoFrame

__all__ = ["StitchError", "PartFacts", "PacketInfo", "scan_part", "PartReader"]


class StitchError(Exception):
    """The parts cannot be stitched as planned (a part missing, undecodable or too short)."""


@dataclass(frozen=True)
class PacketInfo:
    pts: int
    dts: int
    duration: int
    key: bool


@dataclass(frozen=True)
class PartFacts:
    index: int
    path: str
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    extradata: bytes
    time_base: Fraction
    fps: float
    packets: tuple[PacketInfo, ...]  # decode order (only a few hundred for a 10 s part)
    first_pts: int  # the smallest pts: local time 0

    def local(self, pts: int) -> float:
        return float((pts - self.first_pts) * self.time_base)

    @property
    def length(self) -> float:
        """Seconds of picture: the last frame's end on the local timeline."""
        last = max(self.packets, key=lambda p: p.pts)
        frame = last.duration or (round(1 / (self.fps * self.time_base)) if self.fps else 0)
        return self.local(last.pts + frame)

    @property
    def copy_key(self) -> tuple[object, ...]:
        """What must be equal for packets of two parts to share one track."""
        return (self.codec, self.width, self.height, self.pix_fmt, self.extradata, self.time_base)


def scan_part(index: int, path: str) -> PartFacts:
    """Read a part's stream facts and packet index (demux only, no decode)."""
    if not os.path.exists(path):
        raise StitchError(f"part {index} is missing: {path}")
    try:
        with av.open(path) as inp:
            if not inp.streams.video:
                raise StitchError(f"part {index} has no video track: {path}")
            vin = inp.streams.video[0]
            ctx = vin.codec_context
            rate = vin.average_rate or vin.guessed_rate or vin.base_rate
            packets = tuple(PacketInfo(p.pts, p.dts if p.dts is not None else p.pts, p.duration or 0, p.is_keyframe)
                            for p in inp.demux(vin) if p.pts is not None)
            facts = PartFacts(index=index, path=path, codec=ctx.name, width=ctx.width, height=ctx.height,
                              pix_fmt=ctx.pix_fmt, extradata=bytes(ctx.extradata or b""), time_base=vin.time_base,
                              fps=float(rate) if rate else 0.0, packets=packets,
                              first_pts=min((p.pts for p in packets), default=0))
    except av.error.FFmpegError as exc:
        raise StitchError(f"part {index} is not a readable video ({exc}): {path}") from exc
    if not packets or not facts.width or not facts.height:
        raise StitchError(f"part {index} has no video frames: {path}")
    return facts


class PartReader:
    """Decodes one part forward; `frame_at(t)` gives the frame showing at local time ``t`` (the
    last one starting no later than t + ``slack``), converted to the output size and yuv420p."""

    def __init__(self, facts: PartFacts, width: int, height: int, slack: float, seek_to: float = 0.0) -> None:
        self.facts, self.width, self.height, self.slack = facts, width, height, slack
        self.inp = av.open(facts.path)
        self.vin = self.inp.streams.video[0]
        self.vin.thread_type = "AUTO"
        if seek_to > 1.0:  # skip footage before the part's first use (keyframe at or before it)
            self.inp.seek(facts.first_pts + int(seek_to / facts.time_base), stream=self.vin, backward=True)
        self.frames = self._decode()
        self.current: VideoFrame | None = None
        self.current_time = 0.0
        self.next = self._pull()
        self.converted: VideoFrame | None = None

    def _decode(self):  # type: ignore[no-untyped-def]
        try:
            for packet in self.inp.demux(self.vin):
                for frame in packet.decode():
                    if frame.pts is not None:
                        yield frame
        except av.error.FFmpegError as exc:
            raise StitchError(f"part {self.facts.index} could not be decoded ({exc}): {self.facts.path}") from exc

    def _pull(self) -> VideoFrame | None:
        return next(self.frames, None)

    def frame_at(self, t: float) -> VideoFrame:
        while self.next is not None and (self.current is None or self.facts.local(self.next.pts) <= t + self.slack):
            self.current, self.next, self.converted = self.next, self._pull(), None
            self.current_time = self.facts.local(self.current.pts)
        if self.current is None:
            raise StitchError(f"part {self.facts.index} has no decodable frame: {self.facts.path}")
        frame_length = 1 / self.facts.fps if self.facts.fps else 0.0
        if self.next is None and t > self.current_time + frame_length + 2 * self.slack:
            raise StitchError(f"part {self.facts.index} ends at {self.current_time + frame_length:.3f} s; "
                              f"its window needs a frame at {t:.3f} s: {self.facts.path}")
        if self.converted is None:
            frame = self.current
            if (frame.width, frame.height, frame.format.name) != (self.width, self.height, "yuv420p"):
                frame = frame.reformat(width=self.width, height=self.height, format="yuv420p",
                                       interpolation="BICUBIC")
            self.converted = frame
        return self.converted

    def close(self) -> None:
        self.frames.close()
        self.inp.close()
