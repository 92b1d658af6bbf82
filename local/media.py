"""Media helpers for the local stack: sample clips, a visible "edit", and probing.

Dev/local-only code (PyAV + numpy); it is never packaged into a Lambda. The Kling emulator uses
`grade_video` to produce a real, obviously-edited output video (with its reference images pasted in as
thumbnails), `probe`/`probe_image` to check inputs against Kling's limits, and the demo and tests use
`make_sample_clip`/`make_sample_image` to have something to upload.

All functions raise `MediaError` for inputs that are not decodable video (or image, for the image
helpers), so callers can map "bad bytes" to a clean failure instead of catching FFmpeg internals.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import av.error
import numpy as np
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.stream import VideoStream

__all__ = [
    "MediaError", "OUTPUT_FPS", "LOOKS", "OVERLAY_HEIGHT_FRACTION", "make_sample_clip", "make_sample_image",
    "grade_video", "probe", "probe_image",
]

# Kling renders edits at 24 fps whatever the input rate (provider-apis.md 1.10).
OUTPUT_FPS = 24

# Reference-image thumbnails pasted by `grade_video(overlays=...)`: this share of the frame height.
OVERLAY_HEIGHT_FRACTION = 1 / 6

# Decoder name -> the image format Kling names (jpg/jpeg/png are the only ones it accepts).
_IMAGE_FORMATS = {"png": "png", "mjpeg": "jpeg"}

Source = str | os.PathLike[str] | IO[bytes]
Destination = str | os.PathLike[str] | IO[bytes]

# Fast settings: these clips are throwaway artefacts on a 2-core dev box, not deliverables.
_X264_OPTIONS = {"preset": "ultrafast", "crf": "23"}
_AUDIO_RATE = 48_000


class MediaError(Exception):
    """The input is not a decodable video (or could not be written)."""


# ---------------------------------------------------------------------------------------------
# Colour grades: per channel, y = (x * gain + offset - 0.5) * contrast + 0.5 over x in [0, 1],
# applied by FFmpeg's lutrgb filter (it builds the 256-entry table from the expression and applies
# it in C: ~3x faster per frame than converting to numpy and gathering there, and the emulator's
# grade was a third of the test suite's CPU).


class _Look:
    def __init__(self, r: tuple[float, float], g: tuple[float, float], b: tuple[float, float], contrast: float) -> None:
        self.channels = {"r": r, "g": g, "b": b}
        self.contrast = contrast

    def lutrgb_args(self) -> dict[str, str]:
        # +0.5: lutrgb truncates the expression's value, so this rounds to the nearest level.
        return {name: f"clip((val/255*{gain}+{offset}-0.5)*{self.contrast}+0.5,0,1)*255+0.5"
                for name, (gain, offset) in self.channels.items()}


LOOKS: dict[str, _Look] = {
    # Warm: push red up, pull blue down, lift contrast a little.
    "warm": _Look(r=(1.15, 0.06), g=(1.0, 0.01), b=(0.78, -0.02), contrast=1.15),
    # Cool: the mirror image, handy to tell two edits apart by eye.
    "cool": _Look(r=(0.80, -0.02), g=(1.0, 0.0), b=(1.15, 0.06), contrast=1.10),
}


# ---------------------------------------------------------------------------------------------
# Sample clip


def make_sample_clip(
    path: str | os.PathLike[str],
    *,
    seconds: float = 4.0,
    width: int = 1280,
    height: int = 720,
    fps: int = 24,
    with_audio: bool = True,
    seed: int = 0,
) -> None:
    """Write a deterministic test clip: H.264 yuv420p video with motion, plus an AAC stereo tone.

    The container follows the suffix (`.mp4` or `.mov`). Width and height must be even because
    yuv420p subsamples chroma by two.
    """
    if seconds <= 0 or fps <= 0:
        raise ValueError("seconds and fps must be positive")
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and >= 2, got {width}x{height}")
    suffix = Path(path).suffix.lower()
    if suffix not in (".mp4", ".mov"):
        raise ValueError(f"unsupported clip suffix {suffix!r}; use .mp4 or .mov")

    rng = np.random.default_rng(seed)
    n_frames = max(1, round(seconds * fps))
    # Seeded scene parameters: where the colours start, how the box moves, the tone's pitch.
    phase = rng.uniform(0, 2 * np.pi, size=3).astype(np.float32)
    box = max(8, min(width, height) // 4)
    box_speed = rng.uniform(0.6, 1.4)  # screen widths per second (bounces)
    tone_hz = float(rng.choice([330.0, 440.0, 550.0]))

    # Precompute the coordinate grids once; each frame is then a few vectorised ops.
    xs = np.linspace(0, 2 * np.pi, width, dtype=np.float32)[None, :]
    ys = np.linspace(0, np.pi, height, dtype=np.float32)[:, None]

    with av.open(str(path), "w", format="mov" if suffix == ".mov" else "mp4") as out:
        vstream = out.add_stream("libx264", rate=fps, options=dict(_X264_OPTIONS))
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        astream = out.add_stream("aac", rate=_AUDIO_RATE, layout="stereo") if with_audio else None

        n_samples = int(round(n_frames / fps * _AUDIO_RATE))
        samples_done = 0
        for i in range(n_frames):
            t = i / fps
            # A slowly scrolling mid-tone gradient (so a grade can move it either way) ...
            shift = np.float32(2.0 * t)
            chans = [
                128 + 60 * np.sin(xs + shift + phase[0]) * np.cos(ys * 0.5),
                128 + 60 * np.sin(ys + shift * 0.7 + phase[1]),
                128 + 60 * np.cos(xs * 0.5 - shift + phase[2]) * np.sin(ys + 0.3),
            ]
            rgb = np.stack(np.broadcast_arrays(*chans), axis=-1).astype(np.uint8)
            # ... plus a bright box bouncing left-right, so motion is obvious.
            travel = max(1, width - box)
            pos = int(abs(((t * box_speed * width) % (2 * travel)) - travel))
            top = (height - box) // 2
            rgb[top : top + box, pos : pos + box] = (235, 235, 235)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(vstream.encode(frame))
            if astream is not None:
                # Interleave: write the tone up to the end of this video frame.
                until = min(n_samples, int(round((i + 1) / fps * _AUDIO_RATE)))
                samples_done = _write_tone(out, astream, samples_done, until, tone_hz)
        out.mux(vstream.encode(None))
        if astream is not None:
            out.mux(astream.encode(None))


def _write_tone(out: OutputContainer, stream: AudioStream, start: int, until: int, tone_hz: float) -> int:
    """Encode a stereo tone (a fifth apart left/right) for samples [start, until); returns `until`."""
    if until <= start:
        return start
    tt = np.arange(start, until, dtype=np.float64) / _AUDIO_RATE
    samples = np.stack([0.2 * np.sin(2 * np.pi * tone_hz * tt), 0.2 * np.sin(2 * np.pi * tone_hz * 1.5 * tt)])
    frame = av.AudioFrame.from_ndarray(samples.astype(np.float32), format="fltp", layout="stereo")
    frame.sample_rate = _AUDIO_RATE
    frame.pts = start
    frame.time_base = Fraction(1, _AUDIO_RATE)
    out.mux(stream.encode(frame))
    return until


def make_sample_image(
    *, width: int = 320, height: int = 320, rgb: tuple[int, int, int] = (255, 0, 0), format: str = "png"
) -> bytes:
    """Encode a solid-colour image (`png` or `jpeg`) and return its bytes: a reference image for tests.

    A solid colour makes a pasted thumbnail easy to find in a rendered frame. Width and height must be
    even (jpeg is encoded as 4:2:0).
    """
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and >= 2, got {width}x{height}")
    codecs = {"png": ("png", "rgb24"), "jpeg": ("mjpeg", "yuvj420p")}
    if format not in codecs:
        raise ValueError(f"unsupported image format {format!r}; use png or jpeg")
    codec, pix_fmt = codecs[format]
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[...] = rgb
    buf = io.BytesIO()
    with av.open(buf, "w", format="image2pipe") as out:
        stream = out.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format=pix_fmt)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Grading (the emulator's stand-in for Kling's edit)


def _open_input(src: Source) -> InputContainer:
    try:
        source: Any = os.fspath(src) if isinstance(src, (str, os.PathLike)) else src
        return av.open(source, "r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # missing file, garbage bytes, ...
        raise MediaError(f"cannot open input as media: {exc}") from exc


def _video_stream(container: InputContainer) -> VideoStream:
    if not container.streams.video:
        raise MediaError("input has no video stream")
    return container.streams.video[0]


def _frame_interval(stream: VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return 1.0 / float(rate) if rate else 1.0 / OUTPUT_FPS


def grade_video(
    src: Source,
    dst: Destination,
    *,
    keep_audio: bool,
    look: str = "warm",
    overlays: Sequence[bytes] | None = None,
    size: tuple[int, int] | None = None,
    duration: float | None = None,
) -> dict[str, Any]:
    """Re-encode `src` with a visible colour grade, as Kling would return an edited clip.

    Output: H.264 mp4 at 24 fps, same resolution (cropped to even), same duration as the input
    (frames are re-timed by sample-and-hold, so 30 fps in gives 24 fps out at equal length). When
    `keep_audio` is true and the source has audio it is transcoded to AAC; otherwise the output has
    no audio stream. Returns facts about what was written.

    `overlays` makes the edit's reference images visible: each item is an encoded image (PNG or JPEG
    bytes; anything FFmpeg decodes works) scaled, aspect kept, to a thumbnail `OVERLAY_HEIGHT_FRACTION`
    (1/6) of the frame height, and pasted on every frame along the bottom-left edge, left to right in
    list order, with a small margin (1/60 of the frame height) around each. Thumbnails are pasted after
    the grade, so they keep the reference's own colours; alpha is dropped. Thumbnails that run past the
    right edge are clipped, and the ones that no longer fit at all are left out. An overlay that cannot
    be decoded raises `MediaError` before any output is written.

    `size` and `duration` play video-reference mode, where the clip guides a *new* shot: every frame
    is centre-cropped to the asked ratio and scaled to `size`, and the output lasts `duration`
    seconds (the last frame held when the clip is shorter, the rest dropped when it is longer).
    """
    grade = LOOKS.get(look)
    if grade is None:
        raise ValueError(f"unknown look {look!r}; choose one of {sorted(LOOKS)}")
    overlay_frames = [_decode_image(data, f"overlay {i}")[0] for i, data in enumerate(overlays or ())]

    inp = _open_input(src)
    dst_path = os.fspath(dst) if isinstance(dst, (str, os.PathLike)) else None
    try:
        with inp:
            vin = _video_stream(inp)
            ain: AudioStream | None = inp.streams.audio[0] if inp.streams.audio else None
            width = vin.codec_context.width - vin.codec_context.width % 2
            height = vin.codec_context.height - vin.codec_context.height % 2
            reshape = None
            if size is not None:
                reshape, (width, height) = (width, height), size
            if width < 2 or height < 2:
                raise MediaError(f"video stream has unusable size {vin.codec_context.width}x{vin.codec_context.height}")
            carry_audio = keep_audio and ain is not None
            tiles = _overlay_tiles(overlay_frames, width, height)

            with av.open(dst_path if dst_path is not None else dst, "w", format="mp4") as out:
                vout = out.add_stream("libx264", rate=OUTPUT_FPS, options=dict(_X264_OPTIONS))
                vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
                writer = _GradedVideoWriter(out, vout, grade, width, height, tiles, reshape_from=reshape)
                audio = _AudioCopier(out, ain) if carry_audio and ain is not None else None

                interval = _frame_interval(vin)
                t0: float | None = None
                last_t = 0.0
                demux_streams = [vin] + ([ain] if audio is not None and ain is not None else [])
                for frame in _decode(inp, demux_streams):
                    if isinstance(frame, av.VideoFrame):
                        t = frame.time if frame.time is not None else (last_t + interval if t0 is not None else 0.0)
                        if t0 is None:
                            t0 = t
                        if duration is not None and t - t0 >= duration:
                            continue  # a shorter new shot: the rest of the clip is not used
                        last_t = t
                        writer.push(frame, t - t0)
                    elif audio is not None and (duration is None or t0 is None or frame.time is None
                                                or frame.time - t0 < duration):
                        audio.push(frame)

                if t0 is None:
                    raise MediaError("input video stream has no decodable frames")
                frames = writer.finish(duration if duration is not None else (last_t - t0) + interval)
                if audio is not None:
                    audio.finish()
    except MediaError:
        _remove_quietly(dst_path)
        raise
    except av.error.FFmpegError as exc:
        _remove_quietly(dst_path)
        raise MediaError(f"cannot decode/encode video: {exc}") from exc

    return {
        "duration_seconds": round(frames / OUTPUT_FPS, 3),
        "frames": frames,
        "width": width,
        "height": height,
        "has_audio": audio is not None,
    }


def _decode(inp: InputContainer, streams: list[Any]) -> Iterator[av.VideoFrame | av.AudioFrame]:
    for packet in inp.demux(*streams):
        yield from packet.decode()


def _decode_image(data: bytes, what: str) -> tuple[av.VideoFrame, str]:
    """The first picture of an encoded image (PNG/JPEG bytes) and the decoder's name."""
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.video:
                raise MediaError(f"{what} has no picture")
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                return frame, stream.codec_context.name
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{what} is not a decodable image: {exc}") from exc
    raise MediaError(f"{what} has no decodable picture")


