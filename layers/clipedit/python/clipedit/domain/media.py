"""Facts about an input clip or image, read with a few small ranged reads, and the provider limits
they must meet.

Why: Kling/fal reject clips outside 3-10 s, 720-2160 px, 24-60 fps, 200 MB, mp4/mov
(provider-apis.md 1.10, 2.2), and a rejected submission may still be billed. We check first, without
downloading the clip: an MP4/MOV keeps its facts in the ``moov`` box (tens of KB), which may sit at
the start ("faststart") or after the media data at the end. `probe_video` walks the top-level box
headers (8-16 bytes each, skipping bodies by their size), reads only the ``moov`` body and never
the ``mdat``. `probe_image` reads the PNG IHDR or the JPEG segment headers up to the first SOFn.

Pure Python (struct only): the bytes come through a `RangeReader` port; S3/HTTP implementations
live in ``clipedit.adapters.range_readers``.

Limits live in ONE place, per model (`LIMITS_BY_MODEL`), so they can follow the provider.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from clipedit.domain.errors import MediaRejected, SpecError

__all__ = [
    "RangeReader",
    "VideoFacts",
    "ImageFacts",
    "MediaLimits",
    "O3_LIMITS",
    "O1_LIMITS",
    "LIMITS_BY_MODEL",
    "limits_for",
    "probe_video",
    "probe_image",
    "check_size_before_probe",
    "check_video",
    "check_image",
]


class RangeReader(Protocol):
    """Random access to an object's bytes. ``read`` may return fewer bytes only at EOF."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...


# ---------------------------------------------------------------------------------------------
# Facts


Container = Literal["mp4", "mov", "3gp"]


@dataclass(frozen=True)
class VideoFacts:
    container: Container  # "mp4" | "mov" from the ftyp brands ("3gp" for 3GPP brands)
    duration_seconds: float
    width: int  # as displayed: swapped when the track matrix rotates by 90/270 degrees
    height: int
    fps: float
    video_codec: str  # sample-entry fourcc, e.g. "avc1", "hvc1", "apcn"
    has_audio: bool
    size_bytes: int
    bytes_read: int  # bytes this probe pulled through the reader (excludes any read-ahead)
    rotation_degrees: int = 0


@dataclass(frozen=True)
class ImageFacts:
    format: Literal["png", "jpeg"]
    width: int
    height: int
    size_bytes: int
    bytes_read: int = 0


# ---------------------------------------------------------------------------------------------
# Limits


@dataclass(frozen=True)
class MediaLimits:
    """What a provider model accepts. Sizes are decimal (1 MB = 10^6 bytes): the docs say
    "200 MB"/"10 MB" without saying which, and decimal is the stricter reading."""

    min_seconds: float = 3.0
    max_seconds: float = 10.05  # "3-10 s"; fal's validator allows 10.05 s
    min_side_px: int = 720  # width AND height each
    max_side_px: int = 2160
    min_fps: float = 24.0
    max_fps: float = 60.0
    # 24000/1001 (23.976, NTSC film) is "24 fps" to everyone; stts timing also rounds a little.
    fps_tolerance: float = 0.05
    max_video_bytes: int = 200_000_000
    containers: frozenset[str] = field(default_factory=lambda: frozenset({"mp4", "mov"}))
    image_max_bytes: int = 10_000_000
    image_min_side_px: int = 300
    image_min_aspect: float = 1 / 2.5  # width / height
    image_max_aspect: float = 2.5


# provider-apis.md 1.10: "at most 10 s for the reference/edit video on both o1 and v3-omni",
# 720-2160 px, 24-60 fps, <= 200 MB, mp4/mov; 2.2: fal's O3 edit validator max 10.05 s, image
# elements <= 10 MB, >= 300 px, aspect 0.4-2.5. Today both models share the numbers; keep them
# separate so one can move without the other.
O3_LIMITS = MediaLimits()
O1_LIMITS = MediaLimits()

LIMITS_BY_MODEL: dict[str, MediaLimits] = {"o3": O3_LIMITS, "o1": O1_LIMITS}


def limits_for(model: str) -> MediaLimits:
    """The limits for a model id ("o3", "o1"; a `Model` enum value works too)."""
    try:
        return LIMITS_BY_MODEL[str(model).strip().lower()]
    except KeyError:
        raise SpecError(
            f"unknown model {model!r}; choose one of {', '.join(sorted(LIMITS_BY_MODEL))}",
            code="INVALID_MODEL",
        ) from None


