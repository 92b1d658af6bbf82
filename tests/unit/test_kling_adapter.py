"""The Kling adapter's wire format, auth and error classification, over httpx.MockTransport."""

from __future__ import annotations

import json

import httpx
import jwt
import pytest

from clipedit.adapters.kling import KlingCredentials, KlingProvider, KlingTokenSource
from clipedit.domain.errors import ProviderError
from clipedit.ports import EditRequest, TaskState

AK, SK = "ak-test-0123456789abcdef0123456789", "sk-test-0123456789abcdef0123456789abcdef"


def provider_with(handler, creds=KlingCredentials(AK, SK), clock=lambda: 1_790_000_000.0):
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return KlingProvider("https://kling.example/", KlingTokenSource(lambda: creds, clock), client)


REQUEST = EditRequest(
    external_id="j-1", prompt="Swap the sky in @Video1 for @Image1", video_url="https://s3/presigned",
    model="o3", mode="std", keep_audio=False, callback_url="https://cb/callbacks/kling/j-1?token=t",
    image_urls=("https://img/1.png",),
)


def test_create_sends_the_documented_body_and_a_valid_jwt():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers["Authorization"]
        seen["body"] = json.loads(request.content)
        seen["url"] = str(request.url)
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "request_id": "r",
                                         "data": {"task_id": "867283741759111202", "task_status": "submitted",
                                                  "task_info": {"external_task_id": "j-1"}}})

    task = provider_with(handler).submit(REQUEST)
    assert task.task_id == "867283741759111202" and task.state == TaskState.QUEUED
    assert seen["url"] == "https://kling.example/v1/videos/omni-video"
    assert seen["body"] == {
        "model_name": "kling-v3-omni", "mode": "std",
        "prompt": "Swap the sky in <<<video_1>>> for <<<image_1>>>",
        "video_list": [{"video_url": "https://s3/presigned", "refer_type": "base", "keep_original_sound": "no"}],
        "image_list": [{"image_url": "https://img/1.png"}],
        "external_task_id": "j-1", "callback_url": "https://cb/callbacks/kling/j-1?token=t",
    }
    scheme, token = seen["auth"].split(" ")
    claims = jwt.decode(token, SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    assert scheme == "Bearer" and claims["iss"] == AK
    assert claims["exp"] - 1_790_000_000 == 1800 and claims["nbf"] == 1_790_000_000 - 5
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}


def test_static_api_key_is_sent_as_is():
    seen = {}

    def handler(request):
        seen["auth"] = request.headers["Authorization"]
        return httpx.Response(200, json={"code": 0, "data": {"task_id": "1", "task_status": "processing"}})

    provider_with(handler, creds=KlingCredentials(api_key="api-key-kling-abc")).get_task("1")
    assert seen["auth"] == "Bearer api-key-kling-abc"


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [(429, 1303, "throttled"), (429, 1302, "throttled"), (500, 5000, "transient"), (504, 5002, "transient"),
     (503, 5099, "transient"), (429, 1102, "account"), (429, 1101, "account"), (401, 1000, "account"),
     (403, 1103, "account"), (429, 1304, "account"), (400, 1301, "rejected"), (400, 1201, "rejected"),
     (400, 1999, "rejected")],
)
def test_errors_are_classified_on_the_code_not_the_http_status(status, code, kind):
    provider = provider_with(lambda r: httpx.Response(status, json={"code": code, "message": "m", "request_id": "r"}))
    with pytest.raises(ProviderError) as info:
        provider.submit(REQUEST)
    assert (info.value.provider_code, info.value.kind, info.value.code) == (code, kind, f"KLING_{code}")
    assert info.value.retryable == (kind in ("throttled", "transient"))


