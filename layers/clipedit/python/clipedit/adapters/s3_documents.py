"""Small text documents in S3 (manifests, presets, batch files and their results) and the intake
queue's own messages."""

from __future__ import annotations

import codecs
import json
from typing import Any, Iterable, Iterator

from clipedit.domain.errors import SpecError
from clipedit.domain.job import ObjectRef
from clipedit.adapters.s3_storage import S3ObjectStore

MAX_MESSAGE_BYTES = 250 * 1024  # SQS allows 256 KiB


class S3Documents:
    def __init__(self, client: Any) -> None:
        self._client = client
        self._store = S3ObjectStore(client)

    def _get(self, ref: ObjectRef) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            kwargs["VersionId"] = ref.version_id
        try:
            return self._client.get_object(**kwargs)
        except self._client.exceptions.NoSuchKey:
            return None
        except self._client.exceptions.ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (403, 404):
                return None
            raise

    def read_text(self, ref: ObjectRef, *, max_bytes: int) -> str | None:
        response = self._get(ref)
        if response is None:
            return None
        if int(response.get("ContentLength", 0)) > max_bytes:
            response["Body"].close()
            raise SpecError(f"{ref.key} is {response['ContentLength']} bytes; at most {max_bytes} are accepted",
                            code="MANIFEST_TOO_LARGE")
        data = response["Body"].read(max_bytes + 1)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise SpecError(f"{ref.key} is not UTF-8 text (byte {error.start})", code="INVALID_ENCODING") from None

    def iter_lines(self, ref: ObjectRef) -> Iterator[str]:
        response = self._get(ref)
        if response is None:
            raise SpecError(f"{ref.key} disappeared before it was read", code="REFERENCE_UNREADABLE")
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        pending = ""
        try:
            for chunk in response["Body"].iter_chunks(64 * 1024):
                pending += decoder.decode(chunk)
                *lines, pending = pending.split("\n")
                for line in lines:
                    yield line + "\n"
            pending += decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            raise SpecError(f"{ref.key} is not UTF-8 text ({error.reason})", code="INVALID_ENCODING") from None
        if pending:
            yield pending

    def put_text(self, bucket: str, key: str, text_chunks: Iterable[str], *, content_type: str) -> None:
        self._store.upload_stream(bucket, key, (c.encode() for c in text_chunks), content_type=content_type,
                                  metadata={})


    def put_manifest(self, bucket: str, key: str, text: str) -> str | None:
        response = self._client.put_object(Bucket=bucket, Key=key, Body=text.encode(),
                                           ContentType="application/json")
        return response.get("VersionId")

class SqsQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send_all(self, bodies: list[dict[str, Any]], *, delay_seconds: int = 0) -> None:
        entries = []
        for index, body in enumerate(bodies):
            text = json.dumps(body, separators=(",", ":"))
            if len(text.encode()) > MAX_MESSAGE_BYTES:
                raise ValueError(f"internal message of {len(text)} bytes is over the SQS limit")
            entries.append({"Id": str(index), "MessageBody": text, "DelaySeconds": delay_seconds})
        for start in range(0, len(entries), 10):
            batch = entries[start:start + 10]
            response = self._client.send_message_batch(QueueUrl=self._url, Entries=batch)
            if response.get("Failed"):
                raise RuntimeError(f"SQS refused {len(response['Failed'])} message(s): {response['Failed'][0]}")
