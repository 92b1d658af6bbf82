"""Object storage on S3: head, presign, and streaming multipart uploads with bounded memory."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from clipedit.domain.errors import MediaRejected
from clipedit.domain.job import ObjectRef
from clipedit.ports import ObjectInfo

PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB; 8 MiB keeps memory small and calls few


class S3ObjectStore:
    def __init__(self, client: Any, *, part_size: int = PART_SIZE) -> None:
        self._client = client
        self._part_size = part_size

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

    def upload_stream(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> int:
        """Multipart upload fed from a byte stream; at most one part is held in memory.

        The object appears only on CompleteMultipartUpload, so a failure never leaves a partial
        object visible; the upload is aborted so no orphan parts are billed.
        """
        upload_id = self._client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, Metadata=dict(metadata)
        )["UploadId"]
        parts: list[dict[str, Any]] = []
        total = 0
        buffer = bytearray()
        try:
            for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                while len(buffer) >= self._part_size:
                    self._upload_part(bucket, key, upload_id, parts, bytes(buffer[: self._part_size]))
                    del buffer[: self._part_size]
            if buffer or not parts:
                self._upload_part(bucket, key, upload_id, parts, bytes(buffer))
            self._client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        return total

    def _upload_part(
        self, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]], body: bytes
    ) -> None:
        number = len(parts) + 1
        response = self._client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": response["ETag"]})
