"""The edit task: request validation (section 1.3), the task record and its lifecycle
`submitted -> processing -> succeed|failed`, one worker thread per task.

Where Kling's docs are silent:

* `keep_original_sound` defaults to "no" when absent (the docs give no default).
* Input-limit violations (not mp4/mov, outside 3-10 s, a side outside 720-2160 px, outside 24-60 fps,
  over 200 MB) and undownloadable inputs are found by the worker after the task is accepted, so
  they end as `failed` tasks with a `task_status_msg`, not as create errors.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from local import media
from local.kling_emulator.contract import (
    DEFAULT_MODEL,
    MAX_PROMPT_CHARS,
    MAX_REFERENCES_WITH_VIDEO,
    MODELS,
    TERMINAL,
    UNITS_PER_SECOND,
    ApiError,
    _callback_and_external_id,
    _check_image_ref,
    _check_input_limits,
    _invalid,
    _is_http_url,
    _now_ms,
)
from local.kling_emulator.faults import RISK_CONTROL_MESSAGES

if TYPE_CHECKING:
    from local.kling_emulator.elements import _Element

log = logging.getLogger("local.kling_emulator")  # one logger for the whole emulator, as before the split

KNOWN_CREATE_FIELDS = frozenset(
    {
        "model_name", "prompt", "multi_shot", "shot_type", "multi_prompt", "image_list", "element_list",
        "video_list", "sound", "mode", "aspect_ratio", "duration", "watermark_info", "callback_url",
        "external_task_id",
    }
)


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


class TaskLifecycle:
    """Creating edit tasks and moving them (and element tasks) through their statuses."""

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
