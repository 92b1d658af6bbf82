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

The package, one concern per file:

* `contract.py`: Kling's paths, limits and error envelope, shared by every part.
* `settings.py`: the `CLIPEDIT_EMULATOR_*` knobs (`EmulatorSettings`).
* `http_api.py`: the HTTP server, JWT auth, routing, queries and result files.
* `tasks.py`: edit requests and the task lifecycle.
* `elements.py`: the element library (its own contract notes are there).
* `rendering.py`: downloading inputs, the limit checks, the render (grade or copy).
* `callbacks.py`: callback delivery.
* `faults.py`: the seeded fault injection.
* `emulator.py`: `KlingEmulator`, which puts them together, and `main` (`python -m local.kling_emulator`).

Every name the single-module emulator had is importable from `local.kling_emulator` as before.
"""

from __future__ import annotations

import logging

from local import media  # noqa: F401 - `kling_emulator.media` is what the benchmarks patch
from local.kling_emulator.contract import (  # noqa: F401
    API_PATH,
    API_ROOTS,
    ApiError,
    _callback_and_external_id,
    _check_image_limits,
    _check_image_ref,
    _check_input_limits,
    DEFAULT_MODEL,
    ELEMENTS_PATH,
    IMAGE_FORMATS,
    _invalid,
    _is_http_url,
    _is_raw_base64,
    MAX_IMAGE_ASPECT,
    MAX_IMAGE_BYTES,
    MAX_INPUT_BYTES,
    MAX_PROMPT_CHARS,
    MAX_REFERENCES_WITH_VIDEO,
    MIN_IMAGE_SIDE,
    MODELS,
    NBF_LEEWAY_SECONDS,
    _now_ms,
    RESULTS_PREFIX,
    TERMINAL,
    _units,
    UNITS_PER_SECOND,
)
from local.kling_emulator.settings import (  # noqa: F401
    EmulatorSettings,
    _ENV_NAMES,
    ENV_PREFIX,
    RENDER_MODES,
    _SettingError,
)
from local.kling_emulator.faults import (  # noqa: F401
    callback_copies,
    RISK_CONTROL_MESSAGES,
    seeded_chance,
)
from local.kling_emulator.tasks import (  # noqa: F401
    _CreateSpec,
    KNOWN_CREATE_FIELDS,
    _Task,
    _validate_create,
)
from local.kling_emulator.elements import (  # noqa: F401
    _bounded_text,
    _Element,
    ELEMENT_TAGS,
    ELEMENT_VIDEO_SIZES,
    _ElementSpec,
    KNOWN_ELEMENT_FIELDS,
    MAX_ELEMENT_DESCRIPTION_CHARS,
    MAX_ELEMENT_NAME_CHARS,
    MAX_REFER_IMAGES,
    _validate_element_create,
)
from local.kling_emulator.rendering import (  # noqa: F401
    DOWNLOAD_TIMEOUT_SECONDS,
    REFERENCE_DEFAULT_DURATION,
    _reference_shot,
    _REFERENCE_SIZES,
    RENDER_WORKERS,
    _TOO_LARGE,
    downloads_client,
)
from local.kling_emulator.callbacks import (  # noqa: F401
    CALLBACK_TIMEOUT_SECONDS,
)
from local.kling_emulator.http_api import (  # noqa: F401
    _b64url_json,
    _Handler,
    MAX_REQUEST_BYTES,
    _Server,
    _verify_hs256,
)
from local.kling_emulator.emulator import (  # noqa: F401
    KlingEmulator,
    main,
    stop_workers,
)

log = logging.getLogger("local.kling_emulator")

__all__ = ["EmulatorSettings", "KlingEmulator", "main"]