# ---------------------------------------------------------------------------------------------
# Reading helpers


class _Counting:
    """Wraps the caller's reader: checks short reads and counts what the probe pulled."""

    def __init__(self, reader: RangeReader) -> None:
        self._reader = reader
        self.size = int(reader.size)
        self.bytes_read = 0

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        if length == 0:
            return b""
        data = self._reader.read(offset, length)[:length]
        self.bytes_read += len(data)
        return data

    def read_exact(self, offset: int, length: int, what: str) -> bytes:
        data = self.read(offset, length)
        if len(data) != length:
            raise _Corrupt(f"could read only {len(data)} of {length} bytes of {what} at offset {offset}")
        return data


class _Corrupt(Exception):
    """Internal: the structure is broken; becomes CLIP_UNREADABLE (or IMAGE_UNREADABLE)."""


def _unreadable(reason: str) -> MediaRejected:
    return MediaRejected(
        f"the file is not a readable MP4/MOV (truncated or corrupt): {reason}; "
        "re-export or re-upload the whole file",
        code="CLIP_UNREADABLE",
    )


def _u16(data: bytes, pos: int) -> int:
    return struct.unpack_from(">H", data, pos)[0]


def _u32(data: bytes, pos: int) -> int:
    return struct.unpack_from(">I", data, pos)[0]


def _i32(data: bytes, pos: int) -> int:
    return struct.unpack_from(">i", data, pos)[0]


def _u64(data: bytes, pos: int) -> int:
    return struct.unpack_from(">Q", data, pos)[0]


# ---------------------------------------------------------------------------------------------
# ISO-BMFF / QuickTime boxes

# Box types a file may start with. Old QuickTime files have no ftyp and start with one of these.
_FIRST_BOX_TYPES = frozenset(
    {b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"pdin", b"sidx", b"junk"}
)
# ftyp brands of ISO-BMFF still images (HEIF/HEIC/AVIF): no moov, and not a video.
_IMAGE_BRANDS = frozenset({b"mif1", b"msf1", b"heic", b"heix", b"heim", b"heis", b"avif", b"avis", b"jpeg"})
_MAX_TOP_LEVEL_BOXES = 10_000
_FTYP_READ_CAP = 256  # major + minor + 62 compatible brands; more is ignored
_HANDLER_VIDEO = b"vide"
_HANDLER_AUDIO = b"soun"


def _is_box_type(raw: bytes) -> bool:
    # Printable ASCII, plus (c) which QuickTime uses in metadata atom names.
    return len(raw) == 4 and all(0x20 <= c <= 0x7E or c == 0xA9 for c in raw)


def _type_name(raw: bytes) -> str:
    return raw.decode("latin-1")


@dataclass(frozen=True)
class _Box:
    type: bytes
    offset: int
    header_size: int
    size: int

    @property
    def body_offset(self) -> int:
        return self.offset + self.header_size

    @property
    def body_size(self) -> int:
        return self.size - self.header_size

    @property
    def end(self) -> int:
        return self.offset + self.size


def _parse_header(raw: bytes, offset: int, limit: int) -> _Box:
    """A box header found at file offset ``offset`` in ``raw``; the box must end by ``limit``."""
    available = limit - offset
    if available < 8 or len(raw) < 8:
        raise _Corrupt(f"{available} stray bytes at offset {offset} where a box header should be")
    size, kind = _u32(raw, 0), raw[4:8]
    if not _is_box_type(kind):
        raise _Corrupt(f"no box header at offset {offset} (found bytes {raw[:8].hex()})")
    header = 8
    if size == 1:  # 64-bit "largesize" follows the type
        if len(raw) < 16:
            raise _Corrupt(f"box '{_type_name(kind)}' at offset {offset} is cut off inside its header")
        size, header = _u64(raw, 8), 16
        if size < 16:
            raise _Corrupt(f"box '{_type_name(kind)}' at offset {offset} has an impossible size {size}")
    elif size == 0:  # extends to the end of the file
        size = available
    elif size < 8:
        raise _Corrupt(f"box '{_type_name(kind)}' at offset {offset} has an impossible size {size}")
    if size > available:
        raise _Corrupt(
            f"box '{_type_name(kind)}' at offset {offset} claims {size} bytes but the file ends "
            f"{available} bytes later"
        )
    return _Box(kind, offset, header, size)


