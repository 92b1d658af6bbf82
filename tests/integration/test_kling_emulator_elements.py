"""The Kling emulator's element library and the references (images, elements) of omni-video tasks.

Exercised through the HTTP surface only, with the same local media host as `test_kling_emulator`:
element create -> query -> succeed, request validation, images that fail to download or decode, and
what an edit does with its references (validated at create, downloaded when run, visible in the output).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from local.kling_emulator import KlingEmulator
from local.media import make_sample_clip, make_sample_image
from tests import web
from tests.integration.test_kling_emulator import (  # noqa: F401 - fixtures are used by name
    WAIT,
    MediaHost,
    assert_error,
    auth,
    clip_bytes,
    create,
    edit_body,
    media_host,
    query,
    small_clip_bytes,
    start_emulator,
)

ELEMENTS = "/v1/general/advanced-custom-elements"
RED, BLUE = (255, 0, 0), (0, 0, 255)


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    """Solid-colour references: easy to find again as thumbnails in a rendered frame."""
    return {
        "/img/red.png": make_sample_image(width=320, height=320, rgb=RED),
        "/img/blue.png": make_sample_image(width=320, height=320, rgb=BLUE),
        "/img/green.jpg": make_sample_image(width=400, height=300, rgb=(0, 255, 0), format="jpeg"),
        "/img/tiny.png": make_sample_image(width=200, height=200, rgb=RED),  # under Kling's 300 px minimum
        "/img/banner.png": make_sample_image(width=900, height=300, rgb=RED),  # 3:1, outside 1:2.5-2.5:1
    }


@pytest.fixture(scope="module")
def element_clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A valid video-element reference: 1080p 9:16, 3 s (8 fps keeps it cheap; no fps limit is documented)."""
    path = tmp_path_factory.mktemp("clips") / "portrait.mp4"
    make_sample_clip(path, seconds=3.0, width=1080, height=1920, fps=8, with_audio=False, seed=5)
    return path.read_bytes()


@pytest.fixture()
def host(media_host: MediaHost, images: dict[str, bytes], element_clip_bytes: bytes) -> Iterator[MediaHost]:
    media_host.files.update(images)
    media_host.files["/img/not-an-image.png"] = media_host.files["/clips/garbage.mp4"]
    media_host.files["/clips/portrait.mp4"] = element_clip_bytes
    yield media_host


@pytest.fixture()
def emulator(start_emulator: Callable[..., KlingEmulator]) -> KlingEmulator:
    return start_emulator(element_seconds=0.05)


def element_body(host: MediaHost, frontal: str = "/img/red.png", refers: tuple[str, ...] = ("/img/blue.png",),
                 **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "element_name": "red hero",
        "element_description": "A solid red test subject",
        "reference_type": "image_refer",
        "element_image_list": {
            "frontal_image": host.url(frontal),
            "refer_images": [{"image_url": host.url(path)} for path in refers],
        },
        "tag_list": [{"tag_id": "o_102"}],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create_element(emulator: KlingEmulator, body: dict[str, Any]) -> httpx.Response:
    return web.post(emulator.base_url + ELEMENTS, json=body, headers=auth())


def query_element(emulator: KlingEmulator, suffix: str = "", params: dict[str, Any] | None = None) -> httpx.Response:
    return web.get(emulator.base_url + ELEMENTS + suffix, params=params, headers=auth())


def make_element(emulator: KlingEmulator, host: MediaHost, **overrides: Any) -> int:
    """Create an element and wait for it; returns its element_id."""
    resp = create_element(emulator, element_body(host, **overrides))
    assert resp.status_code == 200, resp.text
    snap = emulator.wait_for_status(resp.json()["data"]["task_id"], {"succeed", "failed"}, WAIT)
    assert snap["status"] == "succeed", snap["status_msg"]
    return snap["element_id"]


def frame_rgb(path: Path, index: int = 0) -> np.ndarray:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(container.streams.video[0])):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} has fewer than {index + 1} frames")


def mean_rgb(pixels: np.ndarray) -> list[float]:
    return [float(v) for v in pixels.reshape(-1, 3).mean(axis=0)]


# ---------------------------------------------------------------------------------------------
# Element library: happy path


