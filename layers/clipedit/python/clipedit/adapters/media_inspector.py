"""Probes clips and reference images where they are (S3 or https) with ranged reads.

https references are the user's URLs: give the inspector a
``clipedit.adapters.safe_http.safe_client`` built with the reference policy (wiring does). A refused
URL (`UrlRejected`: scheme, host, credentials, a private address, a redirect out of the policy)
becomes ``MediaRejected`` with the policy's code, so the job is REJECTED, never retried.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from clipedit.domain.errors import MediaRejected, UrlRejected
from clipedit.domain.manifest import MediaRef
from clipedit.domain.media import ImageFacts, VideoFacts, probe_image, probe_video
from clipedit.domain.url_policy import url_for_message

MAX_HASHED_BYTES = 10 * 1024 * 1024  # reference images are at most 10 MB
HASH_CHUNK = 1024 * 1024


class RangeMediaInspector:
    def __init__(self, s3_client: Any, http_client: httpx.Client) -> None:
        self._s3 = s3_client
        self._http = http_client

    def _reader(self, ref: MediaRef) -> Any:
        from clipedit.adapters.range_readers import HttpRangeReader, S3RangeReader

        if ref.is_s3:
            return S3RangeReader(self._s3, ref.bucket, ref.key, version_id=ref.version_id)
        return HttpRangeReader(self._http, ref.url)

    def _guard(self, ref: MediaRef, action: Any) -> Any:
        reader = None
        try:
            reader = self._reader(ref)
            return action(reader)
        except MediaRejected:
            raise
        except UrlRejected as error:
            where = _without_query(ref)
            message = error.message if error.message.startswith(where) else f"{where}: {error.message}"
            raise MediaRejected(message, code=error.code) from None
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise MediaRejected(f"{_without_query(ref)} cannot be read (HTTP {status}); check that it exists",
                                code="REFERENCE_UNREADABLE") from None
        except (httpx.HTTPError, BotoCoreError, OSError) as error:
            raise MediaRejected(f"{_without_query(ref)} cannot be read: {type(error).__name__}",
                                code="REFERENCE_UNREADABLE") from None
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()  # an HTTP stream from a server that ignores Range must not linger

    def video(self, ref: MediaRef) -> VideoFacts:
        return self._guard(ref, probe_video)

    def image(self, ref: MediaRef) -> ImageFacts:
        return self._guard(ref, probe_image)

    def content_hash(self, ref: MediaRef) -> str:
        def digest(reader: Any) -> str:
            size = min(reader.size, MAX_HASHED_BYTES)
            sha = hashlib.sha256()
            for offset in range(0, size, HASH_CHUNK):
                sha.update(reader.read(offset, min(HASH_CHUNK, size - offset)))
            return sha.hexdigest()

        return self._guard(ref, digest)


def _without_query(ref: MediaRef) -> str:
    """References are quoted in job errors; a URL's query string may hold a signature (and its
    user:password@, which the policy refuses, a password): both are left out."""
    return url_for_message(ref.url) if ref.url else str(ref)
