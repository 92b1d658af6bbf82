"""The fal emulator honours fal's documented queue contract (provider-apis.md section 2), over HTTP."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from local.fal_emulator import FalEmulator
from local.kling_emulator import EmulatorSettings
from tests import web

KEY = "local-id:local-secret"
O3_PRO = "fal-ai/kling-video/o3/pro/video-to-video/edit"
BODY = {"prompt": "Warm @Video1", "video_url": "http://127.0.0.1:9/never.mp4"}


@pytest.fixture
def fal():
    with FalEmulator(KEY, "user-1", EmulatorSettings(processing_seconds=60.0, concurrency=1, seed=5)) as emulator:
        yield emulator


def post(fal, body, endpoint=O3_PRO, key=KEY, **params):
    return web.post(f"{fal.base_url}/{endpoint}", json=body, params=params,
                      headers={"Authorization": f"Key {key}"} if key else {})


def test_the_key_is_required_and_checked(fal):
    assert post(fal, BODY, key=None).status_code == 401
    assert post(fal, BODY, key="other:key").status_code == 401
    assert post(fal, BODY).status_code == 200


@pytest.mark.parametrize("body, loc, kind", [
    ({"video_url": BODY["video_url"]}, ["body", "prompt"], "missing"),
    ({**BODY, "mode": "pro"}, ["body", "mode"], "extra_forbidden"),  # tier is the endpoint, not a field
    ({**BODY, "image_urls": ["https://a/1.png"] * 5}, ["body", "image_urls"], "value_error"),
    ({**BODY, "elements": [{"frontal_image_url": "https://a/f.png", "reference_image_urls": []}]},
     ["body", "elements", "0", "reference_image_urls"], "too_short"),
])
def test_invalid_input_is_a_422_with_a_detail_list(fal, body, loc, kind):
    answer = post(fal, body)
    assert answer.status_code == 422
    (detail,) = answer.json()["detail"]
    assert (detail["loc"], detail["type"]) == (loc, kind)


def test_over_the_concurrency_limit_requests_wait_in_the_queue(fal):
    first, second, third = (post(fal, BODY).json() for _ in range(3))
    assert first["status"] == second["status"] == third["status"] == "IN_QUEUE"
    assert (second["queue_position"], third["queue_position"]) == (0, 1)  # requests ahead in the queue
    root = f"{fal.base_url}/fal-ai/kling-video/requests/{second['request_id']}"  # the app id, not the endpoint
    assert (second["status_url"], second["response_url"], second["cancel_url"]) == (f"{root}/status", root, f"{root}/cancel")
    auth = {"Authorization": f"Key {KEY}"}
    assert web.get(first["status_url"], headers=auth).json()["status"] == "IN_PROGRESS"
    waiting = web.get(second["status_url"], headers=auth)
    assert waiting.status_code == 202 and (waiting.json()["status"], waiting.json()["queue_position"]) == ("IN_QUEUE", 0)
    assert web.get(second["response_url"], headers=auth).status_code == 400  # still in progress
    # Cancelling the running one frees its slot: the waiting one starts.
    assert web.put(first["cancel_url"], headers=auth).json() == {"status": "CANCELLATION_REQUESTED"}
    fal.wait_for_status(second["request_id"], "IN_PROGRESS", timeout=5)
    done = web.get(first["status_url"], headers=auth)
    assert done.status_code == 200 and done.json()["status"] == "COMPLETED"
    # fal's COMPLETED status of a failed request carries the error itself.
    assert (done.json()["error"], done.json()["error_type"]) == ("Request was cancelled", "client_cancelled")
    result = web.get(first["response_url"], headers=auth)
    assert result.status_code == 400 and result.headers["x-fal-error-type"] == "client_cancelled"
    assert web.put(first["cancel_url"], headers=auth).json() == {"status": "ALREADY_COMPLETED"}
    missing = web.put(first["cancel_url"].replace(first["request_id"], "nope"), headers=auth)
    assert missing.status_code == 404 and missing.json() == {"status": "NOT_FOUND"}


def test_webhooks_are_signed_with_the_key_the_jwks_publishes(fal):
    (jwk,) = web.get(fal.jwks_url).json()["keys"]
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4)))
    body = json.dumps({"request_id": "r-1", "status": "OK", "payload": {}}).encode()
    headers = fal.sign(body, "r-1", timestamp=1_790_000_000)
    message = f"r-1\nuser-1\n1790000000\n{hashlib.sha256(body).hexdigest()}".encode()
    public.verify(bytes.fromhex(headers["X-Fal-Webhook-Signature"]), message)  # raises if not
    assert headers["X-Fal-Webhook-User-Id"] == "user-1" and headers["X-Fal-Webhook-Request-Id"] == "r-1"


def test_a_webhook_receiver_slower_than_the_delivery_timeout_gets_the_webhook_again():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    deliveries, release = [], threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            deliveries.append(self.headers["X-Fal-Webhook-Request-Id"])
            if len(deliveries) == 1:
                release.wait(5)  # the first delivery stalls past the emulator's timeout
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = EmulatorSettings(processing_seconds=0.0, concurrency=1, seed=5)
        with FalEmulator(KEY, "user-1", settings, webhook_timeout_seconds=0.5) as fal:
            url = f"http://127.0.0.1:{server.server_address[1]}/callbacks/fal/j-1?token=t"
            request_id = post(fal, BODY, fal_webhook=url).json()["request_id"]
            fal.wait_for_status(request_id, "COMPLETED", timeout=10)  # the bad video_url fails it: an ERROR webhook
            stats = fal.wait_for_callbacks(timeout=10)
            # Timed out, counted as failed, delivered again (fal: after 15 s, up to 10 times over 2 h).
            assert deliveries == [request_id, request_id]
            assert (stats["callbacks_sent"], stats["callbacks_failed"]) == (2, 1)
    finally:
        release.set()
        server.shutdown()