def _children(data: bytes, start: int, end: int, parent: str) -> Iterator[tuple[bytes, int, int]]:
    """(type, body_start, body_end) of the boxes inside data[start:end] (an in-memory box body)."""
    pos = start
    while end - pos >= 8:
        size, kind = _u32(data, pos), data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            if end - pos < 16:
                raise _Corrupt(f"a box header inside '{parent}' is cut off")
            size, header = _u64(data, pos + 8), 16
        elif size == 0:
            size = end - pos
        if not _is_box_type(kind) or size < header or pos + size > end:
            raise _Corrupt(f"the '{parent}' box holds a broken child box (bytes {data[pos : pos + 8].hex()})")
        yield kind, pos + header, pos + size
        pos += size
    # Fewer than 8 bytes left: QuickTime pads some atom lists with a 32-bit zero terminator.


def _child(data: bytes, start: int, end: int, kind: bytes, parent: str) -> tuple[int, int] | None:
    for child_kind, body_start, body_end in _children(data, start, end, parent):
        if child_kind == kind:
            return body_start, body_end
    return None


@dataclass
class _Track:
    handler: bytes = b""
    enabled: bool = True
    tkhd_width: float = 0.0
    tkhd_height: float = 0.0
    rotation: int = 0
    track_id: int = 0
    timescale: int = 0
    media_duration: int = 0
    codec: str = ""
    entry_width: int = 0
    entry_height: int = 0
    sample_count: int = 0
    stts_duration: int = 0


@dataclass
class _Movie:
    timescale: int = 0
    duration: int = 0
    fragment_duration: int = 0  # mvex/mehd, in the movie timescale
    fragmented: bool = False
    default_sample_duration: dict[int, int] = field(default_factory=dict)  # mvex/trex per track
    tracks: list[_Track] = field(default_factory=list)


def _need(data: bytes, start: int, end: int, n: int, what: str) -> None:
    if end - start < n:
        raise _Corrupt(f"the '{what}' box is too short ({end - start} bytes)")


def _parse_moov(data: bytes) -> _Movie:
    movie = _Movie()
    for kind, start, end in _children(data, 0, len(data), "moov"):
        if kind == b"mvhd":
            _need(data, start, end, 20, "mvhd")
            if data[start] == 1:
                _need(data, start, end, 32, "mvhd")
                movie.timescale, movie.duration = _u32(data, start + 20), _u64(data, start + 24)
                if movie.duration == 0xFFFFFFFFFFFFFFFF:
                    movie.duration = 0
            else:
                movie.timescale, movie.duration = _u32(data, start + 12), _u32(data, start + 16)
                if movie.duration == 0xFFFFFFFF:  # "unknown"
                    movie.duration = 0
        elif kind == b"trak":
            movie.tracks.append(_parse_trak(data, start, end))
        elif kind == b"mvex":
            movie.fragmented = True
            _parse_mvex(data, start, end, movie)
        elif kind == b"cmov":
            raise _Corrupt("the movie header is compressed (QuickTime 'cmov'), which is not supported")
    return movie


def _parse_mvex(data: bytes, start: int, end: int, movie: _Movie) -> None:
    for kind, s, e in _children(data, start, end, "mvex"):
        if kind == b"mehd":
            _need(data, s, e, 8, "mehd")
            if data[s] == 1:
                _need(data, s, e, 12, "mehd")
                movie.fragment_duration = _u64(data, s + 4)
            else:
                movie.fragment_duration = _u32(data, s + 4)
        elif kind == b"trex":
            # version/flags, track_ID, default_sample_description_index, default_sample_duration
            _need(data, s, e, 16, "trex")
            movie.default_sample_duration[_u32(data, s + 4)] = _u32(data, s + 12)


def _parse_trak(data: bytes, start: int, end: int) -> _Track:
    track = _Track()
    for kind, s, e in _children(data, start, end, "trak"):
        if kind == b"tkhd":
            _parse_tkhd(data, s, e, track)
        elif kind == b"mdia":
            _parse_mdia(data, s, e, track)
    return track


