"""The user's framing fields (platform, aspect ratio, reframe, focus, trim, normalize, video mode)
and the plan that says what the prepare step must do to a clip before the provider sees it.

Two moments, two checks, both before any money is spent:
- `parse_framing` (at intake, no clip read): the fields themselves, and what each provider accepts
  in video-reference mode (`check_provider_framing`);
- `plan_prepare` (at submit, after the ranged-read probe): the fields against the clip's facts.
  It answers None when the clip already fits and nothing was asked of it, so such a job never
  pays for the prepare step.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from clipedit.domain.errors import MediaRejected, SpecError
from clipedit.domain.framing import Focus, PreparePlan
from clipedit.domain.media import MediaLimits, VideoFacts, check_video

# name -> (aspect ratio, prepared width, prepared height)
PLATFORMS: dict[str, tuple[str, int, int]] = {
    "reels": ("9:16", 1080, 1920),
    "tiktok": ("9:16", 1080, 1920),
    "shorts": ("9:16", 1080, 1920),
    "youtube": ("16:9", 1920, 1080),
    "square": ("1:1", 1080, 1080),
}
ASPECT_RATIOS: dict[str, float] = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}
REFRAMES = ("crop", "pad")
VIDEO_MODES = ("edit", "reference")
# Reference mode output length, per provider and model (provider-apis.md, "Checked again").
REFERENCE_DURATIONS: dict[tuple[str, str], tuple[int, int]] = {
    ("kling", "o3"): (3, 10), ("kling", "o1"): (3, 10), ("fal", "o3"): (3, 15), ("fal", "o1"): (3, 10),
}
SHOT_TYPES = ("customize", "intelligence")
ASPECT_TOLERANCE = 0.01  # a 1920x1088 clip is 16:9: no reframe for rounding noise
H264_CODECS = frozenset({"avc1", "avc3"})
SIZE_HEADROOM = 0.9  # re-encode to 90 % of the provider's size limit: muxing overhead, VBV slack
_TRIM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*$")
MIN_SECONDS = 3.0  # the models' shortest clip (MediaLimits.min_seconds); a trim must leave this much
FIXABLE_CODES = frozenset({"RESOLUTION_TOO_LOW", "RESOLUTION_TOO_HIGH", "FPS_TOO_LOW", "FPS_TOO_HIGH",
                           "CLIP_TOO_LARGE", "UNSUPPORTED_CONTAINER"})

FRAMING_FIELDS = ("platform", "aspect_ratio", "reframe", "focus", "trim", "normalize", "video_mode",
                  "duration", "shot_type", "long_clip", "seam", "overlap")
# Long clips (docs/long-clips.md): what to do with a clip longer than the model edits.
LONG_CLIP_CHOICES = ("reject", "trim", "segment")
SEAMS = ("cut", "crossfade")
DEFAULT_OVERLAP = 0.5
OVERLAP_RANGE = (0.1, 2.0)  # seconds shared by two parts at a crossfade seam


@dataclass(frozen=True)
class Framing:
    """The framing fields of one job, checked. Stored on the job record as a plain map."""

    platform: str | None = None
    aspect_ratio: str | None = None  # 16:9, 9:16, 1:1 (and "auto" for fal reference mode)
    reframe: str | None = None  # crop (the default when a ratio is asked) or pad
    focus: Focus = "center"
    trim: tuple[float, float] | None = None
    normalize: bool = True
    video_mode: str = "edit"
    duration: int | None = None  # reference mode: the new shot's length in seconds
    shot_type: str | None = None  # reference mode on fal O3
    # Long clips: None = reject (the default), "trim" or "segment"; the seam between parts
    # (None = cut) and, for crossfade, the seconds of shared footage (None = DEFAULT_OVERLAP).
    long_clip: str | None = None
    seam: str | None = None
    overlap: float | None = None

    @property
    def is_default(self) -> bool:
        return self == Framing()

    def to_record(self) -> dict[str, Any]:
        record = {k: v for k, v in asdict(self).items() if v is not None}
        if isinstance(self.focus, tuple):
            record["focus"] = f"{self.focus[0]:g},{self.focus[1]:g}"
        if self.trim is not None:
            record["trim"] = f"{self.trim[0]:g}-{self.trim[1]:g}"
        return record

    @property
    def output_size(self) -> tuple[int, int] | None:
        return PLATFORMS[self.platform][1:] if self.platform else None


def _text(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SpecError(f"{name} must be a string, got {value!r}", code="INVALID_TYPE")
    return str(value).strip()


def parse_focus(raw: Any) -> Focus:
    text = _text(raw, "focus").lower()
    if text in ("", "center", "centre"):
        return "center"
    if text == "auto":
        return "auto"
    parts = text.split(",")
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        raise SpecError(f"focus must be center, auto or x,y fractions of the frame (e.g. 0.3,0.5); got {raw!r}",
                        code="INVALID_FOCUS") from None
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0) or math.isnan(x) or math.isnan(y):
        raise SpecError(f"focus {raw!r} is outside the frame: x and y are fractions from 0 to 1 (0.5,0.5 is the centre)",
                        code="INVALID_FOCUS")
    return (x, y)


def parse_trim(raw: Any) -> tuple[float, float]:
    match = _TRIM.match(_text(raw, "trim"))
    if not match:
        raise SpecError(f"trim must be start-end in seconds (e.g. 2.5-9); got {raw!r}", code="INVALID_TRIM")
    start, end = float(match.group(1)), float(match.group(2))
    if end <= start:
        raise SpecError(f"trim {raw!r} ends before it starts", code="INVALID_TRIM")
    if end - start < MIN_SECONDS:
        raise SpecError(f"trim {raw!r} keeps {end - start:g} s; the model needs at least {MIN_SECONDS:g} s",
                        code="TRIM_TOO_SHORT")
    return (start, end)


def _choice(raw: Any, allowed: tuple[str, ...] | dict[str, Any], name: str, code: str) -> str:
    value = _text(raw, name).lower()
    if value not in allowed:
        raise SpecError(f"{name} must be one of {', '.join(allowed)}; got {raw!r}", code=code)
    return value


def parse_framing(layer: Mapping[str, Any]) -> Framing:
    """Check the framing fields of a merged spec layer (snake_case names; None = not set)."""
    platform = aspect = reframe = None
    if layer.get("platform") not in (None, ""):
        platform = _choice(layer["platform"], PLATFORMS, "platform", "UNKNOWN_PLATFORM")
    if layer.get("aspect_ratio") not in (None, ""):
        aspect = _text(layer["aspect_ratio"], "aspect_ratio").lower()
        if aspect not in ASPECT_RATIOS and aspect != "auto":
            raise SpecError(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}; got {layer['aspect_ratio']!r}",
                            code="INVALID_ASPECT_RATIO")
    if platform:
        platform_ratio = PLATFORMS[platform][0]
        if aspect and aspect != platform_ratio:
            raise SpecError(f"platform {platform} is {platform_ratio} but aspect_ratio says {aspect}; set one of them",
                            code="ASPECT_RATIO_CONFLICT")
        aspect = platform_ratio
    if layer.get("reframe") not in (None, ""):
        reframe = _choice(layer["reframe"], REFRAMES, "reframe", "INVALID_REFRAME")
    focus = parse_focus(layer["focus"]) if layer.get("focus") not in (None, "") else "center"
    trim = parse_trim(layer["trim"]) if layer.get("trim") not in (None, "") else None
    normalize = layer.get("normalize", True)
    if not isinstance(normalize, bool):
        raise SpecError(f"normalize must be true or false; got {normalize!r}", code="INVALID_NORMALIZE")
    mode = "edit"
    if layer.get("video_mode") not in (None, ""):
        mode = _choice(layer["video_mode"], VIDEO_MODES, "video_mode", "INVALID_VIDEO_MODE")
    duration = None
    if layer.get("duration") not in (None, ""):
        text = _text(layer["duration"], "duration")
        if not text.isdigit():
            raise SpecError(f"duration must be whole seconds (e.g. 5); got {layer['duration']!r}",
                            code="INVALID_DURATION")
        duration = int(text)
    shot_type = None
    if layer.get("shot_type") not in (None, ""):
        shot_type = _choice(layer["shot_type"], SHOT_TYPES, "shot_type", "INVALID_SHOT_TYPE")
    long_clip, seam, overlap = _long_clip_fields(layer)
    if mode == "edit":
        if duration is not None:
            raise SpecError("duration applies to video_mode reference only: an edit is as long as its clip "
                            "(use trim to shorten the clip)", code="DURATION_NOT_APPLICABLE")
        if shot_type is not None:
            raise SpecError("shot_type applies to video_mode reference only", code="SHOT_TYPE_NOT_APPLICABLE")
        if aspect == "auto":
            raise SpecError("aspect_ratio auto applies to video_mode reference on fal only; an edit keeps "
                            "the clip's ratio unless you ask for 16:9, 9:16 or 1:1", code="INVALID_ASPECT_RATIO")
        if aspect is None and (reframe is not None or focus != "center"):
            raise SpecError("reframe and focus need an aspect_ratio or a platform to frame for",
                            code="REFRAME_WITHOUT_RATIO")
        if reframe == "pad" and focus != "center":
            raise SpecError("focus applies to reframe crop; pad keeps the whole frame", code="FOCUS_NOT_APPLICABLE")
    else:
        if reframe is not None or focus != "center":
            raise SpecError("reframe and focus apply to edits: in video_mode reference the provider composes a "
                            "new shot in the aspect_ratio you ask for", code="REFRAME_NOT_APPLICABLE")
        if long_clip == "segment":
            raise SpecError("long_clip segment applies to edits: in video_mode reference the clip only guides "
                            "one new shot (use long_clip trim)", code="LONG_CLIP_NOT_APPLICABLE")
    return Framing(platform=platform, aspect_ratio=aspect, reframe=reframe if aspect else None, focus=focus,
                   trim=trim, normalize=normalize, video_mode=mode, duration=duration, shot_type=shot_type,
                   long_clip=long_clip, seam=seam, overlap=overlap)


def _long_clip_fields(layer: Mapping[str, Any]) -> tuple[str | None, str | None, float | None]:
    """long_clip, seam and overlap, checked (None = the default: reject, cut, DEFAULT_OVERLAP)."""
    long_clip = seam = overlap = None
    if layer.get("long_clip") not in (None, ""):
        long_clip = _choice(layer["long_clip"], LONG_CLIP_CHOICES, "long_clip", "INVALID_LONG_CLIP")
        long_clip = None if long_clip == "reject" else long_clip
    if layer.get("seam") not in (None, ""):
        seam = _choice(layer["seam"], SEAMS, "seam", "INVALID_SEAM")
        seam = None if seam == "cut" else seam
    if layer.get("overlap") not in (None, ""):
        raw = layer["overlap"]
        try:
            overlap = float(_text(raw, "overlap"))
        except (ValueError, SpecError):
            overlap = math.nan
        low, high = OVERLAP_RANGE
        if not low <= overlap <= high:  # NaN fails too
            raise SpecError(f"overlap must be seconds from {low:g} to {high:g} (e.g. 0.5); got {raw!r}",
                            code="INVALID_OVERLAP")
    return long_clip, seam, overlap


def check_provider_framing(framing: Framing, *, provider: str, model: str) -> None:
    """What each provider accepts in video-reference mode, refused before any spend."""
    if framing.video_mode != "reference":
        return
    if provider == "kling" and framing.aspect_ratio in (None, "auto"):
        raise SpecError("Kling's video-reference mode needs an aspect_ratio (16:9, 9:16 or 1:1) or a platform",
                        code="ASPECT_RATIO_REQUIRED")
    low, high = REFERENCE_DURATIONS[(provider, model)]
    if framing.duration is not None and not low <= framing.duration <= high:
        raise SpecError(f"duration {framing.duration} s is outside {low}-{high} s, what {provider} {model} makes "
                        "in video-reference mode", code="DURATION_OUT_OF_RANGE")
    if framing.shot_type is not None and not (provider == "fal" and model == "o3"):
        raise SpecError(f"shot_type is documented only for fal's O3 reference endpoint, not {provider} {model}",
                        code="SHOT_TYPE_NOT_SUPPORTED")


def framing_from_record(record: Mapping[str, Any] | None) -> Framing:
    return parse_framing(dict(record or {}))


# --- the plan ------------------------------------------------------------------------------------


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def _fit_into_limits(width: float, height: float, limits: MediaLimits) -> tuple[int, int]:
    """Scale a frame (keeping its ratio) so each side is within the model's pixel limits."""
    scale = 1.0
    if max(width, height) > limits.max_side_px:
        scale = limits.max_side_px / max(width, height)
    if min(width, height) * scale < limits.min_side_px:
        scale = limits.min_side_px / min(width, height)
    # A ratio beyond 3:1 cannot meet both bounds; the min side wins (the provider refuses narrow ones).
    return _even(width * scale), _even(height * scale)