# A thumbnail placed on the frame: (left, top, rgb pixels).
_Tile = tuple[int, int, np.ndarray]


def _overlay_tiles(images: list[av.VideoFrame], width: int, height: int) -> list[_Tile]:
    """Lay the overlay images out as thumbnails along the bottom-left edge, left to right."""
    tiles: list[_Tile] = []
    if not images:
        return tiles
    thumb_h = max(2, min(height, round(height * OVERLAY_HEIGHT_FRACTION)))
    margin = height // 60
    top = max(0, height - margin - thumb_h)
    left = margin
    for image in images:
        if left >= width:
            break  # no room left on this row
        thumb_w = max(2, round(thumb_h * image.width / max(1, image.height)))
        pixels = image.reformat(width=thumb_w, height=thumb_h, format="rgb24").to_ndarray()
        tiles.append((left, top, pixels[: height - top, : width - left]))  # clipped at the frame edge
        left += thumb_w + margin
    return tiles


class _GradedVideoWriter:
    """Grades frames and re-times them onto a 24 fps grid (hold the latest frame per output slot)."""

    def __init__(
        self,
        out: OutputContainer,
        stream: VideoStream,
        look: _Look,
        width: int,
        height: int,
        tiles: list[_Tile] | None = None,
        reshape_from: tuple[int, int] | None = None,
    ) -> None:
        self._out, self._stream, self._look = out, stream, look
        self._width, self._height = width, height
        self._reshape_from = reshape_from  # (w, h) of the source when frames are re-framed to (width, height)
        self._tiles = tiles or []
        self._graph: av.filter.Graph | None = None
        self._graph_input: tuple[str, int, int] | None = None  # the frames the graph was built for
        self._pushed = 0
        self._held: av.VideoFrame | None = None
        self._held_graded: av.VideoFrame | None = None  # graded once, reused when a frame is held
        self._held_t = 0.0
        self.written = 0

    def push(self, frame: av.VideoFrame, t: float) -> None:
        # Every output slot that starts before this frame shows the previously held frame.
        if self._held is not None:
            self._emit_until(t)
        self._held, self._held_graded, self._held_t = frame, None, t

    def finish(self, duration: float) -> int:
        total = max(1, round(duration * OUTPUT_FPS))
        while self.written < total:
            self._emit()
        self._out.mux(self._stream.encode(None))
        return self.written

    def _emit_until(self, t: float) -> None:
        while self.written / OUTPUT_FPS < t - 1e-6:
            self._emit()

    def _emit(self) -> None:
        assert self._held is not None
        if self._held_graded is None:
            self._held_graded = self._grade(self._held)
        frame = self._held_graded
        frame.pts = self.written
        frame.time_base = Fraction(1, OUTPUT_FPS)
        self._out.mux(self._stream.encode(frame))
        self.written += 1

    def _grade(self, frame: av.VideoFrame) -> av.VideoFrame:
        graph = self._graph_for(frame)
        frame.pts = self._pushed  # the buffer source wants increasing timestamps; the output sets its own
        self._pushed += 1
        graph.push(frame)
        graded = graph.pull()
        if not self._tiles:
            return graded
        rgb = graded.to_ndarray(format="rgb24")
        for left, top, pixels in self._tiles:  # after the grade: references keep their colours
            rgb[top : top + pixels.shape[0], left : left + pixels.shape[1]] = pixels
        return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")

    def _graph_for(self, frame: av.VideoFrame) -> av.filter.Graph:
        """crop (to even, or to the new shot's ratio) -> scale (new shot) -> grade -> yuv420p, all in
        FFmpeg; built for the first frame and again only if the decoder's frames change shape."""
        shape = (frame.format.name, frame.width, frame.height)
        if self._graph is not None and self._graph_input == shape:
            return self._graph
        graph = av.filter.Graph()
        chain = [graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                                  time_base=Fraction(1, OUTPUT_FPS))]
        if self._reshape_from is not None:
            crop_w, crop_h = _centre_crop(frame.width, frame.height, self._width, self._height)
            chain.append(graph.add("crop", w=str(crop_w), h=str(crop_h)))  # centred by default
            chain.append(graph.add("scale", w=str(self._width), h=str(self._height)))
        elif (frame.width, frame.height) != (self._width, self._height):
            chain.append(graph.add("crop", w=str(self._width), h=str(self._height), x="0", y="0"))
        # Planar RGB: the same pixels as packed rgb24 (checked bit for bit) from a conversion that
        # costs half as much, and the grade is most of what the emulator spends per task.
        chain.append(graph.add("format", pix_fmts="gbrp"))
        chain.append(graph.add("lutrgb", **self._look.lutrgb_args()))
        # With thumbnails to paste the frame comes back as RGB; otherwise as the encoder takes it.
        chain.append(graph.add("format", pix_fmts="rgb24" if self._tiles else "yuv420p"))
        chain.append(graph.add("buffersink"))
        for upstream, downstream in zip(chain, chain[1:]):
            upstream.link_to(downstream)
        graph.configure()
        self._graph, self._graph_input = graph, shape
        return graph