def _parse_tkhd(data: bytes, s: int, e: int, track: _Track) -> None:
    version = data[s] if e > s else 0
    # version 0: ctime, mtime 32-bit; version 1: 64-bit. Then (after duration) 8 reserved,
    # layer, alternate group, volume, reserved (8), the 3x3 matrix (36), width, height (16.16).
    track_id_at, matrix_at = (s + 20, s + 52) if version == 1 else (s + 12, s + 40)
    _need(data, s, e, matrix_at - s + 44, "tkhd")
    track.enabled = bool(_u32(data, s) & 0x1)
    track.track_id = _u32(data, track_id_at)
    a, b = _i32(data, matrix_at), _i32(data, matrix_at + 4)
    track.rotation = round(math.degrees(math.atan2(b, a)) / 90) % 4 * 90 if (a or b) else 0
    track.tkhd_width = _u32(data, matrix_at + 36) / 65536
    track.tkhd_height = _u32(data, matrix_at + 40) / 65536


def _parse_mdia(data: bytes, start: int, end: int, track: _Track) -> None:
    for kind, s, e in _children(data, start, end, "mdia"):
        if kind == b"mdhd":
            _need(data, s, e, 20, "mdhd")
            if data[s] == 1:
                _need(data, s, e, 32, "mdhd")
                track.timescale, track.media_duration = _u32(data, s + 20), _u64(data, s + 24)
            else:
                track.timescale, track.media_duration = _u32(data, s + 12), _u32(data, s + 16)
        elif kind == b"hdlr":
            # ISO: pre_defined(4) handler_type(4); QuickTime: component type(4) subtype(4).
            _need(data, s, e, 12, "hdlr")
            track.handler = data[s + 8 : s + 12]
        elif kind == b"minf":
            stbl = _child(data, s, e, b"stbl", "minf")
            if stbl is not None:
                _parse_stbl(data, *stbl, track)


def _parse_stbl(data: bytes, start: int, end: int, track: _Track) -> None:
    for kind, s, e in _children(data, start, end, "stbl"):
        if kind == b"stsd":
            _need(data, s, e, 8, "stsd")
            if _u32(data, s + 4) == 0 or e - (s + 8) < 8:
                continue
            entry = s + 8
            track.codec = data[entry + 4 : entry + 8].decode("latin-1")
            # SampleEntry: reserved(6) data_reference_index(2); VisualSampleEntry then has
            # pre_defined/reserved (16) before width(2) height(2): at entry + 8 + 24.
            if _u32(data, entry) >= 36 and e - entry >= 36:
                track.entry_width, track.entry_height = _u16(data, entry + 32), _u16(data, entry + 34)
        elif kind == b"stts":
            _need(data, s, e, 8, "stts")
            count = _u32(data, s + 4)
            if e - (s + 8) < 8 * count:
                raise _Corrupt("the 'stts' box lists more entries than it holds")
            samples = duration = 0
            for i in range(count):
                n, delta = struct.unpack_from(">II", data, s + 8 + 8 * i)
                samples += n
                duration += n * delta
            track.sample_count, track.stts_duration = samples, duration


def _container_from_brands(major: bytes, compatible: list[bytes]) -> Container:
    if major == b"qt  " or b"qt  " in compatible:
        return "mov"
    if major.startswith(b"3g"):
        return "3gp"
    return "mp4"


def probe_video(reader: RangeReader, *, max_moov_bytes: int = 32 * 1024 * 1024) -> VideoFacts:
    """Read an MP4/MOV's facts from its box structure without touching the media data.

    Raises `MediaRejected` with code NOT_A_VIDEO (not an ISO-BMFF/QuickTime file at all),
    CLIP_UNREADABLE (truncated/corrupt: a box past EOF, garbage where a header should be, no moov)
    or NO_VIDEO_TRACK.
    """
    r = _Counting(reader)
    if r.size < 8:
        raise MediaRejected(
            f"the file is {r.size} bytes long, too short to be a video; upload an MP4 or MOV clip",
            code="NOT_A_VIDEO",
        )
    try:
        major, compatible, moov = _walk_top_level(r, max_moov_bytes)
        movie = _parse_moov(moov)
    except _Corrupt as problem:
        raise _unreadable(str(problem)) from None
    return _facts(movie, major, compatible, r)