def _target_fps(fps: float, limits: MediaLimits) -> float | None:
    """A rate inside the limits reached by dropping every k-th frame or repeating frames evenly."""
    if limits.min_fps - limits.fps_tolerance <= fps <= limits.max_fps + limits.fps_tolerance:
        return None
    if fps > limits.max_fps:
        k = math.ceil(fps / limits.max_fps - 1e-9)
        candidate = fps / k
        return round(candidate, 3) if candidate >= limits.min_fps else limits.max_fps
    k = math.ceil(limits.min_fps / fps - 1e-9)
    candidate = fps * k
    return round(candidate, 3) if candidate <= limits.max_fps else limits.min_fps


def _reject_unfixable(facts: VideoFacts, framing: Framing, limits: MediaLimits, length: float) -> None:
    if framing.trim is not None and framing.trim[0] >= facts.duration_seconds - 0.01:
        raise MediaRejected(f"trim {framing.trim[0]:g}-{framing.trim[1]:g} starts after the clip ends "
                            f"({facts.duration_seconds:.2f} s)", code="TRIM_OUTSIDE_CLIP")
    if framing.trim is not None and framing.trim[1] > facts.duration_seconds + 0.05:
        raise MediaRejected(f"trim {framing.trim[0]:g}-{framing.trim[1]:g} ends after the clip "
                            f"({facts.duration_seconds:.2f} s long)", code="TRIM_OUTSIDE_CLIP")
    if length < limits.min_seconds - 0.02:
        what = "the trimmed clip is" if framing.trim else "the clip is"
        raise MediaRejected(f"{what} {length:.2f} s long; the model needs at least {limits.min_seconds:g} s",
                            code="TRIM_TOO_SHORT" if framing.trim else "CLIP_TOO_SHORT")
    if length > limits.max_seconds:
        raise MediaRejected(
            f"the clip is {length:.2f} s long; the model edits at most {limits.max_seconds:g} s. Set trim "
            f"(e.g. trim: 0-10) to edit a part of it", code="CLIP_TOO_LONG")