def test_element_create_query_succeed_with_callbacks(emulator: KlingEmulator, host: MediaHost) -> None:
    body = element_body(
        host,
        refers=("/img/blue.png", "/img/green.jpg"),
        callback_url=host.url("/callbacks/elements?token=e1"),
        external_task_id="element-job-1",
    )
    resp = create_element(emulator, body)
    assert resp.status_code == 200, resp.text
    created = resp.json()
    assert created["code"] == 0 and created["message"] == "SUCCEED" and created["request_id"]
    data = created["data"]  # the same create shape as omni-video
    assert set(data) == {"task_id", "task_info", "task_status", "created_at", "updated_at"}
    assert data["task_status"] == "submitted" and data["task_info"] == {"external_task_id": "element-job-1"}
    assert data["task_id"].isdigit() and len(data["task_id"]) == 18
    task_id = data["task_id"]

    callbacks = host.wait_callbacks(2)
    assert [c["body"]["task_status"] for c in callbacks] == ["processing", "succeed"]
    assert all(c["path"] == "/callbacks/elements?token=e1" for c in callbacks)

    q = query_element(emulator, f"/{task_id}").json()
    assert q["code"] == 0
    result = q["data"]
    assert result["task_status"] == "succeed" and result["task_status_msg"] == ""
    assert result["task_info"] == {"external_task_id": "element-job-1"}
    [element] = result["task_result"]["elements"]
    assert isinstance(element["element_id"], int) and element["element_id"] > 2**53  # a long, like Kling's
    assert (element["element_name"], element["element_description"]) == ("red hero", "A solid red test subject")
    assert element["reference_type"] == element["element_type"] == "image_refer"  # sources disagree: both
    assert element["element_image_list"] == body["element_image_list"]
    assert element["tag_list"] == [{"tag_id": "o_102", "id": "o_102", "name": "Character"}]
    assert element["status"] == "succeed"
    assert callbacks[1]["body"]["task_result"]["elements"][0]["element_id"] == element["element_id"]

    # Query by external id on the query path (Kling's documented form) and list, as for video tasks.
    assert query_element(emulator, "/element-job-1").json()["data"]["task_id"] == task_id
    listing = query_element(emulator, params={"pageNum": 1, "pageSize": 10}).json()["data"]
    assert [t["task_id"] for t in listing] == [task_id]

    [snap] = emulator.elements()
    assert (snap["task_id"], snap["external_task_id"], snap["status"], snap["element_id"]) == (
        task_id, "element-job-1", "succeed", element["element_id"],
    )
    assert snap["frontal_image"] == host.url("/img/red.png")
    assert snap["refer_images"] == [host.url("/img/blue.png"), host.url("/img/green.jpg")]
    assert snap["request"] == body
    assert emulator.tasks() == []  # elements are not video tasks
    stats = emulator.wait_for_callbacks(WAIT)
    assert (stats["element_creates_accepted"], stats["elements_created"], stats["creates_accepted"]) == (1, 1, 0)
    assert stats["callbacks_sent"] == 2 and stats["active_tasks"] == 0


def test_raw_base64_images_are_accepted(emulator: KlingEmulator, host: MediaHost, images: dict[str, bytes]) -> None:
    frontal = base64.b64encode(images["/img/red.png"]).decode()
    body = element_body(host)
    body["element_image_list"]["frontal_image"] = frontal
    element_id = make_element(emulator, host, element_image_list=body["element_image_list"])
    [snap] = emulator.elements()
    assert snap["element_id"] == element_id and snap["frontal_image"] == frontal


def test_elements_take_no_video_concurrency_slot(
    start_emulator: Callable[..., KlingEmulator], host: MediaHost
) -> None:
    emulator = start_emulator(concurrency=1, processing_seconds=60, element_seconds=0.05)
    assert create(emulator, edit_body(host)).status_code == 200  # holds the only slot for a minute
    assert_error(create(emulator, edit_body(host)), 429, 1303)
    make_element(emulator, host)  # still accepted and finished
    assert emulator.stats()["max_concurrent_observed"] == 1


