"""One TLS context per process, shared by every httpx client (provider API, result downloads,
reference probes): building one loads the CA bundle, ~20-40 ms of a cold start each time."""

from __future__ import annotations

import ssl
from functools import lru_cache


@lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    import httpx

    # httpx's own default (certifi's CA bundle, certificate and host name checks); trust_env=False:
    # SSL_CERT_FILE and friends must not change what our clients trust.
    return httpx.create_ssl_context(verify=True, trust_env=False)
