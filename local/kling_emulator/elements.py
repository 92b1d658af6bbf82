"""Element library (section 1.10): `POST /v1/general/advanced-custom-elements` creates an element in an
async task; `GET /v1/general/advanced-custom-elements/{task_id}` (or `{external_task_id}`, as for
omni-video) and `?pageNum=&pageSize=` query it. Same JWT auth, error envelope and codes
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
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from local import media
from local.kling_emulator.contract import (
    ApiError,
    _callback_and_external_id,
    _check_image_ref,
    _invalid,
    _is_http_url,
    _now_ms,
)

log = logging.getLogger("local.kling_emulator")  # one logger for the whole emulator, as before the split

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


class ElementLibrary:
    """Creating elements (section 1.10) and resolving the element ids an edit names."""

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

    def _next_element_id_locked(self) -> int:
        # A long like Kling's (863121023120580600): 18 digits, above 2**53, from the same sequence.
        self._id_counter += 1
        return int(f"{_now_ms() % 10**13:013d}{self._id_counter % 10**5:05d}")

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