def test_video_element_is_checked_like_kling(emulator: KlingEmulator, host: MediaHost) -> None:
    def video_element(path: str) -> dict[str, Any]:
        return element_body(host, reference_type="video_refer", element_image_list=None,
                            element_video_list={"refer_videos": [{"video_url": host.url(path)}]},
                            element_voice_id="voice-1")

    ok = create_element(emulator, video_element("/clips/portrait.mp4")).json()["data"]["task_id"]
    bad = create_element(emulator, video_element("/clips/source.mp4")).json()["data"]["task_id"]
    assert emulator.wait_for_status(ok, {"succeed", "failed"}, WAIT)["status"] == "succeed"
    snap = emulator.wait_for_status(bad, {"succeed", "failed"}, WAIT)
    assert snap["status"] == "failed" and snap["status_msg"] == "invalid video: 1280x720px is not 1080p 16:9 or 9:16"
    [element] = query_element(emulator, f"/{ok}").json()["data"]["task_result"]["elements"]
    assert element["reference_type"] == "video_refer"
    assert element["element_video_list"] == {"refer_videos": [{"video_url": host.url("/clips/portrait.mp4")}]}
    assert element["element_voice_info"]["voice_id"] == "voice-1"


# ---------------------------------------------------------------------------------------------
# Element library: errors


def _with_images(frontal: Any = "/img/red.png", refers: Any = ("/img/blue.png",)) -> Callable[[MediaHost], Any]:
    def make(host: MediaHost) -> dict[str, Any]:
        images: dict[str, Any] = {}
        if frontal is not None:
            images["frontal_image"] = host.url(frontal) if frontal.startswith("/") else frontal
        if refers is not None:
            images["refer_images"] = [{"image_url": host.url(r) if r.startswith("/") else r} for r in refers]
        return element_body(host, element_image_list=images)
    return make


INVALID_ELEMENT_BODIES: list[tuple[str, Callable[[MediaHost], dict[str, Any]], int, str]] = [
    ("no-frontal", _with_images(frontal=None), 1201, "frontal_image"),
    ("four-refer-images", _with_images(refers=("/img/blue.png",) * 4), 1201, "refer_images"),
    ("no-refer-images", _with_images(refers=()), 1201, "refer_images"),
    ("refer-images-missing", _with_images(refers=None), 1201, "refer_images"),
    ("data-url-frontal", _with_images(frontal="data:image/png;base64,iVBORw0KGgo="), 1201, "data:"),
    ("ftp-refer", _with_images(refers=("ftp://host/x.png",)), 1201, "refer_images[0].image_url"),
    ("no-image-list", lambda h: element_body(h, element_image_list=None), 1201, "element_image_list"),
    ("no-name", lambda h: element_body(h, element_name=None), 1201, "element_name"),
    ("long-name", lambda h: element_body(h, element_name="n" * 21), 1201, "element_name"),
    ("no-description", lambda h: element_body(h, element_description=None), 1201, "element_description"),
    ("long-description", lambda h: element_body(h, element_description="d" * 101), 1201, "element_description"),
    ("bad-reference-type", lambda h: element_body(h, reference_type="text_refer"), 1201, "reference_type"),
    ("video-refer-without-video", lambda h: element_body(h, reference_type="video_refer"), 1201, "element_video_list"),
    ("two-refer-videos", lambda h: element_body(h, reference_type="video_refer", element_video_list={
        "refer_videos": [{"video_url": h.url("/clips/portrait.mp4")}] * 2}), 1201, "refer_videos"),
    ("voice-on-image-element", lambda h: element_body(h, element_voice_id="v1"), 1201, "element_voice_id"),
    ("bad-tag", lambda h: element_body(h, tag_list=[{"tag_id": "o_999"}]), 1201, "tag_list[0].tag_id"),
    ("bad-callback", lambda h: element_body(h, callback_url="not a url"), 1201, "callback_url"),
    ("unknown-field", lambda h: element_body(h, element_images=[]), 1200, "element_images"),
]


@pytest.mark.parametrize(
    ("maker", "code", "field"), [c[1:] for c in INVALID_ELEMENT_BODIES], ids=[c[0] for c in INVALID_ELEMENT_BODIES]
)
def test_invalid_element_bodies_are_rejected(
    emulator: KlingEmulator, host: MediaHost, maker: Callable[[MediaHost], dict[str, Any]], code: int, field: str
) -> None:
    assert_error(create_element(emulator, maker(host)), 400, code, field)
    assert emulator.elements() == [] and emulator.stats()["element_creates_accepted"] == 0


