"""`RangeReader`s (see ``clipedit.domain.media``) over S3, HTTP and in-memory bytes.

The media probe asks for many tiny pieces (16-byte box headers, then the moov body). Each reader
fetches at least ``min_fetch`` bytes per request (64 KB by default) and serves the following
sub-reads from that block, so probing a clip costs 2-3 requests and about 100-200 KB whatever the
clip's size. ``bytes_read`` counts the bytes actually received, ``requests`` the calls made.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from clipedit.domain.errors import MediaRejected, RetryLater

if TYPE_CHECKING:  # httpx is imported lazily: the S3 path should not pay for it at cold start
    import httpx

__all__ = ["DEFAULT_MIN_FETCH", "BytesRangeReader", "S3RangeReader", "HttpRangeReader"]

DEFAULT_MIN_FETCH = 64 * 1024


class _ReadAhead:
    """Serves reads from the last fetched block; a miss fetches at least ``min_fetch`` bytes."""

    def __init__(self, min_fetch: int) -> None:
        if min_fetch < 1:
            raise ValueError("min_fetch must be positive")
        self._min_fetch = min_fetch
        self._block = b""
        self._block_start = 0
        self.bytes_read = 0
        self.requests = 0

    @property
    def size(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _fetch(self, offset: int, length: int) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError(f"bad range: offset={offset} length={length}")
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        block_end = self._block_start + len(self._block)
        if self._block_start <= offset and end <= block_end:
            return self._block[offset - self._block_start : end - self._block_start]
        # Keep the part of the request the block already holds; fetch only the rest.
        keep, fetch_from = b"", offset
        if self._block_start <= offset < block_end:
            keep, fetch_from = self._block[offset - self._block_start :], block_end
        fetch_to = min(self.size, max(end, fetch_from + self._min_fetch))
        self._block = keep + self._fetch(fetch_from, fetch_to - fetch_from)
        self._block_start = offset
        return self._block[: end - offset]


class BytesRangeReader:
    """In-memory reader for tests; counts what was asked for."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self.size = len(self._data)
        self.bytes_read = 0
        self.requests = 0

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError(f"bad range: offset={offset} length={length}")
        chunk = self._data[offset : offset + length]
        self.bytes_read += len(chunk)
        self.requests += 1
        return chunk


class S3RangeReader(_ReadAhead):
    """Ranged GetObject reads of one object (one version when ``version_id`` is given).

    ``size`` comes from a HeadObject on first use unless the caller already knows it (the S3 event
    carries it). 403/404 become ``MediaRejected(code="CLIP_NOT_FOUND")``; other errors propagate.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        version_id: str | None = None,
        size: int | None = None,
        *,
        min_fetch: int = DEFAULT_MIN_FETCH,
    ) -> None:
        super().__init__(min_fetch)
        self._client = client
        self._bucket, self._key, self._version_id = bucket, key, version_id
        self._size = size

    @property
    def size(self) -> int:
        if self._size is None:
            response = self._call(self._client.head_object)
            self._size = int(response.get("ContentLength", 0))
        return self._size

    def _fetch(self, offset: int, length: int) -> bytes:
        response = self._call(self._client.get_object, Range=f"bytes={offset}-{offset + length - 1}")
        body = response["Body"]
        try:
            data: bytes = body.read(length)  # never more than asked for
        finally:
            body.close()
        self.bytes_read += len(data)
        return data

    def _call(self, method: Any, **extra: Any) -> Any:
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key, **extra}
        if self._version_id:
            kwargs["VersionId"] = self._version_id
        self.requests += 1
        try:
            return method(**kwargs)
        except self._client.exceptions.ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (403, 404):
                raise MediaRejected(
                    f"s3://{self._bucket}/{self._key} cannot be read (HTTP {status}); was it deleted?",
                    code="CLIP_NOT_FOUND",
                ) from error
            raise


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """("bytes 0-99/1234") -> (0, 1234); "bytes */1234" -> (None, 1234); unknown parts are None."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return start, total


