"""Kling's documented contract that every part of the emulator shares: the API paths, the model and
input limits, the error envelope (`ApiError`) and the checks on image references, callback URLs and
external ids (provider-apis.md sections 1.3-1.11)."""

from __future__ import annotations

import base64
import binascii
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlsplit

API_PATH = "/v1/videos/omni-video"
ELEMENTS_PATH = "/v1/general/advanced-custom-elements"
API_ROOTS = (API_PATH, ELEMENTS_PATH)
RESULTS_PREFIX = "/results/"
MODELS = ("kling-video-o1", "kling-v3-omni")
DEFAULT_MODEL = "kling-video-o1"
UNITS_PER_SECOND = {"std": Decimal("0.9"), "pro": Decimal("1.2")}  # video-input rates, section 1.11
TERMINAL = frozenset({"succeed", "failed"})
NBF_LEEWAY_SECONDS = 5  # Kling's own example mints nbf = now - 5
MAX_PROMPT_CHARS = 2500
MAX_REFERENCES_WITH_VIDEO = 4
MAX_INPUT_BYTES = 200 * 1024 * 1024

# Images (omni-video image_list and element images): jpg/jpeg/png, <= 10 MB, sides >= 300 px, aspect
# 1:2.5-2.5:1 (sections 1.3 and 1.10).
IMAGE_FORMATS = ("png", "jpeg")
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_IMAGE_SIDE = 300
MAX_IMAGE_ASPECT = 2.5


class ApiError(Exception):
    """An error answer in Kling's shape: `{"code", "message", "request_id"}` with an HTTP status."""

    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message


def _invalid(field_name: str, reason: str) -> ApiError:
    return ApiError(400, 1201, f"Invalid parameter {field_name}: {reason}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_raw_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_image_ref(field_name: str, value: Any) -> str:
    """An image given as an http(s) URL or raw base64 without a `data:` prefix (sections 1.3, 1.10)."""
    if not isinstance(value, str) or not value:
        raise _invalid(field_name, "must be a non-empty string: an http(s) URL or raw base64")
    if value.startswith("data:"):
        raise _invalid(field_name, "base64 must be raw, without a data: prefix")
    if not _is_http_url(value) and not _is_raw_base64(value):
        raise _invalid(field_name, "must be an http(s) URL or raw base64")
    return value


def _callback_and_external_id(body: dict[str, Any]) -> tuple[str | None, str | None]:
    callback_url = body.get("callback_url")
    if callback_url is not None and not _is_http_url(callback_url):
        raise _invalid("callback_url", "must be an http(s) URL")
    external_task_id = body.get("external_task_id")
    if external_task_id is not None and (not isinstance(external_task_id, str) or not external_task_id):
        raise _invalid("external_task_id", "must be a non-empty string")
    return callback_url, external_task_id


def _check_image_limits(facts: dict[str, Any]) -> str | None:
    """Kling's documented image limits (sections 1.3 and 1.10); `facts` from `media.probe_image`."""
    if facts["format"] not in IMAGE_FORMATS:
        return f"format {facts['format']} is not supported, use jpg, jpeg or png"
    width, height = facts["width"], facts["height"]
    if min(width, height) < MIN_IMAGE_SIDE:
        return f"{width}x{height}px is below the {MIN_IMAGE_SIDE}px minimum"
    if not 1 / MAX_IMAGE_ASPECT <= width / height <= MAX_IMAGE_ASPECT:
        return f"aspect ratio {width}:{height} is outside 1:2.5-2.5:1"
    return None


def _check_input_limits(facts: dict[str, Any]) -> str | None:
    """Kling's documented input limits for the reference/edit video (section 1.10)."""
    if "mp4" not in facts["container"] and "mov" not in facts["container"]:
        return f"invalid video: format {facts['container']} is not supported, use mp4 or mov"
    duration = facts["duration_seconds"]
    if not 2.95 <= duration <= 10.05:  # small tolerance for container rounding
        return f"invalid video: duration {duration:.2f}s is outside the allowed 3-10s"
    for side in ("width", "height"):
        if not 720 <= facts[side] <= 2160:
            return f"invalid video: {side} {facts[side]}px is outside the allowed 720-2160px"
    if not 23.9 <= facts["fps"] <= 60.1:
        return f"invalid video: frame rate {facts['fps']:g} fps is outside the allowed 24-60 fps"
    return None


def _units(seconds: float, mode: str) -> str:
    """Billing: input duration rounded to the nearest second times the mode's unit rate."""
    whole = Decimal(str(seconds)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return str((whole * UNITS_PER_SECOND[mode]).normalize())