def test_element_api_shares_auth_ids_and_error_codes(emulator: KlingEmulator, host: MediaHost) -> None:
    assert_error(web.post(emulator.base_url + ELEMENTS, json=element_body(host)), 401, 1001)
    assert_error(web.get(emulator.base_url + ELEMENTS, headers={"Authorization": "Bearer nope"}), 401, 1002)
    first = create_element(emulator, element_body(host, external_task_id="dup")).json()["data"]["task_id"]
    assert_error(create_element(emulator, element_body(host, external_task_id="dup")), 400, 1201,
                 "External_task_id dup already exists")
    assert_error(query_element(emulator, "/999999999999999999"), 404, 1203, "task not found")
    assert_error(web.delete(emulator.base_url + ELEMENTS + f"/{first}", headers=auth()), 404, 1202)
    assert_error(web.get(emulator.base_url + "/v1/general/advanced-presets-elements", headers=auth()), 404, 1203)
    # An element task is not a video task, and the other way round.
    assert_error(query(emulator, f"/{first}"), 404, 1203)
    emulator.wait_for_status(first, "succeed", WAIT)


@pytest.mark.parametrize(
    ("frontal", "refers", "message"),
    [
        ("/img/missing.png", ("/img/blue.png",), "image download failed: {url}/img/missing.png (HTTP 404)"),
        ("/img/red.png", ("/img/blue.png", "/img/gone.png"), "image download failed: {url}/img/gone.png (HTTP 404)"),
        ("/img/not-an-image.png", ("/img/blue.png",), "invalid image: {url}/img/not-an-image.png is not a decodable"),
        ("/clips/source.mp4", ("/img/blue.png",), "invalid image: {url}/clips/source.mp4: format h264"),
        ("/img/tiny.png", ("/img/blue.png",), "invalid image: {url}/img/tiny.png: 200x200px is below the 300px"),
        ("/img/red.png", ("/img/banner.png",), "invalid image: {url}/img/banner.png: aspect ratio 900:300"),
    ],
    ids=["frontal-404", "refer-404", "not-an-image", "a-video", "too-small", "too-wide"],
)
def test_bad_element_images_fail_the_task(
    emulator: KlingEmulator, host: MediaHost, frontal: str, refers: tuple[str, ...], message: str
) -> None:
    resp = create_element(emulator, element_body(host, frontal=frontal, refers=refers))
    task_id = resp.json()["data"]["task_id"]
    snap = emulator.wait_for_status(task_id, {"succeed", "failed"}, WAIT)
    assert snap["status"] == "failed" and snap["element_id"] is None
    assert snap["status_msg"].startswith(message.format(url=host.url("")))
    q = query_element(emulator, f"/{task_id}").json()
    assert q["code"] == 0 and q["data"]["task_status"] == "failed" and "task_result" not in q["data"]
    assert emulator.stats()["elements_created"] == 0


# ---------------------------------------------------------------------------------------------
# Omni-video references: element_list and image_list


def test_edit_with_unknown_element_id_is_rejected(emulator: KlingEmulator, host: MediaHost) -> None:
    known = make_element(emulator, host)
    unknown = known + 1
    body = edit_body(host, element_list=[{"element_id": known}, {"element_id": unknown}])
    payload = assert_error(create(emulator, body), 400, 1201, "element_list[1].element_id")
    assert str(unknown) in payload["message"] and "does not exist" in payload["message"]
    assert emulator.tasks() == [] and emulator.stats()["creates_accepted"] == 0
    # A failed element never gets an id, so there is nothing to reference; the known one works.
    assert create(emulator, edit_body(host, element_list=[{"element_id": known}])).status_code == 200


def test_edit_with_a_video_element_is_rejected(emulator: KlingEmulator, host: MediaHost) -> None:
    """Video character elements cannot be combined with a reference video (section 1.3)."""
    body = element_body(host, reference_type="video_refer", element_image_list=None,
                        element_video_list={"refer_videos": [{"video_url": host.url("/clips/portrait.mp4")}]})
    element_id = make_element(emulator, host, **{k: body.get(k) for k in ("reference_type", "element_image_list",
                                                                          "element_video_list")})
    assert_error(create(emulator, edit_body(host, element_list=[{"element_id": element_id}])),
                 400, 1201, "video character element")


