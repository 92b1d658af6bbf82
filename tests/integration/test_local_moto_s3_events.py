"""The local stack's S3 notifications keep S3's contract (``local.runtime.patch_moto_s3_events``):
an ObjectCreated event names the object's version and a sequencer, and it leaves only once the
write is complete, so whoever reads the object on the event sees its user metadata.

moto sends the event from inside ``put_object``, before its PUT handler sets the metadata; a fast
consumer then read no ``prompt`` and REJECTED a good upload. The event cannot be timed from outside
deterministically, so the test records what the object carried at the moment moto built the event.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import unquote_plus

import boto3
import pytest
from moto.s3 import notifications


@pytest.fixture
def clients(stack):
    kwargs = {"endpoint_url": stack.info["endpoint_url"], "region_name": stack.info["region"]}
    return boto3.client("s3", **kwargs), boto3.client("sqs", **kwargs)


@pytest.fixture
def notified_bucket(clients):
    s3, sqs = clients
    name = f"events-{uuid.uuid4().hex[:12]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
    yield name, queue_url
    sqs.delete_queue(QueueUrl=queue_url)


@pytest.fixture
def metadata_when_notified(monkeypatch):
    seen: list[dict[str, str]] = []
    build_event = notifications._get_s3_event

    def recording(event_name, bucket, key, notification_id):
        seen.append({name.removeprefix("x-amz-meta-"): value for name, value in key.metadata.items()
                     if name.startswith("x-amz-meta-")})
        return build_event(event_name, bucket, key, notification_id)

    monkeypatch.setattr(notifications, "_get_s3_event", recording)
    return seen


def _records(sqs, queue_url):
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    return [record for m in messages for record in json.loads(m["Body"]).get("Records", [])]


def test_an_upload_is_announced_with_its_metadata_already_readable(clients, notified_bucket, metadata_when_notified):
    s3, sqs = clients
    bucket, queue_url = notified_bucket
    version = s3.put_object(Bucket=bucket, Key="incoming/clip.mp4", Body=b"x" * 64,
                            Metadata={"prompt": "warm grade", "provider": "kling"})["VersionId"]
    assert metadata_when_notified == [{"prompt": "warm grade", "provider": "kling"}]
    (record,) = _records(sqs, queue_url)
    assert record["eventName"] == "ObjectCreated:Put"
    assert unquote_plus(record["s3"]["object"]["key"]) == "incoming/clip.mp4"  # event keys are URL-encoded
    assert record["s3"]["object"]["versionId"] == version
    assert len(record["s3"]["object"]["sequencer"]) == 16


def test_a_copy_is_announced_with_the_metadata_it_was_given(clients, notified_bucket, metadata_when_notified):
    s3, sqs = clients
    bucket, queue_url = notified_bucket
    s3.put_object(Bucket=bucket, Key="a.mp4", Body=b"x", Metadata={"prompt": "old"})
    s3.copy_object(Bucket=bucket, Key="b.mp4", CopySource={"Bucket": bucket, "Key": "a.mp4"},
                   Metadata={"prompt": "new"}, MetadataDirective="REPLACE")
    assert metadata_when_notified == [{"prompt": "old"}, {"prompt": "new"}]
    records = _records(sqs, queue_url) + _records(sqs, queue_url)
    assert sorted(r["s3"]["object"]["key"] for r in records) == ["a.mp4", "b.mp4"]
