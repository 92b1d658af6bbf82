"""Real-shaped media inputs for the probe tests, generated with PyAV into a directory (never committed).

Each ``write_*`` function writes one file and returns its path; `MediaFiles` generates each one on
first use and caches it, so a test session pays only for the files its tests touch. The valid
clips go through ``local.media.make_sample_clip`` (what the demo uploads); the rejects use flat
colour frames, which encode in milliseconds even at 3840x2160. Byte-level variants (truncated,
rotated, re-branded) are patched copies of a real file, so the probe sees real box layouts.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import av
import numpy as np

from local.media import make_sample_clip

_X264 = {"preset": "ultrafast"}
_AUDIO_RATE = 48_000


# ---------------------------------------------------------------------------------------------
# Clips


def write_sample_clip(path: Path, *, seconds: float = 3.0, width: int = 1280, height: int = 720, fps: int = 24) -> Path:
    """A valid clip as the demo makes it: H.264 + AAC, moov at the end (PyAV's default)."""
    make_sample_clip(path, seconds=seconds, width=width, height=height, fps=fps, with_audio=True, seed=7)
    return path


def write_flat_clip(
    path: Path,
    *,
    seconds: float,
    width: int,
    height: int,
    fps: int,
    with_audio: bool = False,
    faststart: bool = False,
) -> Path:
    """One flat grey frame repeated: cheap to encode at any size (a 3 s 4K clip in ~1 s)."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mov" if path.suffix == ".mov" else "mp4", options=options) as out:
        stream = out.add_stream("libx264", rate=fps, options=dict(_X264, crf="40"))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=_AUDIO_RATE, layout="stereo") if with_audio else None
        frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 96, np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        n_frames = round(seconds * fps)
        for i in range(n_frames):
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:
            _write_silence(out, audio, round(seconds * _AUDIO_RATE))
    return path


def write_noise_clip(path: Path, *, seconds: float = 3.0, bit_rate: int = 16_000_000, seed: int = 0) -> Path:
    """A valid 1280x720 24 fps clip with audio whose random frames keep the encoder at ``bit_rate``:
    about 6 MB for 3 s, so "the probe reads a small fraction" means something. Moov at the end."""
    rng = np.random.default_rng(seed)
    fps = 24
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options=dict(_X264))
        stream.bit_rate = bit_rate
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        audio = out.add_stream("aac", rate=_AUDIO_RATE, layout="stereo")
        for i in range(round(seconds * fps)):
            rgb = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        _write_silence(out, audio, round(seconds * _AUDIO_RATE))
    return path


def write_audio_only(path: Path, *, seconds: float = 3.0) -> Path:
    """An .mp4 holding only an AAC track: a valid file with no video."""
    with av.open(str(path), "w", format="mp4") as out:
        audio = out.add_stream("aac", rate=_AUDIO_RATE, layout="stereo")
        _write_silence(out, audio, round(seconds * _AUDIO_RATE))
    return path


def _write_silence(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, samples: int) -> None:
    block = 1024
    for start in range(0, samples, block):
        n = min(block, samples - start)
        frame = av.AudioFrame.from_ndarray(np.zeros((2, n), np.float32), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = _AUDIO_RATE, start, Fraction(1, _AUDIO_RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def write_faststart_copy(src: Path, dst: Path) -> Path:
    """Remux ``src`` (no re-encode) with the moov moved to the front (``movflags=faststart``)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return dst


def write_truncated(src: Path, dst: Path, *, fraction: float = 0.6) -> Path:
    """The first ``fraction`` of ``src``: an upload cut short (with PyAV's layout the moov is gone)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def write_text_as_mp4(path: Path) -> Path:
    path.write_text("This is not a video, just notes saved with the wrong name.\n" * 20)
    return path


# ---------------------------------------------------------------------------------------------
# Byte patches on real files (ISO-BMFF boxes)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, box_start, box_end) of the boxes in data[start:end]; 32-bit sizes only (enough here)."""
    out, pos = [], start
    while end - pos >= 8:
        size, kind = struct.unpack_from(">I4s", data, pos)
        size = size or end - pos
        out.append((kind, pos, pos + size))
        pos += size
    return out


def _video_tkhd(data: bytes) -> int:
    """Offset of the video track's tkhd box."""
    moov = next((s, e) for kind, s, e in _boxes(data, 0, len(data)) if kind == b"moov")
    for kind, s, e in _boxes(data, moov[0] + 8, moov[1]):
        if kind != b"trak":
            continue
        children = {k: (cs, ce) for k, cs, ce in _boxes(data, s + 8, e)}
        mdia = children[b"mdia"]
        hdlr = next(cs for k, cs, ce in _boxes(data, mdia[0] + 8, mdia[1]) if k == b"hdlr")
        if data[hdlr + 16 : hdlr + 20] == b"vide":
            return children[b"tkhd"][0]
    raise AssertionError("no video track")


def rotated(data: bytes, degrees: int) -> bytes:
    """Set the video tkhd matrix to a rotation (as phones write portrait clips: 1280x720 + 90)."""
    tkhd = _video_tkhd(data)
    assert data[tkhd + 8] == 0, "version 0 tkhd expected"
    one = 0x10000
    cos, sin = {0: (one, 0), 90: (0, one), 180: (-one, 0), 270: (0, -one)}[degrees]
    matrix = struct.pack(">9i", cos, sin, 0, -sin, cos, 0, 0, 0, 0x40000000)
    at = tkhd + 8 + 40
    return data[:at] + matrix + data[at + 36 :]


def zero_tkhd_size(data: bytes) -> bytes:
    """Clear the tkhd width/height (some muxers leave them 0): the probe must use the stsd entry."""
    at = _video_tkhd(data) + 8 + 76
    return data[:at] + bytes(8) + data[at + 8 :]


def with_major_brand(data: bytes, brand: bytes) -> bytes:
    """Rewrite the ftyp major brand in place (e.g. b"3gp5" to look like a 3GPP file)."""
    assert data[4:8] == b"ftyp" and len(brand) == 4
    return data[:8] + brand + data[12:]


def top_level_types(data: bytes) -> list[bytes]:
    return [kind for kind, _, _ in _boxes(data, 0, len(data))]


# ---------------------------------------------------------------------------------------------
# Images (no Pillow: PNG by hand with zlib, JPEG through PyAV's mjpeg encoder)


def png_bytes(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    row = b"\x00" + bytes([200, 120, 40]) * width  # filter byte 0, then the pixels
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b"")


def jpeg_bytes(width: int, height: int, *, app_segment_bytes: int = 0) -> bytes:
    """A baseline JPEG; ``app_segment_bytes`` inserts an APP1 segment (EXIF-like) before the frame
    header, so the marker walk has to skip it."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 128, np.uint8), format="rgb24")
    packets = codec.encode(frame.reformat(format="yuvj420p")) + codec.encode(None)
    data = b"".join(bytes(p) for p in packets)
    if app_segment_bytes:
        payload = b"Exif\x00\x00" + bytes(app_segment_bytes - 6)
        data = data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]
    return data


# ---------------------------------------------------------------------------------------------
# Session cache


class MediaFiles:
    """Generates each fixture file into ``directory`` on first access."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def _path(self, name: str) -> Path:
        return self.dir / name

    # valid
    @cached_property
    def valid_mp4(self) -> Path:  # 3 s 1280x720 24 fps + audio, moov at the end
        return write_sample_clip(self._path("valid.mp4"))

    @cached_property
    def valid_mov(self) -> Path:
        return write_sample_clip(self._path("valid.mov"))

    @cached_property
    def faststart_mp4(self) -> Path:
        return write_faststart_copy(self.valid_mp4, self._path("faststart.mp4"))

    @cached_property
    def big_mp4(self) -> Path:  # ~6 MB, moov at the end
        return write_noise_clip(self._path("big.mp4"))

    @cached_property
    def big_faststart_mp4(self) -> Path:
        return write_faststart_copy(self.big_mp4, self._path("big-faststart.mp4"))

    # breaks a limit
    @cached_property
    def short_2s(self) -> Path:
        return write_flat_clip(self._path("short.mp4"), seconds=2.0, width=1280, height=720, fps=24, with_audio=True)

    @cached_property
    def long_11s(self) -> Path:
        return write_flat_clip(self._path("long.mp4"), seconds=11.0, width=1280, height=720, fps=24)

    @cached_property
    def low_res_480p(self) -> Path:
        return write_flat_clip(self._path("480p.mp4"), seconds=3.0, width=854, height=480, fps=24)

    @cached_property
    def uhd_4k(self) -> Path:
        return write_flat_clip(self._path("4k.mp4"), seconds=3.0, width=3840, height=2160, fps=24)

    @cached_property
    def fps_90(self) -> Path:
        return write_flat_clip(self._path("90fps.mp4"), seconds=3.0, width=1280, height=720, fps=90)

    @cached_property
    def fps_15(self) -> Path:
        return write_flat_clip(self._path("15fps.mp4"), seconds=3.0, width=1280, height=720, fps=15)

    # not a usable video
    @cached_property
    def audio_only(self) -> Path:
        return write_audio_only(self._path("audio-only.mp4"))

    @cached_property
    def truncated(self) -> Path:
        return write_truncated(self.valid_mp4, self._path("truncated.mp4"))

    @cached_property
    def text_mp4(self) -> Path:
        return write_text_as_mp4(self._path("clip.mp4"))

    # images
    def image(self, name: str, data: bytes) -> Path:
        path = self._path(name)
        if not path.exists():
            path.write_bytes(data)
        return path

    @cached_property
    def png_512(self) -> Path:
        return self.image("ok.png", png_bytes(512, 512))

    @cached_property
    def jpeg_512(self) -> Path:
        return self.image("ok.jpg", jpeg_bytes(512, 512, app_segment_bytes=2000))

    @cached_property
    def png_200(self) -> Path:
        return self.image("small.png", png_bytes(200, 200))

    @cached_property
    def jpeg_200(self) -> Path:
        return self.image("small.jpg", jpeg_bytes(200, 200))

    @cached_property
    def jpeg_2000x400(self) -> Path:
        return self.image("wide.jpg", jpeg_bytes(2000, 400))

    @cached_property
    def png_2000x400(self) -> Path:
        return self.image("wide.png", png_bytes(2000, 400))


# ---------------------------------------------------------------------------------------------
# Clips for the prepare step (reframe, rotate, trim, fps): content the tests can find again


CORNER_COLOURS = {"tl": (255, 0, 0), "tr": (0, 255, 0), "bl": (0, 0, 255), "br": (255, 255, 0)}
SUBJECT_COLOUR = (0, 230, 0)


def subject_left(t: float, *, seconds: float, width: int, size: int, motion: str) -> int:
    """The moving subject's left edge at time ``t`` (``cross``: left to right over the clip;
    ``still``: parked at 70 % of the width)."""
    if motion == "still":
        return int(0.7 * width - size / 2)
    return round((width - size) * min(t / seconds, 1.0))


def write_prepare_clip(
    path: Path,
    *,
    seconds: float = 3.2,
    width: int = 640,
    height: int = 360,
    fps: int = 24,
    corners: bool = False,
    subject: str | None = None,  # "cross" | "still"
    subject_size: int | None = None,
    beep_at: float | None = None,  # a 1 kHz beep (0.1 s) and a white flash frame at this time
    with_audio: bool = True,
    display_rotation: int = 0,  # clockwise degrees a player must turn the coded frame (phones: 90)
    crf: int = 30,
) -> Path:
    """A clip with things a test can locate in the prepared output: coloured corner squares
    (tl red, tr green, bl blue, br yellow, in coded pixels), a striped green subject, a beep with a
    matching white flash, and display-matrix rotation set as phones do (no pixel change)."""
    rng = np.random.default_rng(5)
    small = rng.integers(70, 150, (max(2, height // 30), max(2, width // 30), 3), dtype=np.uint8)
    base = av.VideoFrame.from_ndarray(small, format="rgb24").reformat(width=width, height=height).to_ndarray()
    if corners:
        m = max(8, min(width, height) // 8)
        base[:m, :m], base[:m, -m:] = CORNER_COLOURS["tl"], CORNER_COLOURS["tr"]
        base[-m:, :m], base[-m:, -m:] = CORNER_COLOURS["bl"], CORNER_COLOURS["br"]
    size = subject_size or height // 4
    stripes = np.zeros((size, size, 3), np.uint8)
    stripes[:] = SUBJECT_COLOUR
    stripes[:, (np.arange(size) // max(2, size // 8)) % 2 == 1] = (0, 90, 0)
    n_frames = round(seconds * fps)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options=dict(_X264, crf=str(crf)))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if display_rotation:
            stream.set_display_rotation(-display_rotation)  # PyAV takes counter-clockwise degrees
        audio = out.add_stream("aac", rate=_AUDIO_RATE, layout="stereo") if with_audio else None
        for i in range(n_frames):
            t = i / fps
            image = base
            if subject or (beep_at is not None and abs(t - beep_at) < 0.5 / fps):
                image = base.copy()
            if subject:
                left, top = subject_left(t, seconds=seconds, width=width, size=size, motion=subject), (height - size) // 2
                image[top:top + size, left:left + size] = stripes
            if beep_at is not None and abs(t - beep_at) < 0.5 / fps:
                image[:] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:
            _write_tone(out, audio, round(seconds * _AUDIO_RATE), beep_at)
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, samples: int,
                beep_at: float | None) -> None:
    block = 1024
    for start in range(0, samples, block):
        n = min(block, samples - start)
        t = (start + np.arange(n)) / _AUDIO_RATE
        wave = np.zeros(n, np.float32)
        if beep_at is not None:
            on = (t >= beep_at) & (t < beep_at + 0.1)
            wave[on] = 0.5 * np.sin(2 * np.pi * 1000 * t[on])
        frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = _AUDIO_RATE, start, Fraction(1, _AUDIO_RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def beep_onset(path: Path, threshold: float = 0.1) -> float | None:
    """Seconds (the file's own timeline) of the first audio sample louder than ``threshold``."""
    with av.open(str(path)) as inp:
        for frame in inp.decode(audio=0):
            data = frame.to_ndarray()
            loud = np.flatnonzero(np.abs(data[0]) > threshold)
            if len(loud):
                return float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate
    return None


def decoded_frames(path: Path) -> list[np.ndarray]:
    """Every video frame as rgb24 (small test outputs only)."""
    with av.open(str(path)) as inp:
        return [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
