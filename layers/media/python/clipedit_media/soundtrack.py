"""The original soundtrack under a stitched video: the source's audio from an offset, for a duration.

The stitched picture is made of separately edited parts; their own audio (if the model returned
any) is ignored. Instead the source's audio is decoded once, from ``offset`` (the user's trim start,
measured from the source's first video frame, so it lines up with the parts, which the prepare step
cut from that same origin) for exactly ``duration`` seconds, and encoded to AAC. Gaps in the source
audio (it starts late, ends early, has holes) become silence, so the track is continuous and every
sample sits at its own time: sync holds to the sample whatever the parts did.

The writer is pulled by the video side (`Soundtrack.write_until`) so audio and video packets reach
the muxer interleaved and neither side is buffered whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np
from av.audio.resampler import AudioResampler

__all__ = ["Soundtrack", "AUDIO_BIT_RATE", "source_has_audio"]

AUDIO_BIT_RATE = 128_000
_SILENCE_BLOCK = 4096  # samples per silent frame (memory stays flat over long gaps)


def source_has_audio(path: str) -> bool:
    with av.open(path) as inp:
        return bool(inp.streams.audio)


class Soundtrack:
    """Adds an AAC stream to ``out`` at construction; `write_until` / `finish` mux its packets."""

    def __init__(self, source_path: str, out: av.container.OutputContainer, offset: float, duration: float) -> None:
        self.inp = av.open(source_path)
        self.ain = self.inp.streams.audio[0]
        self.rate = self.ain.codec_context.sample_rate
        self.layout = self.ain.codec_context.layout.name if self.ain.codec_context.layout else "stereo"
        self.out = out
        self.stream = out.add_stream("aac", rate=self.rate, layout=self.layout)
        self.stream.bit_rate = AUDIO_BIT_RATE
        self.total = round(duration * self.rate)  # samples the track must have
        self.written = 0
        self.origin = _video_origin(self.inp) + offset
        self.pieces = self._pieces()

    def write_until(self, seconds: float) -> None:
        """Encode and mux the track up to ``seconds`` of output time (or its end)."""
        goal = min(self.total, round(seconds * self.rate))
        while self.written < goal:
            data = next(self.pieces, None)
            if data is None:
                break
            self._encode(data)

    def finish(self) -> int:
        """Write the rest, flush the encoder, close the source; returns the samples written."""
        try:
            for data in self.pieces:
                self._encode(data)
            self.out.mux(self.stream.encode(None))
        finally:
            self.inp.close()
        return self.written

    def close(self) -> None:
        self.inp.close()

    def _encode(self, data: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data, np.float32), format="fltp", layout=self.layout)
        frame.sample_rate, frame.pts, frame.time_base = self.rate, self.written, Fraction(1, self.rate)
        self.written += data.shape[1]
        self.out.mux(self.stream.encode(frame))

    def _pieces(self) -> Iterator[np.ndarray]:
        """(channels, n) float blocks covering output samples 0..total exactly once, in order."""
        channels = av.AudioLayout(self.layout).nb_channels
        position = 0  # the next output sample to produce
        for source_start, data in self._decoded():
            start = round((source_start - self.origin) * self.rate)  # this block's first output sample
            end = start + data.shape[1]
            if end <= position:
                continue
            while start > position:  # a hole in the source: silence, in bounded blocks
                n = min(start - position, _SILENCE_BLOCK, self.total - position)
                yield np.zeros((channels, n), np.float32)
                position += n
                if position >= self.total:
                    return
            data = data[:, position - start: self.total - start]
            if data.shape[1]:
                yield data
                position += data.shape[1]
            if position >= self.total:
                return
        while position < self.total:  # the source's audio ended early
            n = min(self.total - position, _SILENCE_BLOCK)
            yield np.zeros((channels, n), np.float32)
            position += n

    def _decoded(self) -> Iterator[tuple[float, np.ndarray]]:
        """(source time, fltp samples) for the source audio from just before the origin on."""
        resampler = AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        if self.origin > 1.0:
            self.inp.seek(int((self.origin - 1.0) / self.ain.time_base), stream=self.ain, backward=True)
        for packet in self.inp.demux(self.ain):
            for frame in packet.decode():
                if frame.pts is None:
                    continue
                for piece in resampler.resample(frame):
                    yield float(piece.pts * piece.time_base), piece.to_ndarray()
        for piece in resampler.resample(None):
            yield float(piece.pts * piece.time_base), piece.to_ndarray()


def _video_origin(inp: av.container.InputContainer) -> float:
    """The source's first video frame time: the zero of the plan's timeline (as in the prepare step)."""
    if inp.streams.video and inp.streams.video[0].start_time is not None:
        vin = inp.streams.video[0]
        return float(vin.start_time * vin.time_base)
    return 0.0
