"""fal webhook authenticity: Ed25519 signatures checked against fal's published keys (JWKS).

fal signs ``"{request_id}\\n{user_id}\\n{timestamp}\\n{sha256_hex(raw body)}"`` and sends the parts
in ``X-Fal-Webhook-Request-Id``, ``-User-Id``, ``-Timestamp`` (unix seconds) and ``-Signature``
(hex). A webhook is accepted only if the signature verifies with one of the JWKS's Ed25519 keys,
the timestamp is within 5 minutes of now, the user id is ours and the request id is the job's.
The keys are cached (at most a day) and fetched again once when no cached key verifies (fal
rotated them), but not more often than once a minute, so forged traffic cannot make us hammer
fal's JWKS endpoint. fal's current webhook docs publish the keys at ``rest.fal.ai``; older copies
and most clients use ``rest.alpha.fal.ai``: when the configured one is either host and no key
verifies, the refresh also reads the other host's keys. Facts: provider-apis.md section 2.5 and
"Checked again".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from typing import Any, Callable, Mapping

import httpx

from clipedit.adapters.provider_http import json_body, send
from clipedit.domain.errors import ProviderError, WebhookRejected

JWKS_URL = "https://rest.fal.ai/.well-known/jwks.json"  # fal's current webhook docs
LEGACY_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"  # older docs, most clients
TIMESTAMP_TOLERANCE_SECONDS = 300
JWKS_MAX_AGE_SECONDS = 24 * 3600
JWKS_MIN_REFRESH_SECONDS = 60
HEADERS = ("x-fal-webhook-request-id", "x-fal-webhook-user-id", "x-fal-webhook-timestamp",
           "x-fal-webhook-signature")


def other_fal_jwks_url(url: str) -> str | None:
    """fal's other JWKS host, tried when no key from ``url`` verifies; None for any other URL."""
    hosts = (JWKS_URL, LEGACY_JWKS_URL)
    return hosts[1 - hosts.index(url)] if url in hosts else None


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    return f"{request_id}\n{user_id}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()


class FalJwks:
    """fal's webhook public keys, fetched over HTTPS and cached; thread-safe."""

    def __init__(self, url: str, client: httpx.Client, clock: Callable[[], float] = time.time,
                 fallback_url: str | None = None) -> None:
        self._url = url
        self._fallback = fallback_url if fallback_url is not None else other_fal_jwks_url(url)
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[Any] = []
        self._fetched_at: float | None = None
        self.fetches = 0

    def keys(self) -> list[Any]:
        with self._lock:
            if self._fetched_at is None or self._clock() - self._fetched_at > JWKS_MAX_AGE_SECONDS:
                self._fetch()
            return list(self._keys)

    def refresh(self) -> list[Any] | None:
        """Fetch again (fal may have rotated its keys); None when a fetch happened too recently."""
        with self._lock:
            if self._fetched_at is not None and self._clock() - self._fetched_at < JWKS_MIN_REFRESH_SECONDS:
                return None
            self._fetch()
            if self._fallback:
                try:
                    self._keys += self._read(self._fallback)  # the other host: an unknown key may be there
                except ProviderError:
                    pass  # the configured host answered; the other one is only a second chance
            return list(self._keys)

    def _fetch(self) -> None:
        self._keys = self._read(self._url)
        self._fetched_at = self._clock()
        self.fetches += 1

    def _read(self, url: str) -> list[Any]:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        response = send(self._client, "fal (JWKS)", "GET", url)
        data = json_body(response)
        if not response.is_success or not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            # A 5xx from the webhook route makes fal deliver again later; nothing is lost.
            raise ProviderError(f"fal's JWKS answered HTTP {response.status_code} without keys", retryable=True,
                                http_status=response.status_code, code="FAL_JWKS_UNAVAILABLE")
        keys = []
        for jwk in data["keys"]:
            if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                continue
            try:
                raw = base64.urlsafe_b64decode(str(jwk.get("x", "")) + "=" * (-len(str(jwk.get("x", ""))) % 4))
                keys.append(Ed25519PublicKey.from_public_bytes(raw))
            except (ValueError, binascii.Error):
                continue  # one malformed entry must not hide the good ones
        return keys


class FalWebhookVerifier:
    def __init__(self, jwks: FalJwks, user_id: Callable[[], str | None], clock: Callable[[], float] = time.time,
                 tolerance_seconds: int = TIMESTAMP_TOLERANCE_SECONDS) -> None:
        self._jwks = jwks
        self._user_id = user_id  # read per call: it lives in the provider secret
        self._clock = clock
        self._tolerance = tolerance_seconds

    def verify(self, headers: Mapping[str, str], body: bytes, *, task_id: str | None) -> None:
        lower = {k.lower(): v for k, v in headers.items()}
        missing = [name for name in HEADERS if not lower.get(name)]
        if missing:
            raise WebhookRejected(f"not a signed fal webhook: missing {', '.join(missing)}")
        request_id, user_id, timestamp, signature = (lower[name].strip() for name in HEADERS)
        ours = self._user_id()
        if not ours:
            raise WebhookRejected("fal webhooks cannot be checked: the provider secret has no fal_user_id "
                                  "(add it; until then the poller finishes fal jobs)")
        if user_id != ours:
            raise WebhookRejected(f"the webhook was sent for fal user {user_id!r}, not for this account")
        try:
            skew = self._clock() - int(timestamp)
        except ValueError:
            raise WebhookRejected(f"the webhook timestamp {timestamp[:20]!r} is not unix seconds") from None
        if abs(skew) > self._tolerance:
            raise WebhookRejected(f"the webhook timestamp is {abs(int(skew))} s in the "
                                  f"{'past' if skew > 0 else 'future'} (more than {self._tolerance} s): "
                                  "a replay, or a clock far off")
        if task_id is not None and request_id != task_id:
            raise WebhookRejected(f"the webhook is for fal request {request_id!r}, not this job's request")
        try:
            raw_signature = bytes.fromhex(signature)
        except ValueError:
            raise WebhookRejected("the webhook signature is not hex") from None
        message = signed_message(request_id, user_id, timestamp, body)
        if self._verifies(self._jwks.keys(), raw_signature, message):
            return
        refreshed = self._jwks.refresh()  # an unknown key: fal may have rotated; look once more
        if refreshed is not None and self._verifies(refreshed, raw_signature, message):
            return
        raise WebhookRejected("the webhook signature does not verify with any of fal's published keys")

    @staticmethod
    def _verifies(keys: list[Any], signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        for key in keys:
            try:
                key.verify(signature, message)
                return True
            except InvalidSignature:
                continue
        return False
