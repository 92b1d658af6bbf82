"""The local stack's moto server keeps connections open between calls and still frames every answer
the way botocore reads it (S3 bodies, HEAD lengths, 204s, errors, 100-continue uploads); the same
answers reach this process's clients when they skip the socket (``answer_in_process``)."""

from __future__ import annotations

import os

import boto3
import pytest
from botocore.exceptions import ClientError

from local.moto_server import KeepAliveMotoServer


@pytest.fixture(scope="module")
def server():
    running = KeepAliveMotoServer("127.0.0.1", port=0)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def client(server, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    host, port = server.get_host_and_port()
    return lambda service: boto3.client(service, endpoint_url=f"http://{host}:{port}", region_name="us-east-1")


@pytest.fixture(params=["socket", "in_process"])
def any_client(request, server, client):
    """A client over the socket, or one whose requests go straight to the app: the answers must match."""
    if request.param == "socket":
        yield client
        return
    undo = server.answer_in_process()
    before = server.connections_accepted
    try:
        yield client
        assert server.connections_accepted == before  # nothing went through the port
    finally:
        undo()


def test_sequential_calls_share_one_connection(server, client):
    before = server.connections_accepted
    dynamodb = client("dynamodb")
    dynamodb.create_table(TableName="keepalive", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    for i in range(50):
        dynamodb.put_item(TableName="keepalive", Item={"k": {"S": str(i)}, "v": {"N": str(i)}})
        assert dynamodb.get_item(TableName="keepalive", Key={"k": {"S": str(i)}})["Item"]["v"] == {"N": str(i)}
    assert server.connections_accepted - before == 1  # werkzeug's server: 101


def test_s3_bodies_lengths_metadata_and_errors_survive_on_a_reused_connection(server, any_client):
    s3 = any_client("s3")
    s3.create_bucket(Bucket="keepalive-bucket")
    s3.delete_objects(Bucket="keepalive-bucket", Delete={"Objects": [{"Key": "after.txt"}]})  # the other run's
    big = os.urandom(3 * 1024 * 1024)  # over 1 MB: botocore sends Expect: 100-continue
    s3.put_object(Bucket="keepalive-bucket", Key="clips/a_b.mp4", Body=big, Metadata={"job_id": "j-1"})
    head = s3.head_object(Bucket="keepalive-bucket", Key="clips/a_b.mp4")
    assert head["ContentLength"] == len(big) and head["Metadata"] == {"job_id": "j-1"}
    assert s3.get_object(Bucket="keepalive-bucket", Key="clips/a_b.mp4")["Body"].read() == big
    ranged = s3.get_object(Bucket="keepalive-bucket", Key="clips/a_b.mp4", Range="bytes=10-19")
    assert ranged["Body"].read() == big[10:20] and ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket="keepalive-bucket", Key="clips/none.mp4")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as missing_head:
        s3.head_object(Bucket="keepalive-bucket", Key="clips/none.mp4")
    assert missing_head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    deleted = s3.delete_object(Bucket="keepalive-bucket", Key="clips/a_b.mp4")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    # The connection is still in step after every kind of answer above.
    s3.put_object(Bucket="keepalive-bucket", Key="after.txt", Body=b"still framed")
    assert s3.get_object(Bucket="keepalive-bucket", Key="after.txt")["Body"].read() == b"still framed"


def test_a_multipart_upload_completes(any_client):
    s3 = any_client("s3")
    s3.create_bucket(Bucket="keepalive-multipart")
    upload = s3.create_multipart_upload(Bucket="keepalive-multipart", Key="out.mp4")
    parts = [os.urandom(5 * 1024 * 1024), b"tail"]
    etags = [s3.upload_part(Bucket="keepalive-multipart", Key="out.mp4", UploadId=upload["UploadId"],
                            PartNumber=n, Body=body)["ETag"] for n, body in enumerate(parts, start=1)]
    s3.complete_multipart_upload(Bucket="keepalive-multipart", Key="out.mp4", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e}
                                                            for n, e in enumerate(etags, start=1)]})
    assert s3.get_object(Bucket="keepalive-multipart", Key="out.mp4")["Body"].read() == b"".join(parts)


