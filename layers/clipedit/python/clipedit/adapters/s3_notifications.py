"""Reads S3 ObjectCreated notifications (as delivered through SQS) into upload descriptions."""

from __future__ import annotations

import json
from typing import Any, Iterator
from urllib.parse import unquote_plus

from clipedit.domain.uploads import UploadedObject


class MalformedNotification(ValueError):
    pass


def uploads_from_sqs_body(body: str) -> Iterator[UploadedObject]:
    """Every ObjectCreated record in one SQS message body. S3's ``s3:TestEvent`` yields nothing.

    S3 URL-encodes keys in notifications (``my clip.mp4`` arrives as ``my+clip.mp4``), so keys are
    decoded here, once, before they are used anywhere.
    """
    try:
        message: Any = json.loads(body)
    except json.JSONDecodeError as error:
        raise MalformedNotification(f"SQS body is not JSON: {error}") from error
    if not isinstance(message, dict):
        raise MalformedNotification("SQS body is not an S3 notification object")
    if message.get("Event") == "s3:TestEvent":
        return
    records = message.get("Records")
    if not isinstance(records, list):
        raise MalformedNotification("S3 notification without Records")
    for record in records:
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        key = obj.get("key")
        if not bucket or key is None:
            raise MalformedNotification("S3 record without bucket name or object key")
        yield UploadedObject(
            bucket=bucket,
            key=unquote_plus(key),
            version_id=obj.get("versionId") or None,
            etag=obj.get("eTag") or None,
            sequencer=obj.get("sequencer") or None,
            size=obj.get("size"),
        )