def _centre_crop(w: int, h: int, width: int, height: int) -> tuple[int, int]:
    """The largest centred width:height window of a w x h frame (reference mode's new framing)."""
    if w * height > h * width:
        return max(2, round(h * width / height)), h
    return w, max(2, round(w * height / width))


class _AudioCopier:
    """Transcodes the source audio to AAC (mono stays mono, anything else becomes stereo)."""

    def __init__(self, out: OutputContainer, src: AudioStream) -> None:
        ctx = src.codec_context
        self._rate = ctx.sample_rate if ctx.sample_rate in _AAC_RATES else _AUDIO_RATE
        layout = "mono" if ctx.channels == 1 else "stereo"
        self._out = out
        self._stream = out.add_stream("aac", rate=self._rate, layout=layout)
        self._resampler = AudioResampler(format="fltp", layout=layout, rate=self._rate)
        self._samples = 0

    def push(self, frame: av.AudioFrame) -> None:
        self._encode(self._resampler.resample(frame))

    def finish(self) -> None:
        self._encode(self._resampler.resample(None))
        self._out.mux(self._stream.encode(None))

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for f in frames:
            # Re-stamp contiguously: the output starts at 0 like the video does.
            f.pts = self._samples
            f.time_base = Fraction(1, self._rate)
            self._samples += f.samples
            self._out.mux(self._stream.encode(f))