def test_expired_token_is_reminted_once():
    calls = []

    def handler(request):
        calls.append(request.headers["Authorization"])
        if len(calls) == 1:
            return httpx.Response(401, json={"code": 1004, "message": "token expired"})
        return httpx.Response(200, json={"code": 0, "data": {"task_id": "1", "task_status": "processing"}})

    times = iter([1_790_000_000.0, 1_790_000_100.0, 1_790_000_200.0])
    assert provider_with(handler, clock=lambda: next(times)).get_task("1").state == TaskState.RUNNING
    assert len(calls) == 2 and calls[0] != calls[1]


def test_failed_task_comes_back_with_code_zero_and_its_reason():
    body = {"code": 0, "message": "SUCCEED", "data": {
        "task_id": "9", "task_status": "failed", "task_status_msg": "Failure to pass the risk control system",
        "task_info": {"external_task_id": "j-1"}}}
    task = provider_with(lambda r: httpx.Response(200, json=body)).get_task("9")
    assert task.state == TaskState.FAILED and task.message == "Failure to pass the risk control system"


def test_succeeded_task_exposes_url_duration_and_units():
    body = {"code": 0, "data": {"task_id": "9", "task_status": "succeed", "final_unit_deduction": "6",
                                "task_result": {"videos": [{"id": "v", "url": "https://cdn/v.mp4", "duration": "5.1"}]}}}
    task = provider_with(lambda r: httpx.Response(200, json=body)).get_task("9")
    assert (task.state, task.video_url, task.duration_seconds, task.units) == (
        TaskState.SUCCEEDED, "https://cdn/v.mp4", 5.1, "6")


def test_network_failures_are_retryable():
    def handler(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(ProviderError) as info:
        provider_with(handler).get_task("1")
    assert info.value.retryable and info.value.code == "PROVIDER_UNREACHABLE"


def test_find_by_external_id_uses_the_documented_path_form_only():
    seen = []

    def handler(request):
        seen.append((request.url.path, dict(request.url.params)))
        if request.url.path.endswith("/j-1"):
            return httpx.Response(200, json={"code": 0, "data": {"task_id": "5", "task_status": "processing",
                                                                 "task_info": {"external_task_id": "j-1"}}})
        return httpx.Response(404, json={"code": 1203})

    assert provider_with(handler).find_by_external_id("j-1").task_id == "5"
    # The list endpoint has no external-id filter (it would answer the newest 30 tasks): never asked.
    assert seen == [("/v1/videos/omni-video/j-1", {})]


def test_find_by_external_id_answers_none_when_kling_has_no_such_task():
    def handler(request):
        return httpx.Response(404, json={"code": 1203, "message": "task not found"})

    assert provider_with(handler).find_by_external_id("j-404") is None


def test_an_element_is_read_by_its_external_id_on_the_query_path():
    def handler(request):
        assert request.url.path == "/v1/general/advanced-custom-elements/e-abc"
        return httpx.Response(200, json={"code": 0, "data": {
            "task_id": "77", "task_status": "succeed", "task_result": {"elements": [{"element_id": 901}]}}})

    task = provider_with(handler).get_element("e-abc")
    assert (task.task_id, task.element_id) == ("77", "901")


def test_credentials_must_be_present():
    with pytest.raises(ProviderError) as info:
        KlingCredentials.from_secret({"access_key": "", "secret_key": ""})
    assert info.value.code == "PROVIDER_CREDENTIALS_MISSING"


@pytest.mark.parametrize("claims", [
    {"iss": AK, "exp": 1_800_000_000, "nbf": 1_799_998_195},
    {"iss": "ak-ünïcode", "exp": 2, "nbf": 0},
])
def test_the_stdlib_token_is_byte_for_byte_pyjwts(claims):
    from clipedit.adapters.kling import hs256_jwt

    expected = jwt.encode(claims, SK, algorithm="HS256", headers={"alg": "HS256", "typ": "JWT"})
    assert hs256_jwt(claims, SK) == expected
    assert jwt.decode(hs256_jwt(claims, SK), SK, algorithms=["HS256"],
                      options={"verify_exp": False, "verify_nbf": False}) == claims
