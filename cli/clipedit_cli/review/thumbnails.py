"""One thumbnail per output, made once and kept in S3 next to the outputs (``thumbnails/<job>.jpg``).

The frame is read with ranged GETs (a seekable file over S3), decoded with PyAV and encoded as a
small JPEG; later requests only presign the cached object."""

from __future__ import annotations

import io
from typing import Any

THUMBNAIL_PREFIX = "thumbnails/"
THUMBNAIL_WIDTH = 320
FRAME_AT_SECONDS = 1.0


class S3File(io.RawIOBase):
    """A read-only, seekable file over one S3 object: each read is a ranged GET."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self._s3, self._bucket, self._key = s3, bucket, key
        self._size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._size or len(buffer) == 0:
            return 0
        end = min(self._size, self._position + len(buffer)) - 1
        body = self._s3.get_object(Bucket=self._bucket, Key=self._key,
                                   Range=f"bytes={self._position}-{end}")["Body"].read()
        buffer[:len(body)] = body
        self._position += len(body)
        return len(body)


def make_thumbnail(video: io.IOBase, *, width: int = THUMBNAIL_WIDTH, at_seconds: float = FRAME_AT_SECONDS) -> bytes:
    """A JPEG of the frame at ``at_seconds`` (or the last one before the end), ``width`` wide."""
    import av

    with av.open(video) as container:
        stream = container.streams.video[0]
        if stream.time_base and at_seconds > 0:
            container.seek(int(at_seconds / stream.time_base), stream=stream, any_frame=False, backward=True)
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if frame.time is not None and frame.time >= at_seconds:
                break
        if chosen is None:
            raise ValueError("the video has no frame")
    height = max(2, round(chosen.height * width / chosen.width / 2) * 2)
    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format="mjpeg") as out:
        encoder = out.add_stream("mjpeg", rate=1)
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
        for packet in encoder.encode(chosen.reformat(width=width, height=height, format="yuvj420p")):
            out.mux(packet)
        for packet in encoder.encode(None):
            out.mux(packet)
    return out_buffer.getvalue()


def thumbnail_key(job_id: str) -> str:
    return f"{THUMBNAIL_PREFIX}{job_id}.jpg"


def ensure_thumbnail(s3: Any, *, outputs_bucket: str, output_bucket: str, output_key: str, job_id: str) -> str:
    """The thumbnail's key in the outputs bucket, made now if it is not there yet."""
    from botocore.exceptions import ClientError

    key = thumbnail_key(job_id)
    try:
        s3.head_object(Bucket=outputs_bucket, Key=key)
        return key
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    jpeg = make_thumbnail(io.BufferedReader(S3File(s3, output_bucket, output_key), buffer_size=256 * 1024))
    s3.put_object(Bucket=outputs_bucket, Key=key, Body=jpeg, ContentType="image/jpeg",
                  Metadata={"job-id": job_id})
    return key
