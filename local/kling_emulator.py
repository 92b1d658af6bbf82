"""Local emulator of Kling's official Omni-Video API (the O1/O3 video edit endpoint) and its element library.

It follows the contract in docs `provider-apis.md` sections 1.1-1.11, including the failure modes, so the
pipeline can be exercised offline against the same wire format as `https://api-singapore.klingai.com`:

* `POST /v1/videos/omni-video` creates a task; `GET /v1/videos/omni-video/{task_id}` queries it, and
  `GET /v1/videos/omni-video/{external_task_id}` (when no task has that id) queries by external id, the
  form Kling documents ("choose either task_id or external_task_id");
  `GET /v1/videos/omni-video?pageNum=&pageSize=` lists tasks, newest first (30 a page by default; any
  other query parameter, `external_task_id` included, filters nothing, as documented).
* `GET|HEAD /results/{task_id}.mp4` serves the rendered output without auth (Kling results are plain
  CDN URLs).
* Tasks move `submitted -> processing -> succeed|failed` in background threads. The "edit" is real:
  the input is downloaded over HTTP, checked against Kling's input limits and re-encoded by
  `local.media.grade_video` with a visible colour grade at 24 fps.
* References: `image_list[].image_url` must be an http(s) URL or raw base64 (a `data:` prefix is 1201),
  and every `element_list[].element_id` must name a succeeded element of this account, else HTTP 400
  code 1201 naming the id (a video character element is 1201 too: it cannot be combined with a
  reference video). When the task runs, after the video checks, each image_list image is downloaded
  (or decoded) and checked like element images: "image download failed: <url> (<reason>)" or
  "invalid image: ..." fail the task, in both render modes. The elements' frontal images come from
  the emulator's own copies. In `grade` mode the images, then each element's frontal image, are pasted
  as thumbnails along the bottom-left edge of every output frame (`media.grade_video(overlays=...)`),
  so the output visibly uses what the edit was sent. Task snapshots record the prompt, image_list URLs
  and element_list ids as received.
* Render modes (`CLIPEDIT_EMULATOR_RENDER`): `grade` (default) is the real edit above. `copy` is for
  load tests with hundreds of tasks: the result is the downloaded input, byte for byte, served as is
  (no decode, no encode; a `.mov` input is still served at `/results/{task_id}.mp4`). Input limits
  are still checked in copy mode, from a header-only probe (`media.probe(decode=False)`, a few ms), so
  failures look the same in both modes; only a file whose headers are fine but whose frames are
  corrupt fails in `grade` and passes in `copy`.

Element library (section 1.10): `POST /v1/general/advanced-custom-elements` creates an element in an
async task; `GET /v1/general/advanced-custom-elements/{task_id}` (or `{external_task_id}`, as
above) and `?pageNum=&pageSize=` query it. Same JWT auth, error envelope and codes
as omni-video. Field names and limits follow Kling's "Element" API reference (app.klingai.com
.../apiReference/model/element, read through a verbatim text extraction of the page), which agrees with
QuantumNous/new-api's Go element client and its Kling element docs, Tencent Cloud VOD's
`CreateAigcAdvancedCustomElement` (a proxy of the same API) and the kkiai/anyfast reseller docs:

* Body: `element_name` (required, <= 20 chars) and `element_description` (required, <= 100 chars);
  `reference_type` `image_refer` | `video_refer`. `image_refer` needs `element_image_list:
  {"frontal_image": <img>, "refer_images": [{"image_url": <img>}, ... 1-3]}`, where an image is an
  http(s) URL or raw base64 (the docs allow both; a `data:` prefix is 1201, as for omni-video images).
  `video_refer` needs `element_video_list: {"refer_videos": [{"video_url": <url>}]}` (one mp4/mov,
  3-8 s, 1080p, 16:9 or 9:16). The list that does not match `reference_type` is ignored (the docs
  call it "invalid" there). Optional: `element_voice_id` (video elements only), `tag_list:
  [{"tag_id": "o_101".."o_108"}]`, `callback_url`, `external_task_id`.
* Create response: the same `data` as omni-video (`task_id`, `task_info.external_task_id`,
  `task_status`, `created_at`, `updated_at`). Query: `data.task_status` and, once `succeed`,
  `data.task_result.elements[0]` with `element_id`, `element_name`, `element_description`,
  `element_image_list`/`element_video_list`, `tag_list`, `owned_by` and `status`. `element_id` is an
  18-digit long like Kling's (e.g. 863121023120580600), above 2**53, so a client that parses JSON
  numbers as doubles breaks here as it would against Kling. The image lists echo what was sent
  (Kling answers with URLs of its own CDN copies).
* Where sources disagree, both forms are served: the element's type is `reference_type` in new-api's
  and other clients' models but `element_type` in the anyfast/starrise/WaveSpeed response examples, so
  elements carry both keys; `tag_list` entries carry `tag_id` (the request form) and `id`/`name` (the
  reseller response form). WaveSpeed's "2-4 refer images" and the condensed copy in inference-sh/grid
  (`POST /v1/elements` with `name`/`image_url`) contradict the official page and are not emulated.
* Processing: `submitted -> processing`, a wait of `element_seconds` (`CLIPEDIT_EMULATOR_ELEMENT_SECONDS`,
  default 0.5 s), then every image is downloaded (or base64-decoded) and checked against Kling's image
  limits (jpg/jpeg/png, <= 10 MB, sides >= 300 px, aspect 1:2.5-2.5:1): a failed download ends the
  task `failed` with "image download failed: <url> (<reason>)", anything else with "invalid image:
  ...". Video elements get the video checks above.
  Success mints a fresh `element_id`. Callbacks (body: the query `data`) go out on each status change
  through the same machinery, and drop/duplicate knobs, as video tasks. Element tasks take no video
  concurrency slot, and `fail_rate` does not apply to them.
* Emulator choices: a duplicate `external_task_id` among element tasks is 1201 "already exists" (a
  namespace separate from video tasks). The emulator keeps its own copy of the frontal image, as Kling
  does, so using an element later does not depend on its source URL staying reachable. Not emulated:
  preset elements, element deletion (sources disagree on `/v1/general/delete-elements` vs
  `delete-advanced-elements`) and the voice library.

Choices where Kling's docs are silent (client code must branch on `code`, not on HTTP status):

* Unknown task id / external id: HTTP 404, code 1203 ("resource doesn't exist"), message
  "task not found: <id>".
* JWT whose `iss` is not the configured access key: HTTP 401, code 1000 ("auth failed"). A missing
  header is 1001; anything that is not exactly `Bearer <token>`, an undecodable token, a non-HS256
  token, a bad signature or missing numeric `exp`/`nbf` claims is 1002; `nbf` more than 5 s in the
  future is 1003; `exp` in the past is 1004.
* Request-structure problems (body not JSON, not an object, unknown top-level field such as
  `negative_prompt`) are HTTP 400 code 1200; value problems (missing/invalid field, duplicate
  `external_task_id`) are HTTP 400 code 1201 with a message naming the field.
* A method a path does not support is HTTP 404 code 1202; an unknown API path is 404 code 1203.
* `keep_original_sound` defaults to "no" when absent (the docs give no default).
* Input-limit violations (not mp4/mov, outside 3-10 s, a side outside 720-2160 px, outside 24-60 fps,
  over 200 MB) and undownloadable inputs are found by the worker after the task is accepted, so
  they end as `failed` tasks with a `task_status_msg`, not as create errors.
* `refer_type: feature` renders a new shot: the clip centre-cropped to `aspect_ratio` at the mode's
  resolution (std 720p, pro 1080p), `duration` seconds long (default "5"), billed by that length.

Randomised behaviour (fail/error/drop/duplicate rates) is drawn from one `random.Random(seed)`; a
rate of exactly 0 or 1 never consumes randomness, so those runs are fully deterministic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from local import media

__all__ = ["EmulatorSettings", "KlingEmulator", "main"]

log = logging.getLogger(__name__)

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
MAX_REQUEST_BYTES = 32 * 1024 * 1024  # base64 images may be inlined
CALLBACK_TIMEOUT_SECONDS = 10.0
DOWNLOAD_TIMEOUT_SECONDS = 30.0
RENDER_WORKERS = 2  # bounded: 50 tasks must not start 50 encoders on a small box
_TOO_LARGE = "too large"  # download failure reason for files over the size limit

# Messages seen for moderation failures surfaced at the end of a task (section 4, item 2).
RISK_CONTROL_MESSAGES = (
    "Failure to pass the risk control system",
    "The content you submitted may violate community guidelines (risk control)",
)

# Images (omni-video image_list and element images): jpg/jpeg/png, <= 10 MB, sides >= 300 px, aspect
# 1:2.5-2.5:1 (sections 1.3 and 1.10).
IMAGE_FORMATS = ("png", "jpeg")
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_IMAGE_SIDE = 300
MAX_IMAGE_ASPECT = 2.5

# Element library (section 1.10 and the Element API reference).
MAX_ELEMENT_NAME_CHARS = 20
MAX_ELEMENT_DESCRIPTION_CHARS = 100
MAX_REFER_IMAGES = 3
ELEMENT_VIDEO_SIZES = frozenset({(1920, 1080), (1080, 1920)})  # 1080p, 16:9 or 9:16
ELEMENT_TAGS = {
    "o_101": "Hottest", "o_102": "Character", "o_103": "Animal", "o_104": "Item",
    "o_105": "Costume", "o_106": "Scene", "o_107": "Effect", "o_108": "Others",
}
KNOWN_ELEMENT_FIELDS = frozenset(
    {
        "element_name", "element_description", "reference_type", "element_image_list", "element_video_list",
        "element_voice_id", "tag_list", "callback_url", "external_task_id",
    }
)

KNOWN_CREATE_FIELDS = frozenset(
    {
        "model_name", "prompt", "multi_shot", "shot_type", "multi_prompt", "image_list", "element_list",
        "video_list", "sound", "mode", "aspect_ratio", "duration", "watermark_info", "callback_url",
        "external_task_id",
    }
)


# ---------------------------------------------------------------------------------------------
# Settings


# Dataclass field -> environment variable (prefix CLIPEDIT_EMULATOR_).
_ENV_NAMES = {
    "processing_seconds": "PROCESSING_SECONDS",
    "concurrency": "CONCURRENCY",
    "fail_rate": "FAIL_RATE",
    "error_rate": "ERROR_RATE",
    "drop_callback_rate": "DROP_CALLBACK_RATE",
    "duplicate_callback_rate": "DUPLICATE_CALLBACK_RATE",
    "seed": "SEED",
    "render": "RENDER",
    "element_seconds": "ELEMENT_SECONDS",
    "latency_seconds": "LATENCY_SECONDS",
    "lost_response_rate": "LOST_RESPONSE_RATE",
}
ENV_PREFIX = "CLIPEDIT_EMULATOR_"
RENDER_MODES = ("grade", "copy")


class _SettingError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name} {message}")
        self.field_name, self.detail = field_name, message


@dataclass(frozen=True)
class EmulatorSettings:
    """Behaviour knobs; `from_env` reads the `CLIPEDIT_EMULATOR_*` variables (see `_ENV_NAMES`)."""

    processing_seconds: float = 2.0  # time a task spends "processing" before it is rendered
    concurrency: int = 5  # account concurrency: tasks in submitted/processing each hold a slot
    fail_rate: float = 0.0  # share of tasks that end `failed` (risk control)
    error_rate: float = 0.0  # share of API calls answered HTTP 500 code 5000
    drop_callback_rate: float = 0.0  # share of callbacks never sent
    duplicate_callback_rate: float = 0.0  # share of callbacks sent twice
    seed: int = 0
    render: str = "grade"  # "grade": real re-encode; "copy": serve the input bytes unchanged (load tests)
    element_seconds: float = 0.5  # time an element-creation task spends "processing"
    latency_seconds: float = 0.0  # added before every API answer (slow responses; past the
    # client's read timeout this is a timeout, with the work possibly done)
    lost_response_rate: float = 0.0  # share of accepted creates answered 504/5002 anyway: the task
    # exists but the caller cannot know (Kling: "check by external_task_id before resubmitting")

    def __post_init__(self) -> None:
        for name in ("processing_seconds", "element_seconds", "latency_seconds"):
            value = getattr(self, name)
            if not value >= 0.0 or value == float("inf"):  # also rejects NaN
                raise _SettingError(name, f"must be a finite number >= 0, got {value}")
        if self.concurrency < 1:
            raise _SettingError("concurrency", f"must be >= 1, got {self.concurrency}")
        for name in ("fail_rate", "error_rate", "drop_callback_rate", "duplicate_callback_rate", "lost_response_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise _SettingError(name, f"must be between 0 and 1, got {value}")
        if self.render not in RENDER_MODES:
            raise _SettingError("render", f"must be one of {', '.join(RENDER_MODES)}, got {self.render!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> EmulatorSettings:
        parsers: dict[str, type] = {"concurrency": int, "seed": int, "render": str}
        values: dict[str, Any] = {}
        for field_name, suffix in _ENV_NAMES.items():
            raw = environ.get(ENV_PREFIX + suffix, "").strip()
            if not raw:
                continue
            parse = parsers.get(field_name, float)
            try:
                values[field_name] = parse(raw)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{suffix}={raw!r} is not a valid {parse.__name__}") from None
        try:
            return cls(**values)
        except _SettingError as exc:
            # Name the environment variable, not the dataclass field, so the fix is obvious.
            raise ValueError(f"{ENV_PREFIX}{_ENV_NAMES[exc.field_name]} {exc.detail}") from None


# ---------------------------------------------------------------------------------------------
# Errors and tasks


def stop_workers(render_pool: ThreadPoolExecutor, threads: Iterable[threading.Thread],
                 callback_pool: ThreadPoolExecutor) -> None:
    """Cancel queued renders so the task threads waiting on them return, wait for those threads
    (15 s at most in all), then let in-flight callbacks finish."""
    render_pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 15
    for thread in list(threads):
        thread.join(max(0.0, deadline - time.monotonic()))
    render_pool.shutdown(wait=True)
    callback_pool.shutdown(wait=True, cancel_futures=True)


def callback_copies(rng: random.Random, settings: EmulatorSettings, stats: dict[str, Any]) -> int:
    """How many times to send one callback: 0 (dropped), 1, or 2 (duplicated), per the knobs."""
    if seeded_chance(rng, settings.drop_callback_rate):
        stats["callbacks_dropped"] += 1
        return 0
    if seeded_chance(rng, settings.duplicate_callback_rate):
        stats["callbacks_duplicated"] += 1
        return 2
    return 1


def seeded_chance(rng: random.Random, rate: float) -> bool:
    """One fault decision: rates 0 and 1 draw nothing, so they never shift a seeded sequence."""
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    return rng.random() < rate


class ApiError(Exception):
    """An error answer in Kling's shape: `{"code", "message", "request_id"}` with an HTTP status."""

    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message


