"""One TLS context per process, shared by every httpx client (provider API, result downloads,
reference probes).

Its trust anchors (certifi's CA bundle, as httpx's default) are loaded by the context's first TLS
connection, not when it is built: parsing the bundle's ~140 certificates costs 12-20 ms, and
building a client (at a cold start, for the provider's API client) makes no connection. The first
HTTPS request of a container pays for it instead, once; every later one reuses the loaded store.
Certificate and host name checks are on from the start: a handshake cannot begin before the
bundle is in place (the load happens in ``wrap_socket``/``wrap_bio``, under a lock).
"""

from __future__ import annotations

import ssl
import threading
from functools import lru_cache
from typing import Any

_LOAD_LOCK = threading.Lock()


class TrustOnFirstUseContext(ssl.SSLContext):
    """``ssl.create_default_context(cafile=certifi.where())``, the bundle read at the first handshake."""

    _trust_loaded = False

    def _load_trust(self) -> None:
        if self._trust_loaded:
            return
        with _LOAD_LOCK:
            if not self._trust_loaded:
                import certifi

                self.load_verify_locations(cafile=certifi.where())
                self._trust_loaded = True

    # Every TLS connection starts with one of these two (httpcore: wrap_socket, or wrap_bio for
    # TLS inside a TLS proxy tunnel).
    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        self._load_trust()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # type: ignore[override]
        self._load_trust()
        return super().wrap_bio(*args, **kwargs)


@lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    # What httpx.create_ssl_context(verify=True, trust_env=False) builds (create_default_context's
    # client settings: CERT_REQUIRED, host name check), minus loading the bundle now. trust_env
    # stays off: SSL_CERT_FILE and friends must not change what our clients trust.
    context = TrustOnFirstUseContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    return context
