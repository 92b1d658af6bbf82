"""The edit itself: download the input (and reference images), check Kling's input limits, render.

* The "edit" is real: the input is downloaded over HTTP, checked against Kling's input limits and
  re-encoded by `local.media.grade_video` with a visible colour grade at 24 fps.
* Render modes (`CLIPEDIT_EMULATOR_RENDER`): `grade` (default) is the real edit above. `copy` is for
  load tests with hundreds of tasks: the result is the downloaded input, byte for byte, served as is
  (no decode, no encode; a `.mov` input is still served at `/results/{task_id}.mp4`). Input limits
  are still checked in copy mode, from a header-only probe (`media.probe(decode=False)`, a few ms), so
  failures look the same in both modes; only a file whose headers are fine but whose frames are
  corrupt fails in `grade` and passes in `copy`.
* In `grade` mode the images, then each element's frontal image, are pasted as thumbnails along the
  bottom-left edge of every output frame (`media.grade_video(overlays=...)`).
* `refer_type: feature` renders a new shot: the clip centre-cropped to `aspect_ratio` at the mode's
  resolution (std 720p, pro 1080p), `duration` seconds long (default "5"), billed by that length.
"""

from __future__ import annotations

import base64
import uuid
from concurrent.futures import CancelledError
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from clipedit.adapters.tls import shared_ssl_context

from local import media
from local.kling_emulator.contract import (
    MAX_IMAGE_BYTES,
    MAX_INPUT_BYTES,
    _check_image_limits,
    _is_http_url,
    _units,
)

if TYPE_CHECKING:
    from local.kling_emulator.tasks import _Task

DOWNLOAD_TIMEOUT_SECONDS = 30.0
RENDER_WORKERS = 2  # bounded: 50 tasks must not start 50 encoders on a small box
_TOO_LARGE = "too large"  # download failure reason for files over the size limit

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


def downloads_client() -> httpx.Client:
    return httpx.Client(timeout=DOWNLOAD_TIMEOUT_SECONDS, follow_redirects=True, verify=shared_ssl_context())


class Rendering:
    """Fetching inputs and rendering a task's result (runs on the task's worker thread)."""

    def _download(self, url: str, dst: Path) -> str | None:
        """Fetch the input video; returns a failure message or None."""
        size = 0
        try:
            with self._downloads.stream("GET", url) as resp:
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
            with self._downloads.stream("GET", url) as resp:
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