def _walk_top_level(r: _Counting, max_moov_bytes: int) -> tuple[bytes | None, list[bytes], bytes]:
    """Walk the top-level boxes header by header; return the ftyp brands and the moov body."""
    major: bytes | None = None
    compatible: list[bytes] = []
    moov: bytes | None = None
    offset = 0
    for index in range(_MAX_TOP_LEVEL_BOXES):
        if r.size - offset < 8:
            break  # end of file (a few padding bytes are tolerated)
        raw = r.read_exact(offset, min(16, r.size - offset), "a box header")
        if index == 0 and (raw[4:8] not in _FIRST_BOX_TYPES):
            raise MediaRejected(
                f"the file is not an MP4/MOV video (it starts with {_describe_start(raw)}); "
                "upload an MP4 or MOV clip",
                code="NOT_A_VIDEO",
            )
        box = _parse_header(raw, offset, r.size)
        if box.type == b"ftyp" and major is None:
            body = r.read_exact(box.body_offset, min(box.body_size, _FTYP_READ_CAP), "the ftyp box")
            if len(body) < 8:
                raise _Corrupt("the ftyp box is too short")
            major = body[0:4]
            compatible = [body[i : i + 4] for i in range(8, len(body) - 3, 4)]
        elif box.type == b"moov" and moov is None:
            if box.body_size > max_moov_bytes:
                raise _Corrupt(
                    f"the movie header (moov) is {box.body_size} bytes, more than the "
                    f"{max_moov_bytes} bytes we accept"
                )
            moov = r.read_exact(box.body_offset, box.body_size, "the moov box")
        elif box.type == b"moof" and moov is not None:
            break  # fragmented: the rest is moof/mdat pairs; the moov has what we need
        offset = box.end
    else:
        if moov is None:
            raise _Corrupt(f"no movie header (moov) in the first {_MAX_TOP_LEVEL_BOXES} boxes")
    if moov is None:
        if major in _IMAGE_BRANDS:
            raise MediaRejected(
                f"the file is a still image (brand '{_type_name(major or b'')}'), not a video; "
                "upload an MP4 or MOV clip",
                code="NOT_A_VIDEO",
            )
        raise _Corrupt("it has no movie header (moov box); the upload may have been cut short")
    return major, compatible, moov


def _describe_start(raw: bytes) -> str:
    text = raw[:8]
    if all(0x20 <= c <= 0x7E or c in (9, 10, 13) for c in text):
        return repr(text.decode("ascii"))
    return f"bytes {text.hex()}"


def _facts(movie: _Movie, major: bytes | None, compatible: list[bytes], r: _Counting) -> VideoFacts:
    videos = [t for t in movie.tracks if t.handler == _HANDLER_VIDEO]
    if not videos:
        raise MediaRejected(
            "the file has no video track (audio only?); upload a clip with video",
            code="NO_VIDEO_TRACK",
        )
    video = next((t for t in videos if t.enabled), videos[0])

    media_duration = video.media_duration or video.stts_duration
    samples = video.sample_count
    if samples == 0 and movie.fragmented:
        # Fragmented MP4: samples live in the moof boxes; use the declared defaults.
        default = movie.default_sample_duration.get(video.track_id, 0)
        fps = video.timescale / default if default and video.timescale else 0.0
        declared = movie.fragment_duration or movie.duration
        duration = declared / movie.timescale if movie.timescale else 0.0
        if not fps or not duration:
            raise _unreadable(
                "it is a fragmented MP4 that does not declare its duration or frame rate; "
                "re-export it as a regular (non-fragmented) MP4"
            )
    elif samples == 0:
        raise MediaRejected("the file's video track has no frames; upload a clip with video", code="NO_VIDEO_TRACK")
    else:
        fps = samples * video.timescale / media_duration if media_duration and video.timescale else 0.0
        if movie.duration and movie.timescale:
            duration = movie.duration / movie.timescale
        elif media_duration and video.timescale:
            duration = media_duration / video.timescale
        else:
            duration = 0.0

    width, height = round(video.tkhd_width), round(video.tkhd_height)
    if width == 0 or height == 0:
        width, height = video.entry_width, video.entry_height
    if video.rotation in (90, 270):
        width, height = height, width

    return VideoFacts(
        container="mov" if major is None else _container_from_brands(major, compatible),
        duration_seconds=round(duration, 3),
        width=width,
        height=height,
        fps=round(fps, 3),
        video_codec=video.codec,
        has_audio=any(t.handler == _HANDLER_AUDIO for t in movie.tracks),
        size_bytes=r.size,
        bytes_read=r.bytes_read,
        rotation_degrees=video.rotation,
    )


