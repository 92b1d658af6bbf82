"""The streaming multipart upload against moto (a server of the test's own): content, parts, and nothing left on failure."""

from __future__ import annotations

import hashlib

import pytest

from clipedit.adapters.s3_storage import S3ObjectStore

MiB = 1024 * 1024


@pytest.fixture
def s3(moto_s3):
    moto_s3.create_bucket(Bucket="out")
    return moto_s3


def chunks(total: int, size: int = 300_000):
    data = hashlib.sha256(b"seed").digest() * (total // 32 + 1)
    data = data[:total]
    for start in range(0, total, size):
        yield data[start:start + size]


def test_a_stream_becomes_one_object_in_order(s3):
    store = S3ObjectStore(s3, part_size=5 * MiB, parts_in_flight=3)
    expected = b"".join(chunks(17 * MiB + 123))
    size = store.upload_stream("out", "edited/a.mp4", chunks(17 * MiB + 123), content_type="video/mp4",
                               metadata={"job-id": "j-1"})
    body = s3.get_object(Bucket="out", Key="edited/a.mp4")
    assert size == len(expected) and body["Body"].read() == expected
    assert body["ContentType"] == "video/mp4" and body["Metadata"] == {"job-id": "j-1"}
    assert body["ETag"].endswith('-4"')  # four parts: 5 + 5 + 5 + 2 MiB


def test_an_empty_stream_still_makes_an_object(s3):
    S3ObjectStore(s3).upload_stream("out", "empty.mp4", iter(()), content_type="video/mp4", metadata={})
    assert s3.head_object(Bucket="out", Key="empty.mp4")["ContentLength"] == 0


def test_a_failure_mid_stream_leaves_no_object_and_no_open_upload(s3):
    def broken():
        yield from chunks(11 * MiB)
        raise ConnectionError("provider CDN reset the connection")

    with pytest.raises(ConnectionError):
        S3ObjectStore(s3, part_size=5 * MiB).upload_stream("out", "b.mp4", broken(), content_type="video/mp4", metadata={})
    assert "Contents" not in s3.list_objects_v2(Bucket="out")
    assert not s3.list_multipart_uploads(Bucket="out").get("Uploads")