def test_in_process_calls_skip_the_port_until_undone_and_presigned_urls_still_use_it(server, client):
    import httpx

    s3, dynamodb, sqs = client("s3"), client("dynamodb"), client("sqs")
    s3.create_bucket(Bucket="in-process")
    undo = server.answer_in_process()
    before = server.connections_accepted
    try:
        s3.put_object(Bucket="in-process", Key="k.txt", Body=b"direct", Metadata={"prompt": "a b", "long_clip": "trim"})
        dynamodb.create_table(TableName="in-process", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
        dynamodb.put_item(TableName="in-process", Item={"k": {"S": "a"}, "n": {"N": "1"}},
                          ConditionExpression="attribute_not_exists(k)")
        with pytest.raises(ClientError) as refused:
            dynamodb.put_item(TableName="in-process", Item={"k": {"S": "a"}}, ConditionExpression="attribute_not_exists(k)")
        queue = sqs.create_queue(QueueName="in-process")["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody="hello")
        received = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)["Messages"]
        assert server.connections_accepted == before
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "in-process", "Key": "k.txt"})
        assert httpx.get(url).content == b"direct"  # an HTTP client: through the port
        assert server.connections_accepted == before + 1
    finally:
        undo()
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert [m["Body"] for m in received] == ["hello"]
    fresh = client("s3")  # a new connection pool: its first call opens a connection
    assert fresh.head_object(Bucket="in-process", Key="k.txt")["Metadata"] == {"prompt": "a b", "long_clip": "trim"}
    assert server.connections_accepted == before + 2  # undone: the socket again


def _raw_request(server, request: bytes) -> tuple[bytes, bytes]:
    """Send bytes as they are (chunked bodies, pipelined requests); return (first answer, rest)."""
    import socket

    with socket.create_connection(server.get_host_and_port(), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received.split(b"\r\n\r\n", 1)[0], received


def test_a_chunked_request_body_is_read_whole_and_the_next_request_still_parses(server, client):
    client("s3").create_bucket(Bucket="keepalive-chunked")
    body = b"chunked body arrives in pieces"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"
    put = (b"PUT /keepalive-chunked/c.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
           + chunked)
    get = b"GET /keepalive-chunked/c.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
    first, everything = _raw_request(server, put + get)  # both on one connection, back to back
    assert first.startswith(b"HTTP/1.1 200")
    # The unsigned GET is refused (403), but it was read as a request of its own.
    assert everything.count(b"\r\n\r\nHTTP/1.1 403") == 1
    assert client("s3").get_object(Bucket="keepalive-chunked", Key="c.txt")["Body"].read() == body


def test_an_app_failure_answers_500_and_closes_the_connection():
    failing = KeepAliveMotoServer("127.0.0.1", port=0)
    failing._server.app = lambda environ, start_response: 1 / 0  # what a moto bug would do
    failing.start()
    try:
        first, everything = _raw_request(failing, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
                                                   b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    finally:
        failing.stop()
    assert first.startswith(b"HTTP/1.1 500")
    assert everything.count(b"HTTP/1.1 500") == 1  # closed after the failure: the second request is not read


def test_an_app_failure_reaches_an_in_process_client_as_the_500_it_would_get_over_the_socket(monkeypatch):
    from botocore.config import Config

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    failing = KeepAliveMotoServer("127.0.0.1", port=0)
    failing._server.app = lambda environ, start_response: 1 / 0  # what a moto bug would do
    failing.start()
    undo = failing.answer_in_process()
    try:
        host, port = failing.get_host_and_port()
        sqs = boto3.client("sqs", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                           config=Config(retries={"max_attempts": 1, "mode": "standard"}))
        with pytest.raises(ClientError) as failed:
            sqs.list_queues()
        assert failing.connections_accepted == 0  # answered in process, not over the port
    finally:
        undo()
        failing.stop()
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