def plan_prepare(facts: VideoFacts, framing: Framing, limits: MediaLimits, *, keep_audio: bool = True
                 ) -> PreparePlan | None:
    """The work the clip needs before the provider call, or None when it fits as it is.

    Raises `MediaRejected` with a specific code for what cannot (or, with ``normalize: false``,
    may not) be fixed."""
    start, end = framing.trim if framing.trim else (0.0, facts.duration_seconds)
    end = min(end, facts.duration_seconds)
    length = end - start
    _reject_unfixable(facts, framing, limits, length)
    if not framing.normalize:
        # Today's behaviour: the clip must meet the limits as uploaded (the length is the trimmed one).
        check_video(VideoFacts(**{**asdict(facts), "duration_seconds": length}), limits)
        if facts.rotation_degrees:
            raise MediaRejected(
                f"the clip carries a {facts.rotation_degrees}° display rotation (a phone held upright); "
                "set normalize: true to have it turned upright before the edit", code="CLIP_ROTATED")
    reasons: list[str] = []
    width, height = facts.width, facts.height  # display size
    reframe, crop_w, crop_h = "none", None, None
    frame_w, frame_h = float(width), float(height)  # what will be scaled to the output
    if framing.video_mode == "edit" and framing.aspect_ratio in ASPECT_RATIOS:
        target = ASPECT_RATIOS[framing.aspect_ratio]
        source = width / height
        if abs(source / target - 1) > ASPECT_TOLERANCE:
            reframe = framing.reframe or "crop"
            if reframe == "crop":
                if source > target:
                    crop_w, crop_h = _even(height * target), height - height % 2
                else:
                    crop_w, crop_h = width - width % 2, _even(width / target)
                crop_w, crop_h = min(crop_w, width - width % 2), min(crop_h, height - height % 2)
                frame_w, frame_h = crop_w, crop_h
                focus = framing.focus if isinstance(framing.focus, str) else f"{framing.focus[0]:g},{framing.focus[1]:g}"
                reasons.append(f"reframe {width}x{height} to {framing.aspect_ratio}: crop {crop_w}x{crop_h}, focus {focus}")
            else:
                frame_w, frame_h = (width, width / target) if source > target else (height * target, height)
                reasons.append(f"reframe {width}x{height} to {framing.aspect_ratio}: pad onto a blurred copy")
    if framing.output_size and framing.video_mode == "edit":
        out_w, out_h = framing.output_size
    else:
        out_w, out_h = _fit_into_limits(frame_w, frame_h, limits) if framing.normalize else (_even(frame_w), _even(frame_h))
    if (out_w, out_h) != (_even(frame_w), _even(frame_h)) and reframe == "none":
        reasons.append(f"scale {width}x{height} to {out_w}x{out_h} (each side {limits.min_side_px}-{limits.max_side_px} px)")
    elif reframe != "none" and (out_w, out_h) != (_even(frame_w), _even(frame_h)):
        reasons.append(f"scale to {out_w}x{out_h}")
    fps = _target_fps(facts.fps, limits) if framing.normalize else None
    if fps is not None:
        reasons.append(f"frame rate {facts.fps:g} to {fps:g} fps")
    if facts.rotation_degrees:
        reasons.append(f"turn upright (display rotation {facts.rotation_degrees}°)")
    if framing.trim:
        reasons.append(f"trim {start:g}-{end:g} s")
    if framing.normalize and facts.video_codec not in H264_CODECS:
        reasons.append(f"re-encode {facts.video_codec} to H.264")
    if framing.normalize and facts.container not in limits.containers:
        reasons.append(f"rewrap {facts.container} as MP4")
    if framing.normalize and facts.size_bytes > limits.max_video_bytes:
        reasons.append(f"re-encode under {limits.max_video_bytes // 1_000_000} MB")
    if not reasons:
        return None
    return PreparePlan(
        source_width=width, source_height=height, output_width=out_w, output_height=out_h,
        rotation_degrees=facts.rotation_degrees, trim_start=start if framing.trim else 0.0,
        trim_end=end if framing.trim else None, reframe=reframe,  # type: ignore[arg-type]
        focus=framing.focus if reframe == "crop" else "center", crop_width=crop_w, crop_height=crop_h,
        fps=fps, max_output_bytes=int(limits.max_video_bytes * SIZE_HEADROOM), keep_audio=keep_audio,
        reasons=tuple(reasons))


def plan_to_record(plan: PreparePlan) -> dict[str, Any]:
    record = {k: v for k, v in asdict(plan).items() if v is not None}
    record["reasons"] = list(plan.reasons)
    if isinstance(plan.focus, tuple):
        record["focus"] = list(plan.focus)
    return record


def plan_from_record(record: Mapping[str, Any]) -> PreparePlan:
    fields = {k: v for k, v in record.items() if k in PreparePlan.__dataclass_fields__}
    if isinstance(fields.get("focus"), list):
        fields["focus"] = tuple(float(v) for v in fields["focus"])
    fields["reasons"] = tuple(fields.get("reasons") or ())
    for name in ("source_width", "source_height", "output_width", "output_height", "rotation_degrees"):
        if name in fields:
            fields[name] = int(fields[name])
    return PreparePlan(**fields)