_AAC_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000}


def _remove_quietly(path: str | None) -> None:
    if path:
        try:
            os.remove(path)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# Probing


def probe(path: Source, *, decode: bool = True) -> dict[str, Any]:
    """Describe a video: size, duration, fps, audio, codec, container and the middle frame's mean RGB.

    With `decode=False` only the container headers are read (no frame is decoded and there is no
    `mean_rgb`): a few milliseconds whatever the clip, cheap enough to run on every task of a load test.
    """
    inp = _open_input(path)
    try:
        with inp:
            vs = _video_stream(inp)
            duration = _stream_duration(vs) or (inp.duration / av.time_base if inp.duration else None)
            start = float(vs.start_time * vs.time_base) if vs.start_time is not None and vs.time_base else 0.0
            fps = vs.average_rate or vs.guessed_rate
            info: dict[str, Any] = {
                "width": vs.codec_context.width,
                "height": vs.codec_context.height,
                "duration_seconds": round(duration, 3) if duration else 0.0,
                "fps": round(float(fps), 3) if fps else 0.0,
                "has_audio": bool(inp.streams.audio),
                "video_codec": vs.codec_context.name,
                "container": inp.format.name,
            }
            if not decode:
                return info
            target = start + (duration or 0.0) / 2
            middle = None
            for frame in inp.decode(vs):
                middle = frame
                if frame.time is not None and frame.time >= target:
                    break
            if middle is None:
                raise MediaError("video stream has no decodable frames")
            rgb = middle.to_ndarray(format="rgb24")
            info["mean_rgb"] = [round(float(v), 2) for v in rgb.reshape(-1, 3).mean(axis=0)]
            if not duration:
                info["duration_seconds"] = 0.0
            return info
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode video: {exc}") from exc


def _stream_duration(stream: VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
        return seconds if math.isfinite(seconds) and seconds > 0 else None
    return None


def probe_image(data: bytes) -> dict[str, Any]:
    """Describe an encoded image: `format` ("png", "jpeg", or the decoder name for anything else),
    `width` and `height`. The first picture is decoded, so bytes that merely look like an image fail."""
    frame, codec = _decode_image(data, "image")
    return {"format": _IMAGE_FORMATS.get(codec, codec), "width": frame.width, "height": frame.height}
