"""Object storage on S3: head, presign, and streaming multipart uploads with bounded memory."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Mapping

from clipedit.domain.errors import MediaRejected
from clipedit.domain.job import ObjectRef
from clipedit.ports import ObjectInfo

PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB; 8 MiB keeps memory small and calls few
PARTS_IN_FLIGHT = 3  # ~32 MiB of parts at most; 4 measured 89 MB peak, near the 100 MB budget


class S3ObjectStore:
    def __init__(self, client: Any, *, part_size: int = PART_SIZE, parts_in_flight: int = PARTS_IN_FLIGHT) -> None:
        self._client = client
        self._part_size = part_size
        self._parts_in_flight = max(1, parts_in_flight)

    def head(self, ref: ObjectRef) -> ObjectInfo:
        kwargs: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            kwargs["VersionId"] = ref.version_id
        try:
            response = self._client.head_object(**kwargs)
        except self._client.exceptions.ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (403, 404):
                raise MediaRejected(
                    f"s3://{ref.bucket}/{ref.key} cannot be read (HTTP {status}); was it deleted?",
                    code="CLIP_NOT_FOUND",
                ) from error
            raise
        return ObjectInfo(
            size=int(response.get("ContentLength", 0)),
            metadata=dict(response.get("Metadata", {})),
            content_type=response.get("ContentType"),
            etag=response.get("ETag"),
            version_id=response.get("VersionId"),
        )

    def presign_get(self, ref: ObjectRef, ttl_seconds: int) -> str:
        params: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            params["VersionId"] = ref.version_id  # the exact upload the job was made for
        return self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_seconds)

    def download(self, ref: ObjectRef, path: str) -> int:
        """The object streamed to a file in 1 MiB reads (a 200 MB clip never sits in memory)."""
        kwargs: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            kwargs["VersionId"] = ref.version_id
        body = self._client.get_object(**kwargs)["Body"]
        written = 0
        with open(path, "wb") as out:
            for chunk in body.iter_chunks(1024 * 1024):
                out.write(chunk)
                written += len(chunk)
        return written

    def upload_stream(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> int:
        """Multipart upload fed from a byte stream, with bounded memory.

        Up to ``parts_in_flight`` parts upload while the next one is read (memory stays at about
        (parts_in_flight + 1) x part size whatever the object's size), and each part carries a
        CRC32 so S3 need not checksum the whole object at completion (both measured by
        ``make bench``). The object appears only on CompleteMultipartUpload, so a failure never
        leaves a partial object visible; the upload is aborted so no orphan parts are billed.
        """
        upload_id = self._client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, Metadata=dict(metadata), ChecksumAlgorithm="CRC32"
        )["UploadId"]
        pending: list[Future[dict[str, Any]]] = []
        parts: list[dict[str, Any]] = []
        total = 0
        buffer = bytearray()
        number = 0
        pool = ThreadPoolExecutor(max_workers=self._parts_in_flight, thread_name_prefix="s3-part")

        def send(body: bytes) -> None:
            nonlocal number
            number += 1
            pending.append(pool.submit(self._upload_part, bucket, key, upload_id, number, body))
            while len(pending) >= self._parts_in_flight:  # bound the bytes held in memory
                parts.append(pending.pop(0).result())

        try:
            for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                while len(buffer) >= self._part_size:
                    send(bytes(buffer[: self._part_size]))
                    del buffer[: self._part_size]
            if buffer or number == 0:
                send(bytes(buffer))
            parts.extend(future.result() for future in pending)
            pending.clear()
            self._client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": sorted(parts, key=lambda p: p["PartNumber"])},
            )
        except Exception:
            # Errors we can see abort at once. A crash (timeout, out of memory) cannot clean up;
            # the bucket's AbortIncompleteMultipartUpload rule removes those parts a day later.
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True)
            self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        pool.shutdown(wait=True)
        return total

    def _upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        response = self._client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body, ChecksumAlgorithm="CRC32"
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if response.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part
