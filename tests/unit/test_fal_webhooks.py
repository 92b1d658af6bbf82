"""fal webhook verification: Ed25519 over request id, user id, timestamp and the body's SHA-256,
with keys from a JWKS served over httpx.MockTransport (local key pairs from fixed seeds)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clipedit.adapters.fal_webhooks import JWKS_URL, FalJwks, FalWebhookVerifier
from clipedit.domain.errors import ProviderError, WebhookRejected

EVENTS = Path(__file__).resolve().parents[2] / "events"
FIXTURE = json.loads((EVENTS / "fal-webhook-ok.json").read_text())
REQUEST_ID = FIXTURE["body"]["request_id"]
USER = FIXTURE["headers"]["x-fal-webhook-user-id"]
NOW = 1_790_000_000
BODY = json.dumps(FIXTURE["body"]).encode()


def key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"test-key-{seed}".encode()).digest())


def jwk(private: Ed25519PrivateKey) -> dict:
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), "use": "sig"}


def headers(private=None, *, request_id=REQUEST_ID, user=USER, timestamp=NOW, body=BODY) -> dict:
    private = private or key(1)
    message = f"{request_id}\n{user}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()
    return {**FIXTURE["headers"], "x-fal-webhook-request-id": request_id, "x-fal-webhook-user-id": user,
            "x-fal-webhook-timestamp": str(timestamp), "x-fal-webhook-signature": private.sign(message).hex()}


class World:
    """fal's current JWKS host (the default) publishes ``published``; the older host ``legacy``."""

    def __init__(self, published, legacy=()):
        self.published, self.legacy = list(published), list(legacy)
        self.now = float(NOW)
        self.jwks_calls = 0
        self.legacy_calls = 0
        client = httpx.Client(transport=httpx.MockTransport(self._serve))
        self.jwks = FalJwks(JWKS_URL, client, clock=lambda: self.now)
        self.verifier = FalWebhookVerifier(self.jwks, lambda: USER, clock=lambda: self.now)

    def _serve(self, request):
        if request.url.host == "rest.alpha.fal.ai":
            self.legacy_calls += 1
            return httpx.Response(200, json={"keys": [jwk(k) for k in self.legacy]})
        assert request.url.host == "rest.fal.ai"
        self.jwks_calls += 1
        return httpx.Response(200, json={"keys": [jwk(k) for k in self.published]})


@pytest.fixture
def world():
    return World([key(0), key(1)])  # two published keys: any may sign


def test_a_correctly_signed_webhook_passes(world):
    world.verifier.verify(headers(), BODY, task_id=REQUEST_ID)
    world.verifier.verify(headers(key(0)), BODY, task_id=REQUEST_ID)
    assert world.jwks_calls == 1  # the keys are cached


def test_a_changed_body_or_a_bad_signature_is_rejected(world):
    with pytest.raises(WebhookRejected, match="does not verify"):
        world.verifier.verify(headers(), BODY.replace(b"OK", b"ERROR"), task_id=REQUEST_ID)
    forged = dict(headers(), **{"x-fal-webhook-signature": "00" * 64})
    with pytest.raises(WebhookRejected, match="does not verify"):
        world.verifier.verify(forged, BODY, task_id=REQUEST_ID)
    with pytest.raises(WebhookRejected, match="not hex"):
        world.verifier.verify(dict(headers(), **{"x-fal-webhook-signature": "zz"}), BODY, task_id=REQUEST_ID)


@pytest.mark.parametrize("offset, word", [(-301, "past"), (301, "future")])
def test_timestamps_more_than_five_minutes_off_are_rejected(world, offset, word):
    with pytest.raises(WebhookRejected, match=f"301 s in the {word}"):
        world.verifier.verify(headers(timestamp=NOW + offset), BODY, task_id=REQUEST_ID)
    world.verifier.verify(headers(timestamp=NOW + (300 if offset > 0 else -300)), BODY, task_id=REQUEST_ID)


def test_another_user_or_another_request_is_rejected(world):
    with pytest.raises(WebhookRejected, match="for fal user"):
        world.verifier.verify(headers(user="github|someone-else"), BODY, task_id=REQUEST_ID)
    with pytest.raises(WebhookRejected, match="not this job's request"):
        world.verifier.verify(headers(request_id="other-request"), BODY, task_id=REQUEST_ID)


def test_missing_headers_are_named(world):
    partial = {k: v for k, v in headers().items() if k != "x-fal-webhook-timestamp"}
    with pytest.raises(WebhookRejected, match="missing x-fal-webhook-timestamp"):
        world.verifier.verify(partial, BODY, task_id=REQUEST_ID)


def test_an_unknown_key_refreshes_the_jwks_once_then_rejects(world):
    world.verifier.verify(headers(), BODY, task_id=REQUEST_ID)
    world.now += 120  # past the minimum refresh interval
    with pytest.raises(WebhookRejected, match="any of fal's published keys"):
        world.verifier.verify(headers(key(9)), BODY, task_id=REQUEST_ID)
    assert world.jwks_calls == 2  # one refresh, then the answer
    with pytest.raises(WebhookRejected):
        world.verifier.verify(headers(key(9)), BODY, task_id=REQUEST_ID)
    assert world.jwks_calls == 2  # forged traffic cannot make us hammer the JWKS endpoint


def test_a_rotated_key_is_picked_up_by_the_refresh(world):
    world.verifier.verify(headers(), BODY, task_id=REQUEST_ID)
    world.published = [key(2)]  # fal rotates
    world.now += 120
    world.verifier.verify(headers(key(2)), BODY, task_id=REQUEST_ID)
    assert world.jwks_calls == 2


def test_keys_older_than_a_day_are_fetched_again(world):
    world.verifier.verify(headers(), BODY, task_id=REQUEST_ID)
    world.now += 24 * 3600 + 1
    world.verifier.verify(headers(timestamp=int(world.now)), BODY, task_id=REQUEST_ID)
    assert world.jwks_calls == 2


def test_without_our_user_id_nothing_is_accepted(world):
    verifier = FalWebhookVerifier(world.jwks, lambda: None, clock=lambda: world.now)
    with pytest.raises(WebhookRejected, match="no fal_user_id"):
        verifier.verify(headers(), BODY, task_id=REQUEST_ID)


def test_a_jwks_outage_is_retryable_not_a_rejection():
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(503, text="down")))
    verifier = FalWebhookVerifier(FalJwks("https://jwks.example", client, clock=lambda: NOW), lambda: USER,
                                  clock=lambda: NOW)
    with pytest.raises(ProviderError) as raised:
        verifier.verify(headers(), BODY, task_id=REQUEST_ID)
    assert raised.value.retryable  # a 5xx from our route: fal delivers the webhook again later


def test_the_default_jwks_is_fals_current_host_and_the_older_host_is_tried_for_an_unknown_key():
    assert JWKS_URL == "https://rest.fal.ai/.well-known/jwks.json"
    world = World([key(0)], legacy=[key(5)])
    world.verifier.verify(headers(key(0)), BODY, task_id=REQUEST_ID)
    assert (world.jwks_calls, world.legacy_calls) == (1, 0)  # a known key: the older host is never asked
    world.now += 120
    world.verifier.verify(headers(key(5), timestamp=int(world.now)), BODY, task_id=REQUEST_ID)
    assert (world.jwks_calls, world.legacy_calls) == (2, 1)


def test_a_key_on_neither_host_is_still_refused():
    world = World([key(0)], legacy=[key(5)])
    with pytest.raises(WebhookRejected, match="does not verify"):
        world.verifier.verify(headers(key(9)), BODY, task_id=REQUEST_ID)