@pytest.mark.parametrize(
    ("image_url", "field"),
    [
        ("data:image/png;base64,iVBORw0KGgo=", "without a data: prefix"),
        ("ftp://host/x.png", "image_list[0].image_url"),
        ("not base64, not a URL", "image_list[0].image_url"),
    ],
    ids=["data-url", "ftp-url", "neither"],
)
def test_edit_with_bad_image_reference_is_rejected(
    emulator: KlingEmulator, host: MediaHost, image_url: str, field: str
) -> None:
    assert_error(create(emulator, edit_body(host, image_list=[{"image_url": image_url}])), 400, 1201, field)
    assert emulator.tasks() == []


@pytest.mark.parametrize("render", ["grade", "copy"])
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/img/missing.png", "image download failed: {url}/img/missing.png (HTTP 404)"),
        ("/img/not-an-image.png", "invalid image: {url}/img/not-an-image.png is not a decodable image"),
    ],
    ids=["http-404", "not-an-image"],
)
def test_edit_whose_image_cannot_be_used_fails(
    start_emulator: Callable[..., KlingEmulator], host: MediaHost, render: str, path: str, message: str
) -> None:
    emulator = start_emulator(render=render, processing_seconds=0.0)
    body = edit_body(host, image_list=[{"image_url": host.url("/img/red.png")}, {"image_url": host.url(path)}])
    task_id = create(emulator, body).json()["data"]["task_id"]
    snap = emulator.wait_for_status(task_id, {"succeed", "failed"}, WAIT)
    assert snap["status"] == "failed" and snap["status_msg"] == message.format(url=host.url(""))
    q = query(emulator, f"/{task_id}").json()["data"]
    assert q["task_status"] == "failed" and q["final_unit_deduction"] == "0"
    assert emulator.stats()["active_tasks"] == 0


def test_references_are_visible_in_the_output_and_recorded(
    start_emulator: Callable[..., KlingEmulator], host: MediaHost, tmp_path: Path
) -> None:
    emulator = start_emulator(processing_seconds=0.0, element_seconds=0.0)
    element_id = make_element(emulator, host, frontal="/img/red.png", refers=("/img/green.jpg",))
    del host.files["/img/red.png"]  # Kling keeps its own copy: the element no longer needs its source URL
    prompt = "Dress the man in <<<video_1>>> like <<<image_1>>> and give him the face of <<<element_1>>>"
    body = edit_body(host, prompt=prompt, image_list=[{"image_url": host.url("/img/blue.png")}],
                     element_list=[{"element_id": element_id}])
    with_refs = create(emulator, body).json()["data"]["task_id"]
    plain = create(emulator, edit_body(host)).json()["data"]["task_id"]

    snap = emulator.wait_for_status(with_refs, {"succeed", "failed"}, WAIT)
    assert snap["status"] == "succeed", snap["status_msg"]
    assert snap["prompt"] == prompt
    assert snap["image_urls"] == [host.url("/img/blue.png")] and snap["element_ids"] == [element_id]
    assert emulator.wait_for_status(plain, {"succeed", "failed"}, WAIT)["status"] == "succeed"

    outputs = {}
    for name, task_id in (("refs", with_refs), ("plain", plain)):
        url = query(emulator, f"/{task_id}").json()["data"]["task_result"]["videos"][0]["url"]
        outputs[name] = tmp_path / f"{name}.mp4"
        outputs[name].write_bytes(web.get(url).content)
    # 1280x720 output: 120 px thumbnails (1/6), 12 px margins, rows 588-708. image_list comes first
    # (blue, x 12-132), then the element's frontal image (red, x 144-264). Sample the tiles' centres.
    rows = slice(610, 690)
    blue_box, red_box = (rows, slice(30, 114)), (rows, slice(162, 246))
    for index in (0, 71):  # first and last frame of the 3 s, 24 fps output
        refs, bare = frame_rgb(outputs["refs"], index), frame_rgb(outputs["plain"], index)
        assert mean_rgb(refs[blue_box]) == pytest.approx(BLUE, abs=25)
        assert mean_rgb(refs[red_box]) == pytest.approx(RED, abs=25)
        assert mean_rgb(bare[blue_box]) != pytest.approx(BLUE, abs=60)
        assert mean_rgb(bare[red_box]) != pytest.approx(RED, abs=60)
