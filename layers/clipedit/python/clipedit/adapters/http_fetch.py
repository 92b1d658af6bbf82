"""Streams a provider's result URL with httpx: bounded chunks, timeouts and a size cap.

The result URL comes from the provider, not from us: give this fetcher a
``clipedit.adapters.safe_http.safe_client`` built with the result-host policy (wiring does), so a URL
off the allowlist, a redirect out of it or a host resolving to a private address is refused with
``UrlRejected`` before any byte is read.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import httpx

from clipedit.domain.errors import ProviderError

CHUNK_SIZE = 1024 * 1024
MAX_OUTPUT_BYTES = 2 * 1024 * 1024 * 1024  # far above any 10 s clip; stops a runaway download


class HttpMediaFetcher:
    def __init__(self, client: httpx.Client, *, max_bytes: int = MAX_OUTPUT_BYTES) -> None:
        self._client = client
        self._max_bytes = max_bytes

    @contextmanager
    def open(self, url: str) -> Iterator[Iterator[bytes]]:
        with self._client.stream("GET", url) as response:
            if response.status_code != 200:
                raise ProviderError(
                    f"downloading the result failed with HTTP {response.status_code}",
                    http_status=response.status_code,
                    retryable=response.status_code >= 500 or response.status_code == 429,
                    code="OUTPUT_DOWNLOAD_FAILED",
                )
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > self._max_bytes:
                raise self._too_large()  # announced too large: refused before reading a byte
            yield self._capped(response.iter_bytes(CHUNK_SIZE))

    def _capped(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        seen = 0
        for chunk in chunks:
            seen += len(chunk)
            if seen > self._max_bytes:
                raise self._too_large()
            yield chunk

    def _too_large(self) -> ProviderError:
        return ProviderError(
            f"the result is larger than {self._max_bytes} bytes; refusing to copy it",
            retryable=False,
            code="OUTPUT_TOO_LARGE",
        )
