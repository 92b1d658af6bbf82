"""Clips for the stitch and cut-candidate tests, made with PyAV (never committed).

Parts are what a model hands back: a solid colour per part (so a test can tell which part an
output frame came from) with the part's local frame number written as a 10-bit barcode along the
top (so it can tell *which* frame). The source carries a steady 440 Hz tone with a louder 1 kHz
beep at a known time, so a test can check that the sound is the source's, continuous, and in sync.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 48_000
TONE_LEVEL, BEEP_LEVEL = 0.2, 0.8
BARCODE_BITS = 10
BAR_HEIGHT = 16


def x264_options(gop: int | None = None, bframes: int = 0, crf: int = 28) -> dict[str, str]:
    """ultrafast at ``crf``; ``gop``: a keyframe exactly every ``gop`` frames (closed GOPs)."""
    params = [f"bframes={bframes}"]
    if gop:
        params += [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
    return {"preset": "ultrafast", "crf": str(crf), "x264-params": ":".join(params)}


def write_part(path: Path, colour: tuple[int, int, int], *, seconds: float, width: int = 320, height: int = 180,
               fps: int = 24, gop: int | None = None, bframes: int = 0, with_audio: bool = False, crf: int = 28) -> Path:
    n = round(seconds * fps)
    base = np.empty((height, width, 3), np.uint8)
    base[:] = colour
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options=x264_options(gop, bframes, crf))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if with_audio else None
        for i in range(n):
            image = base.copy()
            draw_barcode(image, i)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:  # a loud buzz the stitched output must NOT carry
            _write_wave(out, audio, round(seconds * AUDIO_RATE), lambda t: 0.9 * np.sign(np.sin(2 * np.pi * 97 * t)))
    return path


def draw_barcode(image: np.ndarray, number: int) -> None:
    width = image.shape[1]
    cell = width // BARCODE_BITS
    for bit in range(BARCODE_BITS):
        image[:BAR_HEIGHT, bit * cell:(bit + 1) * cell] = 255 if (number >> bit) & 1 else 0


def read_barcode(image: np.ndarray) -> int:
    cell = image.shape[1] // BARCODE_BITS
    bits = [image[2:BAR_HEIGHT - 2, b * cell + 3:(b + 1) * cell - 3].mean() > 128 for b in range(BARCODE_BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def body_colour(image: np.ndarray) -> np.ndarray:
    """The mean colour below the barcode."""
    return image[BAR_HEIGHT + 4:].reshape(-1, 3).mean(axis=0)


def write_source(path: Path, *, seconds: float, beep_at: float, width: int = 320, height: int = 180,
                 fps: int = 24) -> Path:
    """The original upload: grey picture, a 440 Hz tone throughout, a 1 kHz beep for 0.1 s at ``beep_at``."""
    def wave(t: np.ndarray) -> np.ndarray:
        beep = (t >= beep_at) & (t < beep_at + 0.1)
        return np.where(beep, BEEP_LEVEL * np.sin(2 * np.pi * 1000 * t), TONE_LEVEL * np.sin(2 * np.pi * 440 * t))

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options=x264_options())
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 100, np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        for i in range(round(seconds * fps)):
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        _write_wave(out, audio, round(seconds * AUDIO_RATE), wave)
    return path


def _write_wave(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, samples: int, wave) -> None:  # type: ignore[no-untyped-def]
    block = 1024
    for start in range(0, samples, block):
        n = min(block, samples - start)
        mono = wave((start + np.arange(n)) / AUDIO_RATE).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([mono, mono]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def audio_envelope(path: Path, window: float = 0.02) -> tuple[np.ndarray, float]:
    """(peak level per ``window`` seconds of the first channel, the track's start time)."""
    chunks, start = [], None
    with av.open(str(path)) as inp:
        for frame in inp.decode(audio=0):
            if start is None:
                start = float(frame.pts * frame.time_base)
            chunks.append(frame.to_ndarray()[0])
    samples = np.concatenate(chunks)
    rate = AUDIO_RATE
    step = round(window * rate)
    usable = len(samples) // step * step
    return np.abs(samples[:usable]).reshape(-1, step).max(axis=1), start or 0.0


def write_scene_clip(path: Path, *, seconds: float, cut_at: float, fps: int = 30, width: int = 640, height: int = 360,
                     gop: int | None = None, flash_at: float | None = None) -> Path:
    """Two textured scenes (a slow pan over each) with a hard cut at ``cut_at``; optional one-frame
    white flash (not a scene change) at ``flash_at``."""
    rng = np.random.default_rng(3)
    scenes = []
    for lo, hi in ((30, 120), (120, 230)):
        small = rng.integers(lo, hi, (height // 12, width // 6, 3), dtype=np.uint8)
        scenes.append(av.VideoFrame.from_ndarray(small, format="rgb24")
                      .reformat(width=width * 2, height=height, interpolation="BICUBIC").to_ndarray())
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options=x264_options(gop))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(round(seconds * fps)):
            t = i / fps
            scene = scenes[1] if t >= cut_at - 1e-9 else scenes[0]
            shift = int(i * 2) % width  # a slow pan: 2 px a frame
            image = np.ascontiguousarray(scene[:, shift:shift + width])
            if flash_at is not None and abs(t - flash_at) < 0.5 / fps:
                image = np.full_like(image, 255)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