# ---------------------------------------------------------------------------------------------
# Images

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_MAX_JPEG_SEGMENTS = 4096


def _image_unreadable(kind: str, reason: str) -> MediaRejected:
    return MediaRejected(
        f"the {kind} image is truncated or corrupt: {reason}; re-export or re-upload it",
        code="IMAGE_UNREADABLE",
    )


def _sniff_other(head: bytes) -> str | None:
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP"
    if head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
        return "a HEIC/AVIF"
    if head[:2] == b"BM":
        return "a BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "a TIFF"
    return None


def probe_image(reader: RangeReader) -> ImageFacts:
    """Width and height of a PNG (IHDR) or JPEG (first SOFn), from a few small reads."""
    r = _Counting(reader)
    head = r.read(0, 32)
    if head.startswith(_PNG_SIGNATURE):
        # Signature, then the IHDR chunk first: length(4) "IHDR" width(4) height(4).
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise _image_unreadable("PNG", "the IHDR header is missing")
        width, height = _u32(head, 16), _u32(head, 20)
        if not width or not height:
            raise _image_unreadable("PNG", f"it declares a {width}x{height} size")
        return ImageFacts("png", width, height, r.size, r.bytes_read)
    if head[:3] == b"\xff\xd8\xff":
        width, height = _jpeg_size(r)
        return ImageFacts("jpeg", width, height, r.size, r.bytes_read)
    other = _sniff_other(head)
    found = f"the file is {other} image" if other else "the file is not an image we can read"
    raise MediaRejected(f"{found}; images must be a JPEG or PNG image", code="IMAGE_FORMAT")


def _jpeg_size(r: _Counting) -> tuple[int, int]:
    pos = 2  # after SOI
    for _ in range(_MAX_JPEG_SEGMENTS):
        # Marker (FF xx), segment length (2), then for SOFn: precision(1) height(2) width(2).
        seg = r.read(pos, 9)
        if len(seg) < 2 or seg[0] != 0xFF:
            raise _image_unreadable("JPEG", f"no marker at offset {pos}")
        marker = seg[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers, no length
            pos += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):
            raise _image_unreadable("JPEG", "the image data starts before any frame header (SOF)")
        if len(seg) < 4:
            raise _image_unreadable("JPEG", f"segment header cut off at offset {pos}")
        length = _u16(seg, 2)
        if length < 2:
            raise _image_unreadable("JPEG", f"impossible segment length {length} at offset {pos}")
        if marker in _JPEG_SOF:
            if len(seg) < 9 or length < 8:
                raise _image_unreadable("JPEG", "the frame header (SOF) is cut off")
            height, width = _u16(seg, 5), _u16(seg, 7)
            if not width or not height:
                raise _image_unreadable("JPEG", f"it declares a {width}x{height} size")
            return width, height
        pos += 2 + length
    raise _image_unreadable("JPEG", f"no frame header (SOF) in the first {_MAX_JPEG_SEGMENTS} segments")


# ---------------------------------------------------------------------------------------------
# Checks


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _num(value: float) -> str:
    """3.0 -> "3", 10.05 -> "10.05", 23.976 -> "23.976"."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _seconds(value: float, limit: float) -> str:
    text = f"{value:.2f}"
    return f"{value:.3f}" if float(text) == limit else text  # never print "3.00 s" for 2.996 s


def _example(width: int, height: int, landscape: str, portrait: str) -> str:
    return portrait if height > width else landscape


def check_size_before_probe(size: int, limits: MediaLimits) -> None:
    """Refuse an empty or oversized clip from its size alone (S3 HEAD), before any read."""
    if size <= 0:
        raise MediaRejected("the clip is empty (0 bytes); upload the whole file", code="EMPTY_CLIP")
    if size > limits.max_video_bytes:
        raise MediaRejected(
            f"the clip is {_mb(size)}; clips must be at most {_mb(limits.max_video_bytes)} "
            "(shorten it or export at a lower bitrate)",
            code="CLIP_TOO_LARGE",
        )


def _raise_first(problems: list[tuple[str, str]]) -> None:
    """Raise the first problem's code; mention the others so the user fixes all in one go."""
    if not problems:
        return
    code, message = problems[0]
    if len(problems) > 1:
        message += "; also: " + "; ".join(text for _, text in problems[1:])
    raise MediaRejected(message, code=code)