class HttpRangeReader(_ReadAhead):
    """Ranged GETs against a URL (e.g. a presigned S3 URL or a provider's CDN).

    The size comes from the first ranged GET (``Content-Range: bytes 0-65535/<size>``, which also
    fills the read-ahead block), so presigned GET-only URLs work; HEAD is the fallback. A server
    that ignores ``Range`` and answers 200 is read as one forward stream, kept open between reads
    and consumed only as far as the probe asks (a moov-first file then costs its first block, not
    the whole body). Call `close` (or use ``with``) to drop such a stream.

    Errors: 401/403/404/410 -> ``MediaRejected("CLIP_NOT_FOUND")``; other 4xx or no usable size ->
    ``MediaRejected("CLIP_FETCH_FAILED")``; 429/5xx/network -> ``RetryLater``. Messages name the URL
    without its query string (presigned signatures stay out of job records).
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        size: int | None = None,
        *,
        min_fetch: int = DEFAULT_MIN_FETCH,
    ) -> None:
        super().__init__(min_fetch)
        self._client = client
        self._url = url
        self._size = size
        self._ranges_ok: bool | None = None
        self._stream: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._pending = b""
        self._stream_pos = 0

    # -- public ------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        if self._size is None:
            self._discover_size()
        assert self._size is not None
        return self._size

    @property
    def ranges_supported(self) -> bool | None:
        """None until the first GET; False once the server answered 200 to a Range request."""
        return self._ranges_ok

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream, self._chunks, self._pending = None, None, b""

    def __enter__(self) -> HttpRangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- size --------------------------------------------------------------------------------

    def _discover_size(self) -> None:
        first = self._fetch(0, self._min_fetch)  # a ranged GET: Content-Range carries the size
        if self._size is None:
            self._size = self._head_size()
        if self._size is None:
            self.close()
            raise MediaRejected(
                f"{self._where()} does not say how large the file is (no Content-Range or "
                "Content-Length); host it where ranged downloads work, e.g. S3",
                code="CLIP_FETCH_FAILED",
            )
        self._block, self._block_start = first[: self._size], 0

    def _head_size(self) -> int | None:
        import httpx

        try:
            response = self._client.head(self._url, headers={"Accept-Encoding": "identity"})
        except httpx.HTTPError:
            return None
        finally:
            self.requests += 1
        length = response.headers.get("content-length")
        return int(length) if response.status_code == 200 and length and length.isdigit() else None

    # -- fetching ----------------------------------------------------------------------------

    def _fetch(self, offset: int, length: int) -> bytes:
        if self._ranges_ok is not False:
            data = self._ranged_get(offset, length)
            if data is not None:
                return data
        return self._sequential(offset, length)

    def _ranged_get(self, offset: int, length: int) -> bytes | None:
        """The bytes, or None when the server ignored Range (its 200 response becomes the stream)."""
        response = self._send({"Range": f"bytes={offset}-{offset + length - 1}"})
        status = response.status_code
        if status == 206:
            try:
                start, total = _parse_content_range(response.headers.get("content-range"))
                if start != offset:
                    raise MediaRejected(
                        f"{self._where()} answered a range request with the wrong range "
                        f"({response.headers.get('content-range')!r})",
                        code="CLIP_FETCH_FAILED",
                    )
                if self._size is None and total is not None:
                    self._size = total
                self._ranges_ok = True
                return self._read_body(response, length)
            finally:
                response.close()
        if status == 200:
            self._ranges_ok = False
            length_header = response.headers.get("content-length")
            if self._size is None and length_header and length_header.isdigit():
                self._size = int(length_header)
            self.close()
            self._stream, self._chunks, self._stream_pos = response, response.iter_raw(self._min_fetch), 0
            return None
        if status == 416:  # nothing at that offset: an empty object, or the object shrank
            _, total = _parse_content_range(response.headers.get("content-range"))
            response.close()
            if self._size is None and total is not None:
                self._size = total
            return b""
        response.close()
        self._raise_for_status(status)
        return b""  # pragma: no cover - _raise_for_status always raises

    def _sequential(self, offset: int, length: int) -> bytes:
        if self._chunks is None or self._stream_pos > offset:
            self.close()  # cannot seek back in a stream: start again from byte 0
            response = self._send({})
            if response.status_code != 200:
                response.close()
                self._raise_for_status(response.status_code)
            self._stream, self._chunks, self._stream_pos = response, response.iter_raw(self._min_fetch), 0
        while self._stream_pos < offset:
            if not self._take(offset - self._stream_pos):
                return b""
        out = bytearray()
        while len(out) < length:
            piece = self._take(length - len(out))
            if not piece:
                break
            out += piece
        return bytes(out)

    def _take(self, n: int) -> bytes:
        import httpx

        if not self._pending:
            assert self._chunks is not None
            try:
                self._pending = next(self._chunks, b"")
            except httpx.HTTPError as error:
                self.close()
                raise RetryLater(f"reading {self._where()} failed: {error}") from error
            self.bytes_read += len(self._pending)
        piece, self._pending = self._pending[:n], self._pending[n:]
        self._stream_pos += len(piece)
        return piece

    def _read_body(self, response: httpx.Response, length: int) -> bytes:
        import httpx

        out = bytearray()
        try:
            for chunk in response.iter_raw(self._min_fetch):
                self.bytes_read += len(chunk)
                out += chunk
                if len(out) >= length:
                    break  # a server sending more than the range asked for is cut off here
        except httpx.HTTPError as error:
            raise RetryLater(f"reading {self._where()} failed: {error}") from error
        return bytes(out[:length])

    def _send(self, headers: dict[str, str]) -> httpx.Response:
        import httpx

        # identity: byte offsets and Content-Length must refer to the file itself, not a gzip of it.
        request = self._client.build_request("GET", self._url, headers={"Accept-Encoding": "identity", **headers})
        self.requests += 1
        try:
            return self._client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise RetryLater(f"fetching {self._where()} failed: {error}") from error

    def _raise_for_status(self, status: int) -> None:
        if status in (401, 403, 404, 410):
            raise MediaRejected(
                f"{self._where()} cannot be read (HTTP {status}); is the URL public and still valid?",
                code="CLIP_NOT_FOUND",
            )
        if status == 429 or status >= 500:
            raise RetryLater(f"{self._where()} answered HTTP {status}")
        raise MediaRejected(f"{self._where()} answered HTTP {status}", code="CLIP_FETCH_FAILED")

    def _where(self) -> str:
        parts = urlsplit(self._url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"