def _invalid(field_name: str, reason: str) -> ApiError:
    return ApiError(400, 1201, f"Invalid parameter {field_name}: {reason}")


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Task:
    holds_slot: ClassVar[bool] = True  # a video task holds a concurrency slot until it finishes

    task_id: str
    external_task_id: str | None
    request: dict[str, Any]
    model_name: str
    mode: str
    video_url: str
    refer_type: str
    keep_original_sound: str
    callback_url: str | None
    watermark_enabled: bool
    planned_failure: str | None  # decided at create time so seeded runs are reproducible
    created_at: int
    updated_at: int
    prompt: str | None = None
    image_urls: list[str] = field(default_factory=list)  # image_list[].image_url, as received
    element_ids: list[int] = field(default_factory=list)  # element_list[].element_id, as received
    element_frontals: list[Path] = field(default_factory=list)  # those elements' frontal images
    status: str = "submitted"
    status_msg: str = ""
    input_duration: float | None = None
    final_unit_deduction: str = "0"
    videos: list[dict[str, str]] = field(default_factory=list)
    result_path: Path | None = None
    render: str | None = None  # the render mode the result was made with
    callback_queue: deque[dict[str, Any]] = field(default_factory=deque)
    callback_draining: bool = False

    def snapshot(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "external_task_id": self.external_task_id,
            "status": self.status,
            "status_msg": self.status_msg,
            "model_name": self.model_name,
            "mode": self.mode,
            "refer_type": self.refer_type,
            "keep_original_sound": self.keep_original_sound,
            "video_url": self.video_url,
            "prompt": self.prompt,
            "image_urls": list(self.image_urls),
            "element_ids": list(self.element_ids),
            "callback_url": self.callback_url,
            "request": json.loads(json.dumps(self.request)),  # deep copy
            "input_duration": self.input_duration,
            "final_unit_deduction": self.final_unit_deduction,
            "videos": [dict(v) for v in self.videos],
            "render": self.render,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def query_data(self) -> dict[str, Any]:
        """`data` of the query response, section 1.5."""
        data: dict[str, Any] = {
            "task_id": self.task_id,
            "task_status": self.status,
            "task_status_msg": self.status_msg,
            "task_info": {"external_task_id": self.external_task_id or ""},
            "watermark_info": {"enabled": self.watermark_enabled},
            "final_unit_deduction": self.final_unit_deduction,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.status == "succeed":
            data["task_result"] = {"videos": [dict(v) for v in self.videos]}
        return data

    def callback_body(self) -> dict[str, Any]:
        """Callback POST body, section 1.7 (no watermark_url, as documented)."""
        duration = f"{self.input_duration:.1f}" if self.input_duration is not None else ""
        return {
            "task_id": self.task_id,
            "task_status": self.status,
            "task_status_msg": self.status_msg,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "final_unit_deduction": self.final_unit_deduction,
            "task_info": {
                "parent_video": {"id": "", "url": self.video_url, "duration": duration},
                "external_task_id": self.external_task_id or "",
            },
            "task_result": {
                "images": [],
                "videos": [{"id": v["id"], "url": v["url"], "duration": v["duration"]} for v in self.videos],
            },
        }


@dataclass
class _Element:
    """An element-creation task (section 1.10) and, once it succeeds, the element it made."""

    holds_slot: ClassVar[bool] = False  # element tasks take no video concurrency slot

    task_id: str
    external_task_id: str | None
    request: dict[str, Any]
    spec: _ElementSpec
    created_at: int
    updated_at: int
    status: str = "submitted"
    status_msg: str = ""
    element_id: int | None = None
    frontal_path: Path | None = None  # the emulator's copy of the frontal image (image_refer)
    final_unit_deduction: str = "0"
    callback_queue: deque[dict[str, Any]] = field(default_factory=deque)
    callback_draining: bool = False

    @property
    def callback_url(self) -> str | None:
        return self.spec.callback_url

    def snapshot(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "task_id": self.task_id,
            "external_task_id": self.external_task_id,
            "status": self.status,
            "status_msg": self.status_msg,
            "element_id": self.element_id,
            "element_name": spec.element_name,
            "element_description": spec.element_description,
            "reference_type": spec.reference_type,
            "frontal_image": spec.frontal_image,
            "refer_images": list(spec.refer_images),
            "video_url": spec.video_url,
            "tag_ids": list(spec.tag_ids),
            "callback_url": spec.callback_url,
            "request": json.loads(json.dumps(self.request)),  # deep copy
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def element_data(self) -> dict[str, Any]:
        """One entry of `task_result.elements` (both `reference_type` and `element_type`: sources differ)."""
        spec = self.spec
        data: dict[str, Any] = {
            "element_id": self.element_id,
            "element_name": spec.element_name,
            "element_description": spec.element_description,
            "reference_type": spec.reference_type,
            "element_type": spec.reference_type,
            "tag_list": [{"tag_id": t, "id": t, "name": ELEMENT_TAGS[t]} for t in spec.tag_ids],
            "owned_by": "user",
            "status": "succeed",
        }
        if spec.reference_type == "image_refer":
            data["element_image_list"] = {
                "frontal_image": spec.frontal_image,
                "refer_images": [{"image_url": url} for url in spec.refer_images],
            }
        else:
            data["element_video_list"] = {"refer_videos": [{"video_url": spec.video_url}]}
        if spec.voice_id is not None:
            data["element_voice_info"] = {"voice_id": spec.voice_id, "voice_name": "", "owned_by": "user"}
        return data

    def query_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "task_id": self.task_id,
            "task_status": self.status,
            "task_status_msg": self.status_msg,
            "task_info": {"external_task_id": self.external_task_id or ""},
            "final_unit_deduction": self.final_unit_deduction,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.status == "succeed":
            data["task_result"] = {"elements": [self.element_data()]}
        return data

    def callback_body(self) -> dict[str, Any]:
        return self.query_data()


# ---------------------------------------------------------------------------------------------
# Request validation (section 1.3)


@dataclass(frozen=True)
class _CreateSpec:
    model_name: str
    mode: str
    video_url: str
    refer_type: str
    keep_original_sound: str
    callback_url: str | None
    external_task_id: str | None
    watermark_enabled: bool
    prompt: str | None
    image_urls: tuple[str, ...]
    element_ids: tuple[int, ...]


# Video-reference output: the asked ratio at the mode's resolution (std 720p, pro 1080p).
_REFERENCE_SIZES = {("16:9", "std"): (1280, 720), ("9:16", "std"): (720, 1280), ("1:1", "std"): (720, 720),
                    ("16:9", "pro"): (1920, 1080), ("9:16", "pro"): (1080, 1920), ("1:1", "pro"): (1080, 1080)}
REFERENCE_DEFAULT_DURATION = "5"


def _reference_shot(task: "_Task") -> tuple[tuple[int, int] | None, float | None]:
    """(size, duration) of a feature reference's new shot; (None, None) for a base edit."""
    if task.refer_type != "feature":
        return None, None
    ratio = task.request.get("aspect_ratio") or "16:9"
    return _REFERENCE_SIZES[(ratio, task.mode)], float(task.request.get("duration") or REFERENCE_DEFAULT_DURATION)


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


def _validate_create(body: dict[str, Any]) -> _CreateSpec:
    unknown = sorted(set(body) - KNOWN_CREATE_FIELDS)
    if unknown:
        raise ApiError(400, 1200, f"Invalid request parameters: unknown field(s) {', '.join(unknown)}")

    model_name = body.get("model_name", DEFAULT_MODEL)
    if model_name not in MODELS:
        raise _invalid("model_name", f"{model_name!r} is not supported; use one of {', '.join(MODELS)}")

    multi_shot = body.get("multi_shot", False)
    if not isinstance(multi_shot, bool):
        raise _invalid("multi_shot", "must be a boolean")
    shot_type = body.get("shot_type")
    if shot_type is not None and shot_type not in ("customize", "intelligence"):
        raise _invalid("shot_type", "must be customize or intelligence")

    prompt = body.get("prompt")
    prompt_optional = multi_shot and shot_type == "customize"
    if prompt is None and not prompt_optional:
        raise _invalid("prompt", "is required")
    if prompt is not None:
        if not isinstance(prompt, str) or (not prompt.strip() and not prompt_optional):
            raise _invalid("prompt", "must be a non-empty string")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise _invalid("prompt", f"must be at most {MAX_PROMPT_CHARS} characters, got {len(prompt)}")

    mode = body.get("mode", "pro")
    if mode not in UNITS_PER_SECOND:
        raise _invalid("mode", f"{mode!r} is not supported; use std or pro")

    video_list = body.get("video_list")
    if not isinstance(video_list, list) or len(video_list) != 1:
        raise _invalid("video_list", "must contain exactly one video")
    video = video_list[0]
    if not isinstance(video, dict):
        raise _invalid("video_list", "entries must be objects")
    extra = sorted(set(video) - {"video_url", "refer_type", "keep_original_sound"})
    if extra:
        raise _invalid("video_list", f"unknown field(s) {', '.join(extra)}")
    if not _is_http_url(video.get("video_url")):
        raise _invalid("video_list[0].video_url", "must be an http(s) URL")
    refer_type = video.get("refer_type", "base")
    if refer_type not in ("base", "feature"):
        raise _invalid("video_list[0].refer_type", "must be base or feature")
    keep_original_sound = video.get("keep_original_sound", "no")
    if keep_original_sound not in ("yes", "no"):
        raise _invalid("video_list[0].keep_original_sound", 'must be the string "yes" or "no"')

    sound = body.get("sound")
    if sound is not None and sound not in ("on", "off"):
        raise _invalid("sound", "must be on or off")
    if sound == "on":
        raise _invalid("sound", "must be off when video_list is provided")

    images = body.get("image_list", [])
    if not isinstance(images, list):
        raise _invalid("image_list", "must be a list")
    has_first_frame = False
    for i, image in enumerate(images):
        name = f"image_list[{i}]"
        if not isinstance(image, dict) or not isinstance(image.get("image_url"), str) or not image["image_url"]:
            raise _invalid(name, "must be an object with a non-empty image_url")
        _check_image_ref(f"{name}.image_url", image["image_url"])
        image_type = image.get("type")
        if image_type is not None:
            if image_type not in ("first_frame", "end_frame"):
                raise _invalid(f"{name}.type", "must be first_frame or end_frame")
            if refer_type == "base":
                raise _invalid(f"{name}.type", "frame images cannot be combined with a base video edit")
            has_first_frame = has_first_frame or image_type == "first_frame"

    elements = body.get("element_list", [])
    if not isinstance(elements, list):
        raise _invalid("element_list", "must be a list")
    for i, element in enumerate(elements):
        element_id = element.get("element_id") if isinstance(element, dict) else None
        if not isinstance(element_id, int) or isinstance(element_id, bool):
            raise _invalid(f"element_list[{i}].element_id", "must be an integer element id")
    if len(images) + len(elements) > MAX_REFERENCES_WITH_VIDEO:
        raise _invalid(
            "image_list",
            f"images plus elements must be at most {MAX_REFERENCES_WITH_VIDEO} with a reference video, "
            f"got {len(images) + len(elements)}",
        )

    aspect_ratio = body.get("aspect_ratio")
    if aspect_ratio is not None:
        if refer_type == "base":
            raise _invalid("aspect_ratio", "is not supported for base video edits; the output follows the input")
        if aspect_ratio not in ("16:9", "9:16", "1:1"):
            raise _invalid("aspect_ratio", "must be 16:9, 9:16 or 1:1")
    elif refer_type == "feature" and not has_first_frame:
        raise _invalid("aspect_ratio", "is required for feature video references without a first frame")

    duration = body.get("duration")
    if duration is not None:
        low, high = (3, 10) if refer_type == "feature" else (3, 15)
        if not isinstance(duration, str) or not duration.isdigit() or not low <= int(duration) <= high:
            raise _invalid("duration", f'must be a string from "{low}" to "{high}"')

    watermark = body.get("watermark_info", {"enabled": False})
    if not isinstance(watermark, dict) or not isinstance(watermark.get("enabled", False), bool):
        raise _invalid("watermark_info", 'must be {"enabled": true|false}')

    callback_url, external_task_id = _callback_and_external_id(body)

    return _CreateSpec(
        model_name=model_name,
        mode=mode,
        video_url=video["video_url"],
        refer_type=refer_type,
        keep_original_sound=keep_original_sound,
        callback_url=callback_url,
        external_task_id=external_task_id,
        watermark_enabled=bool(watermark.get("enabled", False)),
        prompt=prompt,
        image_urls=tuple(image["image_url"] for image in images),
        element_ids=tuple(element["element_id"] for element in elements),
    )


# ---------------------------------------------------------------------------------------------
# Element request validation (section 1.10)


@dataclass(frozen=True)
class _ElementSpec:
    element_name: str
    element_description: str
    reference_type: str
    frontal_image: str | None
    refer_images: tuple[str, ...]
    video_url: str | None
    voice_id: str | None
    tag_ids: tuple[str, ...]
    callback_url: str | None
    external_task_id: str | None


def _bounded_text(body: dict[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _invalid(name, "is required and must be a non-empty string")
    if len(value) > limit:
        raise _invalid(name, f"must be at most {limit} characters, got {len(value)}")
    return value


def _validate_element_create(body: dict[str, Any]) -> _ElementSpec:
    unknown = sorted(set(body) - KNOWN_ELEMENT_FIELDS)
    if unknown:
        raise ApiError(400, 1200, f"Invalid request parameters: unknown field(s) {', '.join(unknown)}")
    element_name = _bounded_text(body, "element_name", MAX_ELEMENT_NAME_CHARS)
    element_description = _bounded_text(body, "element_description", MAX_ELEMENT_DESCRIPTION_CHARS)
    reference_type = body.get("reference_type")
    if reference_type not in ("image_refer", "video_refer"):
        raise _invalid("reference_type", "must be image_refer or video_refer")

    frontal_image: str | None = None
    refer_images: list[str] = []
    video_url: str | None = None
    if reference_type == "image_refer":
        images = body.get("element_image_list")
        if not isinstance(images, dict):
            raise _invalid("element_image_list", "is required for image_refer: {frontal_image, refer_images}")
        extra = sorted(set(images) - {"frontal_image", "refer_images"})
        if extra:
            raise _invalid("element_image_list", f"unknown field(s) {', '.join(extra)}")
        if images.get("frontal_image") is None:
            raise _invalid("element_image_list.frontal_image", "is required")
        frontal_image = _check_image_ref("element_image_list.frontal_image", images["frontal_image"])
        refers = images.get("refer_images")
        if not isinstance(refers, list) or not 1 <= len(refers) <= MAX_REFER_IMAGES:
            got = len(refers) if isinstance(refers, list) else "none"
            raise _invalid("element_image_list.refer_images", f"must list 1 to {MAX_REFER_IMAGES} images, got {got}")
        for i, item in enumerate(refers):
            name = f"element_image_list.refer_images[{i}]"
            if not isinstance(item, dict) or set(item) != {"image_url"}:
                raise _invalid(name, 'must be {"image_url": <URL or raw base64>}')
            refer_images.append(_check_image_ref(f"{name}.image_url", item["image_url"]))
    else:
        videos = body.get("element_video_list")
        if not isinstance(videos, dict) or set(videos) != {"refer_videos"}:
            raise _invalid("element_video_list", 'is required for video_refer: {"refer_videos": [{"video_url"}]}')
        refer_videos = videos["refer_videos"]
        if not isinstance(refer_videos, list) or len(refer_videos) != 1:
            raise _invalid("element_video_list.refer_videos", "must contain exactly one video")
        item = refer_videos[0]
        if not isinstance(item, dict) or set(item) != {"video_url"} or not _is_http_url(item["video_url"]):
            raise _invalid("element_video_list.refer_videos[0].video_url", "must be an http(s) URL")
        video_url = item["video_url"]

    voice_id = body.get("element_voice_id")
    if voice_id is not None:
        if not isinstance(voice_id, str) or not voice_id:
            raise _invalid("element_voice_id", "must be a non-empty string")
        if reference_type != "video_refer":
            raise _invalid("element_voice_id", "only video_refer elements can bind a voice")

    tags = body.get("tag_list", [])
    if not isinstance(tags, list):
        raise _invalid("tag_list", "must be a list")
    tag_ids: list[str] = []
    for i, tag in enumerate(tags):
        tag_id = tag.get("tag_id") if isinstance(tag, dict) else None
        if tag_id not in ELEMENT_TAGS:
            raise _invalid(f"tag_list[{i}].tag_id", f"must be one of {', '.join(ELEMENT_TAGS)}")
        tag_ids.append(tag_id)

    callback_url, external_task_id = _callback_and_external_id(body)
    return _ElementSpec(
        element_name=element_name,
        element_description=element_description,
        reference_type=reference_type,
        frontal_image=frontal_image,
        refer_images=tuple(refer_images),
        video_url=video_url,
        voice_id=voice_id,
        tag_ids=tuple(tag_ids),
        callback_url=callback_url,
        external_task_id=external_task_id,
    )


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


# ---------------------------------------------------------------------------------------------
# Auth (section 1.2): HS256 verified with hmac directly, so every failure maps to an exact code.


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _verify_hs256(token: str, secret: str) -> dict[str, Any]:
    invalid = ApiError(401, 1002, "Authorization is invalid: token cannot be decoded")
    parts = token.split(".")
    if len(parts) != 3:
        raise invalid
    try:
        header = _b64url_json(parts[0])
        claims = _b64url_json(parts[1])
        signature = base64.urlsafe_b64decode((parts[2] + "=" * (-len(parts[2]) % 4)).encode("ascii"))
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid from None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise ApiError(401, 1002, "Authorization is invalid: expected an HS256 JWT")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise ApiError(401, 1002, "Authorization is invalid: signature verification failed")
    return claims


# ---------------------------------------------------------------------------------------------
# HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: KlingEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API front end
    timeout = 30  # idle keep-alive connections must not pin handler threads forever
    server: _Server

    def do_GET(self) -> None:
        self.server.emulator._handle(self, "GET")

    def do_HEAD(self) -> None:
        self.server.emulator._handle(self, "HEAD")

    def do_POST(self) -> None:
        self.server.emulator._handle(self, "POST")

    def do_PUT(self) -> None:
        self.server.emulator._handle(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.emulator._handle(self, "PATCH")

    def do_DELETE(self) -> None:
        self.server.emulator._handle(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True  # we will not drain it; drop the connection after answering
            raise ApiError(400, 1200, "Invalid request parameters: body too large")
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def send_file(self, path: Path) -> None:
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command != "HEAD":
            with path.open("rb") as fh:  # streamed in chunks, never read whole
                shutil.copyfileobj(fh, self.wfile, 64 * 1024)


# ---------------------------------------------------------------------------------------------
# The emulator


class KlingEmulator:
    """Thread-based HTTP emulator of Kling's Omni-Video API and element library for one account (AK/SK pair).

    `settings` may be replaced at runtime (e.g. `dataclasses.replace`): every knob is read when the
    decision is made, except `seed`, which only seeds the RNG at construction.

    Observability for tests: `tasks()`, `elements()`, `stats()`, `wait_for_status()` (video tasks and
    element tasks alike: their ids never collide) and `wait_for_callbacks()` are thread-safe.
    `stats()` counts: `creates_accepted` (video tasks); `element_creates_accepted` and
    `elements_created` (element tasks accepted, and those that succeeded with an element_id);
    `rejected_by_code` {code: count} for every error answer (including injected 5000s);
    `max_concurrent_observed` (tasks holding a slot at once);
    `callbacks_sent` (POST attempts, duplicates included), `callbacks_failed` (attempts that raised
    or got a non-2xx answer), `callbacks_dropped` and `callbacks_duplicated` (injected faults);
    `responses_lost` (creates that succeeded but were answered 504, the `LOST_RESPONSE_RATE` knob).
    """

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        settings: EmulatorSettings | None = None,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not access_key or not secret_key:
            raise ValueError("access_key and secret_key must be non-empty")
        self._access_key, self._secret_key, self._api_key = access_key, secret_key, api_key
        self.settings = settings or EmulatorSettings()
        self._address = (host, port)
        self._rng = random.Random(self.settings.seed)

        self._cond = threading.Condition()  # guards everything below; notified on every task change
        self._tasks: dict[str, _Task] = {}
        self._by_external: dict[str, str] = {}
        self._order: list[str] = []
        self._elements: dict[str, _Element] = {}  # by task_id
        self._elements_by_external: dict[str, str] = {}
        self._element_order: list[str] = []
        self._elements_by_id: dict[int, _Element] = {}  # succeeded elements, by element_id
        self._active = 0
        self._callbacks_pending = 0  # queued or in flight
        self._id_counter = 0
        self._stats: dict[str, Any] = {
            "creates_accepted": 0,
            "element_creates_accepted": 0,
            "elements_created": 0,
            "rejected_by_code": {},
            "max_concurrent_observed": 0,
            "callbacks_sent": 0,
            "callbacks_dropped": 0,
            "callbacks_duplicated": 0,
            "callbacks_failed": 0,
            "responses_lost": 0,
        }

        self._stop = threading.Event()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._task_threads: list[threading.Thread] = []
        self._render_pool = ThreadPoolExecutor(RENDER_WORKERS, thread_name_prefix="kling-render")
        self._callback_pool = ThreadPoolExecutor(4, thread_name_prefix="kling-callback")
        self._http = httpx.Client(timeout=CALLBACK_TIMEOUT_SECONDS)
        self._work_dir: Path | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> KlingEmulator:
        if self._server is not None or self._stop.is_set():
            raise RuntimeError("emulator already started (it cannot be restarted)")
        self._work_dir = Path(tempfile.mkdtemp(prefix="kling-emulator-"))
        self._server = _Server(self._address, self)
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="kling-http", daemon=True
        )
        self._serve_thread.start()
        log.info("Kling emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()  # interrupts processing waits and suppresses further callbacks
        if self._server is None:  # never started: just release the pools
            self._render_pool.shutdown(wait=False)
            self._callback_pool.shutdown(wait=False)
            self._http.close()
            return
        self._server.shutdown()
        self._server.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join()
        stop_workers(self._render_pool, self._task_threads, self._callback_pool)
        self._http.close()
        with self._cond:
            self._cond.notify_all()
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> KlingEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- observability ------------------------------------------------------------------------

    def tasks(self) -> list[dict[str, Any]]:
        with self._cond:
            return [self._tasks[task_id].snapshot() for task_id in self._order]

    def elements(self) -> list[dict[str, Any]]:
        """Element-creation tasks, oldest first: status, the image URLs (or base64) sent, element_id."""
        with self._cond:
            return [self._elements[task_id].snapshot() for task_id in self._element_order]

    def stats(self) -> dict[str, Any]:
        with self._cond:
            snapshot = dict(self._stats)
            snapshot["rejected_by_code"] = dict(self._stats["rejected_by_code"])
            snapshot["active_tasks"] = self._active
            return snapshot

    def wait_for_status(self, task_id: str, statuses: str | Iterable[str], timeout: float = 10.0) -> dict[str, Any]:
        """Block until the task (video or element) is in one of `statuses`; returns its snapshot or
        raises TimeoutError."""
        wanted = {statuses} if isinstance(statuses, str) else set(statuses)
        with self._cond:
            task: _Task | _Element | None = self._tasks.get(task_id) or self._elements.get(task_id)
            if task is None:
                raise KeyError(f"unknown task {task_id}")
            if not self._cond.wait_for(lambda: task.status in wanted, timeout):
                raise TimeoutError(f"task {task_id} is {task.status!r}, not {sorted(wanted)} after {timeout}s")
            return task.snapshot()

    def wait_for_callbacks(self, timeout: float = 10.0) -> dict[str, Any]:
        """Block until no callback is queued or in flight; returns `stats()` or raises TimeoutError.

        Only meaningful once the tasks of interest have reached the status whose callback you expect.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._callbacks_pending == 0, timeout):
                raise TimeoutError(f"{self._callbacks_pending} callback(s) still pending after {timeout}s")
        return self.stats()

    # -- request handling ---------------------------------------------------------------------

    def _handle(self, req: _Handler, method: str) -> None:
        request_id = str(uuid.uuid4())
        path = urlsplit(req.path).path.rstrip("/") or "/"
        try:
            body = req.read_body()
            if path.startswith(RESULTS_PREFIX):
                self._serve_result(req, method, path)
                return
            root = next((r for r in API_ROOTS if path == r or path.startswith(r + "/")), None)
            if root is None:
                raise ApiError(404, 1203, f"resource not found: {path}")
            if self.settings.latency_seconds:
                self._stop.wait(self.settings.latency_seconds)  # a slow answer (woken early on stop)
            # Injected outage: answered before auth or any other work, like a failing front end.
            if self._chance(self.settings.error_rate):
                raise ApiError(500, 5000, "server internal error")
            self._authenticate(req.headers.get("Authorization"))
            status, data = self._route_api(method, root, path, urlsplit(req.path).query, body)
            if method == "POST" and path == API_PATH and self._chance(self.settings.lost_response_rate):
                with self._cond:
                    self._stats["responses_lost"] += 1
                raise ApiError(504, 5002, "internal timeout")  # the task was created all the same
            req.send_json(status, {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": data})
        except ApiError as err:
            with self._cond:
                counts = self._stats["rejected_by_code"]
                counts[err.code] = counts.get(err.code, 0) + 1
            req.send_json(err.http_status, {"code": err.code, "message": err.message, "request_id": request_id})
        except (BrokenPipeError, ConnectionResetError):
            pass  # client went away mid-answer
        except Exception:
            log.exception("emulator bug while handling %s %s", method, req.path)
            req.send_json(500, {"code": 5000, "message": "server internal error", "request_id": request_id})

    def _authenticate(self, header: str | None) -> None:
        if header is None or not header.strip():
            raise ApiError(401, 1001, "Authorization is empty")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token or token != token.strip() or " " in token:
            raise ApiError(401, 1002, "Authorization is invalid: expected 'Bearer <token>'")
        if self._api_key is not None and hmac.compare_digest(token.encode(), self._api_key.encode()):
            return
        claims = _verify_hs256(token, self._secret_key)
        if claims.get("iss") != self._access_key:
            raise ApiError(401, 1000, "Auth failed: unknown access key (iss)")
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (exp, nbf)):
            raise ApiError(401, 1002, "Authorization is invalid: exp and nbf claims are required")
        now = time.time()
        if nbf > now + NBF_LEEWAY_SECONDS:
            raise ApiError(401, 1003, "Authorization is not yet valid (nbf)")
        if exp <= now:
            raise ApiError(401, 1004, "Authorization has expired (exp)")

    def _route_api(self, method: str, root: str, path: str, query: str, body: bytes) -> tuple[int, Any]:
        if path == root:
            if method == "POST":
                return 200, self._create(body) if root == API_PATH else self._create_element(body)
            if method in ("GET", "HEAD"):
                # The list takes pageNum/pageSize only (Kling's docs): an external_task_id in the
                # query filters nothing, the first page comes back.
                params = {k: v[-1] for k, v in parse_qs(query).items()}
                return 200, self._list(root, params)
        else:
            ident = unquote(path[len(root) + 1 :])
            if "/" not in ident and method in ("GET", "HEAD"):
                # The path form falls back to external ids: which form Kling uses is unverified.
                return 200, self._query(root, task_id=ident, external_task_id=ident)
            if "/" in ident:
                raise ApiError(404, 1203, f"resource not found: {path}")
        raise ApiError(404, 1202, f"method {method} is not supported on {path}")

    def _registry_locked(self, root: str) -> tuple[dict[str, Any], dict[str, str], list[str]]:
        """(items by task_id, task_id by external id, creation order) of the API under `root`."""
        if root == ELEMENTS_PATH:
            return self._elements, self._elements_by_external, self._element_order
        return self._tasks, self._by_external, self._order

    def _query(
        self, root: str, *, task_id: str | None = None, external_task_id: str | None = None
    ) -> dict[str, Any]:
        with self._cond:  # built under the lock so the answer is one consistent state
            items, by_external, _ = self._registry_locked(root)
            if task_id is not None and task_id in items:
                return items[task_id].query_data()
            if external_task_id is not None and external_task_id in by_external:
                return items[by_external[external_task_id]].query_data()
        raise ApiError(404, 1203, f"task not found: {task_id or external_task_id}")

    def _list(self, root: str, params: dict[str, str]) -> list[dict[str, Any]]:
        page_num = self._int_param(params, "pageNum", 1, 1, 1000)
        page_size = self._int_param(params, "pageSize", 30, 1, 500)
        with self._cond:
            items, _, order = self._registry_locked(root)
            newest_first = [items[t] for t in reversed(order)]
            page = newest_first[(page_num - 1) * page_size : page_num * page_size]
            return [item.query_data() for item in page]

    @staticmethod
    def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
        raw = params.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise _invalid(name, f"must be an integer from {low} to {high}")
        return int(raw)

    @staticmethod
    def _json_object(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, 1200, "Invalid request parameters: body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, 1200, "Invalid request parameters: body must be a JSON object")
        return body

    def _create(self, raw: bytes) -> dict[str, Any]:
        body = self._json_object(raw)
        spec = _validate_create(body)

        with self._cond:
            element_frontals = self._element_frontals_locked(spec.element_ids)
            # Duplicate check next: an idempotent retry should learn "already exists" even at capacity.
            if spec.external_task_id is not None and spec.external_task_id in self._by_external:
                raise ApiError(400, 1201, f"External_task_id {spec.external_task_id} already exists")
            if self._active >= self.settings.concurrency:
                raise ApiError(429, 1303, "parallel task over resource pack limit")
            planned_failure = None
            if self._chance_locked(self.settings.fail_rate):
                planned_failure = self._rng.choice(RISK_CONTROL_MESSAGES)
            now = _now_ms()
            task = _Task(
                task_id=self._next_task_id(now),
                external_task_id=spec.external_task_id,
                request=body,
                model_name=spec.model_name,
                mode=spec.mode,
                video_url=spec.video_url,
                refer_type=spec.refer_type,
                keep_original_sound=spec.keep_original_sound,
                callback_url=spec.callback_url,
                watermark_enabled=spec.watermark_enabled,
                planned_failure=planned_failure,
                created_at=now,
                updated_at=now,
                prompt=spec.prompt,
                image_urls=list(spec.image_urls),
                element_ids=list(spec.element_ids),
                element_frontals=element_frontals,
            )
            self._tasks[task.task_id] = task
            self._order.append(task.task_id)
            if task.external_task_id is not None:
                self._by_external[task.external_task_id] = task.task_id
            self._active += 1
            self._stats["creates_accepted"] += 1
            self._stats["max_concurrent_observed"] = max(self._stats["max_concurrent_observed"], self._active)
            data, thread = self._accepted_locked(task, self._run_task, "kling-task")
        thread.start()
        return data

    def _element_frontals_locked(self, element_ids: Iterable[int]) -> list[Path]:
        """The frontal images of the elements an edit references; 1201 naming the first unusable id."""
        frontals: list[Path] = []
        for i, element_id in enumerate(element_ids):
            name = f"element_list[{i}].element_id"
            element = self._elements_by_id.get(element_id)  # only succeeded elements have an id
            if element is None:
                raise _invalid(name, f"element {element_id} does not exist")
            if element.frontal_path is None:  # video_refer: no frontal image
                raise _invalid(
                    name,
                    f"element {element_id} is a video character element; only multi-image elements can be "
                    "combined with a reference video",
                )
            frontals.append(element.frontal_path)
        return frontals

    def _create_element(self, raw: bytes) -> dict[str, Any]:
        body = self._json_object(raw)
        spec = _validate_element_create(body)
        with self._cond:
            if spec.external_task_id is not None and spec.external_task_id in self._elements_by_external:
                raise ApiError(400, 1201, f"External_task_id {spec.external_task_id} already exists")
            now = _now_ms()
            element = _Element(
                task_id=self._next_task_id(now),
                external_task_id=spec.external_task_id,
                request=body,
                spec=spec,
                created_at=now,
                updated_at=now,
            )
            self._elements[element.task_id] = element
            self._element_order.append(element.task_id)
            if element.external_task_id is not None:
                self._elements_by_external[element.external_task_id] = element.task_id
            self._stats["element_creates_accepted"] += 1
            data, thread = self._accepted_locked(element, self._run_element, "kling-element")
        thread.start()
        return data

    def _accepted_locked(self, record: Any, run: Any, thread_prefix: str) -> tuple[dict[str, Any], threading.Thread]:
        """The create response (section 1.4, the same for edits and elements) and the worker
        thread that will move ``record`` through its lifecycle (started by the caller, unlocked)."""
        data = {
            "task_id": record.task_id,
            "task_info": {"external_task_id": record.external_task_id or ""},
            "task_status": record.status,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }
        thread = threading.Thread(target=run, args=(record,), name=f"{thread_prefix}-{record.task_id}", daemon=True)
        self._task_threads = [t for t in self._task_threads if t.is_alive()] + [thread]
        return data, thread

    def _next_task_id(self, now_ms: int) -> str:
        # 18 digits like Kling's ("867283741759111202"): 13-digit ms clock + 5-digit sequence.
        self._id_counter += 1
        return f"{now_ms % 10**13:013d}{self._id_counter % 10**5:05d}"

    def _next_element_id_locked(self) -> int:
        # A long like Kling's (863121023120580600): 18 digits, above 2**53, from the same sequence.
        self._id_counter += 1
        return int(f"{_now_ms() % 10**13:013d}{self._id_counter % 10**5:05d}")

    def _chance(self, rate: float) -> bool:
        with self._cond:
            return self._chance_locked(rate)

    def _chance_locked(self, rate: float) -> bool:
        return seeded_chance(self._rng, rate)

    def _serve_result(self, req: _Handler, method: str, path: str) -> None:
        if method not in ("GET", "HEAD"):
            raise ApiError(404, 1202, f"method {method} is not supported on {path}")
        name = path[len(RESULTS_PREFIX) :]
        task_id = name.removesuffix(".mp4")
        with self._cond:
            task = self._tasks.get(task_id)
            result = task.result_path if task is not None and task.status == "succeed" else None
        if result is None or name != f"{task_id}.mp4" or not result.exists():
            raise ApiError(404, 1203, f"resource not found: {path}")
        req.send_file(result)

    # -- task lifecycle -----------------------------------------------------------------------

    def _run_task(self, task: _Task) -> None:
        assert self._work_dir is not None
        if self._stop.is_set():
            return  # created while stop() was running
        src = self._work_dir / f"{task.task_id}.src"
        try:
            self._transition(task, "processing")
            # The "model time"; an Event wait so stop() interrupts it at once.
            if self._stop.wait(self.settings.processing_seconds):
                return
            if task.planned_failure is not None:  # moderation verdict, decided at create time
                self._transition(task, "failed", task.planned_failure)
                return
            render = self.settings.render  # decided once per task, at download time
            problem = self._download(task.video_url, src)
            facts: dict[str, Any] | None = None
            if problem is None:
                try:
                    facts = media.probe(src, decode=render == "grade")  # copy mode: headers only
                    problem = _check_input_limits(facts)
                except media.MediaError:
                    problem = "invalid video: the file could not be decoded as video"
            if problem is not None or facts is None:
                self._transition(task, "failed", problem or "invalid video")
                return
            with self._cond:
                task.input_duration = facts["duration_seconds"]
            overlays, problem = self._fetch_references(task)
            if problem is not None:
                self._transition(task, "failed", problem)
                return
            self._render(task, src, render, overlays)
        except Exception:
            log.exception("emulator bug in task %s", task.task_id)
            self._transition(task, "failed", "Internal server error")
        finally:
            src.unlink(missing_ok=True)

    def _download(self, url: str, dst: Path) -> str | None:
        """Fetch the input video; returns a failure message or None."""
        size = 0
        try:
            with httpx.stream("GET", url, timeout=DOWNLOAD_TIMEOUT_SECONDS, follow_redirects=True) as resp:
                if resp.status_code != 200:
                    return f"video download failed: HTTP {resp.status_code} from video_url"
                with dst.open("wb") as fh:
                    for chunk in resp.iter_bytes(64 * 1024):
                        size += len(chunk)
                        if size > MAX_INPUT_BYTES:
                            return "invalid video: file size exceeds 200MB"
                        if self._stop.is_set():
                            return "video download failed: service stopping"
                        fh.write(chunk)
        except httpx.HTTPError as exc:
            return f"video download failed: {type(exc).__name__}"
        return None

    def _fetch_references(self, task: _Task) -> tuple[list[bytes], str | None]:
        """The edit's reference images, in prompt order (`<<<image_N>>>`, then `<<<element_N>>>`)."""
        references: list[bytes] = []
        for i, ref in enumerate(task.image_urls):
            data, problem = self._fetch_image(ref, f"image_list[{i}].image_url")
            if problem is not None or data is None:
                return [], problem or "invalid image"
            references.append(data)
        references.extend(path.read_bytes() for path in task.element_frontals)
        return references, None

    def _render(self, task: _Task, src: Path, render: str, overlays: list[bytes]) -> None:
        assert self._work_dir is not None
        assert task.input_duration is not None
        dst = self._work_dir / f"{task.task_id}.mp4"
        if render == "copy":
            src.replace(dst)  # the input bytes, unchanged: no decode, no encode
            duration = task.input_duration
        else:
            size, new_duration = _reference_shot(task)
            try:
                future = self._render_pool.submit(
                    media.grade_video, src, dst, keep_audio=task.keep_original_sound == "yes", overlays=overlays,
                    size=size, duration=new_duration,
                )
                duration = future.result()["duration_seconds"]
            except (CancelledError, RuntimeError):
                if self._stop.is_set():
                    return  # shutting down: leave the task where it is
                raise
            except media.MediaError:
                self._transition(task, "failed", "invalid video: the file could not be decoded as video")
                return
        url = f"{self.base_url}/results/{task.task_id}.mp4"
        video = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, url)),
            "url": url,
            "watermark_url": url,
            "duration": f"{duration:.1f}",
        }
        with self._cond:
            task.render = render
            task.result_path = dst
            task.videos = [video]
            # A base edit bills the input's length; a feature reference bills the new shot's.
            task.final_unit_deduction = _units(duration if task.refer_type == "feature" else task.input_duration,
                                               task.mode)
        self._transition(task, "succeed")

    def _run_element(self, element: _Element) -> None:
        assert self._work_dir is not None
        if self._stop.is_set():
            return  # created while stop() was running
        spec = element.spec
        try:
            self._transition(element, "processing")
            if self._stop.wait(self.settings.element_seconds):
                return
            frontal_path: Path | None = None
            if spec.reference_type == "image_refer":
                assert spec.frontal_image is not None
                refs = [("element_image_list.frontal_image", spec.frontal_image)] + [
                    (f"element_image_list.refer_images[{i}].image_url", ref) for i, ref in enumerate(spec.refer_images)
                ]
                for label, ref in refs:
                    data, problem = self._fetch_image(ref, label)
                    if problem is not None or data is None:
                        self._transition(element, "failed", problem or "invalid image")
                        return
                    if frontal_path is None:  # keep our copy of the frontal image, as Kling does
                        frontal_path = self._work_dir / f"element-{element.task_id}-frontal"
                        frontal_path.write_bytes(data)
            else:
                problem = self._check_element_video(element)
                if problem is not None:
                    self._transition(element, "failed", problem)
                    return
            with self._cond:
                if self._stop.is_set():
                    return
                element.element_id = self._next_element_id_locked()
                element.frontal_path = frontal_path
                self._transition(element, "succeed")  # the condition's lock is re-entrant
                self._elements_by_id[element.element_id] = element  # usable from now on
                self._stats["elements_created"] += 1
        except Exception:
            log.exception("emulator bug in element task %s", element.task_id)
            self._transition(element, "failed", "Internal server error")

    def _check_element_video(self, element: _Element) -> str | None:
        """Download and check a video element's reference video (mp4/mov, 3-8 s, 1080p 16:9 or 9:16)."""
        assert self._work_dir is not None and element.spec.video_url is not None
        src = self._work_dir / f"element-{element.task_id}.src"
        try:
            problem = self._download(element.spec.video_url, src)
            if problem is not None:
                return problem
            try:
                facts = media.probe(src, decode=False)
            except media.MediaError:
                return "invalid video: the file could not be decoded as video"
            if "mp4" not in facts["container"] and "mov" not in facts["container"]:
                return f"invalid video: format {facts['container']} is not supported, use mp4 or mov"
            if not 2.95 <= facts["duration_seconds"] <= 8.05:
                return f"invalid video: duration {facts['duration_seconds']:.2f}s is outside the allowed 3-8s"
            if (facts["width"], facts["height"]) not in ELEMENT_VIDEO_SIZES:
                return f"invalid video: {facts['width']}x{facts['height']}px is not 1080p 16:9 or 9:16"
            return None
        finally:
            src.unlink(missing_ok=True)

    def _fetch_image(self, ref: str, label: str) -> tuple[bytes | None, str | None]:
        """Download (or base64-decode) an image and check Kling's image limits: (bytes, None) or
        (None, failure message)."""
        if _is_http_url(ref):
            where = ref
            data, problem = self._download_bytes(ref, MAX_IMAGE_BYTES)
            if problem == _TOO_LARGE:
                return None, f"invalid image: {where} exceeds 10MB"
            if problem is not None or data is None:
                return None, f"image download failed: {where} ({problem})"
        else:
            where = f"{label} (base64)"
            data = base64.b64decode(ref)  # checked to be raw base64 when the request was accepted
            if len(data) > MAX_IMAGE_BYTES:
                return None, f"invalid image: {where} exceeds 10MB"
        try:
            facts = media.probe_image(data)
        except media.MediaError:
            return None, f"invalid image: {where} is not a decodable image"
        problem = _check_image_limits(facts)
        if problem is not None:
            return None, f"invalid image: {where}: {problem}"
        return data, None

    def _download_bytes(self, url: str, limit: int) -> tuple[bytes | None, str | None]:
        """Fetch a small file into memory: (bytes, None) or (None, reason)."""
        buf = bytearray()
        try:
            with httpx.stream("GET", url, timeout=DOWNLOAD_TIMEOUT_SECONDS, follow_redirects=True) as resp:
                if resp.status_code != 200:
                    return None, f"HTTP {resp.status_code}"
                for chunk in resp.iter_bytes(64 * 1024):
                    buf += chunk
                    if len(buf) > limit:
                        return None, _TOO_LARGE
                    if self._stop.is_set():
                        return None, "service stopping"
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
        return bytes(buf), None

    def _transition(self, task: _Task | _Element, status: str, message: str = "") -> None:
        with self._cond:
            if self._stop.is_set() or task.status in TERMINAL:
                return  # stopping, or already final (terminal states never change)
            task.status, task.status_msg, task.updated_at = status, message, _now_ms()
            if status in TERMINAL and task.holds_slot:
                self._active -= 1  # the concurrency slot is held until the task finishes
            if status == "failed":
                task.final_unit_deduction = "0"  # failed tasks are not billed
            self._queue_callback_locked(task)
            self._cond.notify_all()

    # -- callbacks ----------------------------------------------------------------------------

    def _queue_callback_locked(self, task: _Task | _Element) -> None:
        if task.callback_url is None:
            return
        copies = callback_copies(self._rng, self.settings, self._stats)
        if not copies:
            return
        body = task.callback_body()
        task.callback_queue.extend([body] * copies)
        self._callbacks_pending += copies
        # One drain job per task at a time keeps that task's callbacks in status order,
        # while different tasks' callbacks go out in parallel.
        if not task.callback_draining:
            task.callback_draining = True
            self._callback_pool.submit(self._drain_callbacks, task)

    def _drain_callbacks(self, task: _Task | _Element) -> None:
        while True:
            with self._cond:
                if not task.callback_queue or self._stop.is_set():
                    self._callbacks_pending -= len(task.callback_queue)
                    task.callback_queue.clear()
                    task.callback_draining = False
                    self._cond.notify_all()
                    return
                body = task.callback_queue.popleft()
                self._stats["callbacks_sent"] += 1
            assert task.callback_url is not None
            try:
                resp = self._http.post(task.callback_url, json=body)
                ok = resp.is_success
            except httpx.HTTPError as exc:
                log.info("callback to %s failed: %s", task.callback_url, exc)
                ok = False
            with self._cond:
                if not ok:
                    self._stats["callbacks_failed"] += 1
                self._callbacks_pending -= 1
                self._cond.notify_all()


# ---------------------------------------------------------------------------------------------
# CLI: python -m local.kling_emulator


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = os.environ
    emulator = KlingEmulator(
        env.get("CLIPEDIT_EMULATOR_ACCESS_KEY", "local-access-key"),
        env.get("CLIPEDIT_EMULATOR_SECRET_KEY", "local-secret-key"),
        EmulatorSettings.from_env(env),
        api_key=env.get("CLIPEDIT_EMULATOR_API_KEY") or None,
        host=env.get("CLIPEDIT_EMULATOR_HOST", "127.0.0.1"),
        port=int(env.get("CLIPEDIT_EMULATOR_PORT", "0")),
    )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with emulator:
        print(emulator.base_url, flush=True)
        done.wait()


if __name__ == "__main__":
    main()
