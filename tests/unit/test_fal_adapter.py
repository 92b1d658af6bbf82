"""The fal adapter's wire format, endpoint choice, queue states and failure shapes, over
httpx.MockTransport, with payloads shaped like fal's (events/fal-*.json)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from clipedit.adapters.fal import FAL_ERRORS, FalCredentials, FalProvider, classify
from clipedit.domain.errors import ProviderError
from clipedit.ports import EditRequest, InlineElement, TaskState

EVENTS = Path(__file__).resolve().parents[2] / "events"
KEY = "0d4c7a2e-1111-2222-3333-444455556666:9f8e7d6c5b4a39281706f5e4d3c2b1a0"
BASE = "https://queue.fal.run"
REQUEST_ID = "764cabcf-b745-4b3e-ae38-1200304cf45b"
ROOT = f"{BASE}/fal-ai/kling-video/requests/{REQUEST_ID}"
URLS = {"status_url": f"{ROOT}/status", "response_url": ROOT, "cancel_url": f"{ROOT}/cancel"}


def fixture(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def provider_with(handler) -> FalProvider:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return FalProvider(lambda: FalCredentials(KEY, "user-1"), client, BASE)


REQUEST = EditRequest(
    external_id="j-1", prompt="Put the man in @Video1 in the jacket of @Image1, next to @Element1",
    video_url="https://s3/presigned?X-Amz-Signature=s", model="o3", mode="pro", keep_audio=False,
    callback_url="https://api.example/callbacks/fal/j-1?token=t0k", image_urls=("https://img/1.png",),
    elements=(InlineElement("https://img/front.png", ("https://img/side.png",)),),
)


def test_submit_posts_the_manifest_fields_to_the_endpoint_with_the_key_and_the_webhook():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(method=request.method, auth=request.headers["Authorization"], url=request.url,
                    body=json.loads(request.content))
        return httpx.Response(200, json=fixture("fal-submit-ok.json"))

    task = provider_with(handler).submit(REQUEST)
    assert seen["method"] == "POST" and seen["auth"] == f"Key {KEY}"
    assert seen["url"].path == "/fal-ai/kling-video/o3/pro/video-to-video/edit"
    assert seen["url"].params["fal_webhook"] == "https://api.example/callbacks/fal/j-1?token=t0k"
    assert seen["body"] == {
        "prompt": "Put the man in @Video1 in the jacket of @Image1, next to @Element1",  # fal's own syntax
        "video_url": "https://s3/presigned?X-Amz-Signature=s",
        "keep_audio": False,
        "image_urls": ["https://img/1.png"],
        "elements": [{"frontal_image_url": "https://img/front.png", "reference_image_urls": ["https://img/side.png"]}],
    }
    assert task.task_id == REQUEST_ID and task.state == TaskState.QUEUED
    assert task.urls == URLS and task.endpoint == "fal-ai/kling-video/o3/pro/video-to-video/edit"


@pytest.mark.parametrize("model, mode, path", [
    ("o3", "std", "/fal-ai/kling-video/o3/standard/video-to-video/edit"),
    ("o3", "pro", "/fal-ai/kling-video/o3/pro/video-to-video/edit"),
    ("o1", "std", "/fal-ai/kling-video/o1/standard/video-to-video/edit"),
    ("o1", "pro", "/fal-ai/kling-video/o1/video-to-video/edit"),
])
def test_model_and_tier_choose_the_endpoint(model, mode, path):
    paths = []

    def handler(request):
        paths.append(request.url.path)
        return httpx.Response(200, json=fixture("fal-submit-ok.json"))

    request = EditRequest(external_id="j", prompt="p", video_url="https://v", model=model, mode=mode, keep_audio=True)
    provider_with(handler).submit(request)
    assert paths == [path]


def test_a_request_without_references_sends_no_empty_lists():
    bodies = []

    def handler(request):
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=fixture("fal-submit-ok.json"))

    provider_with(handler).submit(EditRequest(external_id="j", prompt="p", video_url="https://v", model="o1",
                                              mode="std", keep_audio=True))
    assert bodies == [{"prompt": "p", "video_url": "https://v", "keep_audio": True}]


def test_queue_states_map_and_the_stored_urls_are_used():
    answers = iter([
        httpx.Response(202, json={"status": "IN_QUEUE", "queue_position": 2, "response_url": ROOT}),
        httpx.Response(202, json={"status": "IN_PROGRESS", "response_url": ROOT}),
    ])
    seen = []

    def handler(request):
        seen.append(str(request.url))
        return next(answers)

    provider = provider_with(handler)
    stored = {k: v.replace("queue.fal.run", "queue.other.example") for k, v in URLS.items()}
    assert provider.get_task(REQUEST_ID, urls=stored).state == TaskState.QUEUED
    assert provider.get_task(REQUEST_ID, urls=stored).state == TaskState.RUNNING
    assert seen == [stored["status_url"]] * 2  # fal says: use its URLs, do not build them


def test_completed_with_a_video_is_a_success():
    def handler(request):
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED", "response_url": ROOT})
        return httpx.Response(200, json=fixture("fal-result-ok.json"))

    task = provider_with(handler).get_task(REQUEST_ID, urls=URLS)
    assert task.state == TaskState.SUCCEEDED
    assert task.video_url == fixture("fal-result-ok.json")["video"]["url"]


def test_a_validation_failure_is_a_failed_task_with_fals_words_and_a_specific_code():
    def handler(request):
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED"})
        return httpx.Response(422, json=fixture("fal-result-422.json"))

    task = provider_with(handler).get_task(REQUEST_ID, urls=URLS)
    assert task.state == TaskState.FAILED and task.error_code == "FAL_INPUT_REJECTED"
    assert "video_url" in task.message and "duration" in task.message.lower()


def test_an_infrastructure_failure_carries_its_error_type():
    def handler(request):
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED"})
        return httpx.Response(503, json={"detail": "Runner disconnected", "error_type": "runner_disconnected"},
                              headers={"X-Fal-Error-Type": "runner_disconnected"})

    task = provider_with(handler).get_task(REQUEST_ID, urls=URLS)
    assert task.state == TaskState.FAILED and task.error_code == "FAL_RUNNER_ERROR"
    assert "Runner disconnected" in task.message


def test_a_completed_status_that_carries_an_error_fails_the_job_with_fals_error():
    def handler(request):
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED", "error": "Runner disconnected while processing",
                                             "error_type": "runner_disconnected"})
        return httpx.Response(200, json=fixture("fal-result-ok.json"))  # not trusted after that status

    task = provider_with(handler).get_task(REQUEST_ID, urls=URLS)
    assert task.state == TaskState.FAILED and task.error_code == "FAL_RUNNER_ERROR"
    assert "Runner disconnected while processing" in task.message
    assert task.video_url is None  # the result's video is not taken over the status's error


def test_a_completed_status_with_an_error_keeps_the_results_more_specific_failure():
    def handler(request):
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED", "error": "Invalid status code: 422",
                                             "error_type": "validation_error"})
        return httpx.Response(422, json=fixture("fal-result-422.json"))

    task = provider_with(handler).get_task(REQUEST_ID, urls=URLS)
    assert task.state == TaskState.FAILED and task.error_code == "FAL_INPUT_REJECTED"


@pytest.mark.parametrize("written", ["@video1", "@VIDEO1", "@Video01", "@vIdEo1"])
def test_any_case_of_a_reference_reaches_fal_as_video1(written):
    bodies = []

    def handler(request):
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=fixture("fal-submit-ok.json"))

    request = EditRequest(external_id="j", prompt=f"Make {written} snowy, keep @image1 as is", video_url="https://v",
                          model="o3", mode="pro", keep_audio=True, image_urls=("https://img/1.png",))
    provider_with(handler).submit(request)
    assert bodies[0]["prompt"] == "Make @Video1 snowy, keep @Image1 as is"


@pytest.mark.parametrize("answer", [
    httpx.Response(502, text="Bad Gateway"),
    httpx.Response(400, json={"detail": "Request is still in progress"}),
])
def test_a_result_fetch_hiccup_without_an_error_type_is_retried_not_a_failure(answer):
    def handler(request):
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED"})
        return answer

    with pytest.raises(ProviderError) as raised:
        provider_with(handler).get_task(REQUEST_ID, urls=URLS)
    assert raised.value.retryable and raised.value.code == "FAL_RESULT_UNAVAILABLE"


@pytest.mark.parametrize("status, body, retryable, code", [
    (401, {"detail": "Authentication is required"}, False, "FAL_AUTH"),
    (403, {"detail": "User is locked. Reason: Exhausted balance."}, False, "FAL_FORBIDDEN"),
    (422, None, False, "FAL_VALIDATION_ERROR"),
    (429, {"detail": "Too many requests"}, True, "FAL_RATE_LIMITED"),
    (500, {"detail": "Internal Server Error"}, True, "FAL_SERVER_ERROR"),
])
def test_submit_refusals_are_classified(status, body, retryable, code):
    body = body if body is not None else fixture("fal-result-422.json") | {"detail": [
        {"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]}

    with pytest.raises(ProviderError) as raised:
        provider_with(lambda request: httpx.Response(status, json=body)).submit(REQUEST)
    assert (raised.value.retryable, raised.value.code, raised.value.http_status) == (retryable, code, status)


def test_network_failures_are_retryable():
    def handler(request):
        raise httpx.ConnectError("boom")

    with pytest.raises(ProviderError) as raised:
        provider_with(handler).submit(REQUEST)
    assert raised.value.retryable and raised.value.code == "PROVIDER_UNREACHABLE"


def test_the_error_table_knows_the_documented_request_error_types():
    for error_type in ("request_timeout", "startup_timeout", "runner_scheduling_failure", "runner_disconnected"):
        assert FAL_ERRORS[error_type].retryable
    assert not FAL_ERRORS["content_policy_violation"].retryable
    failure, words = classify(504, {"detail": "Request timed out", "error_type": "request_timeout"}, None)
    assert failure.code == "FAL_REQUEST_TIMEOUT" and words == "Request timed out"
    unknown, words = classify(503, {"detail": "x", "error_type": "brand_new_type"}, None)
    assert unknown.retryable and "brand_new_type" in words  # unknown types: the status class decides


@pytest.mark.parametrize("status, body, answer", [
    (202, {"status": "CANCELLATION_REQUESTED"}, "cancelled"),
    (400, {"status": "ALREADY_COMPLETED"}, "completed"),
    (404, {"status": "NOT_FOUND"}, "unknown"),
])
def test_cancel_uses_the_stored_cancel_url(status, body, answer):
    seen = []

    def handler(request):
        seen.append((request.method, str(request.url), request.headers["Authorization"]))
        return httpx.Response(status, json=body)

    assert provider_with(handler).cancel(REQUEST_ID, urls=URLS) == answer
    assert seen == [("PUT", URLS["cancel_url"], f"Key {KEY}")]


def test_a_secret_without_a_fal_key_says_what_to_add():
    with pytest.raises(ProviderError) as raised:
        FalCredentials.from_secret({"access_key": "a", "secret_key": "b"})
    assert raised.value.code == "PROVIDER_CREDENTIALS_MISSING" and "fal_key" in raised.value.message
    assert FalCredentials.from_secret({"fal_key": " k:s ", "fal_user_id": "u"}) == FalCredentials("k:s", "u")