def check_video(facts: VideoFacts, limits: MediaLimits) -> None:
    """Raise `MediaRejected` when the clip breaks a limit.

    Order (first wins the code): UNSUPPORTED_CONTAINER, CLIP_TOO_LARGE, RESOLUTION_TOO_LOW,
    RESOLUTION_TOO_HIGH, FPS_TOO_LOW, FPS_TOO_HIGH, CLIP_TOO_SHORT, CLIP_TOO_LONG.
    """
    problems: list[tuple[str, str]] = []
    if facts.container not in limits.containers:
        allowed = " or ".join(sorted(c.upper() for c in limits.containers))
        problems.append(
            ("UNSUPPORTED_CONTAINER", f"the clip is a {facts.container.upper()} file; it must be {allowed}")
        )
    if facts.size_bytes > limits.max_video_bytes:
        problems.append(
            (
                "CLIP_TOO_LARGE",
                f"the clip is {_mb(facts.size_bytes)}; clips must be at most {_mb(limits.max_video_bytes)} "
                "(shorten it or export at a lower bitrate)",
            )
        )
    w, h = facts.width, facts.height
    if min(w, h) < limits.min_side_px:
        lo = limits.min_side_px
        example = _example(w, h, f"{lo * 16 // 9}x{lo}", f"{lo}x{lo * 16 // 9}")
        problems.append(
            (
                "RESOLUTION_TOO_LOW",
                f"the clip is {w}x{h}; each side must be at least {lo} px (e.g. {example})",
            )
        )
    if max(w, h) > limits.max_side_px:
        example = _example(w, h, "1920x1080", "1080x1920")
        problems.append(
            (
                "RESOLUTION_TOO_HIGH",
                f"the clip is {w}x{h}; each side must be at most {limits.max_side_px} px "
                f"(downscale it, e.g. to {example})",
            )
        )
    if facts.fps < limits.min_fps - limits.fps_tolerance:
        problems.append(
            (
                "FPS_TOO_LOW",
                f"the clip is {_num(facts.fps)} fps; the frame rate must be at least {_num(limits.min_fps)} fps",
            )
        )
    if facts.fps > limits.max_fps + limits.fps_tolerance:
        problems.append(
            (
                "FPS_TOO_HIGH",
                f"the clip is {_num(facts.fps)} fps; the frame rate must be at most {_num(limits.max_fps)} fps "
                "(re-export at 30 or 60 fps)",
            )
        )
    if facts.duration_seconds < limits.min_seconds:
        problems.append(
            (
                "CLIP_TOO_SHORT",
                f"the clip is {_seconds(facts.duration_seconds, limits.min_seconds)} s long; "
                f"clips must be at least {_num(limits.min_seconds)} s",
            )
        )
    if facts.duration_seconds > limits.max_seconds:
        problems.append(
            (
                "CLIP_TOO_LONG",
                f"the clip is {_seconds(facts.duration_seconds, limits.max_seconds)} s long; "
                f"clips must be at most {_num(limits.max_seconds)} s (trim it)",
            )
        )
    _raise_first(problems)


def check_image(facts: ImageFacts, limits: MediaLimits) -> None:
    """Raise `MediaRejected` (IMAGE_TOO_LARGE, IMAGE_TOO_SMALL, IMAGE_ASPECT) for a reference image."""
    problems: list[tuple[str, str]] = []
    if facts.size_bytes > limits.image_max_bytes:
        problems.append(
            (
                "IMAGE_TOO_LARGE",
                f"the image is {_mb(facts.size_bytes)}; images must be at most {_mb(limits.image_max_bytes)} "
                "(save it as a JPEG or make it smaller)",
            )
        )
    w, h = facts.width, facts.height
    if min(w, h) < limits.image_min_side_px:
        problems.append(
            (
                "IMAGE_TOO_SMALL",
                f"the image is {w}x{h}; each side must be at least {limits.image_min_side_px} px",
            )
        )
    aspect = w / h
    if not limits.image_min_aspect <= aspect <= limits.image_max_aspect:
        problems.append(
            (
                "IMAGE_ASPECT",
                f"the image is {w}x{h} (width/height {aspect:.2f}); width/height must be between "
                f"{limits.image_min_aspect:.2f} and {limits.image_max_aspect:.2f} (crop it)",
            )
        )
    _raise_first(problems)
